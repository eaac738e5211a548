-- The Hub: descriptions, stars, pull activity, verified publishers, and full-text search.

ALTER TABLE repositories ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE repositories ADD COLUMN pull_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE repositories ADD COLUMN star_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE repositories ADD COLUMN last_pushed_at INTEGER;
ALTER TABLE repositories ADD COLUMN last_pulled_at INTEGER;
-- The name without its namespace (`nginx` for `library/nginx`; empty for one-component
-- names): a query equal to it is an exact match, found through this index.
ALTER TABLE repositories ADD COLUMN short_name TEXT
    GENERATED ALWAYS AS (substr(name, length(namespace) + 2)) VIRTUAL;
CREATE INDEX repositories_by_short_name ON repositories(short_name);

-- The README lives apart so repository rows stay small: search reads thousands of them per
-- query, and a long README would push the columns after it into overflow pages.
CREATE TABLE repository_readmes (
    repository_id    INTEGER PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    full_description TEXT NOT NULL
);

-- Listings, and searches that match many repositories, walk one of these in the order asked
-- and stop after a page.
CREATE INDEX repositories_by_popularity ON repositories(
    ((1.0 + star_count) * (1.0 + star_count) * (1.0 + pull_count)) DESC, name);
CREATE INDEX repositories_by_stars ON repositories(star_count DESC, pull_count DESC, name);
CREATE INDEX repositories_by_pulls ON repositories(pull_count DESC, star_count DESC, name);
CREATE INDEX repositories_by_last_push ON repositories(last_pushed_at DESC, name);

ALTER TABLE tags ADD COLUMN last_pulled_at INTEGER;

ALTER TABLE organizations ADD COLUMN verified INTEGER NOT NULL DEFAULT 0;

UPDATE repositories SET last_pushed_at = (
    SELECT max(pushed_at) FROM (
        SELECT pushed_at FROM repository_manifests WHERE repository_id = repositories.id
        UNION ALL
        SELECT pushed_at FROM tags WHERE repository_id = repositories.id));

CREATE TABLE stars (
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (user_id, repository_id)
) WITHOUT ROWID;
CREATE INDEX stars_by_repository ON stars(repository_id);

-- star_count is what listings sort and filter on, so it is kept in step with the stars
-- rather than counted per query; deletions by cascade (a user removed) fire these too.
CREATE TRIGGER stars_count_insert AFTER INSERT ON stars BEGIN
    UPDATE repositories SET star_count = star_count + 1 WHERE id = new.repository_id;
END;
CREATE TRIGGER stars_count_delete AFTER DELETE ON stars BEGIN
    UPDATE repositories SET star_count = star_count - 1 WHERE id = old.repository_id;
END;

-- Search over name words and the short description. The index reads its text from the
-- repositories table (external content), so the triggers below must hand it the old values
-- on every change. It also holds each repository's visibility as a word (`public` or
-- `private`), so counting the public matches of a query needs no repository row at all.
-- The prefix indexes serve "starts with" queries of up to three characters without walking
-- every term.
ALTER TABLE repositories ADD COLUMN visibility TEXT
    GENERATED ALWAYS AS (CASE WHEN is_private = 0 THEN 'public' ELSE 'private' END) VIRTUAL;
CREATE VIRTUAL TABLE repository_search USING fts5(
    name, description, visibility,
    content = 'repositories', content_rowid = 'id',
    prefix = '1 2 3'
);
INSERT INTO repository_search (repository_search) VALUES ('rebuild');

CREATE TRIGGER repositories_search_insert AFTER INSERT ON repositories BEGIN
    INSERT INTO repository_search (rowid, name, description, visibility)
        VALUES (new.id, new.name, new.description, new.visibility);
END;
CREATE TRIGGER repositories_search_delete AFTER DELETE ON repositories BEGIN
    INSERT INTO repository_search (repository_search, rowid, name, description, visibility)
        VALUES ('delete', old.id, old.name, old.description, old.visibility);
END;
-- Only what the index holds touches it: pull counts change far more often.
CREATE TRIGGER repositories_search_update
    AFTER UPDATE OF name, description, is_private ON repositories
    WHEN old.name IS NOT new.name OR old.description IS NOT new.description
        OR old.is_private IS NOT new.is_private BEGIN
    INSERT INTO repository_search (repository_search, rowid, name, description, visibility)
        VALUES ('delete', old.id, old.name, old.description, old.visibility);
    INSERT INTO repository_search (rowid, name, description, visibility)
        VALUES (new.id, new.name, new.description, new.visibility);
END;
