//! The command line: turns the arguments into an `Invocation`, and holds the
//! help text of every command. Pure parsing: it reads no file named by a flag,
//! opens no database and prints nothing; `main` prints help and version.
//!
//! Values that need the config or the database (names, tools, JSON) are
//! checked by the commands; here only their shape is: numbers, ranges, choices.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use lexopt::prelude::*;
use lexopt::Parser;

use crate::error::Error;

type Result<T> = std::result::Result<T, Error>;

/// What one run of `sparkq` was asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// `--config PATH`, given before the command.
    pub config: Option<PathBuf>,
    /// `--json`: print JSON instead of a table or text.
    pub json: bool,
    pub command: Command,
}

/// The flags of `setup`; each is `None` (or empty) when not given.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SetupArgs {
    pub name: Option<String>,
    pub repo_path: Option<String>,
    pub prd_path: Option<String>,
    pub port: Option<u16>,
    /// Every `--script-dir`, in order.
    pub script_dirs: Vec<String>,
    pub yes: bool,
    pub force: bool,
}

/// One command with its arguments, checked for shape but not against the
/// config or the database.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Print this text on stdout and exit 0.
    Help(String),
    /// Print the version on stdout and exit 0.
    Version,
    Setup(SetupArgs),
    Run {
        host: Option<String>,
        /// 0 asks for a free port.
        port: Option<u16>,
    },
    Stop,
    Status,
    Reload,
    SessionCreate {
        name: String,
        description: Option<String>,
    },
    SessionList {
        /// `active` or `ended`.
        status: Option<String>,
    },
    SessionEnd {
        name: String,
    },
    StreamCreate {
        name: String,
        session: String,
        instructions: Option<String>,
    },
    StreamList {
        session: Option<String>,
        /// `active` or `ended`.
        status: Option<String>,
    },
    StreamEnd {
        name: String,
    },
    Enqueue {
        stream: String,
        tool: String,
        task_class: Option<String>,
        /// Seconds, at least 1.
        timeout: Option<u64>,
        /// JSON text, checked by the command.
        payload: Option<String>,
        prompt: Option<String>,
        /// Not read here; never set together with `prompt`.
        prompt_file: Option<PathBuf>,
        /// JSON text, checked by the command.
        metadata: Option<String>,
    },
    Peek {
        /// `None` is left to the command, which lists the streams with work.
        stream: Option<String>,
    },
    Claim {
        /// `None` is left to the command, which lists the streams with work.
        stream: Option<String>,
        worker_id: Option<String>,
        /// Seconds to wait for a task, 0 or more; finite.
        wait: Option<f64>,
    },
    Complete {
        task_id: String,
        summary: String,
        result: Option<String>,
        /// Not read here; never set together with `result`.
        result_file: Option<PathBuf>,
        stdout: Option<String>,
        stderr: Option<String>,
    },
    Fail {
        task_id: String,
        error: String,
        error_type: Option<String>,
        stdout: Option<String>,
        stderr: Option<String>,
    },
    Tasks {
        /// `queued`, `running`, `succeeded` or `failed`.
        status: Option<String>,
        stream: Option<String>,
        stale: bool,
        /// 1 to 1000.
        limit: Option<u32>,
    },
    Task {
        id: String,
    },
    Requeue {
        id: String,
    },
    Purge {
        /// The cut-off age in seconds; `None` means the config's default.
        older_than: Option<u64>,
    },
    ScriptsList,
    ScriptsSearch {
        query: String,
    },
}

/// Parses the arguments of `sparkq`, without the program name.
pub fn parse(args: Vec<OsString>) -> Result<Invocation> {
    let mut p = Parser::from_args(args);
    let mut config = None;
    let mut json = false;

    let command = loop {
        let Some(arg) = p.next()? else {
            return Err(Error::Invalid("missing command".into()));
        };
        match arg {
            Short('h') | Long("help") => break no_value(&mut p, Command::Help(HELP.into()))?,
            Short('V') | Long("version") => break no_value(&mut p, Command::Version)?,
            Long("config") => {
                let path = p.value()?;
                if path.is_empty() {
                    return Err(invalid("--config", &path, "empty path"));
                }
                config = Some(PathBuf::from(path));
            }
            Long("json") => json = true,
            Value(name) => break parse_command(&mut p, &name, &mut json)?,
            arg => return Err(unexpected(arg, None, HELP)),
        }
    };

    if json && matches!(command, Command::Run { .. }) {
        return Err(no_json("run"));
    }
    Ok(Invocation { config, json, command })
}

/// Parses the arguments the process was started with.
pub fn parse_env() -> Result<Invocation> {
    parse(std::env::args_os().skip(1).collect())
}

/// `command`, unless the flag just read came with a value (`--help=x`).
fn no_value(p: &mut Parser, command: Command) -> Result<Command> {
    match p.raw_args() {
        Ok(_) => Ok(command),
        Err(e) => Err(e.into()),
    }
}

/// Every command with its help, in the order of the top-level help.
const COMMANDS: &[(&str, &str)] = &[
    ("setup", SETUP_HELP),
    ("run", RUN_HELP),
    ("stop", STOP_HELP),
    ("status", STATUS_HELP),
    ("reload", RELOAD_HELP),
    ("session", SESSION_HELP),
    ("stream", STREAM_HELP),
    ("enqueue", ENQUEUE_HELP),
    ("peek", PEEK_HELP),
    ("claim", CLAIM_HELP),
    ("complete", COMPLETE_HELP),
    ("fail", FAIL_HELP),
    ("tasks", TASKS_HELP),
    ("task", TASK_HELP),
    ("requeue", REQUEUE_HELP),
    ("purge", PURGE_HELP),
    ("scripts", SCRIPTS_HELP),
    ("help", HELP),
];

const SESSION_COMMANDS: &[&str] = &["create", "list", "end"];
const STREAM_COMMANDS: &[&str] = &["create", "list", "end"];
const SCRIPTS_COMMANDS: &[&str] = &["list", "search"];

const ACTIVE_ENDED: &[&str] = &["active", "ended"];
const TASK_STATUSES: &[&str] = &["queued", "running", "succeeded", "failed"];

/// The largest timeout, wait or purge age in seconds: about 136 years, far
/// past any real use, and small enough that milliseconds never overflow.
const MAX_SECONDS: u64 = u32::MAX as u64;

/// Looks up the command named `name` and lets its own loop take over.
///
/// N.B. `-h` or `--help` anywhere after the command shows its help, even
/// where it would be the value of an option (`--summary --help`): asking for
/// help wins over everything else on the line. `--` ends this search.
fn parse_command(p: &mut Parser, name: &OsStr, json: &mut bool) -> Result<Command> {
    let (name, help) = lookup(&name.to_string_lossy())?;
    if wants_help(p) {
        return Ok(Command::Help(help.into()));
    }

    match name {
        "setup" => parse_setup(p, json),
        "run" => parse_run(p),
        "stop" => parse_bare(p, json, "stop", STOP_HELP, Command::Stop),
        "status" => parse_bare(p, json, "status", STATUS_HELP, Command::Status),
        "reload" => parse_bare(p, json, "reload", RELOAD_HELP, Command::Reload),
        "session" => parse_session(p, json),
        "stream" => parse_stream(p, json),
        "enqueue" => parse_enqueue(p, json),
        "peek" => parse_peek(p, json),
        "claim" => parse_claim(p, json),
        "complete" => parse_complete(p, json),
        "fail" => parse_fail(p, json),
        "tasks" => parse_tasks(p, json),
        "task" => parse_task(p, json),
        "requeue" => parse_requeue(p, json),
        "purge" => parse_purge(p, json),
        "scripts" => parse_scripts(p, json),
        _ => parse_help(p),
    }
}

/// The name and help of the command called `word`.
fn lookup(word: &str) -> Result<(&'static str, &'static str)> {
    match COMMANDS.iter().find(|(n, _)| *n == word) {
        Some(&found) => Ok(found),
        None => {
            let names: Vec<&str> = COMMANDS.iter().map(|(n, _)| *n).collect();
            Err(unknown_word("command", word, &names))
        }
    }
}

/// The subcommands of the command called `name`; empty for most.
fn subcommands(name: &str) -> &'static [&'static str] {
    match name {
        "session" => SESSION_COMMANDS,
        "stream" => STREAM_COMMANDS,
        "scripts" => SCRIPTS_COMMANDS,
        _ => &[],
    }
}

/// Returns true if and only if `-h` or `--help` is among the arguments left,
/// before any `--`.
fn wants_help(p: &mut Parser) -> bool {
    let Some(raw) = p.try_raw_args() else {
        return false;
    };
    let rest = raw.as_slice();
    rest.iter().take_while(|a| *a != "--").any(|a| a == "-h" || a == "--help")
}

