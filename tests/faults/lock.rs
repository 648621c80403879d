//! The server's lock file under faults: a lock naming a PID that now
//! belongs to an unrelated process, a lock full of garbage, two `run`s
//! started at the same instant, and a port something else already holds.

use std::fs::OpenOptions;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use crate::support::{isolate, poll, Dir, Server, BIN};

/// An unrelated process (`sleep`), killed on drop.
struct Bystander(Child);

impl Bystander {
    fn start() -> Bystander {
        let child = Command::new("sleep")
            .arg("120")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sleep");
        Bystander(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serves `dir` over a lock file that is already there, checks that the
/// new server owns it, then stops it and checks the lock is gone.
fn take_over_and_stop(dir: &Dir) {
    let mut srv = Server::start(dir);
    assert_eq!(srv.get("/health").0, 200);
    let lock = std::fs::read_to_string(dir.lock_path()).expect("read the lock file");
    assert_eq!(lock, format!("{}\nhttp://{}\n", srv.pid(), srv.addr), "lock file after take-over");
    let status = dir.sparkq(&["status"]);
    assert!(status.ok().contains(&format!("running (pid {}", srv.pid())), "{status}");
    dir.sparkq(&["stop"]).ok();
    let code = srv.wait_exit(Duration::from_secs(30)).expect("the server exits after stop");
    assert!(code.success(), "the server exited {code}");
    assert!(!dir.lock_path().exists(), "stop left the lock file");
}

#[test]
fn a_lock_naming_a_pid_now_of_an_unrelated_process_is_taken_over_leaving_that_process_alone() {
    let dir = Dir::new("lock-foreign-pid");
    let mut other = Bystander::start();
    // Something listens where the old URL points, but it is not SparkQ.
    let impostor = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", impostor.local_addr().unwrap());
    dir.write("sparkq.lock", &format!("{}\n{url}\n", other.pid()));

    let status = dir.sparkq(&["status"]);
    assert!(status.ok().contains("server: not running"), "{status}");
    let stop = dir.sparkq(&["stop"]);
    assert!(stop.ok().contains("no server is running"), "{stop}");
    assert!(other.alive(), "stop signalled the process that now has the lock's PID");

    take_over_and_stop(&dir);
    assert!(other.alive(), "the server touched the process that had the lock's PID");
}

#[test]
fn a_lock_file_with_garbage_in_it_is_taken_over() {
    let garbage: [&[u8]; 4] = [
        b"\x00\xff\xfe not a lock \x80\n\n",
        b"99999999999999999999999\nhttp://127.0.0.1:1\n",
        b"",
        b"-1\nftp://elsewhere\n",
    ];
    for (i, bytes) in garbage.iter().enumerate() {
        let dir = Dir::new(&format!("lock-garbage-{i}"));
        std::fs::write(dir.lock_path(), bytes).unwrap();
        let status = dir.sparkq(&["status"]);
        assert!(status.ok().contains("server: not running"), "{status}");
        let stop = dir.sparkq(&["stop"]);
        assert!(stop.ok().contains("no server is running"), "{stop}");
        take_over_and_stop(&dir);
    }
}

/// Processes not yet handed to `Server::attach`; killed on drop, so a
/// failed round leaves nothing running.
struct Racers(Vec<Child>);

impl Drop for Racers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn two_runs_started_at_the_same_instant_leave_exactly_one_serving() {
    for round in 0..4 {
        // A fresh folder each round: no lock file and no database yet. Both
        // block opening a FIFO for reading; opening it for writing releases
        // them together.
        let dir = Dir::new(&format!("lock-twins-{round}"));
        let fifo = dir.path.join("go");
        let made = Command::new("mkfifo").arg(&fifo).status().expect("run mkfifo");
        assert!(made.success(), "mkfifo failed");
        let mut racers = Racers(
            (0..2)
                .map(|_| {
                    let mut cmd = Command::new("sh");
                    cmd.arg("-c")
                        .arg("exec 3<\"$1\"; shift; exec \"$@\"")
                        .arg("sh")
                        .arg(&fifo)
                        .arg(BIN)
                        .arg("--config")
                        .arg(dir.config())
                        .args(["run", "--port", "0"]);
                    isolate(&mut cmd, &dir.path);
                    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
                    cmd.spawn().expect("spawn a racer")
                })
                .collect(),
        );
        // Give both shells time to block on the FIFO; if one is late it
        // still starts, only less exactly at the same time.
        thread::sleep(Duration::from_millis(300));
        let gate = OpenOptions::new().write(true).open(&fifo).expect("open the FIFO for writing");
        let pids: Vec<u32> = racers.0.iter().map(Child::id).collect();
        // A racer is past the FIFO once its shell has become sparkq; one
        // that already exited (the loser, quickly) has no readable exe.
        let both_started = poll(Duration::from_secs(10), || {
            pids.iter()
                .all(|p| match std::fs::read_link(format!("/proc/{p}/exe")) {
                    Ok(exe) => exe.ends_with("sparkq"),
                    Err(_) => true,
                })
                .then_some(())
        });
        drop(gate);
        assert!(both_started.is_some(), "the racers did not get past the FIFO");

        let outcomes: Vec<_> =
            std::mem::take(&mut racers.0).into_iter().map(Server::attach).collect();
        let mut serving: Vec<Server> = Vec::new();
        let mut refused = Vec::new();
        for o in outcomes {
            match o {
                Ok(s) => serving.push(s),
                Err(e) => refused.push(e),
            }
        }
        assert_eq!(
            serving.len(),
            1,
            "round {round}: {} servers serve; refused: {refused:?}",
            serving.len()
        );
        assert_eq!(refused.len(), 1, "round {round}");
        let loser = &refused[0];
        assert_eq!(loser.code, Some(2), "round {round}: {loser:?}");
        assert!(
            loser.stderr.contains("another sparkq server is running"),
            "round {round}: {loser:?}"
        );
        assert!(loser.stdout.is_empty(), "the loser printed a URL: {loser:?}");

        let mut winner = serving.pop().unwrap();
        assert_eq!(winner.get("/health").0, 200);
        let status = dir.sparkq(&["status"]);
        assert!(status.ok().contains(&format!("running (pid {}", winner.pid())), "{status}");
        dir.sparkq(&["stop"]).ok();
        let code = winner.wait_exit(Duration::from_secs(30)).expect("the winner exits after stop");
        assert!(code.success(), "round {round}: the winner exited {code}");
        assert_eq!(dir.integrity(), "ok");
    }
}

#[test]
fn a_port_already_taken_is_refused_with_an_error_naming_it_and_leaves_no_live_lock() {
    let dir = Dir::new("lock-port-taken");
    let squatter = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = squatter.local_addr().unwrap().port().to_string();
    let mut cmd = dir.command(&["run", "--port", &port]);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn sparkq run");
    let e = Server::attach(child).map(|s| s.addr.clone()).expect_err("run served on a taken port");
    assert_eq!(e.code, Some(2), "{e:?}");
    assert!(
        e.stderr.contains(&format!("127.0.0.1:{port}")),
        "the error does not name the port: {e:?}"
    );
    assert!(e.stderr.contains("already in use"), "{e:?}");
    assert!(e.stdout.is_empty(), "{e:?}");

    // Nothing claims to serve, and the next run on a free port starts.
    let status = dir.sparkq(&["status"]);
    assert!(status.ok().contains("server: not running"), "{status}");
    take_over_and_stop(&dir);
    drop(squatter);
}
