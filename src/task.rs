//! Tasks and the rules of their lifecycle: the statuses, which transitions
//! are allowed, and the JSON a task is shown as. Pure: no SQL, no HTTP.

use serde_json::{json, Map, Value};

use crate::clock::{self, Millis};
use crate::error::{Error, Result};

/// Where a task is in its life. Nothing else exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Queued,
    Running,
    Succeeded,
    Failed,
}

/// Something a worker or a user asks to do with a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Claim,
    Complete,
    Fail,
    Requeue,
}

impl Status {
    pub const ALL: [Status; 4] =
        [Status::Queued, Status::Running, Status::Succeeded, Status::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
        }
    }

    /// Parses a status name, listing the valid ones when it is not one.
    pub fn parse(s: &str) -> Result<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
            Error::Invalid(format!(
                "invalid task status \"{s}\" (valid: queued, running, succeeded, failed)"
            ))
        })
    }

    /// Returns true if and only if a task is finished in this status.
    pub fn is_finished(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed)
    }
}

impl Action {
    pub fn verb(self) -> &'static str {
        match self {
            Action::Claim => "claim",
            Action::Complete => "complete",
            Action::Fail => "fail",
            Action::Requeue => "requeue",
        }
    }

    fn past(self) -> &'static str {
        match self {
            Action::Claim => "claimed",
            Action::Complete => "completed",
            Action::Fail => "failed",
            Action::Requeue => "requeued",
        }
    }

    /// The statuses this action may start from (SPEC §2.3).
    pub fn allowed_from(self) -> &'static [Status] {
        match self {
            Action::Claim => &[Status::Queued],
            Action::Complete => &[Status::Running],
            Action::Fail => &[Status::Queued, Status::Running],
            Action::Requeue => &[Status::Succeeded, Status::Failed],
        }
    }
}

/// Checks that `action` may be taken on a task in `status`.
///
/// This is the one place the transition table is read; the store's SQL
/// repeats the same statuses in its `WHERE` clauses so that the check and the
/// change happen in one statement, and calls this to word the refusal.
pub fn check(id: &str, status: Status, action: Action) -> Result<()> {
    if action.allowed_from().contains(&status) {
        return Ok(());
    }
    let allowed: Vec<&str> = action.allowed_from().iter().map(|s| s.as_str()).collect();
    Err(Error::Conflict(format!(
        "cannot {} task {id}: it is {} (only a {} task can be {})",
        action.verb(),
        status.as_str(),
        allowed.join(" or "),
        action.past()
    )))
}

/// The error_type of a task failed by the timeout sweep.
pub const TIMEOUT_ERROR_TYPE: &str = "TIMEOUT";

/// The message of a task failed by the timeout sweep.
pub fn timeout_message(timeout: i64) -> String {
    format!("task exceeded 2x its timeout ({timeout} s) with no complete or fail reported")
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: String,
    pub stream_id: String,
    pub tool_name: String,
    pub task_class: String,
    /// The payload as JSON text (always an object).
    pub payload: String,
    pub status: Status,
    /// Seconds.
    pub timeout: i64,
    pub attempts: i64,
    pub worker_id: Option<String>,
    pub result_summary: Option<String>,
    /// The result as JSON text (a JSON string when it was plain text).
    pub result: Option<String>,
    pub error_type: Option<String>,
    pub error: Option<String>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub claimed_at: Option<Millis>,
    pub finished_at: Option<Millis>,
}

impl Task {
    /// Returns true if and only if the task is running past its timeout.
    pub fn is_stale(&self, now: Millis) -> bool {
        self.status == Status::Running
            && self.claimed_at.is_some_and(|c| now - c > self.timeout * 1000)
    }

