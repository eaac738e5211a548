//! `berth repo …`: creating, listing, publishing and deleting repositories, and the
//! collaborators of personal ones.

use super::{permission, repository_name, CliResult, Service};
use crate::cli::{CollaboratorCommand, RepoCommand, Visibility};
use berth_core::identity::Acting;
use berth_core::ports::Permission;
use berth_oci::RepoName;

pub(super) async fn repo(
    identity: &Service,
    acting: &Acting<'_>,
    command: RepoCommand,
) -> CliResult {
    match command {
        RepoCommand::Create {
            name,
            public,
            private,
        } => {
            let repo = repository_name(&name)?;
            let visibility = match (public, private) {
                (true, _) => Some(false),
                (_, true) => Some(true),
                _ => None,
            };
            let created = identity
                .create_repository(acting, &repo, visibility)
                .await?;
            println!(
                "created {} repository {repo}",
                visibility_word(created.is_private)
            );
        }
        RepoCommand::List { namespace } => {
            for record in identity.namespace_repositories(acting, &namespace).await? {
                let repo: RepoName = record.name.parse()?;
                let settings = identity.repository_settings(acting, &repo).await?;
                println!(
                    "{}  {}  teams: {}  collaborators: {}",
                    record.name,
                    visibility_word(record.is_private),
                    grants(&settings.team_grants),
                    grants(&settings.collaborators)
                );
            }
        }
        RepoCommand::Visibility { name, visibility } => {
            let repo = repository_name(&name)?;
            let private = visibility == Visibility::Private;
            identity
                .set_repository_visibility(acting, &repo, private)
                .await?;
            println!("{repo} is {}", visibility_word(private));
        }
        RepoCommand::DefaultVisibility {
            namespace,
            visibility,
        } => {
            let private = visibility == Visibility::Private;
            identity
                .set_default_visibility(acting, &namespace, private)
                .await?;
            println!(
                "repositories pushed to {namespace} from now on are {}",
                visibility_word(private)
            );
        }
        RepoCommand::Delete { name, yes } => {
            let repo = repository_name(&name)?;
            if !yes {
                return Err(format!("deleting {repo} removes its tags for good: add --yes").into());
            }
            identity.delete_repository(acting, &repo).await?;
            println!("deleted {repo}; its blobs are left for garbage collection");
        }
        RepoCommand::Collaborator(CollaboratorCommand::Add {
            repo,
            user,
            permission: level,
        }) => {
            let level = permission(&level)?;
            let repo = repository_name(&repo)?;
            identity
                .set_collaborator(acting, &repo, &user, level)
                .await?;
            println!("{user} has {level} on {repo}");
        }
        RepoCommand::Collaborator(CollaboratorCommand::Remove { repo, user }) => {
            let repo = repository_name(&repo)?;
            if identity.remove_collaborator(acting, &repo, &user).await? {
                println!("{user} is no longer a collaborator on {repo}");
            } else {
                println!("{user} was not a collaborator on {repo}");
            }
        }
    }
    Ok(())
}

fn visibility_word(private: bool) -> &'static str {
    if private {
        "private"
    } else {
        "public"
    }
}

/// `devs=write, ops=admin`, or `none`.
fn grants(grants: &[(String, Permission)]) -> String {
    if grants.is_empty() {
        return "none".to_owned();
    }
    grants
        .iter()
        .map(|(name, level)| format!("{name}={level}"))
        .collect::<Vec<_>>()
        .join(", ")
}
