//! What each command does once parsed. Commands work on the database
//! directly, so the server need not run; `stop`, `reload` and the server
//! part of `status` talk to the running server over loopback HTTP.
//!
//! Output for people goes to stdout; with `--json`, the same data as the
//! API would return inside its wrapper.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cli::{Command, Invocation, SetupArgs};
use crate::clock;
use crate::config::{self, Config};
use crate::enqueue::{enqueue, Enqueue};
use crate::error::{Error, Result};
use crate::http::api::with_stream;
use crate::lock;
use crate::maintenance;
use crate::scripts::ScriptIndex;
use crate::server;
use crate::store::{Outcome, Store, TaskFilter};
use crate::task::{self, Status, Task};

/// How a command that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// Exit 0.
    Ok,
    /// Exit 1: nothing to peek or claim.
    Nothing,
}

/// Runs a parsed invocation.
pub fn execute(inv: Invocation) -> Result<Done> {
    let json = inv.json;
    let explicit = inv.config.as_deref();
    match inv.command {
        Command::Help(text) => {
            print!("{text}");
            Ok(Done::Ok)
        }
        Command::Version => {
            println!("sparkq {}", env!("CARGO_PKG_VERSION"));
            Ok(Done::Ok)
        }
        Command::Setup(args) => setup(explicit, args),
        Command::Run { host, port } => {
            let (mut config, notes) = config_for_run(explicit)?;
            if let Some(h) = host {
                config.server.host = h;
            }
            if let Some(p) = port {
                config.server.port = p;
            }
            server::run(config, &notes)?;
            Ok(Done::Ok)
        }
        Command::Stop => stop(&load_config(explicit)?),
        Command::Status => status(explicit, json),
        Command::Reload => reload(&load_config(explicit)?),
        command => {
            let config = load_config(explicit)?;
            let store = open_store(&config)?;
            data_command(&config, &store, command, json)
        }
    }
}

