//! Exactly-once claim across processes: every one of 10,000 tasks goes to
//! one claimer, while three kinds of claimer take them at the same time:
//! HTTP threads claiming the next task of the stream, HTTP threads claiming
//! tasks by id in their own random order, and CLI processes, which write
//! the database through their own connections rather than the server's.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::thread;

use serde_json::json;

use crate::support::{Dir, Server};

const TASKS: usize = 10_000;
const ENQUEUERS: usize = 4;
const NEXT_CLAIMERS: usize = 3;
const ID_CLAIMERS: usize = 3;
const CLI_CLAIMERS: usize = 2;

/// A claim that was answered with the task: (task id, claimer).
type Claim = (String, String);

/// The ids in a pseudo-random order that differs per `seed`.
fn shuffled(ids: &[String], seed: u64) -> Vec<String> {
    let mut v = ids.to_vec();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

#[test]
fn ten_thousand_tasks_are_each_claimed_once_by_http_threads_and_cli_processes_at_once() {
    let dir = Dir::new("exactly-once");
    dir.stream("race");
    let srv = Server::start(&dir);

    let enqueued: Vec<String> = thread::scope(|s| {
        let makers: Vec<_> = (0..ENQUEUERS)
            .map(|_| {
                s.spawn(|| {
                    let body = json!({ "stream_id": "race", "tool_name": "work" });
                    (0..TASKS / ENQUEUERS)
                        .map(|_| {
                            let (code, t) = srv.post("/api/tasks", body.clone());
                            assert_eq!(code, 201, "enqueue: {t}");
                            t["task"]["id"].as_str().expect("task id").to_string()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        makers.into_iter().flat_map(|m| m.join().expect("enqueuer")).collect()
    });
    let enqueued_set: HashSet<&String> = enqueued.iter().collect();
    assert_eq!(enqueued_set.len(), TASKS, "enqueue gave duplicate ids");

    // All claimers wait at the barrier, then go at once. The by-id threads
    // stop once the queue is seen empty: after that no task can be queued.
    let start = Barrier::new(NEXT_CLAIMERS + ID_CLAIMERS + CLI_CLAIMERS);
    let drained = AtomicBool::new(false);
    let claims: Vec<Claim> = thread::scope(|s| {
        let mut all = Vec::new();
        for i in 0..NEXT_CLAIMERS {
            let (srv, start, drained) = (&srv, &start, &drained);
            all.push(s.spawn(move || {
                let me = format!("next-{i}");
                let body = json!({ "worker_id": me });
                let mut got = Vec::new();
                start.wait();
                loop {
                    match srv.post("/api/streams/race/claim", body.clone()) {
                        (200, t) => {
                            got.push((t["task"]["id"].as_str().expect("id").into(), me.clone()))
                        }
                        (204, _) => break,
                        (code, t) => panic!("claim next answered {code}: {t}"),
                    }
                }
                drained.store(true, Ordering::SeqCst);
                got
            }));
        }
        for i in 0..ID_CLAIMERS {
            let (srv, start, drained, ids) = (&srv, &start, &drained, &enqueued);
            all.push(s.spawn(move || {
                let me = format!("by-id-{i}");
                let body = json!({ "worker_id": me });
                let order = shuffled(ids, i as u64 + 1);
                let mut got = Vec::new();
                start.wait();
                for id in order {
                    if drained.load(Ordering::SeqCst) {
                        break;
                    }
                    match srv.post(&format!("/api/tasks/{id}/claim"), body.clone()) {
                        (200, t) => {
                            assert_eq!(t["task"]["id"], json!(id), "claimed a different task");
                            got.push((id, me.clone()));
                        }
                        (409, e) => {
                            let msg = e["error"].as_str().unwrap_or_default();
                            assert!(msg.contains("it is running"), "refused claim of {id}: {e}");
                        }
                        (code, t) => panic!("claim {id} answered {code}: {t}"),
                    }
                }
                got
            }));
        }
        for i in 0..CLI_CLAIMERS {
            let (dir, start, drained) = (&dir, &start, &drained);
            all.push(s.spawn(move || {
                let me = format!("cli-{i}");
                let mut got = Vec::new();
                start.wait();
                loop {
                    let out = dir.sparkq(&["claim", "--stream", "race", "--worker-id", &me]);
                    if out.code == 1 {
                        break;
                    }
                    let t: serde_json::Value = serde_json::from_str(out.ok())
                        .unwrap_or_else(|e| panic!("claim printed no JSON ({e}): {out}"));
                    got.push((t["id"].as_str().expect("id").to_string(), me.clone()));
                }
                drained.store(true, Ordering::SeqCst);
                got
            }));
        }
        all.into_iter().flat_map(|h| h.join().expect("claimer")).collect()
    });

    let mut owner: HashMap<&String, &String> = HashMap::new();
    let twice: Vec<String> = claims
        .iter()
        .filter_map(|(id, w)| owner.insert(id, w).map(|first| format!("{id}: {first} and {w}")))
        .collect();
    assert!(
        twice.is_empty(),
        "{} tasks were claimed twice, e.g. {:?}",
        twice.len(),
        &twice[..twice.len().min(5)]
    );
    let claimed: HashSet<&String> = owner.keys().copied().collect();
    assert_eq!(claimed, enqueued_set, "the claimed set differs from the enqueued set");
    let count = |p: &str| claims.iter().filter(|(_, w)| w.starts_with(p)).count();
    let (next, by_id, cli) = (count("next-"), count("by-id-"), count("cli-"));
    eprintln!(
        "claims: {next} next-of-stream over HTTP, {by_id} by id over HTTP, {cli} by CLI processes"
    );
    // Each kind took part, so the race was across threads and processes.
    assert!(
        next > 0 && by_id > 0 && cli > 0,
        "a kind of claimer got nothing: {next}/{by_id}/{cli}"
    );

    // The database agrees with what each claimer was told.
    let db = dir.db();
    let mut st = db.prepare("SELECT id, status, attempts, worker_id FROM tasks").unwrap();
    let rows: Vec<(String, String, i64, Option<String>)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), TASKS);
    for (id, status, attempts, worker) in &rows {
        assert_eq!((status.as_str(), *attempts), ("running", 1), "task {id}");
        assert_eq!(worker.as_ref(), owner.get(id).copied(), "worker of task {id}");
    }
    let counters: (i64, i64) = db
        .query_row("SELECT queued, running FROM streams WHERE name = 'race'", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(counters, (0, TASKS as i64), "stream counters");
    assert_eq!(dir.integrity(), "ok");
}
