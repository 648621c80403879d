//! The configuration: `sparkq.yml` found, parsed, checked and filled with
//! defaults. A config that cannot be used is refused with the file, the line
//! and the key; nothing else in SparkQ reads YAML.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::marker::PhantomData;
use std::path::{Component, Path, PathBuf};

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::error::{Error, Result};

/// The four task classes every config has unless it overrides them.
pub const DEFAULT_CLASSES: [(&str, u64); 4] =
    [("FAST_SCRIPT", 30), ("MEDIUM_SCRIPT", 300), ("LLM_LITE", 300), ("LLM_HEAVY", 900)];

/// The timeout when neither the task, its tool nor its class gives one.
pub const FALLBACK_TIMEOUT: u64 = 300;

/// The longest timeout a task may have (about 115 days); it keeps every
/// deadline computed in milliseconds far inside an `i64`.
pub const MAX_TIMEOUT_SECONDS: u64 = 10_000_000;

/// The class of a tool that names none.
pub const DEFAULT_TOOL_CLASS: &str = "MEDIUM_SCRIPT";

/// A usable configuration, every default filled in and every path absolute.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from; `None` when built from defaults alone.
    pub file: Option<PathBuf>,
    /// The directory relative paths are taken from (the file's own).
    pub dir: PathBuf,
    pub project: ProjectConfig,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub purge_older_than_days: u64,
    pub maintenance_interval_seconds: u64,
    pub script_dirs: Vec<PathBuf>,
    /// Class name to timeout in seconds: the defaults merged with the file's.
    pub task_classes: BTreeMap<String, u64>,
    pub tools: BTreeMap<String, ToolConfig>,
    pub limits: LimitsConfig,
}

#[derive(Debug, Clone)]
pub struct ProjectConfig {
    pub name: String,
    pub repo_path: PathBuf,
    pub prd_path: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// Extra `Host` header values accepted besides loopback names.
    pub allowed_hosts: Vec<String>,
    /// Bearer token; required when `host` is not a loopback address.
    pub token: Option<String>,
    pub max_body_bytes: u64,
    /// Handler threads.
    pub threads: usize,
    /// Seconds a connection may stay silent both ways before it is closed.
    pub idle_timeout_seconds: u64,
    /// Seconds a request may take to arrive (headers and body) before its
    /// connection is closed.
    pub request_timeout_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// Survives any process crash; a power cut may lose the last commits.
    Normal,
    /// Also survives a power cut, at the cost of an fsync per commit.
    Full,
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub path: PathBuf,
    pub synchronous: Synchronous,
}

#[derive(Debug, Clone)]
pub struct ToolConfig {
    pub description: String,
    pub task_class: String,
    pub timeout: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Most bytes kept of stdout, stderr and result, each.
    pub output_bytes: usize,
    /// Most bytes of a task's payload as JSON text.
    pub payload_bytes: usize,
}

impl Config {
    /// Resolves the class and timeout of a new task (SPEC §2.4): the task's
    /// own timeout, else the tool's, else its class's, else 300 s.
    pub fn resolve(
        &self,
        tool: &str,
        class: Option<&str>,
        timeout: Option<u64>,
    ) -> Result<(String, u64)> {
        let t = self.tools.get(tool).ok_or_else(|| {
            let known: Vec<&str> = self.tools.keys().map(|k| k.as_str()).collect();
            Error::Invalid(format!("unknown tool \"{tool}\" (known: {})", known.join(", ")))
        })?;
        let class = class.unwrap_or(&t.task_class);
        let class_timeout = self.task_classes.get(class).copied().ok_or_else(|| {
            let known: Vec<&str> = self.task_classes.keys().map(|k| k.as_str()).collect();
            Error::Invalid(format!("unknown task class \"{class}\" (known: {})", known.join(", ")))
        })?;
        if let Some(t) = timeout.filter(|t| !(1..=MAX_TIMEOUT_SECONDS).contains(t)) {
            return Err(Error::Invalid(format!(
                "timeout {t} is out of range: use 1 to {MAX_TIMEOUT_SECONDS} seconds"
            )));
        }
        let secs = timeout.or(t.timeout).unwrap_or(class_timeout);
        Ok((class.to_string(), secs))
    }

    /// The timeout a tool's tasks get when enqueue gives none.
    pub fn tool_timeout(&self, tool: &ToolConfig) -> u64 {
        tool.timeout
            .or_else(|| self.task_classes.get(&tool.task_class).copied())
            .unwrap_or(FALLBACK_TIMEOUT)
    }

    /// The lock file: `sparkq.lock` beside the database.
    pub fn lock_path(&self) -> PathBuf {
        let dir = self.database.path.parent().unwrap_or(Path::new("."));
        dir.join("sparkq.lock")
    }
}

/// The name of the config file that discovery looks for.
pub const FILE_NAME: &str = "sparkq.yml";

/// The environment variable naming the config file when `--config` is not
/// given.
pub const ENV_CONFIG: &str = "SPARKQ_CONFIG";

/// The environment variable whose value, when not empty, replaces
/// `server.token`.
pub const ENV_TOKEN: &str = "SPARKQ_TOKEN";

/// The address the server binds unless told otherwise.
pub const DEFAULT_HOST: &str = "127.0.0.1";

/// The port the server listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 8420;

/// The tools every config has when it has no `tools` key:
/// name, description, task class.
pub const DEFAULT_TOOLS: [(&str, &str, &str); 4] = [
    ("run-bash", "Execute a bash script", "MEDIUM_SCRIPT"),
    ("run-python", "Execute a python script", "MEDIUM_SCRIPT"),
    ("llm-haiku", "Call Claude Haiku", "LLM_LITE"),
    ("llm-sonnet", "Call Claude Sonnet", "LLM_HEAVY"),
];

const MIB: u64 = 1024 * 1024;
const DEFAULT_MAX_BODY_BYTES: u64 = 8 * MIB;
const DEFAULT_THREADS: u64 = 4;
const DEFAULT_IDLE_TIMEOUT: u64 = 15;
const DEFAULT_REQUEST_TIMEOUT: u64 = 30;
const MAX_THREADS: u64 = 64;
const DEFAULT_PURGE_DAYS: u64 = 3;
const DEFAULT_MAINTENANCE_SECONDS: u64 = 5;
const DEFAULT_OUTPUT_BYTES: u64 = MIB;
const DEFAULT_PAYLOAD_BYTES: u64 = MIB;
const DEFAULT_DB_FILE: &str = "sparkq.db";
const DEFAULT_SCRIPT_DIR: &str = "scripts";

/// A config file larger than this is refused rather than read: it is surely
/// not a config, and reading it whole could exhaust memory.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Finds the config file: `--config PATH`, else `SPARKQ_CONFIG`, else the
/// nearest `sparkq.yml` in `cwd` or one of its parents.
///
/// A path given by flag or environment is returned even when it does not
/// exist, so that loading it reports the missing file instead of quietly
/// using another one. Relative paths are taken from `cwd`.
pub fn discover(explicit: Option<&Path>, cwd: &Path) -> Option<PathBuf> {
    discover_with(explicit, std::env::var_os(ENV_CONFIG), cwd)
}

/// `discover` with the environment value passed in, so tests need not set
/// process-wide variables.
fn discover_with(explicit: Option<&Path>, env: Option<OsString>, cwd: &Path) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(clean(&cwd.join(path)));
    }
    if let Some(path) = env.filter(|v| !v.is_empty()) {
        return Some(clean(&cwd.join(path)));
    }
    cwd.ancestors().map(|dir| dir.join(FILE_NAME)).find(|path| path.is_file())
}

