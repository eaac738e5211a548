-- Repeated identical failures (the same sign-in failing from the same address) are folded
-- into one row: how many times it happened and when it last did. `at` stays the first time.
-- Pruning by age reads `last_at`, so a row still being added to is kept.
ALTER TABLE audit_log ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit_log ADD COLUMN last_at INTEGER NOT NULL DEFAULT 0;
UPDATE audit_log SET last_at = at;
CREATE INDEX audit_log_by_last_at ON audit_log(last_at);
-- Finding the row a repeat folds into: the newest with the same address and action.
CREATE INDEX audit_log_by_address ON audit_log(address, action, id);