    /// The task as JSON, with the fields and names of SPEC §9.
    pub fn to_json(&self) -> Value {
        let time = |t: Option<Millis>| t.map_or(Value::Null, |t| Value::String(clock::format(t)));
        let text = |s: &Option<String>| s.clone().map_or(Value::Null, Value::String);
        let payload = serde_json::from_str(&self.payload).unwrap_or_else(|_| json!({}));
        let result = self
            .result
            .as_deref()
            .map(|r| serde_json::from_str(r).unwrap_or_else(|_| Value::String(r.to_string())))
            .unwrap_or(Value::Null);
        let (completed, failed) = match self.status {
            Status::Succeeded => (self.finished_at, None),
            Status::Failed => (None, self.finished_at),
            _ => (None, None),
        };
        let mut m = Map::with_capacity(24);
        m.insert("id".into(), Value::String(self.id.clone()));
        m.insert("stream_id".into(), Value::String(self.stream_id.clone()));
        m.insert("tool_name".into(), Value::String(self.tool_name.clone()));
        m.insert("task_class".into(), Value::String(self.task_class.clone()));
        m.insert("payload".into(), payload);
        m.insert("status".into(), Value::String(self.status.as_str().into()));
        m.insert("timeout".into(), json!(self.timeout));
        m.insert("attempts".into(), json!(self.attempts));
        m.insert("worker_id".into(), text(&self.worker_id));
        m.insert("result_summary".into(), text(&self.result_summary));
        m.insert("result".into(), result);
        m.insert("error_type".into(), text(&self.error_type));
        m.insert("error".into(), text(&self.error));
        m.insert("stdout".into(), text(&self.stdout));
        m.insert("stderr".into(), text(&self.stderr));
        m.insert("created_at".into(), time(Some(self.created_at)));
        m.insert("updated_at".into(), time(Some(self.updated_at)));
        m.insert("claimed_at".into(), time(self.claimed_at));
        m.insert("started_at".into(), time(self.claimed_at));
        m.insert("finished_at".into(), time(self.finished_at));
        m.insert("completed_at".into(), time(completed));
        m.insert("failed_at".into(), time(failed));
        Value::Object(m)
    }
}

/// Cuts `text` to at most `limit` bytes at a character boundary, ending it
/// with a marker that says how many bytes were cut.
pub fn cut_output(text: String, limit: usize) -> String {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.len() - end;
    format!("{}\n[sparkq: cut {cut} bytes past the {limit}-byte limit]", &text[..end])
}

/// Names a JSON value's type for error messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Builds a task's payload (SPEC §9): `base` (an object) with `prompt`,
/// `prompt_path` and `metadata` set on top. Returns it as JSON text, refused
/// when longer than `limit` bytes.
pub fn build_payload(
    base: Option<Value>,
    prompt: Option<String>,
    prompt_path: Option<String>,
    metadata: Option<Value>,
    limit: usize,
) -> Result<String> {
    let mut obj = match base {
        None => Map::new(),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(Error::Invalid(format!(
                "payload must be a JSON object, not {}",
                type_name(&other)
            )))
        }
    };
    if let Some(p) = prompt {
        obj.insert("prompt".into(), Value::String(p));
    }
    if let Some(p) = prompt_path {
        obj.insert("prompt_path".into(), Value::String(p));
    }
    match metadata {
        None => {}
        Some(m @ Value::Object(_)) => {
            obj.insert("metadata".into(), m);
        }
        Some(other) => {
            return Err(Error::Invalid(format!(
                "metadata must be a JSON object, not {}",
                type_name(&other)
            )))
        }
    }
    let text = Value::Object(obj).to_string();
    if text.len() > limit {
        return Err(Error::TooLarge(format!(
            "payload is {} bytes, over the limit of {limit} bytes (limits.payload_bytes)",
            text.len()
        )));
    }
    Ok(text)
}

