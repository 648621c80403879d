//! One function per route: read the query or the JSON body, call the store,
//! build the JSON. The store's lock is held only inside the store call; JSON
//! is encoded after it is let go.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::router::Route;
use super::{App, Reply};
use crate::clock;
use crate::config::Config;
use crate::enqueue::{enqueue, Enqueue};
use crate::error::{Error, Result};
use crate::scripts::ScriptIndex;
use crate::store::{Outcome, TaskFilter};
use crate::task::{self, Status, Task};
use crate::ui;

/// Runs the handler of `route`; assets and errors of routing are handled
/// before this.
pub fn dispatch(
    app: &App,
    config: &Config,
    route: Route,
    query: &[(String, String)],
    body: Vec<u8>,
) -> Result<Reply> {
    let now = clock::now();
    let store = &app.store;
    let ok = |v: Value| Ok(Reply::json(200, &v));
    let created = |v: Value| Ok(Reply::json(201, &v));
    match route {
        Route::Health => ok(json!({
            "status": "ok",
            "timestamp": clock::format(now),
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": app.started.elapsed().as_secs(),
        })),
        Route::Stats => ok(store.stats()?.to_json()),

        Route::ListSessions => {
            let active = active_param(query)?;
            let list = store.list_sessions(active, limit(query)?, offset(query)?)?;
            ok(json!({ "sessions": list.iter().map(|s| s.to_json()).collect::<Vec<_>>() }))
        }
        Route::CreateSession => {
            let b = object(&body, &["name", "description"])?;
            let name = required(&b, "name")?;
            let s = store.create_session(&name, text(&b, "description")?.as_deref(), now)?;
            created(json!({ "session": s.to_json() }))
        }
        Route::GetSession(id) => ok(json!({ "session": store.session(&id)?.to_json() })),
        Route::UpdateSession(id) => {
            let b = object(&body, &["name", "description"])?;
            let s = store.update_session(
                &id,
                text(&b, "name")?.as_deref(),
                nullable(&b, "description")?.as_ref().map(|d| d.as_deref()),
                now,
            )?;
            ok(json!({ "session": s.to_json() }))
        }
        Route::EndSession(id) => ok(json!({ "session": store.end_session(&id, now)?.to_json() })),

        Route::ListStreams => {
            let session = param(query, "session_id").filter(|s| !s.is_empty());
            let list =
                store.list_streams(session, active_param(query)?, limit(query)?, offset(query)?)?;
            ok(json!({ "streams": list.iter().map(|s| s.to_json()).collect::<Vec<_>>() }))
        }
        Route::CreateStream => {
            let b = object(&body, &["session_id", "name", "instructions"])?;
            let session = required(&b, "session_id")?;
            let name = required(&b, "name")?;
            let s =
                store.create_stream(&session, &name, text(&b, "instructions")?.as_deref(), now)?;
            created(json!({ "stream": s.to_json() }))
        }
        Route::GetStream(id) => ok(json!({ "stream": store.stream(&id)?.to_json() })),
        Route::UpdateStream(id) => {
            let b = object(&body, &["name", "instructions"])?;
            let s = store.update_stream(
                &id,
                text(&b, "name")?.as_deref(),
                nullable(&b, "instructions")?.as_ref().map(|d| d.as_deref()),
                now,
            )?;
            ok(json!({ "stream": s.to_json() }))
        }
        Route::EndStream(id) => ok(json!({ "stream": store.end_stream(&id, now)?.to_json() })),
        Route::Peek(id) => match store.peek(&id)? {
            (Some(t), s) => ok(json!({ "task": with_stream(&t, s.brief_json()) })),
            (None, _) => Ok(Reply::empty(204)),
        },
        Route::ClaimNext(id) => {
            let b = object(&body, &["worker_id"])?;
            let worker = text(&b, "worker_id")?;
            match store.claim_next(&id, worker.as_deref(), now)? {
                (Some(t), s) => ok(json!({ "task": with_stream(&t, s.brief_json()) })),
                (None, _) => Ok(Reply::empty(204)),
            }
        }

        Route::ListTasks => {
            let status =
                param(query, "status").filter(|s| !s.is_empty()).map(Status::parse).transpose()?;
            let stale = match param(query, "stale") {
                None | Some("") | Some("false") | Some("0") => None,
                Some("true") | Some("1") => Some(now),
                Some(v) => {
                    return Err(Error::Invalid(format!(
                        "invalid value for stale: \"{v}\" (use true or false)"
                    )))
                }
            };
            let filter = TaskFilter {
                stream: param(query, "stream_id").filter(|s| !s.is_empty()).map(String::from),
                status,
                stale_at: stale,
                limit: limit(query)?,
                offset: offset(query)?,
            };
            let list = store.list_tasks(&filter)?;
            ok(json!({ "tasks": list.iter().map(Task::to_json).collect::<Vec<_>>() }))
        }
        Route::CreateTask => {
            let b = object(
                &body,
                &[
                    "stream_id",
                    "tool_name",
                    "task_class",
                    "timeout",
                    "payload",
                    "prompt",
                    "prompt_path",
                    "metadata",
                ],
            )?;
            let e = Enqueue {
                stream: required(&b, "stream_id")?,
                tool: required(&b, "tool_name")?,
                task_class: text(&b, "task_class")?,
                timeout: positive(&b, "timeout")?,
                payload: b.get("payload").filter(|v| !v.is_null()).cloned(),
                prompt: text(&b, "prompt")?,
                prompt_path: text(&b, "prompt_path")?,
                metadata: b.get("metadata").filter(|v| !v.is_null()).cloned(),
            };
            created(json!({ "task": enqueue(config, store, e, now)?.to_json() }))
        }
        Route::GetTask(id) => ok(json!({ "task": store.task(&id)?.to_json() })),
        Route::ClaimTask(id) => {
            let b = object(&body, &["worker_id"])?;
            let t = store.claim_task(&id, text(&b, "worker_id")?.as_deref(), now)?;
            let s = store.stream(&t.stream_id)?;
            ok(json!({ "task": with_stream(&t, s.brief_json()) }))
        }
        Route::Complete(id) => {
            let b = object(&body, &["result_summary", "result_data", "stdout", "stderr"])?;
            let out = Outcome::success(
                required(&b, "result_summary")?,
                b.get("result_data").filter(|v| !v.is_null()).cloned(),
                text(&b, "stdout")?,
                text(&b, "stderr")?,
                config.limits.output_bytes,
            );
            ok(json!({ "task": store.complete(&id, &out, now)?.to_json() }))
        }
        Route::Fail(id) => {
            let b = object(&body, &["error_message", "error_type", "stdout", "stderr"])?;
            let out = Outcome::failure(
                required(&b, "error_message")?,
                text(&b, "error_type")?.filter(|t| !t.is_empty()),
                text(&b, "stdout")?,
                text(&b, "stderr")?,
                config.limits.output_bytes,
            );
            ok(json!({ "task": store.fail(&id, &out, now)?.to_json() }))
        }
        Route::Requeue(id) => created(json!({ "task": store.requeue(&id, now)?.to_json() })),

        Route::Tools => {
            let tools: Vec<Value> = config
                .tools
                .iter()
                .map(|(name, t)| {
                    json!({
                        "name": name,
                        "description": t.description,
                        "task_class": t.task_class,
                        "timeout": config.tool_timeout(t),
                    })
                })
                .collect();
            ok(json!({ "tools": tools }))
        }
        Route::Scripts => {
            let index = app.scripts();
            match param(query, "q").filter(|q| !q.trim().is_empty()) {
                Some(q) => {
                    let hits: Vec<Value> = index.search(q).iter().map(|s| s.to_json()).collect();
                    ok(json!({ "scripts": hits }))
                }
                None => ok(index.to_json()),
            }
        }
        Route::Reload => ok(reload(app)?),
        Route::Shutdown => {
            if let Some(tx) = app.shutdown.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = tx.send(());
            }
            ok(json!({ "status": "stopping" }))
        }
        Route::Asset(_) | Route::WrongMethod(_) | Route::NotFound => {
            Err(Error::Internal("route reached the API dispatcher by mistake".into()))
        }
    }
}

