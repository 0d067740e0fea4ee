//! `scripts/gen-docs`: writes pgsplit's man pages and shell completions into a directory.

mod render;

fn main() -> std::process::ExitCode {
    let dir = std::env::args_os().nth(1).unwrap_or_else(|| "target/docs".into());
    match render::write_all(std::path::Path::new(&dir)) {
        Ok(files) => {
            files.iter().for_each(|f| println!("{}", f.display()));
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen-docs: cannot write to {}: {e}", std::path::Path::new(&dir).display());
            std::process::ExitCode::FAILURE
        }
    }
}
