//! The HTTP server: a fixed pool of handler threads calling `recv()` on one
//! `tiny_http` server. tiny_http reads connections on its own threads, so
//! the pool bounds how many requests are handled at once, not how many
//! connections are open.
//!
//! Every request gets exactly one response: the handler's, or a 500 if the
//! handler panicked. Checks that guard the browser (Host, Origin, token,
//! content type) run before routing to a handler.
//!
//! N.B. No handler thread waits on a client. tiny_http hands over a request
//! once its head is read; a body it has not read yet (over 1 KiB, chunked,
//! or behind `Expect: 100-continue`) is read on a thread of its own, and so
//! is a large reply written. A request whose body is left unread is answered
//! with `Connection: close` and its socket shut, because tiny_http would
//! otherwise take the rest of the body for the next request (chunked) or
//! allocate its whole claimed length at once to skip it (which aborts the
//! process for a length no memory can hold).

pub mod api;
mod body;
pub mod reaper;
pub mod router;

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tiny_http::{HTTPVersion, Header, Method, Request, Response};

use crate::config::Config;
use crate::error::Error;
use crate::log;
use crate::scripts::ScriptIndex;
use crate::store::Store;
use body::{
    discard, framing, read_body, reads_socket, skip_len, write_closing, Body, Framing, SKIP_MAX,
};
use router::Route;

/// What the handlers share.
pub struct App {
    pub store: Arc<Store>,
    /// Swapped whole by `reload`; readers clone the `Arc` and let go.
    pub config: Arc<RwLock<Arc<Config>>>,
    pub scripts: RwLock<Arc<ScriptIndex>>,
    pub started: Instant,
    pub addr: SocketAddr,
    /// Told once when a client asks the server to stop.
    pub shutdown: Mutex<Option<Sender<()>>>,
}

impl App {
    pub fn config(&self) -> Arc<Config> {
        self.config.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn scripts(&self) -> Arc<ScriptIndex> {
        self.scripts.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A response before it is written.
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn json(status: u16, value: &Value) -> Reply {
        let body = serde_json::to_vec(value).unwrap_or_default();
        Reply { status, body, content_type: "application/json", headers: Vec::new() }
    }

    pub fn empty(status: u16) -> Reply {
        Reply { status, body: Vec::new(), content_type: "application/json", headers: Vec::new() }
    }

    /// `{"error": message, "status": code}`.
    pub fn error(err: &Error) -> Reply {
        Reply::fail(err.http_status(), err.message())
    }

    pub fn fail(status: u16, message: &str) -> Reply {
        Reply::json(status, &json!({ "error": message, "status": status }))
    }
}

/// Replies longer than this are written on a thread of their own: a client
/// that does not read could otherwise hold a handler thread until the
/// reaper closes it.
const WRITE_INLINE_MAX: usize = 64 * 1024;

/// The most bytes a request's line and headers may take; tiny_http sets no
/// limit, and the reaper cuts off only what arrives between its sweeps.
const HEAD_MAX: usize = 64 * 1024;

/// How long requests still parsed from a connection closed on purpose are
/// refused: they follow it by milliseconds.
const CLOSED_FOR: Duration = Duration::from_secs(5);

static LISTENER_FAILED: AtomicBool = AtomicBool::new(false);

/// Returns true if and only if the server stopped accepting connections.
pub fn listener_failed() -> bool {
    LISTENER_FAILED.load(Ordering::SeqCst)
}

/// What the handler threads share besides the `App`.
struct Shared {
    /// Bounds how many requests are worked on at once, wherever their body
    /// was read.
    slots: Slots,
    /// Held while a thread takes the next request.
    intake: Mutex<()>,
    /// Connections closed on purpose, by peer address, and when.
    closed: Mutex<HashMap<SocketAddr, (Instant, Option<u64>)>>,
}

impl Shared {
    fn new(threads: usize) -> Shared {
        Shared {
            slots: Slots::new(threads.max(1)),
            intake: Mutex::new(()),
            closed: Mutex::new(HashMap::new()),
        }
    }

    /// Marks the connection to `peer` as closed on purpose; `inode` names
    /// its socket, so that a new connection from the same port is not taken
    /// for it.
    fn mark_closed(&self, peer: SocketAddr, inode: Option<u64>) {
        let mut closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
        closed.retain(|_, (at, _)| at.elapsed() < CLOSED_FOR);
        closed.insert(peer, (Instant::now(), inode));
    }

    fn was_closed(&self, peer: SocketAddr) -> bool {
        let entry = self.closed.lock().unwrap_or_else(|p| p.into_inner()).get(&peer).copied();
        match entry {
            Some((at, _)) if at.elapsed() >= CLOSED_FOR => false,
            Some((_, Some(inode))) => {
                let now = reaper::socket_of(peer).and_then(|s| reaper::inode_of(&s));
                now.is_none_or(|i| i == inode)
            }
            Some((_, None)) => true,
            None => false,
        }
    }
}

/// A counting semaphore.
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

struct Slot<'a>(&'a Slots);

impl Slots {
    fn new(n: usize) -> Slots {
        Slots { free: Mutex::new(n), freed: Condvar::new() }
    }

