//! The store: one SQLite database in WAL mode, and the only place SQL is
//! written. Every rule that touches more than one row (FIFO claim, checked
//! transitions, timeouts, purge) is one statement or one immediate
//! transaction here, so the CLI and the server keep them the same way.
//!
//! Functions take `now` as an argument; nothing in here reads the clock.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use serde_json::{json, Value};

use crate::clock::{self, Millis};
use crate::config::Synchronous;
use crate::error::{Error, Result};
use crate::ids::new_id;
use crate::task::{self, Action, Status, Task};

/// The schema version this build writes; `PRAGMA user_version` holds it.
pub const SCHEMA_VERSION: i64 = 1;

/// Migrations: entry `i` upgrades a database from version `i` to `i + 1`.
const MIGRATIONS: [&str; 1] = [include_str!("schema.sql")];

/// The page size of a new database. Every commit writes each page it
/// touched to the log; SparkQ's rows are small and a task change touches
/// six or so pages (the row, its indexes, the stream's counts), so small
/// pages mean less to write. Set before the file exists; ignored after.
const PAGE_SIZE: u32 = 1024;

/// Pages in the write-ahead log before it is copied back: 8 MiB of 1 KiB
/// pages.
const WAL_CHECKPOINT: u32 = 8192;

/// How long a write waits for another process's write to finish before the
/// user is told the database is locked: `BUSY_TRIES` waits of `BUSY_WAIT`.
const BUSY_WAIT: Duration = Duration::from_millis(1);
const BUSY_TRIES: i32 = 10_000;

/// The oldest queued task of stream `?1`. INDEXED BY: with other streams'
/// queues long, the planner would otherwise walk the status index through
/// all of them.
const NEXT_QUEUED: &str = "SELECT seq FROM tasks INDEXED BY tasks_queued \
     WHERE stream_id = ?1 AND status = 'queued' ORDER BY seq LIMIT 1";

/// Up to `?2` finished tasks whose finish time is before `?1`, oldest first.
/// INDEXED BY: otherwise SQLite took the status index and sorted every
/// finished task for each batch, which made a purge quadratic.
const OLDEST_FINISHED: &str = "SELECT seq FROM tasks INDEXED BY tasks_finished \
     WHERE finished_at < ?1 AND status IN ('succeeded', 'failed') \
     ORDER BY finished_at LIMIT ?2";

const TASK_COLS: &str = "id, stream_id, tool_name, task_class, payload, status, timeout, \
     attempts, worker_id, result_summary, result, error_type, error, stdout, stderr, \
     created_at, updated_at, claimed_at, finished_at";

/// The database, behind a mutex: one connection serves every thread.
pub struct Store {
    conn: Mutex<Connection>,
}

/// A project row: what workers may read for context.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub repo_path: String,
    pub prd_path: Option<String>,
}

/// A named period of work.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub active: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub ended_at: Option<Millis>,
    pub stream_count: i64,
}

/// A named FIFO queue inside a session.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub id: String,
    pub session_id: String,
    pub session_name: String,
    pub name: String,
    pub instructions: Option<String>,
    pub active: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub ended_at: Option<Millis>,
    /// Task counts: queued, running, succeeded, failed.
    pub counts: [i64; 4],
    pub oldest_queued_at: Option<Millis>,
}

/// A stream as the hot paths see it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRef {
    pub id: String,
    pub name: String,
    pub instructions: Option<String>,
    pub active: bool,
}

impl StreamRef {
    /// The `{id, name, instructions}` that `peek` and `claim` add to a task.
    pub fn brief_json(&self) -> Value {
        json!({ "id": self.id, "name": self.name, "instructions": self.instructions })
    }
}

/// A task to create; the class and timeout are already resolved.
#[derive(Debug, Clone)]
pub struct NewTask<'a> {
    /// The stream's id or name.
    pub stream: &'a str,
    pub tool_name: &'a str,
    pub task_class: &'a str,
    pub timeout: u64,
    /// A JSON object as text.
    pub payload: &'a str,
}

/// What a worker reports when a task ends.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The summary of a success, or the message of a failure.
    pub message: String,
    /// Success: the result as JSON text. Failure: the error type.
    pub detail: Option<String>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
}

impl Outcome {
    /// A success: the summary, the result as JSON text, and the output, each
    /// cut to `limit` bytes.
    pub fn success(
        summary: String,
        result: Option<Value>,
        stdout: Option<String>,
        stderr: Option<String>,
        limit: usize,
    ) -> Outcome {
        Outcome {
            message: task::cut_output(summary, limit),
            detail: result.map(|r| task::result_text(r, limit)),
            stdout: stdout.map(|s| task::cut_output(s, limit)),
            stderr: stderr.map(|s| task::cut_output(s, limit)),
        }
    }

    /// A failure: the message, its type, and the output, each cut to `limit`.
    pub fn failure(
        message: String,
        error_type: Option<String>,
        stdout: Option<String>,
        stderr: Option<String>,
        limit: usize,
    ) -> Outcome {
        Outcome {
            message: task::cut_output(message, limit),
            detail: error_type,
            stdout: stdout.map(|s| task::cut_output(s, limit)),
            stderr: stderr.map(|s| task::cut_output(s, limit)),
        }
    }
}

/// Which tasks to list.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// A stream's id or name.
    pub stream: Option<String>,
    pub status: Option<Status>,
    /// Only running tasks that are stale at this time.
    pub stale_at: Option<Millis>,
    pub limit: u32,
    pub offset: u64,
}

