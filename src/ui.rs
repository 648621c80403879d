//! The dashboard's files, compiled into the binary from `static/`.
//!
//! Lookups only ever search the compiled-in directory, so no request path
//! can reach the file system; paths with `..`, backslashes or empty parts
//! are refused before the lookup anyway.

use include_dir::{include_dir, Dir};

static STATIC: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/static");

/// A file ready to serve.
pub struct Asset {
    pub body: &'static [u8],
    pub content_type: &'static str,
    /// A strong validator: changes whenever the file's bytes change.
    pub etag: String,
}

/// The file at `path` (relative to `static/`), if there is one.
pub fn lookup(path: &str) -> Option<Asset> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path.contains('\0')
        || path.split('/').any(|p| p.is_empty() || p == "." || p == "..");
    if bad {
        return None;
    }
    let file = STATIC.get_file(path)?;
    let body = file.contents();
    Some(Asset {
        body,
        content_type: content_type(path),
        etag: format!("\"{:016x}\"", fnv1a(body)),
    })
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// FNV-1a, 64 bits: enough to tell two versions of a file apart.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_index_with_html_type() {
        let a = lookup("index.html").expect("static/index.html is compiled in");
        assert!(a.content_type.starts_with("text/html"));
        assert!(!a.body.is_empty());
    }

    #[test]
    fn refuses_paths_that_climb_or_escape() {
        for p in [
            "../Cargo.toml",
            "a/../index.html",
            "/etc/passwd",
            "..\\x",
            "",
            "./index.html",
            "a//b",
            "..",
            ".",
            "index.html/..",
            "index.html\0.js",
            "C:\\Windows\\win.ini",
            "\\\\server\\share",
            "//etc/passwd",
            "index.html/",
        ] {
            assert!(lookup(p).is_none(), "{p:?}");
        }
    }

    #[test]
    fn every_compiled_in_file_is_found_by_its_plain_path_and_nothing_else_is() {
        let mut n = 0;
        for file in STATIC.files() {
            let path = file.path().to_str().expect("UTF-8 file names");
            assert!(lookup(path).is_some_and(|a| a.body == file.contents()), "{path}");
            n += 1;
        }
        assert!(n > 0);
        for outside in ["Cargo.toml", "src/main.rs", "sparkq.yml", "static/index.html"] {
            assert!(lookup(outside).is_none(), "{outside}");
        }
    }
}
