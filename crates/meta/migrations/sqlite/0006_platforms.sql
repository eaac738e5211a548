-- Image platforms: recorded with each image manifest when it is pushed (read from its
-- configuration), so the tags view never reads a blob.

ALTER TABLE manifests ADD COLUMN platform_os TEXT;
ALTER TABLE manifests ADD COLUMN platform_architecture TEXT;
ALTER TABLE manifests ADD COLUMN platform_variant TEXT;
-- 1 once the platform columns say what the configuration names (NULL: no platform, as for
-- indexes and artifacts). Manifests stored before this migration start at 0 without their
-- rows being rewritten; the platform backfill at startup reads them and sets 1, as it does
-- for a manifest whose configuration could not be read when it was pushed.
ALTER TABLE manifests ADD COLUMN platform_read INTEGER NOT NULL DEFAULT 0;
-- Only the manifests still to read: empty once the backfill is done, so finding none costs
-- nothing at later starts.
CREATE INDEX manifests_platform_unread ON manifests(digest) WHERE platform_read = 0;
