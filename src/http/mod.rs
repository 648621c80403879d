//! The HTTP server: a fixed pool of handler threads calling `recv()` on one
//! `tiny_http` server. tiny_http reads connections on its own threads, so
//! the pool bounds how many requests are handled at once, not how many
//! connections are open.
//!
//! Every request gets exactly one response: the handler's, or a 500 if the
//! handler panicked. Checks that guard the browser (Host, Origin, token,
//! content type) run before routing to a handler.

pub mod api;
pub mod reaper;
pub mod router;

use std::io::Read;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use serde_json::{json, Value};
use tiny_http::{Header, Method, Request, Response};

use crate::config::Config;
use crate::error::Error;
use crate::log;
use crate::scripts::ScriptIndex;
use crate::store::Store;
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

static LISTENER_FAILED: AtomicBool = AtomicBool::new(false);

/// Returns true if and only if the server stopped accepting connections.
pub fn listener_failed() -> bool {
    LISTENER_FAILED.load(Ordering::SeqCst)
}

/// Starts `threads` handler threads on `server`.
pub fn spawn_workers(
    server: Arc<tiny_http::Server>,
    app: Arc<App>,
    threads: usize,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    (0..threads)
        .map(|i| {
            let (server, app, stop) = (server.clone(), app.clone(), stop.clone());
            thread::Builder::new().name(format!("sparkq-http-{i}")).spawn(move || loop {
                match server.recv() {
                    Ok(rq) => handle(&app, rq),
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

/// Handles one request and writes its one response.
fn handle(app: &App, mut rq: Request) {
    let start = Instant::now();
    let method = rq.method().clone();
    let url = rq.url().to_string();
    let reply = match panic::catch_unwind(AssertUnwindSafe(|| respond_to(app, &mut rq))) {
        Ok(reply) => reply,
        Err(_) => Reply::fail(500, "internal error: the handler failed; see the server log"),
    };
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
    let head = method == Method::Head;
    let mut resp = Response::from_data(if head { Vec::new() } else { reply.body })
        .with_status_code(reply.status);
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
    // A client that went away is not an error of ours.
    let _ = rq.respond(resp);
}

fn header<'a>(rq: &'a Request, name: &str) -> Option<&'a str> {
    rq.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

fn respond_to(app: &App, rq: &mut Request) -> Reply {
    let config = app.config();
    let url = rq.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let route = router::route(rq.method(), path);

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
    let body = match read_body(rq, config.server.max_body_bytes) {
        Ok(b) => b,
        Err(reply) => return reply,
    };
    let query = router::parse_query(query);
    match api::dispatch(app, &config, route, &query, body) {
        Ok(reply) => reply,
        Err(e) => Reply::error(&e),
    }
}

/// The checks of SPEC §8: Host (DNS rebinding), Origin (CSRF), the token,
/// and the content type of a body.
fn check_access(app: &App, config: &Config, rq: &Request, route: &Route) -> Result<(), Reply> {
    if let Some(host) = header(rq, "Host") {
        if !host_allowed(host, app.addr, config) {
            return Err(Reply::fail(
                403,
                &format!(
                    "host \"{host}\" is not allowed; add it to server.allowed_hosts to serve it"
                ),
            ));
        }
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
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|t| constant_time_eq(t.trim().as_bytes(), token.as_bytes()));
            if !ok {
                let mut r =
                    Reply::fail(401, "missing or wrong token: send Authorization: Bearer <token>");
                r.headers.push(("WWW-Authenticate", "Bearer".into()));
                return Err(r);
            }
        }
    }
    let has_body =
        rq.body_length().is_some_and(|n| n > 0) || header(rq, "Transfer-Encoding").is_some();
    if changes && has_body {
        let ct = header(rq, "Content-Type").unwrap_or("");
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

/// Reads the whole body, refusing one over `limit` bytes with 413.
fn read_body(rq: &mut Request, limit: u64) -> Result<Vec<u8>, Reply> {
    if let Some(n) = rq.body_length() {
        if n as u64 > limit {
            return Err(Reply::fail(
                413,
                &format!("request body of {n} bytes is over the limit of {limit} bytes"),
            ));
        }
    }
    let mut body = Vec::new();
    match rq.as_reader().take(limit + 1).read_to_end(&mut body) {
        Ok(_) if body.len() as u64 > limit => {
            Err(Reply::fail(413, &format!("request body is over the limit of {limit} bytes")))
        }
        Ok(_) => Ok(body),
        Err(e) => Err(Reply::fail(400, &format!("cannot read the request body: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "127.0.0.1:8420".parse().unwrap()
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
    }
}
