//! What the hostile tests share: `Dir`, a fresh folder with a `sparkq.yml`;
//! `Server`, the built binary serving it on a free loopback port, killed on
//! drop; and `Conn`, a raw HTTP/1.1 connection that can send any bytes and
//! read responses back. Every wait is bounded.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_sparkq");

/// The longest a server may take to print its URL.
const START_LIMIT: Duration = Duration::from_secs(30);

/// The longest one read or write on a test connection may block.
pub const IO_LIMIT: Duration = Duration::from_secs(20);

/// The config most tests run with: a small body limit so that a 413 needs
/// only a small body, short time-outs so that slow-client tests end fast,
/// and small output limits so that cutting is cheap to see.
pub const CONFIG: &str = "\
project:
  name: hostile
server:
  port: 0
  max_body_bytes: 4096
  idle_timeout_seconds: 2
  request_timeout_seconds: 4
maintenance:
  interval_seconds: 60
script_dirs: []
tools:
  run-bash:
    description: Execute a bash script
    task_class: FAST_SCRIPT
limits:
  output_bytes: 64
  payload_bytes: 512
";

/// A unique empty folder; removed on drop unless the test failed.
pub struct Dir {
    pub path: PathBuf,
}

impl Dir {
    /// A new folder with `yaml` as its `sparkq.yml`.
    pub fn new(label: &str, yaml: &str) -> Dir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("sparkq-hostile-{}-{n}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temp folder");
        std::fs::write(path.join("sparkq.yml"), yaml).expect("write sparkq.yml");
        Dir { path }
    }

    pub fn config(&self) -> PathBuf {
        self.path.join("sparkq.yml")
    }

    /// Runs the CLI with this folder's config; waits at most a minute.
    pub fn cli<S: AsRef<std::ffi::OsStr>>(&self, args: &[S], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config").arg(self.config()).args(args).current_dir(&self.path);
        cmd.env_remove("SPARKQ_TOKEN").env_remove("SPARKQ_CONFIG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sparkq");
        wait_output(child, Duration::from_secs(60))
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if !thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Waits for `child` to exit within `limit`, killing it past that.
pub fn wait_output(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().expect("collect output"),
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("collect output");
                panic!("sparkq ran longer than {limit:?}: {out:?}");
            }
            _ => thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The binary serving a `Dir` on a free loopback port.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Server {
    pub fn start(dir: &Dir) -> Server {
        Server::start_with(dir, &[], &[])
    }

    /// Starts `sparkq --config DIR/sparkq.yml run --port 0 ARGS` with `env`.
    pub fn start_with(dir: &Dir, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config").arg(dir.config()).args(["run", "--port", "0"]).args(args);
        cmd.current_dir(&dir.path).env_remove("SPARKQ_TOKEN").env_remove("SPARKQ_CONFIG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sparkq run");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap_or_else(|p| p.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            // Keep reading so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let first = match rx.recv_timeout(START_LIMIT) {
            Ok(Some(Ok(line))) => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                let log = log.lock().unwrap_or_else(|p| p.into_inner()).clone();
                panic!("the server printed no URL ({other:?}); stderr:\n{log}");
            }
        };
        let addr = first
            .trim()
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("first stdout line is not a URL: {first:?}"));
        Server { child, addr, log }
    }

    /// Returns true if and only if the process still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits up to `limit` for the process to exit; its exit code if it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn conn(&self) -> Conn {
        Conn::open(self.addr)
    }

    /// `GET path` on a new connection.
    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[], b"")
    }

    /// `POST path` with a JSON body on a new connection.
    pub fn post(&self, path: &str, json: &str) -> Resp {
        self.request("POST", path, &[("Content-Type", "application/json")], json.as_bytes())
    }

    /// A well-formed request with `Host`, `Content-Length` and
    /// `Connection: close`, and `headers` besides.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let mut c = self.conn();
        c.send(&raw_request(self.addr, method, path, headers, body));
        c.response().unwrap_or_else(|e| panic!("{method} {path}: no response: {e}"))
    }

    /// Returns true if and only if `/health` answers 200 on a new
    /// connection; also how long that took.
    pub fn healthy(&self) -> (bool, Duration) {
        let start = Instant::now();
        let mut c = self.conn();
        c.send(&raw_request(self.addr, "GET", "/health", &[], b""));
        let ok = c.response().is_ok_and(|r| r.status == 200);
        (ok, start.elapsed())
    }

    /// Creates a session, a stream and a task; returns the task id.
    pub fn task(&self, stream: &str) -> String {
        let s = self.post("/api/sessions", &format!("{{\"name\":\"s-{stream}\"}}"));
        assert_eq!(s.status, 201, "{}", s.text());
        let sid = s.json()["session"]["id"].as_str().unwrap().to_string();
        let body = format!("{{\"session_id\":\"{sid}\",\"name\":\"{stream}\"}}");
        assert_eq!(self.post("/api/streams", &body).status, 201);
        let body = format!("{{\"stream_id\":\"{stream}\",\"tool_name\":\"run-bash\"}}");
        let t = self.post("/api/tasks", &body);
        assert_eq!(t.status, 201, "{}", t.text());
        t.json()["task"]["id"].as_str().unwrap().to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The bytes of a well-formed request.
pub fn raw_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// One response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The `error` message of an error body.
    pub fn error(&self) -> String {
        let v = self.json();
        assert_eq!(v["status"], self.status, "{v}");
        v["error"].as_str().unwrap_or_else(|| panic!("no error message: {v}")).to_string()
    }
}

