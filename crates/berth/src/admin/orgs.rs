//! `berth org …` and `berth team …`: organizations, their access tokens, teams, members and
//! the teams' repository permissions.

use super::accounts::{describe_token, print_secret};
use super::{permission, repository_name, CliResult, Service};
use crate::cli::{OrgCommand, OrgTokenCommand, TeamCommand};
use berth_core::identity::{Acting, OrgTokenRequest, TokenScope};
use berth_core::time::now_unix;

pub(super) async fn org(identity: &Service, acting: &Acting<'_>, command: OrgCommand) -> CliResult {
    match command {
        OrgCommand::Create { org, owner } => {
            identity.create_org(acting, &org, Some(&owner)).await?;
            println!("created organization {org} owned by {owner}");
        }
        OrgCommand::List => {
            for org in identity.list_orgs(acting).await? {
                println!("{}", org.name);
            }
        }
        OrgCommand::Token(command) => org_token(identity, acting, command).await?,
    }
    Ok(())
}

async fn org_token(identity: &Service, acting: &Acting<'_>, command: OrgTokenCommand) -> CliResult {
    match command {
        OrgTokenCommand::Create { org, spec } => {
            let scope: TokenScope = spec.scope.parse()?;
            let created = identity
                .create_org_token(
                    acting,
                    OrgTokenRequest {
                        org: &org,
                        label: &spec.name,
                        scope,
                        repositories: spec.repos,
                        expires_in_days: spec.expires,
                    },
                )
                .await?;
            print_secret(&created, &org);
        }
        OrgTokenCommand::List { org } => {
            for token in identity.list_org_tokens(acting, &org).await? {
                println!("{}", describe_token(&token, now_unix()));
            }
        }
        OrgTokenCommand::Revoke { org, id } => {
            if identity.revoke_org_token(acting, &org, id).await? {
                println!("revoked token {id} of {org}");
            } else {
                println!("token {id} of {org} was already revoked");
            }
        }
    }
    Ok(())
}

pub(super) async fn team(
    identity: &Service,
    acting: &Acting<'_>,
    command: TeamCommand,
) -> CliResult {
    match command {
        TeamCommand::Create {
            org,
            team,
            description,
        } => {
            identity
                .create_team(acting, &org, &team, &description)
                .await?;
            println!("created team {team} in {org}");
        }
        TeamCommand::Delete { org, team } => {
            identity.delete_team(acting, &org, &team).await?;
            println!("deleted team {team} of {org}");
        }
        TeamCommand::List { org } => {
            for team in identity.list_teams(acting, &org).await? {
                let members = identity.team_members(acting, &org, &team.name).await?;
                let mut line = format!("{}: ", team.name);
                if members.is_empty() {
                    line.push_str("no members");
                } else {
                    line.push_str(&members.join(", "));
                }
                if !team.description.is_empty() {
                    line.push_str(&format!("  ({})", team.description));
                }
                println!("{line}");
            }
        }
        TeamCommand::Add { org, team, user } => {
            if identity.add_team_member(acting, &org, &team, &user).await? {
                println!("added {user} to {org}/{team}");
            } else {
                println!("{user} already is in {org}/{team}");
            }
        }
        TeamCommand::Remove { org, team, user } => {
            if identity
                .remove_team_member(acting, &org, &team, &user)
                .await?
            {
                println!("removed {user} from {org}/{team}");
            } else {
                println!("{user} is not in {org}/{team}");
            }
        }
        TeamCommand::Grant {
            org,
            team,
            repo,
            permission: level,
        } => {
            let level = permission(&level)?;
            let repo = repository_name(&repo)?;
            identity
                .grant_team(acting, &org, &team, &repo, level)
                .await?;
            println!("{org}/{team} has {level} on {repo}");
        }
        TeamCommand::Revoke { org, team, repo } => {
            let repo = repository_name(&repo)?;
            if identity.revoke_team(acting, &org, &team, &repo).await? {
                println!("{org}/{team} no longer has access to {repo}");
            } else {
                println!("{org}/{team} had no permission on {repo}");
            }
        }
    }
    Ok(())
}
