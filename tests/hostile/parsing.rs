//! Malformed and oversized requests, and what follows them on a kept-alive
//! connection. A refused request never changes anything, never takes the
//! server down, and nothing after an unread body is taken for a request.

use std::time::Duration;

use crate::support::{raw_request, Dir, Server, CONFIG};

/// A request that would stop the server if it were ever parsed and run:
/// the canary for bytes taken as a request when they are not one.
fn shutdown_request(server: &Server) -> Vec<u8> {
    raw_request(
        server.addr,
        "POST",
        "/api/shutdown",
        &[("Content-Type", "application/json")],
        b"{}",
    )
}

/// Asserts that the server runs and answers `/health`.
fn assert_up(server: &mut Server) {
    assert!(server.alive(), "the server exited; log:\n{}", server.log());
    let (ok, took) = server.healthy();
    assert!(ok, "/health failed after {took:?}; log:\n{}", server.log());
}

#[test]
fn malformed_request_lines_get_400_or_a_closed_connection() {
    let dir = Dir::new("lines", CONFIG);
    let mut server = Server::start(&dir);
    let host = format!("Host: {}\r\n", server.addr);
    let lines: &[&[u8]] = &[
        b"GARBAGE",
        b"GET",
        b"GET /health",
        b"GET /health HTTP/9.9",
        b"GET /health FOO/1.1",
        b"GET  /health HTTP/1.1",
        b"",
        b" ",
        b"GET /h\xffalth HTTP/1.1",
    ];
    for line in lines {
        let mut raw = line.to_vec();
        raw.extend_from_slice(format!("\r\n{host}\r\n").as_bytes());
        let mut c = server.conn();
        c.send(&raw);
        c.finish();
        // tiny_http answers 400 to a line it cannot split, and closes
        // without an answer when the line is not ASCII.
        if let Ok(r) = c.response() {
            assert_eq!(r.status, 400, "{:?}: {r:?}", String::from_utf8_lossy(line));
        }
        assert!(c.closed(), "{:?} left the connection open", String::from_utf8_lossy(line));
    }
    // Lines ended by a bare LF never end: the stream ends with no answer.
    let mut c = server.conn();
    c.send(format!("GET /health HTTP/1.1\nHost: {}\n\n", server.addr).as_bytes());
    c.finish();
    assert!(c.response().is_err());
    assert_up(&mut server);
}