    fn take(&self) -> Slot<'_> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

/// Starts `threads` handler threads on `server`.
pub fn spawn_workers(
    server: Arc<tiny_http::Server>,
    app: Arc<App>,
    threads: usize,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let shared = Arc::new(Shared::new(threads));
    (0..threads)
        .map(|i| {
            let (server, app, stop, shared) =
                (server.clone(), app.clone(), stop.clone(), shared.clone());
            thread::Builder::new().name(format!("sparkq-http-{i}")).spawn(move || loop {
                match intake(&server, &shared) {
                    Ok((rq, true)) => discard(rq, 0),
                    Ok((rq, false)) => {
                        // `handle` catches a handler's panic; this keeps the
                        // thread alive should anything around it panic.
                        let _ = panic::catch_unwind(AssertUnwindSafe(|| accept(&app, &shared, rq)));
                    }
                    Err(_) if stop.load(Ordering::SeqCst) => return,
                    Err(e) => {
                        // tiny_http's accept loop ends after its first error, so
                        // no new connection will come: stop the server loudly
                        // rather than run on deaf.
                        log::error("accept_failed", &[("error", &e)]);
                        LISTENER_FAILED.store(true, Ordering::SeqCst);
                        if let Some(tx) =
                            app.shutdown.lock().unwrap_or_else(|p| p.into_inner()).take()
                        {
                            let _ = tx.send(());
                        }
                    }
                }
            })
        })
        .collect()
}

/// Takes the next request, and whether to drop it unanswered: it came from
/// a connection closed on purpose.
///
/// N.B. One thread at a time takes requests, so a connection's requests
/// are seen here in order. That matters for a `Content-Length` tiny_http
/// cannot read: it takes the body for the next request at once, and the
/// connection must be marked closed before that one is taken.
fn intake(server: &tiny_http::Server, shared: &Shared) -> std::io::Result<(Request, bool)> {
    let _turn = shared.intake.lock().unwrap_or_else(|p| p.into_inner());
    let rq = server.recv()?;
    let Some(peer) = rq.remote_addr().copied() else {
        return Ok((rq, false));
    };
    if shared.was_closed(peer) {
        return Ok((rq, true));
    }
    if matches!(framing(&rq), Framing::Invalid(_)) {
        shared.mark_closed(peer, reaper::socket_of(peer).and_then(|s| reaper::inode_of(&s)));
    }
    Ok((rq, false))
}

/// Handles `rq` here, or on a thread of its own when its body must still
/// come from the client.
fn accept(app: &Arc<App>, shared: &Arc<Shared>, rq: Request) {
    if !reads_socket(&rq) {
        return handle(app, shared, rq, false);
    }
    let (app2, shared2) = (app.clone(), shared.clone());
    let work = move |rq| {
        let _ = panic::catch_unwind(AssertUnwindSafe(|| handle(&app2, &shared2, rq, true)));
    };
    if let Some(rq) = on_own_thread("sparkq-body", rq, work) {
        // No thread to be had: better a busy handler than a lost request.
        handle(app, shared, rq, false);
    }
}

/// Runs `work(value)` on a new thread named `name`; gives `value` back when
/// no thread can be had.
fn on_own_thread<T: Send + 'static>(
    name: &str,
    value: T,
    work: impl FnOnce(T) + Send + 'static,
) -> Option<T> {
    let cell = Arc::new(Mutex::new(Some(value)));
    let inner = cell.clone();
    let spawned = thread::Builder::new().name(name.into()).spawn(move || {
        if let Some(value) = inner.lock().unwrap_or_else(|p| p.into_inner()).take() {
            work(value);
        }
    });
    match spawned {
        Ok(_) => None,
        Err(_) => cell.lock().unwrap_or_else(|p| p.into_inner()).take(),
    }
}

/// Handles one request and writes its one response. `own_thread` is true
/// when this thread serves only this request.
fn handle(app: &App, shared: &Shared, mut rq: Request, own_thread: bool) {
    let start = Instant::now();
    let method = rq.method().clone();
    let url = rq.url().to_string();
    let (reply, body) = reply_for(app, shared, &mut rq);
    if reply.status >= 500 {
        let msg = String::from_utf8_lossy(&reply.body).into_owned();
        log::error(
            "request_failed",
            &[("method", &method), ("path", &url), ("status", &reply.status), ("error", &msg)],
        );
    } else {
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        log::debug(
            "request",
            &[
                ("method", &method),
                ("path", &url),
                ("status", &reply.status),
                ("ms", &format!("{ms:.2}")),
            ],
        );
    }
    if body.is_clean(&rq) {
        send(rq, reply, own_thread);
    } else {
        let skip = skip_len(&rq, body.read());
        close_with(shared, rq, reply, skip);
    }
}

/// The reply to `rq`, or a 500 if the handler panicked, and how far its
/// body was read.
fn reply_for(app: &App, shared: &Shared, rq: &mut Request) -> (Reply, Body) {
    let mut body = Body::Unread;
    let reply =
        match panic::catch_unwind(AssertUnwindSafe(|| respond_to(app, shared, rq, &mut body))) {
            Ok(reply) => reply,
            Err(_) => Reply::fail(500, "internal error: the handler failed; see the server log"),
        };
    (reply, body)
}

/// Writes `reply` through tiny_http, which keeps the connection open.
fn send(rq: Request, reply: Reply, own_thread: bool) {
    let big = reply.body.len() > WRITE_INLINE_MAX;
    let job = (rq, response(reply));
    // A client that went away is not an error of ours.
    let job = if big && !own_thread {
        on_own_thread("sparkq-write", job, |(rq, resp)| drop(rq.respond(resp)))
    } else {
        Some(job)
    };
    if let Some((rq, resp)) = job {
        let _ = rq.respond(resp);
    }
}

fn response(reply: Reply) -> Response<std::io::Cursor<Vec<u8>>> {
    // For HEAD, tiny_http sends the headers of the full body and not the
    // body itself.
    let mut resp = Response::from_data(reply.body).with_status_code(reply.status);
    let mut add = |k: &str, v: &str| {
        if let Ok(h) = Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            resp.add_header(h);
        }
    };
    if reply.status != 204 && reply.status != 304 {
        add("Content-Type", reply.content_type);
    }
    add("X-Content-Type-Options", "nosniff");
    for (k, v) in &reply.headers {
        add(k, v);
    }
    resp
}