/// `help [COMMAND [SUBCOMMAND]]`.
fn parse_help(p: &mut Parser) -> Result<Command> {
    let (mut name, mut help) = ("", HELP);
    let mut words = 0;

    while let Some(arg) = p.next()? {
        match arg {
            Value(word) if words == 0 => {
                (name, help) = lookup(&word.to_string_lossy())?;
                words = 1;
            }
            Value(word) if words == 1 && !subcommands(name).is_empty() => {
                let word = word.to_string_lossy();
                if !subcommands(name).contains(&word.as_ref()) {
                    let kind = format!("{name} command");
                    return Err(unknown_word(&kind, &word, subcommands(name)));
                }
                words = 2;
            }
            arg => return Err(unexpected(arg, Some("help"), HELP)),
        }
    }
    Ok(Command::Help(help.into()))
}

/// A command that takes no arguments besides `--json`.
fn parse_bare(
    p: &mut Parser,
    json: &mut bool,
    name: &str,
    help: &str,
    command: Command,
) -> Result<Command> {
    while let Some(arg) = p.next()? {
        match arg {
            Long("json") => *json = true,
            arg => return Err(unexpected(arg, Some(name), help)),
        }
    }
    Ok(command)
}

fn parse_setup(p: &mut Parser, json: &mut bool) -> Result<Command> {
    let (mut name, mut repo_path, mut prd_path, mut port) = (None, None, None, None);
    let mut script_dirs = Vec::new();
    let (mut yes, mut force) = (false, false);

    while let Some(arg) = p.next()? {
        match arg {
            Long("name") => name = Some(text(p, "--name")?),
            Long("repo-path") => repo_path = Some(text(p, "--repo-path")?),
            Long("prd-path") => prd_path = Some(text(p, "--prd-path")?),
            Long("port") => port = Some(port_number(p, "--port", 0)?),
            Long("script-dir") => script_dirs.push(text(p, "--script-dir")?),
            Long("yes") => yes = true,
            Long("force") => force = true,
            Long("json") => *json = true,
            arg => return Err(unexpected(arg, Some("setup"), SETUP_HELP)),
        }
    }
    Ok(Command::Setup(SetupArgs { name, repo_path, prd_path, port, script_dirs, yes, force }))
}

fn parse_run(p: &mut Parser) -> Result<Command> {
    let (mut host, mut port) = (None, None);

    while let Some(arg) = p.next()? {
        match arg {
            Long("host") => host = Some(text(p, "--host")?),
            Long("port") => port = Some(port_number(p, "--port", 0)?),
            Long("json") => return Err(no_json("run")),
            arg => return Err(unexpected(arg, Some("run"), RUN_HELP)),
        }
    }
    Ok(Command::Run { host, port })
}

fn parse_session(p: &mut Parser, json: &mut bool) -> Result<Command> {
    let sub = subcommand(p, json, "session")?;
    let cmd = format!("session {sub}");
    let (mut name, mut description, mut status) = (None, None, None);

    while let Some(arg) = p.next()? {
        match arg {
            Long("description") if sub == "create" => description = Some(text(p, "--description")?),
            Long("status") if sub == "list" => status = Some(choice(p, "--status", ACTIVE_ENDED)?),
            Long("json") => *json = true,
            Value(v) if sub != "list" && name.is_none() => name = Some(word(v, "session name")?),
            arg => return Err(unexpected(arg, Some(&cmd), SESSION_HELP)),
        }
    }

    Ok(match sub {
        "create" => Command::SessionCreate { name: needed(name, "session name")?, description },
        "list" => Command::SessionList { status },
        _ => Command::SessionEnd { name: needed(name, "session name")? },
    })
}

fn parse_stream(p: &mut Parser, json: &mut bool) -> Result<Command> {
    let sub = subcommand(p, json, "stream")?;
    let cmd = format!("stream {sub}");
    let (mut name, mut session, mut instructions, mut status) = (None, None, None, None);

    while let Some(arg) = p.next()? {
        match arg {
            Long("session") if sub != "end" => session = Some(text(p, "--session")?),
            Long("instructions") if sub == "create" => {
                instructions = Some(text(p, "--instructions")?)
            }
            Long("status") if sub == "list" => status = Some(choice(p, "--status", ACTIVE_ENDED)?),
            Long("json") => *json = true,
            Value(v) if sub != "list" && name.is_none() => name = Some(word(v, "stream name")?),
            arg => return Err(unexpected(arg, Some(&cmd), STREAM_HELP)),
        }
    }

    Ok(match sub {
        "create" => Command::StreamCreate {
            name: needed(name, "stream name")?,
            session: needed(session, "--session")?,
            instructions,
        },
        "list" => Command::StreamList { session, status },
        _ => Command::StreamEnd { name: needed(name, "stream name")? },
    })
}

fn parse_enqueue(p: &mut Parser, json: &mut bool) -> Result<Command> {
    let (mut stream, mut tool, mut task_class, mut timeout) = (None, None, None, None);
    let (mut payload, mut prompt, mut prompt_file, mut metadata) = (None, None, None, None);

    while let Some(arg) = p.next()? {
        match arg {
            Long("stream") => stream = Some(text(p, "--stream")?),
            Long("tool") => tool = Some(text(p, "--tool")?),
            Long("task-class") => task_class = Some(text(p, "--task-class")?),
            Long("timeout") => timeout = Some(positive(p, "--timeout")?),
            Long("payload") => payload = Some(text(p, "--payload")?),
            Long("prompt") => prompt = Some(text(p, "--prompt")?),
            Long("prompt-file") => prompt_file = Some(path(p, "--prompt-file")?),
            Long("metadata") => metadata = Some(text(p, "--metadata")?),
            Long("json") => *json = true,
            arg => return Err(unexpected(arg, Some("enqueue"), ENQUEUE_HELP)),
        }
    }

    if prompt.is_some() && prompt_file.is_some() {
        return Err(together("--prompt", "--prompt-file"));
    }
    Ok(Command::Enqueue {
        stream: needed(stream, "--stream")?,
        tool: needed(tool, "--tool")?,
        task_class,
        timeout,
        payload,
        prompt,
        prompt_file,
        metadata,
    })
}

fn parse_peek(p: &mut Parser, json: &mut bool) -> Result<Command> {
    let mut stream = None;

    while let Some(arg) = p.next()? {
        match arg {
            Long("stream") => stream = Some(text(p, "--stream")?),
            Long("json") => *json = true,
            arg => return Err(unexpected(arg, Some("peek"), PEEK_HELP)),
        }
    }
    Ok(Command::Peek { stream })
}

fn parse_claim(p: &mut Parser, json: &mut bool) -> Result<Command> {
    let (mut stream, mut worker_id, mut wait) = (None, None, None);

    while let Some(arg) = p.next()? {
        match arg {
            Long("stream") => stream = Some(text(p, "--stream")?),
            Long("worker-id") => worker_id = Some(text(p, "--worker-id")?),
            Long("wait") => wait = Some(seconds(p, "--wait")?),
            Long("json") => *json = true,
            arg => return Err(unexpected(arg, Some("claim"), CLAIM_HELP)),
        }
    }
    Ok(Command::Claim { stream, worker_id, wait })
}

fn parse_complete(p: &mut Parser, json: &mut bool) -> Result<Command> {
    let (mut bare_id, mut flag_id, mut summary) = (None, None, None);
    let (mut result, mut result_file, mut stdout, mut stderr) = (None, None, None, None);

    while let Some(arg) = p.next()? {
        match arg {
            Long("task-id") => flag_id = Some(text(p, "--task-id")?),
            Long("summary") => summary = Some(output(p)?),
            Long("result") => result = Some(output(p)?),
            Long("result-file") => result_file = Some(path(p, "--result-file")?),
            Long("stdout") => stdout = Some(output(p)?),
            Long("stderr") => stderr = Some(output(p)?),
            Long("json") => *json = true,
            Value(v) if bare_id.is_none() => bare_id = Some(word(v, "task id")?),
            arg => return Err(unexpected(arg, Some("complete"), COMPLETE_HELP)),
        }
    }

    if result.is_some() && result_file.is_some() {
        return Err(together("--result", "--result-file"));
    }
    Ok(Command::Complete {
        task_id: task_id(bare_id, flag_id)?,
        summary: needed(summary, "--summary")?,
        result,
        result_file,
        stdout,
        stderr,
    })
}

