//! The command line: global flags every subcommand accepts, and the subcommands.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "A self-hosted Docker Hub in one binary"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// TOML configuration file (also BERTH_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where Berth keeps its state (also BERTH_DATA_DIR) [default: ./berth-data].
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the registry server.
    Serve(ServeArgs),
    /// Inspect the effective configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage user accounts (works on the data directory, server running or not).
    #[command(subcommand)]
    User(UserCommand),
    /// Manage personal access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input.
    Create {
        name: String,
        /// Make the user a site administrator.
        #[arg(long)]
        admin: bool,
        /// Read the password from standard input (required: passwords never go in arguments).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Change a user's password, read from standard input.
    Passwd {
        name: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a personal access token and print it (it is shown only once).
    Create {
        user: String,
        /// repo:public_read, repo:read, repo:write or repo:admin.
        #[arg(long)]
        scope: String,
        /// Limit the token to repositories matching this pattern (`*` matches anything); repeatable.
        #[arg(long = "repo", value_name = "PATTERN")]
        repos: Vec<String>,
        /// Expire the token after this many days.
        #[arg(long, value_name = "DAYS")]
        expires: Option<u32>,
        /// A label to recognize the token by.
        #[arg(long, value_name = "LABEL", default_value = "cli")]
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (also BERTH_LISTEN) [default: 127.0.0.1:5000].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every setting with the source it came from.
    Show,
}

impl Command {
    pub fn listen_flag(&self) -> Option<&str> {
        match self {
            Command::Serve(args) => args.listen.as_deref(),
            Command::Config(_) | Command::User(_) | Command::Token(_) => None,
        }
    }
}
