-- Content lifecycle: immutable tag rules and retention policies, per repository or per
-- namespace, and the history of retention runs.

-- Which tags of a repository (or of every repository of a namespace) can be neither moved
-- nor deleted. `tags` empty: every tag. Patterns are newline-joined globs (`*`).
CREATE TABLE immutable_rules (
    scope          TEXT NOT NULL CHECK (scope IN ('repository', 'namespace')),
    target         TEXT NOT NULL,
    tags           TEXT NOT NULL,
    excludes       TEXT NOT NULL,
    -- Cosign's fallback tags (`sha256-<hex>.sig|.att|.sbom`) are rewritten by signing.
    exempt_cosign  INTEGER NOT NULL DEFAULT 1,
    updated_by     TEXT NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (scope, target)
) WITHOUT ROWID;

-- What a retention run keeps. A repository's own policy replaces its namespace's.
CREATE TABLE retention_policies (
    scope             TEXT NOT NULL CHECK (scope IN ('repository', 'namespace')),
    target            TEXT NOT NULL,
    keep_last_pushed  INTEGER,
    keep_last_pulled  INTEGER,
    keep_pushed_days  INTEGER,
    keep_pulled_days  INTEGER,
    tags              TEXT NOT NULL,   -- newline-joined globs; empty: every tag
    untagged_days     INTEGER,
    schedule          TEXT,            -- `daily` or a cron expression; NULL: only when asked
    allow_empty       INTEGER NOT NULL DEFAULT 0,
    -- Grows with every change, so a run planned under one version never applies another.
    revision          INTEGER NOT NULL,
    next_run_at       INTEGER,         -- seconds since the epoch, for scheduled policies
    updated_by        TEXT NOT NULL,
    updated_at        INTEGER NOT NULL,
    PRIMARY KEY (scope, target)
) WITHOUT ROWID;
CREATE INDEX retention_policies_due ON retention_policies(next_run_at)
    WHERE next_run_at IS NOT NULL;

-- Every real retention run: when, by whom, and exactly what it deleted.
CREATE TABLE retention_runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    scope        TEXT NOT NULL,
    target       TEXT NOT NULL,
    trigger      TEXT NOT NULL,   -- `manual` or `schedule`
    actor        TEXT,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL,
    tags         TEXT NOT NULL,   -- JSON list of `ns/repo:tag`
    manifests    TEXT NOT NULL,   -- JSON list of `ns/repo@digest`
    skipped      INTEGER NOT NULL DEFAULT 0,
    bytes        INTEGER NOT NULL,
    error        TEXT
);
CREATE INDEX retention_runs_by_target ON retention_runs(scope, target, id);