fn parse_fail(p: &mut Parser, json: &mut bool) -> Result<Command> {
    let (mut bare_id, mut flag_id, mut error) = (None, None, None);
    let (mut error_type, mut stdout, mut stderr) = (None, None, None);

    while let Some(arg) = p.next()? {
        match arg {
            Long("task-id") => flag_id = Some(text(p, "--task-id")?),
            Long("error") => error = Some(output(p)?),
            Long("error-type") => error_type = Some(text(p, "--error-type")?),
            Long("stdout") => stdout = Some(output(p)?),
            Long("stderr") => stderr = Some(output(p)?),
            Long("json") => *json = true,
            Value(v) if bare_id.is_none() => bare_id = Some(word(v, "task id")?),
            arg => return Err(unexpected(arg, Some("fail"), FAIL_HELP)),
        }
    }

    Ok(Command::Fail {
        task_id: task_id(bare_id, flag_id)?,
        error: needed(error, "--error")?,
        error_type,
        stdout,
        stderr,
    })
}

fn parse_tasks(p: &mut Parser, json: &mut bool) -> Result<Command> {
    let (mut status, mut stream, mut stale, mut limit) = (None, None, false, None);

    while let Some(arg) = p.next()? {
        match arg {
            Long("status") => status = Some(choice(p, "--status", TASK_STATUSES)?),
            Long("stream") => stream = Some(text(p, "--stream")?),
            Long("stale") => stale = true,
            Long("limit") => limit = Some(limit_number(p, "--limit")?),
            Long("json") => *json = true,
            arg => return Err(unexpected(arg, Some("tasks"), TASKS_HELP)),
        }
    }
    Ok(Command::Tasks { status, stream, stale, limit })
}

fn parse_task(p: &mut Parser, json: &mut bool) -> Result<Command> {
    let id = one_positional(p, json, "task", TASK_HELP, "task id")?;
    Ok(Command::Task { id })
}

fn parse_requeue(p: &mut Parser, json: &mut bool) -> Result<Command> {
    let id = one_positional(p, json, "requeue", REQUEUE_HELP, "task id")?;
    Ok(Command::Requeue { id })
}

fn parse_purge(p: &mut Parser, json: &mut bool) -> Result<Command> {
    let mut older_than = None;

    while let Some(arg) = p.next()? {
        match arg {
            Long("older-than") => older_than = Some(age(p, "--older-than")?),
            Long("json") => *json = true,
            arg => return Err(unexpected(arg, Some("purge"), PURGE_HELP)),
        }
    }
    Ok(Command::Purge { older_than })
}

fn parse_scripts(p: &mut Parser, json: &mut bool) -> Result<Command> {
    let sub = subcommand(p, json, "scripts")?;
    if sub == "list" {
        return parse_bare(p, json, "scripts list", SCRIPTS_HELP, Command::ScriptsList);
    }
    let query = one_positional(p, json, "scripts search", SCRIPTS_HELP, "search query")?;
    Ok(Command::ScriptsSearch { query })
}

/// Reads the subcommand of `cmd`; `--json` may come before it.
fn subcommand(p: &mut Parser, json: &mut bool, cmd: &str) -> Result<&'static str> {
    let subs = subcommands(cmd);
    loop {
        match p.next()? {
            Some(Long("json")) => *json = true,
            Some(Value(v)) => {
                let v = v.to_string_lossy();
                return match subs.iter().find(|s| **s == v) {
                    Some(sub) => Ok(sub),
                    None => Err(unknown_word(&format!("{cmd} command"), &v, subs)),
                };
            }
            Some(arg) => {
                let help = lookup(cmd).map_or(HELP, |(_, help)| help);
                return Err(unexpected(arg, Some(cmd), help));
            }
            None => {
                let list = or_list(subs);
                return Err(Error::Invalid(format!("missing {cmd} command: {list}")));
            }
        }
    }
}

/// A command whose only argument is one required positional `what`.
fn one_positional(
    p: &mut Parser,
    json: &mut bool,
    cmd: &str,
    help: &str,
    what: &str,
) -> Result<String> {
    let mut value = None;

    while let Some(arg) = p.next()? {
        match arg {
            Long("json") => *json = true,
            Value(v) if value.is_none() => value = Some(word(v, what)?),
            arg => return Err(unexpected(arg, Some(cmd), help)),
        }
    }
    needed(value, what)
}

/// The id of `complete` and `fail`: the bare argument, `--task-id`, or
/// both when they agree.
fn task_id(bare: Option<String>, flag: Option<String>) -> Result<String> {
    match (bare, flag) {
        (Some(bare), Some(flag)) if bare != flag => Err(Error::Invalid(format!(
            "two different task ids given: {bare:?} and --task-id {flag:?}"
        ))),
        (Some(id), _) | (None, Some(id)) => Ok(id),
        (None, None) => Err(Error::Invalid(
            "missing task id: give --task-id ID or the id as the first argument".into(),
        )),
    }
}

/// The value of `opt` as text.
fn text(p: &mut Parser, opt: &str) -> Result<String> {
    let value = p.value()?;
    value.into_string().map_err(|v| invalid(opt, &v, "not valid UTF-8"))
}

/// The next value as worker output: bytes that are not UTF-8 become
/// U+FFFD, so a worker's binary output is stored, never refused.
fn output(p: &mut Parser) -> Result<String> {
    Ok(p.value()?.to_string_lossy().into_owned())
}

/// The value of `opt` as a path, kept as given.
fn path(p: &mut Parser, opt: &str) -> Result<PathBuf> {
    let value = p.value()?;
    if value.is_empty() {
        return Err(invalid(opt, &value, "empty path"));
    }
    Ok(PathBuf::from(value))
}

/// A positional argument as text; `what` names it in the error.
fn word(value: OsString, what: &str) -> Result<String> {
    value.into_string().map_err(|v| {
        Error::Invalid(format!("invalid {what}: {:?}: not valid UTF-8", v.to_string_lossy()))
    })
}

/// The value of `opt`, which must be one of `valid`.
fn choice(p: &mut Parser, opt: &str, valid: &[&str]) -> Result<String> {
    let value = text(p, opt)?;
    if valid.contains(&value.as_str()) {
        return Ok(value);
    }
    let why = format!("expected {}", or_list(valid));
    Err(invalid(opt, OsStr::new(&value), &why))
}

/// Parses a whole number written only with ASCII digits, so that `+5`, ` 5`
/// and `5.0` are refused. `Err(true)` means the digits overflow a `u64`.
fn digits(s: &str) -> std::result::Result<u64, bool> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(false);
    }
    s.parse().map_err(|_| true)
}

/// A task timeout: a whole number of seconds from 1 to the most a task
/// may have, the same bound the API keeps.
fn positive(p: &mut Parser, opt: &str) -> Result<u64> {
    let value = text(p, opt)?;
    let max = crate::config::MAX_TIMEOUT_SECONDS;
    let big = || invalid(opt, OsStr::new(&value), &format!("too large (at most {max} seconds)"));
    match digits(&value) {
        Ok(n) if n > max => Err(big()),
        Ok(n) if n > 0 => Ok(n),
        Err(true) => Err(big()),
        _ => Err(invalid(opt, OsStr::new(&value), "not a positive whole number")),
    }
}

/// A port number, `min` to 65535.
fn port_number(p: &mut Parser, opt: &str, min: u16) -> Result<u16> {
    let value = text(p, opt)?;
    match digits(&value) {
        Ok(n) if n >= u64::from(min) && n <= u64::from(u16::MAX) => Ok(n as u16),
        _ => {
            let why = format!("not a port number from {min} to 65535");
            Err(invalid(opt, OsStr::new(&value), &why))
        }
    }
}

/// A list limit, 1 to 1000.
fn limit_number(p: &mut Parser, opt: &str) -> Result<u32> {
    let value = text(p, opt)?;
    match digits(&value) {
        Ok(n @ 1..=1000) => Ok(n as u32),
        _ => Err(invalid(opt, OsStr::new(&value), "not a whole number from 1 to 1000")),
    }
}

/// A number of seconds, 0 or more, with an optional decimal part: `30`,
/// `0.5`. No sign, exponent, `inf` or `nan`.
fn seconds(p: &mut Parser, opt: &str) -> Result<f64> {
    let value = text(p, opt)?;
    let (whole, frac) = value.split_once('.').unwrap_or((&value, ""));
    let plain = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + frac.len() == 0 || !plain(whole) || !plain(frac) {
        let why = "not a number of seconds (0 or more)";
        return Err(invalid(opt, OsStr::new(&value), why));
    }
    match value.parse::<f64>() {
        Ok(n) if n <= MAX_SECONDS as f64 => Ok(n),
        _ => Err(too_large(opt, &value)),
    }
}

