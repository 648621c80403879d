use serde_json::{json, Value};

use crate::support::{fixtures, Dir, Server, CONFIG};

/// A folder whose config indexes the fixture scripts and its own `own`.
fn dir_with_scripts(label: &str) -> Dir {
    let dirs = format!("script_dirs:\n  - {:?}\n  - own\n", fixtures().display().to_string());
    Dir::with_config(label, &CONFIG.replace("script_dirs: []\n", &dirs))
}

fn names(scripts: &Value) -> Vec<String> {
    let mut v: Vec<String> = scripts
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {scripts}"))
        .iter()
        .map(|s| s["name"].as_str().expect("name").to_string())
        .collect();
    v.sort();
    v
}

fn entry<'a>(scripts: &'a Value, name: &str) -> &'a Value {
    let found = scripts.as_array().unwrap().iter().find(|s| s["name"] == name);
    found.unwrap_or_else(|| panic!("no script {name:?} in {scripts}"))
}

#[test]
fn the_index_holds_the_fixture_scripts_with_their_headers() {
    let dir = dir_with_scripts("scripts-index");
    let srv = Server::start(&dir);

    let (code, body) = srv.get("/api/scripts/index");
    assert_eq!(code, 200, "{body}");
    let scripts = &body["scripts"];
    // Hidden folders, dependencies, build output and virtual environments
    // are skipped, and so are files that are neither scripts by ending nor
    // by a #! line.
    let want =
        ["Summarize", "check-links", "cleanup", "crlf", "deploy-site", "latin1", "nested", "plain"];
    assert_eq!(names(scripts), want);

    let root = fixtures();
    for s in scripts.as_array().unwrap() {
        let keys: Vec<&String> = s.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["path", "name", "description", "inputs", "outputs", "tags", "timeout", "task_class"],
            "{s}"
        );
        let path = std::path::Path::new(s["path"].as_str().unwrap());
        assert!(path.is_absolute() && path.starts_with(&root) && path.is_file(), "{s}");
    }
    assert_eq!(
        entry(scripts, "deploy-site"),
        &json!({
            "path": root.join("deploy.sh").display().to_string(),
            "name": "deploy-site",
            "description": "Build the site and copy it to the staging host",
            "inputs": "SITE_DIR, TARGET",
            "outputs": "the staging URL on stdout",
            "tags": ["deploy", "Web", "staging"],
            "timeout": 600,
            "task_class": "LLM_HEAVY",
        })
    );
    // A byte order mark and CRLF line ends are tolerated.
    let crlf = entry(scripts, "crlf");
    assert_eq!(
        (&crlf["description"], &crlf["tags"], &crlf["timeout"]),
        (&json!("Written on Windows"), &json!(["windows", "crlf"]), &json!(20))
    );
    // Header keys in any case; a timeout that is not a whole number is null.
    let sum = entry(scripts, "Summarize");
    assert_eq!(
        (&sum["description"], &sum["tags"], &sum["timeout"]),
        (&json!("Summarize a text file with an LLM"), &json!(["llm", "text"]), &Value::Null)
    );
    let cleanup = entry(scripts, "cleanup");
    assert_eq!(
        (&cleanup["description"], &cleanup["timeout"]),
        (&json!("Remove temporary files"), &Value::Null)
    );
    let check = entry(scripts, "check-links");
    assert_eq!((&check["tags"], &check["timeout"]), (&json!(["web", "links"]), &json!(45)));
    // No header: every field but the name and the path is null or empty.
    let plain = entry(scripts, "plain");
    assert_eq!(
        (&plain["description"], &plain["tags"], &plain["timeout"]),
        (&Value::Null, &json!([]), &Value::Null)
    );
    assert_eq!(entry(scripts, "nested")["description"], "found two folders down");
    let latin1 = entry(scripts, "latin1")["description"].as_str().unwrap().to_string();
    assert!(latin1.starts_with("caf") && latin1.ends_with(" report"), "{latin1:?}");

    // The CLI shows the same index.
    let listed = dir.sparkq(&["scripts", "list", "--json"]).json();
    assert_eq!(&listed, scripts);
    let table = dir.sparkq(&["scripts", "list"]);
    assert!(want.iter().all(|n| table.ok().contains(n)), "{table}");
}

#[test]
fn scripts_search_is_case_insensitive_over_name_description_and_tags() {
    let dir = dir_with_scripts("scripts-search");

    for (query, want) in [
        ("WEB", &["check-links", "deploy-site"][..]),
        ("summarize", &["Summarize"]),
        ("llm", &["Summarize"]),
        ("Windows", &["crlf"]),
        ("TEMPORARY", &["cleanup"]),
        ("Deploy-Site", &["deploy-site"]),
        ("no-such-script", &[]),
    ] {
        let hits = dir.sparkq(&["scripts", "search", query, "--json"]).json();
        assert_eq!(names(&hits), want, "search {query:?}");
    }
    let out = dir.sparkq(&["scripts", "search", "links"]);
    assert!(out.ok().contains("check-links"), "{out}");
}

#[test]
fn reload_rebuilds_the_script_index() {
    let dir = dir_with_scripts("scripts-reload");
    let srv = Server::start(&dir);
    assert!(!names(&srv.get("/api/scripts/index").1["scripts"]).contains(&"fresh".to_string()));

    dir.write(
        "own/fresh.sh",
        "#!/bin/sh\n# description: added while running\n# tags: new\necho hi\n",
    );
    let out = dir.sparkq(&["reload"]);
    assert!(out.ok().contains("9 scripts"), "{out}");
    let scripts = srv.get("/api/scripts/index").1["scripts"].clone();
    assert_eq!(entry(&scripts, "fresh")["description"], "added while running");
}
