package provision

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"strings"
	"sync"
	"time"
)

// Account store contract errors. Every AccountStore returns these (possibly
// wrapped); the conformance suite authztest.RunAccountStore checks them.
var (
	// ErrAccountNotFound reports that no account matches the lookup.
	ErrAccountNotFound = errors.New("authz: account not found")
	// ErrEmailTaken reports that CreateIfAbsent found another account
	// already holding the email; the caller must go through consent.
	ErrEmailTaken = errors.New("authz: an account with this email already exists")
	// ErrAlreadyLinked reports that an identity is linked to a different
	// account than the one asked for.
	ErrAlreadyLinked = errors.New("authz: identity already linked to another account")
	// ErrInvalidAccount reports a record missing a required field.
	ErrInvalidAccount = errors.New("authz: invalid account record")
)

// UserRef is an orchestrator-attested user: the attestation's iss and sub.
// The pair, never the email, is what the provider links to an account.
type UserRef struct {
	Issuer  string `json:"iss"`
	Subject string `json:"sub"`
}

func (id UserRef) valid() bool { return id.Issuer != "" && id.Subject != "" }

// Account is a provider-side account as the provisioner sees it.
type Account struct {
	// ID is the provider's account id, opaque to the orchestrator.
	ID string `json:"id"`
	// Email is the verified email the account was created with, or the
	// provider's own email for accounts that existed before the protocol.
	Email string `json:"email"`
	// Name is the display name from the attestation, if any.
	Name string `json:"name,omitempty"`
	// CreatedAt is when the account record was created.
	CreatedAt time.Time `json:"created_at"`
	// Users lists the orchestrator users linked to the account.
	Users []UserRef `json:"users,omitempty"`
	// Consents holds the terms-of-service consent receipts accepted for
	// this account, oldest first.
	Consents []ConsentRecord `json:"consents,omitempty"`
}

// ConsentRecord is a terms-of-service acceptance kept with an account: the
// orchestrator-signed receipt as received, and the terms version it covers.
type ConsentRecord struct {
	TermsVersion string    `json:"terms_version"`
	AcceptedAt   time.Time `json:"accepted_at"`
	// Receipt is the compact JWS the orchestrator signed (typ
	// agentprov-consent+jwt), kept verbatim as evidence.
	Receipt string `json:"receipt"`
}

// AccountStore persists provider accounts and the identities linked to them.
//
// Every method is a single atomic operation; the Provisioner never reads
// and then writes. Emails are compared after NormalizeEmail, and at most one
// account holds a given normalized email. An identity is linked to at most
// one account. Implementations must be safe for concurrent use by several
// processes sharing the same backing database.
type AccountStore interface {
	// CreateIfAbsent atomically creates acct linked to id unless id is
	// already linked. When id is already linked it returns that account
	// and created=false. When another account holds acct.Email it returns
	// ErrEmailTaken and creates nothing. acct.ID must be set by the caller.
	CreateIfAbsent(ctx context.Context, acct Account, id UserRef) (stored *Account, created bool, err error)
	// FindBySubject returns the account linked to id, or ErrAccountNotFound.
	FindBySubject(ctx context.Context, id UserRef) (*Account, error)
	// FindByEmail returns the account holding the normalized email, or
	// ErrAccountNotFound.
	FindByEmail(ctx context.Context, email string) (*Account, error)
	// LinkSubject links id to accountID: a compare-and-set that succeeds
	// when id is unlinked (linked=true) or already linked to accountID
	// (linked=false, no error). It returns ErrAlreadyLinked when id is
	// linked elsewhere and ErrAccountNotFound when accountID is unknown.
	LinkSubject(ctx context.Context, accountID string, id UserRef) (linked bool, err error)
	// AttachConsent appends a consent record to the account.
	AttachConsent(ctx context.Context, accountID string, rec ConsentRecord) error
}

// NormalizeEmail is the form under which emails are compared: surrounding
// space removed and lower-cased. Providers whose local parts are case
// sensitive should normalize before seeding their own accounts the same way.
func NormalizeEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}

