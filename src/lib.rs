//! SparkQ: a single-user task queue with a CLI, an HTTP API and a web
//! dashboard, kept in one SQLite file beside a project.
//!
//! The binary in `main.rs` is thin; everything it runs lives here so that
//! unit tests reach it.

pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod enqueue;
pub mod error;
pub mod http;
pub mod ids;
pub mod lock;
pub mod log;
pub mod maintenance;
pub mod scripts;
pub mod server;
pub mod store;
pub mod task;
#[cfg(test)]
mod testing;
pub mod ui;
