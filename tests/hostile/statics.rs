//! The dashboard's files: every one is served, and no path, however
//! encoded, reaches anything outside the folder compiled into the binary.

use crate::support::{static_dir, Conn, Dir, Server, CONFIG};

#[test]
fn every_dashboard_file_is_served_as_compiled_in() {
    let dir = Dir::new("static", CONFIG);
    let server = Server::start(&dir);
    let mut seen = 0;
    for entry in std::fs::read_dir(static_dir()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.path().is_file() {
            continue;
        }
        let r = server.get(&format!("/ui/{name}"));
        assert_eq!(r.status, 200, "{name}");
        let want = std::fs::read(entry.path()).unwrap();
        assert!(r.body == want, "{name}: the served bytes differ from static/{name}");
        assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
        seen += 1;
    }
    assert!(seen > 0);
    let index = std::fs::read(static_dir().join("index.html")).unwrap();
    assert!(server.get("/").body == index, "/ serves index.html");
}

#[test]
fn no_path_reaches_outside_the_dashboard() {
    let dir = Dir::new("escape", CONFIG);
    std::fs::write(dir.path.join("secret.txt"), "TOP-SECRET-BESIDE-THE-CONFIG").unwrap();
    let mut server = Server::start(&dir);
    let secret = dir.path.join("secret.txt").display().to_string();
    let paths = [
        "/ui/../Cargo.toml".to_string(),
        "/ui/../../Cargo.toml".into(),
        "/../Cargo.toml".into(),
        "/ui/%2e%2e/Cargo.toml".into(),
        "/ui/%2E%2E/%2E%2E/etc/passwd".into(),
        "/ui/..%2fCargo.toml".into(),
        "/ui/..%2FCargo.toml".into(),
        "/ui/%2e%2e%2f%2e%2e%2fetc%2fpasswd".into(),
        "/ui/..%5cCargo.toml".into(),
        "/ui/..\\Cargo.toml".into(),
        "/ui/..\\..\\etc\\passwd".into(),
        "/ui/\\etc\\passwd".into(),
        "/ui//etc/passwd".into(),
        "/ui/%2fetc%2fpasswd".into(),
        "/ui/etc/passwd".into(),
        "//etc/passwd".into(),
        "/ui/./index.html".into(),
        "/ui/index.html%00.js".into(),
        "/ui/%00".into(),
        "/ui/%c0%ae%c0%ae/Cargo.toml".into(),
        "/ui/%252e%252e/Cargo.toml".into(),
        "/ui/....//Cargo.toml".into(),
        "/ui/static/../../Cargo.toml".into(),
        "/ui/C:\\Windows\\win.ini".into(),
        "/ui/file:///etc/passwd".into(),
        format!("/ui/{secret}"),
        format!("/ui/..{secret}"),
        "/ui/../sparkq.yml".into(),
        "/ui/../secret.txt".into(),
        "/ui/%2e%2e/secret.txt".into(),
        "/ui/../sparkq.db".into(),
        "/src/main.rs".into(),
        "/static/index.html".into(),
    ];
    for path in &paths {
        let mut c = Conn::open(server.addr);
        c.send(
            format!("GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", server.addr)
                .as_bytes(),
        );
        let r = c.response().unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(matches!(r.status, 400 | 404), "{path}: {} {}", r.status, r.text());
        let text = r.text();
        for leak in ["[package]", "root:", "TOP-SECRET", "project:", "fn main"] {
            assert!(!text.contains(leak), "{path} leaked {leak}: {text}");
        }
    }
    // The absolute form of a request target names no dashboard file either.
    let mut c = Conn::open(server.addr);
    c.send(
        format!("GET http://{0}/ui/../Cargo.toml HTTP/1.1\r\nHost: {0}\r\n\r\n", server.addr)
            .as_bytes(),
    );
    assert_eq!(c.response().unwrap().status, 404);
    assert!(server.alive());
}