/// An age such as `12h`, `3d` or `2w`, in seconds.
fn age(p: &mut Parser, opt: &str) -> Result<u64> {
    let value = text(p, opt)?;
    let unit = match value.chars().last() {
        Some('h') => 3600,
        Some('d') => 86_400,
        Some('w') => 7 * 86_400,
        _ => 0,
    };
    let number = if unit == 0 { Err(false) } else { digits(&value[..value.len() - 1]) };
    match number {
        Ok(n) if n > 0 => match n.checked_mul(unit) {
            Some(secs) if secs <= MAX_SECONDS => Ok(secs),
            _ => Err(too_large(opt, &value)),
        },
        Err(true) => Err(too_large(opt, &value)),
        _ => {
            let why = "not a positive whole number of hours, days or weeks (like 12h, 3d, 2w)";
            Err(invalid(opt, OsStr::new(&value), why))
        }
    }
}

/// `value`, or the error that `what` is missing.
fn needed(value: Option<String>, what: &str) -> Result<String> {
    value.ok_or_else(|| Error::Invalid(format!("missing {what}")))
}

fn invalid(opt: &str, value: &OsStr, why: &str) -> Error {
    Error::Invalid(format!("invalid value for {opt}: {:?}: {why}", value.to_string_lossy()))
}

fn too_large(opt: &str, value: &str) -> Error {
    invalid(opt, OsStr::new(value), &format!("too large (at most {MAX_SECONDS} seconds)"))
}

fn together(a: &str, b: &str) -> Error {
    Error::Invalid(format!("{a} and {b} cannot be used together"))
}

fn no_json(cmd: &str) -> Error {
    Error::Invalid(format!("--json does not apply to {cmd}"))
}

/// `a, b or c`.
fn or_list(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// The error for an argument that `cmd` (or the top level, for `None`) does
/// not take, with a close option name as a hint when there is one.
fn unexpected(arg: lexopt::Arg<'_>, cmd: Option<&str>, help: &str) -> Error {
    let scope = cmd.map(|c| format!(" for {c}")).unwrap_or_default();
    match arg.unexpected() {
        lexopt::Error::UnexpectedOption(opt) if opt == "--config" && cmd.is_some() => {
            Error::Invalid(format!(
                "--config goes before the command, as in 'sparkq --config PATH {}'",
                cmd.unwrap_or_default()
            ))
        }
        lexopt::Error::UnexpectedOption(opt) => {
            let known = options_in(help);
            // An option of another subcommand is not worth suggesting as is.
            let typed = opt.trim_start_matches('-');
            let hint = suggest(typed, &known)
                .filter(|o| *o != typed)
                .map(|o| format!("\ndid you mean \"--{o}\"?"))
                .unwrap_or_default();
            Error::Invalid(format!("unknown option {opt:?}{scope}{hint}"))
        }
        lexopt::Error::UnexpectedArgument(v) => {
            Error::Invalid(format!("unexpected argument {:?}{scope}", v.to_string_lossy()))
        }
        other => other.into(),
    }
}

/// The error for an unknown command or subcommand, with a close name.
fn unknown_word(kind: &str, word: &str, known: &[&str]) -> Error {
    let hint = suggest(word, known).map(|w| format!("\ndid you mean {w:?}?")).unwrap_or_default();
    Error::Invalid(format!("unknown {kind} {word:?}{hint}"))
}

/// The long option names (without dashes) that a help text lists.
fn options_in(help: &str) -> Vec<&str> {
    let lines = help.lines().filter(|l| l.starts_with("  -"));
    let words = lines.flat_map(|l| l.split_whitespace().take_while(|w| w.starts_with('-')));
    words.filter_map(|w| w.trim_end_matches(',').strip_prefix("--")).collect()
}

/// The name in `known` that `word` was most likely meant to be: one within a
/// third of its length in edits (at least 1), else the only one that `word`
/// begins (from 3 characters on).
fn suggest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    let close = known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, k)| *d <= (k.chars().count() / 3).max(1))
        .min_by_key(|(d, _)| *d);
    if let Some((_, k)) = close {
        return Some(k);
    }
    let mut prefixed = known.iter().filter(|k| word.chars().count() >= 3 && k.starts_with(word));
    match (prefixed.next(), prefixed.next()) {
        (Some(k), None) => Some(k),
        _ => None,
    }
}

/// The number of single-character insertions, deletions, substitutions and
/// swaps of neighbours that turn `a` into `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    rows[0] = (0..=b.len()).collect();

    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1).min(rows[i][j - 1] + 1).min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

/// Turns lexopt's errors into usage errors worded like ours.
impl From<lexopt::Error> for Error {
    fn from(err: lexopt::Error) -> Error {
        use lexopt::Error as E;

        let msg = match err {
            E::MissingValue { option: Some(opt) } => format!("missing value for {opt}"),
            E::MissingValue { option: None } => "missing value".to_string(),
            E::UnexpectedOption(opt) => format!("unknown option {opt:?}"),
            E::UnexpectedArgument(v) => format!("unexpected argument {:?}", v.to_string_lossy()),
            E::UnexpectedValue { option, value } => {
                format!("{option} takes no value, got {:?}", value.to_string_lossy())
            }
            E::NonUnicodeValue(v) => format!("{:?}: not valid UTF-8", v.to_string_lossy()),
            E::ParsingFailed { value, error } => format!("invalid value {value:?}: {error}"),
            E::Custom(err) => err.to_string(),
        };
        Error::Invalid(msg)
    }
}

const HELP: &str = "\
sparkq - a single-user task queue with a CLI, an HTTP API and a web dashboard

USAGE:
  sparkq [--config PATH] <COMMAND> [OPTIONS]
  sparkq help [COMMAND]

SERVER COMMANDS:
  setup     write sparkq.yml and create the database and the project
  run       start the server: HTTP API, dashboard and maintenance
  stop      stop the running server and wait for it to exit
  status    show whether the server runs, and the task counts
  reload    make the running server re-read sparkq.yml

WORK COMMANDS:
  session   create, list and end sessions
  stream    create, list and end streams, the FIFO queues of a session
  enqueue   add a task to a stream and print its id
  peek      print the next queued task of a stream without claiming it
  claim     take the oldest queued task of a stream
  complete  report a claimed task as done
  fail      report a task as failed

INSPECT COMMANDS:
  tasks     list tasks, newest first
  task      show one task in full
  requeue   queue a finished task again, as a new task
  purge     delete finished tasks older than a cut-off
  scripts   list or search the script index

GLOBAL OPTIONS:
  --config PATH   use this sparkq.yml, not $SPARKQ_CONFIG or the nearest one
  --json          print JSON instead of a table (after the command)
  -h, --help      print help; after a command, that command's help
  -V, --version   print the version

EXIT STATUS:
  0   done
  1   nothing to peek or claim
  2   error: usage, not found, refused transition, bad config, database

Run 'sparkq <COMMAND> --help' for that command's options.
";

const SETUP_HELP: &str = "\
sparkq setup - write sparkq.yml and create the database and the project

USAGE:
  sparkq setup [OPTIONS]

On a terminal it asks for each value; with --yes, or without a terminal, it
takes the flags and the defaults. Running it again keeps every task, and
keeps an existing sparkq.yml unless --force is given.

