//! Load generator for SparkQ and two peer queues, beanstalkd and Redis, with
//! nothing but std: one thread per worker, each holding one keep-alive TCP
//! connection and speaking the target's own protocol (HTTP/1.1, the
//! beanstalk text protocol, RESP).
//!
//! Workloads, the same for every target:
//! - `lifecycle`: each worker enqueues a task into its own queue, claims the
//!   next task of that queue and completes it, over and over;
//! - `enqueue`: every worker enqueues into one shared queue;
//! - `drain`: every worker claims and completes from one shared queue until it
//!   is empty (`--prefill N` fills it first, untimed).
//!
//! The three request kinds map to SparkQ's `POST /api/tasks`,
//! `POST /api/streams/{id}/claim` and `POST /api/tasks/{id}/complete`, to
//! beanstalkd's `put`, `reserve-with-timeout 0` and `delete`, and to Redis's
//! `LPUSH`, `LMOVE` (into a processing list) and `LREM`. The result is one
//! line: throughput, latency percentiles per kind and the error count. The
//! exit status is 1 when any request failed, 2 on bad arguments.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const USAGE: &str = "\
loadgen - drive a queue server with a fixed workload and report latency

USAGE:
  loadgen --target sparkq|beanstalkd|redis --addr HOST:PORT
          --workload lifecycle|enqueue|drain [OPTIONS]

OPTIONS:
  --workers N     worker threads, one connection each (default 1)
  --seconds S     stop after S seconds (default 10; drain stops earlier
                  when the queue is empty)
  --tasks N       stop after N tasks in all (default: no limit)
  --prefill N     drain only: enqueue N tasks first, untimed (default 0)
  --stream NAME   stream, tube or list name (default loadgen); lifecycle
                  uses NAME-0, NAME-1... one per worker
  --stop-file F   stop early once file F exists (checked every 20 ms)
  --json          print one line of JSON instead of a table
  -h, --help      print this help
";

/// Requests a worker gives up after, so that a dead server ends the run.
const MAX_ERRORS_PER_WORKER: u64 = 100;

/// How long one request may take before it counts as failed.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Sparkq,
    Beanstalkd,
    Redis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    Lifecycle,
    Enqueue,
    Drain,
}

/// The three kinds of request every target answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Enqueue,
    Claim,
    Complete,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Enqueue => "enqueue",
            Kind::Claim => "claim",
            Kind::Complete => "complete",
        }
    }
}

#[derive(Debug, Clone)]
struct Args {
    target: Target,
    addr: String,
    workload: Workload,
    workers: usize,
    seconds: f64,
    tasks: u64,
    prefill: u64,
    stream: String,
    stop_file: Option<std::path::PathBuf>,
    json: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut target = None;
    let mut addr = None;
    let mut workload = None;
    let mut workers = 1usize;
    let mut seconds = 10.0f64;
    let mut tasks = 0u64;
    let mut prefill = 0u64;
    let mut stream = "loadgen".to_string();
    let mut stop_file = None;
    let mut json = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |flag: &str| it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--target" => {
                target = Some(match value("--target")?.as_str() {
                    "sparkq" => Target::Sparkq,
                    "beanstalkd" => Target::Beanstalkd,
                    "redis" => Target::Redis,
                    v => {
                        return Err(format!(
                            "invalid --target \"{v}\" (expected sparkq, beanstalkd or redis)"
                        ))
                    }
                })
            }
            "--addr" => addr = Some(value("--addr")?),
            "--workload" => {
                workload = Some(match value("--workload")?.as_str() {
                    "lifecycle" => Workload::Lifecycle,
                    "enqueue" => Workload::Enqueue,
                    "drain" => Workload::Drain,
                    v => {
                        return Err(format!(
                            "invalid --workload \"{v}\" (expected lifecycle, enqueue or drain)"
                        ))
                    }
                })
            }
            "--workers" => workers = number("--workers", &value("--workers")?, 1, 1024)? as usize,
            "--seconds" => {
                let v = value("--seconds")?;
                seconds = v.parse::<f64>().ok().filter(|s| *s > 0.0 && *s <= 86_400.0).ok_or_else(
                    || format!("invalid --seconds \"{v}\" (expected 0 < S <= 86400)"),
                )?;
            }
            "--tasks" => tasks = number("--tasks", &value("--tasks")?, 1, u64::MAX)?,
            "--prefill" => prefill = number("--prefill", &value("--prefill")?, 0, 100_000_000)?,
            "--stream" => {
                stream = value("--stream")?;
                let ok = !stream.is_empty()
                    && stream.len() <= 60
                    && stream.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
                if !ok {
                    return Err(format!(
                        "invalid --stream \"{stream}\" (1-60 letters, digits, '-', '_', '.')"
                    ));
                }
            }
            "--stop-file" => stop_file = Some(value("--stop-file")?.into()),
            "--json" => json = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument \"{other}\"")),
        }
    }
    let workload = workload.ok_or("missing --workload")?;
    if prefill > 0 && workload != Workload::Drain {
        return Err("--prefill applies to --workload drain only".into());
    }
    Ok(Args {
        target: target.ok_or("missing --target")?,
        addr: addr.ok_or("missing --addr")?,
        workload,
        workers,
        seconds,
        tasks,
        prefill,
        stream,
        stop_file,
        json,
    })
}