impl Config {
    /// The configuration with every default, its relative paths taken from
    /// `dir`: what an empty `sparkq.yml` in `dir` gives.
    pub fn defaults(dir: &Path) -> Config {
        let dir = absolute(dir);
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "sparkq".to_string());
        let task_classes =
            DEFAULT_CLASSES.iter().map(|&(name, secs)| (name.to_string(), secs)).collect();
        let tools = DEFAULT_TOOLS
            .iter()
            .map(|&(name, description, class)| {
                let tool = ToolConfig {
                    description: description.to_string(),
                    task_class: class.to_string(),
                    timeout: None,
                };
                (name.to_string(), tool)
            })
            .collect();
        Config {
            file: None,
            project: ProjectConfig { name, repo_path: dir.clone(), prd_path: None },
            server: ServerConfig {
                host: DEFAULT_HOST.to_string(),
                port: DEFAULT_PORT,
                allowed_hosts: Vec::new(),
                token: None,
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                threads: DEFAULT_THREADS as usize,
                idle_timeout_seconds: DEFAULT_IDLE_TIMEOUT,
                request_timeout_seconds: DEFAULT_REQUEST_TIMEOUT,
            },
            database: DatabaseConfig {
                path: dir.join(DEFAULT_DB_FILE),
                synchronous: Synchronous::Normal,
            },
            purge_older_than_days: DEFAULT_PURGE_DAYS,
            maintenance_interval_seconds: DEFAULT_MAINTENANCE_SECONDS,
            script_dirs: vec![dir.join(DEFAULT_SCRIPT_DIR)],
            task_classes,
            tools,
            limits: LimitsConfig {
                output_bytes: DEFAULT_OUTPUT_BYTES as usize,
                payload_bytes: DEFAULT_PAYLOAD_BYTES as usize,
            },
            dir,
        }
    }

    /// Reads, parses and checks the config file at `path`, then lets a
    /// non-empty `SPARKQ_TOKEN` replace `server.token`.
    pub fn load(path: &Path) -> Result<Config> {
        let file = absolute(path);
        let text = read_text(&file)?;
        let mut config = parse_str(&text, &file)?;
        config.override_token(std::env::var(ENV_TOKEN).ok());
        Ok(config)
    }

    /// Replaces the token with `value` when that is present and not empty.
    fn override_token(&mut self, value: Option<String>) {
        if let Some(token) = value.filter(|t| !t.is_empty()) {
            self.server.token = Some(token);
        }
    }
}

/// Reads a config file as text, refusing what is missing, huge or not UTF-8.
fn read_text(file: &Path) -> Result<String> {
    let fail = |why: String| Error::Config(format!("config {}: {why}", file.display()));
    let handle = std::fs::File::open(file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => fail("file not found".to_string()),
        _ => fail(format!("cannot read it: {e}")),
    })?;
    let mut bytes = Vec::new();
    handle
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read it: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(fail(format!("larger than {MAX_FILE_BYTES} bytes; not a config file")));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        fail(format!("not UTF-8 text (invalid byte at offset {at})"))
    })
}

/// Parses and checks config text as if read from `file`, whose directory
/// anchors relative paths. The environment is not consulted.
pub fn parse_str(text: &str, file: &Path) -> Result<Config> {
    let file = absolute(file);
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);

    // A first pass into a plain YAML tree separates syntax errors from
    // structure errors. What the tree itself cannot hold (duplicate keys,
    // numbers past 64 bits) is left to the second pass, which reports it
    // with the key's path.
    if let Err(err) = serde_yaml::from_str::<serde_yaml::Value>(text) {
        let msg = err.to_string();
        let serde_level = ["duplicate entry", "invalid type: ", "invalid value: "];
        if !serde_level.iter().any(|m| msg.contains(m)) {
            return Err(syntax_error(&file, text, &err));
        }
    }
    let raw: Option<RawConfig> =
        serde_yaml::from_str(text).map_err(|err| structure_error(&file, text, &err))?;
    let mut config = build(raw.unwrap_or_default(), &dir, text, &file)?;
    config.file = Some(file);
    Ok(config)
}

/// Fills the defaults in with what the file gave, and checks what only the
/// whole file can tell: that every tool's class exists.
fn build(raw: RawConfig, dir: &Path, text: &str, file: &Path) -> Result<Config> {
    let mut c = Config::defaults(dir);
    let path = |p: Text| clean(&dir.join(p.0));
    if let Some(p) = raw.project {
        if let Some(name) = p.name {
            c.project.name = name.0;
        }
        if let Some(repo) = p.repo_path {
            c.project.repo_path = path(repo);
        }
        c.project.prd_path = p.prd_path.map(path);
    }
    if let Some(s) = raw.server {
        if let Some(host) = s.host {
            c.server.host = host.0;
        }
        if let Some(port) = s.port {
            c.server.port = port.0 as u16;
        }
        if let Some(hosts) = s.allowed_hosts {
            c.server.allowed_hosts = hosts.into_iter().map(|h| h.0).collect();
        }
        c.server.token = s.token.map(|t| t.0);
        if let Some(bytes) = s.max_body_bytes {
            c.server.max_body_bytes = bytes.0;
        }
        if let Some(threads) = s.threads {
            c.server.threads = threads.0 as usize;
        }
        if let Some(secs) = s.idle_timeout_seconds {
            c.server.idle_timeout_seconds = secs.0;
        }
        if let Some(secs) = s.request_timeout_seconds {
            c.server.request_timeout_seconds = secs.0;
        }
    }
    if let Some(d) = raw.database {
        if let Some(db) = d.path {
            c.database.path = path(db);
        }
        if let Some(sync) = d.synchronous {
            c.database.synchronous = sync.0;
        }
    }
    if let Some(days) = raw.purge.and_then(|p| p.older_than_days) {
        c.purge_older_than_days = days.0;
    }
    if let Some(secs) = raw.maintenance.and_then(|m| m.interval_seconds) {
        c.maintenance_interval_seconds = secs.0;
    }
    if let Some(dirs) = raw.script_dirs {
        c.script_dirs = dirs.into_iter().map(path).collect();
    }
    for (name, class) in raw.task_classes.map(|m| m.0).unwrap_or_default() {
        c.task_classes.insert(name, class.timeout.0);
    }
    if let Some(l) = raw.limits {
        if let Some(bytes) = l.output_bytes {
            c.limits.output_bytes = usize::try_from(bytes.0).unwrap_or(usize::MAX);
        }
        if let Some(bytes) = l.payload_bytes {
            c.limits.payload_bytes = usize::try_from(bytes.0).unwrap_or(usize::MAX);
        }
    }
    if let Some(tools) = raw.tools {
        if tools.0.is_empty() {
            let msg = "tools: no tool is listed; list at least one, or remove the key \
                       to get the default tools";
            return Err(config_error(file, line_of(text, &["tools"]), msg.to_string()));
        }
        c.tools.clear();
        for (name, tool) in tools.0 {
            let tool = tool.unwrap_or_default();
            let class = tool.task_class.map(|t| t.0).unwrap_or_else(|| DEFAULT_TOOL_CLASS.into());
            if !c.task_classes.contains_key(&class) {
                let known: Vec<&str> = c.task_classes.keys().map(String::as_str).collect();
                let msg = format!(
                    "tools.{name}.task_class: unknown task class {class:?} (known: {})",
                    known.join(", ")
                );
                let line = line_of(text, &["tools", &name, "task_class"]);
                return Err(config_error(file, line, msg));
            }
            let tool = ToolConfig {
                description: tool.description.unwrap_or_default(),
                task_class: class,
                timeout: tool.timeout.map(|t| t.0),
            };
            c.tools.insert(name, tool);
        }
    }
    Ok(c)
}