/// Re-reads the config file and rebuilds the script index. An invalid
/// config is reported and the one in force stays.
pub fn reload(app: &App) -> Result<Value> {
    let old = app.config();
    let file = old
        .file
        .clone()
        .ok_or_else(|| Error::Invalid("the server has no config file to reload".into()))?;
    let new = Config::load(&file).map_err(|e| {
        crate::log::warn("reload_refused", &[("error", &e)]);
        Error::Invalid(format!("{e}; the config in force is unchanged"))
    })?;
    let mut new = new;
    let later = keep_restart_settings(&old, &mut new);
    let index = ScriptIndex::build(&new.script_dirs);
    let (tools, scripts) = (new.tools.len(), index.scripts().len());
    *app.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
    if !later.is_empty() {
        crate::log::warn("reload_needs_restart", &[("keys", &later.join(","))]);
    }
    *app.scripts.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(index);
    crate::log::info(
        "config_reloaded",
        &[("config", &file.display()), ("tools", &tools), ("scripts", &scripts)],
    );
    let config = file.display().to_string();
    Ok(json!({
        "status": "reloaded",
        "config": config,
        "tools": tools,
        "scripts": scripts,
        "restart_needed": later,
    }))
}

/// Keeps in `new` the settings a running server cannot change (its address,
/// its database, its threads and connection limits), and names those whose
/// value in the file differs: they take effect at the next start.
fn keep_restart_settings(old: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut later = Vec::new();
    if new.database.path != old.database.path {
        later.push("database.path");
    }
    if new.database.synchronous != old.database.synchronous {
        later.push("database.synchronous");
    }
    if new.server.threads != old.server.threads {
        later.push("server.threads");
    }
    if new.server.idle_timeout_seconds != old.server.idle_timeout_seconds
        || new.server.request_timeout_seconds != old.server.request_timeout_seconds
    {
        later.push("server timeouts");
    }
    new.database = old.database.clone();
    new.server.host = old.server.host.clone();
    new.server.port = old.server.port;
    new.server.threads = old.server.threads;
    new.server.idle_timeout_seconds = old.server.idle_timeout_seconds;
    new.server.request_timeout_seconds = old.server.request_timeout_seconds;
    later
}