fn number(flag: &str, v: &str, min: u64, max: u64) -> Result<u64, String> {
    v.parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("invalid {flag} \"{v}\" (expected a whole number >= {min})"))
}

/// A failed request: what was asked and what went wrong.
#[derive(Debug)]
struct Failure {
    /// True when the connection can no longer be used.
    broken: bool,
    message: String,
}

impl Failure {
    fn protocol(message: String) -> Failure {
        Failure { broken: false, message }
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure { broken: true, message: format!("i/o error: {e}") }
    }
}

type Outcome<T> = Result<T, Failure>;

/// What a claim hands back, to be completed afterwards.
type Handle = String;

/// One worker's connection to one queue, in the target's own terms.
trait Queue {
    /// Opens the connection now, so that the timed requests do not pay for
    /// it; a broken connection is opened again by the next request.
    fn open(&mut self) -> io::Result<()>;
    fn enqueue(&mut self, n: u64) -> Outcome<()>;
    /// `None` when the queue is empty.
    fn claim(&mut self) -> Outcome<Option<Handle>>;
    fn complete(&mut self, handle: Handle) -> Outcome<()>;
}

/// The JSON payload every task carries; `n` keeps each one distinct, which
/// Redis's LREM needs.
fn payload(n: u64) -> String {
    format!("{{\"script\":\"disk-usage.sh\",\"args\":[\".\"],\"n\":{n}}}")
}

fn connect(addr: &str) -> io::Result<TcpStream> {
    let sock = TcpStream::connect(addr)?;
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(IO_TIMEOUT))?;
    sock.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(sock)
}

/// A line-oriented reader and a writer over one socket.
struct Conn {
    rdr: BufReader<TcpStream>,
    wtr: TcpStream,
}

impl Conn {
    fn open(addr: &str) -> io::Result<Conn> {
        let sock = connect(addr)?;
        Ok(Conn { rdr: BufReader::with_capacity(64 * 1024, sock.try_clone()?), wtr: sock })
    }

    /// Reads one CRLF-terminated line without its terminator.
    fn line(&mut self) -> io::Result<String> {
        let mut buf = Vec::with_capacity(64);
        self.rdr.read_until(b'\n', &mut buf)?;
        if !buf.ends_with(b"\n") {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        buf.pop();
        if buf.ends_with(b"\r") {
            buf.pop();
        }
        String::from_utf8(buf).map_err(|_| io::Error::other("reply line is not UTF-8"))
    }

    fn exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; n];
        self.rdr.read_exact(&mut buf)?;
        Ok(buf)
    }
}

/// SparkQ over HTTP/1.1 with keep-alive.
struct Sparkq {
    addr: String,
    conn: Option<Conn>,
    worker_id: String,
    /// Stream id to enqueue into and claim from.
    stream_id: String,
}