// NewAccountID returns a fresh random account id ("acct_" + 26 base32 chars).
func NewAccountID() string { return "acct_" + randomID() }

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func randomID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("authz: crypto/rand failed: " + err.Error())
	}
	return strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// MemoryAccountStore is an in-process AccountStore. It is safe for
// concurrent use; its data lives as long as the value.
type MemoryAccountStore struct {
	mu       sync.Mutex
	accounts map[string]*Account
	byEmail  map[string]string
	bySub    map[UserRef]string
}

// NewMemoryAccountStore returns an empty in-memory AccountStore.
func NewMemoryAccountStore() *MemoryAccountStore {
	return &MemoryAccountStore{
		accounts: map[string]*Account{},
		byEmail:  map[string]string{},
		bySub:    map[UserRef]string{},
	}
}

func cloneAccount(a *Account) *Account {
	c := *a
	c.Users = append([]UserRef(nil), a.Users...)
	c.Consents = append([]ConsentRecord(nil), a.Consents...)
	return &c
}

// CreateIfAbsent implements AccountStore.
func (s *MemoryAccountStore) CreateIfAbsent(ctx context.Context, acct Account, id UserRef) (*Account, bool, error) {
	if acct.ID == "" || NormalizeEmail(acct.Email) == "" || !id.valid() {
		return nil, false, ErrInvalidAccount
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if aid, ok := s.bySub[id]; ok {
		return cloneAccount(s.accounts[aid]), false, nil
	}
	email := NormalizeEmail(acct.Email)
	if _, ok := s.byEmail[email]; ok {
		return nil, false, ErrEmailTaken
	}
	if _, ok := s.accounts[acct.ID]; ok {
		return nil, false, ErrInvalidAccount
	}
	a := cloneAccount(&acct)
	a.Email = email
	a.Users = []UserRef{id}
	s.accounts[a.ID] = a
	s.byEmail[email] = a.ID
	s.bySub[id] = a.ID
	return cloneAccount(a), true, nil
}

// FindBySubject implements AccountStore.
func (s *MemoryAccountStore) FindBySubject(ctx context.Context, id UserRef) (*Account, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	aid, ok := s.bySub[id]
	if !ok {
		return nil, ErrAccountNotFound
	}
	return cloneAccount(s.accounts[aid]), nil
}

// FindByEmail implements AccountStore.
func (s *MemoryAccountStore) FindByEmail(ctx context.Context, email string) (*Account, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	aid, ok := s.byEmail[NormalizeEmail(email)]
	if !ok {
		return nil, ErrAccountNotFound
	}
	return cloneAccount(s.accounts[aid]), nil
}

// LinkSubject implements AccountStore.
func (s *MemoryAccountStore) LinkSubject(ctx context.Context, accountID string, id UserRef) (bool, error) {
	if !id.valid() || accountID == "" {
		return false, ErrInvalidAccount
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[accountID]
	if !ok {
		return false, ErrAccountNotFound
	}
	if cur, ok := s.bySub[id]; ok {
		if cur == accountID {
			return false, nil
		}
		return false, ErrAlreadyLinked
	}
	s.bySub[id] = accountID
	a.Users = append(a.Users, id)
	return true, nil
}

// AttachConsent implements AccountStore.
func (s *MemoryAccountStore) AttachConsent(ctx context.Context, accountID string, rec ConsentRecord) error {
	if rec.Receipt == "" || rec.TermsVersion == "" {
		return ErrInvalidAccount
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[accountID]
	if !ok {
		return ErrAccountNotFound
	}
	a.Consents = append(a.Consents, rec)
	return nil
}

// Seed adds an account that existed before the protocol (no linked
// identity), as a provider's own sign-up would. It returns ErrEmailTaken
// when the email is in use.
func (s *MemoryAccountStore) Seed(ctx context.Context, acct Account) error {
	email := NormalizeEmail(acct.Email)
	if acct.ID == "" || email == "" {
		return ErrInvalidAccount
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byEmail[email]; ok {
		return ErrEmailTaken
	}
	a := cloneAccount(&acct)
	a.Email = email
	a.Users = nil
	s.accounts[a.ID] = a
	s.byEmail[email] = a.ID
	return nil
}
