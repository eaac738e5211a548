-- Mirrors SQLite 0023: a rule may cap the bytes per second its runs copy.
ALTER TABLE replication_rules ADD COLUMN bandwidth_limit BIGINT CHECK (bandwidth_limit IS NULL OR bandwidth_limit > 0);