/// Serves a dashboard file with its type and a validator.
pub fn asset(path: &str, if_none_match: Option<&str>) -> Reply {
    let Some(a) = ui::lookup(path) else {
        return Reply::fail(404, &format!("no dashboard file \"{path}\""));
    };
    let mut r = if if_none_match == Some(a.etag.as_str()) {
        Reply::empty(304)
    } else {
        Reply {
            status: 200,
            body: a.body.to_vec(),
            content_type: a.content_type,
            headers: Vec::new(),
        }
    };
    // Files change only with the binary: revalidate, and the ETag makes that
    // cheap.
    r.headers.push(("Cache-Control", "no-cache".into()));
    r.headers.push(("ETag", a.etag));
    r
}

/// A task's JSON with the `stream` field that `peek` and `claim` add.
pub fn with_stream(t: &Task, stream: Value) -> Value {
    let mut v = t.to_json();
    if let Value::Object(m) = &mut v {
        m.insert("stream".into(), stream);
    }
    v
}

// ---- reading input -------------------------------------------------------

fn param<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn limit(query: &[(String, String)]) -> Result<u32> {
    match param(query, "limit") {
        None | Some("") => Ok(100),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => Ok(n),
            _ => Err(Error::Invalid(format!(
                "invalid limit \"{v}\": use a whole number from 1 to 1000"
            ))),
        },
    }
}

fn offset(query: &[(String, String)]) -> Result<u64> {
    match param(query, "offset") {
        None | Some("") => Ok(0),
        Some(v) => v.parse::<u64>().ok().filter(|n| *n <= i64::MAX as u64).ok_or_else(|| {
            Error::Invalid(format!("invalid offset \"{v}\": use a whole number from 0"))
        }),
    }
}

fn active_param(query: &[(String, String)]) -> Result<Option<bool>> {
    match param(query, "status") {
        None | Some("") => Ok(None),
        Some("active") => Ok(Some(true)),
        Some("ended") => Ok(Some(false)),
        Some(v) => Err(Error::Invalid(format!("invalid status \"{v}\" (valid: active, ended)"))),
    }
}

/// Parses a body as a JSON object; an empty body is an empty object.
pub fn object(body: &[u8], allowed: &[&str]) -> Result<Map<String, Value>> {
    let m = any_object(body)?;
    if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(Error::Invalid(format!(
            "unknown field \"{k}\" (allowed: {})",
            allowed.join(", ")
        )));
    }
    Ok(m)
}

/// Parses a body as a JSON object; an empty body is an empty object.
fn any_object(body: &[u8]) -> Result<Map<String, Value>> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Map::new());
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        Error::Invalid(format!(
            "request body is not valid UTF-8 (bad byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(Error::Invalid(format!(
            "request body must be a JSON object, not {}",
            task::type_name(&other)
        ))),
        Err(e) => Err(Error::Invalid(format!("invalid JSON in request body: {e}"))),
    }
}

/// An optional string field; `null` counts as absent.
fn text(b: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match b.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(Error::Invalid(format!(
            "field \"{key}\" must be a string, not {}",
            task::type_name(v)
        ))),
    }
}

/// A string field that may be set to null: absent is `None`, null is
/// `Some(None)`.
fn nullable(b: &Map<String, Value>, key: &str) -> Result<Option<Option<String>>> {
    match b.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(_) => Ok(Some(text(b, key)?)),
    }
}

/// A string field that must be there and not blank.
fn required(b: &Map<String, Value>, key: &str) -> Result<String> {
    match text(b, key)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        Some(_) => Err(Error::Invalid(format!("field \"{key}\" must not be empty"))),
        None => Err(Error::Invalid(format!("missing required field \"{key}\""))),
    }
}

/// An optional positive whole number.
fn positive(b: &Map<String, Value>, key: &str) -> Result<Option<u64>> {
    match b.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if v > 0 && v <= 10_000_000 => Ok(Some(v)),
            _ => Err(Error::Invalid(format!(
                "field \"{key}\" must be a whole number of seconds from 1 to 10000000, not {n}"
            ))),
        },
        Some(v) => Err(Error::Invalid(format!(
            "field \"{key}\" must be a number, not {}",
            task::type_name(v)
        ))),
    }
}
