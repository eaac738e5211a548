-- Pull rate limits: plans per account or organization, and the ledger through which nodes
-- share what they spent.

-- A plan replaces the tier of one account or organization. `pulls` NULL: unlimited.
CREATE TABLE rate_plans (
    namespace    TEXT PRIMARY KEY REFERENCES namespaces(name) ON DELETE CASCADE,
    pulls        INTEGER CHECK (pulls IS NULL OR pulls > 0),
    window_secs  INTEGER CHECK (window_secs IS NULL OR window_secs > 0),
    updated_by   TEXT NOT NULL,
    updated_at   INTEGER NOT NULL,
    CHECK ((pulls IS NULL) = (window_secs IS NULL))
) WITHOUT ROWID;

-- What each node (one serving process) spent on each allowance, appended about once a
-- second by every node that served counted pulls, read by the others (and by a restarted
-- node). `advance_us` is how far the allowance's GCRA time moved on. Rows older than the
-- longest window are deleted as new ones come in.
CREATE TABLE rate_limit_ledger (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    node        TEXT NOT NULL,
    key         TEXT NOT NULL,
    at_us       INTEGER NOT NULL,
    advance_us  INTEGER NOT NULL
);
CREATE INDEX rate_limit_ledger_by_time ON rate_limit_ledger(at_us);
