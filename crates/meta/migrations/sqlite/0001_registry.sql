-- The registry: repositories, content-addressed blobs and manifests, links, tags, uploads.
CREATE TABLE repositories (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE blobs (
    digest      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE repository_blobs (
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest        TEXT NOT NULL REFERENCES blobs(digest),
    linked_at     INTEGER NOT NULL,
    PRIMARY KEY (repository_id, digest)
) WITHOUT ROWID;
CREATE INDEX repository_blobs_by_digest ON repository_blobs(digest);

-- Manifest bytes live here, byte for byte as pushed: one query serves a pull.
CREATE TABLE manifests (
    digest        TEXT PRIMARY KEY,
    media_type    TEXT NOT NULL,
    size          INTEGER NOT NULL,
    body          BLOB NOT NULL,
    subject       TEXT,
    artifact_type TEXT,
    annotations   TEXT,
    created_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX manifests_by_subject ON manifests(subject) WHERE subject IS NOT NULL;

CREATE TABLE manifest_blobs (
    manifest TEXT NOT NULL REFERENCES manifests(digest) ON DELETE CASCADE,
    digest   TEXT NOT NULL,
    PRIMARY KEY (manifest, digest)
) WITHOUT ROWID;
CREATE INDEX manifest_blobs_by_digest ON manifest_blobs(digest);

CREATE TABLE manifest_children (
    manifest TEXT NOT NULL REFERENCES manifests(digest) ON DELETE CASCADE,
    child    TEXT NOT NULL,
    PRIMARY KEY (manifest, child)
) WITHOUT ROWID;
CREATE INDEX manifest_children_by_child ON manifest_children(child);

CREATE TABLE repository_manifests (
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest        TEXT NOT NULL REFERENCES manifests(digest),
    pushed_at     INTEGER NOT NULL,
    PRIMARY KEY (repository_id, digest)
) WITHOUT ROWID;
CREATE INDEX repository_manifests_by_digest ON repository_manifests(digest);

CREATE TABLE tags (
    repository_id INTEGER NOT NULL,
    name          TEXT NOT NULL,
    digest        TEXT NOT NULL,
    pushed_at     INTEGER NOT NULL,
    PRIMARY KEY (repository_id, name),
    FOREIGN KEY (repository_id, digest)
        REFERENCES repository_manifests(repository_id, digest) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX tags_by_manifest ON tags(repository_id, digest);

CREATE TABLE upload_sessions (
    id          TEXT PRIMARY KEY,
    repository  TEXT NOT NULL,
    size        INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX upload_sessions_by_age ON upload_sessions(updated_at);
