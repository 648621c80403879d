//! SparkQ's integration tests: the built binary run as a CLI in temp
//! folders and as a server on a free loopback port, spoken to over raw
//! HTTP/1.1. One test binary, one module per topic.

#[path = "../support/mod.rs"]
mod support;

// The API: every endpoint, its status codes and its error bodies.
mod api;
// The CLI: every command, its exit codes and its --json output.
mod cli;
// Claims racing from threads and processes at once.
mod concurrency;
// Refused configs, and reload keeping the config in force.
mod config;
// Purge: only finished tasks, only past the cut-off.
mod purge;
// The script index through the API and the CLI.
mod scripts;
// The server's lock file, stop, status and first start.
mod server;
// Timeout resolution and the auto-fail of tasks past twice their timeout.
mod timeouts;
// scripts/worker.sh run against the built binary.
mod worker;
