//! Maps a method and a path to a route. Pure, so the table is tested
//! without sockets.

use tiny_http::Method;

/// What a request asks for. Ids are still percent-decoded text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    Stats,
    ListSessions,
    CreateSession,
    GetSession(String),
    UpdateSession(String),
    EndSession(String),
    ListStreams,
    CreateStream,
    GetStream(String),
    UpdateStream(String),
    EndStream(String),
    Peek(String),
    ClaimNext(String),
    ListTasks,
    CreateTask,
    GetTask(String),
    ClaimTask(String),
    Complete(String),
    Fail(String),
    Requeue(String),
    Tools,
    Scripts,
    Reload,
    Shutdown,
    /// A dashboard file, by its path inside `static/`.
    Asset(String),
    /// The path exists, with other methods: these.
    WrongMethod(&'static str),
    NotFound,
}

impl Route {
    /// Returns true if and only if the route is open without a token: the
    /// dashboard's files (so it can ask for the token) and the health check.
    pub fn is_public(&self) -> bool {
        matches!(self, Route::Health | Route::Asset(_))
    }
}

/// Routes a request. `path` is the URL path without the query string.
pub fn route(method: &Method, path: &str) -> Route {
    let segs: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
    let segs: Vec<&str> = segs.iter().map(|s| s.as_str()).collect();
    let get = matches!(method, Method::Get | Method::Head);
    let post = *method == Method::Post;
    let put = *method == Method::Put;
    let id = |s: &str| s.to_string();
    match segs.as_slice() {
        ["health"] if get => Route::Health,
        ["health"] => Route::WrongMethod("GET"),
        ["stats"] | ["api", "stats"] if get => Route::Stats,
        ["stats"] | ["api", "stats"] => Route::WrongMethod("GET"),

        ["api", "sessions"] if get => Route::ListSessions,
        ["api", "sessions"] if post => Route::CreateSession,
        ["api", "sessions"] => Route::WrongMethod("GET, POST"),
        ["api", "sessions", s] if get => Route::GetSession(id(s)),
        ["api", "sessions", s] if put => Route::UpdateSession(id(s)),
        ["api", "sessions", _] => Route::WrongMethod("GET, PUT"),
        ["api", "sessions", s, "end"] if put => Route::EndSession(id(s)),
        ["api", "sessions", _, "end"] => Route::WrongMethod("PUT"),

        ["api", "streams"] if get => Route::ListStreams,
        ["api", "streams"] if post => Route::CreateStream,
        ["api", "streams"] => Route::WrongMethod("GET, POST"),
        ["api", "streams", s] if get => Route::GetStream(id(s)),
        ["api", "streams", s] if put => Route::UpdateStream(id(s)),
        ["api", "streams", _] => Route::WrongMethod("GET, PUT"),
        ["api", "streams", s, "end"] if put => Route::EndStream(id(s)),
        ["api", "streams", _, "end"] => Route::WrongMethod("PUT"),
        ["api", "streams", s, "peek"] if get => Route::Peek(id(s)),
        ["api", "streams", _, "peek"] => Route::WrongMethod("GET"),
        ["api", "streams", s, "claim"] if post => Route::ClaimNext(id(s)),
        ["api", "streams", _, "claim"] => Route::WrongMethod("POST"),

        ["api", "tasks"] if get => Route::ListTasks,
        ["api", "tasks"] if post => Route::CreateTask,
        ["api", "tasks"] => Route::WrongMethod("GET, POST"),
        ["api", "tasks", t] if get => Route::GetTask(id(t)),
        ["api", "tasks", _] => Route::WrongMethod("GET"),
        ["api", "tasks", t, action] if post => match *action {
            "claim" => Route::ClaimTask(id(t)),
            "complete" => Route::Complete(id(t)),
            "fail" => Route::Fail(id(t)),
            "requeue" => Route::Requeue(id(t)),
            _ => Route::NotFound,
        },
        ["api", "tasks", _, "claim" | "complete" | "fail" | "requeue"] => {
            Route::WrongMethod("POST")
        }

        ["api", "tools"] if get => Route::Tools,
        ["api", "tools"] => Route::WrongMethod("GET"),
        ["api", "scripts", "index"] if get => Route::Scripts,
        ["api", "scripts", "index"] => Route::WrongMethod("GET"),
        ["api", "reload"] if post => Route::Reload,
        ["api", "reload"] => Route::WrongMethod("POST"),
        ["api", "shutdown"] if post => Route::Shutdown,
        ["api", "shutdown"] => Route::WrongMethod("POST"),

        [] | ["ui"] if get => Route::Asset("index.html".into()),
        ["ui", rest @ ..] if get => Route::Asset(rest.join("/")),
        [] | ["ui", ..] => Route::WrongMethod("GET"),
        _ => Route::NotFound,
    }
}