/// Stores a worker's result as JSON text: JSON as given, or a JSON string
/// when it is plain text; past `limit` bytes it is kept as text, cut.
pub fn result_text(result: Value, limit: usize) -> String {
    let text = result.to_string();
    if text.len() <= limit {
        return text;
    }
    let raw = match result {
        Value::String(s) => s,
        _ => text,
    };
    Value::String(cut_output(raw, limit)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_table_matches_the_spec() {
        use Action::*;
        use Status::*;
        let allowed = [
            (Claim, Queued),
            (Complete, Running),
            (Fail, Queued),
            (Fail, Running),
            (Requeue, Succeeded),
            (Requeue, Failed),
        ];
        for a in [Claim, Complete, Fail, Requeue] {
            for s in Status::ALL {
                assert_eq!(check("t", s, a).is_ok(), allowed.contains(&(a, s)), "{a:?} from {s:?}");
            }
        }
    }

    #[test]
    fn refusal_names_the_current_state() {
        let e = check("tsk_1", Status::Succeeded, Action::Complete).unwrap_err();
        assert_eq!(e.http_status(), 409);
        assert!(e.message().contains("it is succeeded"), "{e}");
        assert!(e.message().contains("tsk_1"), "{e}");
    }

    #[test]
    fn cut_output_keeps_characters_whole() {
        let s = "ééééé".to_string(); // 10 bytes
        let cut = cut_output(s, 5);
        assert!(cut.starts_with("éé\n"), "{cut}");
        assert!(cut.contains("cut 6 bytes"), "{cut}");
        assert_eq!(cut_output("short".into(), 5), "short");
    }

    #[test]
    fn payload_is_built_from_base_prompt_and_metadata() {
        let p = build_payload(
            Some(json!({"a": 1, "prompt": "old"})),
            Some("new".into()),
            Some("p.md".into()),
            Some(json!({"k": "v"})),
            1000,
        )
        .unwrap();
        let v: Value = serde_json::from_str(&p).unwrap();
        assert_eq!(
            v,
            json!({"a": 1, "prompt": "new", "prompt_path": "p.md", "metadata": {"k": "v"}})
        );
        assert_eq!(build_payload(None, None, None, None, 10).unwrap(), "{}");
        let e = build_payload(Some(json!([1])), None, None, None, 100).unwrap_err();
        assert!(e.message().contains("not an array"), "{e}");
        let e =
            build_payload(Some(json!({"a": "x".repeat(50)})), None, None, None, 10).unwrap_err();
        assert_eq!(e.http_status(), 413);
    }

    #[test]
    fn oversized_result_is_kept_as_cut_text() {
        assert_eq!(result_text(json!({"a": 1}), 100), "{\"a\":1}");
        let t = result_text(json!("x".repeat(100)), 10);
        let v: Value = serde_json::from_str(&t).unwrap();
        assert!(v.as_str().unwrap().starts_with("xxxxxxxxxx\n[sparkq: cut 90 bytes"), "{t}");
    }

    #[test]
    fn stale_only_past_the_timeout() {
        let mut t = sample();
        t.status = Status::Running;
        t.claimed_at = Some(1_000);
        t.timeout = 10;
        assert!(!t.is_stale(11_000));
        assert!(t.is_stale(11_001));
    }

    #[test]
    fn json_has_every_field_and_derived_times() {
        let mut t = sample();
        t.status = Status::Failed;
        t.finished_at = Some(5);
        t.result = Some("\"text\"".into());
        let j = t.to_json();
        assert_eq!(j["failed_at"], "1970-01-01T00:00:00.005Z");
        assert_eq!(j["completed_at"], Value::Null);
        assert_eq!(j["result"], "text");
        assert_eq!(j["payload"], json!({"a": 1}));
        assert_eq!(j.as_object().unwrap().len(), 22);
    }

    fn sample() -> Task {
        Task {
            id: "tsk_000000000001".into(),
            stream_id: "str_000000000001".into(),
            tool_name: "run-bash".into(),
            task_class: "MEDIUM_SCRIPT".into(),
            payload: "{\"a\":1}".into(),
            status: Status::Queued,
            timeout: 300,
            attempts: 0,
            worker_id: None,
            result_summary: None,
            result: None,
            error_type: None,
            error: None,
            stdout: None,
            stderr: None,
            created_at: 0,
            updated_at: 0,
            claimed_at: None,
            finished_at: None,
        }
    }
}
