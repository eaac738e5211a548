//! `berth user …` and `berth token …`: accounts, passwords, site administration and personal
//! access tokens.

use super::{instant, CliResult, Service};
use crate::cli::{TokenCommand, UserCommand};
use berth_core::identity::{Acting, CreatedToken, TokenRequest, TokenScope};
use berth_core::ports::TokenRecord;
use berth_core::time::now_unix;
use std::io::BufRead;

pub(super) async fn user(
    identity: &Service,
    acting: &Acting<'_>,
    command: UserCommand,
) -> CliResult {
    match command {
        UserCommand::Create { name, admin, .. } => {
            let password = read_password()?;
            identity
                .create_user(acting, &name, &password, admin)
                .await?;
            println!(
                "created user {name}{}",
                if admin { " (site admin)" } else { "" }
            );
        }
        UserCommand::Passwd { name, .. } => {
            let password = read_password()?;
            identity.set_password(acting, &name, &password).await?;
            println!("changed the password of {name}");
        }
        UserCommand::List => {
            for account in identity.list_users(acting).await? {
                let mut traits = Vec::new();
                if account.is_admin {
                    traits.push("site admin");
                }
                if account.totp_enabled {
                    traits.push("two-factor on");
                }
                if account.disabled {
                    traits.push("disabled");
                }
                if traits.is_empty() {
                    println!("{}", account.name);
                } else {
                    println!("{} ({})", account.name, traits.join(", "));
                }
            }
        }
        UserCommand::Admin { name, grant, .. } => {
            identity.set_admin(acting, &name, grant).await?;
            if grant {
                println!("{name} is a site admin");
            } else {
                println!("{name} is no longer a site admin");
            }
        }
        UserCommand::DisableTwoFactor { name } => {
            identity.disable_totp(acting, &name, None).await?;
            println!("turned two-factor authentication off for {name}");
        }
        UserCommand::Disable { name } => {
            if identity.set_disabled(acting, &name, true).await? {
                println!("disabled {name}: its password, tokens and sessions no longer work");
            } else {
                println!("{name} was already disabled");
            }
        }
        UserCommand::Enable { name } => {
            if identity.set_disabled(acting, &name, false).await? {
                println!("enabled {name}");
            } else {
                println!("{name} was not disabled");
            }
        }
        UserCommand::Delete { name, force } => {
            let deleted = identity.delete_user(acting, &name, force).await?;
            for repo in &deleted.repositories {
                println!("deleted repository {repo}");
            }
            println!("deleted user {name}");
        }
    }
    Ok(())
}

pub(super) async fn token(
    identity: &Service,
    acting: &Acting<'_>,
    command: TokenCommand,
) -> CliResult {
    match command {
        TokenCommand::Create { user, spec } => {
            let scope: TokenScope = spec.scope.parse()?;
            let created = identity
                .create_token(
                    acting,
                    TokenRequest {
                        user: &user,
                        label: &spec.name,
                        scope,
                        repositories: spec.repos,
                        expires_in_days: spec.expires,
                    },
                )
                .await?;
            print_secret(&created, &user);
        }
        TokenCommand::List { user } => {
            for token in identity.list_tokens(acting, &user).await? {
                println!("{}", describe_token(&token, now_unix()));
            }
        }
        TokenCommand::Revoke { user, id } => {
            if identity.revoke_token(acting, &user, id).await? {
                println!("revoked token {id} of {user}");
            } else {
                println!("token {id} of {user} was already revoked");
            }
        }
    }
    Ok(())
}

/// The secret alone on stdout, so scripts can capture it; the rest goes to stderr.
pub(super) fn print_secret(created: &CreatedToken, owner: &str) {
    println!("{}", created.secret);
    eprintln!(
        "token {} {:?} for {owner}: {}; shown once, store it now",
        created.record.id, created.record.label, created.record.scope
    );
}

/// One line per token: what it may do and its life so far.
pub(super) fn describe_token(token: &TokenRecord, now: i64) -> String {
    let repositories = if token.repositories.is_empty() {
        "all repositories".to_owned()
    } else {
        token.repositories.join(" ")
    };
    let status = match (token.revoked_at, token.expires_at) {
        (Some(at), _) => format!("revoked {}", instant(Some(at))),
        (None, Some(at)) if at <= now => "expired".to_owned(),
        (None, _) => "active".to_owned(),
    };
    format!(
        "{}  {:?}  {}  {}  created {}  expires {}  last used {}  {}",
        token.id,
        token.label,
        token.scope,
        repositories,
        instant(Some(token.created_at)),
        instant(token.expires_at),
        instant(token.last_used_at),
        status
    )
}

/// One line of standard input, without its line ending.
pub(super) fn read_password() -> CliResult<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err("no password on standard input".into());
    }
    Ok(password)
}
