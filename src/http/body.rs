//! Request bodies and what they leave on their connection: how a body is
//! delimited, reading it within the limit, and letting go of a request
//! whose body was not read to its end.
//!
//! N.B. tiny_http reads bodies up to 1 KiB before handing a request over;
//! the rest of a body is read from the socket, at the client's pace, when
//! asked for. Dropping a request skips what is left of a `Content-Length`
//! body by allocating all of it at once, and leaves a chunked body on the
//! socket to be parsed as the next request.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use tiny_http::{HTTPVersion, Request, StatusCode};

use super::{header, headers, Reply};
use crate::log;

/// Bodies up to this many bytes tiny_http reads before handing a request
/// over (unless the client asked for `100 Continue`).
const BUFFERED_BODY: u64 = 1024;

/// tiny_http skips an unread body by allocating its remaining length at
/// once. Past this many bytes such a request is kept, never dropped, so the
/// allocation never happens.
pub(super) const SKIP_MAX: u64 = 64 * 1024 * 1024;

/// How a request's body is delimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Framing {
    None,
    Length(u64),
    Chunked,
    /// A body whose end cannot be trusted; the message says why.
    Invalid(String),
}

/// Returns true if and only if tiny_http treats the connection as upgraded
/// and hands over the raw socket as the body.
fn upgrades(rq: &Request) -> bool {
    header(rq, "Connection").is_some_and(|v| v.to_ascii_lowercase().contains("upgrade"))
}

/// Returns true if and only if tiny_http answers `100 Continue` when the
/// body is first read.
fn expects_continue(rq: &Request) -> bool {
    header(rq, "Expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
}

/// How `rq`'s body is delimited, as far as SparkQ trusts it.
pub(super) fn framing(rq: &Request) -> Framing {
    let lengths: Vec<&str> = headers(rq, "Content-Length").collect();
    frame(header(rq, "Transfer-Encoding"), &lengths, upgrades(rq))
}

/// The framing that a `Transfer-Encoding` value and the `Content-Length`
/// values give, refusing every combination where a server and a proxy
/// could disagree on where the body ends.
fn frame(te: Option<&str>, lengths: &[&str], upgrade: bool) -> Framing {
    if let (Some(te), Some(_)) = (te, lengths.first()) {
        return Framing::Invalid(format!(
            "a request may not have both Content-Length and Transfer-Encoding (\"{te}\")"
        ));
    }
    if let Some(te) = te {
        if !te.eq_ignore_ascii_case("chunked") {
            return Framing::Invalid(format!(
                "unsupported Transfer-Encoding \"{te}\" (only chunked is accepted)"
            ));
        }
        if upgrade {
            return Framing::Invalid("a request that asks for an upgrade cannot be chunked".into());
        }
        return Framing::Chunked;
    }
    let Some(first) = lengths.first() else {
        return Framing::None;
    };
    if let Some(other) = lengths.iter().find(|v| v.trim() != first.trim()) {
        return Framing::Invalid(format!(
            "conflicting Content-Length headers: \"{first}\" and \"{other}\""
        ));
    }
    let digits = !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit());
    match first.parse::<u64>() {
        Ok(0) if digits => Framing::None,
        Ok(n) if digits && usize::try_from(n).is_ok() => Framing::Length(n),
        _ => Framing::Invalid(format!("invalid Content-Length \"{first}\": not a byte count")),
    }
}

/// Returns true if and only if part of `rq`'s body is still to be read
/// from the client: tiny_http reads small bodies before handing them over.
pub(super) fn reads_socket(rq: &Request) -> bool {
    match framing(rq) {
        Framing::None | Framing::Invalid(_) => false,
        Framing::Chunked => true,
        Framing::Length(n) => n > BUFFERED_BODY || expects_continue(rq) || upgrades(rq),
    }
}

/// How many bytes tiny_http would read, to skip them, when `rq` is dropped
/// after `read` bytes of its body were read.
pub(super) fn skip_len(rq: &Request, read: u64) -> u64 {
    if upgrades(rq) || header(rq, "Transfer-Encoding").is_some() {
        return 0;
    }
    match rq.body_length() {
        Some(n) if n as u64 > BUFFERED_BODY || expects_continue(rq) => {
            (n as u64).saturating_sub(read)
        }
        _ => 0,
    }
}

