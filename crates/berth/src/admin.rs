//! Administration subcommands (`berth user …`, `berth token …`): they work directly on the
//! data directory's database, whether or not a server is running on it.

use crate::cli::{TokenCommand, UserCommand};
use crate::config::Config;
use berth_core::identity::{Identity, TokenRequest, TokenScope};
use berth_meta::SqliteMeta;
use std::io::BufRead;
use std::sync::Arc;

type CliResult = Result<(), Box<dyn std::error::Error>>;

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

async fn open(config: &Config) -> Result<Identity<SqliteMeta>, Box<dyn std::error::Error>> {
    let dir = &config.data_dir.value;
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("data directory {} is not usable: {e}", dir.display()))?;
    let meta = SqliteMeta::open(&dir.join("berth.db"))
        .await
        .map_err(|e| format!("cannot open the database in {}: {e}", dir.display()))?;
    Ok(Identity::new(Arc::new(meta)))
}

/// One line of standard input, without its line ending.
fn read_password() -> Result<String, Box<dyn std::error::Error>> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err("no password on standard input".into());
    }
    Ok(password)
}

pub fn user(config: &Config, command: UserCommand) -> CliResult {
    runtime()?.block_on(async {
        let identity = open(config).await?;
        match command {
            UserCommand::Create { name, admin, .. } => {
                let password = read_password()?;
                identity.create_user(&name, &password, admin).await?;
                println!(
                    "created user {name}{}",
                    if admin { " (site admin)" } else { "" }
                );
            }
            UserCommand::Passwd { name, .. } => {
                let password = read_password()?;
                identity.set_password(&name, &password).await?;
                println!("changed the password of {name}");
            }
        }
        Ok(())
    })
}

pub fn token(config: &Config, command: TokenCommand) -> CliResult {
    runtime()?.block_on(async {
        let identity = open(config).await?;
        match command {
            TokenCommand::Create {
                user,
                scope,
                repos,
                expires,
                name,
            } => {
                let scope: TokenScope = scope.parse()?;
                let created = identity
                    .create_token(TokenRequest {
                        user: &user,
                        label: &name,
                        scope,
                        repositories: repos,
                        expires_in_days: expires,
                    })
                    .await?;
                // The secret alone on stdout, so scripts can capture it.
                println!("{}", created.secret);
                eprintln!(
                    "token {:?} for {user}: {scope}; shown once, store it now",
                    created.record.label
                );
            }
        }
        Ok(())
    })
}
