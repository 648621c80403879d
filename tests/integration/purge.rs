use serde_json::json;

use crate::support::{ids, Dir};

const HOUR_MS: i64 = 3_600_000;

/// Moves a task's times `ms` into the past, as if it had been created,
/// claimed and finished that long ago.
fn age(dir: &Dir, id: &str, ms: i64) {
    let n = dir
        .db()
        .execute(
            "UPDATE tasks SET created_at = created_at - ?2, updated_at = updated_at - ?2, \
             claimed_at = claimed_at - ?2, finished_at = finished_at - ?2 WHERE id = ?1",
            rusqlite::params![id, ms],
        )
        .unwrap();
    assert_eq!(n, 1, "no task {id} to age");
}

#[test]
fn purge_deletes_only_finished_tasks_older_than_the_cut_off() {
    let dir = Dir::new("purge");
    dir.stream("s", "q");
    let mut made = Vec::new();
    for _ in 0..7 {
        made.push(dir.enqueue("q", "run-bash", &[]));
    }
    // Claimed in FIFO order: the first five run, two stay queued.
    for _ in 0..5 {
        dir.sparkq(&["claim", "--stream", "q"]).json();
    }
    let [old_ok, old_failed, new_ok, older_ok, running, queued_a, queued_b] =
        <[String; 7]>::try_from(made).unwrap();
    for id in [&old_ok, &new_ok, &older_ok] {
        dir.sparkq(&["complete", id, "--summary", "done"]).ok();
    }
    dir.sparkq(&["fail", &old_failed, "--error", "broke"]).ok();

    // Finished just now: nothing is older than an hour.
    assert_eq!(dir.sparkq(&["purge", "--older-than", "1h"]).ok(), "purged 0 tasks");
    assert_eq!(dir.sparkq(&["tasks", "--json"]).json().as_array().unwrap().len(), 7);

    // Two hours ago for two finished tasks, four days for one; the queued
    // and running ones are made older still, which must not matter.
    age(&dir, &old_ok, 2 * HOUR_MS);
    age(&dir, &old_failed, 2 * HOUR_MS);
    age(&dir, &older_ok, 96 * HOUR_MS);
    for id in [&running, &queued_a, &queued_b] {
        age(&dir, id, 1000 * HOUR_MS);
    }

    // The default cut-off is purge.older_than_days: 3 days.
    assert_eq!(dir.sparkq(&["purge"]).ok(), "purged 1 tasks");
    assert_eq!(dir.sparkq(&["purge", "--older-than", "3h"]).ok(), "purged 0 tasks");
    assert_eq!(dir.sparkq(&["purge", "--older-than", "1h", "--json"]).json(), json!({"purged": 2}));
    assert_eq!(dir.sparkq(&["purge", "--older-than", "1h"]).ok(), "purged 0 tasks");

    let mut left = ids(&dir.sparkq(&["tasks", "--json"]).json());
    left.sort();
    let mut want = vec![new_ok.clone(), running.clone(), queued_a.clone(), queued_b.clone()];
    want.sort();
    assert_eq!(left, want);
    assert_eq!(dir.task(&running)["status"], "running");
    let stats = dir.sparkq(&["status", "--json"]).json();
    assert_eq!(
        stats["stats"]["tasks"],
        json!({"queued": 2, "running": 1, "succeeded": 1, "failed": 0}),
        "{stats}"
    );
    let out = dir.sparkq(&["task", &old_ok]);
    assert!(out.refused().contains(&old_ok), "{out}");

    // The two still queued are claimed in order, untouched by purge.
    assert_eq!(dir.sparkq(&["claim", "--stream", "q"]).json()["id"], queued_a.as_str());
    assert_eq!(dir.sparkq(&["claim", "--stream", "q"]).json()["id"], queued_b.as_str());
}

#[test]
fn purge_refuses_an_age_that_is_not_a_positive_whole_number_of_h_d_or_w() {
    let dir = Dir::new("purge-bad");
    dir.stream("s", "q");

    for bad in ["0h", "3", "3x", "-1d", "1.5d", "d", ""] {
        let out = dir.sparkq(&["purge", "--older-than", bad]);
        assert!(out.refused().contains("--older-than"), "{out}");
    }
    for good in ["12h", "3d", "2w"] {
        assert_eq!(dir.sparkq(&["purge", "--older-than", good]).ok(), "purged 0 tasks");
    }
}
