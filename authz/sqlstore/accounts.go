package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/agentprov/agentprov/authz/provision"
)

// AccountStore is a provision.AccountStore in three tables: accounts (unique
// normalized email), the orchestrator users linked to them (primary key
// issuer+subject) and their consent receipts. The unique keys arbitrate
// every race: CreateIfAbsent inserts the link and the account in one
// transaction with ON CONFLICT DO NOTHING, so concurrent creations for one
// identity or one email leave exactly one account.
//
// An AccountStore is safe for concurrent use, also across processes.
type AccountStore struct {
	c conn
}

var _ provision.AccountStore = (*AccountStore)(nil)

// NewAccountStore returns an AccountStore on db. Run Migrate before first use.
func NewAccountStore(db *sql.DB, dialect Dialect, opts *Options) (*AccountStore, error) {
	c, err := newConn(db, dialect, opts)
	if err != nil {
		return nil, err
	}
	return &AccountStore{c: c}, nil
}

// Migrate creates the account tables if absent.
func (s *AccountStore) Migrate(ctx context.Context) error {
	serial := "INTEGER PRIMARY KEY AUTOINCREMENT"
	if s.c.dialect == Postgres {
		serial = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
	}
	return s.c.migrate(ctx,
		`CREATE TABLE IF NOT EXISTS {accounts} (
			id TEXT PRIMARY KEY,
			email TEXT NOT NULL UNIQUE,
			name TEXT NOT NULL,
			created_at BIGINT NOT NULL
		)`,
		// The link row is written before its account inside one
		// transaction, so the foreign key is checked at commit.
		`CREATE TABLE IF NOT EXISTS {account_users} (
			issuer TEXT NOT NULL,
			subject TEXT NOT NULL,
			account_id TEXT NOT NULL REFERENCES {accounts} (id) DEFERRABLE INITIALLY DEFERRED,
			linked_at BIGINT NOT NULL,
			PRIMARY KEY (issuer, subject)
		)`,
		`CREATE INDEX IF NOT EXISTS {account_users_account} ON {account_users} (account_id)`,
		`CREATE TABLE IF NOT EXISTS {account_consents} (
			seq `+serial+`,
			account_id TEXT NOT NULL REFERENCES {accounts} (id) DEFERRABLE INITIALLY DEFERRED,
			terms_version TEXT NOT NULL,
			accepted_at BIGINT NOT NULL,
			receipt TEXT NOT NULL
		)`,
		`CREATE INDEX IF NOT EXISTS {account_consents_account} ON {account_consents} (account_id)`,
	)
}

func validAccount(a *provision.Account, id provision.UserRef) bool {
	return a.ID != "" && provision.NormalizeEmail(a.Email) != "" && id.Issuer != "" && id.Subject != ""
}

// CreateIfAbsent implements provision.AccountStore.
func (s *AccountStore) CreateIfAbsent(ctx context.Context, acct provision.Account, id provision.UserRef) (*provision.Account, bool, error) {
	if !validAccount(&acct, id) {
		return nil, false, provision.ErrInvalidAccount
	}
	for _, c := range acct.Consents {
		if c.Receipt == "" || c.TermsVersion == "" {
			return nil, false, provision.ErrInvalidAccount
		}
	}
	created, err := s.create(ctx, &acct, id)
	if err != nil {
		return nil, false, err
	}
	a, err := s.FindBySubject(ctx, id)
	if err != nil {
		return nil, false, err
	}
	return a, created, nil
}

func (s *AccountStore) create(ctx context.Context, acct *provision.Account, id provision.UserRef) (created bool, err error) {
	tx, err := s.c.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() {
		if !created || err != nil {
			_ = tx.Rollback()
		}
	}()
	now := s.c.now.Now().UnixNano()
	res, err := tx.ExecContext(ctx, s.c.q(
		`INSERT INTO {account_users} (issuer, subject, account_id, linked_at) VALUES ($1, $2, $3, $4)
		 ON CONFLICT DO NOTHING`), id.Issuer, id.Subject, acct.ID, now)
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil {
		return false, err
	} else if n == 0 {
		return false, nil // already linked: the caller reads that account
	}
	res, err = tx.ExecContext(ctx, s.c.q(
		`INSERT INTO {accounts} (id, email, name, created_at) VALUES ($1, $2, $3, $4)
		 ON CONFLICT DO NOTHING`), acct.ID, provision.NormalizeEmail(acct.Email), acct.Name, acct.CreatedAt.UnixNano())
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil {
		return false, err
	} else if n == 0 {
		var one int
		err := tx.QueryRowContext(ctx, s.c.q(`SELECT 1 FROM {accounts} WHERE id = $1`), acct.ID).Scan(&one)
		if err == nil {
			return false, fmt.Errorf("%w: account id %q in use", provision.ErrInvalidAccount, acct.ID)
		}
		return false, provision.ErrEmailTaken
	}
	for _, c := range acct.Consents {
		if _, err := tx.ExecContext(ctx, s.c.q(
			`INSERT INTO {account_consents} (account_id, terms_version, accepted_at, receipt) VALUES ($1, $2, $3, $4)`),
			acct.ID, c.TermsVersion, c.AcceptedAt.UnixNano(), c.Receipt); err != nil {
			return false, err
		}
	}
	if err := tx.Commit(); err != nil {
		return false, err
	}
	return true, nil
}

