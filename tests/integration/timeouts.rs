use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{poll, Dir, Server};

/// (tool, --task-class, --timeout) and the (class, timeout) the task gets.
type Resolution = (&'static str, Option<&'static str>, Option<u64>, &'static str, u64);

/// The cases, with the tools of `support::CONFIG`.
const RESOLUTION: [Resolution; 10] = [
    // The tool's own timeout wins over its class's, even a chosen class.
    ("fixed", None, None, "LLM_HEAVY", 42),
    ("fixed", Some("FAST_SCRIPT"), None, "FAST_SCRIPT", 42),
    // The task's timeout wins over everything.
    ("fixed", None, Some(7), "LLM_HEAVY", 7),
    ("custom", Some("FAST_SCRIPT"), Some(5), "FAST_SCRIPT", 5),
    // Without either, the class decides: the tool's, or the one chosen.
    ("custom", None, None, "CUSTOM", 77),
    ("custom", Some("LLM_HEAVY"), None, "LLM_HEAVY", 900),
    ("run-bash", None, None, "FAST_SCRIPT", 30),
    ("plain", Some("CUSTOM"), None, "CUSTOM", 77),
    // A tool that names no class is MEDIUM_SCRIPT: 300 s.
    ("plain", None, None, "MEDIUM_SCRIPT", 300),
    ("quick", Some("LLM_LITE"), None, "LLM_LITE", 1),
];

#[test]
fn timeouts_resolve_task_then_tool_then_class_then_300_through_the_cli() {
    let dir = Dir::new("timeouts-cli");
    dir.stream("s", "q");

    for (tool, class, timeout, want_class, want_timeout) in RESOLUTION {
        let mut extra = Vec::new();
        let secs = timeout.map(|t| t.to_string());
        if let Some(c) = class {
            extra.extend(["--task-class", c]);
        }
        if let Some(t) = &secs {
            extra.extend(["--timeout", t.as_str()]);
        }
        let id = dir.enqueue("q", tool, &extra);
        let t = dir.task(&id);
        assert_eq!(
            (t["task_class"].as_str(), t["timeout"].as_u64()),
            (Some(want_class), Some(want_timeout)),
            "{tool} {extra:?}"
        );
    }
}

#[test]
fn timeouts_resolve_task_then_tool_then_class_then_300_through_the_api() {
    let dir = Dir::new("timeouts-api");
    let srv = Server::start(&dir);
    let qid = srv.stream("s", "q");

    for (tool, class, timeout, want_class, want_timeout) in RESOLUTION {
        let body =
            json!({"stream_id": qid, "tool_name": tool, "task_class": class, "timeout": timeout});
        let (code, t) = srv.post("/api/tasks", body);
        assert_eq!(code, 201, "{t}");
        assert_eq!(
            (t["task"]["task_class"].as_str(), t["task"]["timeout"].as_u64()),
            (Some(want_class), Some(want_timeout)),
            "{tool} {class:?} {timeout:?}"
        );
    }

    let (_, tools) = srv.get("/api/tools");
    let of = |name: &str| -> Value {
        let t = tools["tools"].as_array().unwrap().iter().find(|t| t["name"] == name).cloned();
        let t = t.unwrap_or_else(|| panic!("no tool {name} in {tools}"));
        json!([t["task_class"], t["timeout"]])
    };
    assert_eq!(of("fixed"), json!(["LLM_HEAVY", 42]));
    assert_eq!(of("custom"), json!(["CUSTOM", 77]));
    assert_eq!(of("plain"), json!(["MEDIUM_SCRIPT", 300]));
    assert_eq!(of("quick"), json!(["MEDIUM_SCRIPT", 1]));
}

#[test]
fn an_unknown_tool_or_class_is_refused_naming_it_and_creates_nothing() {
    let dir = Dir::new("timeouts-unknown");
    let srv = Server::start(&dir);
    let qid = srv.stream("s", "q");

    for (tool, class) in [("nope", None), ("run-bash", Some("NOPE"))] {
        let named = class.unwrap_or(tool);
        let (code, e) = srv
            .post("/api/tasks", json!({"stream_id": qid, "tool_name": tool, "task_class": class}));
        assert_eq!((code, &e["status"]), (400, &json!(400)), "{e}");
        assert!(e["error"].as_str().unwrap().contains(&format!("\"{named}\"")), "{e}");

        let mut args = vec!["enqueue", "--stream", "q", "--tool", tool];
        if let Some(c) = class {
            args.extend(["--task-class", c]);
        }
        let out = dir.sparkq(&args);
        assert!(out.refused().contains(&format!("\"{named}\"")), "{out}");
    }
    assert_eq!(srv.get("/api/tasks").1["tasks"], json!([]));
}

#[test]
fn a_task_running_past_twice_its_timeout_is_auto_failed_and_late_reports_are_refused() {
    let dir = Dir::new("auto-fail");
    let srv = Server::start(&dir);
    let qid = srv.stream("s", "q");
    let id = srv.enqueue(&qid, "quick");
    let (code, c) = srv.post(&format!("/api/streams/{qid}/claim"), json!({"worker_id": "slow"}));
    assert_eq!((code, &c["task"]["timeout"]), (200, &json!(1)), "{c}");

    // GET does not expire anything, so the sweep is what must fail it.
    let failed = poll(Duration::from_secs(10), || {
        let t = srv.task(&id);
        (t["status"] != "running").then_some(t)
    });
    let failed = failed.unwrap_or_else(|| panic!("still running after 10 s:\n{}", srv.stderr()));
    assert_eq!(
        (failed["status"].as_str(), failed["error_type"].as_str()),
        (Some("failed"), Some("TIMEOUT")),
        "{failed}"
    );
    let msg = failed["error"].as_str().unwrap();
    assert!(
        msg.contains("2x") && msg.contains("1 s"),
        "the message should say 2x and the timeout: {msg:?}"
    );
    assert!(failed["failed_at"].is_string(), "{failed}");

    // A late worker is told, and what it reports is not applied.
    let (code, e) =
        srv.post(&format!("/api/tasks/{id}/complete"), json!({"result_summary": "late"}));
    assert_eq!((code, &e["status"]), (409, &json!(409)), "{e}");
    assert!(e["error"].as_str().unwrap().contains("failed"), "{e}");
    let (code, e) = srv.post(&format!("/api/tasks/{id}/fail"), json!({"error_message": "late"}));
    assert_eq!(code, 409, "{e}");
    let out = dir.sparkq(&["complete", &id, "--summary", "late"]);
    assert!(out.refused().contains("failed"), "{out}");
    let out = dir.sparkq(&["fail", &id, "--error", "late"]);
    out.refused();
    assert_eq!(srv.task(&id), failed, "a late report changed the auto-failed task");

    // Requeue gives a fresh queued task and leaves the failed one.
    let (code, r) = srv.post(&format!("/api/tasks/{id}/requeue"), json!({}));
    assert_eq!(code, 201, "{r}");
    let r = &r["task"];
    assert_ne!(r["id"], json!(id));
    assert_eq!((r["status"].as_str(), r["attempts"].as_u64()), (Some("queued"), Some(0)), "{r}");
    assert_eq!((r["tool_name"].as_str(), r["timeout"].as_u64()), (Some("quick"), Some(1)));
    assert!(r["error"].is_null() && r["claimed_at"].is_null(), "{r}");
    assert_eq!(srv.task(&id), failed);
}

#[test]
fn a_late_complete_through_the_cli_is_refused_even_before_the_sweep_runs() {
    let dir = Dir::new("late-cli");
    dir.stream("s", "q");
    let id = dir.enqueue("q", "quick", &[]);
    dir.sparkq(&["claim", "--stream", "q"]).json();

    // No server runs, so nothing sweeps. Moving the claim 10 s into the past
    // puts the task past twice its 1 s timeout without waiting for it.
    let moved = dir
        .db()
        .execute("UPDATE tasks SET claimed_at = claimed_at - 10000 WHERE id = ?1", [&id])
        .unwrap();
    assert_eq!(moved, 1);
    let out = dir.sparkq(&["complete", &id, "--summary", "late"]);
    assert!(out.refused().contains("failed"), "{out}");
    let t = dir.task(&id);
    assert_eq!(
        (t["status"].as_str(), t["error_type"].as_str()),
        (Some("failed"), Some("TIMEOUT")),
        "{t}"
    );
    assert!(t["result_summary"].is_null(), "the late summary was kept: {t}");
    let out = dir.sparkq(&["fail", &id, "--error", "late"]);
    out.refused();
    assert_eq!(dir.task(&id), t);
}

#[test]
fn a_task_running_past_its_timeout_is_listed_as_stale_but_not_failed_before_twice_its_timeout() {
    let dir = Dir::new("stale");
    let srv = Server::start(&dir);
    let qid = srv.stream("s", "q");
    let slow = srv.enqueue(&qid, "fixed");
    let fresh = srv.enqueue(&qid, "fixed");
    for _ in 0..2 {
        assert_eq!(srv.post(&format!("/api/streams/{qid}/claim"), json!({})).0, 200);
    }

    // 60 s ago is past the 42 s timeout and short of the 84 s deadline.
    let moved = dir
        .db()
        .execute("UPDATE tasks SET claimed_at = claimed_at - 60000 WHERE id = ?1", [&slow])
        .unwrap();
    assert_eq!(moved, 1);
    let (code, stale) = srv.get("/api/tasks?stale=true");
    assert_eq!(code, 200, "{stale}");
    assert_eq!(crate::support::ids(&stale["tasks"]), vec![slow.clone()]);
    let listed = dir.sparkq(&["tasks", "--stale", "--json"]).json();
    assert_eq!(crate::support::ids(&listed), vec![slow.clone()]);
    let table = dir.sparkq(&["tasks"]);
    let marked: Vec<&str> = table.ok().lines().filter(|l| l.contains("stale")).collect();
    assert!(marked.len() == 1 && marked[0].contains(&slow), "{table}");
    assert!(dir.sparkq(&["task", &slow]).ok().contains("stale"));
    assert!(!dir.sparkq(&["task", &fresh]).ok().contains("stale"));

    // Two sweeps later it is still running: stale is only a mark.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(srv.task(&slow)["status"], "running");
    let (code, done) = srv
        .post(&format!("/api/tasks/{slow}/complete"), json!({"result_summary": "slow but done"}));
    assert_eq!((code, &done["task"]["status"]), (200, &json!("succeeded")), "{done}");
}
