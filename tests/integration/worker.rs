use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{wait_for, Dir, BIN, CONFIG};

/// The longest one worker run may take before its test fails.
const WORKER_LIMIT: Duration = Duration::from_secs(120);

/// A folder whose config indexes its own `scripts`, with a stream `q`.
fn worker_dir(label: &str) -> Dir {
    let dir = Dir::with_config(label, &CONFIG.replace("script_dirs: []\n", "script_dirs: [own]\n"));
    dir.stream("s", "q");
    dir
}

/// Writes an executable file.
fn write_executable(dir: &Dir, rel: &str, text: &str) -> PathBuf {
    let path = dir.write(rel, text);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// A stand-in for the sparkq binary that appends its command and task id to
/// `calls` before running the real one, so a test can count CLI calls.
fn logging_sparkq(dir: &Dir) -> PathBuf {
    let calls = dir.path.join("calls");
    let text = format!(
        "#!/bin/sh\nprintf '%s %s\\n' \"$1\" \"$2\" >>\"{}\"\nexec \"{BIN}\" \"$@\"\n",
        calls.display()
    );
    write_executable(dir, "bin/sparkq", &text)
}

/// How many logged CLI calls start with `prefix`.
fn calls(dir: &Dir, prefix: &str) -> usize {
    let text = fs::read_to_string(dir.path.join("calls")).unwrap_or_default();
    text.lines().filter(|l| l.starts_with(prefix)).count()
}

/// Runs `worker.sh q --max-tasks N --wait 1` in the folder with `sparkq` as
/// the binary; returns the worker's stderr after asserting that it exited 0.
fn run_worker(dir: &Dir, sparkq: &Path, max_tasks: usize) -> String {
    let worker = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/worker.sh");
    let log = dir.path.join("worker.log");
    let mut child = Command::new("bash")
        .arg(&worker)
        .args(["q", "--max-tasks", &max_tasks.to_string(), "--wait", "1"])
        .current_dir(&dir.path)
        .env("SPARKQ", sparkq)
        .env("SPARKQ_CONFIG", dir.config())
        .env_remove("SPARKQ_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).expect("create the worker log"))
        .spawn()
        .expect("spawn worker.sh");
    let status = wait_for(&mut child, WORKER_LIMIT);
    let stderr = fs::read_to_string(&log).unwrap_or_default();
    assert!(status.is_some_and(|s| s.success()), "worker.sh: {status:?}\n{stderr}");
    stderr
}

fn field<'a>(task: &'a serde_json::Value, key: &str) -> &'a str {
    task[key].as_str().unwrap_or("")
}

#[test]
fn worker_reports_success_error_unknown_script_and_script_timeout() {
    let dir = worker_dir("worker-outcomes");
    dir.write("own/hello.sh", "echo \"hello $1\"\n");
    dir.write("own/broken.sh", "echo partial\necho \"it broke\" >&2\nexit 3\n");
    dir.write("own/sleepy.sh", "echo \"going to sleep\" >&2\nsleep 30\n");
    let ok = dir.enqueue("q", "plain", &["--payload", r#"{"script":"hello.sh","args":["you"]}"#]);
    let bad = dir.enqueue("q", "plain", &["--payload", r#"{"script":"broken.sh"}"#]);
    let unknown = dir.enqueue("q", "plain", &["--payload", r#"{"script":"nowhere.sh"}"#]);
    let slow =
        dir.enqueue("q", "plain", &["--timeout", "1", "--payload", r#"{"script":"sleepy.sh"}"#]);

    run_worker(&dir, Path::new(BIN), 4);

    let t = dir.task(&ok);
    assert_eq!(field(&t, "status"), "succeeded", "{t}");
    assert_eq!(field(&t, "result_summary"), "exit 0: hello you", "{t}");
    assert_eq!(t["result"]["exit_code"], 0, "{t}");
    assert!(field(&t["result"], "script").ends_with("/own/hello.sh"), "{t}");
    let t = dir.task(&bad);
    assert_eq!((field(&t, "status"), field(&t, "error_type")), ("failed", "SCRIPT_ERROR"), "{t}");
    assert_eq!(field(&t, "error"), "exit 3: it broke", "{t}");
    assert_eq!(field(&t, "stdout"), "partial\n", "{t}");
    let t = dir.task(&unknown);
    assert_eq!((field(&t, "status"), field(&t, "error_type")), ("failed", "BAD_PAYLOAD"), "{t}");
    let t = dir.task(&slow);
    assert_eq!((field(&t, "status"), field(&t, "error_type")), ("failed", "SCRIPT_TIMEOUT"), "{t}");
    assert_eq!(field(&t, "error"), "timed out after 1s: going to sleep", "{t}");
}

#[test]
fn worker_reads_the_script_index_once_and_again_only_for_a_missing_name() {
    let dir = worker_dir("worker-index");
    let sparkq = logging_sparkq(&dir);
    dir.write("own/one.sh", "echo one\n");
    let late = dir.path.join("own/late.sh");
    let maker = format!("printf 'echo late\\n' >\"{}\"\necho made\n", late.display());
    dir.write("own/maker.sh", &maker);
    let mut ids = Vec::new();
    for script in ["one.sh", "one.sh", "maker.sh", "late.sh"] {
        let payload = format!(r#"{{"script":"{script}"}}"#);
        ids.push(dir.enqueue("q", "plain", &["--payload", &payload]));
    }

    run_worker(&dir, &sparkq, ids.len());

    for id in &ids {
        assert_eq!(field(&dir.task(id), "status"), "succeeded", "{}", dir.task(id));
    }
    assert_eq!(field(&dir.task(&ids[3]), "result_summary"), "exit 0: late");
    // Once at the first task, once more when late.sh was not in it.
    assert_eq!(calls(&dir, "scripts list"), 2);
}

/// Cause: every failed complete or fail was tried three times, a refusal too.
#[test]
fn regression_worker_does_not_retry_a_refused_outcome() {
    let dir = worker_dir("worker-refused");
    let sparkq = logging_sparkq(&dir);
    let own_fail = format!(
        "\"{BIN}\" fail \"$SPARKQ_TASK_ID\" --error \"gave up inside\" --error-type INSIDE\n\
         echo finished anyway\n"
    );
    dir.write("own/self-fail.sh", &own_fail);
    let id = dir.enqueue("q", "plain", &["--payload", r#"{"script":"self-fail.sh"}"#]);

    let stderr = run_worker(&dir, &sparkq, 1);

    let t = dir.task(&id);
    assert_eq!((field(&t, "status"), field(&t, "error_type")), ("failed", "INSIDE"), "{t}");
    assert_eq!(calls(&dir, &format!("complete {id}")), 1, "{stderr}");
    assert!(stderr.contains("outcome refused, not retried: cannot complete task"), "{stderr}");
}
