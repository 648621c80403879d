//! Stored sizes: payloads past `limits.payload_bytes` are refused, and a
//! worker's result, stdout and stderr are cut at a character boundary past
//! `limits.output_bytes` with a marker; invalid UTF-8 from a worker is
//! stored with replacement characters.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use serde_json::Value;

use crate::support::{Dir, Server, CONFIG};

/// Asserts that `stored` is `sent` cut to 64 bytes at a character boundary,
/// followed by the marker.
fn assert_cut(stored: &str, sent: &str) {
    let (kept, marker) =
        stored.split_once("\n[sparkq: cut ").unwrap_or_else(|| panic!("no marker: {stored:?}"));
    assert!(kept.len() <= 64 && kept.len() > 60, "{kept:?}");
    assert!(sent.starts_with(kept));
    let cut = sent.len() - kept.len();
    assert_eq!(marker, format!("{cut} bytes past the 64-byte limit]"));
}

#[test]
fn output_past_the_limit_is_cut_at_a_character_with_a_marker() {
    let dir = Dir::new("cut", CONFIG);
    let server = Server::start(&dir);
    // 3-byte characters: 64 is not a boundary, so the cut falls at 63.
    let long: String = "€".repeat(50);
    let id = server.task("cut");
    assert_eq!(server.post(&format!("/api/tasks/{id}/claim"), "{}").status, 200);
    let body = serde_json::json!({
        "result_summary": "done",
        "result_data": long,
        "stdout": long,
        "stderr": format!("e{long}"),
    });
    let r = server.post(&format!("/api/tasks/{id}/complete"), &body.to_string());
    assert_eq!(r.status, 200, "{}", r.text());
    let t = server.get(&format!("/api/tasks/{id}")).json()["task"].clone();
    assert_cut(t["stdout"].as_str().unwrap(), &long);
    assert_eq!(t["stdout"].as_str().unwrap().split('\n').next().unwrap().len(), 63);
    assert_cut(t["stderr"].as_str().unwrap(), &format!("e{long}"));
    assert_eq!(t["stderr"].as_str().unwrap().split('\n').next().unwrap().len(), 64);
    assert_cut(t["result"].as_str().unwrap(), &long);
    // A failure's output, and the short ones kept whole.
    let id = server.task("cut-fail");
    let r = server.post(
        &format!("/api/tasks/{id}/fail"),
        &serde_json::json!({"error_message": "boom", "stdout": long, "stderr": "short"})
            .to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let t = &r.json()["task"];
    assert_cut(t["stdout"].as_str().unwrap(), &long);
    assert_eq!(t["stderr"], "short");
}

#[test]
fn a_payload_past_the_limit_is_refused_naming_the_limit() {
    let dir = Dir::new("payload", CONFIG);
    let server = Server::start(&dir);
    server.task("pay");
    let big = serde_json::json!({
        "stream_id": "pay", "tool_name": "run-bash", "prompt": "p".repeat(600),
    });
    let r = server.post("/api/tasks", &big.to_string());
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.error().contains("limits.payload_bytes"), "{}", r.text());
    let r = server
        .post("/api/tasks", "{\"stream_id\":\"pay\",\"tool_name\":\"run-bash\",\"prompt\":\"ok\"}");
    assert_eq!(r.status, 201);
    assert_eq!(server.get("/stats").json()["tasks"]["queued"], 2, "only the small one was added");
}

#[test]
fn invalid_utf8_from_a_worker_on_the_command_line_is_stored_as_replacement() {
    let dir = Dir::new("lossy", CONFIG);
    let ok = |args: &[OsString]| {
        let out = dir.cli(args, &[]);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("the CLI prints UTF-8")
    };
    let s = |v: &str| OsString::from(v);
    ok(&["session", "create", "lossy"].map(s));
    ok(&["stream", "create", "lossy", "--session", "lossy"].map(s));
    let id = ok(&["enqueue", "--stream", "lossy", "--tool", "run-bash"].map(s)).trim().to_string();
    ok(&["claim", "--stream", "lossy"].map(s));
    let bad = OsString::from_vec(vec![0xff, 0xfe]);
    let bad_err = OsString::from_vec(b"ok \xc3(".to_vec());
    ok(&[
        s("complete"),
        s(&id),
        s("--summary"),
        s("s"),
        s("--stdout"),
        bad,
        s("--stderr"),
        bad_err,
    ]);
    let task: Value = serde_json::from_str(&ok(&[s("task"), s(&id), s("--json")])).unwrap();
    assert_eq!(task["stdout"], "\u{fffd}\u{fffd}");
    assert_eq!(task["stderr"], "ok \u{fffd}(");
    assert_eq!(task["status"], "succeeded");
}
