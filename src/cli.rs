//! The command line: run the daemon, check a config, explain a statement's route, print the
//! version. `scripts/gen-docs` renders the man page and shell completions from these definitions.

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Where pgsplit looks for its config when none is named: the working directory.
pub const DEFAULT_CONFIG: &str = "pgsplit.toml";

/// pgsplit: a read/write-splitting PostgreSQL proxy.
#[derive(Debug, Parser)]
#[command(name = "pgsplit", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// The config file, as `pgsplit FILE` (the same as `--config FILE`).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The config file [default: pgsplit.toml in the working directory].
    #[arg(long, short, global = true, env = "PGSPLIT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The log level, over the config's `[log] level` and RUST_LOG.
    #[arg(long, global = true, value_name = "LEVEL", value_parser = ["error", "warn", "info", "debug", "trace"])]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Shown under `--help`: where to start.
const AFTER_HELP: &str = "config/pgsplit.example.toml in pgsplit's repository documents every config key.";

impl Cli {
    /// Parses a command line. `pgsplit FILE` takes the place of PGSPLIT_CONFIG, but naming the
    /// file both ways on the command line is an error.
    pub fn try_parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Cli::command().try_get_matches_from(args)?;
        let cli = Cli::from_arg_matches(&matches)?;
        if cli.file.is_some() && matches.value_source("config") == Some(ValueSource::CommandLine) {
            let message = "the config file is named twice: give FILE or --config FILE, not both";
            return Err(Cli::command().error(clap::error::ErrorKind::ArgumentConflict, message));
        }
        Ok(cli)
    }

    /// The config file to read, and whether it was named (else it is the default).
    pub fn config_path(&self) -> (PathBuf, bool) {
        match self.file.as_ref().or(self.config.as_ref()) {
            Some(path) => (path.clone(), true),
            None => (PathBuf::from(DEFAULT_CONFIG), false),
        }
    }
}

/// What to do; running the daemon when none is given.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy (the default).
    Run,
    /// Validate the config file and print the effective configuration.
    CheckConfig,
    /// Show how a statement would be routed, and why. Needs no secrets: an unset `${VAR}` in
    /// the config is taken as a placeholder.
    Explain {
        /// The SQL statement.
        sql: String,
        /// The database it runs in (default: the only or first configured).
        #[arg(long, short)]
        database: Option<String>,
        /// The user running it.
        #[arg(long, short, default_value = "")]
        user: String,
        /// The client's application_name.
        #[arg(long, default_value = "")]
        application_name: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_may_be_given_bare_or_with_config() {
        let bare = Cli::try_parse_args(["pgsplit", "my.toml"]).unwrap();
        assert_eq!(bare.config_path(), (PathBuf::from("my.toml"), true));
        assert!(bare.command.is_none());
        let flag = Cli::try_parse_args(["pgsplit", "--config", "my.toml", "check-config"]).unwrap();
        assert_eq!(flag.config_path(), (PathBuf::from("my.toml"), true));
        let twice = Cli::try_parse_args(["pgsplit", "a.toml", "--config", "b.toml"]).unwrap_err();
        assert!(twice.to_string().contains("named twice"), "{twice}");
    }

    #[test]
    fn log_level_takes_the_five_levels() {
        let cli = Cli::try_parse_from(["pgsplit", "--log-level", "debug", "x.toml"]).unwrap();
        assert_eq!(cli.log_level.as_deref(), Some("debug"));
        assert!(Cli::try_parse_from(["pgsplit", "--log-level", "loud"]).is_err());
    }
}
