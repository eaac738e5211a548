-- Pull replication needs no new column (direction already allows 'pull'); a rule may cap the
-- bytes per second its runs copy.
ALTER TABLE replication_rules ADD COLUMN bandwidth_limit INTEGER CHECK (bandwidth_limit IS NULL OR bandwidth_limit > 0);
