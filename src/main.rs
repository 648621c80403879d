//! The `sparkq` binary: parse, run, and turn the outcome into an exit code
//! (0 done, 1 nothing to peek or claim, 2 any error).

use std::process::ExitCode;

use sparkq::commands::{self, Done};

fn main() -> ExitCode {
    sparkq::log::init_from_env();
    let inv = match sparkq::cli::parse_env() {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("sparkq: {e}\n\nrun 'sparkq --help' for usage");
            return ExitCode::from(2);
        }
    };
    match commands::execute(inv) {
        Ok(Done::Ok) => ExitCode::SUCCESS,
        Ok(Done::Nothing) => ExitCode::from(1),
        Err(e) => {
            eprintln!("sparkq: {e}");
            ExitCode::from(2)
        }
    }
}
