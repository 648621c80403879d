//! The `sparkq` binary: parse, run, and turn the outcome into an exit code
//! (0 done, 1 nothing to peek or claim, 2 any error).

use std::process::ExitCode;

use sparkq::cli::Command;
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
    if !matches!(inv.command, Command::Run { .. }) {
        quiet_on_broken_pipe();
    }
    match commands::execute(inv) {
        Ok(Done::Ok) => ExitCode::SUCCESS,
        Ok(Done::Nothing) => ExitCode::from(1),
        Err(e) => {
            eprintln!("sparkq: {e}");
            ExitCode::from(2)
        }
    }
}

/// Lets a command piped into `head` end quietly, as other command-line tools
/// do, instead of panicking on its next print. Not for `run`: the server must
/// live through clients that hang up.
fn quiet_on_broken_pipe() {
    extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }
    const SIGPIPE: i32 = 13;
    const SIG_DFL: usize = 0;
    // SAFETY: restores the default action of one signal; no handler runs.
    unsafe {
        signal(SIGPIPE, SIG_DFL);
    }
}