/// The text `sparkq setup` (and a first `sparkq run`) writes: every key with
/// its value, commented. `script_dirs` empty means the default `scripts`;
/// `repo_path` `None` means the config's own directory.
pub fn default_yaml(
    name: &str,
    port: u16,
    script_dirs: &[String],
    repo_path: Option<&str>,
    prd_path: Option<&str>,
) -> String {
    let mut out = String::new();
    let mut line = |s: &str| {
        out.push_str(s);
        out.push('\n');
    };
    line("# SparkQ configuration. Every key is optional: a missing key takes the");
    line("# default shown here. Relative paths are relative to this file's folder.");
    line("");
    line("project:");
    line(&format!("  name: {}", quote(name)));
    line("  # The repository that workers work in.");
    line(&format!("  repo_path: {}", quote(repo_path.unwrap_or("."))));
    line("  # A product document workers may read for context (null: none).");
    line(&format!("  prd_path: {}", prd_path.map(quote).unwrap_or_else(|| "null".into())));
    line("");
    line("server:");
    line("  # Any address other than loopback needs a token.");
    line(&format!("  host: {}", quote(DEFAULT_HOST)));
    line("  # 0 picks a free port.");
    line(&format!("  port: {port}"));
    line("  # Host header values accepted besides this server's own address.");
    line("  allowed_hosts: []");
    line("  # Bearer token clients must send; SPARKQ_TOKEN, when set, replaces it.");
    line("  token: null");
    line(&format!("  max_body_bytes: {DEFAULT_MAX_BODY_BYTES}"));
    line("  # Requests handled at once (1 to 64).");
    line(&format!("  threads: {DEFAULT_THREADS}"));
    line("  # Seconds before a connection silent both ways is closed; longer than");
    line("  # the database's busy wait, so a slow request is not taken for idle.");
    line(&format!("  idle_timeout_seconds: {DEFAULT_IDLE_TIMEOUT}"));
    line("  # Seconds a request may take to arrive before its connection is closed.");
    line(&format!("  request_timeout_seconds: {DEFAULT_REQUEST_TIMEOUT}"));
    line("");
    line("database:");
    line(&format!("  path: {}", quote(DEFAULT_DB_FILE)));
    line("  # Write-ahead logging is the only mode SparkQ runs in.");
    line("  mode: wal");
    line("  # \"normal\" survives any process crash; \"full\" also a power cut, at");
    line("  # the cost of a disk flush per change.");
    line("  synchronous: normal");
    line("");
    line("purge:");
    line("  # Finished tasks older than this are deleted, at start and hourly.");
    line(&format!("  older_than_days: {DEFAULT_PURGE_DAYS}"));
    line("");
    line("maintenance:");
    line("  # How often running tasks are checked for timeouts.");
    line(&format!("  interval_seconds: {DEFAULT_MAINTENANCE_SECONDS}"));
    line("");
    line("# Folders searched for scripts with a header comment.");
    line("script_dirs:");
    if script_dirs.is_empty() {
        line(&format!("  - {}", quote(DEFAULT_SCRIPT_DIR)));
    }
    for dir in script_dirs {
        line(&format!("  - {}", quote(dir)));
    }
    line("");
    line("# Timeout buckets, in seconds. More can be added.");
    line("task_classes:");
    for (class, secs) in DEFAULT_CLASSES {
        line(&format!("  {class}:"));
        line(&format!("    timeout: {secs}"));
    }
    line("");
    line("# The kinds of work a task can be. A tool may set its own timeout in");
    line("# seconds, which wins over its class's.");
    line("tools:");
    for (i, (tool, description, class)) in DEFAULT_TOOLS.iter().enumerate() {
        line(&format!("  {tool}:"));
        line(&format!("    description: {}", quote(description)));
        line(&format!("    task_class: {class}"));
        if i == 0 {
            line("    # timeout: 600");
        }
    }
    line("");
    line("limits:");
    line("  # Bytes kept of a task's stdout, stderr and result, each.");
    line(&format!("  output_bytes: {DEFAULT_OUTPUT_BYTES}"));
    line("  # Bytes of a task's payload as JSON.");
    line(&format!("  payload_bytes: {DEFAULT_PAYLOAD_BYTES}"));
    out
}

/// A YAML double-quoted scalar holding exactly `s`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            // Control characters, and the characters YAML may read as line
            // breaks or a byte order mark, are escaped so the text survives.
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `path` made absolute against the current directory, without `.` parts.
fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return clean(path);
    }
    match std::env::current_dir() {
        Ok(cwd) => clean(&cwd.join(path)),
        Err(_) => clean(path),
    }
}

/// Drops `.` components. `..` is kept: resolving it by hand would be wrong
/// when the path passes through a symbolic link.
fn clean(path: &Path) -> PathBuf {
    path.components().filter(|c| !matches!(c, Component::CurDir)).collect()
}

fn config_error(file: &Path, line: Option<usize>, msg: String) -> Error {
    match line {
        Some(line) => Error::Config(format!("config {}: line {line}: {msg}", file.display())),
        None => Error::Config(format!("config {}: {msg}", file.display())),
    }
}

/// Reports text that is not YAML, blaming tabs when a tab indents the line
/// of the failure or the one before, since the parser's words do not say so.
fn syntax_error(file: &Path, text: &str, err: &serde_yaml::Error) -> Error {
    // The parser reports a bracket or quote left open at the end of the file
    // on the line after the last one; blame the last line instead.
    let last = text.lines().count().max(1);
    let line = err.location().map(|l| l.line().min(last));
    if let Some(tab_line) = line.and_then(|l| tab_indent_near(text, l)) {
        let msg = in_path(text, tab_line, "a tab is used for indentation; indent with spaces");
        return config_error(file, Some(tab_line), msg);
    }
    let msg = strip_locations(&err.to_string());
    if msg.contains("more than one document") {
        let msg = "holds more than one YAML document (a \"---\" line); keep one".to_string();
        return config_error(file, line, msg);
    }
    match line {
        Some(line) => config_error(file, Some(line), in_path(text, line, &msg)),
        None => config_error(file, None, msg),
    }
}

/// Prefixes `msg` with the key path that holds `line`, when there is one.
fn in_path(text: &str, line: usize, msg: &str) -> String {
    let path = path_at(text, line);
    if path.is_empty() {
        msg.to_string()
    } else {
        format!("in {}: {msg}", path.join("."))
    }
}

/// The line `line` (1-based) or the one before it, whichever first has a
/// tab in its indentation.
fn tab_indent_near(text: &str, line: usize) -> Option<usize> {
    let first = line.saturating_sub(1).max(1);
    text.lines().enumerate().skip(first - 1).take(line + 1 - first).find_map(|(i, l)| {
        let rest = l.trim_start_matches([' ', '\t']);
        let indent = &l[..l.len() - rest.len()];
        let tabbed = indent.contains('\t') && !rest.is_empty() && !rest.starts_with('#');
        tabbed.then_some(i + 1)
    })
}

/// Rewords serde's structure errors (unknown, duplicate and missing keys,
/// wrong types) in SparkQ's terms. Messages from our own visitors pass as
/// they are.
fn structure_error(file: &Path, text: &str, err: &serde_yaml::Error) -> Error {
    let mut line = err.location().map(|l| l.line());
    let msg = strip_locations(&err.to_string());
    let split = |marker: &str| -> Option<(String, String)> {
        let i = msg.find(marker)?;
        let path = msg[..i].strip_suffix(": ").unwrap_or(&msg[..i]).to_string();
        Some((path, msg[i + marker.len()..].to_string()))
    };
    let with_path = |path: &str, m: String| {
        if path.is_empty() {
            m
        } else {
            format!("{path}: {m}")
        }
    };
    let msg = if let Some((path, rest)) = split("unknown field `") {
        let (key, expected) = match rest.rfind("`, expected ") {
            Some(j) => (&rest[..j], Some(&rest[j + "`, expected ".len()..])),
            None => (rest.split("`, there are no fields").next().unwrap_or(&rest), None),
        };
        let mut m = format!("unknown key {key:?}");
        if !path.is_empty() {
            m.push_str(&format!(" in {path}"));
        }
        if let Some(expected) = expected {
            m.push_str(&format!(" (expected {})", expected.replace('`', "")));
        }
        m
    } else if let Some((path, rest)) = split("duplicate field `") {
        let key = rest.strip_suffix('`').unwrap_or(&rest);
        // serde points at the start of the mapping; the second copy of the
        // key is what the reader has to find.
        let joined = if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
        if let Some(found) = nth_line_of_joined(text, &joined, 1) {
            line = Some(found);
        }
        with_path(&path, format!("duplicate key {key:?}"))
    } else if let Some((path, rest)) = split("missing field `") {
        let key = rest.strip_suffix('`').unwrap_or(&rest);
        with_path(&path, format!("missing key {key:?}"))
    } else if let Some((path, rest)) = split("invalid type: ").or_else(|| split("invalid value: "))
    {
        match rest.rfind(", expected ") {
            Some(j) => {
                let found = describe_found(&rest[..j]);
                let expected = describe_expected(&rest[j + ", expected ".len()..]);
                with_path(&path, format!("expected {expected}, found {found}"))
            }
            None => with_path(&path, rest),
        }
    } else {
        msg
    };
    config_error(file, line, msg)
}

