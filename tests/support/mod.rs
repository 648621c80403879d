//! What the integration tests share: `Dir`, a fresh folder with a
//! `sparkq.yml`, in which the built binary runs as a CLI; `Server`, the
//! binary serving that folder on a free loopback port; and a tiny HTTP/1.1
//! client over `TcpStream`, so that no extra dev-dependency is needed.
//!
//! Every wait here is bounded: a hung process or socket fails its test
//! instead of hanging the suite.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_sparkq");

/// The longest a single CLI command may run before its test fails.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// The longest a server may take to print its URL.
const START_LIMIT: Duration = Duration::from_secs(30);

/// The longest one HTTP exchange may take.
const HTTP_LIMIT: Duration = Duration::from_secs(30);

/// The config most tests run with. The tools cover each way a timeout is
/// resolved: `fixed` has its own, `custom` takes a class that is not one of
/// the defaults, `plain` names no class, `quick` times out after a second.
/// The body limit is small so that a 413 needs only a small body.
pub const CONFIG: &str = "\
project:
  name: it
server:
  port: 0
  max_body_bytes: 2048
maintenance:
  interval_seconds: 1
script_dirs: []
task_classes:
  CUSTOM:
    timeout: 77
tools:
  run-bash:
    description: Execute a bash script
    task_class: FAST_SCRIPT
  fixed:
    description: A tool with its own timeout
    task_class: LLM_HEAVY
    timeout: 42
  custom:
    description: A tool whose class is not a default one
    task_class: CUSTOM
  plain:
    description: A tool that names no class
  quick:
    description: Times out after a second
    timeout: 1
";

/// A unique empty folder under the system's temp folder; removed on drop
/// unless the test failed, so that a failure can be looked at.
pub struct Dir {
    pub path: PathBuf,
}

impl Dir {
    /// A new folder with `CONFIG` as its `sparkq.yml`.
    pub fn new(label: &str) -> Dir {
        Dir::with_config(label, CONFIG)
    }

    /// A new folder with `yaml` as its `sparkq.yml`.
    pub fn with_config(label: &str, yaml: &str) -> Dir {
        let dir = Dir::empty(label);
        dir.write("sparkq.yml", yaml);
        dir
    }