/// Counts for `/stats` and `sparkq status`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub sessions: i64,
    pub streams: i64,
    /// Task counts: queued, running, succeeded, failed.
    pub tasks: [i64; 4],
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its
    /// schema up to date.
    pub fn open(path: &Path, sync: Synchronous) -> Result<Store> {
        let conn = Connection::open(path).map_err(|e| {
            Error::from(e).context(&format!("cannot open database {}", path.display()))
        })?;
        let mut conn = conn;
        if let Err(e) = configure(&conn, sync).and_then(|_| migrate(&mut conn)) {
            // On a read-only file system SQLite only says it cannot open the
            // file: WAL mode needs to create the -wal and -shm files beside
            // it, even to read. Say what is really wrong.
            let e = if on_read_only_file_system(path) {
                Error::Unavailable(
                    "the database is read-only (its file system is mounted read-only, and \
                     SQLite must create the -wal and -shm files beside it even to read)"
                        .into(),
                )
            } else {
                explain_io(&conn, e)
            };
            return Err(e.context(&format!("database {}", path.display())));
        }
        Ok(Store { conn: Mutex::new(conn) })
    }

    /// Takes the connection. A panic in another thread while it held the
    /// lock leaves no transaction open (rusqlite rolls back on drop), so a
    /// poisoned lock is still safe to use.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` inside one immediate transaction: the write lock is taken at
    /// the start, so a busy database waits here and never fails half-way.
    fn write<T>(&self, f: impl FnOnce(&rusqlite::Transaction) -> Result<T>) -> Result<T> {
        let mut conn = self.lock();
        let out = write_on(&mut conn, f);
        out.map_err(|e| explain_io(&conn, e))
    }

    /// The SQLite `PRAGMA integrity_check` answer (`"ok"` when sound).
    pub fn integrity_check(&self) -> Result<String> {
        let conn = self.lock();
        let rows: Vec<String> = conn
            .prepare("PRAGMA integrity_check")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows.join("; "))
    }

    // ---- project ---------------------------------------------------------

    /// Creates the project row, or updates it to follow the config.
    pub fn ensure_project(
        &self,
        name: &str,
        repo_path: &str,
        prd_path: Option<&str>,
        now: Millis,
    ) -> Result<Project> {
        // Most opens find the project as the config says: read first, so
        // that a CLI command does not take the write lock for nothing.
        if let Some(p) = self.project()? {
            if (p.name.as_str(), p.repo_path.as_str(), p.prd_path.as_deref())
                == (name, repo_path, prd_path)
            {
                return Ok(p);
            }
        }
        self.write(|tx| {
            let existing: Option<String> =
                tx.query_row("SELECT id FROM projects LIMIT 1", [], |r| r.get(0)).optional()?;
            let id = match existing {
                Some(id) => {
                    tx.execute(
                        "UPDATE projects SET name = ?2, repo_path = ?3, prd_path = ?4, \
                         updated_at = ?5 WHERE id = ?1 AND (name, repo_path, prd_path) \
                         IS NOT (?2, ?3, ?4)",
                        params![id, name, repo_path, prd_path, now],
                    )?;
                    id
                }
                None => {
                    let id = new_id("prj");
                    tx.execute(
                        "INSERT INTO projects (id, name, repo_path, prd_path, created_at, \
                         updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                        params![id, name, repo_path, prd_path, now],
                    )?;
                    id
                }
            };
            Ok(Project {
                id,
                name: name.into(),
                repo_path: repo_path.into(),
                prd_path: prd_path.map(Into::into),
            })
        })
    }

    /// The project, if one was created.
    pub fn project(&self) -> Result<Option<Project>> {
        let conn = self.lock();
        let p = conn
            .query_row("SELECT id, name, repo_path, prd_path FROM projects LIMIT 1", [], |r| {
                Ok(Project {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    repo_path: r.get(2)?,
                    prd_path: r.get(3)?,
                })
            })
            .optional()?;
        Ok(p)
    }

    // ---- sessions --------------------------------------------------------

    /// Creates an active session; its name must be new.
    pub fn create_session(
        &self,
        name: &str,
        description: Option<&str>,
        now: Millis,
    ) -> Result<Session> {
        check_name("session", name)?;
        self.write(|tx| {
            if exists(tx, "SELECT 1 FROM sessions WHERE name = ?1", name)? {
                return Err(Error::Conflict(format!("a session named \"{name}\" already exists")));
            }
            let id = new_id("ses");
            tx.execute(
                "INSERT INTO sessions (id, name, description, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?4)",
                params![id, name, description, now],
            )?;
            session_on(tx, &id)
        })
    }

    /// The session with this id or name.
    pub fn session(&self, key: &str) -> Result<Session> {
        session_on(&self.lock(), key)
    }

    /// Sessions, newest first.
    pub fn list_sessions(
        &self,
        active: Option<bool>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<Session>> {
        let conn = self.lock();
        let mut st = conn.prepare_cached(&format!(
            "{SESSION_SELECT} WHERE (?1 IS NULL OR s.status = ?1) ORDER BY s.seq DESC LIMIT ?2 OFFSET ?3"
        ))?;
        let status = active.map(|a| if a { "active" } else { "ended" });
        let rows = st.query_map(params![status, limit, offset as i64], row_to_session)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Renames a session or changes its description; `Some(None)` clears
    /// the description, `None` leaves it.
    pub fn update_session(
        &self,
        key: &str,
        name: Option<&str>,
        description: Option<Option<&str>>,
        now: Millis,
    ) -> Result<Session> {
        if let Some(n) = name {
            check_name("session", n)?;
        }
        if name.is_none() && description.is_none() {
            // Nothing to change: not even the update time.
            return self.session(key);
        }
        self.write(|tx| {
            let s = session_on(tx, key)?;
            if let Some(n) = name.filter(|n| *n != s.name) {
                if exists(tx, "SELECT 1 FROM sessions WHERE name = ?1", n)? {
                    return Err(Error::Conflict(format!("a session named \"{n}\" already exists")));
                }
            }
            tx.execute(
                "UPDATE sessions SET name = coalesce(?2, name), \
                 description = CASE WHEN ?5 THEN ?3 ELSE description END, updated_at = ?4 WHERE id = ?1",
                params![s.id, name, description.flatten(), now, description.is_some()],
            )?;
            session_on(tx, &s.id)
        })
    }

    /// Ends a session and all its streams. Ending an ended session changes
    /// nothing.
    pub fn end_session(&self, key: &str, now: Millis) -> Result<Session> {
        self.write(|tx| {
            let s = session_on(tx, key)?;
            if s.active {
                tx.execute(
                    "UPDATE sessions SET status = 'ended', ended_at = ?2, updated_at = ?2 WHERE id = ?1",
                    params![s.id, now],
                )?;
                tx.execute(
                    "UPDATE streams SET status = 'ended', ended_at = ?2, updated_at = ?2 \
                     WHERE session_id = ?1 AND status = 'active'",
                    params![s.id, now],
                )?;
            }
            session_on(tx, &s.id)
        })
    }

    // ---- streams ---------------------------------------------------------

    /// Creates an active stream in an active session; its name must be new.
    pub fn create_stream(
        &self,
        session: &str,
        name: &str,
        instructions: Option<&str>,
        now: Millis,
    ) -> Result<Stream> {
        check_name("stream", name)?;
        self.write(|tx| {
            let s = session_on(tx, session)?;
            if !s.active {
                return Err(Error::Conflict(format!(
                    "session \"{}\" is ended: it takes no new streams",
                    s.name
                )));
            }
            if exists(tx, "SELECT 1 FROM streams WHERE name = ?1", name)? {
                return Err(Error::Conflict(format!("a stream named \"{name}\" already exists")));
            }
            let id = new_id("str");
            tx.execute(
                "INSERT INTO streams (id, session_id, name, instructions, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![id, s.id, name, instructions, now],
            )?;
            stream_on(tx, &id)
        })
    }

    /// The stream with this id or name.
    pub fn stream(&self, key: &str) -> Result<Stream> {
        stream_on(&self.lock(), key)
    }

    /// Streams, newest first, optionally of one session (id or name).
    pub fn list_streams(
        &self,
        session: Option<&str>,
        active: Option<bool>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<Stream>> {
        let conn = self.lock();
        let session_id = match session {
            Some(key) => Some(session_on(&conn, key)?.id),
            None => None,
        };
        let mut st = conn.prepare_cached(&format!(
            "{STREAM_SELECT} WHERE (?1 IS NULL OR t.session_id = ?1) AND (?2 IS NULL OR t.status = ?2) \
             ORDER BY t.seq DESC LIMIT ?3 OFFSET ?4"
        ))?;
        let status = active.map(|a| if a { "active" } else { "ended" });
        let rows =
            st.query_map(params![session_id, status, limit, offset as i64], row_to_stream)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Renames a stream or changes its instructions; `Some(None)` clears
    /// them, `None` leaves them.
    pub fn update_stream(
        &self,
        key: &str,
        name: Option<&str>,
        instructions: Option<Option<&str>>,
        now: Millis,
    ) -> Result<Stream> {
        if let Some(n) = name {
            check_name("stream", n)?;
        }
        if name.is_none() && instructions.is_none() {
            // Nothing to change: not even the update time.
            return self.stream(key);
        }
        self.write(|tx| {
            let s = stream_on(tx, key)?;
            if let Some(n) = name.filter(|n| *n != s.name) {
                if exists(tx, "SELECT 1 FROM streams WHERE name = ?1", n)? {
                    return Err(Error::Conflict(format!("a stream named \"{n}\" already exists")));
                }
            }
            tx.execute(
                "UPDATE streams SET name = coalesce(?2, name), \
                 instructions = CASE WHEN ?5 THEN ?3 ELSE instructions END, updated_at = ?4 WHERE id = ?1",
                params![s.id, name, instructions.flatten(), now, instructions.is_some()],
            )?;
            stream_on(tx, &s.id)
        })
    }

    /// Ends a stream: it takes no new tasks, but its queued ones can still be
    /// claimed. Ending an ended stream changes nothing.
    pub fn end_stream(&self, key: &str, now: Millis) -> Result<Stream> {
        self.write(|tx| {
            let s = stream_on(tx, key)?;
            if s.active {
                tx.execute(
                    "UPDATE streams SET status = 'ended', ended_at = ?2, updated_at = ?2 WHERE id = ?1",
                    params![s.id, now],
                )?;
            }
            stream_on(tx, &s.id)
        })
    }

    // ---- tasks -----------------------------------------------------------

    /// Adds a queued task at the end of an active stream.
    pub fn create_task(&self, new: &NewTask, now: Millis) -> Result<Task> {
        if new.timeout == 0 || new.timeout > i64::MAX as u64 / 2000 {
            return Err(Error::Invalid(format!("timeout {} is out of range", new.timeout)));
        }
        self.write(|tx| {
            let s = stream_ref_on(tx, new.stream)?;
            if !s.active {
                return Err(Error::Conflict(format!(
                    "stream \"{}\" is ended: it takes no new tasks",
                    s.name
                )));
            }
            insert_task(
                tx,
                &s.id,
                new.tool_name,
                new.task_class,
                new.timeout as i64,
                new.payload,
                now,
            )
        })
    }

    /// The task with this id.
    pub fn task(&self, id: &str) -> Result<Task> {
        task_on(&self.lock(), id)
    }

    /// Tasks, newest first.
    pub fn list_tasks(&self, f: &TaskFilter) -> Result<Vec<Task>> {
        let conn = self.lock();
        let stream_id = match &f.stream {
            Some(key) => Some(stream_on(&conn, key)?.id),
            None => None,
        };
        let status = match f.stale_at {
            Some(_) => Some(Status::Running),
            None => f.status,
        };
        let mut st = conn.prepare_cached(&format!(
            "SELECT {TASK_COLS} FROM tasks WHERE (?1 IS NULL OR stream_id = ?1) \
             AND (?2 IS NULL OR status = ?2) \
             AND (?3 IS NULL OR claimed_at + timeout * 1000 < ?3) \
             ORDER BY seq DESC LIMIT ?4 OFFSET ?5"
        ))?;
        let rows = st.query_map(
            params![stream_id, status.map(Status::as_str), f.stale_at, f.limit, f.offset as i64],
            row_to_task,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The next queued task of a stream, unchanged.
    pub fn peek(&self, stream: &str) -> Result<(Option<Task>, StreamRef)> {
        let conn = self.lock();
        let s = stream_ref_on(&conn, stream)?;
        let t = conn
            .prepare_cached(&format!("SELECT {TASK_COLS} FROM tasks WHERE seq = ({NEXT_QUEUED})"))?
            .query_row([&s.id], row_to_task)
            .optional()?;
        Ok((t, s))
    }

    /// Claims the oldest queued task of a stream (FIFO by insertion order).
    ///
    /// The pick and the change are one `UPDATE` inside an immediate
    /// transaction, so two claimers, in threads or processes, never get the
    /// same task; the one that waited for the lock gets the next task.
    ///
    /// N.B. `now` is read before the write lock is taken, so a claimer that
    /// waited for another writer may hold a time older than the task it
    /// gets; the claim time is raised to the creation time so that a task is
    /// never shown as claimed before it existed.
    pub fn claim_next(
        &self,
        stream: &str,
        worker_id: Option<&str>,
        now: Millis,
    ) -> Result<(Option<Task>, StreamRef)> {
        self.write(|tx| {
            let s = stream_ref_on(tx, stream)?;
            let t = tx
                .prepare_cached(&format!(
                    "UPDATE tasks SET status = 'running', attempts = attempts + 1, worker_id = ?2, \
                     claimed_at = max(?3, created_at), updated_at = max(?3, created_at) \
                     WHERE seq = ({NEXT_QUEUED}) \
                     RETURNING {TASK_COLS}"
                ))?
                .query_row(params![s.id, worker_id, now], row_to_task)
                .optional()?;
            Ok((t, s))
        })
    }

    /// Claims one queued task by id, wherever it stands in its stream; the
    /// claim time is kept in order as in `claim_next`.
    pub fn claim_task(&self, id: &str, worker_id: Option<&str>, now: Millis) -> Result<Task> {
        self.write(|tx| {
            let t = tx
                .prepare_cached(&format!(
                    "UPDATE tasks SET status = 'running', attempts = attempts + 1, worker_id = ?2, \
                     claimed_at = max(?3, created_at), updated_at = max(?3, created_at) \
                     WHERE id = ?1 AND status = 'queued' \
                     RETURNING {TASK_COLS}"
                ))?
                .query_row(params![id, worker_id, now], row_to_task)
                .optional()?;
            match t {
                Some(t) => Ok(t),
                None => Err(refusal(tx, id, Action::Claim)?),
            }
        })
    }

    /// Marks a running task succeeded.
    ///
    /// A task past twice its timeout is auto-failed here, in the same
    /// transaction, even if the sweep has not reached it yet: the deadline is
    /// the rule and the sweep only enforces it, so a late worker is told the
    /// same thing whenever it reports.
    pub fn complete(&self, id: &str, out: &Outcome, now: Millis) -> Result<Task> {
        self.finish(id, Action::Complete, out, now)
    }

    /// Marks a queued or running task failed; see `complete` for the deadline.
    pub fn fail(&self, id: &str, out: &Outcome, now: Millis) -> Result<Task> {
        if out.detail.as_deref() == Some(task::TIMEOUT_ERROR_TYPE) {
            return Err(Error::Invalid(format!(
                "error type \"{}\" is kept for tasks SparkQ fails at 2x their timeout; \
                 use another, such as SCRIPT_TIMEOUT",
                task::TIMEOUT_ERROR_TYPE
            )));
        }
        self.finish(id, Action::Fail, out, now)
    }

    fn finish(&self, id: &str, action: Action, out: &Outcome, now: Millis) -> Result<Task> {
        // The deadline is judged at `now`, but the finish time is kept no
        // earlier than the claim (or creation) time, which another writer may
        // have set after `now` was read; see `claim_next`.
        let sql = match action {
            Action::Complete => format!(
                "UPDATE tasks SET status = 'succeeded', result_summary = ?2, result = ?3, \
                 stdout = ?4, stderr = ?5, finished_at = max(?6, claimed_at), \
                 updated_at = max(?6, claimed_at) \
                 WHERE id = ?1 AND status = 'running' AND claimed_at + timeout * 2000 >= ?6 \
                 RETURNING {TASK_COLS}"
            ),
            _ => format!(
                "UPDATE tasks SET status = 'failed', error = ?2, error_type = ?3, \
                 stdout = ?4, stderr = ?5, \
                 finished_at = max(?6, coalesce(claimed_at, created_at)), \
                 updated_at = max(?6, coalesce(claimed_at, created_at)) \
                 WHERE id = ?1 AND (status = 'queued' OR (status = 'running' \
                 AND claimed_at + timeout * 2000 >= ?6)) RETURNING {TASK_COLS}"
            ),
        };
        self.write(|tx| {
            let t = tx
                .prepare_cached(&sql)?
                .query_row(
                    params![id, out.message, out.detail, out.stdout, out.stderr, now],
                    row_to_task,
                )
                .optional()?;
            if let Some(t) = t {
                return Ok(Ok(t));
            }
            // The auto-fail of an overdue task is kept even though this
            // request is refused, so the refusal and the stored state agree.
            expire_on(tx, now)?;
            Ok(Err(refusal(tx, id, action)?))
        })?
    }

    /// Clones a finished task as a new queued task (attempts 0) at the end
    /// of its stream; the original stays as it is.
    pub fn requeue(&self, id: &str, now: Millis) -> Result<Task> {
        self.write(|tx| {
            let old = task_on(tx, id)?;
            task::check(id, old.status, Action::Requeue)?;
            let s = stream_on(tx, &old.stream_id)?;
            if !s.active {
                return Err(Error::Conflict(format!(
                    "cannot requeue task {id}: stream \"{}\" is ended and takes no new tasks",
                    s.name
                )));
            }
            insert_task(tx, &s.id, &old.tool_name, &old.task_class, old.timeout, &old.payload, now)
        })
    }

    /// Auto-fails every running task past twice its timeout; returns their ids.
    pub fn expire(&self, now: Millis) -> Result<Vec<String>> {
        self.write(|tx| expire_on(tx, now))
    }

    /// Deletes up to `batch` finished tasks whose finish time is strictly
    /// before `cutoff`; returns how many. Callers loop until it returns less
    /// than `batch`, so the lock is let go between batches and claims go on.
    pub fn purge_batch(&self, cutoff: Millis, batch: u32) -> Result<usize> {
        self.write(|tx| {
            let n = tx
                .prepare_cached(&format!("DELETE FROM tasks WHERE seq IN ({OLDEST_FINISHED})"))?
                .execute(params![cutoff, batch])?;
            Ok(n)
        })
    }

    /// Counts of sessions, streams and tasks by status.
    pub fn stats(&self) -> Result<Stats> {
        let conn = self.lock();
        let mut st = conn.prepare_cached(
            "SELECT (SELECT count(*) FROM sessions), count(*), coalesce(sum(queued), 0), \
             coalesce(sum(running), 0), coalesce(sum(succeeded), 0), coalesce(sum(failed), 0) \
             FROM streams",
        )?;
        let s = st.query_row([], |r| {
            Ok(Stats {
                sessions: r.get(0)?,
                streams: r.get(1)?,
                tasks: [r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?],
            })
        })?;
        Ok(s)
    }
}

// ---- helpers on a connection ---------------------------------------------

fn configure(conn: &Connection, sync: Synchronous) -> Result<()> {
    // N.B. SQLite's own busy wait sleeps longer and longer (up to 100 ms a
    // try), so a claim waiting on another process's purge kept missing the
    // short gaps between its batches and waited seconds. A fixed 1 ms step
    // costs a lock attempt per millisecond, and only while blocked.
    conn.busy_handler(Some(|tries: i32| {
        std::thread::sleep(BUSY_WAIT);
        tries < BUSY_TRIES
    }))?;
    conn.execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE}"))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Unavailable(format!(
            "cannot switch the database to WAL mode (it stays in {mode})"
        )));
    }
    let sync = match sync {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    // The log is copied back into the database every WAL_CHECKPOINT pages;
    // each copy syncs the file, so with small pages the default (1000) came
    // every megabyte and a purge spent its time in checkpoints.
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON; \
         PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT};"
    ))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

