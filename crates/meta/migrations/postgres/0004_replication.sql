-- Replication on PostgreSQL: the rules and runs of SQLite's migration 0018, with the same
-- meanings; the differences are PostgreSQL's (BIGINT, BOOLEAN, BYTEA, identity columns).

-- One rule. The remote's password is sealed with the site's secrets key (never in the
-- clear). `tags_json` is a JSON array of globs ([] = every tag). `after_event`: the rule
-- acts on events after this id only (those before it were there when it was made).
CREATE TABLE replication_rules (
    name              TEXT PRIMARY KEY,
    direction         TEXT NOT NULL CHECK (direction IN ('push', 'pull')),
    source            TEXT NOT NULL,
    tags_json         TEXT NOT NULL,
    remote_url        TEXT NOT NULL,
    target_namespace  TEXT,
    flatten           BOOLEAN NOT NULL DEFAULT FALSE,
    username          TEXT,
    password_sealed   BYTEA,
    tls_verify        BOOLEAN NOT NULL DEFAULT TRUE,
    trigger_spec      TEXT NOT NULL,
    deletes           BOOLEAN NOT NULL DEFAULT FALSE,
    enabled           BOOLEAN NOT NULL DEFAULT TRUE,
    created_by        TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    after_event       BIGINT NOT NULL DEFAULT 0
);

-- One run of a rule: what was copied, skipped and failed, each item with its reason.
CREATE TABLE replication_runs (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule         TEXT NOT NULL REFERENCES replication_rules(name) ON DELETE CASCADE,
    trigger_kind TEXT NOT NULL,
    status       TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    copied       BIGINT NOT NULL DEFAULT 0,
    skipped      BIGINT NOT NULL DEFAULT 0,
    failed       BIGINT NOT NULL DEFAULT 0,
    items_json   TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX replication_runs_by_rule ON replication_runs(rule, id);

-- Push-triggered replication reads pushes from the end of the log: images pushed before
-- the upgrade are copied by a manual or scheduled run.
INSERT INTO event_cursors (name, position)
    VALUES ('replication', coalesce((SELECT max(id) FROM events), 0))
    ON CONFLICT (name) DO NOTHING;
