//! Enqueueing as the CLI and the API both do it: resolve the class and the
//! timeout from the config (SPEC §2.4), build the payload (§9), create the
//! task. One function, so the two cannot drift apart.

use serde_json::Value;

use crate::clock::Millis;
use crate::config::Config;
use crate::error::Result;
use crate::store::{NewTask, Store};
use crate::task::{self, Task};

/// What a caller asks to enqueue, before the config fills in the rest.
#[derive(Debug, Clone, Default)]
pub struct Enqueue {
    /// The stream's id or name.
    pub stream: String,
    pub tool: String,
    pub task_class: Option<String>,
    pub timeout: Option<u64>,
    /// The base payload; must be an object.
    pub payload: Option<Value>,
    pub prompt: Option<String>,
    pub prompt_path: Option<String>,
    /// Must be an object.
    pub metadata: Option<Value>,
}

/// Creates the task `e` describes.
pub fn enqueue(config: &Config, store: &Store, e: Enqueue, now: Millis) -> Result<Task> {
    let (class, timeout) = config.resolve(&e.tool, e.task_class.as_deref(), e.timeout)?;
    let payload = task::build_payload(
        e.payload,
        e.prompt,
        e.prompt_path,
        e.metadata,
        config.limits.payload_bytes,
    )?;
    let new = NewTask {
        stream: &e.stream,
        tool_name: &e.tool,
        task_class: &class,
        timeout,
        payload: &payload,
    };
    store.create_task(&new, now)
}