fn write_on<T>(
    conn: &mut Connection,
    f: impl FnOnce(&rusqlite::Transaction) -> Result<T>,
) -> Result<T> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let out = f(&tx)?;
    tx.commit()?;
    Ok(out)
}

/// Turns SQLite's bare "disk I/O error" into what the operating system
/// said, when that is a full disk, a quota or a read-only file system (a
/// full disk met while growing the -shm file is only an I/O error to
/// SQLite). Other errors pass unchanged.
fn explain_io(conn: &Connection, e: Error) -> Error {
    use std::io::ErrorKind;

    let Error::Internal(m) = &e else { return e };
    // SQLite records the OS error number for I/O errors only, so it is
    // this error's number when the message says so.
    if !m.contains("disk I/O error") {
        return e;
    }
    // SAFETY: the handle is `conn`'s own and valid while `conn` is borrowed;
    // sqlite3_system_errno only reads a number stored on it.
    let errno = unsafe { rusqlite::ffi::sqlite3_system_errno(conn.handle()) };
    let why = match std::io::Error::from_raw_os_error(errno).kind() {
        ErrorKind::StorageFull => "the disk is full",
        ErrorKind::QuotaExceeded => "the disk quota is exceeded",
        ErrorKind::ReadOnlyFilesystem => "the database is read-only",
        _ => return e,
    };
    Error::Unavailable(format!("{why} ({m})"))
}

