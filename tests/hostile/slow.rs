//! Slow and silent clients. tiny_http reads each connection's head on a
//! thread of its own and SparkQ reads unfinished bodies on a thread of
//! their own, so neither holds a handler thread; the reaper closes them
//! after `idle_timeout_seconds` of silence or `request_timeout_seconds`
//! without a response. Timings are printed, never asserted tightly.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{Conn, Dir, Server, CONFIG};

/// A generous bound for one `/health` answer while the server is under
/// attack; the figures printed are what matters. Held threads would show
/// as the full read time-out of `support::IO_LIMIT`.
const HEALTH_BOUND: Duration = Duration::from_secs(10);

/// Runs `/health` `n` times, 100 ms apart; returns the slowest answer.
fn health_under_load(server: &Server, n: usize) -> Duration {
    let mut worst = Duration::ZERO;
    for _ in 0..n {
        let (ok, took) = server.healthy();
        assert!(ok, "/health failed after {took:?}");
        worst = worst.max(took);
        thread::sleep(Duration::from_millis(100));
    }
    worst
}

/// Writes one byte to each socket in turn, `every` apart per socket, until
/// `stop`; returns how many sockets the server closed meanwhile.
fn trickle(
    socks: Vec<TcpStream>,
    text: &'static [u8],
    every: Duration,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<usize> {
    thread::spawn(move || {
        let mut socks: Vec<(TcpStream, usize)> = socks.into_iter().map(|s| (s, 0)).collect();
        let mut closed = 0;
        while !stop.load(Ordering::SeqCst) && !socks.is_empty() {
            let round = Instant::now();
            socks.retain_mut(|(s, at)| {
                let b = text[*at % text.len()];
                *at += 1;
                if s.write_all(&[b]).is_err() {
                    closed += 1;
                    return false;
                }
                true
            });
            thread::sleep(every.saturating_sub(round.elapsed()));
        }
        closed
    })
}

#[test]
fn three_hundred_clients_trickling_headers_leave_health_answering() {
    // A long request time-out, so the trickle lasts the whole measurement.
    let yaml = CONFIG.replace("request_timeout_seconds: 4", "request_timeout_seconds: 60");
    let dir = Dir::new("slowheads", &yaml);
    let mut server = Server::start(&dir);
    let socks: Vec<TcpStream> = (0..300)
        .map(|_| {
            let s = TcpStream::connect(server.addr).expect("connect");
            s.set_nodelay(true).unwrap();
            s
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let text: &'static [u8] =
        b"GET /health HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let t = trickle(socks, text, Duration::from_millis(500), stop.clone());
    thread::sleep(Duration::from_millis(800));
    let worst = health_under_load(&server, 15);
    eprintln!("300 trickling clients: slowest /health {:.1} ms", worst.as_secs_f64() * 1000.0);
    stop.store(true, Ordering::SeqCst);
    let closed = t.join().unwrap();
    assert!(worst < HEALTH_BOUND, "slowest /health took {worst:?}");
    assert_eq!(closed, 0, "none was closed while it kept sending within the limits");
    assert!(server.alive());
}

#[test]
fn trickled_requests_are_closed_after_the_request_timeout() {
    let dir = Dir::new("slowclose", CONFIG);
    let server = Server::start(&dir);
    let socks: Vec<TcpStream> = (0..50).map(|_| TcpStream::connect(server.addr).unwrap()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let t = trickle(
        socks,
        b"GET /health HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaa",
        Duration::from_millis(300),
        stop.clone(),
    );
    // request_timeout_seconds is 4: all of them are closed long before 30 s.
    while !t.is_finished() && start.elapsed() < Duration::from_secs(30) {
        thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::SeqCst);
    let closed = t.join().unwrap();
    eprintln!("50 trickling clients closed after {:.1} s", start.elapsed().as_secs_f64());
    assert_eq!(closed, 50);
    assert!(server.healthy().0);
}

#[test]
fn silent_connections_are_closed_after_the_idle_timeout() {
    let dir = Dir::new("idle", CONFIG);
    let server = Server::start(&dir);
    let start = Instant::now();
    let mut silent = Conn::open(server.addr);
    let mut half = Conn::open(server.addr);
    half.send(b"POST /api/sessions HTTP/1.1\r\nHost: x\r\n");
    // A kept-alive connection that had one answer, then went quiet.
    let mut kept = Conn::open(server.addr);
    kept.send(format!("GET /health HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes());
    assert_eq!(kept.response().unwrap().status, 200);
    for c in [&mut silent, &mut half, &mut kept] {
        assert!(c.closed(), "closed, not left open");
    }
    let took = start.elapsed();
    eprintln!(
        "silent connections closed after {:.1} s (idle_timeout_seconds: 2)",
        took.as_secs_f64()
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
}

/// A body trickled a byte at a time was read on a handler thread, so as
/// many such clients as there are handler threads stopped all requests
/// until the reaper closed them.
#[test]
fn regression_slow_request_bodies_held_every_handler_thread() {
    // Two handler threads, and time-outs far longer than the measurement.
    let yaml = CONFIG
        .replace("idle_timeout_seconds: 2", "idle_timeout_seconds: 60")
        .replace("request_timeout_seconds: 4", "request_timeout_seconds: 60")
        .replace("server:\n", "server:\n  threads: 2\n");
    let dir = Dir::new("slowbody", &yaml);
    let mut server = Server::start(&dir);
    let socks: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr).unwrap();
            let head = format!(
                "POST /api/sessions HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
                 Content-Length: 3000\r\n\r\n{{\"name\":\"",
                server.addr
            );
            s.write_all(head.as_bytes()).unwrap();
            s
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let t = trickle(socks, b"a", Duration::from_millis(200), stop.clone());
    thread::sleep(Duration::from_millis(500));
    let worst = health_under_load(&server, 10);
    // A kept-alive worker elsewhere still gets its answers.
    let r = server.post("/api/sessions", "{\"name\":\"meanwhile\"}");
    assert_eq!(r.status, 201);
    stop.store(true, Ordering::SeqCst);
    assert_eq!(t.join().unwrap(), 0);
    eprintln!(
        "8 trickled bodies, 2 handler threads: slowest /health {:.1} ms",
        worst.as_secs_f64() * 1000.0
    );
    assert!(worst < HEALTH_BOUND, "slowest /health took {worst:?}");
    assert!(server.alive());
}

/// A large reply was written on a handler thread, so clients that asked
/// for one and never read it held every handler thread until the reaper
/// closed them.
#[test]
fn regression_clients_that_never_read_a_large_reply_held_the_handler_threads() {
    let yaml = CONFIG
        .replace("idle_timeout_seconds: 2", "idle_timeout_seconds: 60")
        .replace("request_timeout_seconds: 4", "request_timeout_seconds: 60")
        .replace("server:\n", "server:\n  threads: 2\n  max_body_bytes: 200000\n")
        .replace("  max_body_bytes: 4096\n", "")
        .replace("payload_bytes: 512", "payload_bytes: 150000");
    let dir = Dir::new("noread", &yaml);
    let server = Server::start(&dir);
    server.task("big");
    let prompt = "p".repeat(120_000);
    for _ in 0..40 {
        let body =
            format!("{{\"stream_id\":\"big\",\"tool_name\":\"run-bash\",\"prompt\":\"{prompt}\"}}");
        assert_eq!(server.post("/api/tasks", &body).status, 201);
    }
    // About 5 MB each, asked for and never read.
    let hogs: Vec<TcpStream> = (0..6)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr).unwrap();
            s.write_all(
                format!("GET /api/tasks HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes(),
            )
            .unwrap();
            s
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    let worst = health_under_load(&server, 10);
    eprintln!(
        "6 unread 5 MB replies, 2 handler threads: slowest /health {:.1} ms",
        worst.as_secs_f64() * 1000.0
    );
    assert!(worst < HEALTH_BOUND, "slowest /health took {worst:?}");
    drop(hogs);
}