/// The commands that read or change the queue.
fn data_command(config: &Config, store: &Store, command: Command, json: bool) -> Result<Done> {
    let now = clock::now();
    match command {
        Command::SessionCreate { name, description } => {
            let s = store.create_session(&name, description.as_deref(), now)?;
            emit(json, &s.to_json(), || println!("created session {} ({})", s.name, s.id));
        }
        Command::SessionList { status } => {
            let list = store.list_sessions(active_choice(status.as_deref())?, 1000, 0)?;
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|s| {
                    vec![
                        s.name.clone(),
                        s.id.clone(),
                        if s.active { "active" } else { "ended" }.into(),
                        s.stream_count.to_string(),
                        clock::format(s.created_at),
                        s.description.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            let j = Value::Array(list.iter().map(|s| s.to_json()).collect());
            emit(json, &j, || {
                table(
                    &["NAME", "ID", "STATUS", "STREAMS", "CREATED", "DESCRIPTION"],
                    &rows,
                    "no sessions",
                )
            });
        }
        Command::SessionEnd { name } => {
            let s = store.end_session(&name, now)?;
            emit(json, &s.to_json(), || println!("ended session {} and its streams", s.name));
        }
        Command::StreamCreate { name, session, instructions } => {
            let s = store.create_stream(&session, &name, instructions.as_deref(), now)?;
            emit(json, &s.to_json(), || {
                println!("created stream {} ({}) in session {}", s.name, s.id, s.session_name)
            });
        }
        Command::StreamList { session, status } => {
            let list = store.list_streams(
                session.as_deref(),
                active_choice(status.as_deref())?,
                1000,
                0,
            )?;
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|s| {
                    vec![
                        s.name.clone(),
                        s.session_name.clone(),
                        if s.active { "active" } else { "ended" }.into(),
                        s.counts[0].to_string(),
                        s.counts[1].to_string(),
                        s.counts[2].to_string(),
                        s.counts[3].to_string(),
                        preview(s.instructions.as_deref().unwrap_or(""), 40),
                    ]
                })
                .collect();
            let j = Value::Array(list.iter().map(|s| s.to_json()).collect());
            emit(json, &j, || {
                table(
                    &[
                        "NAME",
                        "SESSION",
                        "STATUS",
                        "QUEUED",
                        "RUNNING",
                        "SUCCEEDED",
                        "FAILED",
                        "INSTRUCTIONS",
                    ],
                    &rows,
                    "no streams",
                )
            });
        }
        Command::StreamEnd { name } => {
            let s = store.end_stream(&name, now)?;
            emit(json, &s.to_json(), || println!("ended stream {}", s.name));
        }
        Command::Enqueue {
            stream,
            tool,
            task_class,
            timeout,
            payload,
            prompt,
            prompt_file,
            metadata,
        } => {
            let base = payload.as_deref().map(|p| json_flag("--payload", p)).transpose()?;
            let metadata = metadata.as_deref().map(|m| json_flag("--metadata", m)).transpose()?;
            let (prompt, prompt_path) = match prompt_file {
                Some(f) => {
                    let text = std::fs::read(&f).map_err(|e| {
                        Error::Invalid(format!(
                            "cannot read --prompt-file \"{}\": {e}",
                            f.display()
                        ))
                    })?;
                    let abs = std::fs::canonicalize(&f).unwrap_or(f);
                    (
                        Some(String::from_utf8_lossy(&text).into_owned()),
                        Some(abs.display().to_string()),
                    )
                }
                None => (prompt, None),
            };
            let e = Enqueue {
                stream,
                tool,
                task_class,
                timeout,
                payload: base,
                prompt,
                prompt_path,
                metadata,
            };
            let t = enqueue(config, store, e, now)?;
            emit(json, &t.to_json(), || println!("{}", t.id));
        }
        Command::Peek { stream } => {
            let stream = stream_or_list(store, stream, "peek")?;
            return match store.peek(&stream)? {
                (Some(t), s) => {
                    println!("{}", with_stream(&t, s.brief_json()));
                    Ok(Done::Ok)
                }
                (None, s) => {
                    eprintln!("sparkq: no queued task in stream \"{}\"", s.name);
                    Ok(Done::Nothing)
                }
            };
        }
        Command::Claim { stream, worker_id, wait } => {
            let stream = stream_or_list(store, stream, "claim")?;
            let worker_id = worker_id.filter(|w| !w.is_empty());
            return claim(store, &stream, worker_id.as_deref(), wait);
        }
        Command::Complete { task_id, summary, result, result_file, stdout, stderr } => {
            if summary.trim().is_empty() {
                return Err(Error::Invalid("--summary must not be empty".into()));
            }
            let result = match (result, result_file) {
                (Some(r), _) => Some(r),
                (None, Some(f)) => Some(read_text(&f, "--result-file")?),
                (None, None) => None,
            };
            let result = result.map(|r| serde_json::from_str(&r).unwrap_or(Value::String(r)));
            let out = Outcome::success(summary, result, stdout, stderr, config.limits.output_bytes);
            let t = store.complete(&task_id, &out, now)?;
            emit(json, &t.to_json(), || println!("completed {}", t.id));
        }
        Command::Fail { task_id, error, error_type, stdout, stderr } => {
            if error.trim().is_empty() {
                return Err(Error::Invalid("--error must not be empty".into()));
            }
            let error_type = error_type.filter(|t| !t.is_empty());
            let out =
                Outcome::failure(error, error_type, stdout, stderr, config.limits.output_bytes);
            let t = store.fail(&task_id, &out, now)?;
            emit(json, &t.to_json(), || println!("failed {}", t.id));
        }
        Command::Tasks { status, stream, stale, limit } => {
            let filter = TaskFilter {
                stream,
                status: status.as_deref().map(Status::parse).transpose()?,
                stale_at: stale.then_some(now),
                limit: limit.unwrap_or(100),
                offset: 0,
            };
            let list = store.list_tasks(&filter)?;
            let names = stream_names(store)?;
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|t| {
                    let mut st = t.status.as_str().to_string();
                    if t.is_stale(now) {
                        st.push_str(" (stale)");
                    }
                    vec![
                        t.id.clone(),
                        names
                            .iter()
                            .find(|(id, _)| *id == t.stream_id)
                            .map_or(t.stream_id.clone(), |(_, n)| n.clone()),
                        t.tool_name.clone(),
                        st,
                        clock::format(t.created_at),
                        duration(t, now),
                        preview(
                            t.result_summary.as_deref().or(t.error.as_deref()).unwrap_or(""),
                            40,
                        ),
                    ]
                })
                .collect();
            let j = Value::Array(list.iter().map(Task::to_json).collect());
            emit(json, &j, || {
                table(
                    &["ID", "STREAM", "TOOL", "STATUS", "CREATED", "DURATION", "OUTCOME"],
                    &rows,
                    "no tasks",
                )
            });
        }
        Command::Task { id } => {
            let t = store.task(&id)?;
            let stream = store.stream(&t.stream_id).map(|s| s.name).unwrap_or_default();
            emit(json, &t.to_json(), || print_task(&t, &stream, now));
        }
        Command::Requeue { id } => {
            let t = store.requeue(&id, now)?;
            emit(json, &t.to_json(), || println!("{}", t.id));
        }
        Command::Purge { older_than } => {
            let secs = older_than.unwrap_or(config.purge_older_than_days.saturating_mul(86_400));
            let cutoff = now - (secs.min(i64::MAX as u64 / 2000) as i64) * 1000;
            let n = maintenance::purge(store, cutoff, None)?;
            emit(json, &json!({ "purged": n }), || println!("purged {n} tasks"));
        }
        Command::ScriptsList | Command::ScriptsSearch { .. } => {
            let index = ScriptIndex::build(&config.script_dirs);
            let hits = match &command {
                Command::ScriptsSearch { query } => index.search(query),
                _ => index.scripts().iter().collect(),
            };
            let rows: Vec<Vec<String>> = hits
                .iter()
                .map(|s| {
                    vec![
                        s.name.clone(),
                        s.path.display().to_string(),
                        s.tags.join(","),
                        preview(s.description.as_deref().unwrap_or(""), 50),
                    ]
                })
                .collect();
            let j = Value::Array(hits.iter().map(|s| s.to_json()).collect());
            emit(json, &j, || {
                table(&["NAME", "PATH", "TAGS", "DESCRIPTION"], &rows, "no scripts found")
            });
        }
        other => {
            return Err(Error::Internal(format!("command {other:?} reached the data commands")))
        }
    }
    Ok(Done::Ok)
}

