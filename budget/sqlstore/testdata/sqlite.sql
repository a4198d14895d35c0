-- schema a
CREATE TABLE IF NOT EXISTS agentprov_budget_counters (
	project   TEXT   NOT NULL,
	provider  TEXT   NOT NULL,
	win       TEXT   NOT NULL,
	committed BIGINT NOT NULL,
	held      BIGINT NOT NULL,
	arrears   BIGINT NOT NULL,
	PRIMARY KEY (project, provider, win)
);

-- schema b
CREATE TABLE IF NOT EXISTS agentprov_budget_holds (
	id           TEXT   NOT NULL PRIMARY KEY,
	idem_key     TEXT   NOT NULL,
	request_hash TEXT   NOT NULL,
	project      TEXT   NOT NULL,
	provider     TEXT   NOT NULL,
	service      TEXT   NOT NULL,
	memo         TEXT   NOT NULL,
	currency     TEXT   NOT NULL,
	amount       BIGINT NOT NULL,
	committed    BIGINT NOT NULL,
	state        TEXT   NOT NULL,
	created_at   BIGINT NOT NULL,
	expires_at   BIGINT NOT NULL,
	ended_at     BIGINT,
	reason       TEXT   NOT NULL,
	CONSTRAINT agentprov_budget_holds_within_caps CHECK (state <> 'refused')
);

-- schema c
CREATE UNIQUE INDEX IF NOT EXISTS agentprov_budget_holds_key ON agentprov_budget_holds (idem_key);

-- schema d
CREATE INDEX IF NOT EXISTS agentprov_budget_holds_active ON agentprov_budget_holds (project, expires_at) WHERE state = 'active';

-- schema e
CREATE TABLE IF NOT EXISTS agentprov_budget_hold_counters (
	hold_id  TEXT NOT NULL,
	provider TEXT NOT NULL,
	win      TEXT NOT NULL,
	PRIMARY KEY (hold_id, provider, win)
);

-- schema f
CREATE TABLE IF NOT EXISTS agentprov_budget_caps (
	project         TEXT   NOT NULL,
	provider        TEXT   NOT NULL,
	period          TEXT   NOT NULL,
	limit_amount    BIGINT NOT NULL,
	currency        TEXT   NOT NULL,
	previous_amount BIGINT,
	previous_currency TEXT,
	PRIMARY KEY (project, provider, period)
);

-- schema g
CREATE TABLE IF NOT EXISTS agentprov_budget_cap_history (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	project           TEXT   NOT NULL,
	provider          TEXT   NOT NULL,
	period            TEXT   NOT NULL,
	limit_amount      BIGINT NOT NULL,
	currency          TEXT   NOT NULL,
	previous_amount   BIGINT,
	previous_currency TEXT,
	by_kind           TEXT   NOT NULL,
	by_id             TEXT   NOT NULL,
	reason            TEXT   NOT NULL,
	at                BIGINT NOT NULL
);

-- schema h
CREATE INDEX IF NOT EXISTS agentprov_budget_cap_history_project ON agentprov_budget_cap_history (project, id);

-- schema i
CREATE TABLE IF NOT EXISTS agentprov_budget_usage (
	idem_key     TEXT   NOT NULL PRIMARY KEY,
	request_hash TEXT   NOT NULL,
	project      TEXT   NOT NULL,
	provider     TEXT   NOT NULL,
	service      TEXT   NOT NULL,
	currency     TEXT   NOT NULL,
	amount       BIGINT NOT NULL,
	at           BIGINT NOT NULL,
	recorded_at  BIGINT NOT NULL
);

-- schema j
CREATE TABLE IF NOT EXISTS agentprov_budget_alerts (
	alert_key TEXT   NOT NULL PRIMARY KEY,
	at        BIGINT NOT NULL
);

-- usage (2 counters)
WITH c (ord, project, provider, win, period) AS (SELECT CAST(?1 AS INTEGER), CAST(?2 AS TEXT), CAST(?3 AS TEXT), CAST(?4 AS TEXT), CAST(?5 AS TEXT) UNION ALL SELECT CAST(?6 AS INTEGER), CAST(?7 AS TEXT), CAST(?8 AS TEXT), CAST(?9 AS TEXT), CAST(?10 AS TEXT))
SELECT c.ord, COALESCE(k.committed, 0), COALESCE(k.held, 0), COALESCE(k.arrears, 0), cp.limit_amount, cp.currency
FROM c
LEFT JOIN agentprov_budget_counters k ON k.project = c.project AND k.provider = c.provider AND k.win = c.win
LEFT JOIN agentprov_budget_caps cp ON cp.project = c.project AND cp.provider = c.provider AND cp.period = c.period
ORDER BY c.ord;

-- windows
SELECT k.win, k.committed, k.held, k.arrears, cp.limit_amount, cp.currency
FROM agentprov_budget_counters k LEFT JOIN agentprov_budget_caps cp ON cp.project = k.project AND cp.provider = k.provider AND cp.period = ?3
WHERE k.project = ?1 AND k.provider = ?2 AND k.win > ?4 AND k.win < ?5
ORDER BY k.win;

-- mark alert
INSERT INTO agentprov_budget_alerts (alert_key, at) VALUES (?1, ?2)
ON CONFLICT (alert_key) DO NOTHING RETURNING alert_key;

-- add to held (2 counters)
INSERT INTO agentprov_budget_counters (project, provider, win, committed, held, arrears) VALUES (?1, ?3, ?4, 0, ?2, 0), (?1, ?5, ?6, 0, ?2, 0) ON CONFLICT (project, provider, win) DO UPDATE SET held = held + excluded.held;

-- link hold to counters (2 counters)
INSERT INTO agentprov_budget_hold_counters (hold_id, provider, win) VALUES (?1, ?2, ?3), (?1, ?4, ?5);

