-- Online garbage collection and usage accounting with namespace quotas.

-- A blob whose row carries `deleting_at` is doomed: the collector marked it (and dropped its
-- stale repository links) in one transaction that re-checked nothing references it. Linking
-- paths refuse doomed blobs; the collector removes the bytes and only then the row. A run
-- interrupted by a crash is finished by the next one: a mark is never taken back.
ALTER TABLE blobs ADD COLUMN deleting_at INTEGER;
CREATE INDEX blobs_doomed ON blobs(deleting_at) WHERE deleting_at IS NOT NULL;

-- Space used: per repository (every blob linked into it), per namespace (every distinct blob
-- linked into any of its repositories, counted once through `namespace_blobs`). Kept by the
-- triggers below in the very transaction that links or unlinks, whatever the path (upload,
-- mount, blob delete, repository delete by cascade, the collector).
CREATE TABLE repository_usage (
    repository_id INTEGER PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    bytes         INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE namespace_blobs (
    namespace TEXT NOT NULL,
    digest    TEXT NOT NULL,
    size      INTEGER NOT NULL,
    refs      INTEGER NOT NULL,
    PRIMARY KEY (namespace, digest)
) WITHOUT ROWID;

-- `quota`: bytes the namespace may use (NULL: no limit), set by site admins.
CREATE TABLE namespace_usage (
    namespace TEXT PRIMARY KEY,
    bytes     INTEGER NOT NULL DEFAULT 0,
    quota     INTEGER
) WITHOUT ROWID;

-- The quota a namespace created from now on starts with (`default_quota`), written by the
-- server and the CLI from their configuration at startup.
CREATE TABLE quota_defaults (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    quota INTEGER
);
INSERT INTO quota_defaults (id, quota) VALUES (1, NULL);

CREATE TRIGGER usage_on_link AFTER INSERT ON repository_blobs
BEGIN
    INSERT INTO repository_usage (repository_id, bytes)
        VALUES (NEW.repository_id, (SELECT size FROM blobs WHERE digest = NEW.digest))
        ON CONFLICT (repository_id) DO UPDATE SET bytes = bytes + excluded.bytes;
    INSERT INTO namespace_blobs (namespace, digest, size, refs)
        VALUES ((SELECT namespace FROM repositories WHERE id = NEW.repository_id), NEW.digest,
                (SELECT size FROM blobs WHERE digest = NEW.digest), 1)
        ON CONFLICT (namespace, digest) DO UPDATE SET refs = refs + 1;
END;

CREATE TRIGGER usage_on_unlink AFTER DELETE ON repository_blobs
BEGIN
    UPDATE repository_usage
        SET bytes = bytes - coalesce((SELECT size FROM blobs WHERE digest = OLD.digest), 0)
        WHERE repository_id = OLD.repository_id;
    UPDATE namespace_blobs SET refs = refs - 1
        WHERE namespace = (SELECT namespace FROM repositories WHERE id = OLD.repository_id)
          AND digest = OLD.digest;
    DELETE FROM namespace_blobs
        WHERE namespace = (SELECT namespace FROM repositories WHERE id = OLD.repository_id)
          AND digest = OLD.digest AND refs <= 0;
END;

-- A repository's links go before its row, while the unlink trigger can still read its
-- namespace (a cascade would run after the row is gone).
CREATE TRIGGER usage_on_repository_delete BEFORE DELETE ON repositories
BEGIN
    DELETE FROM repository_blobs WHERE repository_id = OLD.id;
END;

CREATE TRIGGER namespace_usage_on_first_link AFTER INSERT ON namespace_blobs
BEGIN
    INSERT INTO namespace_usage (namespace, bytes) VALUES (NEW.namespace, NEW.size)
        ON CONFLICT (namespace) DO UPDATE SET bytes = bytes + excluded.bytes;
END;

CREATE TRIGGER namespace_usage_on_last_unlink AFTER DELETE ON namespace_blobs
BEGIN
    UPDATE namespace_usage SET bytes = bytes - OLD.size WHERE namespace = OLD.namespace;
END;

CREATE TRIGGER namespace_quota_on_create AFTER INSERT ON namespaces
BEGIN
    INSERT INTO namespace_usage (namespace, bytes, quota)
        VALUES (NEW.name, 0, (SELECT quota FROM quota_defaults WHERE id = 1))
        ON CONFLICT (namespace) DO UPDATE SET quota = coalesce(quota, excluded.quota);
END;

-- What is already linked.
INSERT INTO repository_usage (repository_id, bytes)
    SELECT rb.repository_id, sum(b.size) FROM repository_blobs rb
    JOIN blobs b ON b.digest = rb.digest GROUP BY rb.repository_id;
INSERT INTO namespace_blobs (namespace, digest, size, refs)
    SELECT r.namespace, rb.digest, b.size, count(*) FROM repository_blobs rb
    JOIN repositories r ON r.id = rb.repository_id
    JOIN blobs b ON b.digest = rb.digest GROUP BY r.namespace, rb.digest;