/// Claims the next task; with `wait`, polls until one arrives or time is
/// up. The poll reads first and writes only when a task is there, so idle
/// waiting workers do not take the write lock.
fn claim(store: &Store, stream: &str, worker: Option<&str>, wait: Option<f64>) -> Result<Done> {
    let deadline = wait.map(|w| Instant::now() + Duration::from_secs_f64(w.min(1e9)));
    let mut pause = Duration::from_millis(20);
    loop {
        let (t, s) = store.claim_next(stream, worker, clock::now())?;
        if let Some(t) = t {
            println!("{}", with_stream(&t, s.brief_json()));
            return Ok(Done::Ok);
        }
        loop {
            let left =
                deadline.map_or(Duration::ZERO, |d| d.saturating_duration_since(Instant::now()));
            if left.is_zero() {
                eprintln!("sparkq: no queued task in stream \"{}\"", s.name);
                return Ok(Done::Nothing);
            }
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(Duration::from_millis(250));
            if store.peek(stream)?.0.is_some() {
                break;
            }
        }
    }
}

/// The stream to peek or claim; without one, an error that lists the
/// streams that have queued tasks.
fn stream_or_list(store: &Store, stream: Option<String>, verb: &str) -> Result<String> {
    if let Some(s) = stream {
        return Ok(s);
    }
    let busy: Vec<String> = store
        .list_streams(None, None, 1000, 0)?
        .into_iter()
        .filter(|s| s.counts[0] > 0)
        .map(|s| format!("  {} ({} queued)", s.name, s.counts[0]))
        .collect();
    let list = if busy.is_empty() {
        "no stream has queued tasks".to_string()
    } else {
        format!("streams with queued tasks:\n{}", busy.join("\n"))
    };
    Err(Error::Invalid(format!("missing --stream: say which stream to {verb}\n\n{list}")))
}