/// Returns true if and only if the existing file at `path` is on a file
/// system mounted read-only. Opening for append changes nothing.
fn on_read_only_file_system(path: &Path) -> bool {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .is_err_and(|e| e.kind() == std::io::ErrorKind::ReadOnlyFilesystem)
}

/// Brings the schema to `SCHEMA_VERSION` in one immediate transaction, so
/// two processes opening a new database at once do not both create it.
fn migrate(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(Error::Unavailable(format!(
            "schema version {version} is newer than this sparkq understands ({SCHEMA_VERSION})"
        )));
    }
    for sql in &MIGRATIONS[version as usize..] {
        tx.execute_batch(sql)?;
    }
    tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
    tx.commit()?;
    Ok(())
}

/// Checks a session or stream name (SPEC §9): 1–64 characters from letters,
/// digits, `-`, `_` and `.`.
///
/// Two kinds of name that the rule allows are refused as well, since they
/// could never be used: a name only of dots (HTTP clients fold `/..` out of a
/// path) and a name shaped like an id (`str_0123456789ab`), which a lookup
/// by id-or-name would take for the id of another stream.
pub fn check_name(kind: &str, name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.chars().count())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(Error::Invalid(format!(
            "invalid {kind} name \"{name}\": use 1-64 characters from letters, digits, '-', '_' and '.'"
        )));
    }
    if name.chars().all(|c| c == '.') {
        return Err(Error::Invalid(format!(
            "invalid {kind} name \"{name}\": a name cannot be only dots"
        )));
    }
    if crate::ids::is_id_shaped(name) {
        return Err(Error::Invalid(format!(
            "invalid {kind} name \"{name}\": it has the shape of an id (prefix_ and 12 hex digits)"
        )));
    }
    Ok(())
}

