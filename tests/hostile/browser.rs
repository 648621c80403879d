//! What a web page can make a browser send: requests under another `Host`
//! (DNS rebinding), state changes from another origin (CSRF), form bodies;
//! and the token that a non-loopback bind needs.

use std::time::Duration;

use crate::support::{Dir, Server, CONFIG};

fn json() -> (&'static str, &'static str) {
    ("Content-Type", "application/json")
}

#[test]
fn requests_for_another_host_are_refused_unless_allowed() {
    let yaml = CONFIG.replace("server:\n", "server:\n  allowed_hosts: [queue.test]\n");
    let dir = Dir::new("rebind", &yaml);
    let server = Server::start(&dir);
    let port = server.addr.port();
    let with_host = |method: &str, path: &str, host: &str| {
        let mut c = server.conn();
        let body = if method == "POST" { "{}" } else { "" };
        let extra = if method == "POST" {
            format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len())
        } else {
            String::new()
        };
        let head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}");
        c.send(format!("{head}Connection: close\r\n\r\n{body}").as_bytes());
        c.response().unwrap()
    };
    for host in [
        format!("evil.example:{port}"),
        "evil.example".into(),
        format!("127.0.0.1.evil.example:{port}"),
        format!("localhost.evil.example:{port}"),
        "192.168.0.10".into(),
        String::new(),
    ] {
        for (method, path) in
            [("GET", "/stats"), ("GET", "/"), ("GET", "/api/tasks"), ("POST", "/api/shutdown")]
        {
            let r = with_host(method, path, &host);
            assert_eq!(r.status, 403, "{method} {path} Host {host:?}: {}", r.text());
            assert!(r.error().contains("allowed_hosts"), "{}", r.text());
        }
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "LOCALHOST".into(),
        format!("queue.test:{port}"),
        "queue.test".into(),
    ] {
        assert_eq!(with_host("GET", "/stats", &host).status, 200, "Host {host}");
    }
    assert!(server.get("/health").status == 200, "the server still runs");
}

#[test]
fn state_changes_from_another_origin_are_refused() {
    let dir = Dir::new("csrf", CONFIG);
    let server = Server::start(&dir);
    let own = format!("http://127.0.0.1:{}", server.addr.port());
    let body = b"{\"name\":\"csrf\"}";
    for (k, v) in [
        ("Origin", "http://evil.example".to_string()),
        ("Origin", "null".into()),
        ("Origin", format!("http://127.0.0.1:{}", server.addr.port() + 1)),
        ("Origin", format!("{own}.evil.example")),
        ("Referer", "http://evil.example/attack.html".into()),
    ] {
        for (method, path) in [("POST", "/api/sessions"), ("PUT", "/api/sessions/x/end")] {
            let r = server.request(method, path, &[(k, &v), json()], body);
            assert_eq!(r.status, 403, "{method} {path} {k}: {v}");
            assert!(r.error().contains("cross-origin"), "{}", r.text());
            assert!(r.header("Access-Control-Allow-Origin").is_none());
        }
    }
    assert_eq!(server.get("/stats").json()["sessions"], 0, "nothing was created");
    // The dashboard's own origin, and no origin at all (the CLI, curl).
    let r = server.request("POST", "/api/sessions", &[("Origin", &own), json()], body);
    assert_eq!(r.status, 201, "{}", r.text());
    let r = server.post("/api/sessions", "{\"name\":\"plain\"}");
    assert_eq!(r.status, 201);
    // Reads from another origin are answered, but no CORS header lets a
    // page read them; a preflight finds no method allowed.
    let r = server.request("GET", "/api/sessions", &[("Origin", "http://evil.example")], b"");
    assert_eq!(r.status, 200);
    assert!(r.headers.iter().all(|(k, _)| !k.to_ascii_lowercase().starts_with("access-control")));
    let pre = server.request(
        "OPTIONS",
        "/api/sessions",
        &[("Origin", "http://evil.example"), ("Access-Control-Request-Method", "POST")],
        b"",
    );
    assert_eq!(pre.status, 405);
    assert!(pre.header("Access-Control-Allow-Origin").is_none());
}

#[test]
fn bodies_must_be_json_to_change_anything() {
    let dir = Dir::new("415", CONFIG);
    let server = Server::start(&dir);
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
    ] {
        let headers: Vec<(&str, &str)> = ct.map(|c| ("Content-Type", c)).into_iter().collect();
        let r = server.request("POST", "/api/sessions", &headers, b"{\"name\":\"form\"}");
        assert_eq!(r.status, 415, "{ct:?}");
        assert!(r.error().contains("application/json"), "{}", r.text());
    }
    // A form post with an empty body is refused too.
    let r = server.request("POST", "/api/shutdown", &[("Content-Type", "text/plain")], b"");
    assert_eq!(r.status, 415);
    assert_eq!(server.get("/stats").json()["sessions"], 0);
    let r = server.request(
        "POST",
        "/api/sessions",
        &[("Content-Type", "Application/JSON; charset=utf-8")],
        b"{\"name\":\"ok\"}",
    );
    assert_eq!(r.status, 201);
}

