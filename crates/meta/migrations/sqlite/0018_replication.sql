-- Replication: rules that copy repositories to or from other registries, and their runs.

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
    flatten           INTEGER NOT NULL DEFAULT 0,
    username          TEXT,
    password_sealed   BLOB,
    tls_verify        INTEGER NOT NULL DEFAULT 1,
    trigger_spec      TEXT NOT NULL,
    deletes           INTEGER NOT NULL DEFAULT 0,
    enabled           INTEGER NOT NULL DEFAULT 1,
    created_by        TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    after_event       INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- One run of a rule: what was copied, skipped and failed, each item with its reason.
CREATE TABLE replication_runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    rule         TEXT NOT NULL REFERENCES replication_rules(name) ON DELETE CASCADE,
    trigger_kind TEXT NOT NULL,
    status       TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    copied       INTEGER NOT NULL DEFAULT 0,
    skipped      INTEGER NOT NULL DEFAULT 0,
    failed       INTEGER NOT NULL DEFAULT 0,
    items_json   TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX replication_runs_by_rule ON replication_runs(rule, id);

-- Push-triggered replication reads pushes from the end of the log: images pushed before
-- the upgrade are copied by a manual or scheduled run.
INSERT INTO event_cursors (name, position)
    VALUES ('replication', coalesce((SELECT max(id) FROM events), 0));
