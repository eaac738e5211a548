-- Automated builds (issue 17): a git source and build rules per repository, and builds.

-- The source of a repository's builds. Secrets (a token or a deploy key's private half,
-- the webhook secret) are sealed with the server's seal key, never stored in the clear.
CREATE TABLE build_sources (
    repository         TEXT PRIMARY KEY,
    git_url            TEXT NOT NULL,
    -- none, token, deploy_key
    credential_kind    TEXT NOT NULL,
    sealed_credential  BLOB,
    public_key         TEXT,
    sealed_hook_secret BLOB NOT NULL,
    -- The account that linked it (0: the CLI); builds' tokens act for it.
    created_by         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    -- Polling, for sources that cannot call in: every poll_seconds (NULL: never), when it
    -- last looked, and where the refs stood then (JSON {ref: commit}).
    poll_seconds       INTEGER,
    polled_at          INTEGER,
    polled_refs        TEXT
);

-- Up to 10 per repository (checked in the transaction that adds one).
CREATE TABLE build_rules (
    id           INTEGER PRIMARY KEY,
    repository   TEXT NOT NULL REFERENCES build_sources(repository) ON DELETE CASCADE,
    -- branch, tag
    ref_kind     TEXT NOT NULL,
    source       TEXT NOT NULL,
    tag_template TEXT NOT NULL,
    dockerfile   TEXT NOT NULL,
    context      TEXT NOT NULL,
    -- JSON list of KEY=VALUE.
    build_args   TEXT NOT NULL,
    autobuild    INTEGER NOT NULL
);
CREATE INDEX build_rules_by_repository ON build_rules(repository, id);

-- One build. Its rule may be deleted later: the build keeps what it ran with.
CREATE TABLE builds (
    id               INTEGER PRIMARY KEY,
    repository       TEXT NOT NULL,
    -- queued, running, succeeded, failed, cancelled
    status           TEXT NOT NULL,
    rule_id          INTEGER,
    ref_kind         TEXT NOT NULL,
    ref_name         TEXT NOT NULL,
    commit_id        TEXT,
    -- JSON lists.
    tags             TEXT NOT NULL,
    dockerfile       TEXT NOT NULL,
    context          TEXT NOT NULL,
    build_args       TEXT NOT NULL,
    trigger          TEXT NOT NULL,
    digest           TEXT,
    reason           TEXT,
    log              TEXT NOT NULL DEFAULT '',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER
);
CREATE INDEX builds_by_repository ON builds(repository, id);
CREATE INDEX builds_running ON builds(status) WHERE status IN ('queued', 'running');

-- A deleted repository takes its source, rules and builds (their logs) along: whoever
-- creates the name again starts with none of them.
CREATE TRIGGER builds_go_with_their_repository AFTER DELETE ON repositories
BEGIN
    DELETE FROM build_rules WHERE repository = OLD.name;
    DELETE FROM build_sources WHERE repository = OLD.name;
    DELETE FROM builds WHERE repository = OLD.name;
END;