/// Answers `rq` and closes its connection, for a request whose body was not
/// read to its end: what follows on the socket cannot be told apart from a
/// new request, so none of it may be taken as one. `skip` is how much body
/// tiny_http would still read, all at once, when `rq` is dropped.
fn close_with(shared: &Shared, rq: Request, reply: Reply, skip: u64) {
    let peer = rq.remote_addr().copied();
    let sock = peer.and_then(reaper::socket_of);
    if let Some(p) = peer {
        shared.mark_closed(p, sock.as_ref().and_then(reaper::inode_of));
    }
    match sock {
        Some(sock) => {
            // Shut for reading first: tiny_http's skipping of the body then
            // ends at once instead of waiting on the client.
            let _ = sock.shutdown(Shutdown::Read);
            let head = *rq.method() == Method::Head;
            write_closing(&sock, &reply, rq.http_version(), head);
            let _ = sock.shutdown(Shutdown::Both);
            discard(rq, skip);
        }
        // Without /proc, tiny_http's own skipping is all that is left.
        None if skip <= SKIP_MAX => send(rq, reply, true),
        None => discard(rq, skip),
    }
}

fn header<'a>(rq: &'a Request, name: &str) -> Option<&'a str> {
    rq.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

fn headers<'a>(rq: &'a Request, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    rq.headers()
        .iter()
        .filter(move |h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

fn respond_to(app: &App, shared: &Shared, rq: &mut Request, body: &mut Body) -> Reply {
    let config = app.config();
    let url = rq.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let route = router::route(rq.method(), path);

    let head_len = url.len()
        + rq.headers()
            .iter()
            .map(|h| h.field.as_str().as_str().len() + h.value.len() + 4)
            .sum::<usize>();
    if head_len > HEAD_MAX {
        let msg = format!("request head of {head_len} bytes is over the limit of {HEAD_MAX} bytes");
        return Reply::fail(431, &msg);
    }
    if let Framing::Invalid(why) = framing(rq) {
        return Reply::fail(400, &why);
    }
    if let Err(reply) = check_access(app, &config, rq, &route) {
        return reply;
    }
    match route {
        Route::NotFound => {
            return Reply::fail(404, &format!("no route for {} {path}", rq.method()))
        }
        Route::WrongMethod(allow) => {
            let mut r = Reply::fail(
                405,
                &format!("method {} is not allowed on {path} (allowed: {allow})", rq.method()),
            );
            r.headers.push(("Allow", allow.to_string()));
            return r;
        }
        Route::Asset(ref file) => return api::asset(file, header(rq, "If-None-Match")),
        _ => {}
    }
    let bytes = match read_body(rq, config.server.max_body_bytes, body) {
        Ok(b) => b,
        Err(reply) => return reply,
    };
    let query = router::parse_query(query);
    #[cfg(test)]
    tests::maybe_panic(path);
    let _slot = shared.slots.take();
    match api::dispatch(app, &config, route, &query, bytes) {
        Ok(reply) => reply,
        Err(e) => Reply::error(&e),
    }
}

/// The checks of SPEC §8: Host (DNS rebinding), Origin (CSRF), the token,
/// and the content type of a body.
fn check_access(app: &App, config: &Config, rq: &Request, route: &Route) -> Result<(), Reply> {
    let mut hosts = headers(rq, "Host");
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => return Err(Reply::fail(400, "more than one Host header")),
        (None, None) if *rq.http_version() >= HTTPVersion(1, 1) => {
            return Err(Reply::fail(400, "an HTTP/1.1 request must have a Host header"))
        }
        (Some(host), _) if !host_allowed(host, app.addr, config) => {
            return Err(Reply::fail(
                403,
                &format!(
                    "host \"{host}\" is not allowed; add it to server.allowed_hosts to serve it"
                ),
            ));
        }
        _ => {}
    }
    let changes = !matches!(rq.method(), Method::Get | Method::Head | Method::Options);
    if changes {
        let origin = header(rq, "Origin").or_else(|| header(rq, "Referer"));
        if let Some(origin) = origin {
            if !origin_allowed(origin, app.addr, config) {
                return Err(Reply::fail(
                    403,
                    &format!("cross-origin request from \"{origin}\" refused"),
                ));
            }
        }
    }
    if let Some(token) = &config.server.token {
        if !route.is_public() {
            let ok = header(rq, "Authorization")
                .and_then(bearer)
                .is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes()));
            if !ok {
                let mut r =
                    Reply::fail(401, "missing or wrong token: send Authorization: Bearer <token>");
                r.headers.push(("WWW-Authenticate", "Bearer".into()));
                return Err(r);
            }
        }
    }
    // A form can send any body cross-site with one of three content types
    // and no preflight, so a state change takes JSON only; a request
    // without a body may leave the type out.
    let has_body = framing(rq) != Framing::None;
    let ct = header(rq, "Content-Type");
    if changes && (has_body || ct.is_some()) {
        let ct = ct.unwrap_or("");
        let media = ct.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case("application/json") {
            let shown = if ct.is_empty() { "none" } else { ct };
            return Err(Reply::fail(
                415,
                &format!("request body must be application/json, not \"{shown}\""),
            ));
        }
    }
    Ok(())
}

