//! Seeded random and mutated raw requests against a live server: it never
//! panics, never answers 500, and still answers `/health` afterwards.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{Dir, Rng, Server, CONFIG};

/// Well-formed requests to mutate. None of them stops the server.
fn seeds(host: &str) -> Vec<Vec<u8>> {
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let with_body = |method: &str, path: &str, extra: &str, body: &str| {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             {extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let task =
        |payload: &str| format!("{{\"stream_id\":\"fz\",\"tool_name\":\"run-bash\",{payload}}}");
    let chunked = format!(
        "POST /api/sessions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n4\r\n{{\"na\r\na\r\nme\":\"fz2\"}}\r\n0\r\n\r\n"
    );
    let out = [
        get("/health"),
        get("/api/tasks?status=queued&limit=5&offset=0"),
        get("/ui/app.js"),
        get("/api/streams/fz/peek"),
        format!("HEAD / HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        with_body("POST", "/api/sessions", "", "{\"name\":\"fz1\"}"),
        with_body("POST", "/api/tasks", "", &task("\"payload\":{\"a\":[1,2,{}]}")),
        with_body("POST", "/api/streams/fz/claim", "", "{}"),
        with_body("PUT", "/api/streams/fz", "", "{\"instructions\":\"i\"}"),
        with_body(
            "POST",
            "/api/tasks",
            "Expect: 100-continue\r\n",
            &task(&format!("\"prompt\":\"{}\"", "q".repeat(1447))),
        ),
        chunked,
        get("/stats") + &get("/health"),
        "GET /health HTTP/1.0\r\n\r\n".into(),
    ];
    out.into_iter().map(String::into_bytes).collect()
}

/// Fragments that parsers trip on.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b"\r\n\r\n",
    b" ",
    b"\t",
    b":",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"%",
    b"%00",
    b"%2e%2e/",
    b"../",
    b"\\",
    b"?",
    b"&",
    b"=",
    b"Content-Length: 99999999999999\r\n",
    b"Content-Length: -5\r\n",
    b"Content-Length: 3\r\n",
    b"Content-Length: 2000\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: gzip\r\n",
    b"Expect: 100-continue\r\n",
    b"Expect: 42-nonsense\r\n",
    b"Connection: upgrade\r\n",
    b"Connection: close\r\n",
    b"Host: evil.example\r\n",
    b"Origin: http://evil.example\r\n",
    b"Content-Type: text/plain\r\n",
    b"HTTP/1.0",
    b"HTTP/2.0",
    b"HTTP/1.1",
    b"GET",
    b"POST",
    b"BREW",
    b"ffffffff\r\n",
    b"0\r\n\r\n",
    b"{",
    b"}",
    b"\"",
    b"[",
    b"null",
    b"1e999",
    b"\\ud800",
];

/// One request, changed a few times at random places.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(b.len() + 1);
        match rng.below(6) {
            0 => b.splice(at..at, TOKENS[rng.below(TOKENS.len())].iter().copied()).for_each(drop),
            1 => {
                let end = (at + rng.below(12)).min(b.len());
                b.drain(at..end);
            }
            2 if at < b.len() => b[at] = rng.next() as u8,
            3 if at < b.len() => b[at] ^= 1 << rng.below(8),
            4 => b.truncate(at),
            _ => {
                let n = rng.below(16);
                b.splice(at..at, (0..n).map(|_| rng.next() as u8)).for_each(drop);
            }
        }
    }
    b
}

/// Sends `bytes` on a new connection and reads what comes back for at
/// most `wait`; the status codes of the responses seen.
fn send(addr: std::net::SocketAddr, bytes: &[u8], close_write: bool, wait: Duration) -> Vec<u16> {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return Vec::new();
    };
    let _ = s.set_read_timeout(Some(wait));
    let _ = s.set_write_timeout(Some(wait));
    let _ = s.write_all(bytes);
    if close_write {
        let _ = s.shutdown(Shutdown::Write);
    }
    let mut got = Vec::new();
    let start = Instant::now();
    let mut buf = [0u8; 8192];
    while start.elapsed() < wait {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got);
    text.match_indices("HTTP/1.")
        .filter_map(|(i, _)| text[i..].split(' ').nth(1).and_then(|c| c.get(..3)?.parse().ok()))
        .collect()
}

#[test]
fn random_and_mutated_requests_leave_the_server_up() {
    let dir = Dir::new("fuzz", CONFIG);
    let mut server = Server::start(&dir);
    server.task("fz");
    let addr = server.addr;
    let seeds = seeds(&addr.to_string());
    let start = Instant::now();
    let workers: Vec<_> = (0..4u64)
        .map(|w| {
            let seeds = seeds.clone();
            thread::spawn(move || {
                let mut rng = Rng(0x5eed_0000_0000_0001 ^ (w.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
                let mut statuses = Vec::new();
                for case in 0..150 {
                    let bytes = match case % 5 {
                        0 => (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
                        _ => {
                            let seed = &seeds[rng.below(seeds.len())];
                            mutate(&mut rng, seed)
                        }
                    };
                    // Most cases end their side at once; some leave the
                    // connection open and are cut off by the read time-out.
                    let close = case % 10 != 0;
                    let wait =
                        if close { Duration::from_secs(10) } else { Duration::from_millis(300) };
                    for s in send(addr, &bytes, close, wait) {
                        statuses.push((s, String::from_utf8_lossy(&bytes).into_owned()));
                    }
                }
                statuses
            })
        })
        .collect();
    let mut seen = std::collections::BTreeMap::new();
    for w in workers {
        for (status, bytes) in w.join().expect("a fuzz worker") {
            assert_ne!(status, 500, "a 500 for {bytes:?}; log:\n{}", server.log());
            *seen.entry(status).or_insert(0) += 1;
        }
    }
    eprintln!("600 fuzz cases in {:.1} s; statuses seen: {seen:?}", start.elapsed().as_secs_f64());
    assert!(server.alive(), "the server exited; log:\n{}", server.log());
    let (ok, _) = server.healthy();
    assert!(ok, "no /health after the fuzz; log:\n{}", server.log());
    let log = server.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(!log.contains("request_failed"), "{log}");
    assert!(
        seen.contains_key(&200) && seen.contains_key(&400),
        "the cases reach both ends: {seen:?}"
    );
}
