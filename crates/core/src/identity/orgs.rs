//! Organizations and their teams: creating them, membership, and who may change them
//! (the organization's owners and site admins).

use super::{validate_team_name, validate_username, Acting, Identity};
use crate::access::owns_namespace;
use crate::error::{Error, Result};
use crate::ports::{IdentityStore, NamespaceOwner, OrgRecord, TeamRecord, OWNERS_TEAM};
use serde_json::json;

impl<S: IdentityStore + ?Sized> Identity<S> {
    /// Creates an organization with `owner` (by default the caller) in its owners team. Any
    /// signed-in user may create one for themselves; only site admins for someone else.
    pub async fn create_org(
        &self,
        acting: &Acting<'_>,
        name: &str,
        owner: Option<&str>,
    ) -> Result<OrgRecord> {
        let (caller_id, caller) = acting.user_with_full_authority()?;
        let owner_id = match owner {
            Some(owner) if owner != caller || acting.is_cli() => {
                acting.require_site_admin()?;
                self.user_record(owner).await?.id
            }
            _ if acting.is_cli() => {
                return Err(Error::AccountInvalid(
                    "an organization needs an owner".to_owned(),
                ))
            }
            _ => caller_id,
        };
        validate_username(name)?;
        let org = self
            .store
            .create_org(name, owner_id, self.now_unix())
            .await?;
        let owner = owner.unwrap_or(caller);
        self.audit
            .record_by(acting, "org.create", name, json!({ "owner": owner }))
            .await;
        Ok(org)
    }

    /// Every organization for site admins; the caller's own for everyone else.
    pub async fn list_orgs(&self, acting: &Acting<'_>) -> Result<Vec<OrgRecord>> {
        let (id, _) = acting.user()?;
        Ok(if acting.principal.is_site_admin() {
            self.store.list_orgs().await?
        } else {
            self.store.orgs_of_user(id).await?
        })
    }

    /// One organization; names of namespaces are public, like the repositories in them.
    pub async fn org(&self, _acting: &Acting<'_>, name: &str) -> Result<OrgRecord> {
        self.org_record(name).await
    }

    /// Creates a team (organization owners and site admins).
    pub async fn create_team(
        &self,
        acting: &Acting<'_>,
        org: &str,
        team: &str,
        description: &str,
    ) -> Result<TeamRecord> {
        let org = self.org_for_owner(acting, org).await?;
        validate_team_name(team)?;
        let record = self.store.create_team(org.id, team, description).await?;
        self.audit
            .record_by(
                acting,
                "team.create",
                &team_target(&org.name, team),
                json!({ "description": description }),
            )
            .await;
        Ok(record)
    }

    /// Deletes a team with its memberships and grants; the owners team stays.
    pub async fn delete_team(&self, acting: &Acting<'_>, org: &str, team: &str) -> Result<()> {
        let org = self.org_for_owner(acting, org).await?;
        if team == OWNERS_TEAM {
            return Err(Error::AccountInvalid(format!(
                "the {OWNERS_TEAM} team cannot be deleted"
            )));
        }
        let record = self.team_record(&org, team).await?;
        if !self
            .store
            .delete_team(record.id, Some(&acting.actor_name()))
            .await?
        {
            return Err(team_unknown(&org.name, team));
        }
        self.audit
            .record_by(
                acting,
                "team.delete",
                &team_target(&org.name, team),
                serde_json::Value::Null,
            )
            .await;
        Ok(())
    }

    /// The organization's teams, by name (its members and site admins).
    pub async fn list_teams(&self, acting: &Acting<'_>, org: &str) -> Result<Vec<TeamRecord>> {
        let org = self.org_for_member(acting, org).await?;
        Ok(self.store.teams(org.id).await?)
    }

    /// A team's member names, sorted (the organization's members and site admins).
    pub async fn team_members(
        &self,
        acting: &Acting<'_>,
        org: &str,
        team: &str,
    ) -> Result<Vec<String>> {
        let org = self.org_for_member(acting, org).await?;
        let record = self.team_record(&org, team).await?;
        Ok(self.store.team_members(record.id).await?)
    }

