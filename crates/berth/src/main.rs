//! The `berth` binary: parses the command line and runs a subcommand.

mod admin;
mod cli;
mod config;
mod memory;
mod probe;
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
