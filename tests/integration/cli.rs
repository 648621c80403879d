use std::thread;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{assert_id, assert_task_id, assert_task_shape, ids, Dir};

#[test]
fn setup_writes_the_config_and_the_project_and_a_second_run_keeps_both() {
    let dir = Dir::empty("setup");

    let out = dir.sparkq_bare(&["setup", "--yes", "--name", "demo", "--port", "8421"]);
    let text = out.ok();
    assert!(text.contains("wrote"), "{out}");
    assert!(dir.config().is_file(), "no sparkq.yml after setup: {out}");
    assert!(dir.db_path().is_file(), "no database after setup: {out}");
    dir.stream("s", "q");
    let id = dir.enqueue("q", "run-bash", &[]);
    let yaml = std::fs::read_to_string(dir.config()).unwrap();

    let again = dir.sparkq_bare(&["setup", "--yes", "--name", "other"]);
    assert!(again.ok().contains("kept"), "{again}");
    assert_eq!(std::fs::read_to_string(dir.config()).unwrap(), yaml, "setup rewrote the config");
    assert_eq!(dir.task(&id)["status"], "queued");
    let projects: i64 =
        dir.db().query_row("SELECT count(*) FROM projects", [], |r| r.get(0)).unwrap();
    assert_eq!(projects, 1, "setup duplicated the project");
    let name: String = dir.db().query_row("SELECT name FROM projects", [], |r| r.get(0)).unwrap();
    assert_eq!(name, "demo");

    // An existing config is validated; --force rewrites it from the flags.
    dir.write("sparkq.yml", "server:\n  prot: 1\n");
    let out = dir.sparkq_bare(&["setup", "--yes"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.starts_with("sparkq: ") && out.stderr.contains("\"prot\""), "{out}");
    let out = dir.sparkq_bare(&["setup", "--yes", "--force", "--name", "renamed"]);
    assert!(out.ok().contains("wrote"), "{out}");
    assert_eq!(dir.task(&id)["status"], "queued", "setup --force lost a task");
    let name: String = dir.db().query_row("SELECT name FROM projects", [], |r| r.get(0)).unwrap();
    assert_eq!(name, "renamed", "the project row does not follow the config");
}

#[test]
fn the_whole_lifecycle_runs_through_the_cli() {
    let dir = Dir::new("cli-lifecycle");

    // Sessions and streams.
    let s = dir.sparkq(&["session", "create", "s1", "--description", "first one", "--json"]).json();
    assert_id(s["id"].as_str().unwrap(), "ses_");
    assert_eq!((s["name"].as_str(), s["status"].as_str()), (Some("s1"), Some("active")));
    assert_eq!(s["description"], "first one");
    let out = dir.sparkq(&["session", "create", "s1"]);
    assert!(out.refused().contains("already exists"), "{out}");
    let list = dir.sparkq(&["session", "list", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert!(dir.sparkq(&["session", "list"]).ok().contains("s1"));

    let q = dir
        .sparkq(&[
            "stream",
            "create",
            "q1",
            "--session",
            "s1",
            "--instructions",
            "read the PRD",
            "--json",
        ])
        .json();
    assert_id(q["id"].as_str().unwrap(), "str_");
    assert_eq!(q["instructions"], "read the PRD");
    let out = dir.sparkq(&["stream", "create", "q1", "--session", "s1"]);
    assert!(out.refused().contains("already exists"), "{out}");
    let streams = dir.sparkq(&["stream", "list", "--session", "s1", "--json"]).json();
    assert_eq!(ids(&streams), vec![q["id"].as_str().unwrap()]);

    // Enqueue prints the id alone; the payload is built from the flags.
    let out = dir.sparkq(&[
        "enqueue",
        "--stream",
        "q1",
        "--tool",
        "run-bash",
        "--payload",
        r#"{"cmd":"ls","n":2}"#,
        "--prompt",
        "list files",
        "--metadata",
        r#"{"ticket":7}"#,
    ]);
    let first = out.ok().to_string();
    assert_eq!(out.stdout, format!("{first}\n"), "enqueue printed more than the id: {out}");
    assert_task_id(&first);
    let t = dir.task(&first);
    assert_task_shape(&t);
    assert_eq!(
        t["payload"],
        json!({"cmd": "ls", "n": 2, "prompt": "list files", "metadata": {"ticket": 7}})
    );
    assert_eq!((t["status"].as_str(), t["attempts"].as_u64()), (Some("queued"), Some(0)));

    let prompt = dir.write("prompt.txt", "fix the bug\n");
    let second = dir.enqueue("q1", "run-bash", &["--prompt-file", prompt.to_str().unwrap()]);
    let p = &dir.task(&second)["payload"];
    assert_eq!(p["prompt"], "fix the bug\n");
    let shown = std::path::PathBuf::from(p["prompt_path"].as_str().expect("prompt_path"));
    assert_eq!(shown.canonicalize().unwrap(), prompt.canonicalize().unwrap());
    let third = dir.sparkq(&["enqueue", "--stream", "q1", "--tool", "plain", "--json"]).json();
    assert_task_shape(&third);
    assert_eq!(third["payload"], json!({}));
    let third = third["id"].as_str().unwrap().to_string();

    // Peek shows the oldest without changing it, with the stream added.
    for _ in 0..2 {
        let p = dir.sparkq(&["peek", "--stream", "q1"]);
        assert_eq!(p.stdout.lines().count(), 1, "peek is not one line: {p}");
        let p = p.json();
        assert_eq!(p["id"], first.as_str());
        assert_eq!(p["status"], "queued");
        assert_eq!(
            p["stream"],
            json!({"id": q["id"], "name": "q1", "instructions": "read the PRD"})
        );
    }

    // Claim, complete.
    let c = dir.sparkq(&["claim", "--stream", "q1", "--worker-id", "w1"]);
    assert_eq!(c.stdout.lines().count(), 1, "claim is not one line: {c}");
    let c = c.json();
    assert_eq!(c["id"], first.as_str());
    assert_eq!((c["status"].as_str(), c["attempts"].as_u64()), (Some("running"), Some(1)));
    assert_eq!(c["worker_id"], "w1");
    assert_eq!(c["stream"]["instructions"], "read the PRD");
    assert!(c["payload"].is_object(), "{c}");
    let done = dir
        .sparkq(&[
            "complete",
            &first,
            "--summary",
            "listed",
            "--result",
            r#"{"files":3}"#,
            "--stdout",
            "a\nb",
            "--json",
        ])
        .json();
    assert_task_shape(&done);
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["result"], json!({"files": 3}));
    assert_eq!(done["result_summary"], "listed");
    assert_eq!(done["stdout"], "a\nb");
    assert!(done["completed_at"].is_string() && done["failed_at"].is_null(), "{done}");

    // Claim, fail.
    let c = dir.sparkq(&["claim", "--stream", "q1"]).json();
    assert_eq!(c["id"], second.as_str());
    let failed = dir
        .sparkq(&[
            "fail",
            "--task-id",
            &second,
            "--error",
            "exit 3",
            "--error-type",
            "EXIT_CODE",
            "--json",
        ])
        .json();
    assert_eq!(dir.task(&second), failed);
    assert_task_shape(&failed);
    assert_eq!(
        (failed["status"].as_str(), failed["error_type"].as_str()),
        (Some("failed"), Some("EXIT_CODE"))
    );
    assert_eq!(failed["error"], "exit 3");
    assert!(failed["failed_at"].is_string() && failed["completed_at"].is_null(), "{failed}");

    // A result that is not JSON is kept as text.
    dir.sparkq(&["claim", "--stream", "q1"]).json();
    dir.sparkq(&["complete", "--task-id", &third, "--summary", "ok", "--result", "not json {"])
        .ok();
    assert_eq!(dir.task(&third)["result"], "not json {");

    // Nothing left: peek and claim exit 1.
    assert!(dir.sparkq(&["peek", "--stream", "q1"]).nothing().starts_with("sparkq: "));
    dir.sparkq(&["claim", "--stream", "q1"]).nothing();

    // Lists, newest first, and filters.
    let all = dir.sparkq(&["tasks", "--json"]).json();
    assert_eq!(ids(&all), vec![third.clone(), second.clone(), first.clone()]);
    let only_failed = dir.sparkq(&["tasks", "--status", "failed", "--json"]).json();
    assert_eq!(ids(&only_failed), vec![second.clone()]);
    let two = dir.sparkq(&["tasks", "--stream", "q1", "--limit", "2", "--json"]).json();
    assert_eq!(ids(&two), vec![third.clone(), second.clone()]);
    assert!(dir.sparkq(&["tasks"]).ok().contains(&first));
    assert!(dir.sparkq(&["task", &first]).ok().contains(&first));

    // Requeue prints the new id alone and leaves the original as it was.
    let before = dir.task(&second);
    let out = dir.sparkq(&["requeue", &second]);
    let again = out.ok().to_string();
    assert_eq!(out.stdout, format!("{again}\n"), "requeue printed more than the id: {out}");
    assert_task_id(&again);
    assert_ne!(again, second);
    assert_eq!(dir.task(&second), before, "requeue changed the original");
    let copy = dir.task(&again);
    assert_eq!((copy["status"].as_str(), copy["attempts"].as_u64()), (Some("queued"), Some(0)));
    assert_eq!((&copy["payload"], &copy["tool_name"]), (&before["payload"], &before["tool_name"]));
    assert_eq!(dir.sparkq(&["requeue", &first, "--json"]).json()["status"], "queued");

    assert_eq!(dir.sparkq(&["purge"]).ok(), "purged 0 tasks");
    assert_eq!(dir.sparkq(&["purge", "--json"]).json(), json!({"purged": 0}));
    dir.sparkq(&["status"]).ok();

    // Ending a stream is idempotent; it takes no new task but its queued
    // ones can still be claimed.
    let ended = dir.sparkq(&["stream", "end", "q1", "--json"]).json();
    assert_eq!(ended["status"], "ended");
    let twice = dir.sparkq(&["stream", "end", "q1", "--json"]).json();
    assert_eq!(twice, ended, "ending an ended stream changed it");
    let out = dir.sparkq(&["enqueue", "--stream", "q1", "--tool", "run-bash"]);
    assert!(out.refused().contains("ended"), "{out}");
    assert_eq!(dir.sparkq(&["claim", "--stream", "q1"]).json()["id"], again.as_str());

    // Ending a session ends its streams; it takes no new stream.
    dir.sparkq(&["stream", "create", "q2", "--session", "s1"]).ok();
    let s = dir.sparkq(&["session", "end", "s1", "--json"]).json();
    assert_eq!(s["status"], "ended");
    assert_eq!(dir.sparkq(&["session", "end", "s1", "--json"]).json(), s);
    let q2 = dir.sparkq(&["stream", "list", "--status", "ended", "--json"]).json();
    assert_eq!(q2.as_array().unwrap().len(), 2, "{q2}");
    let out = dir.sparkq(&["stream", "create", "q3", "--session", "s1"]);
    assert!(out.refused().contains("ended"), "{out}");
}

#[test]
fn claim_without_a_stream_is_an_error_that_lists_the_streams_with_queued_tasks() {
    let dir = Dir::new("cli-no-stream");
    dir.stream("s", "busy");
    dir.sparkq(&["stream", "create", "idle", "--session", "s"]).ok();
    dir.enqueue("busy", "run-bash", &[]);

    for verb in ["claim", "peek"] {
        let out = dir.sparkq(&[verb]);
        let msg = out.refused();
        assert!(msg.contains("--stream") && msg.contains("busy (1 queued)"), "{out}");
        assert!(!msg.contains("idle"), "{out}");
    }
}

#[test]
fn unknown_ids_and_names_exit_2_naming_them() {
    let dir = Dir::new("cli-unknown");
    dir.stream("s", "q");

    let cases: &[&[&str]] = &[
        &["task", "tsk_000000000000"],
        &["complete", "tsk_000000000000", "--summary", "x"],
        &["fail", "tsk_000000000000", "--error", "x"],
        &["requeue", "tsk_000000000000"],
        &["claim", "--stream", "nope"],
        &["peek", "--stream", "nope"],
        &["enqueue", "--stream", "nope", "--tool", "run-bash"],
        &["stream", "create", "q2", "--session", "nope"],
        &["stream", "end", "nope"],
        &["session", "end", "nope"],
        &["tasks", "--stream", "nope"],
    ];
    for args in cases {
        let out = dir.sparkq(args);
        let msg = out.refused();
        let named = if msg.contains("tsk_") { "tsk_000000000000" } else { "\"nope\"" };
        assert!(msg.contains(named), "{out}");
    }
}

#[test]
fn bad_input_exits_2_and_changes_nothing() {
    let dir = Dir::new("cli-bad-input");
    dir.stream("s", "q");
    let id = dir.enqueue("q", "run-bash", &[]);
    dir.sparkq(&["claim", "--stream", "q"]).json();
    let before = dir.task(&id);

    let cases: &[(&[&str], &str)] = &[
        (&["session", "create", "has space"], "1-64 characters"),
        (&["session", "create", &"x".repeat(65)], "1-64 characters"),
        (&["stream", "create", "a/b", "--session", "s"], "1-64 characters"),
        (&["enqueue", "--stream", "q", "--tool", "run-bash", "--payload", "{oops"], "--payload"),
        (&["enqueue", "--stream", "q", "--tool", "run-bash", "--payload", "[1]"], "--payload"),
        (&["enqueue", "--stream", "q", "--tool", "run-bash", "--metadata", "3"], "--metadata"),
        (&["enqueue", "--stream", "q", "--tool", "run-bash", "--timeout", "0"], "--timeout"),
        (&["enqueue", "--stream", "q", "--tool", "run-bash", "--timeout", "1:30"], "--timeout"),
        (&["enqueue", "--stream", "q"], "--tool"),
        (&["complete", &id, "--summary", " "], "--summary"),
        (&["fail", &id, "--error", ""], "--error"),
        (&["tasks", "--status", "done"], "done"),
        (&["tasks", "--limit", "0"], "--limit"),
        (&["claim", "--stream", "q", "--wait", "soon"], "--wait"),
        (&["frobnicate"], "frobnicate"),
    ];
    for (args, named) in cases {
        let out = dir.sparkq(args);
        assert!(out.refused().contains(named), "want {named:?} in {out}");
    }
    assert_eq!(dir.task(&id), before, "bad input changed the task");
    let all = dir.sparkq(&["tasks", "--json"]).json();
    assert_eq!(ids(&all), vec![id], "bad input added a task");
    let sessions = dir.sparkq(&["session", "list", "--json"]).json();
    assert_eq!(sessions.as_array().unwrap().len(), 1, "bad input added a session");
}

#[test]
fn help_and_version_exit_0() {
    let dir = Dir::new("cli-help");

    assert!(dir.sparkq_bare(&["--help"]).ok().contains("USAGE"));
    assert!(dir.sparkq_bare(&["--version"]).ok().starts_with("sparkq "));
    for cmd in ["enqueue", "claim", "purge", "run"] {
        let out = dir.sparkq_bare(&[cmd, "--help"]);
        assert!(out.ok().contains(cmd), "{out}");
    }
}

#[test]
fn fifo_holds_for_100_tasks_enqueued_back_to_back_through_the_cli() {
    let dir = Dir::new("cli-fifo");
    dir.stream("s", "q");

    let enqueued: Vec<String> = (0..100).map(|_| dir.enqueue("q", "run-bash", &[])).collect();
    let mut claimed = Vec::new();
    for _ in 0..100 {
        let peeked = dir.sparkq(&["peek", "--stream", "q"]).json();
        let t = dir.sparkq(&["claim", "--stream", "q"]).json();
        assert_eq!(peeked["id"], t["id"], "peek and claim disagree on the next task");
        claimed.push(t["id"].as_str().unwrap().to_string());
    }
    assert_eq!(claimed, enqueued);
    dir.sparkq(&["claim", "--stream", "q"]).nothing();
}

/// Four tasks of stream `q`, one in each status: queued, running,
/// succeeded, failed.
fn tasks_in_every_status(dir: &Dir) -> [String; 4] {
    dir.stream("s", "q");
    let running = dir.enqueue("q", "run-bash", &[]);
    dir.sparkq(&["claim", "--stream", "q"]).json();
    let succeeded = dir.enqueue("q", "run-bash", &[]);
    dir.sparkq(&["claim", "--stream", "q"]).json();
    dir.sparkq(&["complete", &succeeded, "--summary", "done"]).ok();
    let failed = dir.enqueue("q", "run-bash", &[]);
    dir.sparkq(&["claim", "--stream", "q"]).json();
    dir.sparkq(&["fail", &failed, "--error", "broke"]).ok();
    let queued = dir.enqueue("q", "run-bash", &[]);
    [queued, running, succeeded, failed]
}

#[test]
fn every_refused_transition_exits_2_naming_the_current_state() {
    let dir = Dir::new("cli-refused");
    let [queued, running, succeeded, failed] = tasks_in_every_status(&dir);

    // Claim by id is not a CLI command; the API test covers refused claims.
    let cases: &[(&[&str], &String)] = &[
        (&["complete", &queued, "--summary", "x"], &queued),
        (&["complete", &succeeded, "--summary", "x"], &succeeded),
        (&["complete", &failed, "--summary", "x"], &failed),
        (&["fail", &succeeded, "--error", "x"], &succeeded),
        (&["fail", &failed, "--error", "x"], &failed),
        (&["requeue", &queued], &queued),
        (&["requeue", &running], &running),
    ];
    for (args, id) in cases {
        let before = dir.task(id);
        let out = dir.sparkq(args);
        let state = before["status"].as_str().unwrap();
        let msg = out.refused();
        assert!(msg.contains(&format!("it is {state}")), "want the state {state:?} named in {out}");
        assert!(msg.contains(id.as_str()), "want the id named in {out}");
        assert_eq!(dir.task(id), before, "a refused transition changed the task: {out}");
    }
    assert_eq!(dir.sparkq(&["tasks", "--json"]).json().as_array().unwrap().len(), 4);

    // Failing a queued task is allowed.
    dir.sparkq(&["fail", &queued, "--error", "not needed"]).ok();
    assert_eq!(dir.task(&queued)["status"], "failed");
}

#[test]
fn claim_wait_returns_a_task_enqueued_while_it_waits() {
    let dir = Dir::new("cli-wait");
    dir.stream("s", "q");

    let (id, out) = thread::scope(|s| {
        let waiter = s.spawn(|| dir.sparkq(&["claim", "--stream", "q", "--wait", "5"]));
        thread::sleep(Duration::from_secs(1));
        let id = dir.enqueue("q", "run-bash", &[]);
        (id, waiter.join().expect("waiting claimer"))
    });
    let t: Value = out.json();
    assert_eq!(t["id"], id.as_str(), "{out}");
    assert_eq!(t["status"], "running");
}

#[test]
fn claim_wait_on_an_empty_stream_exits_1_when_the_time_is_up() {
    let dir = Dir::new("cli-wait-empty");
    dir.stream("s", "q");

    let out = dir.sparkq(&["claim", "--stream", "q", "--wait", "0.3"]);
    assert!(out.nothing().contains("\"q\""), "{out}");
}

#[test]
fn output_over_the_limit_is_cut_at_a_character_boundary_with_a_marker() {
    let dir = Dir::with_config("cli-cut", "limits:\n  output_bytes: 100\n");
    dir.stream("s", "q");
    let id = dir.enqueue("q", "run-bash", &[]);
    dir.sparkq(&["claim", "--stream", "q"]).json();

    // 'é' is two bytes, so byte 100 falls inside a character after "x".
    let text = format!("x{}", "é".repeat(100));
    let t = dir
        .sparkq(&[
            "complete",
            &id,
            "--summary",
            "ok",
            "--stdout",
            &text,
            "--stderr",
            "short",
            "--json",
        ])
        .json();
    let kept = t["stdout"].as_str().unwrap();
    let (body, marker) = kept.split_once('\n').unwrap_or_else(|| panic!("no marker: {kept:?}"));
    assert_eq!(body, format!("x{}", "é".repeat(49)));
    assert!(
        marker.contains("102") && marker.contains("100"),
        "the marker should say how much was cut: {marker:?}"
    );
    assert_eq!(t["stderr"], "short");
}

#[test]
fn results_are_kept_as_json_when_they_parse_and_as_text_otherwise() {
    let dir = Dir::new("cli-results");
    dir.stream("s", "q");
    let file = dir.write("result.json", "{\"rows\": [1, 2]}\n");

    for (flag, value, want) in [
        ("--result", "42", json!(42)),
        ("--result", "\"quoted\"", json!("quoted")),
        ("--result", "[1, \"a\"]", json!([1, "a"])),
        ("--result", "plain words", json!("plain words")),
        ("--result-file", file.to_str().unwrap(), json!({"rows": [1, 2]})),
    ] {
        let id = dir.enqueue("q", "run-bash", &[]);
        dir.sparkq(&["claim", "--stream", "q"]).json();
        let t = dir.sparkq(&["complete", &id, "--summary", "ok", flag, value, "--json"]).json();
        assert_eq!(t["result"], want, "{flag} {value}");
    }
}

// Cause: Rust ignores SIGPIPE, so `sparkq tasks | head -1` panicked with a
// backtrace on its next print once head had gone.
#[test]
fn regression_output_into_a_closed_pipe_ends_quietly() {
    let dir = Dir::new("cli-broken-pipe");
    dir.stream("s1", "q1");
    for _ in 0..200 {
        dir.enqueue("q1", "run-bash", &[]);
    }
    let mut child = dir
        .command(&["tasks", "--limit", "200"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sparkq");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait for sparkq");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}