/// How far a request's body was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Body {
    Unread,
    /// Read to its end.
    Complete,
    /// This many bytes were read, and the rest was not.
    Partial(u64),
}

impl Body {
    pub(super) fn read(self) -> u64 {
        match self {
            Body::Partial(n) => n,
            _ => 0,
        }
    }

    /// Returns true if and only if the next byte on `rq`'s connection
    /// starts the next request.
    pub(super) fn is_clean(self, rq: &Request) -> bool {
        match (framing(rq), self) {
            (Framing::None, _) | (_, Body::Complete) => true,
            (Framing::Length(_), _) => !reads_socket(rq),
            (Framing::Chunked | Framing::Invalid(_), _) => false,
        }
    }
}

/// Reads the whole body, refusing one over `limit` bytes with 413 and one
/// shorter than its `Content-Length` with 400; `body` records how far it
/// got.
pub(super) fn read_body(rq: &mut Request, limit: u64, body: &mut Body) -> Result<Vec<u8>, Reply> {
    let mut bytes = Vec::new();
    match framing(rq) {
        Framing::None => {
            *body = Body::Complete;
            Ok(bytes)
        }
        Framing::Invalid(why) => Err(Reply::fail(400, &why)),
        Framing::Length(n) if n > limit => Err(Reply::fail(
            413,
            &format!("request body of {n} bytes is over the limit of {limit} bytes"),
        )),
        Framing::Length(n) => {
            bytes.reserve(n.min(1 << 20) as usize);
            let result = rq.as_reader().take(n).read_to_end(&mut bytes);
            let got = bytes.len() as u64;
            *body = if got == n { Body::Complete } else { Body::Partial(got) };
            match result {
                Err(e) => Err(Reply::fail(
                    400,
                    &format!("cannot read the request body after {got} of {n} bytes: {e}"),
                )),
                Ok(_) if got < n => Err(Reply::fail(
                    400,
                    &format!("request body ended after {got} of the {n} bytes it announced"),
                )),
                Ok(_) => Ok(bytes),
            }
        }
        Framing::Chunked => {
            let result = rq.as_reader().take(limit + 1).read_to_end(&mut bytes);
            let got = bytes.len() as u64;
            *body = Body::Partial(got);
            match result {
                Err(e) => Err(Reply::fail(
                    400,
                    &format!("cannot read the chunked request body after {got} bytes: {e}"),
                )),
                Ok(_) if got > limit => Err(Reply::fail(
                    413,
                    &format!("request body is over the limit of {limit} bytes"),
                )),
                Ok(_) => {
                    *body = Body::Complete;
                    Ok(bytes)
                }
            }
        }
    }
}

/// Lets go of a request that was answered, or needs no answer, on a socket
/// already shut.
pub(super) fn discard(rq: Request, skip: u64) {
    let skip = skip.max(skip_len(&rq, 0));
    if skip > SKIP_MAX {
        // Dropping it would make tiny_http allocate `skip` bytes at once,
        // which aborts the process when no memory can hold them. Keeping it
        // costs its connection's thread and descriptors, for good.
        log::warn(
            "request_kept",
            &[
                ("path", &rq.url()),
                ("claimed_body_bytes", &skip),
                ("reason", &"body too large to skip"),
            ],
        );
        std::mem::forget(rq);
    } else {
        // tiny_http answers 500 to a dropped request; on a shut socket that
        // sends nothing.
        drop(rq);
    }
}