    /// A new folder with nothing in it.
    pub fn empty(label: &str) -> Dir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);

        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let root = std::env::temp_dir().join("sparkq-it");
        let path = root.join(format!("{}-{n}-{label}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path).expect("remove an old test folder");
        }
        std::fs::create_dir_all(&path).expect("create the test folder");
        Dir { path }
    }

    /// The config file the CLI is pointed at.
    pub fn config(&self) -> PathBuf {
        self.path.join("sparkq.yml")
    }

    pub fn db_path(&self) -> PathBuf {
        self.path.join("sparkq.db")
    }

    pub fn lock_path(&self) -> PathBuf {
        self.path.join("sparkq.lock")
    }

    /// Writes `text` to `rel` inside the folder, creating parent folders.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent folder");
        }
        std::fs::write(&path, text).expect("write test file");
        path
    }

    /// Runs `sparkq --config <dir>/sparkq.yml ARGS...` in the folder.
    pub fn sparkq(&self, args: &[&str]) -> Out {
        let config = self.config();
        let mut all = vec!["--config", config.to_str().expect("UTF-8 temp path")];
        all.extend_from_slice(args);
        self.sparkq_bare(&all)
    }

    /// Runs `sparkq ARGS...` in the folder, with no `--config` added.
    pub fn sparkq_bare(&self, args: &[&str]) -> Out {
        self.sparkq_within(args, COMMAND_LIMIT)
    }

    /// Runs `sparkq ARGS...` in the folder; the test fails if it takes
    /// longer than `limit`.
    pub fn sparkq_within(&self, args: &[&str], limit: Duration) -> Out {
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = cmd.spawn().expect("spawn sparkq");
        finish(child, args, limit)
    }

    /// The command for `sparkq ARGS...` in this folder, with an environment
    /// that cannot point it elsewhere.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(&self.path)
            .env_remove("SPARKQ_CONFIG")
            .env_remove("SPARKQ_TOKEN")
            .env_remove("SPARKQ_LOG");
        cmd
    }

    /// A session and a stream in it, made through the CLI.
    pub fn stream(&self, session: &str, stream: &str) {
        self.sparkq(&["session", "create", session]).ok();
        self.sparkq(&["stream", "create", stream, "--session", session]).ok();
    }

    /// Enqueues one task through the CLI and returns its id.
    pub fn enqueue(&self, stream: &str, tool: &str, extra: &[&str]) -> String {
        let mut args = vec!["enqueue", "--stream", stream, "--tool", tool];
        args.extend_from_slice(extra);
        let id = self.sparkq(&args).ok().to_string();
        assert_task_id(&id);
        id
    }

    /// A task as `sparkq task ID --json` shows it.
    pub fn task(&self, id: &str) -> Value {
        self.sparkq(&["task", id, "--json"]).json()
    }

    /// Opens the database directly, for what neither the CLI nor the API
    /// can do (such as moving a finish time into the past).
    pub fn db(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open(self.db_path()).expect("open the test database");
        conn.busy_timeout(Duration::from_secs(10)).expect("set busy timeout");
        conn
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if !thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// How a CLI command ended.
#[derive(Debug)]
pub struct Out {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Asserts exit 0; returns stdout without its surrounding blanks.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "expected exit 0 from {self}");
        self.stdout.trim()
    }

    /// Asserts exit 0 and parses stdout as one JSON value.
    pub fn json(&self) -> Value {
        let text = self.ok();
        serde_json::from_str(text).unwrap_or_else(|e| panic!("stdout is not JSON ({e}) in {self}"))
    }

    /// Asserts exit 1 (nothing to peek or claim) with nothing on stdout.
    pub fn nothing(&self) -> &str {
        assert_eq!(self.code, 1, "expected exit 1 from {self}");
        assert_eq!(self.stdout, "", "expected empty stdout from {self}");
        &self.stderr
    }

    /// Asserts exit 2 with a `sparkq: ` message on stderr and nothing on
    /// stdout; returns the message.
    pub fn refused(&self) -> &str {
        assert_eq!(self.code, 2, "expected exit 2 from {self}");
        assert!(self.stderr.starts_with("sparkq: "), "expected 'sparkq: ' on stderr from {self}");
        assert_eq!(self.stdout, "", "expected empty stdout from {self}");
        &self.stderr
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sparkq {:?}\nexit: {}\n--- stdout\n{}\n--- stderr\n{}\n---",
            self.args, self.code, self.stdout, self.stderr
        )
    }
}

/// Waits for `child` to exit within `limit`, reading its output; kills it
/// and fails the test when it runs longer.
fn finish(mut child: Child, args: &[&str], limit: Duration) -> Out {
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let status = wait_for(&mut child, limit);
    let out = Out {
        args: args.iter().map(|a| a.to_string()).collect(),
        code: status.and_then(|s| s.code()).unwrap_or(-1),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    };
    assert!(status.is_some(), "still running after {limit:?}, killed: {out}");
    out
}