fn exists(conn: &Connection, sql: &str, key: &str) -> Result<bool> {
    Ok(conn.prepare_cached(sql)?.exists([key])?)
}

fn insert_task(
    conn: &Connection,
    stream_id: &str,
    tool: &str,
    class: &str,
    timeout: i64,
    payload: &str,
    now: Millis,
) -> Result<Task> {
    let t = conn
        .prepare_cached(&format!(
            "INSERT INTO tasks (id, stream_id, tool_name, task_class, payload, timeout, \
             created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) RETURNING {TASK_COLS}"
        ))?
        .query_row(
            params![new_id("tsk"), stream_id, tool, class, payload, timeout, now],
            row_to_task,
        )?;
    Ok(t)
}

fn expire_on(conn: &Connection, now: Millis) -> Result<Vec<String>> {
    let due: Vec<(String, i64)> = conn
        .prepare_cached(
            "SELECT id, timeout FROM tasks WHERE status = 'running' \
             AND claimed_at + timeout * 2000 < ?1",
        )?
        .query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut st = conn.prepare_cached(
        "UPDATE tasks SET status = 'failed', error_type = ?2, error = ?3, finished_at = ?4, \
         updated_at = ?4 WHERE id = ?1 AND status = 'running'",
    )?;
    for (id, timeout) in &due {
        st.execute(params![id, task::TIMEOUT_ERROR_TYPE, task::timeout_message(*timeout), now])?;
    }
    Ok(due.into_iter().map(|(id, _)| id).collect())
}

