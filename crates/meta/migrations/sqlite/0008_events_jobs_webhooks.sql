-- The backbone of background work: domain events written in the same transaction as the
-- change (the outbox), one durable jobs table, and webhooks with their delivery history.

-- What happened, in commit order. `data` is the event's JSON body (digest, tags, ...).
CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    namespace  TEXT NOT NULL,
    repository TEXT,
    actor      TEXT,
    data       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX events_by_time ON events(created_at);

-- How far each consumer of the event log has read; moved with a compare-and-set so two
-- nodes never hand on the same events twice.
CREATE TABLE event_cursors (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL
) WITHOUT ROWID;
-- Webhooks start at the end of the log: events from before the upgrade are not replayed.
INSERT INTO event_cursors (name, position)
    VALUES ('webhooks', coalesce((SELECT max(id) FROM events), 0));

-- Work to do, at least once. A job is claimed with a lease (a random token and an expiry);
-- a worker that dies leaves the lease to run out and the job is claimed again. Finished jobs
-- are deleted; dead ones (out of attempts) stay for inspection until pruned.
CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    -- One live job per key: schedules and deduplicated work.
    unique_key   TEXT UNIQUE,
    state        TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dead')),
    due_at       INTEGER NOT NULL,   -- milliseconds since the epoch
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    lease_token  TEXT,
    lease_until  INTEGER,
    last_error   TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX jobs_due ON jobs(due_at) WHERE state = 'pending';

-- A webhook fires for one repository, every repository of a namespace, or the whole site.
CREATE TABLE webhooks (
    id                   TEXT PRIMARY KEY,
    scope                TEXT NOT NULL CHECK (scope IN ('repository', 'namespace', 'site')),
    namespace            TEXT,
    repository           TEXT,
    name                 TEXT NOT NULL,
    url                  TEXT NOT NULL,
    events               TEXT NOT NULL,   -- newline-joined event kinds
    tag_filters          TEXT NOT NULL,   -- newline-joined glob patterns; empty: every tag
    format               TEXT NOT NULL,
    secret_sealed        BLOB NOT NULL,   -- the signing secret, encrypted with the node key
    header_name          TEXT,
    header_value_sealed  BLOB,
    enabled              INTEGER NOT NULL DEFAULT 1,
    disabled_reason      TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    -- The newest event when the webhook was made: it hears only of later ones.
    after_event          INTEGER NOT NULL DEFAULT 0,
    created_by           TEXT NOT NULL,
    created_at           INTEGER NOT NULL
);
CREATE INDEX webhooks_by_repository ON webhooks(repository) WHERE scope = 'repository';
CREATE INDEX webhooks_by_namespace ON webhooks(namespace) WHERE scope = 'namespace';

-- One message to one webhook: its body is fixed when the event is handed on, so every
-- attempt and every redelivery sends the same bytes under the same `webhook-id`.
CREATE TABLE webhook_deliveries (
    id          TEXT PRIMARY KEY,
    webhook_id  TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id    INTEGER,
    event_kind  TEXT NOT NULL,
    body        TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    created_at  INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries(webhook_id, created_at);

-- Every attempt, for the history the API, the UI and the CLI show.
CREATE TABLE webhook_attempts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id  TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    webhook_id   TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,
    at           INTEGER NOT NULL,   -- milliseconds since the epoch
    status       INTEGER,
    latency_ms   INTEGER NOT NULL,
    response     TEXT,
    error        TEXT
);
CREATE INDEX webhook_attempts_by_webhook ON webhook_attempts(webhook_id, id);
CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts(delivery_id);
