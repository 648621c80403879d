//! The script index: files under the configured script folders, each
//! described by the `key: value` lines of its leading comment block.
//!
//! Building never fails: folders that are missing and files that cannot be
//! read are skipped, since a broken script must not stop the server.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// How much of a file is read to find its header. A header longer than this
/// is cut; the rest of a large file is never read.
pub const HEAD_BYTES: u64 = 64 * 1024;

/// File endings that make a file a script; others need a `#!` first line.
const EXTENSIONS: [&str; 6] = ["sh", "bash", "py", "rb", "pl", "js"];

/// Folders that hold tools, dependencies or build output rather than
/// scripts. Hidden folders and virtual environments are skipped as well.
const SKIPPED_DIRS: [&str; 4] = ["node_modules", "target", "__pycache__", "venv"];

/// What a script's leading comment block says about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    pub name: Option<String>,
    pub description: Option<String>,
    pub inputs: Option<String>,
    pub outputs: Option<String>,
    pub tags: Vec<String>,
    /// Seconds; `None` when absent or not a whole positive number.
    pub timeout: Option<u64>,
    pub task_class: Option<String>,
}

/// Reads the header of a script from its text.
///
/// The header is the leading block of `#` or `//` comment lines, blank lines
/// allowed, after an optional byte order mark and `#!` line. It ends at the
/// first line that is neither. Within it, `key: value` lines with a known key
/// (in any case) set a field, the first such line winning; other lines are
/// prose and are ignored.
pub fn parse_header(text: &str) -> Header {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut header = Header::default();
    let mut seen: HashSet<String> = HashSet::new();
    for (i, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line).trim();
        if i == 0 && line.starts_with("#!") {
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let comment = if let Some(rest) = line.strip_prefix("//") {
            rest.trim_start_matches('/')
        } else if let Some(rest) = line.strip_prefix('#') {
            rest.trim_start_matches('#')
        } else {
            break;
        };
        let Some((key, value)) = comment.split_once(':') else { continue };
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim();
        if value.is_empty() || seen.contains(&key) {
            continue;
        }
        let text = Some(value.to_string());
        match key.as_str() {
            "name" => header.name = text,
            "description" => header.description = text,
            "inputs" => header.inputs = text,
            "outputs" => header.outputs = text,
            "task_class" => header.task_class = text,
            "tags" => {
                header.tags = value
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect()
            }
            "timeout" => header.timeout = parse_timeout(value),
            _ => continue,
        }
        seen.insert(key);
    }
    header
}

/// A whole positive number of seconds, digits only: `30s` or `1:30` is not.
fn parse_timeout(value: &str) -> Option<u64> {
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse::<u64>().ok().filter(|&secs| secs > 0)
}

/// One indexed script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Absolute.
    pub path: PathBuf,
    /// From the header, else the file name without its script extension.
    pub name: String,
    pub description: Option<String>,
    pub inputs: Option<String>,
    pub outputs: Option<String>,
    pub tags: Vec<String>,
    pub timeout: Option<u64>,
    pub task_class: Option<String>,
}

impl Script {
    /// The script as the API and the CLI show it; absent fields are null.
    pub fn to_json(&self) -> Value {
        json!({
            "path": self.path.to_string_lossy(),
            "name": self.name,
            "description": self.description,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "tags": self.tags,
            "timeout": self.timeout,
            "task_class": self.task_class,
        })
    }

    /// Returns true if and only if `needle`, already lowercase, is part of
    /// the name, the description or a tag, ignoring case.
    fn matches(&self, needle: &str) -> bool {
        let has = |s: &str| s.to_lowercase().contains(needle);
        has(&self.name)
            || self.description.as_deref().is_some_and(has)
            || self.tags.iter().any(|t| has(t))
    }
}

/// The scripts found under a set of folders, sorted by path.
#[derive(Debug, Clone, Default)]
pub struct ScriptIndex {
    scripts: Vec<Script>,
}