/// The error for an action that matched no row: unknown task, or a task in
/// a state the action may not start from.
fn refusal(conn: &Connection, id: &str, action: Action) -> Result<Error> {
    let t = task_on(conn, id)?;
    if t.status == Status::Failed && t.error_type.as_deref() == Some(task::TIMEOUT_ERROR_TYPE) {
        if let Action::Complete | Action::Fail = action {
            return Ok(Error::Conflict(format!(
                "cannot {} task {id}: it is failed (auto-failed after running longer than 2x \
                 its timeout of {} s)",
                action.verb(),
                t.timeout
            )));
        }
    }
    match task::check(id, t.status, action) {
        Err(e) => Ok(e),
        Ok(()) => {
            Ok(Error::Conflict(format!("cannot {} task {id}: it changed meanwhile", action.verb())))
        }
    }
}

fn task_on(conn: &Connection, id: &str) -> Result<Task> {
    conn.prepare_cached(&format!("SELECT {TASK_COLS} FROM tasks WHERE id = ?1"))?
        .query_row([id], row_to_task)
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("no task \"{id}\"")))
}

const SESSION_SELECT: &str = "SELECT s.id, s.name, s.description, s.status, s.created_at, \
     s.updated_at, s.ended_at, (SELECT count(*) FROM streams t WHERE t.session_id = s.id) \
     FROM sessions s";

fn session_on(conn: &Connection, key: &str) -> Result<Session> {
    conn.prepare_cached(&format!(
        "{SESSION_SELECT} WHERE s.id = ?1 UNION ALL \
         SELECT * FROM ({SESSION_SELECT} WHERE s.name = ?1 AND s.id <> ?1) LIMIT 1"
    ))?
    .query_row([key], row_to_session)
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("no session \"{key}\"")))
}

const STREAM_SELECT: &str = "SELECT t.id, t.session_id, s.name, t.name, t.instructions, t.status, \
     t.created_at, t.updated_at, t.ended_at, t.queued, t.running, t.succeeded, t.failed, \
     (SELECT created_at FROM tasks k INDEXED BY tasks_queued \
      WHERE k.stream_id = t.id AND k.status = 'queued' ORDER BY k.seq LIMIT 1) \
     FROM streams t JOIN sessions s ON s.id = t.session_id";

/// What the hot paths (enqueue, peek, claim) need of a stream, without the
/// counts and the session of a full `Stream`.
fn stream_ref_on(conn: &Connection, key: &str) -> Result<StreamRef> {
    let row = |r: &Row| -> rusqlite::Result<StreamRef> {
        Ok(StreamRef {
            id: r.get(0)?,
            name: r.get(1)?,
            instructions: r.get(2)?,
            active: r.get_ref(3)?.as_str()? == "active",
        })
    };
    let mut st = conn.prepare_cached(
        "SELECT id, name, instructions, status FROM streams WHERE id = ?1 UNION ALL \
         SELECT id, name, instructions, status FROM streams WHERE name = ?1 AND id <> ?1 LIMIT 1",
    )?;
    st.query_row([key], row)
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("no stream \"{key}\"")))
}

fn stream_on(conn: &Connection, key: &str) -> Result<Stream> {
    conn.prepare_cached(&format!(
        "{STREAM_SELECT} WHERE t.id = ?1 UNION ALL \
         SELECT * FROM ({STREAM_SELECT} WHERE t.name = ?1 AND t.id <> ?1) LIMIT 1"
    ))?
    .query_row([key], row_to_stream)
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("no stream \"{key}\"")))
}

fn row_to_session(r: &Row) -> rusqlite::Result<Session> {
    Ok(Session {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        active: r.get_ref(3)?.as_str()? == "active",
        created_at: r.get(4)?,
        updated_at: r.get(5)?,
        ended_at: r.get(6)?,
        stream_count: r.get(7)?,
    })
}

fn row_to_stream(r: &Row) -> rusqlite::Result<Stream> {
    Ok(Stream {
        id: r.get(0)?,
        session_id: r.get(1)?,
        session_name: r.get(2)?,
        name: r.get(3)?,
        instructions: r.get(4)?,
        active: r.get_ref(5)?.as_str()? == "active",
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
        ended_at: r.get(8)?,
        counts: [r.get(9)?, r.get(10)?, r.get(11)?, r.get(12)?],
        oldest_queued_at: r.get(13)?,
    })
}

fn row_to_task(r: &Row) -> rusqlite::Result<Task> {
    let status = r.get_ref(5)?.as_str()?;
    let status = Status::parse(status).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(5, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(Task {
        id: r.get(0)?,
        stream_id: r.get(1)?,
        tool_name: r.get(2)?,
        task_class: r.get(3)?,
        payload: r.get(4)?,
        status,
        timeout: r.get(6)?,
        attempts: r.get(7)?,
        worker_id: r.get(8)?,
        result_summary: r.get(9)?,
        result: r.get(10)?,
        error_type: r.get(11)?,
        error: r.get(12)?,
        stdout: r.get(13)?,
        stderr: r.get(14)?,
        created_at: r.get(15)?,
        updated_at: r.get(16)?,
        claimed_at: r.get(17)?,
        finished_at: r.get(18)?,
    })
}

// ---- JSON ----------------------------------------------------------------

fn opt_time(t: Option<Millis>) -> Value {
    t.map_or(Value::Null, |t| Value::String(clock::format(t)))
}

impl Session {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "status": if self.active { "active" } else { "ended" },
            "stream_count": self.stream_count,
            "created_at": clock::format(self.created_at),
            "updated_at": clock::format(self.updated_at),
            "ended_at": opt_time(self.ended_at),
        })
    }
}

impl Stream {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "session_id": self.session_id,
            "session_name": self.session_name,
            "name": self.name,
            "instructions": self.instructions,
            "status": if self.active { "active" } else { "ended" },
            "counts": {
                "queued": self.counts[0],
                "running": self.counts[1],
                "succeeded": self.counts[2],
                "failed": self.counts[3],
            },
            "oldest_queued_at": opt_time(self.oldest_queued_at),
            "created_at": clock::format(self.created_at),
            "updated_at": clock::format(self.updated_at),
            "ended_at": opt_time(self.ended_at),
        })
    }

    /// The `{id, name, instructions}` that `peek` and `claim` add to a task.
    pub fn brief_json(&self) -> Value {
        json!({ "id": self.id, "name": self.name, "instructions": self.instructions })
    }
}