/// An HTTP response: status and body.
struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        let body = String::from_utf8_lossy(&self.body);
        format!("HTTP {}: {}", self.status, body.chars().take(200).collect::<String>())
    }
}

impl Sparkq {
    fn new(addr: &str, worker_id: String, stream_id: String) -> Sparkq {
        Sparkq { addr: addr.to_string(), conn: None, worker_id, stream_id }
    }

    fn request(&mut self, method: &str, path: &str, body: Option<&str>) -> Outcome<Reply> {
        let result = self.try_request(method, path, body);
        if result.as_ref().map_or(true, |(_, close)| *close) {
            self.conn = None;
        }
        Ok(result?.0)
    }

    /// Sends one request and reads its response; the flag says whether the
    /// server will close the connection.
    fn try_request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> io::Result<(Reply, bool)> {
        self.open()?;
        let conn = self.conn.as_mut().expect("open left a connection");
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if let Some(body) = body {
            let _ = write!(
                req,
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        } else {
            req.push_str("\r\n");
        }
        conn.wtr.write_all(req.as_bytes())?;

        let status_line = conn.line()?;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {status_line:?}")))?;
        let mut length = None;
        let mut chunked = false;
        let mut close = false;
        loop {
            let line = conn.line()?;
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else { continue };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        let body = if chunked {
            let mut body = Vec::new();
            loop {
                let size = conn.line()?;
                let size = size.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size, 16)
                    .map_err(|_| io::Error::other(format!("bad chunk size {size:?}")))?;
                if size == 0 {
                    while !conn.line()?.is_empty() {}
                    break;
                }
                body.extend(conn.exact(size)?);
                conn.line()?;
            }
            body
        } else if let Some(n) = length {
            conn.exact(n)?
        } else if status == 204 || status == 304 {
            Vec::new()
        } else {
            // No length: the body runs to the end of the connection.
            close = true;
            let mut body = Vec::new();
            conn.rdr.read_to_end(&mut body)?;
            body
        };
        Ok((Reply { status, body }, close))
    }

    /// Sends a request that must answer `want`; returns the body.
    fn expect(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
        want: u16,
    ) -> Outcome<Reply> {
        let reply = self.request(method, path, body)?;
        if reply.status != want {
            return Err(Failure::protocol(format!("{method} {path}: {}", reply.text())));
        }
        Ok(reply)
    }
}

/// Finds the first `"PREFIX...` id (e.g. `"tsk_0123abcd4567"`) in a body.
fn find_id(body: &[u8], prefix: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find(&format!("\"{prefix}"))? + 1;
    let len = text[start..].find('"')?;
    Some(text[start..start + len].to_string())
}

impl Queue for Sparkq {
    fn open(&mut self) -> io::Result<()> {
        if self.conn.is_none() {
            self.conn = Some(Conn::open(&self.addr)?);
        }
        Ok(())
    }

    fn enqueue(&mut self, n: u64) -> Outcome<()> {
        let body = format!(
            "{{\"stream_id\":\"{}\",\"tool_name\":\"run-bash\",\"payload\":{}}}",
            self.stream_id,
            payload(n)
        );
        self.expect("POST", "/api/tasks", Some(&body), 201).map(|_| ())
    }

    fn claim(&mut self) -> Outcome<Option<Handle>> {
        let path = format!("/api/streams/{}/claim", self.stream_id);
        let body = format!("{{\"worker_id\":\"{}\"}}", self.worker_id);
        let reply = self.request("POST", &path, Some(&body))?;
        match reply.status {
            204 => Ok(None),
            200 => find_id(&reply.body, "tsk_")
                .map(Some)
                .ok_or_else(|| Failure::protocol(format!("claim: no task id in {}", reply.text()))),
            _ => Err(Failure::protocol(format!("POST {path}: {}", reply.text()))),
        }
    }

