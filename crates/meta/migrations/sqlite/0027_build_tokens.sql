-- The access tokens made for each build (issue 17), so that whichever node fails a build
-- its runner left behind (a crash, a node that died) revokes them in the same transaction:
-- the dead node's work directory, which named them before, is out of reach of the others.
CREATE TABLE build_tokens (
    build_id INTEGER NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
    token_id INTEGER NOT NULL REFERENCES access_tokens(id) ON DELETE CASCADE,
    PRIMARY KEY (build_id, token_id)
);
