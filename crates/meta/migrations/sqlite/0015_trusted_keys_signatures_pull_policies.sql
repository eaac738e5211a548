-- Supply-chain trust: the public keys a namespace or repository trusts, its pull policy,
-- each image's signature state, and the scanner's vulnerability summaries that severity
-- policies read.

-- Public keys (PEM SubjectPublicKeyInfo) trusted to sign a repository's images, or those of
-- every repository of a namespace.
CREATE TABLE trusted_keys (
    scope        TEXT NOT NULL CHECK (scope IN ('repository', 'namespace')),
    target       TEXT NOT NULL,
    name         TEXT NOT NULL,
    algorithm    TEXT NOT NULL CHECK (algorithm IN ('ecdsa-p256', 'ed25519', 'rsa')),
    public_key   TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    added_by     TEXT NOT NULL,
    added_at     INTEGER NOT NULL,
    PRIMARY KEY (scope, target, name)
) WITHOUT ROWID;

-- What a pull must satisfy. A repository's policy and its namespace's both apply.
CREATE TABLE pull_policies (
    scope              TEXT NOT NULL CHECK (scope IN ('repository', 'namespace')),
    target             TEXT NOT NULL,
    require_signature  INTEGER NOT NULL,
    block_severity     TEXT CHECK (block_severity IN ('low', 'medium', 'high', 'critical')),
    allow_unscanned    INTEGER NOT NULL,
    updated_by         TEXT NOT NULL,
    updated_at         INTEGER NOT NULL,
    PRIMARY KEY (scope, target)
) WITHOUT ROWID;

-- The signature state of the images that carry signatures (no row: unsigned), worked out by
-- the `signatures.verify` job when a signature arrives or goes and again when keys change.
-- `keys`: JSON array of the names of the trusted keys that verify it.
CREATE TABLE signature_states (
    repository  TEXT NOT NULL,
    digest      TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('signed', 'verified')),
    keys        TEXT NOT NULL,
    checked_at  INTEGER NOT NULL,
    PRIMARY KEY (repository, digest)
) WITHOUT ROWID;

-- A state goes with the manifest it describes and with its repository, so that a manifest
-- pushed again later (or a repository made again under the same name) starts unsigned.
CREATE TRIGGER signature_states_manifest_gone AFTER DELETE ON repository_manifests
BEGIN
    DELETE FROM signature_states
     WHERE digest = old.digest
       AND repository = (SELECT name FROM repositories WHERE id = old.repository_id);
END;
CREATE TRIGGER signature_states_repository_gone BEFORE DELETE ON repositories
BEGIN
    DELETE FROM signature_states WHERE repository = old.name;
END;

-- Counts of findings per severity per image, written by the scanner (which creates the same
-- table, hence IF NOT EXISTS; the schema is the agreed contract).
CREATE TABLE IF NOT EXISTS vulnerability_summaries (
    digest      TEXT PRIMARY KEY,
    critical    INTEGER NOT NULL,
    high        INTEGER NOT NULL,
    medium      INTEGER NOT NULL,
    low         INTEGER NOT NULL,
    unknown     INTEGER NOT NULL,
    scanned_at  INTEGER NOT NULL
);

-- The signature feed reads the whole log once, so signatures pushed before this version are
-- verified too.
INSERT INTO event_cursors (name, position) VALUES ('signatures', 0)
    ON CONFLICT(name) DO NOTHING;