    fn complete(&mut self, id: Handle) -> Outcome<()> {
        let path = format!("/api/tasks/{id}/complete");
        self.expect("POST", &path, Some("{\"result_summary\":\"exit 0: done\"}"), 200).map(|_| ())
    }
}

/// Looks a stream up by name and creates it (in `session`) when missing;
/// returns its id.
fn sparkq_stream(client: &mut Sparkq, session: &mut Option<String>, name: &str) -> Outcome<String> {
    let reply = client.request("GET", &format!("/api/streams/{name}"), None)?;
    if reply.status == 200 {
        return find_id(&reply.body, "str_")
            .ok_or_else(|| Failure::protocol(format!("no stream id in {}", reply.text())));
    }
    if session.is_none() {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let body = format!("{{\"name\":\"loadgen-{}-{nanos}\"}}", std::process::id());
        let reply = client.expect("POST", "/api/sessions", Some(&body), 201)?;
        *session = Some(
            find_id(&reply.body, "ses_")
                .ok_or_else(|| Failure::protocol(format!("no session id in {}", reply.text())))?,
        );
    }
    let body = format!(
        "{{\"session_id\":\"{}\",\"name\":\"{name}\"}}",
        session.as_deref().unwrap_or_default()
    );
    let reply = client.expect("POST", "/api/streams", Some(&body), 201)?;
    find_id(&reply.body, "str_")
        .ok_or_else(|| Failure::protocol(format!("no stream id in {}", reply.text())))
}

/// beanstalkd: one tube per queue, jobs put with TTR 60 s.
struct Beanstalk {
    addr: String,
    conn: Option<Conn>,
    tube: String,
}

impl Beanstalk {
    fn new(addr: &str, tube: String) -> Beanstalk {
        Beanstalk { addr: addr.to_string(), conn: None, tube }
    }

    /// Sends a command and reads the one-line reply, (re)connecting and
    /// choosing the tube first when needed.
    fn call(&mut self, cmd: &[u8]) -> Outcome<String> {
        let result = self.try_call(cmd);
        if result.is_err() {
            self.conn = None;
        }
        Ok(result?)
    }

    fn try_call(&mut self, cmd: &[u8]) -> io::Result<String> {
        self.open()?;
        let conn = self.conn.as_mut().expect("open left a connection");
        conn.wtr.write_all(cmd)?;
        conn.line()
    }
}

impl Queue for Beanstalk {
    /// Connects and chooses the tube, for both putting and reserving.
    fn open(&mut self) -> io::Result<()> {
        if self.conn.is_some() {
            return Ok(());
        }
        let mut conn = Conn::open(&self.addr)?;
        let setup = format!("use {t}\r\nwatch {t}\r\nignore default\r\n", t = self.tube);
        conn.wtr.write_all(setup.as_bytes())?;
        for _ in 0..3 {
            let line = conn.line()?;
            if !(line.starts_with("USING") || line.starts_with("WATCHING")) {
                return Err(io::Error::other(format!("tube setup answered {line:?}")));
            }
        }
        self.conn = Some(conn);
        Ok(())
    }

    fn enqueue(&mut self, n: u64) -> Outcome<()> {
        let data = payload(n);
        let cmd = format!("put 0 0 60 {}\r\n{data}\r\n", data.len());
        let line = self.call(cmd.as_bytes())?;
        if !line.starts_with("INSERTED ") {
            return Err(Failure::protocol(format!("put answered {line:?}")));
        }
        Ok(())
    }

    fn claim(&mut self) -> Outcome<Option<Handle>> {
        let line = self.call(b"reserve-with-timeout 0\r\n")?;
        if line == "TIMED_OUT" {
            return Ok(None);
        }
        let mut parts = line.split(' ');
        let (Some("RESERVED"), Some(id), Some(bytes)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Failure::protocol(format!("reserve answered {line:?}")));
        };
        let bytes: usize =
            bytes.parse().map_err(|_| Failure::protocol(format!("reserve answered {line:?}")))?;
        let conn = self.conn.as_mut().expect("reserve just used the connection");
        let data = conn.exact(bytes + 2);
        if data.is_err() {
            self.conn = None;
        }
        data?;
        Ok(Some(id.to_string()))
    }