/// Reads a pipe to its end on a thread, so a full pipe never blocks the
/// child.
fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The exit status of `child` once it exits within `limit`; otherwise the
/// child is killed and `None` is returned.
pub fn wait_for(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
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

/// Polls `check` every 100 ms until it gives a value or `limit` passes.
pub fn poll<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A running `sparkq run --port 0`; killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`, from the first line on stdout.
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    lines: Mutex<Receiver<String>>,
    /// Every stdout line read so far, the URL line first.
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Serves `dir` with its `sparkq.yml`.
    pub fn start(dir: &Dir) -> Server {
        let config = dir.config();
        Server::spawn(
            dir,
            &["--config", config.to_str().expect("UTF-8 path"), "run", "--port", "0"],
        )
    }

    /// Runs `sparkq ARGS...` in `dir` and waits for the URL line.
    pub fn spawn(dir: &Dir, args: &[&str]) -> Server {
        let mut cmd = dir.command(args);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn sparkq run");

        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = BufReader::new(child.stderr.take().expect("piped stderr"));
        let sink = stderr.clone();
        thread::spawn(move || {
            let mut line = String::new();
            while matches!(err_pipe.read_line(&mut line), Ok(n) if n > 0) {
                sink.lock().unwrap_or_else(|p| p.into_inner()).push_str(&line);
                line.clear();
            }
        });
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = mpsc::channel();
        let out_pipe = BufReader::new(child.stdout.take().expect("piped stdout"));
        let seen = stdout.clone();
        thread::spawn(move || {
            for line in out_pipe.lines() {
                let Ok(line) = line else { break };
                seen.lock().unwrap_or_else(|p| p.into_inner()).push(line.clone());
                let _ = tx.send(line);
            }
        });

        let first = lines.recv_timeout(START_LIMIT);
        let lines = Mutex::new(lines);
        let mut server =
            Server { child, url: String::new(), addr: String::new(), lines, stdout, stderr };
        match first {
            Ok(url) => {
                let addr = url.strip_prefix("http://").unwrap_or_else(|| {
                    panic!("first stdout line is not a URL: {url:?}\n{}", server.stderr())
                });
                server.addr = addr.trim_end_matches('/').to_string();
                server.url = url;
            }
            Err(_) => panic!("sparkq run printed no URL:\n{}", server.stderr()),
        }
        server
    }

    /// The stdout lines after the URL, waiting up to `limit` until at least
    /// `n` of them arrived.
    pub fn banner(&self, n: usize, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        while self.stdout.lock().unwrap_or_else(|p| p.into_inner()).len() < n + 1 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || lines.recv_timeout(left).is_err() {
                break;
            }
        }
        self.stdout.lock().unwrap_or_else(|p| p.into_inner())[1..].to_vec()
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The exit status once the server exits within `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        wait_for(&mut self.child, limit)
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(body))
    }

    pub fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("PUT", path, Some(body))
    }

    /// A JSON request; the status and the body (`Null` when empty).
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        let ct = body.as_ref().map(|_| ("Content-Type", "application/json"));
        let r = self.raw(method, path, ct.as_slice(), body.as_deref().unwrap_or(""));
        (r.status, r.json())
    }

    /// Sends one request with exactly these extra headers and body.
    pub fn raw(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
        http(&self.addr, method, path, headers, body)
    }

    /// Creates a session and a stream in it through the API; returns the
    /// stream's id.
    pub fn stream(&self, session: &str, stream: &str) -> String {
        let (code, s) = self.post("/api/sessions", serde_json::json!({ "name": session }));
        assert_eq!(code, 201, "{s}");
        let body = serde_json::json!({ "session_id": s["session"]["id"], "name": stream });
        let (code, s) = self.post("/api/streams", body);
        assert_eq!(code, 201, "{s}");
        s["stream"]["id"].as_str().expect("stream id").to_string()
    }

    /// Enqueues one task through the API and returns its id.
    pub fn enqueue(&self, stream: &str, tool: &str) -> String {
        let (code, t) =
            self.post("/api/tasks", serde_json::json!({ "stream_id": stream, "tool_name": tool }));
        assert_eq!(code, 201, "{t}");
        t["task"]["id"].as_str().expect("task id").to_string()
    }

    /// A task as `GET /api/tasks/{id}` shows it.
    pub fn task(&self, id: &str) -> Value {
        let (code, t) = self.get(&format!("/api/tasks/{id}"));
        assert_eq!(code, 200, "{t}");
        t["task"].clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == &name.to_ascii_lowercase()).map(|(_, v)| v.as_str())
    }

    /// The body as JSON; `Null` when empty.
    pub fn json(&self) -> Value {
        if self.body.is_empty() {
            return Value::Null;
        }
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!("body of a {} is not JSON ({e}): {}", self.status, self.body)
        })
    }
}

