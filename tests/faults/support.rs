//! What the fault tests share: `Dir`, a fresh folder with a `sparkq.yml`;
//! `Server`, the built binary serving a folder on a free loopback port and
//! killed on drop; and one-shot HTTP/1.1 exchanges over `TcpStream`, so no
//! extra dev-dependency is needed.
//!
//! N.B. Every request goes on a connection of its own (`Connection: close`).
//! tiny_http queues a connection that arrives in a burst larger than its
//! idle threads until some other connection ends, so long keep-alive
//! connections can starve a new one; these tests are about other faults.
//!
//! Every wait here is bounded, so a hung process fails its test instead of
//! hanging the suite.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_sparkq");

/// The longest one CLI command may take before its test fails.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// The longest one HTTP exchange may take.
const HTTP_LIMIT: Duration = Duration::from_secs(30);

/// The longest a server may take to print its URL.
const START_LIMIT: Duration = Duration::from_secs(30);

/// A config for most fault tests: a free port, a sweep every second, and
/// `quick`, a tool whose tasks are auto-failed after two seconds.
pub const CONFIG: &str = "\
project:
  name: faults
server:
  port: 0
maintenance:
  interval_seconds: 1
script_dirs: []
tools:
  work:
    description: ordinary work
    timeout: 600
  quick:
    description: auto-failed after two seconds
    timeout: 1
";

/// A unique folder under the system temp folder; removed on drop unless
/// the test failed, so a failure can be looked at.
pub struct Dir {
    pub path: PathBuf,
}

impl Dir {
    /// A new folder with `CONFIG` as its `sparkq.yml`.
    pub fn new(label: &str) -> Dir {
        let dir = Dir::empty(label);
        dir.write("sparkq.yml", CONFIG);
        dir
    }

    /// A new, empty folder.
    pub fn empty(label: &str) -> Dir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);

        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir()
            .join("sparkq-faults")
            .join(format!("{}-{n}-{label}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path).expect("remove an old test folder");
        }
        std::fs::create_dir_all(&path).expect("create the test folder");
        Dir { path }
    }

    pub fn config(&self) -> PathBuf {
        self.path.join("sparkq.yml")
    }

    pub fn db_path(&self) -> PathBuf {
        self.path.join("sparkq.db")
    }

    pub fn lock_path(&self) -> PathBuf {
        self.path.join("sparkq.lock")
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path.join(rel);
        std::fs::write(&path, text).expect("write a test file");
        path
    }

    /// The command `sparkq --config <dir>/sparkq.yml ARGS...`, run in the
    /// folder with an environment that cannot point it elsewhere.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config").arg(self.config()).args(args);
        isolate(&mut cmd, &self.path);
        cmd
    }

    /// Runs the CLI to its end.
    pub fn sparkq(&self, args: &[&str]) -> Out {
        run(self.command(args), args)
    }

    /// A session `s` and a stream `name` in it, through the CLI.
    pub fn stream(&self, name: &str) {
        self.sparkq(&["session", "create", "s"]).ok();
        self.sparkq(&["stream", "create", name, "--session", "s"]).ok();
    }

    /// Opens the database read-only, for checks neither the CLI nor the
    /// API offers.
    pub fn db(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_with_flags(
            self.db_path(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open the test database");
        conn.busy_timeout(Duration::from_secs(10)).expect("set busy timeout");
        conn
    }

    /// `PRAGMA integrity_check`, `"ok"` when sound.
    pub fn integrity(&self) -> String {
        let conn = self.db();
        let mut st = conn.prepare("PRAGMA integrity_check").expect("prepare integrity_check");
        let rows: Vec<String> = st
            .query_map([], |r| r.get(0))
            .expect("run integrity_check")
            .map(Result::unwrap)
            .collect();
        rows.join("; ")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if !thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Clears what could point the binary at another config or change its log.
pub fn isolate(cmd: &mut Command, cwd: &Path) {
    cmd.current_dir(cwd)
        .env_remove("SPARKQ_CONFIG")
        .env_remove("SPARKQ_TOKEN")
        .env_remove("SPARKQ_LOG");
}

/// How a command ended.
#[derive(Debug)]
pub struct Out {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Asserts exit 0; returns stdout trimmed.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "expected exit 0 from {self}");
        self.stdout.trim()
    }

    /// Asserts exit 2 with a message; returns the message.
    pub fn refused(&self) -> &str {
        assert_eq!(self.code, 2, "expected exit 2 from {self}");
        assert!(self.stderr.starts_with("sparkq: "), "expected 'sparkq: ' on stderr from {self}");
        &self.stderr
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?}\nexit: {}\n--- stdout\n{}\n--- stderr\n{}\n---",
            self.args, self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` to its end within `COMMAND_LIMIT`, reading both pipes.
pub fn run(mut cmd: Command, args: &[&str]) -> Out {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn a command");
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let status = wait_for(&mut child, COMMAND_LIMIT);
    let out = Out {
        args: args.iter().map(|a| a.to_string()).collect(),
        code: status.and_then(|s| s.code()).unwrap_or(-1),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    };
    assert!(status.is_some(), "still running after {COMMAND_LIMIT:?}, killed: {out}");
    out
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The exit status once `child` exits within `limit`; else it is killed
/// and `None` is returned.
pub fn wait_for(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A running server; killed with SIGKILL on drop.
pub struct Server {
    child: Child,
    /// `127.0.0.1:PORT`, from the URL on the first stdout line.
    pub addr: String,
    stderr: Arc<Mutex<String>>,
}

/// A `run` that ended without printing its URL.
#[derive(Debug)]
pub struct NoStart {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Server {
    /// `sparkq --config <dir>/sparkq.yml run --port 0`.
    pub fn start(dir: &Dir) -> Server {
        Server::spawn(dir.command(&["run", "--port", "0"]))
    }

    /// Spawns `cmd` (a `run`) and waits for the URL line; panics with the
    /// server's stderr when none comes.
    pub fn spawn(mut cmd: Command) -> Server {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = cmd.spawn().expect("spawn sparkq run");
        Server::attach(child).unwrap_or_else(|e| panic!("sparkq run did not start: {e:?}"))
    }

    /// Waits until `child` (a `run` spawned with piped stdout and stderr)
    /// prints its URL, or exits without one.
    pub fn attach(mut child: Child) -> Result<Server, NoStart> {
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut err_pipe = BufReader::new(child.stderr.take().expect("piped stderr"));
        let err_reader = thread::spawn(move || {
            let mut line = String::new();
            while matches!(err_pipe.read_line(&mut line), Ok(n) if n > 0) {
                sink.lock().unwrap_or_else(|p| p.into_inner()).push_str(&line);
                line.clear();
            }
        });
        let (tx, rx) = mpsc::channel();
        let out_pipe = BufReader::new(child.stdout.take().expect("piped stdout"));
        thread::spawn(move || {
            // The rest of stdout is read and dropped so the server never
            // blocks on a full pipe.
            for line in out_pipe.lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + START_LIMIT;
        let first = loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(line) => break Some(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break None,
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() >= deadline => break None,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        };
        match first.as_deref().and_then(|l| l.strip_prefix("http://")) {
            Some(addr) => {
                let addr = addr.trim_end_matches('/').to_string();
                Ok(Server { child, addr, stderr })
            }
            None => {
                let status = wait_for(&mut child, Duration::from_secs(10));
                let _ = err_reader.join();
                let mut stdout = first.unwrap_or_default();
                stdout.extend(rx.try_iter().map(|l| format!("\n{l}")));
                let stderr = stderr.lock().unwrap_or_else(|p| p.into_inner()).clone();
                Err(NoStart { code: status.and_then(|s| s.code()), stdout, stderr })
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Returns true if and only if the process has not exited.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The exit status once the server exits within `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        wait_for(&mut self.child, limit)
    }

    /// A JSON request on a new connection: the status and the body
    /// (`Null` when empty).
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (code, text) = http(&self.addr, method, path, body.map(|b| b.to_string()).as_deref());
        (code, parse_json(code, &text))
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(body))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            let log = self.stderr();
            let tail = &log[log.len().saturating_sub(4096)..];
            eprintln!("--- server log (end) of the failed test\n{tail}---");
        }
    }
}