    fn complete(&mut self, id: Handle) -> Outcome<()> {
        let line = self.call(format!("delete {id}\r\n").as_bytes())?;
        if line != "DELETED" {
            return Err(Failure::protocol(format!("delete {id} answered {line:?}")));
        }
        Ok(())
    }
}

/// Redis: a list per queue; a claim moves the item into `KEY:processing`
/// (the reliable-queue pattern) and completing removes it from there.
struct Redis {
    addr: String,
    conn: Option<Conn>,
    key: String,
    processing: String,
}

/// The part of a RESP reply the workloads look at.
enum Resp {
    Simple(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
}

impl Redis {
    fn new(addr: &str, key: String) -> Redis {
        let processing = format!("{key}:processing");
        Redis { addr: addr.to_string(), conn: None, key, processing }
    }

    fn call(&mut self, args: &[&[u8]]) -> Outcome<Resp> {
        let result = self.try_call(args);
        if result.is_err() {
            self.conn = None;
        }
        let reply = result?;
        Ok(reply)
    }

    fn try_call(&mut self, args: &[&[u8]]) -> io::Result<Resp> {
        self.open()?;
        let conn = self.conn.as_mut().expect("open left a connection");
        let mut cmd = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            cmd.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            cmd.extend_from_slice(arg);
            cmd.extend_from_slice(b"\r\n");
        }
        conn.wtr.write_all(&cmd)?;
        let line = conn.line()?;
        let (tag, rest) = line.split_at(line.len().min(1));
        match tag {
            "+" => Ok(Resp::Simple(rest.to_string())),
            ":" => rest
                .parse()
                .map(Resp::Integer)
                .map_err(|_| io::Error::other(format!("bad integer reply {line:?}"))),
            "$" => match rest.parse::<i64>() {
                Ok(-1) => Ok(Resp::Bulk(None)),
                Ok(n) if n >= 0 => {
                    let mut data = conn.exact(n as usize + 2)?;
                    data.truncate(n as usize);
                    Ok(Resp::Bulk(Some(data)))
                }
                _ => Err(io::Error::other(format!("bad bulk reply {line:?}"))),
            },
            "_" => Ok(Resp::Bulk(None)),
            // Server errors are answers, not broken connections.
            "-" => Ok(Resp::Simple(line)),
            _ => Err(io::Error::other(format!("unexpected reply {line:?}"))),
        }
    }
}

impl Queue for Redis {
    fn open(&mut self) -> io::Result<()> {
        if self.conn.is_none() {
            self.conn = Some(Conn::open(&self.addr)?);
        }
        Ok(())
    }

    fn enqueue(&mut self, n: u64) -> Outcome<()> {
        let data = payload(n);
        let key = self.key.clone();
        match self.call(&[b"LPUSH", key.as_bytes(), data.as_bytes()])? {
            Resp::Integer(_) => Ok(()),
            Resp::Simple(s) => Err(Failure::protocol(format!("LPUSH answered {s:?}"))),
            Resp::Bulk(_) => Err(Failure::protocol("LPUSH answered a bulk string".into())),
        }
    }

    fn claim(&mut self) -> Outcome<Option<Handle>> {
        let (key, processing) = (self.key.clone(), self.processing.clone());
        let args: [&[u8]; 5] = [b"LMOVE", key.as_bytes(), processing.as_bytes(), b"RIGHT", b"LEFT"];
        match self.call(&args)? {
            Resp::Bulk(None) => Ok(None),
            Resp::Bulk(Some(data)) => Ok(Some(String::from_utf8_lossy(&data).into_owned())),
            Resp::Simple(s) => Err(Failure::protocol(format!("LMOVE answered {s:?}"))),
            Resp::Integer(i) => Err(Failure::protocol(format!("LMOVE answered {i}"))),
        }
    }