fn stream_names(store: &Store) -> Result<Vec<(String, String)>> {
    Ok(store.list_streams(None, None, 1000, 0)?.into_iter().map(|s| (s.id, s.name)).collect())
}

// ---- setup, config, server control ----------------------------------------

/// Writes `sparkq.yml` (unless one exists and no `--force`), creates the
/// database and the project. Running it again keeps every task.
fn setup(explicit: Option<&Path>, mut a: SetupArgs) -> Result<Done> {
    let cwd = std::env::current_dir()?;
    let path = explicit.map(Path::to_path_buf).unwrap_or_else(|| cwd.join("sparkq.yml"));
    let dir = path.parent().map(Path::to_path_buf).unwrap_or(cwd);
    let keep = path.exists() && !a.force;
    let flags = a.name.is_some()
        || a.repo_path.is_some()
        || a.prd_path.is_some()
        || a.port.is_some()
        || !a.script_dirs.is_empty();
    if !keep {
        if !a.yes && std::io::stdin().is_terminal() {
            ask(&dir, &mut a)?;
        }
        let name = a.name.clone().unwrap_or_else(|| dir_name(&dir));
        let text = config::default_yaml(
            &name,
            a.port.unwrap_or(8420),
            &a.script_dirs,
            a.repo_path.as_deref(),
            a.prd_path.as_deref(),
        );
        write_new_file(&path, &text)?;
        println!("wrote {}", path.display());
    }
    let config = Config::load(&path)?;
    if keep {
        println!("kept {} (use --force to rewrite it)", path.display());
        if flags {
            println!("note: the flags given were not applied; --force rewrites it from them");
        }
    }
    let store = open_store(&config)?;
    let p = store.project()?.ok_or_else(|| Error::Internal("the project row is missing".into()))?;
    println!("database: {}", config.database.path.display());
    println!("project: {} ({}) at {}", p.name, p.id, p.repo_path);
    println!("next: sparkq run, then sparkq session create NAME");
    Ok(Done::Ok)
}

fn ask(dir: &Path, a: &mut SetupArgs) -> Result<()> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut prompt = |q: &str, default: &str| -> Result<String> {
        print!("{q} [{default}]: ");
        std::io::stdout().flush()?;
        let line = lines.next().transpose()?.unwrap_or_default();
        let line = line.trim();
        Ok(if line.is_empty() { default.to_string() } else { line.to_string() })
    };
    let name = prompt("project name", &a.name.clone().unwrap_or_else(|| dir_name(dir)))?;
    let repo = prompt("repository path", a.repo_path.as_deref().unwrap_or("."))?;
    let prd = prompt("PRD path (blank for none)", a.prd_path.as_deref().unwrap_or(""))?;
    let default_port = a.port.unwrap_or(8420).to_string();
    let port = loop {
        let answer = prompt("port (0 picks a free one)", &default_port)?;
        match answer.parse::<u16>() {
            Ok(p) => break p,
            Err(_) => println!("invalid port \"{answer}\": use 0 to 65535"),
        }
    };
    let dirs = prompt(
        "script folders, comma-separated",
        &if a.script_dirs.is_empty() { "scripts".into() } else { a.script_dirs.join(",") },
    )?;
    a.name = Some(name);
    a.repo_path = Some(repo);
    a.prd_path = Some(prd).filter(|p| !p.is_empty());
    a.port = Some(port);
    a.script_dirs =
        dirs.split(',').map(|d| d.trim().to_string()).filter(|d| !d.is_empty()).collect();
    Ok(())
}

