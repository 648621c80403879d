//! The server's log: one line per event on stderr, as
//! `2026-12-04T15:20:41.123Z INFO event key=value ...`.
//!
//! Info covers the lifecycle and every change made by maintenance; debug
//! (set `SPARKQ_LOG=debug`) adds a line per request. Values with spaces or
//! quotes are written as JSON strings so that a line stays one line.

use std::fmt::Display;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::clock;

static DEBUG: AtomicBool = AtomicBool::new(false);

/// Reads `SPARKQ_LOG` once at start-up.
pub fn init_from_env() {
    let on = std::env::var("SPARKQ_LOG").is_ok_and(|v| v.eq_ignore_ascii_case("debug"));
    DEBUG.store(on, Ordering::Relaxed);
}

/// Returns true if and only if debug lines are written.
pub fn debug_enabled() -> bool {
    DEBUG.load(Ordering::Relaxed)
}

pub fn info(event: &str, fields: &[(&str, &dyn Display)]) {
    write("INFO", event, fields);
}

pub fn warn(event: &str, fields: &[(&str, &dyn Display)]) {
    write("WARN", event, fields);
}

pub fn error(event: &str, fields: &[(&str, &dyn Display)]) {
    write("ERROR", event, fields);
}

pub fn debug(event: &str, fields: &[(&str, &dyn Display)]) {
    if debug_enabled() {
        write("DEBUG", event, fields);
    }
}

/// Formats one log line (without the newline).
pub fn format_line(level: &str, event: &str, fields: &[(&str, &dyn Display)]) -> String {
    let mut line = format!("{} {level} {event}", clock::format(clock::now()));
    for (key, value) in fields {
        let v = value.to_string();
        let plain = !v.is_empty()
            && v.chars().all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=');
        if plain {
            line.push_str(&format!(" {key}={v}"));
        } else {
            line.push_str(&format!(" {key}={}", serde_json::Value::String(v)));
        }
    }
    line
}

fn write(level: &str, event: &str, fields: &[(&str, &dyn Display)]) {
    let mut line = format_line(level, event, fields);
    line.push('\n');
    // A closed stderr must not take the server down with it.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_with_spaces_are_quoted() {
        let line = format_line("INFO", "tasks_expired", &[("count", &2), ("note", &"a b")]);
        assert!(line.ends_with(" INFO tasks_expired count=2 note=\"a b\""), "{line}");
    }
}
