use serde_json::json;

use crate::support::{Dir, Server, CONFIG};

/// Each kind of config SPEC §3 says is refused: a label, the text, the line
/// the error must name, and the key (or words) it must name.
const BAD: [(&str, &str, usize, &str); 8] = [
    ("syntax", "server:\n  port: 0\nproject:\n  name: a: b\n", 4, "project.name"),
    ("tab", "server:\n  port: 0\nproject:\n\tname: x\n", 4, "project"),
    ("duplicate key", "server:\n  port: 0\n  host: 127.0.0.1\n  port: 1\n", 4, "\"port\""),
    ("unknown key", "server:\n  port: 0\n  prot: 1\n", 3, "\"prot\""),
    (
        "wrong type",
        "tools:\n  a:\n    description: x\n    timeout: \"1:30\"\n",
        4,
        "tools.a.timeout",
    ),
    ("zero timeout", "task_classes:\n  X:\n    timeout: 0\n", 3, "task_classes.X.timeout"),
    ("negative timeout", "tools:\n  a:\n    timeout: -5\n", 3, "tools.a.timeout"),
    ("unknown class", "tools:\n  a:\n    task_class: NOPE\n", 3, "tools.a.task_class"),
];

#[test]
fn each_kind_of_bad_config_exits_2_naming_the_file_the_line_and_the_key() {
    let dir = Dir::new("bad-config");

    for (label, text, line, key) in BAD {
        let path = dir.write("bad.yml", text);
        let out = dir.sparkq_bare(&["--config", "bad.yml", "tasks"]);
        let msg = out.refused();
        assert!(msg.contains(path.to_str().unwrap()), "{label}: want the file named in {out}");
        assert!(msg.contains(&format!("line {line}")), "{label}: want line {line} named in {out}");
        assert!(msg.contains(key), "{label}: want {key} named in {out}");
    }
    let out = dir.sparkq_bare(&["--config", "bad.yml", "session", "create", "x"]);
    out.refused();
    assert!(!dir.db_path().exists(), "a refused config still created the database");
}

#[test]
fn a_missing_config_named_by_flag_is_an_error_naming_it() {
    let dir = Dir::empty("missing-config");

    let out = dir.sparkq_bare(&["--config", "nope.yml", "tasks"]);
    assert!(out.refused().contains("nope.yml"), "{out}");
    let out = dir.sparkq_bare(&["tasks"]);
    assert!(out.refused().contains("sparkq.yml"), "{out}");
    assert!(!dir.config().exists(), "a work command created a config");
}

#[test]
fn tool_names_stay_text() {
    let yaml = "tools:\n  no:\n    description: a tool called no\n  yes: {}\n  'on': {}\n";
    let dir = Dir::with_config("tool-names", yaml);
    dir.stream("s", "q");

    for tool in ["no", "yes", "on"] {
        let id = dir.enqueue("q", tool, &[]);
        assert_eq!(dir.task(&id)["tool_name"], tool);
    }
}

#[test]
fn reload_with_a_broken_config_keeps_the_old_one_and_reports_the_error() {
    let dir = Dir::new("reload");
    let srv = Server::start(&dir);
    let tools = || -> Vec<String> {
        let (code, t) = srv.get("/api/tools");
        assert_eq!(code, 200, "{t}");
        t["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    let before = tools();
    assert!(before.contains(&"fixed".to_string()), "{before:?}");

    // Broken: both the CLI and the API report it, and the server keeps
    // serving the tools it had.
    let broken = CONFIG.replace("  fixed:\n", "  fixed:\n    colour: red\n");
    dir.write("sparkq.yml", &broken);
    let out = dir.sparkq(&["reload"]);
    let msg = out.refused();
    assert!(msg.contains("colour") && msg.contains("sparkq.yml"), "{out}");
    let (code, e) = srv.post("/api/reload", json!({}));
    assert_eq!((code, &e["status"]), (400, &json!(400)), "{e}");
    assert!(e["error"].as_str().unwrap().contains("colour"), "{e}");
    assert_eq!(tools(), before);
    let (code, t) =
        srv.post("/api/tasks", json!({"stream_id": srv.stream("s", "q"), "tool_name": "fixed"}));
    assert_eq!((code, &t["task"]["timeout"]), (201, &json!(42)), "{t}");

    // Fixed: reload takes the new tools.
    let fixed = CONFIG.replace("  fixed:\n", "  added:\n    description: new\n  fixed:\n");
    dir.write("sparkq.yml", &fixed);
    let out = dir.sparkq(&["reload"]);
    assert!(out.ok().contains("reloaded"), "{out}");
    let after = tools();
    assert!(after.contains(&"added".to_string()), "{after:?}");
    assert_eq!(after.len(), before.len() + 1);
}

#[test]
fn reload_without_a_server_exits_2_saying_so() {
    let dir = Dir::new("reload-none");

    let out = dir.sparkq(&["reload"]);
    assert!(out.refused().contains("no server"), "{out}");
}

/// An unclosed bracket or quote on the last line was reported on a line
/// past the end of the file, where the parser ran out of text.
#[test]
fn regression_an_unclosed_bracket_or_quote_at_the_end_is_reported_on_a_line_of_the_file() {
    let dir = Dir::new("bad-config-eof");

    for text in [
        "server:\n  port: 0\ntools:\n  a: [1, 2\n",
        "server:\n  port: 0\ntools:\n  a: [1, 2",
        "server:\n  port: 0\ntools:\n  a: \"open\n",
    ] {
        dir.write("bad.yml", text);
        let out = dir.sparkq_bare(&["--config", "bad.yml", "tasks"]);
        let msg = out.refused();
        assert!(msg.contains("line 4") && msg.contains("tools.a"), "want line 4 (of 4) in {out}");
    }
}