#[test]
fn pipelined_requests_get_one_answer_each_in_order() {
    let dir = Dir::new("pipeline", CONFIG);
    let server = Server::start(&dir);
    let a = server.addr;
    let mut c = server.conn();
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: {a}\r\n\r\n");
    let post = |body: &str| {
        format!(
            "POST /api/sessions HTTP/1.1\r\nHost: {a}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let requests = [
        get("/health"),
        post("{\"name\":\"p\"}"),
        get("/nope"),
        format!("DELETE /api/tasks HTTP/1.1\r\nHost: {a}\r\n\r\n"),
        post("{"),
        post("{\"name\":\"p\"}"),
        format!("GET /stats HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\n\r\n"),
    ];
    c.send(requests.concat().as_bytes());
    let statuses: Vec<u16> = (0..requests.len()).map(|_| c.response().unwrap().status).collect();
    assert_eq!(statuses, [200, 201, 404, 405, 400, 409, 200]);
    assert!(c.closed(), "nothing more than one answer per request");
}

#[test]
fn malformed_headers_get_400_and_close() {
    let dir = Dir::new("headers", CONFIG);
    let mut server = Server::start(&dir);
    let host = format!("Host: {}\r\n", server.addr);
    let cases = [
        format!("GET /health HTTP/1.1\r\n{host}No colon here\r\n\r\n"),
        format!("GET /health HTTP/1.1\r\n{host}Bad Name: x\r\n\r\n"),
    ];
    for raw in &cases {
        let mut c = server.conn();
        c.send(raw.as_bytes());
        let r = c.response().unwrap_or_else(|e| panic!("{raw:?}: {e}"));
        assert_eq!(r.status, 400, "{raw:?}");
        assert!(c.closed(), "{raw:?}");
    }
    // A header value that is not ASCII: tiny_http drops the connection.
    let mut c = server.conn();
    c.send(format!("GET /health HTTP/1.1\r\n{host}X-Name: caf\u{e9}\r\n\r\n").as_bytes());
    if let Ok(r) = c.response() {
        assert_eq!(r.status, 400);
    }
    assert!(c.closed());
    assert_up(&mut server);
}

#[test]
fn a_header_section_over_the_limit_is_refused_or_cut_off() {
    let dir = Dir::new("bighead", CONFIG);
    let mut server = Server::start(&dir);
    // One endless header, many small ones, and a long request target.
    let endless = format!("X-Fill: {}\r\n", "a".repeat(400 * 1024));
    let many: String = (0..20_000).map(|i| format!("X-{i}: v\r\n")).collect();
    let target = format!("/health?{}", "q".repeat(100 * 1024));
    for (path, filler) in
        [("/health", endless), ("/health", many), (target.as_str(), String::new())]
    {
        let mut c = server.conn();
        c.send(format!("GET {path} HTTP/1.1\r\nHost: {}\r\n", server.addr).as_bytes());
        c.send(filler.as_bytes());
        c.send(b"\r\n");
        // Refused with 431 when the head arrives before the reaper's next
        // sweep; cut off without an answer by the reaper otherwise.
        match c.response() {
            Ok(r) => {
                assert_eq!(r.status, 431, "{}", r.text());
                assert!(r.error().contains("over the limit of 65536 bytes"), "{}", r.text());
            }
            Err(e) => eprintln!("head over the limit cut off: {e}"),
        }
    }
    // Just under the limit is fine.
    let fill = format!("X-Fill: {}\r\n", "b".repeat(60 * 1024));
    let mut c = server.conn();
    c.send(format!("GET /health HTTP/1.1\r\nHost: {}\r\n{fill}\r\n", server.addr).as_bytes());
    assert_eq!(c.response().unwrap().status, 200);
    assert_up(&mut server);
}

/// HEAD answered `Content-Length: 0`: the body was dropped before the
/// response was built instead of leaving that to tiny_http.
#[test]
fn regression_head_said_its_body_was_empty() {
    let dir = Dir::new("head", CONFIG);
    let server = Server::start(&dir);
    let mut c = server.conn();
    c.send(format!("HEAD / HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes());
    let r = c.head_response().unwrap();
    assert_eq!(r.status, 200);
    let full = server.get("/");
    assert_eq!(r.header("Content-Length"), Some(full.body.len().to_string().as_str()));
    // No body follows: the next answer on the connection starts cleanly.
    c.send(format!("GET /health HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes());
    assert_eq!(c.response().unwrap().status, 200);
}

#[test]
fn unknown_methods_get_405_or_404() {
    let dir = Dir::new("methods", CONFIG);
    let mut server = Server::start(&dir);
    for (method, path, want) in [
        ("BREW", "/health", 405),
        ("get", "/health", 405),
        ("PATCH", "/api/tasks", 405),
        ("DELETE", "/api/sessions", 405),
        ("OPTIONS", "/api/tasks", 405),
        ("TRACE", "/", 405),
        ("CONNECT", "/ui/app.js", 405),
        ("BREW", "/coffee", 404),
        ("G\u{0}T", "/health", 405),
    ] {
        let r = server.request(method, path, &[], b"");
        assert_eq!(r.status, want, "{method} {path}: {}", r.text());
        if want == 405 {
            assert!(r.header("Allow").is_some(), "{method} {path}");
            assert!(r.error().contains(method), "{}", r.text());
        }
    }
    assert_up(&mut server);
}

#[test]
fn bodies_over_the_limit_get_413_and_the_connection_closes() {
    let dir = Dir::new("413", CONFIG);
    let mut server = Server::start(&dir);
    // Announced over the limit: refused before any of it is read.
    let mut c = server.conn();
    let head = format!(
        "POST /api/sessions HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 5000\r\n\r\n",
        server.addr
    );
    c.send(head.as_bytes());
    c.send(&[b' '; 5000]);
    let r = c.response().unwrap();
    assert_eq!(r.status, 413);
    assert!(r.error().contains("5000 bytes is over the limit of 4096 bytes"), "{}", r.text());
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(c.closed());
    // Chunked, past the limit once decoded.
    let mut c = server.conn();
    let head = format!(
        "POST /api/sessions HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
        server.addr
    );
    c.send(head.as_bytes());
    for _ in 0..5 {
        c.send(format!("400\r\n{}\r\n", " ".repeat(0x400)).as_bytes());
    }
    let r = c.response().unwrap();
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(c.closed());
    assert_eq!(server.get("/stats").json()["sessions"], 0, "nothing was created");
    assert_up(&mut server);
}

/// Content-Length: 10^15 made tiny_http allocate 10^15 bytes to skip the
/// unread body when the request was dropped after its 413, which aborted
/// the process.
#[test]
fn regression_a_huge_content_length_aborted_the_server() {
    let dir = Dir::new("huge", CONFIG);
    let mut server = Server::start(&dir);
    for (path, length) in [
        ("/api/sessions", "1000000000000000"),
        ("/health", "1000000000000000"),
        ("/nope", "18446744073709551615"),
        ("/api/sessions", "9223372036854775807"),
    ] {
        let mut c = server.conn();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {length}\r\n\r\n{{",
            server.addr
        );
        c.send(head.as_bytes());
        let r = c.response().unwrap_or_else(|e| panic!("{path} {length}: {e}"));
        assert!(matches!(r.status, 400 | 404 | 405 | 413), "{path} {length}: {r:?}");
        assert!(c.closed());
        assert_up(&mut server);
    }
    // With Expect: 100-continue the body is refused before it is asked for.
    let mut c = server.conn();
    let head = format!(
        "POST /api/sessions HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Expect: 100-continue\r\nContent-Length: 1000000000000000\r\n\r\n",
        server.addr
    );
    c.send(head.as_bytes());
    let r = c.response().unwrap();
    assert_eq!(r.status, 413, "no 100 Continue for a body that will be refused");
    assert_up(&mut server);
}

#[test]
fn expect_100_continue_is_honoured_within_the_limit() {
    let dir = Dir::new("continue", CONFIG);
    let server = Server::start(&dir);
    let body = format!("{{\"name\":\"cont\",\"description\":\"{}\"}}", "d".repeat(2000));
    let mut c = server.conn();
    let head = format!(
        "POST /api/sessions HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        server.addr,
        body.len()
    );
    c.send(head.as_bytes());
    assert_eq!(c.response().unwrap().status, 100);
    c.send(body.as_bytes());
    assert_eq!(c.response().unwrap().status, 201);
}

/// The body was read to its end with no check against what its
/// `Content-Length` announced, so a cut body that was valid JSON was used.
#[test]
fn regression_a_body_shorter_than_its_content_length_was_accepted() {
    let dir = Dir::new("short", CONFIG);
    let mut server = Server::start(&dir);
    let mut c = server.conn();
    let head = format!(
        "POST /api/sessions HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 2000\r\n\r\n",
        server.addr
    );
    c.send(head.as_bytes());
    // A complete JSON object, but 1,960 bytes short of what was announced.
    c.send(b"{\"name\": \"short-body-session-name\"}     ");
    c.finish();
    let r = c.response().unwrap();
    assert_eq!(r.status, 400);
    assert!(r.error().contains("ended after 40 of the 2000 bytes"), "{}", r.text());
    // Within tiny_http's own buffer (1 KiB) the connection just ends.
    let mut c = server.conn();
    let head = format!(
        "POST /api/sessions HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 500\r\n\r\n{{\"name\": \"x\"}}",
        server.addr
    );
    c.send(head.as_bytes());
    c.finish();
    assert!(c.response().is_err(), "no request is made of a cut body");
    assert_eq!(server.get("/stats").json()["sessions"], 0, "nothing was created");
    assert_up(&mut server);
}

#[test]
fn invalid_utf8_invalid_json_and_wrong_types_get_400_naming_the_problem() {
    let dir = Dir::new("json", CONFIG);
    let mut server = Server::start(&dir);
    let cases: &[(&[u8], &str)] = &[
        (b"{\"name\": \"\xff\xfe\"}", "not valid UTF-8 (bad byte at offset 10)"),
        (b"\xc3", "not valid UTF-8"),
        (b"{", "invalid JSON"),
        (b"{\"name\": \"a\",}", "invalid JSON"),
        (b"[]", "must be a JSON object, not an array"),
        (b"null", "must be a JSON object, not null"),
        (b"{\"name\": 7}", "field \"name\" must be a string, not a number"),
        (b"{\"name\": [\"a\"]}", "field \"name\" must be a string, not an array"),
        (b"{\"name\": \"a b\"}", "name"),
    ];
    for (body, want) in cases {
        let r =
            server.request("POST", "/api/sessions", &[("Content-Type", "application/json")], body);
        assert_eq!(r.status, 400, "{:?}", String::from_utf8_lossy(body));
        assert!(r.error().contains(want), "{:?}: {}", String::from_utf8_lossy(body), r.text());
    }
    let id = server.task("types");
    let typed: &[(&str, &str, &str)] = &[
        (
            "/api/tasks",
            "{\"stream_id\":\"types\",\"tool_name\":\"run-bash\",\"timeout\":\"9\"}",
            "field \"timeout\" must be a number, not a string",
        ),
        (
            "/api/tasks",
            "{\"stream_id\":\"types\",\"tool_name\":\"run-bash\",\"timeout\":-1}",
            "from 1 to 10000000",
        ),
        (
            "/api/tasks",
            "{\"stream_id\":\"types\",\"tool_name\":\"run-bash\",\"payload\":[1]}",
            "payload must be a JSON object, not an array",
        ),
        (
            "/api/tasks",
            "{\"stream_id\":7,\"tool_name\":\"run-bash\"}",
            "field \"stream_id\" must be a string, not a number",
        ),
        (
            "/api/streams/types/claim",
            "{\"worker_id\":{}}",
            "field \"worker_id\" must be a string, not an object",
        ),
    ];
    for (path, body, want) in typed {
        let r = server.post(path, body);
        assert_eq!(r.status, 400, "{path} {body}");
        assert!(r.error().contains(want), "{body}: {}", r.text());
    }
    let r = server.post(&format!("/api/tasks/{id}/fail"), "{\"error_message\": false}");
    assert_eq!(r.status, 400);
    assert_eq!(server.get(&format!("/api/tasks/{id}")).json()["task"]["status"], "queued");
    assert_up(&mut server);
}

/// A refused request's unread body must not be read as the next request on
/// a kept-alive connection. Each body here is a complete shutdown request;
/// if it ran, the server would stop.
fn assert_body_never_runs(server: &mut Server, head: &str, after: &[u8]) {
    let canary = shutdown_request(server);
    let mut c = server.conn();
    c.send(head.as_bytes());
    c.send(&canary);
    c.send(after);
    let first = c.response().unwrap_or_else(|e| panic!("{head:?}: {e}"));
    assert!(first.status >= 400, "{head:?}: {first:?}");
    // Either the connection closes, or what comes next answers a request
    // that is not the canary.
    c.set_timeout(Duration::from_secs(3));
    let rest = String::from_utf8_lossy(&c.drain()).into_owned();
    assert!(!rest.contains("stopping"), "{head:?}: the body ran as a request: {rest}");
    assert!(server.wait_exit(Duration::from_millis(300)).is_none(), "{head:?} stopped the server");
    assert_up(server);
}

#[test]
fn an_unread_body_is_never_parsed_as_the_next_request() {
    let dir = Dir::new("keepalive", CONFIG);
    let mut server = Server::start(&dir);
    let host = server.addr;
    let pad = " ".repeat(1100);
    // Refused for its type (415), with a Content-Length body past tiny_http's
    // buffer: the body is skipped and nothing in it runs.
    let canary_len = shutdown_request(&server).len() + pad.len();
    let head = format!(
        "POST /api/sessions HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\n\
         Content-Length: {canary_len}\r\n\r\n"
    );
    assert_body_never_runs(&mut server, &head, pad.as_bytes());
    // The same under the limit but refused by the route (404).
    let head = format!(
        "POST /nope HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {canary_len}\r\n\r\n"
    );
    assert_body_never_runs(&mut server, &head, pad.as_bytes());
}

/// A chunked body was left on the socket when the request was refused
/// before reading it; tiny_http then parsed its bytes as the next request.
#[test]
fn regression_an_unread_chunked_body_was_parsed_as_the_next_request() {
    let dir = Dir::new("chunked", CONFIG);
    let mut server = Server::start(&dir);
    let host = server.addr;
    for refused in [
        // No JSON content type: 415 before the body is read.
        format!(
            "POST /api/sessions HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n"
        ),
        // A cross-site origin: 403 before the body is read.
        format!(
            "POST /api/sessions HTTP/1.1\r\nHost: {host}\r\nOrigin: http://evil.example\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        ),
        // Unknown route.
        format!(
            "POST /nope HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        ),
    ] {
        assert_body_never_runs(&mut server, &refused, b"");
    }
}

/// `Content-Length: 12x` is not a number, so tiny_http took the request to
/// have no body and parsed the body as the next request.
#[test]
fn regression_an_invalid_content_length_let_the_body_run_as_a_request() {
    let dir = Dir::new("badlength", CONFIG);
    let mut server = Server::start(&dir);
    let host = server.addr;
    let n = shutdown_request(&server).len();
    for length in [format!("{n}x"), format!("+{n}"), format!("{n}, {n}"), "-1".into()] {
        let head = format!(
            "POST /api/sessions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Content-Length: {length}\r\n\r\n"
        );
        assert_body_never_runs(&mut server, &head, b"");
    }
    // Two lengths that disagree, and a length beside a transfer coding.
    for extra in [
        format!("Content-Length: 0\r\nContent-Length: {n}"),
        "Content-Length: 0\r\nTransfer-Encoding: chunked".to_string(),
    ] {
        let head = format!(
            "POST /api/sessions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             {extra}\r\n\r\n"
        );
        assert_body_never_runs(&mut server, &head, b"");
    }
}

#[test]
fn a_body_read_to_its_end_keeps_the_connection_alive() {
    let dir = Dir::new("alive", CONFIG);
    let server = Server::start(&dir);
    let mut c = server.conn();
    let body = format!("{{\"name\":\"ka\",\"description\":\"{}\"}}", "k".repeat(1500));
    for name in ["ka", "kb"] {
        let body = body.replace("\"ka\"", &format!("\"{name}\""));
        let req = format!(
            "POST /api/sessions HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            server.addr,
            body.len()
        );
        c.send(req.as_bytes());
        assert_eq!(c.response().unwrap().status, 201);
    }
    // Chunked, in three chunks, on the same connection.
    let req = format!(
        "POST /api/sessions HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n5\r\n{{\"nam\r\n8\r\ne\":\"kc\"}}\r\n0\r\n\r\n",
        server.addr
    );
    c.send(req.as_bytes());
    let r = c.response().unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    c.send(format!("GET /stats HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes());
    assert_eq!(c.response().unwrap().json()["sessions"], 3);
}