/// A raw connection: write any bytes, read responses one by one.
pub struct Conn {
    r: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_read_timeout(Some(IO_LIMIT)).unwrap();
        s.set_write_timeout(Some(IO_LIMIT)).unwrap();
        Conn { r: BufReader::new(s) }
    }

    pub fn stream(&self) -> &TcpStream {
        self.r.get_ref()
    }

    /// Writes `bytes`; a server that closed first is not an error here.
    pub fn send(&mut self, bytes: &[u8]) {
        let _ = self.r.get_mut().write_all(bytes);
    }

    /// Says that nothing more will be sent.
    pub fn finish(&mut self) {
        let _ = self.r.get_ref().shutdown(Shutdown::Write);
    }

    pub fn set_timeout(&self, t: Duration) {
        self.stream().set_read_timeout(Some(t)).unwrap();
    }

    /// Reads one response (a `100 Continue` is returned like any other).
    pub fn response(&mut self) -> io::Result<Resp> {
        self.response_to(false)
    }

    /// Reads one response to a HEAD request: headers only.
    pub fn head_response(&mut self) -> io::Result<Resp> {
        self.response_to(true)
    }

    fn response_to(&mut self, head: bool) -> io::Result<Resp> {
        let status_line = self.line()?;
        if status_line.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed, no response"));
        }
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let line = self.line()?;
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').ok_or_else(|| bad(format!("bad header {line:?}")))?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let mut resp = Resp { status, headers, body: Vec::new() };
        if head || status == 204 || status == 304 || (100..200).contains(&status) {
            return Ok(resp);
        }
        if resp.header("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            loop {
                let size = self.line()?;
                let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| bad(format!("bad chunk size {size:?}")))?;
                if n == 0 {
                    while !self.line()?.is_empty() {}
                    break;
                }
                let mut chunk = vec![0; n];
                self.r.read_exact(&mut chunk)?;
                resp.body.extend_from_slice(&chunk);
                self.line()?;
            }
        } else if let Some(n) = resp.header("Content-Length") {
            let n: usize = n.parse().map_err(|_| bad(format!("bad length {n:?}")))?;
            resp.body = vec![0; n];
            self.r.read_exact(&mut resp.body)?;
        } else {
            self.r.read_to_end(&mut resp.body)?;
        }
        Ok(resp)
    }

    /// One CRLF-ended line without its end; empty at the end of the stream.
    fn line(&mut self) -> io::Result<String> {
        let mut buf = Vec::new();
        self.r.read_until(b'\n', &mut buf)?;
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Returns true if and only if the server closed the connection
    /// (end of stream or reset) within the read time-out, with nothing more
    /// to read.
    pub fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.r.read_to_end(&mut rest) {
            Ok(_) => rest.is_empty(),
            Err(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
            ),
        }
    }

    /// Reads whatever arrives until the end of the stream, a reset, or the
    /// read time-out.
    pub fn drain(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.r.read(&mut buf) {
                Ok(0) | Err(_) => return rest,
                Ok(n) => rest.extend_from_slice(&buf[..n]),
            }
        }
    }
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// The dashboard's source folder, whose files the binary serves.
pub fn static_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/static"))
}

/// A small xorshift generator: the same seed gives the same cases.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}