fn dir_name(dir: &Path) -> String {
    dir.file_name().map_or("project".into(), |n| n.to_string_lossy().into_owned())
}

/// Creates `path` with `text`, written to a temporary file first and moved
/// into place so that a crash never leaves half a config.
fn write_new_file(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension(format!("yml.tmp{}", std::process::id()));
    std::fs::write(&tmp, text)
        .map_err(|e| Error::Internal(format!("cannot write {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| Error::Internal(format!("cannot write {}: {e}", path.display())))
}

/// The config for commands other than `setup` and `run`: a config must
/// exist, so that a command run in the wrong folder does not quietly start
/// a new, empty queue there.
fn load_config(explicit: Option<&Path>) -> Result<Config> {
    let cwd = std::env::current_dir()?;
    match config::discover(explicit, &cwd) {
        Some(path) => Config::load(&path),
        None => Err(Error::Config(format!(
            "no sparkq.yml in {} or its parents\n\nrun 'sparkq setup' or 'sparkq run' to create one, \
             or pass --config PATH",
            cwd.display()
        ))),
    }
}

/// The config for `run`: the one found, or a new default one written in
/// the current folder (so a fresh clone runs with one command).
fn config_for_run(explicit: Option<&Path>) -> Result<(Config, Vec<String>)> {
    let cwd = std::env::current_dir()?;
    if let Some(path) = config::discover(explicit, &cwd) {
        return Ok((Config::load(&path)?, Vec::new()));
    }
    let path = cwd.join("sparkq.yml");
    let text = config::default_yaml(&dir_name(&cwd), 8420, &[], None, None);
    write_new_file(&path, &text)?;
    let config = Config::load(&path)?;
    let note = format!(
        "created {} with defaults; the database will be {}",
        path.display(),
        config.database.path.display()
    );
    Ok((config, vec![note]))
}

/// Opens the store and makes the project row follow the config.
pub fn open_store(config: &Config) -> Result<Store> {
    let store = Store::open(&config.database.path, config.database.synchronous)?;
    let p = &config.project;
    store.ensure_project(
        &p.name,
        &p.repo_path.to_string_lossy(),
        p.prd_path.as_ref().map(|p| p.to_string_lossy()).as_deref(),
        clock::now(),
    )?;
    Ok(store)
}

fn stop(config: &Config) -> Result<Done> {
    let lock_path = config.lock_path();
    let Some(info) = lock::running(&lock_path) else {
        println!("no server is running");
        return Ok(Done::Ok);
    };
    let (code, body) =
        http_request(&info.url, "POST", "/api/shutdown", config.server.token.as_deref())?;
    if code != 200 {
        return Err(Error::Unavailable(format!(
            "the server at {} refused to stop ({code}): {body}",
            info.url
        )));
    }
    if !lock::wait_released(&lock_path, Duration::from_secs(30)) {
        return Err(Error::Unavailable(format!(
            "the server (pid {}) did not exit within 30 s",
            info.pid
        )));
    }
    println!("stopped the server at {} (pid {})", info.url, info.pid);
    Ok(Done::Ok)
}

fn reload(config: &Config) -> Result<Done> {
    let Some(info) = lock::running(&config.lock_path()) else {
        return Err(Error::Unavailable("no server is running: nothing to reload".into()));
    };
    let (code, body) =
        http_request(&info.url, "POST", "/api/reload", config.server.token.as_deref())?;
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if code != 200 {
        let msg = v["error"].as_str().map(String::from).unwrap_or(body);
        return Err(Error::Config(format!("reload refused: {msg}")));
    }
    println!(
        "reloaded {}: {} tools, {} scripts",
        v["config"].as_str().unwrap_or("?"),
        v["tools"],
        v["scripts"]
    );
    let later: Vec<&str> =
        v["restart_needed"].as_array().into_iter().flatten().filter_map(|k| k.as_str()).collect();
    if !later.is_empty() {
        println!(
            "note: {} changed in the file and take effect only when the server restarts; \
             until then the server keeps the old values",
            later.join(", ")
        );
    }
    Ok(Done::Ok)
}

/// Prints whether a server runs and the task counts. Exits 0 either way.
fn status(explicit: Option<&Path>, json: bool) -> Result<Done> {
    let named =
        explicit.is_some() || std::env::var_os(config::ENV_CONFIG).is_some_and(|v| !v.is_empty());
    let config = match load_config(explicit) {
        Ok(c) => c,
        // A config that was named, or found but unusable, is an error; only
        // "no config here at all" is a plain "not running".
        Err(e) if named || !e.message().starts_with("no sparkq.yml") => return Err(e),
        Err(e) => {
            emit(json, &json!({ "server": { "running": false }, "error": e.message() }), || {
                println!("server: not running");
                println!("{}", e.message());
            });
            return Ok(Done::Ok);
        }
    };
    let server = lock::running(&config.lock_path()).filter(|i| {
        http_request(&i.url, "GET", "/health", None)
            .is_ok_and(|(code, body)| code == 200 && body.contains("\"status\":\"ok\""))
    });
    let stats = open_store(&config)?.stats()?;
    let server_json = match &server {
        Some(i) => json!({ "running": true, "pid": i.pid, "url": i.url }),
        None => json!({ "running": false }),
    };
    emit(
        json,
        &json!({ "server": server_json, "stats": stats.to_json(), "database": config.database.path }),
        || {
            match &server {
                Some(i) => println!("server: running (pid {}, {})", i.pid, i.url),
                None => println!("server: not running"),
            }
            println!("database: {}", config.database.path.display());
            println!("sessions: {}, streams: {}", stats.sessions, stats.streams);
            println!(
                "tasks: {} queued, {} running, {} succeeded, {} failed",
                stats.tasks[0], stats.tasks[1], stats.tasks[2], stats.tasks[3]
            );
        },
    );
    Ok(Done::Ok)
}

/// A minimal HTTP/1.1 request to the local server; returns status and body.
fn http_request(url: &str, method: &str, path: &str, token: Option<&str>) -> Result<(u16, String)> {
    let hostport = url.strip_prefix("http://").unwrap_or(url).trim_end_matches('/');
    let fail =
        |e: std::io::Error| Error::Unavailable(format!("cannot reach the server at {url}: {e}"));
    let mut s = TcpStream::connect(hostport).map_err(fail)?;
    s.set_read_timeout(Some(Duration::from_secs(10))).map_err(fail)?;
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    s.write_all(req.as_bytes()).map_err(fail)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(fail)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((code, body.to_string()))
}

// ---- output --------------------------------------------------------------

/// Prints `value` as JSON, or runs `human` to print it for people.
fn emit(json: bool, value: &Value, human: impl FnOnce()) {
    if json {
        println!("{value}");
    } else {
        human();
    }
}

/// Prints rows as aligned columns, or `empty` when there are none.
fn table(headers: &[&str], rows: &[Vec<String>], empty: &str) {
    if rows.is_empty() {
        println!("{empty}");
        return;
    }
    let rows: Vec<Vec<String>> =
        rows.iter().map(|r| r.iter().map(|c| printable(c, false)).collect()).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(headers.to_vec());
    for r in &rows {
        line(r.iter().map(|c| c.as_str()).collect());
    }
}

/// `s` with control characters shown as escapes (`\x1b`), so that text from
/// a task or a worker cannot move the cursor, retitle the terminal or break
/// a table. With `lines`, newlines and tabs are kept.
fn printable(s: &str, lines: bool) -> String {
    let keep = |c: char| lines && (c == '\n' || c == '\t');
    if !s.chars().any(|c| c.is_control() && !keep(c)) {
        return s.to_string();
    }
    s.chars()
        .map(|c| match c {
            c if keep(c) || !c.is_control() => c.to_string(),
            '\n' => "\\n".into(),
            '\r' => "\\r".into(),
            '\t' => "\\t".into(),
            c => format!("\\x{:02x}", c as u32),
        })
        .collect()
}

/// The first line of `s`, cut to `n` characters.
fn preview(s: &str, n: usize) -> String {
    let first = s.lines().next().unwrap_or("");
    if first.chars().count() > n || s.lines().nth(1).is_some() {
        let cut: String = first.chars().take(n.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        first.to_string()
    }
}

fn duration(t: &Task, now: clock::Millis) -> String {
    match (t.claimed_at, t.finished_at) {
        (Some(c), Some(f)) => format!("{:.1}s", (f - c) as f64 / 1000.0),
        (Some(c), None) => format!("{:.1}s…", (now - c) as f64 / 1000.0),
        _ => String::new(),
    }
}

fn print_task(t: &Task, stream: &str, now: clock::Millis) {
    let j = t.to_json();
    let field =
        |name: &str, value: &str| println!("{:<13}{}", format!("{name}:"), printable(value, false));
    let mut status = t.status.as_str().to_string();
    if t.is_stale(now) {
        status.push_str(" (stale: running past its timeout)");
    }
    field("id", &t.id);
    field("stream", &format!("{stream} ({})", t.stream_id));
    field("tool", &format!("{} ({}, timeout {} s)", t.tool_name, t.task_class, t.timeout));
    field("status", &status);
    field("attempts", &t.attempts.to_string());
    if let Some(w) = &t.worker_id {
        field("worker", w);
    }
    for key in ["created_at", "claimed_at", "finished_at"] {
        if let Some(v) = j[key].as_str() {
            field(key.trim_end_matches("_at"), v);
        }
    }
    println!(
        "payload:     {}",
        serde_json::to_string_pretty(&j["payload"])
            .unwrap_or_default()
            .replace('\n', "\n             ")
    );
    if let Some(s) = &t.result_summary {
        field("summary", s);
    }
    if !j["result"].is_null() {
        field("result", &j["result"].to_string());
    }
    if let Some(e) = &t.error {
        let kind = t.error_type.as_deref().map(|t| format!("[{t}] ")).unwrap_or_default();
        field("error", &format!("{kind}{e}"));
    }
    for (name, text) in [("stdout", &t.stdout), ("stderr", &t.stderr)] {
        if let Some(text) = text.as_deref().filter(|s| !s.is_empty()) {
            println!("{name}:\n{}", printable(text.trim_end(), true));
        }
    }
}

// ---- input ---------------------------------------------------------------

fn json_flag(flag: &str, text: &str) -> Result<Value> {
    let v: Value = serde_json::from_str(text).map_err(|e| {
        Error::Invalid(format!("invalid JSON for {flag}: {e}: \"{}\"", preview(text, 60)))
    })?;
    if !v.is_object() {
        return Err(Error::Invalid(format!(
            "{flag} must be a JSON object, not {}",
            task::type_name(&v)
        )));
    }
    Ok(v)
}

fn read_text(path: &PathBuf, flag: &str) -> Result<String> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Invalid(format!("cannot read {flag} \"{}\": {e}", path.display())))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn active_choice(status: Option<&str>) -> Result<Option<bool>> {
    match status {
        None => Ok(None),
        Some("active") => Ok(Some(true)),
        Some("ended") => Ok(Some(false)),
        Some(s) => Err(Error::Invalid(format!("invalid status \"{s}\" (valid: active, ended)"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_terminal_controls() {
        assert_eq!(
            printable("ok \x1b[2J\x07 done\r\nnext", false),
            "ok \\x1b[2J\\x07 done\\r\\nnext"
        );
        assert_eq!(printable("a\n\tb\x1b", true), "a\n\tb\\x1b");
        assert_eq!(printable("plain é", false), "plain é");
    }
}
