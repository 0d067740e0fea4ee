//! The command line: run the daemon, check a config, print the version.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// pgsplit: a read/write-splitting PostgreSQL proxy.
#[derive(Debug, Parser)]
#[command(name = "pgsplit", version, about)]
pub struct Cli {
    /// The config file.
    #[arg(long, short, global = true, env = "PGSPLIT_CONFIG", default_value = "pgsplit.toml")]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do; running the daemon when none is given.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy (the default).
    Run,
    /// Validate the config file and print the effective configuration.
    CheckConfig,
    /// Show how a statement would be routed, and why.
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