/// One HTTP/1.1 exchange with `Connection: close`, so the body ends where
/// the connection does.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(HTTP_LIMIT)).expect("set read timeout");
    s.set_write_timeout(Some(HTTP_LIMIT)).expect("set write timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let framed = headers.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
    });
    if !framed && (!body.is_empty() || matches!(method, "POST" | "PUT")) {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    // A server that answers before reading the whole body (a 413) may close
    // early; what it answered is still there to read.
    let _ = s.write_all(req.as_bytes());
    let mut raw = Vec::new();
    if let Err(e) = s.read_to_end(&mut raw) {
        assert!(!raw.is_empty(), "{method} {path}: no response: {e}");
    }
    parse_response(&raw).unwrap_or_else(|| {
        panic!("{method} {path}: malformed response: {:?}", String::from_utf8_lossy(&raw))
    })
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length = headers.iter().find(|(k, _)| k == "content-length");
    if let Some(n) = length.and_then(|(_, v)| v.parse::<usize>().ok()) {
        rest = &rest[..n.min(rest.len())];
    }
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(rest)? } else { rest.to_vec() };
    Some(Response { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&raw[..end]).ok()?.split(';').next()?.trim();
        let size = usize::from_str_radix(size, 16).ok()?;
        raw = &raw[end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

/// Asserts that `id` looks like a task id: `tsk_` and 12 lowercase hex
/// digits.
pub fn assert_task_id(id: &str) {
    assert_id(id, "tsk_");
}

/// Asserts that `id` is `prefix` and 12 lowercase hex digits.
pub fn assert_id(id: &str, prefix: &str) {
    let hex =
        id.strip_prefix(prefix).unwrap_or_else(|| panic!("{id:?} does not start with {prefix}"));
    assert!(
        hex.len() == 12 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{id:?} is not {prefix} and 12 lowercase hex digits"
    );
}

/// Every field SPEC §9 lists for a task.
pub const TASK_FIELDS: [&str; 22] = [
    "id",
    "stream_id",
    "tool_name",
    "task_class",
    "payload",
    "status",
    "timeout",
    "attempts",
    "worker_id",
    "result_summary",
    "result",
    "error_type",
    "error",
    "stdout",
    "stderr",
    "created_at",
    "updated_at",
    "claimed_at",
    "started_at",
    "finished_at",
    "completed_at",
    "failed_at",
];

/// Asserts that `t` is a task as SPEC §9 shows one: every field, an
/// object payload, the times in millisecond RFC 3339 UTC, `started_at`
/// equal to `claimed_at`, and only the finish alias that applies.
pub fn assert_task_shape(t: &Value) {
    for key in TASK_FIELDS {
        assert!(t.get(key).is_some(), "task has no {key:?}: {t}");
    }
    assert_task_id(t["id"].as_str().expect("id is text"));
    assert_id(t["stream_id"].as_str().expect("stream_id is text"), "str_");
    assert!(t["payload"].is_object(), "payload is not an object: {t}");
    assert!(t["timeout"].is_u64() && t["attempts"].is_u64(), "numbers: {t}");
    for key in [
        "created_at",
        "updated_at",
        "claimed_at",
        "started_at",
        "finished_at",
        "completed_at",
        "failed_at",
    ] {
        if let Some(s) = t[key].as_str() {
            assert_time(s);
        } else {
            assert!(t[key].is_null(), "{key} is neither text nor null: {t}");
        }
    }
    assert_eq!(t["claimed_at"], t["started_at"], "started_at differs from claimed_at: {t}");
    let (completed, failed) = match t["status"].as_str().expect("status is text") {
        "succeeded" => (t["finished_at"].clone(), Value::Null),
        "failed" => (Value::Null, t["finished_at"].clone()),
        "queued" | "running" => (Value::Null, Value::Null),
        other => panic!("unknown status {other:?}: {t}"),
    };
    assert_eq!(t["completed_at"], completed, "completed_at: {t}");
    assert_eq!(t["failed_at"], failed, "failed_at: {t}");
}

/// Asserts that `s` is a time like `2026-12-04T15:20:41.123Z`.
pub fn assert_time(s: &str) {
    let b = s.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let ok = b.len() == 24
        && [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22].iter().all(|&i| digit(i))
        && [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (19, b'.'), (23, b'Z')]
            .iter()
            .all(|&(i, c)| b[i] == c);
    assert!(ok, "{s:?} is not RFC 3339 UTC with milliseconds");
}

/// The ids of `tasks` (a JSON array of tasks), in order.
pub fn ids(tasks: &Value) -> Vec<String> {
    tasks
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {tasks}"))
        .iter()
        .map(|t| t["id"].as_str().expect("task id").to_string())
        .collect()
}

/// The folder of script fixtures shared with other tests.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures").join("scripts")
}
