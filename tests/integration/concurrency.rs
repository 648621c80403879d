use std::collections::{HashMap, HashSet};
use std::thread;

use serde_json::json;

use crate::support::{Dir, Server};

const TASKS: usize = 2_000;
const HTTP_CLAIMERS: usize = 8;
const CLI_CLAIMERS: usize = 2;

#[test]
fn two_thousand_tasks_claimed_by_8_http_threads_and_2_cli_processes_go_out_exactly_once() {
    let dir = Dir::new("claim-race");
    let srv = Server::start(&dir);
    let qid = srv.stream("s", "race");

    // Enqueue from a few threads; only the set matters here, not the order.
    let enqueued: Vec<String> = thread::scope(|s| {
        let makers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    (0..TASKS / 4).map(|_| srv.enqueue("race", "run-bash")).collect::<Vec<_>>()
                })
            })
            .collect();
        makers.into_iter().flat_map(|m| m.join().expect("enqueuer")).collect()
    });
    let enqueued_set: HashSet<&String> = enqueued.iter().collect();
    assert_eq!(enqueued_set.len(), TASKS, "enqueue gave duplicate ids");

    // Every claimer records (task id, its worker id); all start at once.
    let claims: Vec<(String, String)> = thread::scope(|s| {
        let mut all = Vec::new();
        for i in 0..CLI_CLAIMERS {
            let dir = &dir;
            all.push(s.spawn(move || {
                let worker = format!("cli-{i}");
                let mut got = Vec::new();
                loop {
                    let out = dir.sparkq(&["claim", "--stream", "race", "--worker-id", &worker]);
                    if out.code == 1 {
                        return got;
                    }
                    let t = out.json();
                    got.push((t["id"].as_str().expect("id").to_string(), worker.clone()));
                }
            }));
        }
        for i in 0..HTTP_CLAIMERS {
            let (srv, qid) = (&srv, &qid);
            all.push(s.spawn(move || {
                let worker = format!("http-{i}");
                let path = format!("/api/streams/{qid}/claim");
                let mut got = Vec::new();
                loop {
                    let (code, t) = srv.post(&path, json!({ "worker_id": worker }));
                    match code {
                        204 => return got,
                        200 => got.push((
                            t["task"]["id"].as_str().expect("id").to_string(),
                            worker.clone(),
                        )),
                        _ => panic!("claim answered {code}: {t}"),
                    }
                }
            }));
        }
        all.into_iter().flat_map(|h| h.join().expect("claimer")).collect()
    });

    let mut seen = HashSet::new();
    let dups: Vec<&String> =
        claims.iter().map(|(id, _)| id).filter(|id| !seen.insert(*id)).collect();
    assert!(
        dups.is_empty(),
        "{} tasks were handed out twice, e.g. {:?}",
        dups.len(),
        &dups[..dups.len().min(5)]
    );
    assert_eq!(seen, enqueued_set, "the claimed set differs from the enqueued set");
    let by_cli = claims.iter().filter(|(_, w)| w.starts_with("cli-")).count();
    eprintln!("claims: {} over HTTP, {by_cli} by CLI processes", claims.len() - by_cli);

    // Nothing is left, and the database agrees with what each claimer got.
    dir.sparkq(&["claim", "--stream", "race"]).nothing();
    assert_eq!(srv.get(&format!("/api/streams/{qid}/peek")).0, 204);
    let db = dir.db();
    let mut st = db.prepare("SELECT id, status, attempts, worker_id FROM tasks").unwrap();
    let rows: Vec<(String, String, i64, Option<String>)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), TASKS);
    let owner: HashMap<&String, &String> = claims.iter().map(|(id, w)| (id, w)).collect();
    for (id, status, attempts, worker) in &rows {
        assert_eq!((status.as_str(), *attempts), ("running", 1), "task {id}");
        assert_eq!(
            worker.as_ref(),
            owner.get(id).copied(),
            "task {id} records another worker than the one that got it"
        );
    }
    // Lists hold 100 by default and 1000 at most.
    assert_eq!(srv.get("/api/tasks").1["tasks"].as_array().map(Vec::len), Some(100));
    assert_eq!(srv.get("/api/tasks?limit=1000").1["tasks"].as_array().map(Vec::len), Some(1000));
    let (_, stats) = srv.get("/stats");
    assert_eq!(stats["tasks"], json!({"queued": 0, "running": TASKS, "succeeded": 0, "failed": 0}));
}