OPTIONS:
  --name NAME         project name [default: the directory's name]
  --repo-path PATH    repository the workers work in [default: config's dir]
  --prd-path PATH     product document that workers may read for context
  --port PORT         server port, 0 (a free one) to 65535 [default: 8420]
  --script-dir DIR    scripts to index, repeatable [default: scripts]
  --yes               ask nothing: take the flags and the defaults
  --force             rewrite an existing sparkq.yml from defaults and flags
  --json              print JSON instead of text
  -h, --help          print this help
";

const RUN_HELP: &str = "\
sparkq run - start the server in the foreground: API, dashboard, maintenance

USAGE:
  sparkq run [--host HOST] [--port PORT]

The first line printed is the URL it listens on. With no sparkq.yml found,
it creates the default one and the database in the current directory.

OPTIONS:
  --host HOST    address to listen on [default: server.host, 127.0.0.1]
  --port PORT    port to listen on, 0 for a free one [default: server.port]
  -h, --help     print this help
";

const STOP_HELP: &str = "\
sparkq stop - stop the running server and wait for it to exit

USAGE:
  sparkq stop

OPTIONS:
  --json         print JSON instead of text
  -h, --help     print this help
";

const STATUS_HELP: &str = "\
sparkq status - show whether the server runs, and the task counts by status

USAGE:
  sparkq status

Exits 0 whether or not a server runs.

OPTIONS:
  --json         print JSON instead of text
  -h, --help     print this help
";

const RELOAD_HELP: &str = "\
sparkq reload - make the running server re-read sparkq.yml and the scripts

USAGE:
  sparkq reload

A config that is invalid is reported, and the old one stays in force.

OPTIONS:
  --json         print JSON instead of text
  -h, --help     print this help
";

const SESSION_HELP: &str = "\
sparkq session - create, list and end sessions, the named periods of work

USAGE:
  sparkq session create NAME [--description TEXT]
  sparkq session list [--status STATUS]
  sparkq session end NAME

COMMANDS:
  create    start a session; NAME is 1-64 letters, digits, '-', '_' or '.'
  list      list the sessions
  end       end a session and its streams

OPTIONS:
  --description TEXT   what the session is for (create)
  --status STATUS      only sessions that are active or ended (list)
  --json               print JSON instead of a table
  -h, --help           print this help
";

const STREAM_HELP: &str = "\
sparkq stream - create, list and end streams, the FIFO queues of a session

USAGE:
  sparkq stream create NAME --session SESSION [--instructions TEXT]
  sparkq stream list [--session SESSION] [--status STATUS]
  sparkq stream end NAME

COMMANDS:
  create    add a stream to an active session; NAME as for sessions
  list      list the streams
  end       end a stream: no new tasks, but queued ones can still be claimed

OPTIONS:
  --session SESSION    the stream's session (create: required; list: filter)
  --instructions TEXT  what a worker reads before its first task (create)
  --status STATUS      only streams that are active or ended (list)
  --json               print JSON instead of a table
  -h, --help           print this help
";

const ENQUEUE_HELP: &str = "\
sparkq enqueue - add a task to a stream and print its id

USAGE:
  sparkq enqueue --stream NAME --tool TOOL [OPTIONS]

OPTIONS:
  --stream NAME        stream to add the task to (required)
  --tool TOOL          tool from sparkq.yml that does the work (required)
  --task-class CLASS   timeout class to use instead of the tool's
  --timeout SECONDS    timeout of this task, over the tool's and the class's
  --payload JSON       JSON object to start the payload from
  --prompt TEXT        set \"prompt\" in the payload
  --prompt-file PATH   set \"prompt\" from a file's text, and \"prompt_path\"
  --metadata JSON      JSON object to set as \"metadata\" in the payload
  --json               print JSON instead of text
  -h, --help           print this help
";

const PEEK_HELP: &str = "\
sparkq peek - print the next queued task of a stream without claiming it

USAGE:
  sparkq peek --stream NAME

Prints the task as one line of JSON; exits 1 when nothing is queued. Without
--stream it fails, listing the streams that have queued tasks.

OPTIONS:
  --stream NAME   stream to look at
  --json          accepted; the output is JSON anyway
  -h, --help      print this help
";

const CLAIM_HELP: &str = "\
sparkq claim - take the oldest queued task of a stream

USAGE:
  sparkq claim --stream NAME [--worker-id ID] [--wait SECONDS]

Prints the task as one line of JSON, with its payload and the stream's
instructions; exits 1 when nothing is queued, after --wait if given. Without
--stream it fails, listing the streams that have queued tasks.

OPTIONS:
  --stream NAME      stream to take the task from
  --worker-id ID     who takes the task, recorded on it
  --wait SECONDS     wait up to this long for a task to arrive (0 or more)
  --json             accepted; the output is JSON anyway
  -h, --help         print this help
";

const COMPLETE_HELP: &str = "\
sparkq complete - report a claimed task as done

USAGE:
  sparkq complete ID --summary TEXT [OPTIONS]
  sparkq complete --task-id ID --summary TEXT [OPTIONS]

OPTIONS:
  --task-id ID         task to complete (or give the id first, bare)
  --summary TEXT       what was done (required)
  --result TEXT        the result, kept as JSON when it parses as JSON
  --result-file PATH   read the result from this file instead
  --stdout TEXT        the work's standard output
  --stderr TEXT        the work's standard error
  --json               print JSON instead of text
  -h, --help           print this help
";

const FAIL_HELP: &str = "\
sparkq fail - report a task as failed

USAGE:
  sparkq fail ID --error MESSAGE [OPTIONS]
  sparkq fail --task-id ID --error MESSAGE [OPTIONS]

OPTIONS:
  --task-id ID         task that failed (or give the id first, bare)
  --error MESSAGE      what went wrong (required)
  --error-type TYPE    a short name for the kind of error, like EXIT_CODE
  --stdout TEXT        the work's standard output
  --stderr TEXT        the work's standard error
  --json               print JSON instead of text
  -h, --help           print this help
";

const TASKS_HELP: &str = "\
sparkq tasks - list tasks, newest first

USAGE:
  sparkq tasks [--status STATUS] [--stream NAME] [--stale] [--limit N]

OPTIONS:
  --status STATUS   only tasks that are queued, running, succeeded or failed
  --stream NAME     only tasks of this stream
  --stale           only running tasks that are past their timeout
  --limit N         list at most N tasks, 1 to 1000 [default: 100]
  --json            print JSON instead of a table
  -h, --help        print this help
";

const TASK_HELP: &str = "\
sparkq task - show one task in full

USAGE:
  sparkq task ID

OPTIONS:
  --json         print JSON instead of text
  -h, --help     print this help
";

const REQUEUE_HELP: &str = "\
sparkq requeue - queue a finished task again as a new task, and print its id

USAGE:
  sparkq requeue ID

Takes a succeeded or failed task; the original is left as it is.

OPTIONS:
  --json         print JSON instead of text
  -h, --help     print this help
";

const PURGE_HELP: &str = "\
sparkq purge - delete finished tasks older than a cut-off

USAGE:
  sparkq purge [--older-than AGE]

Deletes succeeded and failed tasks only, never queued or running ones. The
default age is purge.older_than_days in sparkq.yml (3 days).

OPTIONS:
  --older-than AGE   a whole number of hours, days or weeks: 12h, 3d, 2w
  --json             print JSON instead of text
  -h, --help         print this help
";

const SCRIPTS_HELP: &str = "\
sparkq scripts - list or search the script index

USAGE:
  sparkq scripts list
  sparkq scripts search QUERY

COMMANDS:
  list      list every indexed script
  search    scripts whose name, description or tags contain QUERY, any case

OPTIONS:
  --json         print JSON instead of a table
  -h, --help     print this help
";

#[cfg(test)]
mod tests {
    use super::*;

    // Splits a command line on spaces, as lexopt's own tests do; values with
    // spaces go through `run` with a slice.
    fn line(l: &str) -> Result<Invocation> {
        run(&l.split_whitespace().collect::<Vec<_>>())
    }

    fn run(args: &[&str]) -> Result<Invocation> {
        parse(args.iter().map(OsString::from).collect())
    }

    fn command(l: &str) -> Command {
        line(l).unwrap_or_else(|e| panic!("{l:?} failed: {e}")).command
    }

    fn error(l: &str) -> String {
        match line(l) {
            Ok(inv) => panic!("{l:?} parsed as {inv:?}"),
            Err(Error::Invalid(m)) => m,
            Err(e) => panic!("{l:?} gave a non-usage error: {e:?}"),
        }
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    fn enqueue(timeout: Option<u64>, prompt_file: Option<&str>) -> Command {
        Command::Enqueue {
            stream: "q".into(),
            tool: "t".into(),
            task_class: None,
            timeout,
            payload: None,
            prompt: None,
            prompt_file: prompt_file.map(PathBuf::from),
            metadata: None,
        }
    }

    fn claim(stream: Option<&str>, wait: Option<f64>) -> Command {
        Command::Claim { stream: stream.map(String::from), worker_id: None, wait }
    }

    fn complete(result: Option<&str>, result_file: Option<&str>) -> Command {
        Command::Complete {
            task_id: "tsk_1".into(),
            summary: "done".into(),
            result: result.map(String::from),
            result_file: result_file.map(PathBuf::from),
            stdout: None,
            stderr: None,
        }
    }

    fn tasks(limit: Option<u32>) -> Command {
        Command::Tasks { status: None, stream: None, stale: false, limit }
    }

    #[test]
    fn every_command_parses() {
        let setup = Command::Setup(SetupArgs {
            name: None,
            repo_path: None,
            prd_path: None,
            port: None,
            script_dirs: vec![],
            yes: false,
            force: false,
        });
        let fail = Command::Fail {
            task_id: "tsk_1".into(),
            error: "boom".into(),
            error_type: None,
            stdout: None,
            stderr: None,
        };
        let cases: Vec<(&str, Command)> = vec![
            ("setup", setup),
            (
                "setup --name demo --repo-path=. --prd-path docs/prd.md --port 9000 \
                 --script-dir a --script-dir=b --yes --force",
                Command::Setup(SetupArgs {
                    name: s("demo"),
                    repo_path: s("."),
                    prd_path: s("docs/prd.md"),
                    port: Some(9000),
                    script_dirs: vec!["a".into(), "b".into()],
                    yes: true,
                    force: true,
                }),
            ),
            ("run", Command::Run { host: None, port: None }),
            ("run --host 127.0.0.1 --port 0", Command::Run { host: s("127.0.0.1"), port: Some(0) }),
            ("run --port=65535", Command::Run { host: None, port: Some(65535) }),
            ("stop", Command::Stop),
            ("status", Command::Status),
            ("reload", Command::Reload),
            ("session create s1", Command::SessionCreate { name: "s1".into(), description: None }),
            (
                "session create --description why s1",
                Command::SessionCreate { name: "s1".into(), description: s("why") },
            ),
            ("session list", Command::SessionList { status: None }),
            ("session list --status ended", Command::SessionList { status: s("ended") }),
            ("session list --status=active", Command::SessionList { status: s("active") }),
            ("session end s1", Command::SessionEnd { name: "s1".into() }),
            (
                "stream create q --session s1",
                Command::StreamCreate {
                    name: "q".into(),
                    session: "s1".into(),
                    instructions: None,
                },
            ),
            (
                "stream create --session=s1 --instructions brief q",
                Command::StreamCreate {
                    name: "q".into(),
                    session: "s1".into(),
                    instructions: s("brief"),
                },
            ),
            ("stream list", Command::StreamList { session: None, status: None }),
            (
                "stream list --session s1 --status active",
                Command::StreamList { session: s("s1"), status: s("active") },
            ),
            ("stream end q", Command::StreamEnd { name: "q".into() }),
            ("enqueue --stream q --tool t", enqueue(None, None)),
            ("enqueue --tool=t --stream=q --timeout 45", enqueue(Some(45), None)),
            ("enqueue --stream q --tool t --timeout 10000000", enqueue(Some(10_000_000), None)),
            ("enqueue --stream q --tool t --prompt-file no/such", enqueue(None, Some("no/such"))),
            (
                "enqueue --stream q --tool t --task-class FAST_SCRIPT --payload {\"a\":1} \
                 --prompt -x --metadata {}",
                Command::Enqueue {
                    stream: "q".into(),
                    tool: "t".into(),
                    task_class: s("FAST_SCRIPT"),
                    timeout: None,
                    payload: s("{\"a\":1}"),
                    prompt: s("-x"),
                    prompt_file: None,
                    metadata: s("{}"),
                },
            ),
            ("peek", Command::Peek { stream: None }),
            ("peek --stream q", Command::Peek { stream: s("q") }),
            ("claim", claim(None, None)),
            ("claim --stream=q --wait=0", claim(Some("q"), Some(0.0))),
            ("claim --wait .5", claim(None, Some(0.5))),
            ("claim --wait 3.", claim(None, Some(3.0))),
            ("claim --wait 2.25", claim(None, Some(2.25))),
            (
                "claim --stream q --worker-id w1",
                Command::Claim { stream: s("q"), worker_id: s("w1"), wait: None },
            ),
            ("complete tsk_1 --summary done", complete(None, None)),
            ("complete --summary done tsk_1", complete(None, None)),
            ("complete --task-id tsk_1 --summary done", complete(None, None)),
            ("complete --task-id=tsk_1 tsk_1 --summary=done", complete(None, None)),
            ("complete --task-id a --task-id tsk_1 --summary done", complete(None, None)),
            ("complete tsk_1 --summary done --result [1]", complete(Some("[1]"), None)),
            ("complete tsk_1 --summary done --result-file r.json", complete(None, Some("r.json"))),
            (
                "complete tsk_1 --summary done --stdout out --stderr err",
                Command::Complete {
                    task_id: "tsk_1".into(),
                    summary: "done".into(),
                    result: None,
                    result_file: None,
                    stdout: s("out"),
                    stderr: s("err"),
                },
            ),
            ("fail tsk_1 --error boom", fail.clone()),
            ("fail --error boom --task-id tsk_1", fail),
            (
                "fail --task-id tsk_1 --error boom --error-type EXIT_CODE --stdout o --stderr e",
                Command::Fail {
                    task_id: "tsk_1".into(),
                    error: "boom".into(),
                    error_type: s("EXIT_CODE"),
                    stdout: s("o"),
                    stderr: s("e"),
                },
            ),
            ("tasks", tasks(None)),
            ("tasks --limit 1", tasks(Some(1))),
            (
                "tasks --status running --stream q --stale --limit 1000",
                Command::Tasks {
                    status: s("running"),
                    stream: s("q"),
                    stale: true,
                    limit: Some(1000),
                },
            ),
            ("task tsk_1", Command::Task { id: "tsk_1".into() }),
            ("requeue tsk_1", Command::Requeue { id: "tsk_1".into() }),
            ("purge", Command::Purge { older_than: None }),
            ("purge --older-than 12h", Command::Purge { older_than: Some(43_200) }),
            ("purge --older-than=3d", Command::Purge { older_than: Some(259_200) }),
            ("purge --older-than 2w", Command::Purge { older_than: Some(1_209_600) }),
            ("scripts list", Command::ScriptsList),
            ("scripts search deploy", Command::ScriptsSearch { query: "deploy".into() }),
            ("--version", Command::Version),
            ("-V", Command::Version),
            ("--config c.yml -V", Command::Version),
        ];
        for (l, want) in cases {
            assert_eq!(command(l), want, "{l:?}");
        }
    }

    #[test]
    fn values_keep_spaces_and_may_be_empty() {
        let inv = run(&["session", "create", "s1", "--description", "two words"]).unwrap();
        let want = Command::SessionCreate { name: "s1".into(), description: s("two words") };
        assert_eq!(inv.command, want);
        let inv = run(&["scripts", "search", "deploy db"]).unwrap();
        assert_eq!(inv.command, Command::ScriptsSearch { query: "deploy db".into() });
        // Empty text is refused by the command, which knows which texts are
        // required; the parser keeps it.
        let inv = run(&["complete", "tsk_1", "--summary="]).unwrap();
        let Command::Complete { summary, .. } = inv.command else { panic!("{inv:?}") };
        assert_eq!(summary, "");
    }

    #[test]
    fn double_dash_lets_a_name_start_with_a_dash() {
        let want = Command::SessionCreate { name: "-odd".into(), description: None };
        assert_eq!(command("session create -- -odd"), want);
        assert_eq!(command("task -- --help"), Command::Task { id: "--help".into() });
    }

    #[test]
    fn usage_errors_name_the_value() {
        let cases: &[(&str, &str)] = &[
            ("enqueue --stream", "missing value for --stream"),
            ("enqueue --tool t", "missing --stream"),
            ("enqueue --stream q", "missing --tool"),
            (
                "enqueue --stream q --tool t --timeout 7x",
                r#"invalid value for --timeout: "7x": not a positive whole number"#,
            ),
            (
                "enqueue --stream q --tool t --timeout 0",
                r#"invalid value for --timeout: "0": not a positive whole number"#,
            ),
            (
                "enqueue --stream q --tool t --timeout +5",
                r#"invalid value for --timeout: "+5": not a positive whole number"#,
            ),
            (
                "enqueue --stream q --tool t --timeout 1.5",
                r#"invalid value for --timeout: "1.5": not a positive whole number"#,
            ),
            (
                "enqueue --stream q --tool t --prompt a --prompt-file f",
                "--prompt and --prompt-file cannot be used together",
            ),
            (
                "enqueue --stream q --tool t --prompt-file=",
                r#"invalid value for --prompt-file: "": empty path"#,
            ),
            (
                "enqueue --stream q --tool t --priority 1",
                r#"unknown option "--priority" for enqueue"#,
            ),
            ("enqueue --stream q extra", r#"unexpected argument "extra" for enqueue"#),
            (
                "run --port 70000",
                r#"invalid value for --port: "70000": not a port number from 0 to 65535"#,
            ),
            (
                "run --port -1",
                r#"invalid value for --port: "-1": not a port number from 0 to 65535"#,
            ),
            (
                "setup --port 65536",
                r#"invalid value for --port: "65536": not a port number from 0 to 65535"#,
            ),
            ("", "missing command"),
            ("setup --yes=no", r#"--yes takes no value, got "no""#),
            ("setup --name", "missing value for --name"),
            ("session", "missing session command: create, list or end"),
            ("session --status active", r#"unknown option "--status" for session"#),
            ("session create", "missing session name"),
            ("session create a b", r#"unexpected argument "b" for session create"#),
            ("session end", "missing session name"),
            (
                "session list --status done",
                r#"invalid value for --status: "done": expected active or ended"#,
            ),
            ("session create s --status active", r#"unknown option "--status" for session create"#),
            ("session list s", r#"unexpected argument "s" for session list"#),
            ("stream", "missing stream command: create, list or end"),
            ("stream create q", "missing --session"),
            ("stream create --session s", "missing stream name"),
            ("stream end", "missing stream name"),
            ("stream end q --session s", r#"unknown option "--session" for stream end"#),
            (
                "stream list --status open",
                r#"invalid value for --status: "open": expected active or ended"#,
            ),
            (
                "claim --wait -1",
                r#"invalid value for --wait: "-1": not a number of seconds (0 or more)"#,
            ),
            (
                "claim --wait nan",
                r#"invalid value for --wait: "nan": not a number of seconds (0 or more)"#,
            ),
            (
                "claim --wait inf",
                r#"invalid value for --wait: "inf": not a number of seconds (0 or more)"#,
            ),
            (
                "claim --wait 1e3",
                r#"invalid value for --wait: "1e3": not a number of seconds (0 or more)"#,
            ),
            (
                "claim --wait .",
                r#"invalid value for --wait: ".": not a number of seconds (0 or more)"#,
            ),
            (
                "claim --wait 1.2.3",
                r#"invalid value for --wait: "1.2.3": not a number of seconds (0 or more)"#,
            ),
            ("claim q", r#"unexpected argument "q" for claim"#),
            ("claim --wait", "missing value for --wait"),
            ("peek --stream", "missing value for --stream"),
            ("peek --worker-id w", r#"unknown option "--worker-id" for peek"#),
            (
                "complete --summary x",
                "missing task id: give --task-id ID or the id as the first argument",
            ),
            ("complete tsk_1", "missing --summary"),
            (
                "complete tsk_1 --task-id tsk_2 --summary x",
                r#"two different task ids given: "tsk_1" and --task-id "tsk_2""#,
            ),
            (
                "complete --task-id tsk_2 tsk_1 --summary x",
                r#"two different task ids given: "tsk_1" and --task-id "tsk_2""#,
            ),
            ("complete tsk_1 tsk_2 --summary x", r#"unexpected argument "tsk_2" for complete"#),
            (
                "complete tsk_1 --summary x --result 1 --result-file f",
                "--result and --result-file cannot be used together",
            ),
            ("fail tsk_1", "missing --error"),
            (
                "fail --error x",
                "missing task id: give --task-id ID or the id as the first argument",
            ),
            (
                "fail a --error x --task-id b",
                r#"two different task ids given: "a" and --task-id "b""#,
            ),
            ("fail a b --error x", r#"unexpected argument "b" for fail"#),
            (
                "tasks --status done",
                "invalid value for --status: \"done\": \
                 expected queued, running, succeeded or failed",
            ),
            (
                "tasks --status Queued",
                "invalid value for --status: \"Queued\": \
                 expected queued, running, succeeded or failed",
            ),
            (
                "tasks --limit 0",
                r#"invalid value for --limit: "0": not a whole number from 1 to 1000"#,
            ),
            (
                "tasks --limit 1001",
                r#"invalid value for --limit: "1001": not a whole number from 1 to 1000"#,
            ),
            (
                "tasks --limit ten",
                r#"invalid value for --limit: "ten": not a whole number from 1 to 1000"#,
            ),
            ("tasks --stale=yes", r#"--stale takes no value, got "yes""#),
            ("tasks extra", r#"unexpected argument "extra" for tasks"#),
            ("task", "missing task id"),
            ("task a b", r#"unexpected argument "b" for task"#),
            ("requeue", "missing task id"),
            ("requeue a --force", r#"unknown option "--force" for requeue"#),
            ("purge 3d", r#"unexpected argument "3d" for purge"#),
            ("scripts", "missing scripts command: list or search"),
            ("scripts search", "missing search query"),
            ("scripts search a b", r#"unexpected argument "b" for scripts search"#),
            ("scripts list x", r#"unexpected argument "x" for scripts list"#),
            ("stop now", r#"unexpected argument "now" for stop"#),
            ("status -v", r#"unknown option "-v" for status"#),
            ("reload --force", r#"unknown option "--force" for reload"#),
            ("--verbose", r#"unknown option "--verbose""#),
            ("-x", r#"unknown option "-x""#),
            ("--config", "missing value for --config"),
            ("--config=", r#"invalid value for --config: "": empty path"#),
            ("--version=2", r#"--version takes no value, got "2""#),
            ("--help=x", r#"--help takes no value, got "x""#),
            ("run --json", "--json does not apply to run"),
            ("--json run", "--json does not apply to run"),
            ("help enqueue --x", r#"unknown option "--x" for help"#),
            ("help task extra", r#"unexpected argument "extra" for help"#),
        ];
        for (l, want) in cases {
            assert_eq!(error(l), *want, "{l:?}");
        }
    }

    #[test]
    fn numbers_past_the_limit_are_too_large() {
        for value in ["10000001", "99999999999999999999999"] {
            let msg = error(&format!("enqueue --stream q --tool t --timeout {value}"));
            let why = "too large (at most 10000000 seconds)";
            assert_eq!(msg, format!("invalid value for --timeout: {value:?}: {why}"));
        }
        let cases = [
            ("claim --wait", "--wait", "4294967296"),
            ("claim --wait", "--wait", "99999999999999999999999.5"),
        ];
        for (start, opt, value) in cases {
            let msg = error(&format!("{start} {value}"));
            let why = "too large (at most 4294967295 seconds)";
            assert_eq!(msg, format!("invalid value for {opt}: {value:?}: {why}"));
        }
        assert_eq!(command("claim --wait 4294967295"), claim(None, Some(4_294_967_295.0)));
    }

    #[test]
    fn purge_ages_are_positive_whole_numbers_with_a_unit() {
        let why = "not a positive whole number of hours, days or weeks (like 12h, 3d, 2w)";
        for bad in ["0d", "3x", "-1d", "1.5d", "d", "", "3", "3D", "3 d", "+3d", "3dd", "3é"] {
            let msg = run(&["purge", "--older-than", bad]).unwrap_err().to_string();
            assert_eq!(msg, format!("invalid value for --older-than: {bad:?}: {why}"));
        }
        for big in ["7102w", "999999999999999999999h"] {
            let msg = error(&format!("purge --older-than {big}"));
            assert!(msg.ends_with("too large (at most 4294967295 seconds)"), "{msg}");
        }
        assert_eq!(command("purge --older-than 1h"), Command::Purge { older_than: Some(3600) });
        let most = Command::Purge { older_than: Some(7101 * 7 * 86_400) };
        assert_eq!(command("purge --older-than 7101w"), most);
    }

    #[test]
    fn unknown_commands_and_options_suggest_a_close_name() {
        let cases: &[(&str, &str)] = &[
            ("enque", "unknown command \"enque\"\ndid you mean \"enqueue\"?"),
            ("tsak", "unknown command \"tsak\"\ndid you mean \"task\"?"),
            ("sess", "unknown command \"sess\"\ndid you mean \"session\"?"),
            ("frobnicate", "unknown command \"frobnicate\""),
            ("session craete x", "unknown session command \"craete\"\ndid you mean \"create\"?"),
            ("stream lst", "unknown stream command \"lst\"\ndid you mean \"list\"?"),
            ("scripts find", "unknown scripts command \"find\""),
            (
                "enqueue --tiemout 5",
                "unknown option \"--tiemout\" for enqueue\ndid you mean \"--timeout\"?",
            ),
            (
                "tasks --stat queued",
                "unknown option \"--stat\" for tasks\ndid you mean \"--status\"?",
            ),
            ("--jsn", "unknown option \"--jsn\"\ndid you mean \"--json\"?"),
            ("help enqeue", "unknown command \"enqeue\"\ndid you mean \"enqueue\"?"),
            ("help session craete", "unknown session command \"craete\"\ndid you mean \"create\"?"),
        ];
        for (l, want) in cases {
            assert_eq!(error(l), *want, "{l:?}");
        }
    }

    #[test]
    fn config_goes_before_the_command() {
        let inv = line("--config /x/sparkq.yml status").unwrap();
        assert_eq!(inv.config, Some(PathBuf::from("/x/sparkq.yml")));
        assert_eq!(inv.command, Command::Status);
        let inv = line("--config=other.yml tasks").unwrap();
        assert_eq!(inv.config, Some(PathBuf::from("other.yml")));
        assert_eq!(line("tasks").unwrap().config, None);

        let msg = error("tasks --config x.yml");
        assert_eq!(msg, "--config goes before the command, as in 'sparkq --config PATH tasks'");
        let msg = error("session list --config=x.yml");
        assert!(msg.starts_with("--config goes before the command"), "{msg}");
    }

    #[test]
    fn json_goes_after_the_command_and_is_tolerated_before_it() {
        let lines = [
            "tasks --json",
            "tasks --status queued --json",
            "--json tasks",
            "task --json tsk_1",
            "session list --json",
            "session --json list",
            "stream list --json",
            "stream create q --session s --json",
            "enqueue --json --stream q --tool t",
            "peek --stream q --json",
            "claim --json",
            "complete tsk_1 --summary x --json",
            "fail tsk_1 --error x --json",
            "requeue tsk_1 --json",
            "purge --json",
            "scripts list --json",
            "scripts search x --json",
            "status --json",
            "stop --json",
            "reload --json",
            "setup --yes --json",
            "--config c.yml --json status",
        ];
        for l in lines {
            assert!(line(l).unwrap().json, "{l:?}");
        }
        assert!(!line("tasks").unwrap().json);
    }

    #[test]
    fn help_shows_at_any_position() {
        let cases: &[(&str, &str)] = &[
            ("--help", HELP),
            ("-h", HELP),
            ("--json -h", HELP),
            ("--config x.yml --help", HELP),
            ("help", HELP),
            ("help help", HELP),
            ("help enqueue", ENQUEUE_HELP),
            ("help session create", SESSION_HELP),
            ("enqueue --help", ENQUEUE_HELP),
            ("enqueue --stream q -h", ENQUEUE_HELP),
            ("enqueue --bogus --help", ENQUEUE_HELP),
            ("enqueue --timeout x --help", ENQUEUE_HELP),
            ("complete --summary --help", COMPLETE_HELP),
            ("--config x.yml claim --stream q --help", CLAIM_HELP),
            ("session --help", SESSION_HELP),
            ("session create -h", SESSION_HELP),
            ("session bogus --help", SESSION_HELP),
            ("stream list --status x --help", STREAM_HELP),
            ("scripts search --help", SCRIPTS_HELP),
            ("run --help", RUN_HELP),
            ("purge --older-than 3d --help", PURGE_HELP),
        ];
        for (l, want) in cases {
            assert_eq!(command(l), Command::Help(want.to_string()), "{l:?}");
        }
        for (name, help) in COMMANDS {
            let want = Command::Help(help.to_string());
            assert_eq!(command(&format!("{name} --help")), want, "{name}");
            assert_eq!(command(&format!("{name} -h")), want, "{name}");
            assert_eq!(command(&format!("help {name}")), want, "{name}");
        }
    }

    #[test]
    fn help_lines_fit_in_79_columns() {
        for (name, help) in COMMANDS {
            for l in help.lines() {
                assert!(l.chars().count() <= 79, "{name}: {l:?}");
                assert_eq!(l.trim_end(), l, "{name}: trailing space in {l:?}");
            }
            assert!(help.ends_with('\n') && !help.ends_with("\n\n"), "{name}");
        }
    }

    #[test]
    fn command_help_names_the_command_and_has_usage_and_options() {
        for (name, help) in COMMANDS.iter().filter(|(n, _)| *n != "help") {
            assert!(help.starts_with(&format!("sparkq {name} - ")), "{name}");
            assert!(help.contains(&format!("\nUSAGE:\n  sparkq {name}")), "{name}");
            assert!(help.contains("\nOPTIONS:\n"), "{name}");
            assert!(help.contains("  -h, --help "), "{name}");
        }
        let subs = [
            ("session", SESSION_HELP, SESSION_COMMANDS),
            ("stream", STREAM_HELP, STREAM_COMMANDS),
            ("scripts", SCRIPTS_HELP, SCRIPTS_COMMANDS),
        ];
        for (name, help, list) in subs {
            for sub in list {
                assert!(help.contains(&format!("  sparkq {name} {sub}")), "{name} {sub}");
                assert!(help.contains(&format!("\n  {sub} ")), "{name} {sub}");
            }
        }
    }

    #[test]
    fn top_help_lists_every_command_exit_codes_and_global_options() {
        for (name, _) in COMMANDS.iter().filter(|(n, _)| *n != "help") {
            let listed = HELP.lines().any(|l| l.split_whitespace().next() == Some(name));
            assert!(listed, "{name} is not listed");
        }
        for part in ["--config PATH", "--json", "-V, --version", "0   done", "1   nothing"] {
            assert!(HELP.contains(part), "{part}");
        }
        assert!(HELP.ends_with("Run 'sparkq <COMMAND> --help' for that command's options.\n"));
    }

    // Every option that a help text lists must be accepted by at least one
    // form of its command, so that the help and the parser cannot drift.
    #[test]
    fn every_option_in_a_help_is_accepted() {
        let forms: &[(&str, &[&str])] = &[
            ("setup", &["setup"]),
            ("run", &["run"]),
            ("stop", &["stop"]),
            ("status", &["status"]),
            ("reload", &["reload"]),
            ("session", &["session create n", "session list", "session end n"]),
            ("stream", &["stream create n", "stream list", "stream end n"]),
            ("enqueue", &["enqueue"]),
            ("peek", &["peek"]),
            ("claim", &["claim"]),
            ("complete", &["complete"]),
            ("fail", &["fail"]),
            ("tasks", &["tasks"]),
            ("task", &["task t"]),
            ("requeue", &["requeue t"]),
            ("purge", &["purge"]),
            ("scripts", &["scripts list", "scripts search q"]),
        ];
        assert_eq!(forms.len() + 1, COMMANDS.len());
        for (name, help) in COMMANDS.iter().filter(|(n, _)| *n != "help") {
            let (_, bases) = forms.iter().find(|(n, _)| n == name).unwrap();
            let opts = options_in(help);
            assert!(opts.contains(&"help"), "{name}");
            for opt in opts.into_iter().filter(|o| *o != "help") {
                let flag = format!("--{opt}");
                let takes_value = help.lines().any(|l| {
                    let mut words = l.split_whitespace().skip_while(|w| *w != flag);
                    words.nth(1).is_some_and(|w| w.chars().all(|c| c.is_ascii_uppercase()))
                });
                let value = if !takes_value {
                    ""
                } else if opt == "older-than" {
                    "1d"
                } else {
                    "1"
                };
                let accepted =
                    bases.iter().any(|base| match line(&format!("{base} {flag} {value}")) {
                        Ok(_) => true,
                        Err(e) => !e.message().starts_with("unknown option"),
                    });
                assert!(accepted, "{name} does not accept {flag}");
            }
        }
    }

    #[test]
    fn suggestions_stay_close() {
        assert_eq!(edit_distance("enque", "enqueue"), 2);
        assert_eq!(edit_distance("taks", "task"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
        let known = ["stop", "status", "stream"];
        assert_eq!(suggest("stat", &known), Some("status"));
        assert_eq!(suggest("st", &known), None);
        assert_eq!(suggest("xyz", &known), None);
        assert_eq!(suggest("strea", &known), Some("stream"));
    }

    #[test]
    fn lists_join_with_or() {
        assert_eq!(or_list(&["a"]), "a");
        assert_eq!(or_list(&["a", "b"]), "a or b");
        assert_eq!(or_list(&["a", "b", "c"]), "a, b or c");
    }

    #[cfg(unix)]
    #[test]
    fn values_that_are_not_utf8_are_refused_by_name() {
        use std::os::unix::ffi::OsStringExt;

        let bad = OsString::from_vec(vec![b'q', 0xff]);
        let args = vec!["peek".into(), "--stream".into(), bad.clone()];
        let msg = parse(args).unwrap_err().to_string();
        assert_eq!(msg, "invalid value for --stream: \"q\u{fffd}\": not valid UTF-8");

        let args = vec!["task".into(), bad.clone()];
        let msg = parse(args).unwrap_err().to_string();
        assert_eq!(msg, "invalid task id: \"q\u{fffd}\": not valid UTF-8");

        // Paths are kept as given, since the file system takes any bytes.
        let args = vec!["--config".into(), bad.clone(), "status".into()];
        assert_eq!(parse(args).unwrap().config, Some(PathBuf::from(bad.clone())));
        let args = vec!["enqueue".into(), "--stream=q".into(), "--tool=t".into()];
        let args = [args, vec!["--prompt-file".into(), bad.clone()]].concat();
        let Command::Enqueue { prompt_file, .. } = parse(args).unwrap().command else {
            panic!("not an enqueue")
        };
        assert_eq!(prompt_file, Some(PathBuf::from(bad)));
    }
}