    fn complete(&mut self, item: Handle) -> Outcome<()> {
        let processing = self.processing.clone();
        match self.call(&[b"LREM", processing.as_bytes(), b"1", item.as_bytes()])? {
            Resp::Integer(1) => Ok(()),
            Resp::Integer(n) => Err(Failure::protocol(format!("LREM removed {n} items, not 1"))),
            Resp::Simple(s) => Err(Failure::protocol(format!("LREM answered {s:?}"))),
            Resp::Bulk(_) => Err(Failure::protocol("LREM answered a bulk string".into())),
        }
    }
}

/// What one worker measured.
#[derive(Default)]
struct Tally {
    /// Microseconds per request, by kind.
    latencies: BTreeMap<Kind, Vec<u32>>,
    tasks: u64,
    errors: u64,
    samples: Vec<String>,
    /// True when a drain worker found the queue empty.
    emptied: bool,
}

impl Tally {
    fn time<T>(&mut self, kind: Kind, f: impl FnOnce() -> Outcome<T>) -> Option<T> {
        let start = Instant::now();
        let result = f();
        let us = start.elapsed().as_micros().min(u32::MAX as u128) as u32;
        self.latencies.entry(kind).or_default().push(us);
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors += 1;
                if self.samples.len() < 5 && !self.samples.contains(&e.message) {
                    self.samples.push(e.message);
                }
                if e.broken {
                    // Give a restarting or overloaded server a moment.
                    thread::sleep(Duration::from_millis(10));
                }
                None
            }
        }
    }
}

/// The limits every worker shares.
struct Shared {
    /// Task slots left when `--tasks` was given.
    budget: Option<AtomicU64>,
    /// Set when the time is up.
    stop: AtomicBool,
}

impl Shared {
    /// Returns true if and only if the worker may start one more task.
    fn take_slot(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        match &self.budget {
            None => true,
            Some(left) => left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }
}

fn run_worker(
    workload: Workload,
    worker: u64,
    queue: &mut dyn Queue,
    shared: &Shared,
    tally: &mut Tally,
) {
    // Distinct payload numbers per worker, for Redis's LREM.
    let mut n = worker << 40;
    while shared.take_slot() && tally.errors < MAX_ERRORS_PER_WORKER {
        n += 1;
        match workload {
            Workload::Enqueue => {
                if tally.time(Kind::Enqueue, || queue.enqueue(n)).is_some() {
                    tally.tasks += 1;
                }
            }
            Workload::Lifecycle => {
                if tally.time(Kind::Enqueue, || queue.enqueue(n)).is_none() {
                    continue;
                }
                let handle = match tally.time(Kind::Claim, || queue.claim()) {
                    Some(Some(h)) => h,
                    Some(None) => {
                        // The worker's own queue held the task it just put.
                        tally.errors += 1;
                        let msg = "claim found the queue empty right after an enqueue";
                        if !tally.samples.iter().any(|s| s == msg) {
                            tally.samples.push(msg.to_string());
                        }
                        continue;
                    }
                    None => continue,
                };
                if tally.time(Kind::Complete, || queue.complete(handle)).is_some() {
                    tally.tasks += 1;
                }
            }
            Workload::Drain => {
                let handle = match tally.time(Kind::Claim, || queue.claim()) {
                    Some(Some(h)) => h,
                    Some(None) => {
                        tally.emptied = true;
                        return;
                    }
                    None => continue,
                };
                if tally.time(Kind::Complete, || queue.complete(handle)).is_some() {
                    tally.tasks += 1;
                }
            }
        }
    }
}

/// The queue name each worker uses.
fn queue_name(args: &Args, worker: usize) -> String {
    match args.workload {
        Workload::Lifecycle => format!("{}-{worker}", args.stream),
        Workload::Enqueue | Workload::Drain => args.stream.clone(),
    }
}

/// Opens every worker's queue; for SparkQ this finds or creates the streams.
fn open_queues(args: &Args) -> Result<Vec<Box<dyn Queue + Send>>, String> {
    let mut queues: Vec<Box<dyn Queue + Send>> = Vec::new();
    let mut stream_ids: BTreeMap<String, String> = BTreeMap::new();
    let mut session = None;
    let mut admin = Sparkq::new(&args.addr, String::new(), String::new());
    for w in 0..args.workers {
        let name = queue_name(args, w);
        let queue: Box<dyn Queue + Send> = match args.target {
            Target::Sparkq => {
                let id = match stream_ids.get(&name) {
                    Some(id) => id.clone(),
                    None => {
                        let id = sparkq_stream(&mut admin, &mut session, &name)
                            .map_err(|e| format!("cannot set up stream {name}: {}", e.message))?;
                        stream_ids.insert(name.clone(), id.clone());
                        id
                    }
                };
                Box::new(Sparkq::new(&args.addr, format!("loadgen-{w}"), id))
            }
            Target::Beanstalkd => Box::new(Beanstalk::new(&args.addr, name)),
            Target::Redis => Box::new(Redis::new(&args.addr, name)),
        };
        queues.push(queue);
    }
    Ok(queues)
}

/// Fills the shared drain queue with `args.prefill` tasks, using every
/// worker's connection; returns the seconds it took.
fn prefill(args: &Args, queues: &mut [Box<dyn Queue + Send>]) -> Result<f64, String> {
    let start = Instant::now();
    let next = AtomicU64::new(0);
    let failed = Mutex::new(None);
    thread::scope(|s| {
        for (w, queue) in queues.iter_mut().enumerate() {
            let (next, failed) = (&next, &failed);
            s.spawn(move || {
                let base = (w as u64 + 1) << 48;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= args.prefill {
                        return;
                    }
                    if let Err(e) = queue.enqueue(base + i) {
                        *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.message);
                        next.store(u64::MAX / 2, Ordering::Relaxed);
                        return;
                    }
                }
            });
        }
    });
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(message) => Err(format!("prefill failed: {message}")),
        None => Ok(start.elapsed().as_secs_f64()),
    }
}