fn token_config() -> String {
    CONFIG.replace("server:\n", "server:\n  token: \"t0ken-for-tests\"\n")
}

#[test]
fn a_configured_token_guards_every_api_request() {
    let dir = Dir::new("token", &token_config());
    let mut server = Server::start(&dir);
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer t0ken-for-test"),
        Some("t0ken-for-tests"),
        Some("Basic t0ken-for-tests"),
    ] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        for path in ["/stats", "/api/tasks", "/api/tools", "/api/sessions/x"] {
            let r = server.request("GET", path, &headers, b"");
            assert_eq!(r.status, 401, "{path} {auth:?}");
            assert_eq!(r.header("WWW-Authenticate"), Some("Bearer"));
        }
        let mut h = headers.clone();
        h.push(json());
        assert_eq!(server.request("POST", "/api/shutdown", &h, b"{}").status, 401);
    }
    let auth = ("Authorization", "Bearer t0ken-for-tests");
    assert_eq!(server.request("GET", "/stats", &[auth], b"").status, 200);
    assert_eq!(
        server.request("GET", "/stats", &[("Authorization", "bearer t0ken-for-tests")], b"").status,
        200
    );
    assert_eq!(
        server.request("POST", "/api/sessions", &[auth, json()], b"{\"name\":\"t\"}").status,
        201
    );
    // Open without the token: the health check and the dashboard's files.
    assert_eq!(server.get("/health").status, 200);
    assert_eq!(server.get("/").status, 200);
    assert_eq!(server.get("/ui/app.js").status, 200);
    // The CLI sends the token from the config.
    let out = dir.cli(&["reload"], &[]);
    assert!(out.status.success(), "reload: {}", String::from_utf8_lossy(&out.stderr));
    let out = dir.cli(&["stop"], &[]);
    assert!(out.status.success(), "stop: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(server.wait_exit(Duration::from_secs(30)), Some(0));
}

#[test]
fn the_token_can_come_from_the_environment() {
    let dir = Dir::new("envtoken", CONFIG);
    let env = [("SPARKQ_TOKEN", "from-env")];
    let mut server = Server::start_with(&dir, &[], &env);
    assert_eq!(server.get("/stats").status, 401);
    let auth = ("Authorization", "Bearer from-env");
    assert_eq!(server.request("GET", "/stats", &[auth], b"").status, 200);
    // Without the variable the CLI cannot stop it; with it, it can.
    let out = dir.cli(&["stop"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"), "{out:?}");
    assert!(server.alive());
    let out = dir.cli(&["stop"], &env);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(server.wait_exit(Duration::from_secs(30)), Some(0));
}

/// Never listens on a non-loopback address, even if the check under test
/// were gone: the database sits under a plain file, so a server that got
/// past the token check would fail on its lock file before binding.
#[test]
fn a_non_loopback_bind_without_a_token_refuses_to_start() {
    let dir = Dir::new("bind", CONFIG);
    std::fs::write(dir.path.join("plain-file"), "").unwrap();
    let yaml = format!("{CONFIG}database:\n  path: plain-file/q.db\n");
    std::fs::write(dir.config(), yaml).unwrap();
    for host in ["0.0.0.0", "::"] {
        let out = dir.cli(&["run", "--host", host, "--port", "0"], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{host}: {err}");
        assert!(err.contains("token") && err.contains(host), "{host}: {err}");
        assert!(err.contains("SPARKQ_TOKEN") && err.contains("server.token"), "{err}");
        assert!(out.stdout.is_empty(), "no URL was printed");
    }
    // With a token from the environment it gets past that check (and then
    // fails on the lock file, as arranged).
    let out = dir.cli(&["run", "--host", "0.0.0.0", "--port", "0"], &[("SPARKQ_TOKEN", "x")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(!err.contains("token"), "{err}");
    // Loopback needs none: 127.0.0.2 is loopback too.
    let ok = Dir::new("bind-loop", CONFIG);
    let server = Server::start_with(&ok, &["--host", "127.0.0.2"], &[]);
    assert_eq!(server.addr.ip().to_string(), "127.0.0.2");
    assert_eq!(server.get("/stats").status, 200);
}
