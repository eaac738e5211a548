-- Sign-ins end when they should: a counter that every credential change moves, accounts a
-- site admin disabled, web sessions ended by signing out, and two-factor recovery codes.

-- Moves by one whenever every sign-in made before must end (a password change, the account
-- disabled). Sign-in tokens carry the value they were issued at and are refused once it
-- moved: a counter, unlike a timestamp, cannot let a sign-in of the same second through and
-- does not depend on the nodes' clocks agreeing.
ALTER TABLE users ADD COLUMN credential_generation INTEGER NOT NULL DEFAULT 0;
-- Unix seconds when a site admin disabled the account; NULL: enabled.
ALTER TABLE users ADD COLUMN disabled_at INTEGER;

-- Web sessions ended by signing out, by the session token's `jti`, until the token would
-- have expired anyway (then the row is pruned).
CREATE TABLE ended_sessions (
    jti        TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX ended_sessions_by_expiry ON ended_sessions(expires_at);

-- Two-factor recovery codes, stored only as the SHA-256 of the code; each is used once.
CREATE TABLE recovery_codes (
    id        INTEGER PRIMARY KEY,
    user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at   INTEGER
);
CREATE INDEX recovery_codes_by_user ON recovery_codes(user_id);