/// The token of an `Authorization: Bearer <token>` value; the scheme's case
/// does not matter.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Splits `host[:port]`, keeping `[::1]` whole.
fn split_host(hostport: &str) -> (&str, Option<&str>) {
    if let Some(rest) = hostport.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            let port = rest[end + 1..].strip_prefix(':');
            return (&hostport[..end + 2], port);
        }
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (hostport, None),
    }
}

fn is_loopback_name(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "localhost"
        || h.ends_with(".localhost")
        || h == "[::1]"
        || h.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// Returns true if and only if a `Host` value names this server.
pub fn host_allowed(hostport: &str, addr: SocketAddr, config: &Config) -> bool {
    let (host, _) = split_host(hostport.trim());
    let own = match addr.ip() {
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    is_loopback_name(host)
        || host.eq_ignore_ascii_case(&own)
        || host.eq_ignore_ascii_case(&config.server.host)
        || config
            .server
            .allowed_hosts
            .iter()
            .any(|a| a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(hostport))
}

/// Returns true if and only if an `Origin` (or `Referer`) is this server's
/// own: an allowed host on this server's port.
pub fn origin_allowed(origin: &str, addr: SocketAddr, config: &Config) -> bool {
    let rest = match origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) {
        Some(r) => r,
        None => return false,
    };
    let hostport = rest.split('/').next().unwrap_or("");
    let (_, port) = split_host(hostport);
    let port_ok = port.map_or(addr.port() == 80, |p| p.parse() == Ok(addr.port()));
    port_ok && host_allowed(hostport, addr, config)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::AtomicUsize;
    use tiny_http::TestRequest;

    use crate::config::Synchronous;

    thread_local! {
        static PANIC_NEXT: Cell<bool> = const { Cell::new(false) };
    }

    /// Makes the next request handled on this thread panic inside its
    /// handler, as a bug would.
    pub(super) fn maybe_panic(path: &str) {
        if PANIC_NEXT.with(|p| p.replace(false)) {
            panic!("a handler bug, injected by a test, on {path}");
        }
    }

    fn addr() -> SocketAddr {
        "127.0.0.1:8420".parse().unwrap()
    }

    fn temp_dir() -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("sparkq-http-unit-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn app_in(dir: &Path, edit: impl FnOnce(&mut Config)) -> App {
        let mut config = Config::defaults(dir);
        edit(&mut config);
        let store = Store::open(&dir.join("q.db"), Synchronous::Normal).unwrap();
        App {
            store: Arc::new(store),
            config: Arc::new(RwLock::new(Arc::new(config))),
            scripts: RwLock::new(Arc::new(ScriptIndex::build(&[]))),
            started: Instant::now(),
            addr: addr(),
            shutdown: Mutex::new(None),
        }
    }

    fn h(name: &str, value: &str) -> Header {
        Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap()
    }

    /// A request with the usual `Host`, and `headers` on top.
    fn request(
        method: Method,
        path: &str,
        body: &'static str,
        headers: &[(&str, &str)],
    ) -> Request {
        let mut t = TestRequest::new()
            .with_method(method)
            .with_path(path)
            .with_body(body)
            .with_header(h("Host", "127.0.0.1:8420"));
        for (k, v) in headers {
            t = t.with_header(h(k, v));
        }
        t.into()
    }

    const JSON: (&str, &str) = ("Content-Type", "application/json");

    fn call(app: &App, rq: Request) -> (Reply, Body) {
        let shared = Shared::new(2);
        let mut rq = rq;
        reply_for(app, &shared, &mut rq)
    }

    fn error_of(reply: &Reply) -> String {
        let v: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(v["status"], reply.status, "{v}");
        v["error"].as_str().unwrap().to_string()
    }

    #[test]
    fn hosts_loopback_names_and_own_address_are_allowed() {
        let c = Config::defaults(std::path::Path::new("/tmp"));
        for h in ["127.0.0.1:8420", "localhost:8420", "localhost", "[::1]:8420", "app.localhost"] {
            assert!(host_allowed(h, addr(), &c), "{h}");
        }
        for h in ["evil.example:8420", "192.168.1.4", "127.0.0.1.evil.example"] {
            assert!(!host_allowed(h, addr(), &c), "{h}");
        }
    }

    #[test]
    fn origins_must_match_host_and_port() {
        let c = Config::defaults(std::path::Path::new("/tmp"));
        assert!(origin_allowed("http://127.0.0.1:8420", addr(), &c));
        assert!(origin_allowed("http://localhost:8420/ui/", addr(), &c));
        assert!(!origin_allowed("http://localhost:3000", addr(), &c));
        assert!(!origin_allowed("https://evil.example", addr(), &c));
        assert!(!origin_allowed("null", addr(), &c));
        assert!(!origin_allowed("http://127.0.0.1:8420.evil.example", addr(), &c));
        assert!(!origin_allowed("http://localhost:8420@evil.example", addr(), &c));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_token_exact() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn invalid_json_and_wrong_types_get_400_naming_the_problem() {
        let dir = temp_dir();
        let app = app_in(&dir, |_| {});
        let cases: &[(&str, &str)] = &[
            ("{", "invalid JSON"),
            ("[1]", "must be a JSON object, not an array"),
            ("\"x\"", "not a string"),
            ("{\"name\": 5}", "field \"name\" must be a string, not a number"),
            ("{\"name\": \"\"}", "must not be empty"),
            ("{}", "missing required field \"name\""),
        ];
        for (body, want) in cases {
            let (reply, read) = call(&app, request(Method::Post, "/api/sessions", body, &[JSON]));
            assert_eq!(reply.status, 400, "{body}");
            assert!(error_of(&reply).contains(want), "{body}: {}", error_of(&reply));
            assert_eq!(read, Body::Complete);
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn json_bodies_need_the_json_content_type() {
        let dir = temp_dir();
        let app = app_in(&dir, |_| {});
        let body = "{\"name\": \"a\"}";
        for ct in [None, Some("text/plain"), Some("application/x-www-form-urlencoded")] {
            let hs: Vec<(&str, &str)> = ct.map(|c| ("Content-Type", c)).into_iter().collect();
            let (reply, read) = call(&app, request(Method::Post, "/api/sessions", body, &hs));
            assert_eq!(reply.status, 415, "{ct:?}");
            assert_eq!(read, Body::Unread);
        }
        let form = [("Content-Type", "text/plain")];
        let (reply, _) = call(&app, request(Method::Post, "/api/shutdown", "", &form));
        assert_eq!(reply.status, 415, "a form type is refused even without a body");
        let json = [("Content-Type", "application/json; charset=utf-8")];
        let (reply, _) = call(&app, request(Method::Post, "/api/sessions", body, &json));
        assert_eq!(reply.status, 201);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn host_must_be_there_once_and_be_ours() {
        let dir = temp_dir();
        let app = app_in(&dir, |c| c.server.allowed_hosts = vec!["queue.lan".into()]);
        let get = |hs: &[(&str, &str)]| {
            let mut t = TestRequest::new().with_path("/health");
            for (k, v) in hs {
                t = t.with_header(h(k, v));
            }
            call(&app, t.into()).0.status
        };
        assert_eq!(get(&[]), 400, "HTTP/1.1 without Host");
        assert_eq!(get(&[("Host", "127.0.0.1"), ("Host", "evil.example")]), 400);
        assert_eq!(get(&[("Host", "evil.example")]), 403);
        assert_eq!(get(&[("Host", "queue.lan:8420")]), 200);
        assert_eq!(get(&[("Host", "localhost")]), 200);
        let old: Request =
            TestRequest::new().with_path("/health").with_http_version(HTTPVersion(1, 0)).into();
        assert_eq!(call(&app, old).0.status, 200, "HTTP/1.0 may leave Host out");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn cross_site_changes_are_refused_and_reads_are_not() {
        let dir = temp_dir();
        let app = app_in(&dir, |_| {});
        let evil = [("Origin", "http://evil.example"), JSON];
        let (reply, _) = call(&app, request(Method::Post, "/api/shutdown", "{}", &evil));
        assert_eq!(reply.status, 403);
        assert!(error_of(&reply).contains("evil.example"));
        let referer = [("Referer", "http://evil.example/page"), JSON];
        let (reply, _) = call(&app, request(Method::Post, "/api/shutdown", "{}", &referer));
        assert_eq!(reply.status, 403);
        let (reply, _) = call(&app, request(Method::Get, "/stats", "", &evil[..1]));
        assert_eq!(reply.status, 200);
        let own = [("Origin", "http://127.0.0.1:8420"), JSON];
        let (reply, _) =
            call(&app, request(Method::Post, "/api/sessions", "{\"name\":\"o\"}", &own));
        assert_eq!(reply.status, 201);
        assert!(!reply.headers.iter().any(|(k, _)| k.starts_with("Access-Control")));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_token_guards_the_api_but_not_health_or_dashboard() {
        let dir = temp_dir();
        let app = app_in(&dir, |c| c.server.token = Some("s3cret".into()));
        let status = |path: &str, auth: Option<&str>| {
            let hs: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
            call(&app, request(Method::Get, path, "", &hs)).0.status
        };
        assert_eq!(status("/stats", None), 401);
        assert_eq!(status("/stats", Some("Bearer wrong")), 401);
        assert_eq!(status("/stats", Some("Bearer s3cret0")), 401);
        assert_eq!(status("/stats", Some("Basic s3cret")), 401);
        assert_eq!(status("/stats", Some("Bearer s3cret")), 200);
        assert_eq!(status("/nope", None), 401, "unknown routes do not leak without a token");
        assert_eq!(status("/health", None), 200);
        assert_eq!(status("/", None), 200);
        assert_eq!(status("/ui/app.js", None), 200);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_handler_panic_answers_500_once_and_the_next_request_works() {
        let dir = temp_dir();
        let app = app_in(&dir, |_| {});
        let (reply, _) =
            call(&app, request(Method::Post, "/api/sessions", "{\"name\":\"a\"}", &[JSON]));
        assert_eq!(reply.status, 201);
        PANIC_NEXT.with(|p| p.set(true));
        let (reply, _) = call(&app, request(Method::Get, "/stats", "", &[]));
        assert_eq!(reply.status, 500);
        assert!(error_of(&reply).contains("internal error"));
        // The same store, on every route that uses it.
        let (reply, _) =
            call(&app, request(Method::Post, "/api/sessions", "{\"name\":\"b\"}", &[JSON]));
        assert_eq!(reply.status, 201);
        let (reply, _) = call(&app, request(Method::Get, "/api/sessions", "", &[]));
        let v: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(v["sessions"].as_array().map(Vec::len), Some(2));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_panic_holding_the_shared_locks_poisons_nothing_for_the_others() {
        let dir = temp_dir();
        let (tx, _rx) = std::sync::mpsc::channel();
        let mut app = app_in(&dir, |_| {});
        app.shutdown = Mutex::new(Some(tx));
        let app = Arc::new(app);
        let a = app.clone();
        let died = thread::spawn(move || {
            let _c = a.config.write().unwrap();
            let _s = a.scripts.write().unwrap();
            let _d = a.shutdown.lock().unwrap();
            panic!("a thread dies holding every lock of the App");
        })
        .join();
        assert!(died.is_err());
        assert!(app.config.is_poisoned() && app.scripts.is_poisoned());
        assert!(app.shutdown.is_poisoned());
        for (m, path, body) in [
            (Method::Get, "/stats", ""),
            (Method::Get, "/api/tools", ""),
            (Method::Get, "/api/scripts/index", ""),
            (Method::Post, "/api/sessions", "{\"name\":\"after\"}"),
            (Method::Post, "/api/shutdown", "{}"),
        ] {
            let (reply, _) = call(&app, request(m.clone(), path, body, &[JSON]));
            assert!(reply.status < 300, "{m} {path}: {}", reply.status);
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn oversized_and_short_bodies_are_refused_and_marked_unread() {
        let dir = temp_dir();
        let app = app_in(&dir, |c| c.server.max_body_bytes = 16);
        let big = "{\"name\": \"aaaaaaaaaaaaaaaaaaaa\"}";
        let (reply, read) = call(&app, request(Method::Post, "/api/sessions", big, &[JSON]));
        assert_eq!(reply.status, 413);
        assert!(error_of(&reply).contains("over the limit of 16 bytes"));
        assert_eq!(read, Body::Unread);
        // Announces 2000 bytes, has 1500: the reader ends early.
        let app = app_in(&dir, |c| c.server.max_body_bytes = 4096);
        let short = "y".repeat(1500).leak();
        let rq = request(Method::Post, "/api/sessions", short, &[JSON, ("Content-Length", "2000")]);
        let (reply, read) = call(&app, rq);
        assert_eq!(reply.status, 400);
        let msg = error_of(&reply);
        assert!(msg.contains("ended after 1500 of the 2000 bytes"), "{msg}");
        assert_eq!(read, Body::Partial(1500));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn slots_bound_the_requests_worked_on_at_once() {
        let slots = Arc::new(Slots::new(2));
        let busy = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (slots, busy, most) = (slots.clone(), busy.clone(), most.clone());
                thread::spawn(move || {
                    for _ in 0..20 {
                        let _slot = slots.take();
                        let now = busy.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        thread::yield_now();
                        busy.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= 2);
        assert_eq!(*slots.free.lock().unwrap(), 2, "every slot is given back");
    }

    #[test]
    fn closed_peers_are_refused_for_a_short_while() {
        let shared = Shared::new(1);
        let p: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        assert!(!shared.was_closed(p));
        shared.mark_closed(p, None);
        assert!(shared.was_closed(p));
        assert!(!shared.was_closed("127.0.0.1:50001".parse().unwrap()));
        // A socket that is gone counts as closed; one with another inode
        // is a new connection from the same port.
        let _sockets = reaper::tests::sockets();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server_side, peer) = l.accept().unwrap();
        let inode = reaper::inode_of(&server_side).expect("a socket has an inode");
        shared.mark_closed(peer, Some(inode));
        assert!(shared.was_closed(peer));
        shared.mark_closed(peer, Some(inode + 1));
        assert!(!shared.was_closed(peer), "another socket from the same port");
        drop((client, server_side));
    }

    use crate::testing::Rng;

    #[test]
    fn random_requests_get_one_reply_each_and_never_a_500() {
        const PATHS: &[&str] = &[
            "/",
            "/health",
            "/stats",
            "/api/stats",
            "/api/sessions",
            "/api/sessions/fz",
            "/api/sessions/fz/end",
            "/api/streams",
            "/api/streams/fz",
            "/api/streams/fz/end",
            "/api/streams/fz/peek",
            "/api/streams/fz/claim",
            "/api/tasks",
            "/api/tasks/tsk_x",
            "/api/tasks/tsk_x/claim",
            "/api/tasks/tsk_x/complete",
            "/api/tasks/tsk_x/fail",
            "/api/tasks/tsk_x/requeue",
            "/api/tools",
            "/api/scripts/index",
            "/api/reload",
            "/api/shutdown",
            "/ui/app.js",
            "/ui/%2e%2e/Cargo.toml",
            "/ui/..\\x",
            "//health",
            "/api/tasks?limit=0",
            "/api/tasks?limit=1001&offset=-1",
            "/api/tasks?status=nope",
            "/api/sessions?status=ended&limit=2",
            "/api/tasks?stale=maybe",
            "/api/%ff",
            "/%",
            "/api/scripts/index?q=%00",
            "/api/tasks?stream_id=fz&status=queued",
        ];
        const HEADERS: &[(&str, &[&str])] = &[
            ("Content-Type", &["application/json", "text/plain", "application/json; x=1", ""]),
            ("Origin", &["http://127.0.0.1:8420", "http://evil.example", "null", ""]),
            ("Referer", &["http://localhost:8420/ui/", "https://evil.example/x"]),
            ("Host", &["evil.example", "localhost:8420", "[::1]:8420", ""]),
            ("Authorization", &["Bearer x", "Basic y", ""]),
            ("Transfer-Encoding", &["gzip", "chunked, identity"]),
            ("Expect", &["100-continue"]),
            ("If-None-Match", &["\"0\"", "*"]),
            ("Connection", &["close", "keep-alive"]),
        ];
        const BODIES: &[&str] = &[
            "",
            "{}",
            "{",
            "[]",
            "null",
            "\"x\"",
            "{\"name\":\"fz\"}",
            "{\"name\":7}",
            "{\"session_id\":\"fz\",\"name\":\"fz\"}",
            "{\"stream_id\":\"fz\",\"tool_name\":\"run-bash\"}",
            "{\"stream_id\":\"fz\",\"tool_name\":\"nope\",\"timeout\":0}",
            "{\"result_summary\":\"\",\"stdout\":{}}",
            "{\"error_message\":\"e\",\"error_type\":5}",
            "{\"payload\":{\"a\":1},\"metadata\":[]}",
            "{\"worker_id\":\"w\"}",
            "1e999",
            "{\"name\":\"\\ud800\"}",
            "\u{feff}{}",
            "{\"name\":\"a\",\"name\":\"b\"}",
        ];
        let methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "BREW"];
        let dir = temp_dir();
        let app = app_in(&dir, |_| {});
        let shared = Shared::new(2);
        let mut rng = Rng(0x00c0_ffee_1234_5678);
        for case in 0..3000 {
            let method: Method = rng.pick(&methods).parse().unwrap();
            let path = rng.pick(PATHS);
            let body: &'static str = rng.pick(BODIES);
            let mut t = TestRequest::new()
                .with_method(method.clone())
                .with_path(path)
                .with_body(body)
                .with_header(h("Host", "127.0.0.1:8420"));
            let mut shown = Vec::new();
            for _ in 0..rng.next() % 4 {
                let (name, values) = HEADERS[(rng.next() % HEADERS.len() as u64) as usize];
                let value = rng.pick(values);
                t = t.with_header(h(name, value));
                shown.push(format!("{name}: {value}"));
            }
            if case % 7 == 0 {
                PANIC_NEXT.with(|p| p.set(true));
            }
            let mut rq: Request = t.into();
            let (reply, _) = reply_for(&app, &shared, &mut rq);
            PANIC_NEXT.with(|p| p.set(false));
            let what = format!("{method} {path} {shown:?} {body:?}");
            assert!(
                matches!(reply.status, 200..=204 | 304 | 400 | 401 | 403..=405 | 409 | 413 | 415)
                    || (reply.status == 500 && error_of(&reply).contains("handler failed")),
                "{what}: {} {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            );
            if reply.status >= 400 {
                assert!(!error_of(&reply).is_empty(), "{what}");
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
