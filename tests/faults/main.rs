//! Fault tests: SparkQ killed, raced, starved of disk and denied writes.
//! Each module sets up its own folder and server with the built binary and
//! checks what SPEC rules 2, 4 and 7 promise under that fault. One test
//! runs `scripts/faults.sh` for a few kill/restart cycles.

mod support;

// 10,000 tasks claimed at once by HTTP threads and CLI processes.
mod claims;
// A complete or fail racing the timeout sweep at the 2x deadline.
mod deadline;
// A full disk and a read-only database.
mod disk;
// Lock files left by others, two servers at once, a port already taken.
mod lock;
// The SIGKILL fault script, a short run.
mod script;
