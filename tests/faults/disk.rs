//! A full disk and a read-only database: writes fail with a clear error (a
//! 503 naming the cause, or exit 2 from the CLI), reads keep working, the
//! server stays up, a refused write leaves nothing behind, and once the
//! fault is gone writes work again.
//!
//! These need root (to mount a small tmpfs, or to run the server as
//! `nobody`); where that is not possible the test says on stderr that it
//! was skipped and why.

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{isolate, run, Dir, Server, BIN, CONFIG};

/// A tmpfs mounted over a folder; unmounted on drop.
struct Mount {
    path: PathBuf,
}

impl Mount {
    fn tmpfs(path: &Path, size: &str) -> Result<Mount, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Mount { path: path.to_path_buf() })
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.path).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

fn skipped(test: &str, why: &str) {
    eprintln!("SKIPPED {test}: {why}");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(str::to_string))
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"))
}

/// Writes zeros to `path` until the file system is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).expect("create the filler");
    let chunk = vec![0u8; 64 * 1024];
    for _ in 0..100_000 {
        if let Err(e) = f.write_all(&chunk) {
            assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "filling the disk: {e}");
            let _ = f.sync_all();
            return;
        }
    }
    panic!("the disk did not fill up");
}

/// Every task row as text, to compare before and after refused writes.
fn snapshot(dir: &Dir) -> Vec<String> {
    let db = dir.db();
    let mut st = db.prepare("SELECT * FROM tasks ORDER BY seq").unwrap();
    let n = st.column_count();
    st.query_map([], |r| {
        let cells: Vec<String> = (0..n)
            .map(|i| format!("{:?}", r.get_ref(i).map(|v| format!("{v:?}")).unwrap_or_default()))
            .collect();
        Ok(cells.join("|"))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The task ids in the database.
fn rows(dir: &Dir) -> HashSet<String> {
    let db = dir.db();
    let mut st = db.prepare("SELECT id FROM tasks").unwrap();
    st.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

/// Stream counters that disagree with the rows.
fn counter_drift(dir: &Dir) -> Vec<String> {
    let db = dir.db();
    let mut st = db
        .prepare(
            "SELECT name, queued, running, succeeded, failed, \
             (SELECT count(*) FROM tasks t WHERE t.stream_id = s.id AND status = 'queued'), \
             (SELECT count(*) FROM tasks t WHERE t.stream_id = s.id AND status = 'running'), \
             (SELECT count(*) FROM tasks t WHERE t.stream_id = s.id AND status = 'succeeded'), \
             (SELECT count(*) FROM tasks t WHERE t.stream_id = s.id AND status = 'failed') \
             FROM streams s",
        )
        .unwrap();
    st.query_map([], |r| {
        let c: Vec<i64> = (1..9).map(|i| r.get(i)).collect::<Result<_, _>>()?;
        Ok((r.get::<_, String>(0)?, c))
    })
    .unwrap()
    .map(Result::unwrap)
    .filter(|(_, c)| c[..4] != c[4..])
    .map(|(n, c)| format!("{n}: {c:?}"))
    .collect()
}

fn task_id(t: &Value) -> String {
    t["task"]["id"].as_str().expect("task id").to_string()
}

fn status_of(srv: &Server, id: &str) -> String {
    let (code, t) = srv.get(&format!("/api/tasks/{id}"));
    assert_eq!(code, 200, "{t}");
    t["task"]["status"].as_str().unwrap().to_string()
}

/// The GET endpoints a dashboard and a worker use all answer.
fn assert_reads_work(srv: &Server, some_task: &str) {
    for path in [
        "/health".to_string(),
        "/stats".to_string(),
        "/api/tasks?limit=1000".to_string(),
        "/api/streams".to_string(),
        "/api/sessions".to_string(),
        "/api/streams/q".to_string(),
        format!("/api/tasks/{some_task}"),
        "/".to_string(),
    ] {
        let r = crate::support::http(&srv.addr, "GET", &path, None);
        assert_eq!(r.0, 200, "GET {path}: {}", r.1);
    }
    let peek = srv.get("/api/streams/q/peek").0;
    assert!(peek == 200 || peek == 204, "peek answered {peek}");
}

/// Asserts a refused write: 503 with a message naming `cause`.
fn assert_refused(what: &str, r: &(u16, Value), cause: &str) {
    assert_eq!(r.0, 503, "{what}: {}", r.1);
    let msg = r.1["error"].as_str().unwrap_or_default();
    assert!(msg.contains(cause), "{what}: the error does not say \"{cause}\": {msg}");
}

#[test]
fn a_full_disk_refuses_writes_keeps_reads_and_the_server_and_writes_work_once_space_returns() {
    let test = "a_full_disk_refuses_writes";
    let dir = Dir::empty("disk-full");
    let _mount = match Mount::tmpfs(&dir.path, "6m") {
        Ok(m) => m,
        Err(why) => return skipped(test, &format!("cannot mount a small tmpfs ({why})")),
    };
    dir.write("sparkq.yml", CONFIG);
    dir.stream("q");
    let mut srv = Server::start(&dir);
    let mut acked = HashSet::new();
    let enqueue = |srv: &Server, payload: Value| {
        srv.post("/api/tasks", json!({ "stream_id": "q", "tool_name": "work", "payload": payload }))
    };
    let running = task_id(&enqueue(&srv, json!({})).1);
    assert_eq!(srv.post(&format!("/api/tasks/{running}/claim"), json!({})).0, 200);
    let queued = task_id(&enqueue(&srv, json!({})).1);
    acked.extend([running.clone(), queued.clone()]);

    let filler = dir.path.join("filler");
    fill(&filler);

    // Large payloads make the log grow; some may still fit in space the
    // database already holds, but the disk runs out soon.
    let big = "x".repeat(64 * 1024);
    let mut refusals = 0;
    for _ in 0..200 {
        let r = enqueue(&srv, json!({ "big": big }));
        if r.0 == 201 {
            acked.insert(task_id(&r.1));
            continue;
        }
        assert_refused("enqueue on a full disk", &r, "disk is full");
        refusals += 1;
        if refusals == 3 {
            break;
        }
    }
    assert_eq!(refusals, 3, "the disk never filled up");

    // Each write is applied whole or refused whole.
    let r = srv.post(
        &format!("/api/tasks/{running}/complete"),
        json!({ "result_summary": "done", "stdout": "y".repeat(256 * 1024) }),
    );
    let completed = r.0 == 200;
    if !completed {
        assert_refused("complete on a full disk", &r, "disk is full");
        assert_eq!(status_of(&srv, &running), "running", "a refused complete changed the task");
    }
    let r = srv.post("/api/sessions", json!({ "name": "later", "description": big }));
    if r.0 != 201 {
        assert_refused("session create on a full disk", &r, "disk is full");
        assert_eq!(srv.get("/api/sessions/later").0, 404, "a refused create left a session");
    }
    let out = dir.sparkq(&[
        "enqueue",
        "--stream",
        "q",
        "--tool",
        "work",
        "--payload",
        &json!({ "big": big }).to_string(),
    ]);
    if out.code == 0 {
        acked.insert(out.ok().to_string());
    } else {
        assert!(out.refused().contains("disk is full"), "{out}");
    }

    // Reads keep working, in the server and the CLI, and the server lives.
    assert_reads_work(&srv, &running);
    let (_, stats) = srv.get("/stats");
    let total: i64 = ["queued", "running", "succeeded", "failed"]
        .iter()
        .map(|k| stats["tasks"][k].as_i64().unwrap())
        .sum();
    assert_eq!(total as usize, acked.len(), "/stats: {stats}");
    dir.sparkq(&["tasks", "--json"]).ok();
    dir.sparkq(&["task", &queued]).ok();
    assert!(srv.alive(), "the server died on a full disk:\n{}", srv.stderr());
    assert!(srv.stderr().contains("disk is full"), "the log does not say why:\n{}", srv.stderr());

    // Space returns: writes work again, on the same server.
    std::fs::remove_file(&filler).unwrap();
    let r = enqueue(&srv, json!({ "after": true }));
    assert_eq!(r.0, 201, "enqueue after space returned: {}", r.1);
    acked.insert(task_id(&r.1));
    if !completed {
        let r = srv
            .post(&format!("/api/tasks/{running}/complete"), json!({ "result_summary": "done" }));
        assert_eq!(r.0, 200, "complete after space returned: {}", r.1);
    }
    assert_eq!(status_of(&srv, &running), "succeeded");
    assert!(srv.alive());

    // Nothing half-done: the rows are exactly the acknowledged tasks.
    assert_eq!(rows(&dir), acked, "rows differ from the acknowledged tasks");
    assert_eq!(counter_drift(&dir), Vec::<String>::new());
    assert_eq!(dir.integrity(), "ok");
    drop(srv);
}

/// `setpriv` running `args` as user and group 65534 (nobody).
fn as_nobody(dir: &Dir, args: &[&str]) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN, "--config"])
        .arg(dir.config())
        .args(args);
    isolate(&mut cmd, &dir.path);
    cmd
}

#[test]
fn a_read_only_database_refuses_writes_keeps_reads_and_the_server() {
    let test = "a_read_only_database_refuses_writes";
    // Root ignores file modes, so the server runs as nobody over a database
    // file it may only read.
    if !is_root() {
        return skipped(test, "needs root to run the server as another user");
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        return skipped(test, "setpriv (util-linux) is not installed");
    }
    let dir = Dir::new("read-only");
    dir.stream("q");
    let enqueue =
        |d: &Dir| d.sparkq(&["enqueue", "--stream", "q", "--tool", "work"]).ok().to_string();
    let running = enqueue(&dir);
    dir.sparkq(&["claim", "--stream", "q"]).ok();
    let queued = enqueue(&dir);
    let before = snapshot(&dir);

    let db = dir.db_path();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut srv = Server::spawn(as_nobody(&dir, &["run", "--port", "0"]));

    let cause = "read-only";
    let q = "/api/streams/q";
    let writes: Vec<(&str, String, Value)> = vec![
        ("enqueue", "/api/tasks".into(), json!({ "stream_id": "q", "tool_name": "work" })),
        ("claim next", format!("{q}/claim"), json!({})),
        ("claim by id", format!("/api/tasks/{queued}/claim"), json!({})),
        ("complete", format!("/api/tasks/{running}/complete"), json!({ "result_summary": "x" })),
        ("fail", format!("/api/tasks/{running}/fail"), json!({ "error_message": "x" })),
        ("session create", "/api/sessions".into(), json!({ "name": "later" })),
    ];
    for (what, path, body) in &writes {
        assert_refused(what, &srv.post(path, body.clone()), cause);
    }
    assert_refused("end stream", &srv.call("PUT", &format!("{q}/end"), None), cause);
    assert_reads_work(&srv, &running);

    // The CLI, as the same user, refuses writes the same way and reads.
    let out = run(as_nobody(&dir, &["enqueue", "--stream", "q", "--tool", "work"]), &["enqueue"]);
    assert!(out.refused().contains(cause), "{out}");
    let out = run(as_nobody(&dir, &["tasks", "--json"]), &["tasks"]);
    assert_eq!(serde_json::from_str::<Value>(out.ok()).unwrap().as_array().unwrap().len(), 2);

    // Let the sweep pass a few times (it runs every second here).
    std::thread::sleep(Duration::from_millis(2500));
    assert!(srv.alive(), "the server died on a read-only database:\n{}", srv.stderr());
    assert_eq!(snapshot(&dir), before, "a refused write changed the database");

    // Writable again: a server started on it writes.
    dir.sparkq(&["stop"]).ok();
    let code = srv.wait_exit(Duration::from_secs(30)).expect("the server exits after stop");
    assert!(code.success(), "the server exited {code}:\n{}", srv.stderr());
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let srv = Server::start(&dir);
    assert_eq!(srv.post("/api/tasks", writes[0].2.clone()).0, 201);
    let r = srv.post(&format!("/api/tasks/{running}/complete"), json!({ "result_summary": "x" }));
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(dir.integrity(), "ok");
}

/// `mount -o remount,MODE` on a mounted tmpfs.
fn remount(path: &Path, mode: &str) -> Result<(), String> {
    let out = Command::new("mount")
        .args(["-o", &format!("remount,{mode}")])
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[test]
fn a_database_on_a_read_only_file_system_is_reported_as_read_only() {
    let test = "a_database_on_a_read_only_file_system";
    let dir = Dir::empty("read-only-fs");
    let mount = match Mount::tmpfs(&dir.path, "4m") {
        Ok(m) => m,
        Err(why) => return skipped(test, &format!("cannot mount a small tmpfs ({why})")),
    };
    dir.write("sparkq.yml", CONFIG);
    dir.stream("q");
    let id = dir.sparkq(&["enqueue", "--stream", "q", "--tool", "work"]).ok().to_string();
    // No process has the files open now, so the remount is allowed.
    if let Err(why) = remount(&mount.path, "ro") {
        return skipped(test, &format!("cannot remount the tmpfs read-only ({why})"));
    }

    for args in [&["tasks"][..], &["enqueue", "--stream", "q", "--tool", "work"]] {
        let out = dir.sparkq(args);
        assert!(out.refused().contains("read-only"), "{out}");
    }
    let mut cmd = dir.command(&["run", "--port", "0"]);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let e = Server::attach(cmd.spawn().unwrap()).map(|s| s.addr.clone()).expect_err("served");
    assert_eq!(e.code, Some(2), "{e:?}");
    assert!(e.stderr.to_lowercase().contains("read-only"), "{e:?}");

    remount(&mount.path, "rw").expect("remount read-write");
    let out = dir.sparkq(&["task", &id, "--json"]);
    assert_eq!(serde_json::from_str::<Value>(out.ok()).unwrap()["status"], "queued");
    assert_eq!(dir.integrity(), "ok");
}

// Cause: SQLite reports a full disk met while growing the -shm file as a
// bare "disk I/O error", which the message passed on unexplained.
#[test]
fn opening_the_database_on_a_full_disk_says_the_disk_is_full() {
    let test = "opening_the_database_on_a_full_disk";
    let dir = Dir::empty("full-at-open");
    let _mount = match Mount::tmpfs(&dir.path, "2m") {
        Ok(m) => m,
        Err(why) => return skipped(test, &format!("cannot mount a small tmpfs ({why})")),
    };
    dir.write("sparkq.yml", CONFIG);
    dir.stream("q");
    let id = dir.sparkq(&["enqueue", "--stream", "q", "--tool", "work"]).ok().to_string();
    // The last connection closed and removed the -shm file; with the disk
    // full it cannot be made again.
    let filler = dir.path.join("filler");
    fill(&filler);

    let out = dir.sparkq(&["tasks"]);
    assert!(out.refused().contains("disk is full"), "{out}");
    let mut cmd = dir.command(&["run", "--port", "0"]);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let e = Server::attach(cmd.spawn().unwrap()).map(|s| s.addr.clone()).expect_err("served");
    assert_eq!(e.code, Some(2), "{e:?}");
    assert!(e.stderr.contains("disk is full"), "{e:?}");

    std::fs::remove_file(&filler).unwrap();
    let out = dir.sparkq(&["task", &id, "--json"]);
    assert_eq!(serde_json::from_str::<Value>(out.ok()).unwrap()["status"], "queued");
    assert_eq!(dir.integrity(), "ok");
}
