use std::time::Duration;

use serde_json::json;

use crate::support::{Dir, Server};

/// Long enough for a refused `run` to start, see the lock and exit.
const REFUSAL_LIMIT: Duration = Duration::from_secs(20);

fn lock_text(dir: &Dir) -> String {
    std::fs::read_to_string(dir.lock_path()).unwrap_or_default()
}

#[test]
fn run_refuses_to_start_while_a_live_server_holds_the_lock_naming_that_server() {
    let dir = Dir::new("lock-held");
    let srv = Server::start(&dir);

    let config = dir.config();
    let args = ["--config", config.to_str().unwrap(), "run", "--port", "0"];
    let out = dir.sparkq_within(&args, REFUSAL_LIMIT);
    let msg = out.refused();
    assert!(msg.contains("another sparkq server is running"), "{out}");
    assert!(
        msg.contains(&srv.pid().to_string()) && msg.contains(&srv.url),
        "want the running server named in {out}"
    );
    assert_eq!(srv.get("/health").0, 200, "the first server stopped serving");
    assert_eq!(lock_text(&dir), format!("{}\n{}\n", srv.pid(), srv.url));
}

#[test]
fn a_lock_left_by_a_server_killed_with_sigkill_is_taken_over() {
    let dir = Dir::new("lock-dead");
    let mut first = Server::start(&dir);
    dir.stream("s", "q");
    let id = dir.enqueue("q", "run-bash", &[]);
    first.kill();
    assert!(
        dir.lock_path().exists(),
        "SIGKILL cannot remove the lock file; the test needs it left behind"
    );
    assert_eq!(dir.sparkq(&["status", "--json"]).json()["server"], json!({"running": false}));
    assert!(dir.sparkq(&["stop"]).ok().contains("no server"));

    let second = Server::start(&dir);
    assert_eq!(second.get("/health").0, 200);
    assert_eq!(second.task(&id)["status"], "queued");
    assert_eq!(lock_text(&dir), format!("{}\n{}\n", second.pid(), second.url));
    let status = dir.sparkq(&["status", "--json"]).json();
    assert_eq!(status["server"], json!({"running": true, "pid": second.pid(), "url": second.url}));
}

#[test]
fn stop_makes_the_server_exit_0_and_removes_the_lock() {
    let dir = Dir::new("stop");
    let mut srv = Server::start(&dir);
    assert!(dir.lock_path().exists());

    let out = dir.sparkq(&["stop"]);
    assert!(out.ok().contains("stopped"), "{out}");
    let status =
        srv.wait_exit(Duration::from_secs(20)).expect("the server did not exit after stop");
    assert_eq!(status.code(), Some(0), "server stderr:\n{}", srv.stderr());
    assert!(!dir.lock_path().exists(), "stop left {}", dir.lock_path().display());

    let out = dir.sparkq(&["stop"]);
    assert!(out.ok().contains("no server"), "{out}");
}

#[test]
fn status_exits_0_with_or_without_a_server() {
    let dir = Dir::new("status");

    let out = dir.sparkq(&["status"]);
    assert!(out.ok().contains("not running"), "{out}");
    assert_eq!(dir.sparkq(&["status", "--json"]).json()["server"], json!({"running": false}));

    let srv = Server::start(&dir);
    dir.stream("s", "q");
    dir.enqueue("q", "run-bash", &[]);
    let out = dir.sparkq(&["status"]);
    let text = out.ok();
    assert!(text.contains(&srv.pid().to_string()) && text.contains(&srv.url), "{out}");
    let j = dir.sparkq(&["status", "--json"]).json();
    assert_eq!(j["server"], json!({"running": true, "pid": srv.pid(), "url": srv.url}));
    assert_eq!(j["stats"]["tasks"]["queued"], 1, "{j}");

    let bare = Dir::empty("status-no-config");
    let out = bare.sparkq_bare(&["status"]);
    assert!(out.ok().contains("not running"), "{out}");
}

#[test]
fn run_in_a_folder_without_a_config_creates_it_and_the_database_and_says_so() {
    let dir = Dir::empty("first-run");

    let mut srv = Server::spawn(&dir, &["run", "--port", "0"]);
    assert!(srv.url.starts_with("http://127.0.0.1:"), "{}", srv.url);
    let banner = srv.banner(3, Duration::from_secs(10));
    let config = dir.config();
    let said = banner.iter().any(|l| l.contains("created") && l.contains(config.to_str().unwrap()));
    assert!(said, "the banner does not say it created {}: {banner:?}", config.display());
    assert!(banner.iter().any(|l| l.contains("sparkq.db")), "{banner:?}");
    assert!(config.is_file(), "no sparkq.yml was created");
    assert!(dir.db_path().is_file(), "no database was created");
    assert_eq!(srv.get("/health").0, 200);

    // The new config works for the CLI too, and stop finds the server.
    dir.sparkq_bare(&["session", "create", "s"]).ok();
    dir.sparkq_bare(&["stop"]).ok();
    let status =
        srv.wait_exit(Duration::from_secs(20)).expect("the server did not exit after stop");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn the_banner_names_the_config_the_database_and_each_active_stream_with_its_queue() {
    let dir = Dir::new("banner");
    dir.stream("s", "build");
    dir.sparkq(&["stream", "create", "docs", "--session", "s"]).ok();
    dir.sparkq(&["stream", "create", "old", "--session", "s"]).ok();
    dir.sparkq(&["stream", "end", "old"]).ok();
    for _ in 0..3 {
        dir.enqueue("build", "run-bash", &[]);
    }

    let srv = Server::start(&dir);
    let banner = srv.banner(5, Duration::from_secs(10));
    let text = banner.join("\n");
    assert!(text.contains(dir.config().to_str().unwrap()), "{text}");
    assert!(text.contains(dir.db_path().to_str().unwrap()), "{text}");
    assert!(text.contains("build (3 queued)") && text.contains("docs (0 queued)"), "{text}");
    assert!(!text.contains("old"), "an ended stream is listed: {text}");
}

#[test]
fn tasks_reported_as_created_are_in_the_database_after_the_server_is_killed_with_sigkill() {
    let dir = Dir::new("kill-9");
    let mut srv = Server::start(&dir);
    let qid = srv.stream("s", "q");

    let made: Vec<String> = (0..50).map(|_| srv.enqueue(&qid, "run-bash")).collect();
    srv.kill();

    let n: i64 = dir
        .db()
        .query_row("SELECT count(*) FROM tasks WHERE status = 'queued'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 50);
    for id in &made {
        assert_eq!(dir.task(id)["status"], "queued");
    }
    let integrity: String = dir.db().query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
}