/// Writes `reply` straight onto `sock`, saying the connection closes.
pub(super) fn write_closing(
    mut sock: &TcpStream,
    reply: &Reply,
    version: &HTTPVersion,
    head: bool,
) {
    let reason = StatusCode(reply.status).default_reason_phrase();
    let v = if *version == HTTPVersion(1, 0) { "1.0" } else { "1.1" };
    let mut out = format!("HTTP/{v} {} {reason}\r\n", reply.status);
    if reply.status != 204 && reply.status != 304 {
        out.push_str(&format!("Content-Type: {}\r\n", reply.content_type));
    }
    out.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
    out.push_str("Connection: close\r\nX-Content-Type-Options: nosniff\r\n");
    for (k, v) in &reply.headers {
        if !v.contains(['\r', '\n']) {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head {
        bytes.extend_from_slice(&reply.body);
    }
    let _ = sock.set_write_timeout(Some(Duration::from_secs(5)));
    let _ = sock.write_all(&bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiny_http::{Header, Method, TestRequest};

    fn h(name: &str, value: &str) -> Header {
        Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap()
    }

    fn request(
        method: Method,
        path: &str,
        body: &'static str,
        headers: &[(&str, &str)],
    ) -> Request {
        let mut t = TestRequest::new().with_method(method).with_path(path).with_body(body);
        for (k, v) in headers {
            t = t.with_header(h(k, v));
        }
        t.into()
    }

    #[test]
    fn framing_refuses_bodies_whose_end_is_in_doubt() {
        assert_eq!(frame(None, &[], false), Framing::None);
        assert_eq!(frame(None, &["0"], false), Framing::None);
        assert_eq!(frame(None, &["12", "12"], false), Framing::Length(12));
        assert_eq!(frame(Some("chunked"), &[], false), Framing::Chunked);
        assert_eq!(frame(Some("Chunked"), &[], false), Framing::Chunked);
        let refused: &[(Option<&str>, &[&str], bool)] = &[
            (None, &["5x"], false),
            (None, &["-1"], false),
            (None, &["+0"], false),
            (None, &[""], false),
            (None, &["99999999999999999999999"], false),
            (None, &["0", "7"], false),
            (Some("gzip"), &[], false),
            (Some("chunked, gzip"), &[], false),
            (Some("chunked"), &["0"], false),
            (Some("chunked"), &[], true),
        ];
        for (te, cl, up) in refused {
            assert!(matches!(frame(*te, cl, *up), Framing::Invalid(_)), "{te:?} {cl:?} {up}");
        }
        let tiny = request(Method::Post, "/", "", &[("Content-Length", "5x")]);
        assert!(matches!(framing(&tiny), Framing::Invalid(_)), "read from the request");
    }

    #[test]
    fn only_bodies_still_on_the_socket_leave_the_connection_unclean() {
        let long = "x".repeat(2000).leak();
        let r = |body: &'static str, hs: &[(&str, &str)]| request(Method::Post, "/", body, hs);
        let small = r("{}", &[]);
        assert!(!reads_socket(&small));
        assert!(Body::Unread.is_clean(&small), "tiny_http read it already");
        let large = r(long, &[]);
        assert!(reads_socket(&large));
        assert!(!Body::Unread.is_clean(&large));
        assert!(Body::Complete.is_clean(&large));
        assert_eq!(skip_len(&large, 500), 1500);
        let cont = r("{}", &[("Expect", "100-continue")]);
        assert!(reads_socket(&cont) && !Body::Unread.is_clean(&cont));
        let upgrade = r("{}", &[("Connection", "upgrade")]);
        assert!(reads_socket(&upgrade), "an upgraded body is the raw socket");
        assert_eq!(skip_len(&upgrade, 0), 0, "tiny_http does not skip it");
        assert!(!Body::Unread.is_clean(&r("", &[("Content-Length", "x")])));
    }

    #[test]
    fn closing_replies_say_so_and_carry_the_body() {
        let _sockets = super::super::reaper::tests::sockets();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server_side, _) = l.accept().unwrap();
        let mut reply = Reply::fail(413, "too big");
        reply.headers.push(("X-Evil", "a\r\nInjected: yes".into()));
        write_closing(&server_side, &reply, &HTTPVersion(1, 1), false);
        drop(server_side);
        let mut text = String::new();
        client.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 413 Payload Too Large\r\n"), "{text}");
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.contains(&format!("Content-Length: {}\r\n", reply.body.len())));
        assert!(!text.contains("Injected"));
        assert!(text.ends_with("\"status\":413}"));
    }
}