// FindBySubject implements provision.AccountStore.
func (s *AccountStore) FindBySubject(ctx context.Context, id provision.UserRef) (*provision.Account, error) {
	return s.load(ctx, s.c.q(
		`SELECT a.id, a.email, a.name, a.created_at FROM {accounts} a
		 JOIN {account_users} u ON u.account_id = a.id
		 WHERE u.issuer = $1 AND u.subject = $2`), id.Issuer, id.Subject)
}

// FindByEmail implements provision.AccountStore.
func (s *AccountStore) FindByEmail(ctx context.Context, email string) (*provision.Account, error) {
	return s.load(ctx, s.c.q(`SELECT id, email, name, created_at FROM {accounts} WHERE email = $1`),
		provision.NormalizeEmail(email))
}

func (s *AccountStore) load(ctx context.Context, query string, args ...any) (*provision.Account, error) {
	var a provision.Account
	var created int64
	err := s.c.db.QueryRowContext(ctx, query, args...).Scan(&a.ID, &a.Email, &a.Name, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, provision.ErrAccountNotFound
	}
	if err != nil {
		return nil, err
	}
	a.CreatedAt = time.Unix(0, created).UTC()
	rows, err := s.c.db.QueryContext(ctx, s.c.q(
		`SELECT issuer, subject FROM {account_users} WHERE account_id = $1 ORDER BY linked_at, issuer, subject`), a.ID)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var u provision.UserRef
		if err := rows.Scan(&u.Issuer, &u.Subject); err != nil {
			rows.Close()
			return nil, err
		}
		a.Users = append(a.Users, u)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = s.c.db.QueryContext(ctx, s.c.q(
		`SELECT terms_version, accepted_at, receipt FROM {account_consents} WHERE account_id = $1 ORDER BY seq`), a.ID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var c provision.ConsentRecord
		var at int64
		if err := rows.Scan(&c.TermsVersion, &at, &c.Receipt); err != nil {
			return nil, err
		}
		c.AcceptedAt = time.Unix(0, at).UTC()
		a.Consents = append(a.Consents, c)
	}
	return &a, rows.Err()
}

// LinkSubject implements provision.AccountStore with one conditional INSERT.
func (s *AccountStore) LinkSubject(ctx context.Context, accountID string, id provision.UserRef) (bool, error) {
	if accountID == "" || id.Issuer == "" || id.Subject == "" {
		return false, provision.ErrInvalidAccount
	}
	res, err := s.c.db.ExecContext(ctx, s.c.q(
		`INSERT INTO {account_users} (issuer, subject, account_id, linked_at)
		 SELECT CAST($1 AS TEXT), CAST($2 AS TEXT), CAST($3 AS TEXT), CAST($4 AS BIGINT)
		 WHERE EXISTS (SELECT 1 FROM {accounts} WHERE id = $3)
		 ON CONFLICT DO NOTHING`), id.Issuer, id.Subject, accountID, s.c.now.Now().UnixNano())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	if n == 1 {
		return true, nil
	}
	// Nothing written; find out why, for the error only.
	var cur string
	err = s.c.db.QueryRowContext(ctx, s.c.q(
		`SELECT account_id FROM {account_users} WHERE issuer = $1 AND subject = $2`), id.Issuer, id.Subject).Scan(&cur)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, provision.ErrAccountNotFound
	case err != nil:
		return false, err
	case cur == accountID:
		return false, nil
	default:
		return false, provision.ErrAlreadyLinked
	}
}

// AttachConsent implements provision.AccountStore.
func (s *AccountStore) AttachConsent(ctx context.Context, accountID string, rec provision.ConsentRecord) error {
	if rec.Receipt == "" || rec.TermsVersion == "" {
		return provision.ErrInvalidAccount
	}
	res, err := s.c.db.ExecContext(ctx, s.c.q(
		`INSERT INTO {account_consents} (account_id, terms_version, accepted_at, receipt)
		 SELECT CAST($1 AS TEXT), CAST($2 AS TEXT), CAST($3 AS BIGINT), CAST($4 AS TEXT)
		 WHERE EXISTS (SELECT 1 FROM {accounts} WHERE id = $1)`),
		accountID, rec.TermsVersion, rec.AcceptedAt.UnixNano(), rec.Receipt)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return provision.ErrAccountNotFound
	}
	return nil
}

// Seed inserts an account that predates the protocol (no linked user), as
// the provider's own sign-up would; provision.ErrEmailTaken when the email is
// in use.
func (s *AccountStore) Seed(ctx context.Context, acct provision.Account) error {
	if acct.ID == "" || provision.NormalizeEmail(acct.Email) == "" {
		return provision.ErrInvalidAccount
	}
	res, err := s.c.db.ExecContext(ctx, s.c.q(
		`INSERT INTO {accounts} (id, email, name, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`),
		acct.ID, provision.NormalizeEmail(acct.Email), acct.Name, acct.CreatedAt.UnixNano())
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return provision.ErrEmailTaken
	}
	return nil
}
