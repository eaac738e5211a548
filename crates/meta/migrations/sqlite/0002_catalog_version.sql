-- A counter bumped in the same transaction as every change to the set of repositories,
-- so a cached catalog can tell with one indexed read whether it is still current.
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counters (name, value) VALUES ('repositories', 0);
