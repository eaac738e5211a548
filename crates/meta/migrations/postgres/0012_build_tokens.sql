-- The access tokens made for each build on PostgreSQL: SQLite's migration 0027 (whichever
-- node fails a build a dead node left behind revokes them in the same transaction).
CREATE TABLE build_tokens (
    build_id BIGINT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
    token_id BIGINT NOT NULL REFERENCES access_tokens(id) ON DELETE CASCADE,
    PRIMARY KEY (build_id, token_id)
);