impl ScriptIndex {
    /// Walks `dirs` and indexes every script in them. Relative folders are
    /// taken from the current directory. Symbolic links to folders are not
    /// followed, so a link loop cannot trap the walk; links to files are.
    pub fn build(dirs: &[PathBuf]) -> ScriptIndex {
        let mut scripts = Vec::new();
        for dir in dirs {
            let root = match std::env::current_dir() {
                Ok(cwd) if dir.is_relative() => cwd.join(dir),
                _ => dir.clone(),
            };
            if root.is_dir() {
                walk(&root, &mut scripts);
            }
        }
        scripts.sort_by(|a, b| a.path.cmp(&b.path));
        // Folders that overlap (`scripts` and `scripts/ops`) list a file once.
        scripts.dedup_by(|a, b| a.path == b.path);
        ScriptIndex { scripts }
    }

    /// Every script, sorted by path.
    pub fn scripts(&self) -> &[Script] {
        &self.scripts
    }

    /// The scripts whose name, description or a tag contains `query`,
    /// ignoring case; all of them when the query is blank.
    pub fn search(&self, query: &str) -> Vec<&Script> {
        let needle = query.trim().to_lowercase();
        self.scripts.iter().filter(|s| needle.is_empty() || s.matches(&needle)).collect()
    }

    /// `{"scripts": [...]}`, as `GET /api/scripts/index` answers.
    pub fn to_json(&self) -> Value {
        let list: Vec<Value> = self.scripts.iter().map(Script::to_json).collect();
        json!({ "scripts": list })
    }
}

/// Adds the scripts under `root` to `out`. Iterative, so a deep tree cannot
/// exhaust the stack.
fn walk(root: &Path, out: &mut Vec<Script>) {
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else { continue };
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if kind.is_dir() {
                if !is_skipped_dir(&name, &path) {
                    pending.push(path);
                }
                continue;
            }
            // N.B. a link is indexed only when it leads to a regular file;
            // opening anything else (a pipe, a device) could block.
            let is_file = if kind.is_symlink() {
                fs::metadata(&path).map(|m| m.is_file()).unwrap_or(false)
            } else {
                kind.is_file()
            };
            if is_file && !name.starts_with('.') {
                if let Some(script) = read_script(&path) {
                    out.push(script);
                }
            }
        }
    }
}

/// Returns true if and only if the folder holds no scripts of the user's:
/// hidden, dependencies, build output or a Python virtual environment.
fn is_skipped_dir(name: &str, path: &Path) -> bool {
    name.starts_with('.') || SKIPPED_DIRS.contains(&name) || path.join("pyvenv.cfg").exists()
}

