-- A password change ends the sign-ins made with the old password, and each two-factor code
-- signs in once. Both are plain columns of the user row every sign-in already reads, so
-- neither check costs a query; existing rows get the defaults without being rewritten.

-- Unix seconds of the last password change: web UI sessions and API tokens signed in with a
-- password and issued before it are refused. 0: never changed, nothing to refuse.
ALTER TABLE users ADD COLUMN sessions_valid_from INTEGER NOT NULL DEFAULT 0;
-- The last 30 s TOTP time step whose code was accepted; only a code of a later step is
-- accepted next. 0: none yet (a new or cleared secret starts over).
ALTER TABLE users ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0;
