-- Bounded uploads and per-repository media types.

-- Who opened an upload session (a user or `org/<name>`; NULL for sessions opened before
-- this column existed), so the sessions one account holds open can be capped.
ALTER TABLE upload_sessions ADD COLUMN owner TEXT;
CREATE INDEX upload_sessions_by_owner ON upload_sessions(owner) WHERE owner IS NOT NULL;

-- The Content-Type a manifest was pushed to this repository with. Manifest rows are shared
-- by digest, and a body without a `mediaType` field may be pushed to two repositories with
-- two types: each repository serves the type pushed to it. NULL: the manifest row's type.
ALTER TABLE repository_manifests ADD COLUMN media_type TEXT;