/// serde's words for a value it did not want, made plain: `"abc"`, `-5`,
/// `a list`.
fn describe_found(s: &str) -> String {
    if let Some(rest) = s.strip_prefix("string ") {
        return rest.to_string();
    }
    for kind in ["integer ", "floating point ", "boolean "] {
        if let Some(rest) = s.strip_prefix(kind) {
            let value = rest.split(" as ").next().unwrap_or(rest);
            return value.trim_matches('`').to_string();
        }
    }
    match s {
        "sequence" => "a list".to_string(),
        "map" => "a mapping".to_string(),
        "unit value" => "null".to_string(),
        other => other.to_string(),
    }
}

/// serde's words for what was wanted, made plain.
fn describe_expected(s: &str) -> String {
    if s == "field identifier" {
        return "a key".to_string();
    }
    if s.starts_with("struct ") || s == "a map" {
        return "a mapping".to_string();
    }
    match s {
        "a sequence" => "a list".to_string(),
        "a string" => "text".to_string(),
        other => other.to_string(),
    }
}

/// Removes serde_yaml's ` at line N column M` parts; the line is reported
/// separately.
fn strip_locations(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find(" at line ") {
        out.push_str(&rest[..i]);
        let after = &rest[i + " at line ".len()..];
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let tail = &after[digits..];
        match tail.strip_prefix(" column ") {
            Some(col) if digits > 0 => {
                let n = col.len() - col.trim_start_matches(|c: char| c.is_ascii_digit()).len();
                rest = &col[n..];
            }
            _ => {
                out.push_str(" at line ");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------
// The file's shape, as serde reads it. Every field is optional; values are
// checked while they are read, so that serde_yaml reports the exact line.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    project: Option<RawProject>,
    server: Option<RawServer>,
    database: Option<RawDatabase>,
    purge: Option<RawPurge>,
    maintenance: Option<RawMaintenance>,
    script_dirs: Option<Vec<Text>>,
    task_classes: Option<NameMap<RawClass>>,
    tools: Option<NameMap<Option<RawTool>>>,
    limits: Option<RawLimits>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProject {
    name: Option<Text>,
    repo_path: Option<Text>,
    prd_path: Option<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    host: Option<Text>,
    port: Option<Int<0, 65535>>,
    allowed_hosts: Option<Vec<Text>>,
    token: Option<Text>,
    max_body_bytes: Option<Positive>,
    threads: Option<Int<1, MAX_THREADS>>,
    idle_timeout_seconds: Option<Positive>,
    request_timeout_seconds: Option<Positive>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    path: Option<Text>,
    // Read only to refuse anything but "wal".
    #[allow(dead_code)]
    mode: Option<WalMode>,
    synchronous: Option<SyncMode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPurge {
    older_than_days: Option<Positive>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMaintenance {
    interval_seconds: Option<Positive>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClass {
    timeout: Positive,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTool {
    description: Option<String>,
    task_class: Option<Text>,
    timeout: Option<Positive>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    output_bytes: Option<Positive>,
    payload_bytes: Option<Positive>,
}

/// A whole number from `MIN` to `MAX`. Quoted numbers, fractions and
/// `1:30` are refused rather than guessed at.
struct Int<const MIN: u64, const MAX: u64>(u64);

type Positive = Int<1, { u64::MAX }>;

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Int<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(IntVisitor { min: MIN, max: MAX }).map(Int)
    }
}

struct IntVisitor {
    min: u64,
    max: u64,
}

impl IntVisitor {
    fn rule(&self) -> String {
        match (self.min, self.max) {
            (1, u64::MAX) => "a positive whole number".to_string(),
            (min, u64::MAX) => format!("a whole number of at least {min}"),
            (min, max) => format!("a whole number from {min} to {max}"),
        }
    }

    fn refuse<E: de::Error>(&self, shown: impl fmt::Display) -> E {
        E::custom(format!("must be {}, not {shown}", self.rule()))
    }
}

impl<'de> Visitor<'de> for IntVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rule())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<u64, E> {
        if v < self.min || v > self.max {
            return Err(self.refuse(v));
        }
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<u64, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(self.refuse(v)),
        }
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> std::result::Result<u64, E> {
        Err(self.refuse(v))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> std::result::Result<u64, E> {
        Err(self.refuse(v))
    }
}

/// Text that must not be empty: names, hosts, paths, tokens.
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("text")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Text, E> {
                if v.is_empty() {
                    return Err(E::custom("must not be empty"));
                }
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_str(V)
    }
}

/// `database.mode`: only write-ahead logging, which the store relies on for
/// readers that do not block the writer.
struct WalMode;

impl<'de> Deserialize<'de> for WalMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WalMode;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"wal\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<WalMode, E> {
                if v.eq_ignore_ascii_case("wal") {
                    return Ok(WalMode);
                }
                Err(E::custom(format!("must be \"wal\", the only mode SparkQ runs in, not {v:?}")))
            }
        }
        d.deserialize_str(V)
    }
}

struct SyncMode(Synchronous);

impl<'de> Deserialize<'de> for SyncMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SyncMode;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"normal\" or \"full\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<SyncMode, E> {
                match v.to_ascii_lowercase().as_str() {
                    "normal" => Ok(SyncMode(Synchronous::Normal)),
                    "full" => Ok(SyncMode(Synchronous::Full)),
                    _ => Err(E::custom(format!("must be \"normal\" or \"full\", not {v:?}"))),
                }
            }
        }
        d.deserialize_str(V)
    }
}

/// A mapping from names (of classes or tools) to settings, refusing empty
/// names and a name given twice. Keys stay text as written: `no`, `on`, `1`
/// and `true` are names like any other.
struct NameMap<V>(BTreeMap<String, V>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for NameMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = NameMap<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of names to settings")
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                mut access: A,
            ) -> std::result::Result<NameMap<V>, A::Error> {
                let mut map = BTreeMap::new();
                while let Some(name) = access.next_key_seed(NameSeed(&map))? {
                    let value = access.next_value()?;
                    map.insert(name, value);
                }
                Ok(NameMap(map))
            }
        }
        d.deserialize_map(MapVisitor(PhantomData))
    }
}

/// Reads one name of a `NameMap`, knowing the names read before it, so that
/// the error points at the offending key itself.
struct NameSeed<'a, V>(&'a BTreeMap<String, V>);

impl<'de, V> DeserializeSeed<'de> for NameSeed<'_, V> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, V> Visitor<'de> for NameSeed<'_, V> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<String, E> {
        if v.is_empty() {
            return Err(E::custom("a name must not be empty"));
        }
        if v.chars().any(char::is_control) {
            return Err(E::custom(format!("name {v:?} must not hold control characters")));
        }
        if self.0.contains_key(v) {
            return Err(E::custom(format!("duplicate key {v:?}")));
        }
        Ok(v.to_string())
    }
}

// ---------------------------------------------------------------------------
// Finding keys in the text. serde_yaml reports lines for what it reads, but
// not for checks made after reading (a tool's class) nor precisely for a
// duplicate struct field; this scanner recovers those lines. It understands
// block mappings, sequences of mappings, flow mappings and block scalars,
// and gives up quietly on anything stranger: it is a best effort, used only
// to point at a line.

/// One mapping key: its 1-based line and its full path of keys.
#[derive(Debug)]
struct KeyAt {
    line: usize,
    path: Vec<String>,
}

