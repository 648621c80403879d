//! A worker's complete or fail racing the timeout sweep at the 2x deadline
//! (SPEC rule 4): whichever wins, the stored state is what the worker was
//! told. A 200 (or exit 0) leaves the worker's outcome; a refusal says the
//! task was auto-failed and it is a TIMEOUT failure; nothing else, and
//! never both.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{Dir, Server};

const RACERS: usize = 32;

/// How one report went: the task, how it was sent, whether it was applied,
/// and the refusal's message.
struct Report {
    id: String,
    how: &'static str,
    applied: bool,
    message: String,
    text: String,
}

fn report(dir: &Dir, srv: &Server, id: &str, how: &'static str, text: &str) -> Report {
    let (applied, message) = match how {
        "http complete" | "http fail" => {
            let (path, body) = if how == "http complete" {
                (format!("/api/tasks/{id}/complete"), json!({ "result_summary": text }))
            } else {
                (
                    format!("/api/tasks/{id}/fail"),
                    json!({ "error_message": text, "error_type": "WORKER" }),
                )
            };
            match srv.post(&path, body) {
                (200, _) => (true, String::new()),
                (409, e) => (false, e["error"].as_str().unwrap_or_default().to_string()),
                (code, e) => panic!("{how} of {id} answered {code}: {e}"),
            }
        }
        _ => {
            let out = if how == "cli complete" {
                dir.sparkq(&["complete", id, "--summary", text])
            } else {
                dir.sparkq(&["fail", "--task-id", id, "--error", text, "--error-type", "WORKER"])
            };
            match out.code {
                0 => (true, String::new()),
                2 => (false, out.refused().to_string()),
                _ => panic!("{how} of {id}: {out}"),
            }
        }
    };
    Report { id: id.to_string(), how, applied, message, text: text.to_string() }
}

/// Asserts that the stored task is what its worker was told.
fn assert_matches(dir: &Dir, r: &Report) {
    let t: Value = serde_json::from_str(dir.sparkq(&["task", &r.id, "--json"]).ok()).unwrap();
    let ctx = format!("{} of {} ({}): {t}", r.how, r.id, r.message);
    if r.applied {
        if r.how.ends_with("complete") {
            assert_eq!(t["status"], "succeeded", "{ctx}");
            assert_eq!(t["result_summary"], json!(r.text), "{ctx}");
        } else {
            assert_eq!(t["status"], "failed", "{ctx}");
            assert_eq!(
                (t["error_type"].as_str(), t["error"].as_str()),
                (Some("WORKER"), Some(r.text.as_str())),
                "{ctx}"
            );
        }
    } else {
        assert!(r.message.contains("auto-failed"), "refused for another reason: {ctx}");
        assert_eq!(
            (t["status"].as_str(), t["error_type"].as_str()),
            (Some("failed"), Some("TIMEOUT")),
            "{ctx}"
        );
        let error = t["error"].as_str().unwrap_or_default();
        assert!(error.contains("2x its timeout (1 s)"), "{ctx}");
    }
    // An applied report finished by the deadline, an auto-fail after it.
    let (claimed, finished, timeout): (i64, i64, i64) = dir
        .db()
        .query_row(
            "SELECT claimed_at, finished_at, timeout FROM tasks WHERE id = ?1",
            [&r.id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    let in_time = finished <= claimed + timeout * 2000;
    assert_eq!(in_time, r.applied, "finished {} ms after the claim: {ctx}", finished - claimed);
}

#[test]
fn a_report_racing_the_timeout_sweep_at_the_deadline_ends_as_its_worker_was_told() {
    let dir = Dir::new("deadline");
    dir.stream("d");
    let srv = Server::start(&dir);

    // `quick` tasks time out after 1 s, so the deadline is 2 s after the
    // claim; the sweep runs every second. Reports go out from 1.6 s to
    // 2.4 s after each claim, across the deadline and across sweeps.
    let hows = ["http complete", "cli complete", "http fail", "cli fail"];
    let mut racers = Vec::new();
    for i in 0..RACERS {
        let (code, t) = srv.post("/api/tasks", json!({ "stream_id": "d", "tool_name": "quick" }));
        assert_eq!(code, 201, "{t}");
        let id = t["task"]["id"].as_str().unwrap().to_string();
        let (code, c) =
            srv.post(&format!("/api/tasks/{id}/claim"), json!({ "worker_id": "racer" }));
        assert_eq!(code, 200, "{c}");
        let at = Instant::now() + Duration::from_millis(1600 + (800 * i / RACERS) as u64);
        racers.push((id, hows[i % hows.len()], at));
    }
    let reports: Vec<Report> = thread::scope(|s| {
        let handles: Vec<_> = racers
            .iter()
            .map(|(id, how, at)| {
                let (dir, srv) = (&dir, &srv);
                s.spawn(move || {
                    thread::sleep(at.saturating_duration_since(Instant::now()));
                    report(dir, srv, id, how, &format!("{how} of {id}"))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("racer")).collect()
    });
    // Let the sweep pass over everything once more: an applied report must
    // not be overwritten by it afterwards.
    thread::sleep(Duration::from_millis(1500));
    for r in &reports {
        assert_matches(&dir, r);
    }
    let applied = reports.iter().filter(|r| r.applied).count();
    eprintln!(
        "deadline race: {applied} reports applied, {} refused as auto-failed",
        reports.len() - applied
    );

    // Outside the race the answer is fixed: a report long before the
    // deadline is applied, one after it is refused, with or without a sweep
    // having passed.
    let early = report_after(&dir, &srv, "work", Duration::ZERO, "http complete");
    assert!(early.applied, "an early complete was refused: {}", early.message);
    let late = report_after(&dir, &srv, "quick", Duration::from_millis(2300), "cli complete");
    assert!(!late.applied, "a complete after the deadline was applied");
    for r in [&early, &late] {
        assert_matches(&dir, r);
    }
    assert_eq!(dir.integrity(), "ok");
}

/// Enqueues and claims a task of `tool`, waits `wait`, then reports.
fn report_after(dir: &Dir, srv: &Server, tool: &str, wait: Duration, how: &'static str) -> Report {
    let (code, t) = srv.post("/api/tasks", json!({ "stream_id": "d", "tool_name": tool }));
    assert_eq!(code, 201, "{t}");
    let id = t["task"]["id"].as_str().unwrap().to_string();
    assert_eq!(srv.post(&format!("/api/tasks/{id}/claim"), json!({})).0, 200);
    thread::sleep(wait);
    report(dir, srv, &id, how, &format!("{how} of {id}"))
}
