-- Content lifecycle, second part: the collector's mark count, pulls of manifests, and
-- retention runs recorded from their start.

-- Bumped in every transaction in which the collector marks blobs. A link reads it before
-- checking the blob's bytes outside its transaction, and again inside: unchanged means no
-- collector has marked (so none can have deleted) anything in between, and the check made
-- outside the writer still holds.
INSERT OR IGNORE INTO counters (name, value) VALUES ('gc_marks', 0);

-- When a manifest of a repository was last pulled, by tag or by digest: what "pulled within
-- D days" reads for manifests no tag points at.
ALTER TABLE repository_manifests ADD COLUMN last_pulled_at INTEGER;

-- A real run is recorded when it starts (`finished` 0, `error` saying it was interrupted),
-- each repository's deletions are added to it in the transaction that makes them, and the
-- end of the run clears the error. A run cut short by a crash therefore stays in the history
-- as interrupted, listing exactly what it deleted.
ALTER TABLE retention_runs ADD COLUMN finished INTEGER NOT NULL DEFAULT 1;