/// Every mapping key in `text`, in order.
fn scan_keys(text: &str) -> Vec<KeyAt> {
    let mut out = Vec::new();
    // Open keys, each with its level: (column, flow depth).
    let mut stack: Vec<((usize, usize), String)> = Vec::new();
    // Inside a block scalar: lines indented past this column are its text.
    let mut block_scalar: Option<usize> = None;
    // Inside a flow collection: the column of the key that owns it, the
    // brackets still open, and whether a key may come next.
    let mut flow: Option<(usize, Vec<u8>, bool)> = None;

    let mut push = |stack: &mut Vec<((usize, usize), String)>, level, key: String, line| {
        while stack.last().is_some_and(|(l, _)| *l >= level) {
            stack.pop();
        }
        stack.push((level, key));
        out.push(KeyAt { line, path: stack.iter().map(|(_, k)| k.clone()).collect() });
    };

    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let bytes = line.as_bytes();
        let indent = bytes.iter().take_while(|&&b| b == b' ').count();
        if let Some(parent) = block_scalar {
            if indent >= bytes.len() || indent > parent {
                continue;
            }
            block_scalar = None;
        }
        let mut pos = indent;
        if flow.is_none() {
            // Sequence dashes put the key further right.
            while pos < bytes.len() && bytes[pos] == b'-' {
                let next = bytes.get(pos + 1).copied();
                if !matches!(next, None | Some(b' ')) {
                    break;
                }
                pos += 1;
                while pos < bytes.len() && bytes[pos] == b' ' {
                    pos += 1;
                }
            }
            if pos >= bytes.len() || matches!(bytes[pos], b'#' | b'%' | b'?' | b'\t') {
                continue;
            }
            if pos == 0 && (line.starts_with("---") || line.starts_with("...")) {
                continue;
            }
            if matches!(bytes[pos], b'{' | b'[') {
                flow = Some((pos, Vec::new(), false));
            } else {
                let Some((key, after)) = read_key(line, pos, false) else { continue };
                push(&mut stack, (pos, 0), key, lineno);
                let value = skip_props(line, after);
                match bytes.get(value) {
                    Some(b'|' | b'>') => {
                        block_scalar = Some(pos);
                        continue;
                    }
                    Some(b'{' | b'[') => {
                        flow = Some((pos, Vec::new(), false));
                        pos = value;
                    }
                    _ => continue,
                }
            }
        }
        let Some((owner, brackets, expect_key)) = flow.as_mut() else { continue };
        let owner = *owner;
        let mut at = pos;
        while at < bytes.len() {
            match bytes[at] {
                b'{' => {
                    brackets.push(b'{');
                    *expect_key = true;
                    at += 1;
                }
                b'[' => {
                    brackets.push(b'[');
                    *expect_key = false;
                    at += 1;
                }
                b'}' | b']' => {
                    brackets.pop();
                    at += 1;
                    if brackets.is_empty() {
                        break;
                    }
                }
                b',' => {
                    *expect_key = brackets.last() == Some(&b'{');
                    at += 1;
                }
                b'#' if at == 0 || bytes[at - 1] == b' ' => break,
                b' ' | b'\t' => at += 1,
                b'"' | b'\'' if !*expect_key => at = skip_quoted(bytes, at),
                _ if *expect_key => {
                    *expect_key = false;
                    match read_key(line, at, true) {
                        Some((key, after)) => {
                            push(&mut stack, (owner, brackets.len()), key, lineno);
                            at = after;
                        }
                        None => at += 1,
                    }
                }
                _ => at += 1,
            }
        }
        if brackets.is_empty() {
            flow = None;
        }
    }
    out
}

/// Reads a mapping key starting at byte `pos` of `line`: its text and the
/// byte just after its colon.
fn read_key(line: &str, pos: usize, in_flow: bool) -> Option<(String, usize)> {
    let bytes = line.as_bytes();
    let (key, end) = match bytes.get(pos)? {
        b'"' => {
            let end = skip_quoted(bytes, pos);
            (unescape_double(line.get(pos + 1..end.saturating_sub(1))?), end)
        }
        b'\'' => {
            let end = skip_quoted(bytes, pos);
            (line.get(pos + 1..end.saturating_sub(1))?.replace("''", "'"), end)
        }
        b'[' | b'{' | b'&' | b'*' | b'!' | b'|' | b'>' | b'#' | b'@' | b'`' | b',' | b'}' => {
            return None
        }
        _ => {
            let mut end = pos;
            loop {
                match bytes.get(end) {
                    None => return None,
                    Some(b':') if matches!(bytes.get(end + 1), None | Some(b' ' | b'\t')) => break,
                    // Inside a flow mapping, punctuation before a colon
                    // means this entry has no key.
                    Some(b',' | b'}' | b']' | b'{' | b'[') if in_flow => return None,
                    Some(b'#') if bytes[end - 1] == b' ' => return None,
                    Some(_) => end += 1,
                }
            }
            return Some((line[pos..end].trim_end().to_string(), end + 1));
        }
    };
    let mut after = end;
    while matches!(bytes.get(after), Some(b' ' | b'\t')) {
        after += 1;
    }
    if bytes.get(after) == Some(&b':') {
        Some((key, after + 1))
    } else {
        None
    }
}

/// The byte after the quoted scalar that opens at `start`, or the line's end
/// when it does not close on this line.
fn skip_quoted(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut at = start + 1;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' if quote == b'"' => at += 2,
            b'\'' if quote == b'\'' && bytes.get(at + 1) == Some(&b'\'') => at += 2,
            b if b == quote => return at + 1,
            _ => at += 1,
        }
    }
    bytes.len()
}

/// Skips spaces, then an anchor or tag before a value, returning where the
/// value starts.
fn skip_props(line: &str, mut at: usize) -> usize {
    let bytes = line.as_bytes();
    loop {
        while matches!(bytes.get(at), Some(b' ' | b'\t')) {
            at += 1;
        }
        match bytes.get(at) {
            Some(b'&' | b'!') => {
                while at < bytes.len() && bytes[at] != b' ' {
                    at += 1;
                }
            }
            _ => return at,
        }
    }
}

