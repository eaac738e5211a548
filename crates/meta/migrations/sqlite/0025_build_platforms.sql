-- Multi-platform builds (issue 17): the platforms a rule builds for and a build built for,
-- as JSON lists of os/arch[/variant]; empty: the machine's own platform.
ALTER TABLE build_rules ADD COLUMN platforms TEXT NOT NULL DEFAULT '[]';
ALTER TABLE builds ADD COLUMN platforms TEXT NOT NULL DEFAULT '[]';