impl Stats {
    pub fn to_json(&self) -> Value {
        json!({
            "sessions": self.sessions,
            "streams": self.streams,
            "tasks": {
                "queued": self.tasks[0],
                "running": self.tasks[1],
                "succeeded": self.tasks[2],
                "failed": self.tasks[3],
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static N: AtomicUsize = AtomicUsize::new(0);

    /// A store on a new database file, with one session and stream "s".
    fn store() -> Store {
        let dir = std::env::temp_dir().join(format!(
            "sparkq-store-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let st = Store::open(&dir.join("q.db"), Synchronous::Normal).unwrap();
        st.create_session("sess", None, 0).unwrap();
        st.create_stream("sess", "s", Some("be brief"), 0).unwrap();
        st
    }

    fn add(st: &Store, timeout: u64, now: Millis) -> Task {
        let new = NewTask {
            stream: "s",
            tool_name: "run-bash",
            task_class: "FAST_SCRIPT",
            timeout,
            payload: "{}",
        };
        st.create_task(&new, now).unwrap()
    }

    fn done(msg: &str) -> Outcome {
        Outcome::success(msg.into(), None, None, None, 1024)
    }

    #[test]
    fn claims_follow_insertion_order_within_one_millisecond() {
        let st = store();
        let ids: Vec<String> = (0..100).map(|_| add(&st, 30, 1_000).id).collect();
        let claimed: Vec<String> =
            (0..100).map(|_| st.claim_next("s", None, 1_000).unwrap().0.unwrap().id).collect();
        assert_eq!(claimed, ids);
        assert!(st.claim_next("s", None, 1_000).unwrap().0.is_none());
    }

    #[test]
    fn claim_sets_running_attempts_and_worker() {
        let st = store();
        add(&st, 30, 0);
        let (t, s) = st.claim_next("s", Some("w1"), 5).unwrap();
        let t = t.unwrap();
        assert_eq!(
            (t.status, t.attempts, t.worker_id.as_deref(), t.claimed_at),
            (Status::Running, 1, Some("w1"), Some(5))
        );
        assert_eq!(s.instructions.as_deref(), Some("be brief"));
    }

    #[test]
    fn refused_transitions_change_nothing() {
        let st = store();
        let t = add(&st, 30, 0);
        let e = st.complete(&t.id, &done("x"), 1).unwrap_err();
        assert!(e.message().contains("it is queued"), "{e}");
        assert_eq!(st.requeue(&t.id, 1).unwrap_err().http_status(), 409);
        st.claim_task(&t.id, None, 1).unwrap();
        assert_eq!(st.claim_task(&t.id, None, 1).unwrap_err().http_status(), 409);
        st.complete(&t.id, &done("ok"), 2).unwrap();
        let before = st.task(&t.id).unwrap();
        assert!(st.fail(&t.id, &Outcome::failure("x".into(), None, None, None, 9), 3).is_err());
        assert!(st.complete(&t.id, &done("again"), 3).is_err());
        assert_eq!(st.task(&t.id).unwrap(), before);
        assert_eq!(st.task("tsk_nope").unwrap_err().http_status(), 404);
    }

    #[test]
    fn running_task_is_auto_failed_past_twice_its_timeout() {
        let st = store();
        let t = add(&st, 10, 0);
        st.claim_task(&t.id, None, 1_000).unwrap();
        assert!(st.expire(21_000).unwrap().is_empty(), "at exactly 2x it still runs");
        assert_eq!(st.expire(21_001).unwrap(), vec![t.id.clone()]);
        let t = st.task(&t.id).unwrap();
        assert_eq!((t.status, t.error_type.as_deref()), (Status::Failed, Some("TIMEOUT")));
        assert!(t.error.unwrap().contains("2x its timeout (10 s)"));
    }

    #[test]
    fn late_complete_past_the_deadline_is_refused_even_before_the_sweep() {
        let st = store();
        let t = add(&st, 10, 0);
        st.claim_task(&t.id, None, 0).unwrap();
        let e = st.complete(&t.id, &done("late"), 20_001).unwrap_err();
        assert_eq!(e.http_status(), 409);
        assert!(e.message().contains("auto-failed"), "{e}");
        let t2 = st.task(&t.id).unwrap();
        assert_eq!((t2.status, t2.error_type.as_deref()), (Status::Failed, Some("TIMEOUT")));
        // Just inside the deadline a complete is applied.
        let u = add(&st, 10, 0);
        st.claim_task(&u.id, None, 0).unwrap();
        assert_eq!(st.complete(&u.id, &done("ok"), 20_000).unwrap().status, Status::Succeeded);
    }

    // Cause: the time was read before the write lock, so a claimer or a
    // worker that waited for another process's write stored an older time.
    #[test]
    fn regression_task_times_stay_in_order_when_now_was_read_before_a_wait() {
        let st = store();
        let a = add(&st, 10, 1_000);
        let t = st.claim_next("s", None, 990).unwrap().0.unwrap();
        assert_eq!((t.claimed_at, t.updated_at), (Some(1_000), 1_000));
        let t = st.complete(&a.id, &done("ok"), 995).unwrap();
        assert_eq!((t.finished_at, t.updated_at), (Some(1_000), 1_000));
        let b = add(&st, 10, 2_000);
        assert_eq!(st.claim_task(&b.id, None, 1_500).unwrap().claimed_at, Some(2_000));
        let fail = Outcome::failure("x".into(), None, None, None, 9);
        assert_eq!(st.fail(&b.id, &fail, 1_999).unwrap().finished_at, Some(2_000));
        let c = add(&st, 10, 3_000);
        assert_eq!(st.fail(&c.id, &fail, 2_500).unwrap().finished_at, Some(3_000));
    }

    #[test]
    fn requeue_clones_as_new_queued_task_and_keeps_the_original() {
        let st = store();
        let t = add(&st, 10, 0);
        st.claim_task(&t.id, None, 0).unwrap();
        st.expire(50_000).unwrap();
        let n = st.requeue(&t.id, 50_001).unwrap();
        assert_ne!(n.id, t.id);
        assert_eq!((n.status, n.attempts, n.timeout), (Status::Queued, 0, 10));
        assert_eq!(st.task(&t.id).unwrap().status, Status::Failed);
    }

    #[test]
    fn purge_deletes_only_finished_tasks_older_than_the_cutoff() {
        let st = store();
        let queued = add(&st, 10, 0);
        let running = add(&st, 1_000_000, 0);
        st.claim_task(&running.id, None, 0).unwrap();
        let old = add(&st, 10, 0);
        st.claim_task(&old.id, None, 0).unwrap();
        st.complete(&old.id, &done("ok"), 100).unwrap();
        let edge = add(&st, 10, 0);
        st.fail(&edge.id, &Outcome::failure("x".into(), None, None, None, 9), 200).unwrap();
        assert_eq!(st.purge_batch(200, 10).unwrap(), 1, "strictly older than the cut-off");
        assert!(st.task(&old.id).is_err());
        for id in [&queued.id, &running.id, &edge.id] {
            assert!(st.task(id).is_ok());
        }
        assert_eq!(st.stats().unwrap().tasks, [1, 1, 0, 1]);
    }

    #[test]
    fn ended_stream_refuses_tasks_but_keeps_its_queue_claimable() {
        let st = store();
        let t = add(&st, 10, 0);
        assert!(st.end_stream("s", 1).unwrap().ended_at.is_some());
        assert_eq!(
            st.end_stream("s", 2).unwrap().ended_at,
            Some(1),
            "ending twice changes nothing"
        );
        let new =
            NewTask { stream: "s", tool_name: "t", task_class: "C", timeout: 1, payload: "{}" };
        assert_eq!(st.create_task(&new, 3).unwrap_err().http_status(), 409);
        assert_eq!(st.claim_next("s", None, 3).unwrap().0.unwrap().id, t.id);
    }

    #[test]
    fn ending_a_session_ends_its_streams_and_refuses_new_ones() {
        let st = store();
        st.end_session("sess", 1).unwrap();
        assert!(!st.stream("s").unwrap().active);
        assert_eq!(st.create_stream("sess", "t", None, 2).unwrap_err().http_status(), 409);
    }

    #[test]
    fn names_are_unique_and_checked() {
        let st = store();
        assert_eq!(st.create_session("sess", None, 0).unwrap_err().http_status(), 409);
        assert_eq!(st.create_stream("sess", "s", None, 0).unwrap_err().http_status(), 409);
        for bad in ["", "has space", "a/b", &"x".repeat(65), "é"] {
            assert_eq!(st.create_session(bad, None, 0).unwrap_err().http_status(), 400, "{bad:?}");
        }
        assert!(st.create_session(&"x".repeat(64), None, 0).is_ok());
    }

    #[test]
    fn names_of_only_dots_or_shaped_like_ids_are_refused() {
        let st = store();
        for bad in [".", "..", "...", "str_0123456789ab", "ses_ffffffffffff"] {
            let e = st.create_stream("sess", bad, None, 0).unwrap_err();
            assert_eq!(e.http_status(), 400, "{bad:?}");
        }
        assert!(st.create_stream("sess", "str_0123456789abc", None, 0).is_ok());
        assert!(st.create_stream("sess", ".hidden", None, 0).is_ok());
    }

    #[test]
    fn error_type_timeout_is_kept_for_the_server() {
        let st = store();
        let t = add(&st, 10, 0);
        let out = Outcome::failure("slow".into(), Some("TIMEOUT".into()), None, None, 99);
        let e = st.fail(&t.id, &out, 1).unwrap_err();
        assert_eq!(e.http_status(), 400);
        assert!(e.message().contains("SCRIPT_TIMEOUT"), "{e}");
        assert_eq!(st.task(&t.id).unwrap().status, Status::Queued);
    }

    // Cause: with other streams' queues long, SQLite walked the status index
    // through all of them on every claim (10 ms at 100,000 tasks); and each
    // purge batch sorted every finished task.
    #[test]
    fn regression_claim_peek_and_purge_use_their_own_indexes() {
        let st = store();
        let conn = st.lock();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {NEXT_QUEUED}"))
            .unwrap()
            .query_map(["x"], |r| r.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(plan.iter().any(|p| p.contains("tasks_queued")), "{plan:?}");
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {OLDEST_FINISHED}"))
            .unwrap()
            .query_map(params![1, 1], |r| r.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(plan.iter().any(|p| p.contains("tasks_finished")), "{plan:?}");
        assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "{plan:?}");
        drop(conn);
        let new =
            NewTask { stream: "s", tool_name: "t", task_class: "C", timeout: 1, payload: "{}" };
        let t = st.create_task(&new, 0).unwrap();
        assert_eq!(st.peek("s").unwrap().0.unwrap().id, t.id);
    }

    #[test]
    fn a_panic_while_holding_the_store_does_not_poison_it_for_others() {
        let st = std::sync::Arc::new(store());
        let t = add(&st, 10, 0);
        let held = st.clone();
        let crashed = std::thread::spawn(move || {
            let conn = held.lock();
            let _tx = conn.unchecked_transaction().unwrap();
            panic!("a handler fails while it holds the store");
        })
        .join();
        assert!(crashed.is_err());
        assert!(st.conn.is_poisoned());
        assert_eq!(st.claim_next("s", None, 1).unwrap().0.unwrap().id, t.id);
        assert_eq!(st.stats().unwrap().tasks[1], 1);
    }

    #[test]
    fn counts_follow_every_transition() {
        let st = store();
        let a = add(&st, 10, 0);
        let b = add(&st, 10, 0);
        add(&st, 10, 0);
        st.claim_task(&a.id, None, 0).unwrap();
        st.complete(&a.id, &done("ok"), 1).unwrap();
        st.fail(&b.id, &Outcome::failure("x".into(), None, None, None, 9), 1).unwrap();
        assert_eq!(st.stream("s").unwrap().counts, [1, 0, 1, 1]);
        assert_eq!(st.stats().unwrap().tasks, [1, 0, 1, 1]);
    }

    #[test]
    fn reopening_keeps_data_and_schema_version() {
        let st = store();
        add(&st, 10, 0);
        let path: String = st.lock().query_row("PRAGMA database_list", [], |r| r.get(2)).unwrap();
        drop(st);
        let st = Store::open(Path::new(&path), Synchronous::Full).unwrap();
        assert_eq!(st.stats().unwrap().tasks[0], 1);
        let v: i64 = st.lock().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        assert_eq!(st.integrity_check().unwrap(), "ok");
    }
}