/// The text of a double-quoted key; the common escapes only.
fn unescape_double(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let ch = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                out.push(ch.unwrap_or('\u{fffd}'));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// The line of the key at `path`, or of its nearest ancestor that is found.
fn line_of(text: &str, path: &[&str]) -> Option<usize> {
    let keys = scan_keys(text);
    (1..=path.len())
        .rev()
        .find_map(|n| {
            keys.iter().find(|k| k.path.iter().map(String::as_str).eq(path[..n].iter().copied()))
        })
        .map(|k| k.line)
}

/// The line of the `nth` (from 0) key whose dotted path is `joined`.
fn nth_line_of_joined(text: &str, joined: &str, nth: usize) -> Option<usize> {
    scan_keys(text).into_iter().filter(|k| k.path.join(".") == joined).nth(nth).map(|k| k.line)
}

/// The key path open at `line`: the path of the last key at or before it.
fn path_at(text: &str, line: usize) -> Vec<String> {
    scan_keys(text)
        .into_iter()
        .take_while(|k| k.line <= line)
        .last()
        .map(|k| k.path)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh empty folder under the system temp dir.
    fn temp_dir(label: &str) -> PathBuf {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir()
            .join(format!("sparkq-config-test-{}-{label}-{n}", std::process::id()));
        let _ = fs_remove(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn fs_remove(dir: &Path) -> std::io::Result<()> {
        std::fs::remove_dir_all(dir)
    }

    fn file() -> PathBuf {
        PathBuf::from("/x/sparkq.yml")
    }

    fn parse(text: &str) -> Result<Config> {
        parse_str(text, &file())
    }

    fn refused(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(Error::Config(msg)) => msg,
            Err(other) => panic!("wrong kind {other:?} for:\n{text}"),
        }
    }

    #[test]
    fn defaults_fill_every_key() {
        let c = Config::defaults(Path::new("/srv/app"));
        assert_eq!(c.file, None);
        assert_eq!(c.dir, PathBuf::from("/srv/app"));
        assert_eq!(c.project.name, "app");
        assert_eq!(c.project.repo_path, PathBuf::from("/srv/app"));
        assert_eq!(c.project.prd_path, None);
        assert_eq!(c.server.host, "127.0.0.1");
        assert_eq!(c.server.port, 8420);
        assert!(c.server.allowed_hosts.is_empty());
        assert_eq!(c.server.token, None);
        assert_eq!(c.server.max_body_bytes, 8 * 1024 * 1024);
        assert_eq!(c.server.threads, 4);
        assert_eq!(c.database.path, PathBuf::from("/srv/app/sparkq.db"));
        assert_eq!(c.database.synchronous, Synchronous::Normal);
        assert_eq!(c.purge_older_than_days, 3);
        assert_eq!(c.maintenance_interval_seconds, 5);
        assert_eq!(c.script_dirs, vec![PathBuf::from("/srv/app/scripts")]);
        let classes: Vec<(&str, u64)> =
            c.task_classes.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            classes,
            [("FAST_SCRIPT", 30), ("LLM_HEAVY", 900), ("LLM_LITE", 300), ("MEDIUM_SCRIPT", 300)]
        );
        let tools: Vec<(&str, &str, &str)> = c
            .tools
            .iter()
            .map(|(k, t)| (k.as_str(), t.description.as_str(), t.task_class.as_str()))
            .collect();
        assert_eq!(
            tools,
            [
                ("llm-haiku", "Call Claude Haiku", "LLM_LITE"),
                ("llm-sonnet", "Call Claude Sonnet", "LLM_HEAVY"),
                ("run-bash", "Execute a bash script", "MEDIUM_SCRIPT"),
                ("run-python", "Execute a python script", "MEDIUM_SCRIPT"),
            ]
        );
        assert!(c.tools.values().all(|t| t.timeout.is_none()));
        assert_eq!(c.limits.output_bytes, 1024 * 1024);
        assert_eq!(c.limits.payload_bytes, 1024 * 1024);
        assert_eq!(c.lock_path(), PathBuf::from("/srv/app/sparkq.lock"));
    }

    #[test]
    fn empty_and_comment_only_files_give_the_defaults() {
        for text in ["", "\n\n", "# nothing here\n", "~\n", "---\n", "\u{feff}"] {
            let c = parse(text).unwrap();
            assert_eq!(c.file, Some(file()));
            assert_eq!(c.dir, PathBuf::from("/x"));
            assert_eq!(c.project.name, "x");
            assert_eq!(c.tools.len(), 4);
            assert_eq!(c.task_classes.len(), 4);
            assert_eq!(c.database.path, PathBuf::from("/x/sparkq.db"));
        }
    }

    #[test]
    fn every_key_is_read_and_paths_are_relative_to_the_file() {
        let text = "\
project:
  name: demo
  repo_path: ../repo
  prd_path: docs/prd.md
server:
  host: 0.0.0.0
  port: 9000
  allowed_hosts: [box.lan, example.test]
  token: s3cret
  max_body_bytes: 1000
  threads: 64
database:
  path: /var/q/queue.db
  mode: wal
  synchronous: full
purge:
  older_than_days: 7
maintenance:
  interval_seconds: 1
script_dirs:
  - ./scripts
  - /opt/tools
task_classes:
  FAST_SCRIPT:
    timeout: 10
  BATCH:
    timeout: 7200
tools:
  build:
    description: Build it
    task_class: BATCH
    timeout: 60
  lint: {}
  quick:
limits:
  output_bytes: 100
  payload_bytes: 200
";
        let c = parse_str(text, Path::new("/home/u/proj/./sparkq.yml")).unwrap();
        assert_eq!(c.file, Some(PathBuf::from("/home/u/proj/sparkq.yml")));
        assert_eq!(c.dir, PathBuf::from("/home/u/proj"));
        assert_eq!(c.project.name, "demo");
        assert_eq!(c.project.repo_path, PathBuf::from("/home/u/proj/../repo"));
        assert_eq!(c.project.prd_path, Some(PathBuf::from("/home/u/proj/docs/prd.md")));
        assert_eq!(c.server.host, "0.0.0.0");
        assert_eq!(c.server.port, 9000);
        assert_eq!(c.server.allowed_hosts, ["box.lan", "example.test"]);
        assert_eq!(c.server.token.as_deref(), Some("s3cret"));
        assert_eq!(c.server.max_body_bytes, 1000);
        assert_eq!(c.server.threads, 64);
        assert_eq!(c.database.path, PathBuf::from("/var/q/queue.db"));
        assert_eq!(c.database.synchronous, Synchronous::Full);
        assert_eq!(c.purge_older_than_days, 7);
        assert_eq!(c.maintenance_interval_seconds, 1);
        assert_eq!(
            c.script_dirs,
            [PathBuf::from("/home/u/proj/scripts"), PathBuf::from("/opt/tools")]
        );
        assert_eq!(c.task_classes["FAST_SCRIPT"], 10);
        assert_eq!(c.task_classes["BATCH"], 7200);
        assert_eq!(c.task_classes["LLM_HEAVY"], 900);
        assert_eq!(c.task_classes.len(), 5);
        let names: Vec<&str> = c.tools.keys().map(String::as_str).collect();
        assert_eq!(names, ["build", "lint", "quick"]);
        assert_eq!(c.tools["build"].description, "Build it");
        assert_eq!(c.tools["build"].task_class, "BATCH");
        assert_eq!(c.tools["build"].timeout, Some(60));
        assert_eq!(c.tools["lint"].task_class, "MEDIUM_SCRIPT");
        assert_eq!(c.tools["lint"].description, "");
        assert_eq!(c.tools["quick"].task_class, "MEDIUM_SCRIPT");
        assert_eq!(c.limits.output_bytes, 100);
        assert_eq!(c.limits.payload_bytes, 200);

        assert_eq!(c.resolve("build", None, None).unwrap(), ("BATCH".to_string(), 60));
        assert_eq!(c.resolve("lint", None, None).unwrap(), ("MEDIUM_SCRIPT".to_string(), 300));
        assert_eq!(
            c.resolve("lint", Some("FAST_SCRIPT"), None).unwrap(),
            ("FAST_SCRIPT".to_string(), 10)
        );
        assert!(c.resolve("run-bash", None, None).is_err());
    }

    #[test]
    fn flow_style_is_read_like_block_style() {
        let text = "server: { host: 127.0.0.1, port: 8421 }\n\
                    tools: { t1: { task_class: FAST_SCRIPT }, t2: {description: two} }\n";
        let c = parse(text).unwrap();
        assert_eq!(c.server.port, 8421);
        assert_eq!(c.tools["t1"].task_class, "FAST_SCRIPT");
        assert_eq!(c.tools["t2"].description, "two");
    }

    #[test]
    fn tool_names_stay_text() {
        let text = "tools:\n  no: {}\n  yes: {}\n  on: {}\n  off: {}\n  true: {}\n  1: {}\n  \
                    1.5: {}\n  null: {}\n  ~: {}\n  0x10: {}\n";
        let c = parse(text).unwrap();
        let names: Vec<&str> = c.tools.keys().map(String::as_str).collect();
        assert_eq!(names, ["0x10", "1", "1.5", "no", "null", "off", "on", "true", "yes", "~"]);
        let c =
            parse("task_classes:\n  no:\n    timeout: 5\ntools:\n  x: {task_class: no}\n").unwrap();
        assert_eq!(c.tools["x"].task_class, "no");
        assert_eq!(c.resolve("x", None, None).unwrap(), ("no".to_string(), 5));
    }

    #[test]
    fn null_values_mean_the_default() {
        let c = parse("project:\n  prd_path:\nserver:\n  port:\ntools:\nscript_dirs:\n").unwrap();
        assert_eq!(c.project.prd_path, None);
        assert_eq!(c.server.port, 8420);
        assert_eq!(c.tools.len(), 4);
        assert_eq!(c.script_dirs, [PathBuf::from("/x/scripts")]);
        let c = parse("script_dirs: []\n").unwrap();
        assert!(c.script_dirs.is_empty());
    }

    /// Each bad config: its text, the line to blame and words the message
    /// must hold, the key among them.
    const BAD: &[(&str, usize, &[&str])] = &[
        // YAML syntax.
        ("server:\n  host: \"unclosed\n", 2, &["in server.host", "quoted scalar"]),
        ("server:\n  port: [1, 2\nlimits: {}\n", 3, &["in ", "flow sequence"]),
        ("server:\n  port: 1\n host: x\n", 3, &["in server", "expected key"]),
        // Tabs used for indentation.
        ("server:\n\tport: 1\n", 2, &["in server", "tab is used for indentation"]),
        ("server:\n  port: 1\n \thost: x\n", 3, &["in server.port", "tab"]),
        ("tools:\n  a:\n\t\ttimeout: 3\n", 3, &["in tools.a", "tab"]),
        (
            "server: {host: x,\n\tport: 1}\nlimits:\n  output_bytes: 1\n   x: [\n",
            5,
            &["in limits.output_bytes", "mapping values are not allowed"],
        ),
        // Duplicate keys, in a section, at the top, among names.
        ("server:\n  port: 1\n  host: x\n  port: 2\n", 4, &["server", "duplicate key \"port\""]),
        ("purge: {}\nserver: {}\nserver: {}\n", 3, &["duplicate key \"server\""]),
        ("tools:\n  a: {}\n  b: {}\n  a: {}\n", 4, &["tools", "duplicate key \"a\""]),
        ("tools: {a: {}, a: {}}\n", 1, &["tools", "duplicate key \"a\""]),
        ("tools:\n  a:\n    timeout: 1\n    timeout: 2\n", 4, &["tools.a", "duplicate key"]),
        // Unknown keys at any level.
        ("server:\n  host: x\n  prot: 3\n", 3, &["unknown key \"prot\" in server", "port"]),
        ("servers:\n  port: 1\n", 1, &["unknown key \"servers\"", "expected one of"]),
        ("tools:\n  a:\n    timeot: 3\n", 3, &["unknown key \"timeot\" in tools.a"]),
        ("task_classes:\n  A:\n    timeout: 3\n    x: 1\n", 4, &["\"x\" in task_classes.A"]),
        // Wrong types.
        ("tools:\n  a:\n    timeout: \"1:30\"\n", 3, &["tools.a.timeout", "found \"1:30\""]),
        ("tools:\n  a:\n    timeout: 1:30\n", 3, &["tools.a.timeout", "positive whole"]),
        ("tools:\n  a:\n    timeout: 2.5\n", 3, &["tools.a.timeout", "found 2.5"]),
        ("server:\n  port: abc\n", 2, &["server.port", "from 0 to 65535", "\"abc\""]),
        ("server:\n  port: 70000\n", 2, &["server.port", "not 70000"]),
        ("server:\n  port: -1\n", 2, &["server.port", "not -1"]),
        ("server: 3\n", 1, &["server: expected a mapping, found 3"]),
        ("script_dirs: scripts\n", 1, &["script_dirs: expected a list"]),
        ("server:\n  allowed_hosts: [a, [b]]\n", 2, &["server.allowed_hosts", "a list"]),
        ("tools:\n  [a]: {}\n", 2, &["tools", "expected a name"]),
        ("purge:\n  older_than_days: true\n", 2, &["purge.older_than_days", "found true"]),
        ("- a\n- b\n", 1, &["expected a mapping, found a list"]),
        ("[a]: 1\n", 1, &["expected a key, found a list"]),
        ("database:\n  mode: delete\n", 2, &["database.mode", "\"wal\"", "\"delete\""]),
        ("database:\n  synchronous: off\n", 2, &["database.synchronous", "\"off\""]),
        // Values out of range.
        ("tools:\n  a:\n    timeout: 0\n", 3, &["tools.a.timeout", "positive", "not 0"]),
        ("tools:\n  a:\n    timeout: -5\n", 3, &["tools.a.timeout", "not -5"]),
        ("task_classes:\n  A:\n    timeout: 0\n", 3, &["task_classes.A.timeout", "not 0"]),
        ("maintenance:\n  interval_seconds: 0\n", 2, &["maintenance.interval_seconds"]),
        ("purge:\n  older_than_days: 0\n", 2, &["purge.older_than_days", "not 0"]),
        ("limits:\n  output_bytes: 0\n", 2, &["limits.output_bytes", "not 0"]),
        ("limits:\n  payload_bytes: -1\n", 2, &["limits.payload_bytes"]),
        ("server:\n  max_body_bytes: 0\n", 2, &["server.max_body_bytes"]),
        ("server:\n  threads: 0\n", 2, &["server.threads", "from 1 to 64", "not 0"]),
        ("server:\n  threads: 65\n", 2, &["server.threads", "not 65"]),
        ("purge:\n  older_than_days: 99999999999999999999999\n", 2, &["older_than_days"]),
        // Empty text and names.
        ("server:\n  host: \"\"\n", 2, &["server.host", "must not be empty"]),
        ("database:\n  path: ''\n", 2, &["database.path", "must not be empty"]),
        ("tools:\n  \"\": {}\n", 2, &["tools", "name must not be empty"]),
        ("task_classes:\n  '':\n    timeout: 3\n", 2, &["task_classes", "must not be empty"]),
        ("tools:\n  \"a\\nb\": {}\n", 2, &["tools", "control characters"]),
        // A class without its timeout.
        ("task_classes:\n  A: {}\n", 2, &["task_classes.A", "missing key \"timeout\""]),
        // Tools that cannot work.
        (
            "tools:\n  a: {}\n  b:\n    description: x\n    task_class: NOPE\n",
            5,
            &["tools.b.task_class", "unknown task class \"NOPE\"", "FAST_SCRIPT"],
        ),
        (
            "task_classes: {X: {timeout: 1}}\ntools: {a: {task_class: Y}}\n",
            2,
            &["tools.a.task_class", "\"Y\"", "X"],
        ),
        ("tools: {}\n", 1, &["tools", "no tool is listed"]),
    ];

    #[test]
    fn bad_configs_are_refused_naming_file_line_and_key() {
        for (text, line, words) in BAD {
            let msg = refused(text);
            let prefix = format!("config /x/sparkq.yml: line {line}: ");
            assert!(msg.starts_with(&prefix), "want {prefix:?}, got {msg:?} for:\n{text}");
            for word in *words {
                assert!(msg.contains(word), "want {word:?} in {msg:?} for:\n{text}");
            }
            assert!(!msg.contains(" at line "), "location left in {msg:?}");
            assert!(!msg.contains('`'), "serde quoting left in {msg:?}");
            assert!(!msg.ends_with('.'), "final period in {msg:?}");
        }
    }

    #[test]
    fn more_than_one_document_is_refused() {
        let msg = refused("server: {}\n---\nserver: {}\n");
        assert!(msg.starts_with("config /x/sparkq.yml: "), "{msg}");
        assert!(msg.contains("more than one YAML document"), "{msg}");
    }

    #[test]
    fn load_reports_missing_and_unreadable_files() {
        let dir = temp_dir("load");
        let missing = dir.join("nope.yml");
        let msg = Config::load(&missing).unwrap_err().to_string();
        assert_eq!(msg, format!("config {}: file not found", missing.display()));

        let binary = dir.join("bin.yml");
        std::fs::write(&binary, b"server:\n  host: \xff\n").unwrap();
        let msg = Config::load(&binary).unwrap_err().to_string();
        assert!(msg.contains("not UTF-8"), "{msg}");

        let msg = Config::load(&dir).unwrap_err().to_string();
        assert!(msg.starts_with(&format!("config {}: ", dir.display())), "{msg}");

        let good = dir.join("sub").join("sparkq.yml");
        std::fs::create_dir_all(good.parent().unwrap()).unwrap();
        std::fs::write(&good, "database:\n  path: data/q.db\n").unwrap();
        let c = Config::load(&good).unwrap();
        assert_eq!(c.database.path, dir.join("sub/data/q.db"));
        assert_eq!(c.project.name, "sub");
        assert_eq!(c.lock_path(), dir.join("sub/data/sparkq.lock"));
        let _ = fs_remove(&dir);
    }

    #[test]
    fn a_non_empty_token_from_the_environment_wins() {
        let mut c = parse("server:\n  token: from-file\n").unwrap();
        c.override_token(None);
        assert_eq!(c.server.token.as_deref(), Some("from-file"));
        c.override_token(Some(String::new()));
        assert_eq!(c.server.token.as_deref(), Some("from-file"));
        c.override_token(Some("from-env".into()));
        assert_eq!(c.server.token.as_deref(), Some("from-env"));
    }

    #[test]
    fn discovery_prefers_flag_then_environment_then_nearest_file() {
        let root = temp_dir("discover");
        let deep = root.join("a/b/c");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(discover_with(None, None, &deep).filter(|p| p.starts_with(&root)), None);

        std::fs::write(root.join("sparkq.yml"), "").unwrap();
        assert_eq!(discover_with(None, None, &deep), Some(root.join("sparkq.yml")));
        std::fs::write(root.join("a/sparkq.yml"), "").unwrap();
        assert_eq!(discover_with(None, None, &deep), Some(root.join("a/sparkq.yml")));
        // A folder of that name is not a config file.
        std::fs::create_dir_all(root.join("a/b/sparkq.yml")).unwrap();
        assert_eq!(discover_with(None, None, &deep), Some(root.join("a/sparkq.yml")));

        let env = Some(OsString::from("other.yml"));
        assert_eq!(discover_with(None, env.clone(), &deep), Some(deep.join("other.yml")));
        let empty = Some(OsString::new());
        assert_eq!(discover_with(None, empty, &deep), Some(root.join("a/sparkq.yml")));
        let flag = Path::new("/elsewhere/./given.yml");
        assert_eq!(
            discover_with(Some(flag), env.clone(), &deep),
            Some(PathBuf::from("/elsewhere/given.yml"))
        );
        assert_eq!(
            discover_with(Some(Path::new("rel.yml")), env, &deep),
            Some(deep.join("rel.yml"))
        );
        let _ = fs_remove(&root);
    }

    fn assert_same(a: &Config, b: &Config) {
        assert_eq!(format!("{:?}", a), format!("{:?}", b));
    }

    #[test]
    fn default_yaml_loads_back_to_the_defaults() {
        let text = default_yaml("x", DEFAULT_PORT, &[], None, None);
        let mut want = Config::defaults(Path::new("/x"));
        want.file = Some(file());
        assert_same(&parse(&text).unwrap(), &want);
        // Every key is written out.
        for key in [
            "project:",
            "name:",
            "repo_path:",
            "prd_path:",
            "server:",
            "host:",
            "port:",
            "allowed_hosts:",
            "token:",
            "max_body_bytes:",
            "threads:",
            "database:",
            "path:",
            "mode:",
            "synchronous:",
            "purge:",
            "older_than_days:",
            "maintenance:",
            "interval_seconds:",
            "script_dirs:",
            "task_classes:",
            "tools:",
            "timeout:",
            "description:",
            "task_class:",
            "limits:",
            "output_bytes:",
            "payload_bytes:",
        ] {
            assert!(text.contains(key), "{key} missing from:\n{text}");
        }
    }

    #[test]
    fn default_yaml_keeps_what_setup_was_given() {
        let dirs = ["tools".to_string(), "/abs/ops".to_string(), "with: colon".to_string()];
        let odd_name = "yes \"quoted\" \\ name: #1\t\u{2028}é";
        let text = default_yaml(odd_name, 0, &dirs, Some("../repo"), Some("docs/PRD.md"));
        let c = parse(&text).unwrap();
        assert_eq!(c.project.name, odd_name);
        assert_eq!(c.server.port, 0);
        assert_eq!(
            c.script_dirs,
            [PathBuf::from("/x/tools"), PathBuf::from("/abs/ops"), PathBuf::from("/x/with: colon")]
        );
        assert_eq!(c.project.repo_path, PathBuf::from("/x/../repo"));
        assert_eq!(c.project.prd_path, Some(PathBuf::from("/x/docs/PRD.md")));
        assert_eq!(c.tools.len(), 4);
        assert_eq!(c.task_classes.len(), 4);
    }

    #[test]
    fn the_scanner_finds_keys_in_every_style() {
        let text = "\
# comment: not a key
project:
  name: a
  description: |
    looks: like a key
    tools: too
tools:
  \"quoted\":
    task_class: X
  'single''s':
    timeout: 1
  flow: {task_class: Y, timeout: 2}
  multi: {
    task_class: Z }
list:
  - item: 1
    other: 2
";
        assert_eq!(line_of(text, &["project", "name"]), Some(3));
        assert_eq!(line_of(text, &["tools"]), Some(7));
        assert_eq!(line_of(text, &["tools", "quoted", "task_class"]), Some(9));
        assert_eq!(line_of(text, &["tools", "single's", "timeout"]), Some(11));
        assert_eq!(line_of(text, &["tools", "flow", "timeout"]), Some(12));
        assert_eq!(line_of(text, &["tools", "multi", "task_class"]), Some(14));
        assert_eq!(line_of(text, &["list", "other"]), Some(17));
        // A missing key falls back to its nearest ancestor.
        assert_eq!(line_of(text, &["tools", "flow", "description"]), Some(12));
        assert_eq!(line_of(text, &["nothing"]), None);
        assert_eq!(path_at(text, 5), ["project", "description"]);
        assert_eq!(path_at(text, 1), Vec::<String>::new());
    }

    use crate::testing::Rng;

    #[test]
    fn random_text_never_panics_the_parser() {
        const PIECES: &[&str] = &[
            "server:",
            "tools:",
            "task_classes:",
            "  ",
            "    ",
            "\t",
            "- ",
            "port: ",
            "timeout: ",
            "a:",
            "{",
            "}",
            "[",
            "]",
            ",",
            "\"",
            "'",
            ":",
            " ",
            "\n",
            "\r\n",
            "#",
            "|",
            ">",
            "&x ",
            "*x",
            "!!str ",
            "0",
            "-1",
            "99999999999999999999",
            "1:30",
            "no",
            "~",
            "?",
            "---",
            "\u{feff}",
            "é",
            "\\",
            "description: ",
            "task_class: ",
            "LLM_LITE",
        ];
        let mut rng = Rng(0x5eed_cafe_f00d_d00d);
        let base = default_yaml("fuzz", 8420, &[], None, None);
        for case in 0..2000 {
            let text = match case % 3 {
                0 => (0..rng.below(40)).map(|_| PIECES[rng.below(PIECES.len())]).collect(),
                1 => {
                    let bytes: Vec<u8> =
                        (0..rng.below(200)).map(|_| (rng.next() & 0x7f) as u8).collect();
                    String::from_utf8_lossy(&bytes).into_owned()
                }
                _ => {
                    // The default file with a few cuts and insertions.
                    let mut text = base.clone();
                    for _ in 0..1 + rng.below(4) {
                        let mut at = rng.below(text.len() + 1);
                        while !text.is_char_boundary(at) {
                            at -= 1;
                        }
                        if rng.below(2) == 0 {
                            text.insert_str(at, PIECES[rng.below(PIECES.len())]);
                        } else {
                            let mut end = (at + rng.below(20)).min(text.len());
                            while !text.is_char_boundary(end) {
                                end -= 1;
                            }
                            text.replace_range(at..end, "");
                        }
                    }
                    text
                }
            };
            if let Err(err) = parse(&text) {
                let msg = err.to_string();
                assert!(msg.starts_with("config /x/sparkq.yml: "), "{msg:?} for {text:?}");
            }
        }
    }
}
