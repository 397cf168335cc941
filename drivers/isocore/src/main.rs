//! The `isocore` command.

mod demo;

use std::process::ExitCode;

const USAGE: &str = "\
isocore: a node for local-first applications

USAGE:
    isocore demo [--quiet]    replicate a channel writer -> relay -> readers, live, in memory
    isocore help              show this message
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") => {
            let quiet = args[1..].iter().any(|a| a == "--quiet" || a == "-q");
            if let Some(bad) = args[1..].iter().find(|a| !matches!(a.as_str(), "--quiet" | "-q")) {
                eprintln!("isocore demo: unknown argument `{bad}`\n\n{USAGE}");
                return ExitCode::from(2);
            }
            match demo::run(quiet) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("isocore demo: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("help" | "--help" | "-h") | None => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("isocore: unknown command `{other}`\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