/// Percentiles of one kind's latencies, in microseconds.
struct Summary {
    count: usize,
    p50: u32,
    p90: u32,
    p99: u32,
    max: u32,
}

fn summarize(mut v: Vec<u32>) -> Summary {
    v.sort_unstable();
    // Nearest rank: the smallest value with at least p% of samples at or
    // below it.
    let at = |p: f64| {
        if v.is_empty() {
            return 0;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    };
    Summary { count: v.len(), p50: at(50.0), p90: at(90.0), p99: at(99.0), max: at(100.0) }
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("loadgen: {e}\n\nrun 'loadgen --help' for usage");
            std::process::exit(2);
        }
    };
    let mut queues = match open_queues(&args) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    };
    let prefill_seconds = if args.prefill > 0 {
        match prefill(&args, &mut queues) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("loadgen: {e}");
                std::process::exit(1);
            }
        }
    } else {
        0.0
    };

    let shared = Arc::new(Shared {
        budget: (args.tasks > 0).then(|| AtomicU64::new(args.tasks)),
        stop: AtomicBool::new(false),
    });
    // The clock starts once every worker has its connection and is ready.
    let barrier = Arc::new(Barrier::new(args.workers + 1));
    let mut handles = Vec::new();
    for (w, mut queue) in queues.into_iter().enumerate() {
        let (shared, barrier) = (Arc::clone(&shared), Arc::clone(&barrier));
        let workload = args.workload;
        handles.push(thread::spawn(move || {
            let mut tally = Tally::default();
            if let Err(e) = queue.open() {
                tally.errors += 1;
                tally.samples.push(format!("cannot connect: {e}"));
            }
            barrier.wait();
            run_worker(workload, w as u64, queue.as_mut(), &shared, &mut tally);
            tally
        }));
    }
    barrier.wait();
    let start = Instant::now();
    let stopper = {
        let shared = Arc::clone(&shared);
        let (seconds, stop_file) = (args.seconds, args.stop_file.clone());
        thread::spawn(move || {
            let end = start + Duration::from_secs_f64(seconds);
            loop {
                let now = Instant::now();
                if now >= end
                    || shared.stop.load(Ordering::Relaxed)
                    || stop_file.as_ref().is_some_and(|f| f.exists())
                {
                    break;
                }
                thread::sleep(Duration::from_millis(20).min(end - now));
            }
            shared.stop.store(true, Ordering::Relaxed);
        })
    };
    let tallies: Vec<Tally> = handles
        .into_iter()
        .map(|h| {
            h.join().unwrap_or_else(|_| Tally {
                errors: 1,
                samples: vec!["worker thread panicked".into()],
                ..Tally::default()
            })
        })
        .collect();
    let elapsed = start.elapsed().as_secs_f64();
    shared.stop.store(true, Ordering::Relaxed);
    let _ = stopper.join();

    let mut latencies: BTreeMap<Kind, Vec<u32>> = BTreeMap::new();
    let (mut tasks, mut errors, mut samples) = (0u64, 0u64, Vec::new());
    let mut emptied = false;
    for t in tallies {
        for (kind, v) in t.latencies {
            latencies.entry(kind).or_default().extend(v);
        }
        tasks += t.tasks;
        errors += t.errors;
        emptied |= t.emptied;
        for s in t.samples {
            if samples.len() < 5 && !samples.contains(&s) {
                samples.push(s);
            }
        }
    }
    let requests: usize = latencies.values().map(Vec::len).sum();
    let summaries: Vec<(Kind, Summary)> =
        latencies.into_iter().map(|(k, v)| (k, summarize(v))).collect();
    let target = match args.target {
        Target::Sparkq => "sparkq",
        Target::Beanstalkd => "beanstalkd",
        Target::Redis => "redis",
    };
    let workload = match args.workload {
        Workload::Lifecycle => "lifecycle",
        Workload::Enqueue => "enqueue",
        Workload::Drain => "drain",
    };
    let tps = tasks as f64 / elapsed;
    let rps = requests as f64 / elapsed;

    // A closed stdout (a pager quit early) is not worth a panic.
    let mut report = io::stdout().lock();
    if args.json {
        let mut out = format!(
            "{{\"target\":\"{target}\",\"workload\":\"{workload}\",\"workers\":{},\
             \"seconds\":{elapsed:.3},\"tasks\":{tasks},\"tasks_per_sec\":{tps:.1},\
             \"requests\":{requests},\"requests_per_sec\":{rps:.1},\"errors\":{errors},\
             \"error_samples\":[{}],\"latency_us\":{{",
            args.workers,
            samples.iter().map(|s| json_str(s)).collect::<Vec<_>>().join(",")
        );
        for (i, (kind, s)) in summaries.iter().enumerate() {
            let _ = write!(
                out,
                "{}\"{}\":{{\"count\":{},\"p50\":{},\"p90\":{},\"p99\":{},\"max\":{}}}",
                if i > 0 { "," } else { "" },
                kind.name(),
                s.count,
                s.p50,
                s.p90,
                s.p99,
                s.max
            );
        }
        out.push('}');
        if args.workload == Workload::Drain {
            let _ = write!(
                out,
                ",\"prefill\":{},\"prefill_seconds\":{prefill_seconds:.3},\"emptied\":{emptied}",
                args.prefill
            );
        }
        out.push('}');
        let _ = writeln!(report, "{out}");
    } else {
        let _ = writeln!(
            report,
            "{target} {workload} x{}: {tasks} tasks in {elapsed:.2} s = {tps:.0} tasks/s, \
             {rps:.0} requests/s, {errors} errors",
            args.workers
        );
        let _ = writeln!(
            report,
            "{:<10} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "kind", "count", "p50 us", "p90 us", "p99 us", "max us"
        );
        for (kind, s) in &summaries {
            let _ = writeln!(
                report,
                "{:<10} {:>9} {:>9} {:>9} {:>9} {:>9}",
                kind.name(),
                s.count,
                s.p50,
                s.p90,
                s.p99,
                s.max
            );
        }
        for s in &samples {
            let _ = writeln!(report, "error: {s}");
        }
    }
    drop(report);
    if errors > 0 {
        std::process::exit(1);
    }
}
