-- Multi-platform builds on PostgreSQL: SQLite's migration 0025 (the platforms a rule builds
-- for and a build built for, JSON lists of os/arch[/variant]; empty: the machine's own).
ALTER TABLE build_rules ADD COLUMN platforms TEXT NOT NULL DEFAULT '[]';
ALTER TABLE builds ADD COLUMN platforms TEXT NOT NULL DEFAULT '[]';