fn parse_json(code: u16, text: &str) -> Value {
    if text.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("body of a {code} is not JSON ({e}): {text}"))
}

fn request_text(addr: &str, method: &str, path: &str, body: Option<&str>) -> String {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        ));
    } else if matches!(method, "POST" | "PUT") {
        req.push_str("Content-Length: 0\r\n\r\n");
    } else {
        req.push_str("\r\n");
    }
    req
}

/// One HTTP/1.1 exchange on a new connection; the status and the body.
pub fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(HTTP_LIMIT)).expect("set read timeout");
    s.set_write_timeout(Some(HTTP_LIMIT)).expect("set write timeout");
    let mut r = BufReader::new(s);
    r.get_mut()
        .write_all(request_text(addr, method, path, body).as_bytes())
        .unwrap_or_else(|e| panic!("{method} {path}: send: {e}"));
    read_response(&mut r).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// Reads one response: the status line, the headers, and a body framed by
/// Content-Length, chunked encoding, or the end of the connection.
fn read_response(r: &mut BufReader<TcpStream>) -> Result<(u16, String), String> {
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| format!("no response: {e}"))?;
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("malformed status line {line:?}"))?;
    let (mut length, mut chunked) = (None, false);
    loop {
        let mut h = String::new();
        r.read_line(&mut h).map_err(|e| format!("reading headers: {e}"))?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let Some((k, v)) = h.split_once(':') else { continue };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
        match k.as_str() {
            "content-length" => length = v.parse::<usize>().ok(),
            "transfer-encoding" => chunked = v.contains("chunked"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).map_err(|e| format!("reading a chunk size: {e}"))?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| format!("malformed chunk size {size:?}"))?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).map_err(|e| format!("reading a chunk: {e}"))?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body).map_err(|e| format!("reading the body: {e}"))?;
    } else if code != 204 && code != 304 {
        r.read_to_end(&mut body).map_err(|e| format!("reading the body: {e}"))?;
    }
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}

/// Polls `check` every 50 ms until it gives a value or `limit` passes.
pub fn poll<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}