/// Indexes one file, or `None` when it is not a script or cannot be read.
fn read_script(path: &Path) -> Option<Script> {
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
    let known_ext = ext.as_deref().is_some_and(|e| EXTENSIONS.contains(&e));
    let mut head = Vec::new();
    fs::File::open(path).ok()?.take(HEAD_BYTES).read_to_end(&mut head).ok()?;
    if !known_ext {
        let body = head.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&head);
        if !body.starts_with(b"#!") {
            return None;
        }
    }
    let header = parse_header(&String::from_utf8_lossy(&head));
    let file_name = path.file_name()?;
    let default_name = if known_ext { path.file_stem()? } else { file_name };
    Some(Script {
        path: path.to_path_buf(),
        name: header.name.unwrap_or_else(|| default_name.to_string_lossy().into_owned()),
        description: header.description,
        inputs: header.inputs,
        outputs: header.outputs,
        tags: header.tags,
        timeout: header.timeout,
        task_class: header.task_class,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scripts")
    }

    fn fixture_index() -> ScriptIndex {
        ScriptIndex::build(&[fixtures()])
    }

    fn find<'a>(index: &'a ScriptIndex, rel: &str) -> &'a Script {
        let path = fixtures().join(rel);
        index
            .scripts()
            .iter()
            .find(|s| s.path == path)
            .unwrap_or_else(|| panic!("{rel} not indexed"))
    }

    /// A fresh empty folder under the system temp dir.
    fn temp_dir(label: &str) -> PathBuf {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir()
            .join(format!("sparkq-scripts-test-{}-{label}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_index_holds_exactly_the_scripts() {
        let index = fixture_index();
        let rels: Vec<String> = index
            .scripts()
            .iter()
            .map(|s| s.path.strip_prefix(fixtures()).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            rels,
            [
                "bin/cleanup",
                "bin/latin1.pl",
                "crlf.sh",
                "deep/er/nested.sh",
                "deploy.sh",
                "plain.rb",
                "tools/summarize.py",
                "web/check.js",
            ]
        );
        assert!(index.scripts().iter().all(|s| s.path.is_absolute()));
    }

    #[test]
    fn skipped_folders_and_files_are_present_but_not_indexed() {
        // The fixtures must exist, or this test would pass for nothing.
        let skipped = [
            "notes.txt",
            "README",
            ".hidden-file.sh",
            ".hidden/x.sh",
            "node_modules/x.js",
            "venv/bin/x.py",
            "env/x.py",
            "pyenv-custom/x.py",
            "target/x.sh",
            "__pycache__/x.py",
        ];
        let index = fixture_index();
        for rel in skipped {
            let path = fixtures().join(rel);
            assert!(path.is_file(), "fixture {rel} is missing");
            assert!(index.scripts().iter().all(|s| s.path != path), "{rel} was indexed");
        }
    }

    #[test]
    fn a_full_header_fills_every_field() {
        let index = fixture_index();
        let s = find(&index, "deploy.sh");
        assert_eq!(s.name, "deploy-site");
        assert_eq!(
            s.description.as_deref(),
            Some("Build the site and copy it to the staging host")
        );
        assert_eq!(s.inputs.as_deref(), Some("SITE_DIR, TARGET"));
        assert_eq!(s.outputs.as_deref(), Some("the staging URL on stdout"));
        assert_eq!(s.tags, ["deploy", "Web", "staging"]);
        assert_eq!(s.timeout, Some(600));
        assert_eq!(s.task_class.as_deref(), Some("LLM_HEAVY"));
    }

    #[test]
    fn headers_in_each_comment_style_are_read() {
        let index = fixture_index();
        let py = find(&index, "tools/summarize.py");
        assert_eq!(py.name, "Summarize");
        assert_eq!(py.description.as_deref(), Some("Summarize a text file with an LLM"));
        assert_eq!(py.tags, ["llm", "text"]);
        assert_eq!(py.timeout, None, "1:30 is not a whole number");

        let js = find(&index, "web/check.js");
        assert_eq!(js.name, "check-links");
        assert_eq!(js.tags, ["web", "links"]);
        assert_eq!(js.timeout, Some(45));

        let crlf = find(&index, "crlf.sh");
        assert_eq!(crlf.name, "crlf");
        assert_eq!(crlf.description.as_deref(), Some("Written on Windows"));
        assert_eq!(crlf.tags, ["windows", "crlf"]);
        assert_eq!(crlf.timeout, Some(20));

        let bare = find(&index, "bin/cleanup");
        assert_eq!(bare.name, "cleanup");
        assert_eq!(bare.description.as_deref(), Some("Remove temporary files"));
        assert_eq!(bare.timeout, None, "30s is not a whole number");

        let latin1 = find(&index, "bin/latin1.pl");
        assert_eq!(latin1.name, "latin1");
        assert_eq!(latin1.description.as_deref(), Some("caf\u{fffd} report"));

        let nested = find(&index, "deep/er/nested.sh");
        assert_eq!(nested.description.as_deref(), Some("found two folders down"));
    }

    #[test]
    fn a_script_without_header_is_named_by_its_stem() {
        let index = fixture_index();
        let s = find(&index, "plain.rb");
        assert_eq!(s.name, "plain");
        assert_eq!(
            (&s.description, &s.inputs, &s.outputs, &s.timeout, &s.task_class),
            (&None, &None, &None, &None, &None)
        );
        assert!(s.tags.is_empty());
        let json = s.to_json();
        assert_eq!(json["name"], "plain");
        assert_eq!(json["tags"], serde_json::json!([]));
        for key in ["description", "inputs", "outputs", "timeout", "task_class"] {
            assert!(json[key].is_null(), "{key} should be null");
        }
        assert_eq!(json["path"], fixtures().join("plain.rb").to_string_lossy().as_ref());
    }

    #[test]
    fn json_has_every_field() {
        let index = fixture_index();
        let json = index.to_json();
        let list = json["scripts"].as_array().unwrap();
        assert_eq!(list.len(), index.scripts().len());
        let deploy = list.iter().find(|s| s["name"] == "deploy-site").unwrap();
        let mut keys: Vec<&str> = deploy.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["description", "inputs", "name", "outputs", "path", "tags", "task_class", "timeout"]
        );
        assert_eq!(deploy["timeout"], 600);
        assert_eq!(deploy["tags"], serde_json::json!(["deploy", "Web", "staging"]));
    }

    #[test]
    fn search_ignores_case_and_looks_at_name_description_and_tags() {
        let index = fixture_index();
        let names =
            |q: &str| -> Vec<String> { index.search(q).iter().map(|s| s.name.clone()).collect() };
        assert_eq!(names("DEPLOY"), ["deploy-site"]);
        assert_eq!(names("staging"), ["deploy-site"]);
        assert_eq!(names("web"), ["deploy-site", "check-links"]);
        assert_eq!(names("summarize a TEXT"), ["Summarize"]);
        assert_eq!(names("CAF\u{fffd}"), ["latin1"]);
        assert_eq!(names("TARGET"), Vec::<String>::new(), "inputs are not searched");
        assert_eq!(names("no such thing"), Vec::<String>::new());
        assert_eq!(index.search("").len(), index.scripts().len());
        assert_eq!(index.search("  ").len(), index.scripts().len());
    }

    #[test]
    fn missing_and_overlapping_folders_are_harmless() {
        let index = ScriptIndex::build(&[
            PathBuf::from("/nonexistent/sparkq/scripts"),
            fixtures(),
            fixtures().join("bin"),
            fixtures().join("deploy.sh"),
        ]);
        assert_eq!(index.scripts().len(), fixture_index().scripts().len());
        assert!(ScriptIndex::build(&[]).scripts().is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn links_to_folders_are_not_followed_and_links_to_files_are() {
        use std::os::unix::fs::symlink;

        let dir = temp_dir("links");
        fs::create_dir_all(dir.join("real/.git")).unwrap();
        fs::write(dir.join("real/a.sh"), "# name: a\n").unwrap();
        fs::write(dir.join("real/.git/hook.sh"), "# name: hook\n").unwrap();
        symlink(&dir, dir.join("real/loop")).unwrap();
        symlink(dir.join("real/a.sh"), dir.join("b.sh")).unwrap();
        symlink(dir.join("missing.sh"), dir.join("dangling.sh")).unwrap();
        let index = ScriptIndex::build(std::slice::from_ref(&dir));
        let names: Vec<&str> = index.scripts().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "a"]);
        assert_eq!(index.scripts()[0].path, dir.join("b.sh"));
        assert_eq!(index.scripts()[1].path, dir.join("real/a.sh"));
        let _ = fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn unreadable_files_are_skipped() {
        use std::os::unix::fs::PermissionsExt;

        let dir = temp_dir("unreadable");
        let locked = dir.join("locked.sh");
        fs::write(&locked, "# name: locked\n").unwrap();
        fs::write(dir.join("open.sh"), "# name: open\n").unwrap();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
        let readable = fs::File::open(&locked).is_ok();
        let index = ScriptIndex::build(std::slice::from_ref(&dir));
        let names: Vec<&str> = index.scripts().iter().map(|s| s.name.as_str()).collect();
        // A privileged user reads the file anyway; then it is indexed.
        if readable {
            assert_eq!(names, ["locked", "open"]);
        } else {
            assert_eq!(names, ["open"]);
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_the_head_of_a_big_file_is_read() {
        let dir = temp_dir("big");
        let mut text = String::from("#!/bin/sh\n# description: big one\n");
        text.push_str(&"# padding\n".repeat(HEAD_BYTES as usize / 10 + 10));
        text.push_str("# tags: beyond-the-head\n");
        fs::write(dir.join("big.sh"), text).unwrap();
        let index = ScriptIndex::build(std::slice::from_ref(&dir));
        let s = &index.scripts()[0];
        assert_eq!(s.description.as_deref(), Some("big one"));
        assert!(s.tags.is_empty());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn header_parsing_rules() {
        let h = parse_header("#!/bin/sh\n\n## NAME:  spaced  \n//tags: a,,b , \n# timeout: 0\n");
        assert_eq!(h.name.as_deref(), Some("spaced"));
        assert_eq!(h.tags, ["a", "b"]);
        assert_eq!(h.timeout, None, "0 is not positive");

        assert_eq!(parse_header("# timeout: +5\n").timeout, None);
        assert_eq!(parse_header("# timeout: -5\n").timeout, None);
        assert_eq!(parse_header("# timeout: 99999999999999999999999\n").timeout, None);
        assert_eq!(parse_header("# timeout: 007\n").timeout, Some(7));
        assert_eq!(parse_header("# name:\n# name: second\n").name.as_deref(), Some("second"));
        assert_eq!(parse_header("# description: a: b\n").description.as_deref(), Some("a: b"));
        assert_eq!(
            parse_header("# task_class: FAST_SCRIPT").task_class.as_deref(),
            Some("FAST_SCRIPT")
        );
        assert_eq!(parse_header("# inputs: x\r\n# outputs: y\r\n").outputs.as_deref(), Some("y"));
        // The shebang is skipped on the first line only, after any BOM.
        assert_eq!(parse_header("\u{feff}#!/bin/sh\n# name: x").name.as_deref(), Some("x"));
        assert_eq!(parse_header("code\n# name: x\n"), Header::default());
        assert_eq!(parse_header("\"\"\"docstring\n# name: x\n"), Header::default());
        assert_eq!(parse_header(""), Header::default());
        // A header line that merely mentions a key in prose is ignored.
        assert_eq!(parse_header("# The name of this: thing\n").name, None);
    }

    use crate::testing::Rng;

    #[test]
    fn random_input_never_panics_the_header_parser() {
        const PIECES: &[&str] = &[
            "#",
            "//",
            "#!",
            "\n",
            "\r\n",
            "\r",
            " ",
            "\t",
            ":",
            ",",
            "name",
            "Tags",
            "timeout",
            "TIMEOUT",
            "description",
            "task_class",
            "inputs",
            "outputs",
            "12",
            "0",
            "-3",
            "é",
            "\u{feff}",
            "\u{0}",
            "x",
            "///",
            "##",
        ];
        let mut rng = Rng(0x0dd_ba11_c0ff_ee00);
        for case in 0..2000 {
            let text = if case % 2 == 0 {
                (0..rng.below(60)).map(|_| PIECES[rng.below(PIECES.len())]).collect::<String>()
            } else {
                let bytes: Vec<u8> = (0..rng.below(300)).map(|_| rng.next() as u8).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            };
            let h = parse_header(&text);
            assert!(h.timeout.is_none_or(|t| t > 0));
            assert!(h.tags.iter().all(|t| !t.is_empty() && t.trim() == t));
            for field in [&h.name, &h.description, &h.inputs, &h.outputs, &h.task_class] {
                assert!(field.as_deref().is_none_or(|v| !v.is_empty()), "{text:?}");
            }
        }
    }
}
