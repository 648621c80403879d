use serde_json::{json, Value};

use crate::support::{assert_id, assert_task_shape, assert_time, ids, Dir, Server};

/// Asserts an error answer: the status, the body `{"error", "status"}` and
/// a message that contains `named`.
#[track_caller]
fn assert_error(got: (u16, Value), status: u16, named: &str) {
    let (code, body) = got;
    assert_eq!(code, status, "want {status}, got {code}: {body}");
    let obj = body.as_object().unwrap_or_else(|| panic!("error body is not an object: {body}"));
    assert_eq!(obj.len(), 2, "error body has other keys: {body}");
    assert_eq!(body["status"], status, "status in body: {body}");
    let msg = body["error"].as_str().unwrap_or_else(|| panic!("no error text: {body}"));
    assert!(msg.contains(named), "want {named:?} in {msg:?}");
}

#[test]
fn the_whole_lifecycle_runs_through_the_api() {
    let dir = Dir::new("api-lifecycle");
    let srv = Server::start(&dir);

    let (code, h) = srv.get("/health");
    assert_eq!(code, 200, "{h}");
    assert_eq!(h["status"], "ok");
    assert_time(h["timestamp"].as_str().expect("timestamp"));
    assert!(h["version"].is_string() && h["uptime_seconds"].is_u64(), "{h}");
    let zero = json!({
        "sessions": 0,
        "streams": 0,
        "tasks": {"queued": 0, "running": 0, "succeeded": 0, "failed": 0},
    });
    assert_eq!(srv.get("/stats"), (200, zero.clone()));
    assert_eq!(srv.get("/api/stats"), (200, zero));

    // Sessions.
    let (code, s) = srv.post("/api/sessions", json!({"name": "s1", "description": "first"}));
    assert_eq!(code, 201, "{s}");
    let s = s["session"].clone();
    let sid = s["id"].as_str().unwrap().to_string();
    assert_id(&sid, "ses_");
    assert_eq!((s["name"].as_str(), s["status"].as_str()), (Some("s1"), Some("active")));
    assert_error(srv.post("/api/sessions", json!({"name": "s1"})), 409, "s1");
    let (code, list) = srv.get("/api/sessions");
    assert_eq!((code, list["sessions"].as_array().map(Vec::len)), (200, Some(1)), "{list}");
    assert_eq!(srv.get("/api/sessions?status=active").1["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(srv.get("/api/sessions?status=ended").1["sessions"], json!([]));
    assert_eq!(srv.get("/api/sessions?limit=1&offset=1").1["sessions"], json!([]));
    assert_eq!(srv.get(&format!("/api/sessions/{sid}")), (200, json!({ "session": s })));
    assert_eq!(srv.get("/api/sessions/s1").1["session"]["id"], sid.as_str());
    let (code, upd) = srv.put(&format!("/api/sessions/{sid}"), json!({"description": "renamed"}));
    assert_eq!((code, &upd["session"]["description"]), (200, &json!("renamed")), "{upd}");

    // Streams.
    let (code, q) = srv.post(
        "/api/streams",
        json!({"session_id": sid, "name": "q1", "instructions": "read first"}),
    );
    assert_eq!(code, 201, "{q}");
    let q = q["stream"].clone();
    let qid = q["id"].as_str().unwrap().to_string();
    assert_id(&qid, "str_");
    assert_error(srv.post("/api/streams", json!({"session_id": sid, "name": "q1"})), 409, "q1");
    let (code, list) = srv.get(&format!("/api/streams?session_id={sid}"));
    assert_eq!(code, 200);
    assert_eq!(ids(&list["streams"]), vec![qid.clone()]);
    assert_eq!(srv.get("/api/streams?status=ended").1["streams"], json!([]));
    assert_eq!(srv.get("/api/streams/q1").1["stream"]["id"], qid.as_str());
    let (code, upd) = srv.put("/api/streams/q1", json!({"instructions": "read the PRD"}));
    assert_eq!((code, &upd["stream"]["instructions"]), (200, &json!("read the PRD")), "{upd}");

    // Tasks: create, peek, claim, complete.
    let body = json!({
        "stream_id": "q1",
        "tool_name": "run-bash",
        "payload": {"cmd": "ls"},
        "prompt": "list",
        "metadata": {"ticket": 1},
    });
    let (code, t) = srv.post("/api/tasks", body);
    assert_eq!(code, 201, "{t}");
    let t = t["task"].clone();
    assert_task_shape(&t);
    let first = t["id"].as_str().unwrap().to_string();
    assert_eq!(t["stream_id"], qid.as_str());
    assert_eq!(t["payload"], json!({"cmd": "ls", "prompt": "list", "metadata": {"ticket": 1}}));
    assert_eq!((t["status"].as_str(), t["attempts"].as_u64()), (Some("queued"), Some(0)));
    assert_eq!(srv.task(&first), t);

    let (code, p) = srv.get(&format!("/api/streams/{qid}/peek"));
    assert_eq!(code, 200, "{p}");
    assert_eq!(p["task"]["id"], first.as_str());
    assert_eq!(
        p["task"]["stream"],
        json!({"id": qid, "name": "q1", "instructions": "read the PRD"})
    );
    assert_eq!(srv.task(&first)["status"], "queued", "peek changed the task");

    let (code, c) = srv.post(&format!("/api/streams/{qid}/claim"), json!({"worker_id": "w1"}));
    assert_eq!(code, 200, "{c}");
    let c = &c["task"];
    assert_task_shape(c);
    assert_eq!(c["id"], first.as_str());
    assert_eq!((c["status"].as_str(), c["attempts"].as_u64()), (Some("running"), Some(1)));
    assert_eq!((c["worker_id"].as_str(), c["stream"]["name"].as_str()), (Some("w1"), Some("q1")));

    let done = json!({
        "result_summary": "listed",
        "result_data": {"files": 2},
        "stdout": "a\nb",
        "stderr": "warn",
    });
    let (code, d) = srv.post(&format!("/api/tasks/{first}/complete"), done);
    assert_eq!(code, 200, "{d}");
    let d = &d["task"];
    assert_task_shape(d);
    assert_eq!(
        (d["status"].as_str(), d["result_summary"].as_str()),
        (Some("succeeded"), Some("listed"))
    );
    assert_eq!(
        (&d["result"], &d["stdout"], &d["stderr"]),
        (&json!({"files": 2}), &json!("a\nb"), &json!("warn"))
    );

    // Nothing queued: peek and claim answer 204 with no body.
    for (method, path) in
        [("GET", format!("/api/streams/{qid}/peek")), ("POST", format!("/api/streams/{qid}/claim"))]
    {
        let r = srv.raw(method, &path, &[], "");
        assert_eq!((r.status, r.body.as_str()), (204, ""), "{method} {path}");
    }

    // Claim by id, fail, requeue.
    let second = srv.enqueue("q1", "plain");
    let (code, c) = srv.post(&format!("/api/tasks/{second}/claim"), json!({"worker_id": "w2"}));
    assert_eq!((code, &c["task"]["worker_id"]), (200, &json!("w2")), "{c}");
    assert_eq!(c["task"]["stream"]["id"], qid.as_str());
    let (code, f) = srv.post(
        &format!("/api/tasks/{second}/fail"),
        json!({"error_message": "exit 3", "error_type": "EXIT_CODE"}),
    );
    assert_eq!(code, 200, "{f}");
    assert_task_shape(&f["task"]);
    assert_eq!(
        (f["task"]["status"].as_str(), f["task"]["error"].as_str()),
        (Some("failed"), Some("exit 3"))
    );
    assert_eq!(f["task"]["error_type"], "EXIT_CODE");
    let before = srv.task(&second);
    let (code, r) = srv.post(&format!("/api/tasks/{second}/requeue"), json!({}));
    assert_eq!(code, 201, "{r}");
    let third = r["task"]["id"].as_str().unwrap().to_string();
    assert_ne!(third, second);
    assert_eq!(
        (r["task"]["status"].as_str(), r["task"]["attempts"].as_u64()),
        (Some("queued"), Some(0))
    );
    assert_eq!(r["task"]["payload"], before["payload"]);
    assert_eq!(srv.task(&second), before, "requeue changed the original");
    let r = srv.raw("POST", &format!("/api/tasks/{first}/requeue"), &[], "");
    assert_eq!(r.status, 201, "requeue with no body: {}", r.body);

    // Lists, newest first, with filters.
    let (code, all) = srv.get("/api/tasks");
    assert_eq!(code, 200);
    let all = ids(&all["tasks"]);
    assert_eq!(all.len(), 4);
    assert_eq!(&all[2..], &[second.clone(), first.clone()]);
    assert_eq!(ids(&srv.get("/api/tasks?status=failed").1["tasks"]), vec![second.clone()]);
    assert_eq!(
        ids(&srv.get("/api/tasks?stream_id=q1&status=queued&limit=1").1["tasks"]),
        vec![all[0].clone()]
    );
    assert_eq!(
        ids(&srv.get(&format!("/api/tasks?stream_id={qid}&limit=2&offset=2")).1["tasks"]),
        &all[2..]
    );

    // Tools, scripts, reload, dashboard.
    let (code, tools) = srv.get("/api/tools");
    assert_eq!(code, 200);
    let bash = tools["tools"].as_array().unwrap().iter().find(|t| t["name"] == "run-bash").cloned();
    assert_eq!(
        bash,
        Some(json!({
            "name": "run-bash",
            "description": "Execute a bash script",
            "task_class": "FAST_SCRIPT",
            "timeout": 30,
        }))
    );
    assert_eq!(srv.get("/api/scripts/index"), (200, json!({"scripts": []})));
    let (code, r) = srv.post("/api/reload", json!({}));
    assert_eq!((code, &r["status"]), (200, &json!("reloaded")), "{r}");
    for path in ["/", "/ui/"] {
        let r = srv.raw("GET", path, &[], "");
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("content-type").unwrap_or("").starts_with("text/html"),
            "{path}: {:?}",
            r.headers
        );
    }

    // Ending a stream is idempotent; it takes no new task, but what is
    // queued in it can still be claimed.
    let (code, e) = srv.put("/api/streams/q1/end", json!({}));
    assert_eq!((code, &e["stream"]["status"]), (200, &json!("ended")), "{e}");
    assert_eq!(srv.put(&format!("/api/streams/{qid}/end"), json!({})), (200, e));
    assert_error(
        srv.post("/api/tasks", json!({"stream_id": qid, "tool_name": "run-bash"})),
        409,
        "ended",
    );
    let (code, c) = srv.post("/api/streams/q1/claim", json!({}));
    assert_eq!((code, &c["task"]["id"]), (200, &json!(all[1])), "{c}");

    // Ending a session ends its streams and takes no new stream.
    let (code, q2) = srv.post("/api/streams", json!({"session_id": "s1", "name": "q2"}));
    assert_eq!(code, 201, "{q2}");
    let (code, e) = srv.put(&format!("/api/sessions/{sid}/end"), json!({}));
    assert_eq!((code, &e["session"]["status"]), (200, &json!("ended")), "{e}");
    assert_eq!(srv.put("/api/sessions/s1/end", json!({})), (200, e));
    assert_eq!(srv.get("/api/streams/q2").1["stream"]["status"], "ended");
    assert_error(srv.post("/api/streams", json!({"session_id": sid, "name": "q3"})), 409, "ended");

    let (_, stats) = srv.get("/stats");
    assert_eq!(
        stats,
        json!({
            "sessions": 1,
            "streams": 2,
            "tasks": {"queued": 1, "running": 1, "succeeded": 1, "failed": 1},
        })
    );
}

#[test]
fn a_stream_is_addressable_by_id_or_by_name_everywhere() {
    let dir = Dir::new("api-by-name");
    let srv = Server::start(&dir);
    let qid = srv.stream("s", "work.q-1");

    for key in [qid.as_str(), "work.q-1"] {
        let id = srv.enqueue(key, "run-bash");
        assert_eq!(srv.task(&id)["stream_id"], qid.as_str(), "enqueue by {key}");
        assert_eq!(srv.get(&format!("/api/streams/{key}")).1["stream"]["id"], qid.as_str());
        let (code, p) = srv.get(&format!("/api/streams/{key}/peek"));
        assert_eq!((code, &p["task"]["id"]), (200, &json!(id)), "peek by {key}");
        let listed = srv.get(&format!("/api/tasks?stream_id={key}&status=queued")).1;
        assert_eq!(ids(&listed["tasks"]), vec![id.clone()], "list by {key}");
        let (code, c) = srv.post(&format!("/api/streams/{key}/claim"), json!({}));
        assert_eq!((code, &c["task"]["id"]), (200, &json!(id)), "claim by {key}");
        let (code, u) = srv.put(&format!("/api/streams/{key}"), json!({"instructions": key}));
        assert_eq!((code, &u["stream"]["instructions"]), (200, &json!(key)), "update by {key}");
    }
    let (code, e) = srv.put("/api/streams/work.q-1/end", json!({}));
    assert_eq!((code, &e["stream"]["id"]), (200, &json!(qid)), "{e}");
}

#[test]
fn errors_answer_with_their_status_and_an_error_body() {
    let dir = Dir::new("api-errors");
    let srv = Server::start(&dir);
    let qid = srv.stream("s", "q");
    let id = srv.enqueue(&qid, "run-bash");
    let (_, stats_before) = srv.get("/stats");
    let task_before = srv.task(&id);

    // Unknown routes and ids: 404.
    assert_error(srv.get("/nope"), 404, "/nope");
    assert_error(srv.post("/api/tasks/tsk_000000000000/explode", json!({})), 404, "explode");
    assert_error(srv.get("/api/tasks/tsk_000000000000"), 404, "tsk_000000000000");
    assert_error(
        srv.post("/api/tasks/tsk_000000000000/complete", json!({"result_summary": "x"})),
        404,
        "tsk_000000000000",
    );
    assert_error(
        srv.post("/api/tasks/tsk_000000000000/requeue", json!({})),
        404,
        "tsk_000000000000",
    );
    assert_error(srv.get("/api/sessions/nope"), 404, "nope");
    assert_error(srv.get("/api/streams/nope"), 404, "nope");
    assert_error(srv.get("/api/streams/nope/peek"), 404, "nope");
    assert_error(srv.post("/api/streams/nope/claim", json!({})), 404, "nope");
    assert_error(srv.put("/api/streams/nope/end", json!({})), 404, "nope");
    assert_error(
        srv.post("/api/streams", json!({"session_id": "ses_000000000000", "name": "q2"})),
        404,
        "ses_000000000000",
    );
    assert_error(
        srv.post("/api/tasks", json!({"stream_id": "nope", "tool_name": "run-bash"})),
        404,
        "nope",
    );
    assert_error(srv.get("/api/tasks?stream_id=nope"), 404, "nope");

    // Wrong method: 405 with the allowed ones.
    for (method, path, allow) in [
        ("DELETE", "/api/tasks", "GET, POST"),
        ("POST", "/health", "GET"),
        ("GET", "/api/tasks/tsk_000000000000/complete", "POST"),
        ("POST", "/api/streams/q/peek", "GET"),
        ("GET", "/api/streams/q/claim", "POST"),
        ("GET", "/api/reload", "POST"),
    ] {
        let r = srv.raw(method, path, &[], "");
        assert_error((r.status, r.json()), 405, method);
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }

    // Renaming onto a name in use: 409; onto a bad name: 400.
    srv.post("/api/streams", json!({"session_id": "s", "name": "q2"}));
    assert_error(srv.put("/api/streams/q2", json!({"name": "q"})), 409, "\"q\"");
    assert_error(srv.put("/api/streams/q2", json!({"name": "q 3"})), 400, "1-64");
    srv.post("/api/sessions", json!({"name": "s2"}));
    assert_error(srv.put("/api/sessions/s2", json!({"name": "s"})), 409, "\"s\"");

    // A Host that is not this server, or a change from another origin: 403.
    let r = srv.raw("GET", "/api/tasks", &[("Host", "evil.example")], "");
    assert_error((r.status, r.json()), 403, "evil.example");
    let port = srv.addr.rsplit(':').next().unwrap();
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}"), "localhost".to_string()]
    {
        let r = srv.raw("GET", "/api/tasks", &[("Host", &host)], "");
        assert_eq!(r.status, 200, "Host {host}: {}", r.body);
    }
    let r = srv.raw(
        "POST",
        "/api/sessions",
        &[("Content-Type", "application/json"), ("Origin", "http://evil.example")],
        r#"{"name":"x"}"#,
    );
    assert_error((r.status, r.json()), 403, "evil.example");

    // A body over server.max_body_bytes (2048 here): 413.
    let big = json!({"name": "big", "description": "x".repeat(3000)}).to_string();
    let r = srv.raw("POST", "/api/sessions", &[("Content-Type", "application/json")], &big);
    assert_error((r.status, r.json()), 413, "2048");
    let big =
        json!({"stream_id": "q", "tool_name": "run-bash", "prompt": "y".repeat(4000)}).to_string();
    let r = srv.raw("POST", "/api/tasks", &[("Content-Type", "application/json")], &big);
    assert_error((r.status, r.json()), 413, "2048");

    let ct = ("Content-Type", "application/json");
    let r = srv.raw("POST", "/api/sessions", &[ct, ("Content-Length", "1000000")], "");
    assert_error((r.status, r.json()), 413, "2048");
    let chunk = format!("{{\"name\": \"c\", \"description\": \"{}\"}}", "z".repeat(2500));
    let chunked = format!("{:x}\r\n{chunk}\r\n0\r\n\r\n", chunk.len());
    let r = srv.raw("POST", "/api/sessions", &[ct, ("Transfer-Encoding", "chunked")], &chunked);
    assert_error((r.status, r.json()), 413, "2048");

    // A body that is not JSON by its type: 415.
    let r = srv.raw("POST", "/api/sessions", &[("Content-Type", "text/plain")], r#"{"name":"t"}"#);
    assert_error((r.status, r.json()), 415, "text/plain");
    let r = srv.raw("POST", "/api/sessions", &[], r#"{"name":"t"}"#);
    assert_error((r.status, r.json()), 415, "application/json");
    let r = srv.raw(
        "POST",
        "/api/sessions",
        &[("Content-Type", "application/json; charset=utf-8")],
        r#"{"name":"t"}"#,
    );
    assert_eq!(r.status, 201, "a charset parameter is still JSON: {}", r.body);

    // Bad input: 400, naming what was wrong.
    let json_ct = [("Content-Type", "application/json")];
    for (path, body, named) in [
        ("/api/sessions", "{", "JSON"),
        ("/api/sessions", "[1]", "object"),
        ("/api/sessions", r#"{"name": 5}"#, "name"),
        ("/api/sessions", r#"{}"#, "name"),
        ("/api/sessions", r#"{"name": "  "}"#, "name"),
        ("/api/sessions", r#"{"name": "a b"}"#, "1-64"),
        ("/api/streams", r#"{"session_id": "s", "name": "bad/name"}"#, "1-64"),
        ("/api/tasks", r#"{"stream_id": "q"}"#, "tool_name"),
        ("/api/tasks", r#"{"stream_id": "q", "tool_name": "nope"}"#, "nope"),
        (
            "/api/tasks",
            r#"{"stream_id": "q", "tool_name": "run-bash", "task_class": "NOPE"}"#,
            "NOPE",
        ),
        (
            "/api/tasks",
            r#"{"stream_id": "q", "tool_name": "run-bash", "timeout": "1:30"}"#,
            "timeout",
        ),
        ("/api/tasks", r#"{"stream_id": "q", "tool_name": "run-bash", "timeout": 0}"#, "timeout"),
        ("/api/tasks", r#"{"stream_id": "q", "tool_name": "run-bash", "timeout": -1}"#, "timeout"),
        ("/api/tasks", r#"{"stream_id": "q", "tool_name": "run-bash", "payload": [1]}"#, "payload"),
        (
            "/api/tasks",
            r#"{"stream_id": "q", "tool_name": "run-bash", "metadata": "x"}"#,
            "metadata",
        ),
    ] {
        let r = srv.raw("POST", path, &json_ct, body);
        assert_error((r.status, r.json()), 400, named);
    }
    let path = format!("/api/tasks/{id}/claim");
    let r = srv.raw("POST", &path, &json_ct, r#"{"worker_id": 7}"#);
    assert_error((r.status, r.json()), 400, "worker_id");
    assert_error(srv.post(&format!("/api/tasks/{id}/fail"), json!({})), 400, "error_message");
    for query in ["status=done", "limit=0", "limit=1001", "limit=x", "offset=-1"] {
        assert_error(
            srv.get(&format!("/api/tasks?{query}")),
            400,
            query.split('=').nth(1).unwrap(),
        );
    }

    // None of it changed anything but what was made on purpose: a stream
    // and a session to rename, and one session made with a charset.
    let (_, stats) = srv.get("/stats");
    assert_eq!(stats["tasks"], stats_before["tasks"]);
    assert_eq!(stats["streams"], 2, "{stats}");
    assert_eq!(stats["sessions"], 3, "{stats}");
    assert_eq!(srv.task(&id), task_before);
}

#[test]
fn fifo_holds_for_100_tasks_enqueued_back_to_back_over_http() {
    let dir = Dir::new("api-fifo");
    let srv = Server::start(&dir);
    let qid = srv.stream("s", "q");

    let enqueued: Vec<String> = (0..100).map(|_| srv.enqueue(&qid, "run-bash")).collect();
    let listed = srv.get(&format!("/api/tasks?stream_id={qid}&limit=1000")).1;
    let mut newest_first = enqueued.clone();
    newest_first.reverse();
    assert_eq!(ids(&listed["tasks"]), newest_first, "the list is not newest first");

    let mut claimed = Vec::new();
    for _ in 0..100 {
        let (code, p) = srv.get(&format!("/api/streams/{qid}/peek"));
        assert_eq!(code, 200, "{p}");
        let (code, c) = srv.post(&format!("/api/streams/{qid}/claim"), json!({}));
        assert_eq!(code, 200, "{c}");
        assert_eq!(p["task"]["id"], c["task"]["id"], "peek and claim disagree on the next task");
        claimed.push(c["task"]["id"].as_str().unwrap().to_string());
    }
    assert_eq!(claimed, enqueued);
    assert_eq!(srv.post(&format!("/api/streams/{qid}/claim"), json!({})).0, 204);
}

#[test]
fn every_refused_transition_answers_409_naming_the_current_state() {
    let dir = Dir::new("api-refused");
    let srv = Server::start(&dir);
    let qid = srv.stream("s", "q");
    let [queued, running, succeeded, failed] = [0, 1, 2, 3].map(|_| srv.enqueue(&qid, "run-bash"));
    for id in [&running, &succeeded, &failed] {
        assert_eq!(srv.post(&format!("/api/tasks/{id}/claim"), json!({})).0, 200);
    }
    assert_eq!(
        srv.post(&format!("/api/tasks/{succeeded}/complete"), json!({"result_summary": "ok"})).0,
        200
    );
    assert_eq!(
        srv.post(&format!("/api/tasks/{failed}/fail"), json!({"error_message": "no"})).0,
        200
    );

    let complete = json!({"result_summary": "x"});
    let fail = json!({"error_message": "x"});
    let cases = [
        ("complete", &queued, &complete),
        ("complete", &succeeded, &complete),
        ("complete", &failed, &complete),
        ("fail", &succeeded, &fail),
        ("fail", &failed, &fail),
        ("claim", &running, &json!({})),
        ("claim", &succeeded, &json!({})),
        ("claim", &failed, &json!({})),
        ("requeue", &queued, &json!({})),
        ("requeue", &running, &json!({})),
    ];
    for (action, id, body) in cases {
        let before = srv.task(id);
        let state = before["status"].as_str().unwrap().to_string();
        let got = srv.post(&format!("/api/tasks/{id}/{action}"), body.clone());
        assert_error(got.clone(), 409, &format!("it is {state}"));
        assert!(
            got.1["error"].as_str().unwrap().contains(id.as_str()),
            "{action} {state}: {}",
            got.1
        );
        assert_eq!(srv.task(id), before, "a refused {action} changed a {state} task");
    }
    let (_, stats) = srv.get("/stats");
    assert_eq!(stats["tasks"], json!({"queued": 1, "running": 1, "succeeded": 1, "failed": 1}));

    // Failing a queued task is allowed.
    let (code, f) =
        srv.post(&format!("/api/tasks/{queued}/fail"), json!({"error_message": "not needed"}));
    assert_eq!((code, &f["task"]["status"]), (200, &json!("failed")), "{f}");
}

// Cause: unknown fields were ignored, so a typo or a field that cannot be
// changed (a stream's session) answered 200 and changed nothing.
#[test]
fn regression_unknown_body_fields_are_refused_naming_the_field() {
    let dir = Dir::new("api-unknown-field");
    let srv = Server::start(&dir);
    assert_error(srv.post("/api/sessions", json!({"name": "s1", "bogus": 1})), 400, "bogus");
    assert_eq!(srv.get("/api/sessions").1["sessions"], json!([]), "nothing was created");
    srv.stream("s1", "q1");
    assert_error(srv.put("/api/streams/q1", json!({"session_id": "s2"})), 400, "session_id");
    let id = srv.enqueue("q1", "run-bash");
    srv.post("/api/streams/q1/claim", json!({}));
    assert_error(
        srv.post(
            &format!("/api/tasks/{id}/complete"),
            json!({"result_summary": "ok", "sumary": 1}),
        ),
        400,
        "sumary",
    );
    assert_eq!(srv.task(&id)["status"], "running");
}

#[test]
fn a_null_description_clears_it_and_an_empty_update_changes_nothing() {
    let dir = Dir::new("api-update-null");
    let srv = Server::start(&dir);
    let (_, s) = srv.post("/api/sessions", json!({"name": "s1", "description": "first"}));
    let before = s["session"].clone();
    let (code, same) = srv.put("/api/sessions/s1", json!({}));
    assert_eq!((code, &same["session"]), (200, &before), "an empty update keeps updated_at");
    let (code, cleared) = srv.put("/api/sessions/s1", json!({"description": null}));
    assert_eq!((code, &cleared["session"]["description"]), (200, &Value::Null), "{cleared}");
    srv.post("/api/streams", json!({"session_id": "s1", "name": "q1", "instructions": "read"}));
    let (_, q) = srv.put("/api/streams/q1", json!({"instructions": null}));
    assert_eq!(q["stream"]["instructions"], Value::Null, "{q}");
}

// Cause: a reload that changed database.path answered "reloaded" while the
// server kept its database and the CLI moved to the new one.
#[test]
fn regression_reload_says_which_settings_wait_for_a_restart() {
    let dir = Dir::new("api-reload-restart");
    let srv = Server::start(&dir);
    let db = srv.get("/health");
    assert_eq!(db.0, 200);
    let text = std::fs::read_to_string(dir.config()).unwrap();
    std::fs::write(dir.config(), format!("{text}\ndatabase:\n  path: other.db\n")).unwrap();
    let (code, body) = srv.post("/api/reload", json!({}));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["restart_needed"], json!(["database.path"]), "{body}");
    let out = dir.sparkq(&["reload"]);
    assert!(out.ok().contains("take effect only when the server restarts"), "{}", out.ok());
}
