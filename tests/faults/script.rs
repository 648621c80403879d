//! `scripts/faults.sh`, the SIGKILL fault script, run for a few cycles so
//! the suite covers it; the 100-cycle run is done by hand.

use std::path::Path;
use std::process::Command;

use crate::support::{run, BIN};

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join("faults.sh")
}

fn have_python() -> bool {
    Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn the_fault_script_kills_and_restarts_the_server_and_loses_nothing() {
    if !have_python() {
        eprintln!("SKIPPED the_fault_script: python3 is not installed; scripts/faults.sh needs it");
        return;
    }
    let mut cmd = Command::new("bash");
    cmd.arg(script()).args(["--cycles", "3", "--seconds-per-cycle", "1.5", "--bin", BIN]);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    let out = run(cmd, &["faults.sh", "--cycles", "3"]);
    assert_eq!(out.code, 0, "{out}");
    let last = out.stdout.lines().last().unwrap_or_default();
    let field = |k: &str| {
        last.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k}= in the last line: {out}"))
            .to_string()
    };
    assert!(last.starts_with("faults: "), "{out}");
    assert_eq!(field("cycles"), "3", "{out}");
    assert_eq!(field("lost"), "0", "{out}");
    assert_eq!(field("double_claims"), "0", "{out}");
    assert_eq!(field("bad_states"), "0", "{out}");
    assert_eq!(field("integrity"), "ok", "{out}");
    let acked: u64 = field("acknowledged").parse().unwrap();
    assert!(acked > 0, "nothing was acknowledged: {out}");
    assert_eq!(out.stdout.lines().filter(|l| l.starts_with("cycle ")).count(), 3, "{out}");
}

#[test]
fn the_fault_script_refuses_bad_options() {
    for args in
        [&["--cycles", "0"][..], &["--cycles", "x"], &["--seconds-per-cycle", "0"], &["--bogus"]]
    {
        let mut cmd = Command::new("bash");
        cmd.arg(script()).args(args).args(["--bin", BIN]);
        let out = run(cmd, args);
        assert_eq!(out.code, 2, "{out}");
        assert!(out.stdout.is_empty(), "{out}");
    }
}