    /// Adds a user to a team; false if they already were in it.
    pub async fn add_team_member(
        &self,
        acting: &Acting<'_>,
        org: &str,
        team: &str,
        user: &str,
    ) -> Result<bool> {
        let org = self.org_for_owner(acting, org).await?;
        let record = self.team_record(&org, team).await?;
        let member = self.user_record(user).await?;
        let added = self
            .store
            .add_team_member(record.id, member.id, Some(&acting.actor_name()))
            .await?;
        if added {
            self.audit
                .record_by(
                    acting,
                    "team.member.add",
                    &team_target(&org.name, team),
                    json!({ "user": user }),
                )
                .await;
        }
        Ok(added)
    }

    /// Removes a user from a team; false if they were not in it. The last owner stays, so
    /// every organization keeps someone who can manage it.
    pub async fn remove_team_member(
        &self,
        acting: &Acting<'_>,
        org: &str,
        team: &str,
        user: &str,
    ) -> Result<bool> {
        let org = self.org_for_owner(acting, org).await?;
        let record = self.team_record(&org, team).await?;
        let member = self.user_record(user).await?;
        if team == OWNERS_TEAM {
            let owners = self.store.team_members(record.id).await?;
            if owners.len() == 1 && owners[0] == user {
                return Err(Error::AccountInvalid(format!(
                    "{user} is the last owner of {}; add another owner first",
                    org.name
                )));
            }
        }
        let removed = self
            .store
            .remove_team_member(record.id, member.id, Some(&acting.actor_name()))
            .await?;
        if removed {
            self.audit
                .record_by(
                    acting,
                    "team.member.remove",
                    &team_target(&org.name, team),
                    json!({ "user": user }),
                )
                .await;
        }
        Ok(removed)
    }

    /// The organization, when the caller may manage it: an owner or a site admin, acting with
    /// the account's full authority.
    pub(super) async fn org_for_owner(&self, acting: &Acting<'_>, name: &str) -> Result<OrgRecord> {
        let (user_id, _) = acting.user_with_full_authority()?;
        let org = self.org_record(name).await?;
        if acting.principal.is_site_admin() {
            return Ok(org);
        }
        let owns_org = self.store.is_org_owner(org.id, user_id).await?;
        let namespace = Some(NamespaceOwner::Organization(org.id));
        if owns_namespace(&acting.principal.actor, namespace, owns_org) {
            Ok(org)
        } else {
            Err(Error::Denied)
        }
    }

    /// The organization, when the caller belongs to it (through any team) or is a site admin.
    async fn org_for_member(&self, acting: &Acting<'_>, name: &str) -> Result<OrgRecord> {
        let (user_id, _) = acting.user()?;
        let org = self.org_record(name).await?;
        if acting.principal.is_site_admin() {
            return Ok(org);
        }
        let member = self
            .store
            .orgs_of_user(user_id)
            .await?
            .iter()
            .any(|o| o.id == org.id);
        if member {
            Ok(org)
        } else {
            Err(Error::Denied)
        }
    }

    async fn org_record(&self, name: &str) -> Result<OrgRecord> {
        self.store
            .org_by_name(name)
            .await?
            .ok_or_else(|| Error::AccountUnknown(name.to_owned()))
    }

    pub(super) async fn team_record(&self, org: &OrgRecord, team: &str) -> Result<TeamRecord> {
        self.store
            .team(org.id, team)
            .await?
            .ok_or_else(|| team_unknown(&org.name, team))
    }
}

/// How the audit log names a team.
fn team_target(org: &str, team: &str) -> String {
    format!("{org}/{team}")
}

fn team_unknown(org: &str, team: &str) -> Error {
    Error::TeamUnknown {
        org: org.to_owned(),
        team: team.to_owned(),
    }
}