/// Decodes `%XX` escapes; a bad escape is kept as it is. Invalid UTF-8
/// becomes U+FFFD, which no id or name can contain.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits a query string into decoded pairs (`+` is a space).
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(&k.replace('+', " ")), percent_decode(&v.replace('+', " ")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_the_table() {
        let cases: &[(Method, &str, Route)] = &[
            (Method::Get, "/health", Route::Health),
            (Method::Get, "/stats", Route::Stats),
            (Method::Get, "/api/stats", Route::Stats),
            (Method::Post, "/api/sessions", Route::CreateSession),
            (Method::Put, "/api/sessions/ses_1/end", Route::EndSession("ses_1".into())),
            (Method::Get, "/api/streams/build/peek", Route::Peek("build".into())),
            (Method::Post, "/api/streams/str_1/claim", Route::ClaimNext("str_1".into())),
            (Method::Post, "/api/tasks/tsk_1/complete", Route::Complete("tsk_1".into())),
            (Method::Post, "/api/tasks/tsk_1/requeue", Route::Requeue("tsk_1".into())),
            (Method::Get, "/api/scripts/index", Route::Scripts),
            (Method::Get, "/", Route::Asset("index.html".into())),
            (Method::Get, "/ui/", Route::Asset("index.html".into())),
            (Method::Get, "/ui/app.js", Route::Asset("app.js".into())),
            (Method::Get, "//health", Route::Health),
            (Method::Delete, "/api/tasks", Route::WrongMethod("GET, POST")),
            (Method::Get, "/api/tasks/tsk_1/complete", Route::WrongMethod("POST")),
            (Method::Post, "/api/tasks/tsk_1/explode", Route::NotFound),
            (Method::Get, "/nope", Route::NotFound),
        ];
        for (m, p, want) in cases {
            assert_eq!(&route(m, p), want, "{m} {p}");
        }
    }

    #[test]
    fn decodes_percent_escapes_and_keeps_bad_ones() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("%2e%2E"), "..");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%f"), "%f");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }

    #[test]
    fn parses_queries() {
        let q = parse_query("status=queued&limit=5&x&name=a+b%21");
        assert_eq!(q[0], ("status".into(), "queued".into()));
        assert_eq!(q[2], ("x".into(), "".into()));
        assert_eq!(q[3], ("name".into(), "a b!".into()));
    }

    use crate::testing::Rng;

    #[test]
    fn random_requests_never_panic_routing_queries_or_body_parsing() {
        const PIECES: &[&str] = &[
            "/",
            "//",
            "api",
            "ui",
            "tasks",
            "streams",
            "sessions",
            "health",
            "stats",
            "claim",
            "complete",
            "end",
            "peek",
            "index",
            "scripts",
            "..",
            ".",
            "%2e%2e",
            "%2E",
            "%2f",
            "%5c",
            "\\",
            "%00",
            "%",
            "%f",
            "%ff",
            "%c3%a9",
            "%e2%82",
            "?",
            "&",
            "=",
            "+",
            "#",
            "tsk_0123456789ab",
            "é",
            "\u{fffd}",
            "\u{0}",
            " ",
            "index.html",
            "app.js",
            "%zz",
            "limit=",
            "offset=",
            "status=",
            "-1",
            "99999999999999999999",
            "true",
        ];
        const BODIES: &[&str] = &[
            "{",
            "}",
            "[",
            "]",
            "\"",
            ":",
            ",",
            "null",
            "true",
            "1e999",
            "-0",
            "\\u0000",
            "\\ud800",
            "{\"name\":",
            "\"a\"",
            " ",
            "\n",
            "é",
            "0",
            "{}",
            "[]",
        ];
        let methods = [
            Method::Get,
            Method::Head,
            Method::Post,
            Method::Put,
            Method::Delete,
            Method::Options,
            Method::Patch,
            Method::NonStandard("BREW".parse().unwrap()),
        ];
        let mut rng = Rng(0x0b5e_55ed_f00d_1234);
        for case in 0..5000 {
            let url: String = if case % 2 == 0 {
                (0..rng.below(12)).map(|_| PIECES[rng.below(PIECES.len())]).collect()
            } else {
                let bytes: Vec<u8> = (0..rng.below(60)).map(|_| rng.next() as u8).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            };
            let (path, query) = url.split_once('?').unwrap_or((&url, ""));
            let method = &methods[rng.below(methods.len())];
            if let Route::Asset(file) = route(method, path) {
                let climbs = file.split('/').any(|p| p == ".." || p == ".") || file.contains('\\');
                if climbs || file.starts_with('/') {
                    assert!(crate::ui::lookup(&file).is_none(), "{url:?} reached {file:?}");
                }
            }
            for (k, v) in parse_query(query) {
                assert!(!k.contains('+') || query.contains("%2b") || query.contains("%2B"));
                let _ = (k.len(), v.len());
            }
            let body: Vec<u8> = match case % 3 {
                0 => (0..rng.below(20))
                    .flat_map(|_| BODIES[rng.below(BODIES.len())].bytes())
                    .collect(),
                1 => (0..rng.below(80)).map(|_| rng.next() as u8).collect(),
                _ => format!(
                    "{{\"name\": {}, \"stream_id\": {}}}",
                    BODIES[rng.below(BODIES.len())],
                    BODIES[rng.below(BODIES.len())]
                )
                .into_bytes(),
            };
            if let Err(e) = crate::http::api::object(&body, &["name"]) {
                assert_eq!(e.http_status(), 400, "{body:?}: {e}");
                assert!(!e.message().is_empty());
            }
        }
    }
}
