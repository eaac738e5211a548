//! The `berth` binary: parses the command line and runs a subcommand.

mod admin;
mod backends;
mod backup;
mod cli;
mod config;
mod datadir;
mod fsck;
mod memory;
#[cfg(feature = "postgres")]
mod migrate;
mod probe;
mod restore;
mod secrets;
mod serve;
mod tls;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    memory::tune_allocator();
    let cli = cli::Cli::parse();
    let config = match config::Config::load(&cli.global, cli.command.listen_flag()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        cli::Command::Serve(_) => serve::run(config).map_err(Into::into),
        cli::Command::Config(cli::ConfigCommand::Show) => {
            print!("{}", config.describe());
            Ok(())
        }
        cli::Command::Admin(command) => admin::run(&config, command),
        cli::Command::Backup(args) => backup::run(&config, &args),
        cli::Command::Restore(args) => restore::run(&config, &args),
        #[cfg(feature = "postgres")]
        cli::Command::Migrate(args) => migrate::run(&config, &args),
        #[cfg(not(feature = "postgres"))]
        cli::Command::Migrate(_) => Err("berth migrate copies into PostgreSQL, and this berth was built without the cargo feature `postgres`".into()),
        cli::Command::Fsck(args) => match fsck::run(&config, &args) {
            // Problems found (and not all repaired) are a failure without an error line:
            // the report said what they are.
            Ok(false) => return ExitCode::FAILURE,
            Ok(true) => Ok(()),
            Err(err) => Err(err),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
