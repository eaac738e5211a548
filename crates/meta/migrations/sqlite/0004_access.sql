-- Identity and access: namespaces (users and organizations share one name space), teams,
-- per-repository grants, collaborators, repository visibility, organization tokens,
-- refresh tokens, the audit log and the token-service signing key.

ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_enabled INTEGER NOT NULL DEFAULT 0;

CREATE TABLE organizations (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

-- Exactly one of user_id / org_id is set; the unique name keeps users and organizations apart.
CREATE TABLE namespaces (
    name            TEXT PRIMARY KEY,
    user_id         INTEGER UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    org_id          INTEGER UNIQUE REFERENCES organizations(id) ON DELETE CASCADE,
    default_private INTEGER NOT NULL DEFAULT 1,
    created_at      INTEGER NOT NULL,
    CHECK ((user_id IS NULL) <> (org_id IS NULL))
) WITHOUT ROWID;

INSERT INTO namespaces (name, user_id, default_private, created_at)
    SELECT name, id, 1, created_at FROM users;

CREATE TABLE teams (
    id          INTEGER PRIMARY KEY,
    org_id      INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    UNIQUE (org_id, name)
);

CREATE TABLE team_members (
    team_id INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (team_id, user_id)
) WITHOUT ROWID;
CREATE INDEX team_members_by_user ON team_members(user_id);

-- The official-images namespace: an organization whose owners team starts empty, so only
-- site admins write there until they delegate. Its repositories are public by default.
-- A user already named `library` keeps the name (and the namespace).
INSERT INTO organizations (name, created_at)
    SELECT 'library', 0 WHERE NOT EXISTS (SELECT 1 FROM namespaces WHERE name = 'library');
INSERT INTO namespaces (name, org_id, default_private, created_at)
    SELECT 'library', id, 0, 0 FROM organizations WHERE name = 'library';
INSERT INTO teams (org_id, name, description)
    SELECT id, 'owners', 'Owners of the organization' FROM organizations WHERE name = 'library';

-- Repositories created before access control existed were readable by everyone; they stay so.
ALTER TABLE repositories ADD COLUMN is_private INTEGER NOT NULL DEFAULT 0;
ALTER TABLE repositories ADD COLUMN namespace TEXT NOT NULL DEFAULT '';
UPDATE repositories SET namespace =
    CASE WHEN instr(name, '/') > 0 THEN substr(name, 1, instr(name, '/') - 1) ELSE name END;
CREATE INDEX repositories_by_namespace ON repositories(namespace, name);
CREATE INDEX repositories_public ON repositories(name) WHERE is_private = 0;

CREATE TABLE team_repositories (
    team_id       INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    permission    TEXT NOT NULL CHECK (permission IN ('read', 'write', 'admin')),
    PRIMARY KEY (team_id, repository_id)
) WITHOUT ROWID;
CREATE INDEX team_repositories_by_repository ON team_repositories(repository_id);

CREATE TABLE collaborators (
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    permission    TEXT NOT NULL CHECK (permission IN ('read', 'write', 'admin')),
    PRIMARY KEY (repository_id, user_id)
) WITHOUT ROWID;
CREATE INDEX collaborators_by_user ON collaborators(user_id);

-- An organization access token acts for the organization; user_id is its creator.
ALTER TABLE access_tokens ADD COLUMN org_id INTEGER REFERENCES organizations(id) ON DELETE CASCADE;
CREATE INDEX access_tokens_by_org ON access_tokens(org_id) WHERE org_id IS NOT NULL;

CREATE TABLE refresh_tokens (
    id              INTEGER PRIMARY KEY,
    user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    access_token_id INTEGER REFERENCES access_tokens(id) ON DELETE CASCADE,
    token_hash      TEXT NOT NULL UNIQUE,
    created_at      INTEGER NOT NULL,
    revoked_at      INTEGER
);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens(user_id);

CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    detail  TEXT,
    address TEXT
);
CREATE INDEX audit_log_by_actor ON audit_log(actor, id);
CREATE INDEX audit_log_by_target ON audit_log(target, id);

-- One row: the Ed25519 seed the token service signs with, shared by every node.
CREATE TABLE signing_keys (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    secret     BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
