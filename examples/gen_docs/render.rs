//! Renders the man pages and shell completions from the clap definition in `pgsplit::cli`, so
//! they cannot drift from what the binary accepts.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use pgsplit::cli::Cli;

/// Writes `DIR/man/pgsplit.1` (with a page per subcommand) and `DIR/completions/` for bash,
/// zsh, fish, elvish and PowerShell; returns the files written.
pub fn write_all(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    clap_mangen::generate_to(Cli::command(), &man)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&man)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    files.sort();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish, Shell::Elvish, Shell::PowerShell] {
        files.push(clap_complete::generate_to(shell, &mut Cli::command(), "pgsplit", &completions)?);
    }
    Ok(files)
}
