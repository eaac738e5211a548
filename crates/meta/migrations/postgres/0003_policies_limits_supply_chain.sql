-- Lifecycle marks, supply-chain trust, scanning and pull rate limits on PostgreSQL: the
-- tables of SQLite's migrations 0014-0017 that 0001 does not hold yet (0013's immutable
-- rules, retention policies and runs are in 0001). Meanings as in migrations/sqlite; the
-- differences are PostgreSQL's (BIGINT, BOOLEAN, identity columns, PL/pgSQL triggers).

-- 0014: when a manifest of a repository was last pulled, by tag or by digest, which
-- retention reads for manifests no tag points at; and runs recorded from their start.
ALTER TABLE repository_manifests ADD COLUMN last_pulled_at BIGINT;
ALTER TABLE retention_runs ADD COLUMN finished BOOLEAN NOT NULL DEFAULT TRUE;

-- 0015: trusted keys, pull policies, signature states.
CREATE TABLE trusted_keys (
    scope        TEXT NOT NULL CHECK (scope IN ('repository', 'namespace')),
    target       TEXT COLLATE "C" NOT NULL,
    name         TEXT COLLATE "C" NOT NULL,
    algorithm    TEXT NOT NULL CHECK (algorithm IN ('ecdsa-p256', 'ed25519', 'rsa')),
    public_key   TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    added_by     TEXT NOT NULL,
    added_at     BIGINT NOT NULL,
    PRIMARY KEY (scope, target, name)
);

CREATE TABLE pull_policies (
    scope              TEXT NOT NULL CHECK (scope IN ('repository', 'namespace')),
    target             TEXT COLLATE "C" NOT NULL,
    require_signature  BOOLEAN NOT NULL,
    block_severity     TEXT CHECK (block_severity IN ('low', 'medium', 'high', 'critical')),
    allow_unscanned    BOOLEAN NOT NULL,
    updated_by         TEXT NOT NULL,
    updated_at         BIGINT NOT NULL,
    PRIMARY KEY (scope, target)
);

-- Rows are exactly the images that carry signatures; `keys` a JSON array of key names.
CREATE TABLE signature_states (
    repository  TEXT COLLATE "C" NOT NULL,
    digest      TEXT COLLATE "C" NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('signed', 'verified')),
    keys        TEXT NOT NULL,
    checked_at  BIGINT NOT NULL,
    -- Why the signatures found do not verify (a JSON array of short texts; SQLite 0020).
    reasons     TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (repository, digest)
);

-- A state goes with the manifest it describes and with its repository, so that a manifest
-- pushed again later (or a repository made again under the same name) starts unsigned. The
-- repository's trigger runs BEFORE its delete: the manifests' cascade runs after the
-- repository row is gone, when their trigger can no longer find its name.
CREATE FUNCTION signature_states_manifest_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM signature_states
     WHERE digest = OLD.digest
       AND repository = (SELECT name FROM repositories WHERE id = OLD.repository_id);
    RETURN NULL;
END $$;
CREATE TRIGGER signature_states_manifest_gone AFTER DELETE ON repository_manifests
    FOR EACH ROW EXECUTE FUNCTION signature_states_manifest_gone();

CREATE FUNCTION signature_states_repository_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM signature_states WHERE repository = OLD.name;
    RETURN OLD;
END $$;
CREATE TRIGGER signature_states_repository_gone BEFORE DELETE ON repositories
    FOR EACH ROW EXECUTE FUNCTION signature_states_repository_gone();

-- Counts of findings per severity per image: what severity pull policies read.
CREATE TABLE vulnerability_summaries (
    digest      TEXT COLLATE "C" PRIMARY KEY,
    critical    BIGINT NOT NULL,
    high        BIGINT NOT NULL,
    medium      BIGINT NOT NULL,
    low         BIGINT NOT NULL,
    unknown     BIGINT NOT NULL,
    scanned_at  BIGINT NOT NULL
);

-- The signature feed reads the whole log once.
INSERT INTO event_cursors (name, position) VALUES ('signatures', 0)
    ON CONFLICT (name) DO NOTHING;

-- 0016: the offline vulnerability database (generations made current in one statement) and
-- the latest scan of each image manifest.
CREATE TABLE vulndb_state (
    id          BIGINT PRIMARY KEY CHECK (id = 1),
    generation  BIGINT NOT NULL,
    imported_at BIGINT NOT NULL,
    source      TEXT NOT NULL,
    stats       TEXT NOT NULL
);
CREATE TABLE vulndb_advisories (
    generation BIGINT NOT NULL,
    id         TEXT COLLATE "C" NOT NULL,
    doc        TEXT NOT NULL,
    PRIMARY KEY (generation, id)
);
CREATE TABLE vulndb_packages (
    generation  BIGINT NOT NULL,
    ecosystem   TEXT COLLATE "C" NOT NULL,
    package     TEXT COLLATE "C" NOT NULL,
    advisory_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (generation, ecosystem, package, advisory_id)
);

CREATE TABLE scan_results (
    digest        TEXT COLLATE "C" PRIMARY KEY,
    repository    TEXT NOT NULL,
    scanned_at    BIGINT NOT NULL,
    db_generation BIGINT,
    os            TEXT,
    packages      BIGINT NOT NULL,
    findings      TEXT NOT NULL,
    warnings      TEXT NOT NULL,
    sbom_digest   TEXT
);

-- The scanner reads pushes from the end of the log: images pushed before the upgrade are
-- scanned when a database is imported (which rescans everything).
INSERT INTO event_cursors (name, position)
    VALUES ('scanner', coalesce((SELECT max(id) FROM events), 0))
    ON CONFLICT (name) DO NOTHING;

-- 0017: pull rate limit plans per account or organization, and the ledger through which
-- nodes share what they spent. `pulls` NULL: unlimited.
CREATE TABLE rate_plans (
    namespace    TEXT PRIMARY KEY REFERENCES namespaces(name) ON DELETE CASCADE,
    pulls        BIGINT CHECK (pulls IS NULL OR pulls > 0),
    window_secs  BIGINT CHECK (window_secs IS NULL OR window_secs > 0),
    updated_by   TEXT NOT NULL,
    updated_at   BIGINT NOT NULL,
    CHECK ((pulls IS NULL) = (window_secs IS NULL))
);

-- Appended under an advisory lock (see postgres/ratelimit.rs), so sequence numbers are
-- given in commit order and a reader that saw `seq` N has seen every row below it.
CREATE TABLE rate_limit_ledger (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node        TEXT NOT NULL,
    key         TEXT NOT NULL,
    at_us       BIGINT NOT NULL,
    advance_us  BIGINT NOT NULL
);
CREATE INDEX rate_limit_ledger_by_time ON rate_limit_ledger(at_us);

-- Scan results live as long as the image they describe (SQLite 0020): kept per digest, they
-- go when the last repository holding the digest lets go of it.
CREATE FUNCTION scan_results_manifest_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM repository_manifests WHERE digest = OLD.digest) THEN
        DELETE FROM scan_results WHERE digest = OLD.digest;
        DELETE FROM vulnerability_summaries WHERE digest = OLD.digest;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER scan_results_manifest_gone AFTER DELETE ON repository_manifests
    FOR EACH ROW EXECUTE FUNCTION scan_results_manifest_gone();
