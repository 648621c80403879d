//! The server's lock file, `sparkq.lock` beside the database: it holds the
//! server's PID and URL so that `status`, `stop` and `reload` can find it.
//!
//! Ownership is an exclusive `flock` on the file, not its contents. The
//! kernel drops that lock when the owner dies, however it dies, so a lock
//! left by a killed server is taken over without guessing from a PID that
//! may now belong to another process (which is never signalled or touched);
//! a file with garbage in it is just as harmless. Two servers started at
//! the same instant race for the flock, and exactly one wins.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// What a lock file says about its server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    pub pid: u32,
    pub url: String,
}

/// A held server lock; `release` removes the file.
pub struct ServerLock {
    file: File,
    path: PathBuf,
}

impl ServerLock {
    /// Takes the lock at `path`, or says which server holds it.
    pub fn acquire(path: &Path) -> Result<ServerLock> {
        // A few tries: the file we opened may be unlinked by a stopping
        // server between our open and our lock.
        for _ in 0..5 {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|e| {
                    Error::Internal(format!("cannot open lock file {}: {e}", path.display()))
                })?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let held = read_info(path)
                        .map(|i| format!(" (pid {}, {})", i.pid, i.url))
                        .unwrap_or_default();
                    return Err(Error::Conflict(format!(
                        "another sparkq server is running{held}: lock file {} is held",
                        path.display()
                    )));
                }
                Err(TryLockError::Error(e)) => {
                    return Err(Error::Internal(format!("cannot lock {}: {e}", path.display())));
                }
            }
            if same_file(&file, path) {
                return Ok(ServerLock { file, path: path.to_path_buf() });
            }
        }
        Err(Error::Conflict(format!(
            "lock file {} keeps changing; is a server stopping?",
            path.display()
        )))
    }

    /// Writes the PID and URL for other processes to read.
    pub fn write_info(&mut self, info: &LockInfo) -> Result<()> {
        let text = format!("{}\n{}\n", info.pid, info.url);
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(text.as_bytes())?;
        self.file.sync_data()?;
        Ok(())
    }

    /// Removes the file, then lets the lock go.
    pub fn release(self) {
        let _ = std::fs::remove_file(&self.path);
        drop(self.file);
    }
}

/// Returns true if and only if the open file is still the one at `path`.
fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Parses `PID\nURL\n`; anything else is `None`.
pub fn parse_info(text: &str) -> Option<LockInfo> {
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse().ok()?;
    let url = lines.next()?.trim();
    if !url.starts_with("http://") {
        return None;
    }
    Some(LockInfo { pid, url: url.to_string() })
}

fn read_info(path: &Path) -> Option<LockInfo> {
    let mut text = String::new();
    File::open(path).ok()?.take(4096).read_to_string(&mut text).ok()?;
    parse_info(&text)
}

/// The live server that holds the lock at `path`, if any.
pub fn running(path: &Path) -> Option<LockInfo> {
    let file = File::open(path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(TryLockError::WouldBlock) => read_info(path),
        Err(TryLockError::Error(_)) => None,
    }
}

/// Waits until no server holds the lock at `path`; false on time-out.
pub fn wait_released(path: &Path, timeout: Duration) -> bool {
    let start = Instant::now();
    loop {
        let held = match File::open(path) {
            Ok(f) => matches!(f.try_lock_shared(), Err(TryLockError::WouldBlock)),
            Err(_) => false,
        };
        if !held {
            return true;
        }
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sparkq-lock-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("sparkq.lock")
    }

    #[test]
    fn second_acquire_is_refused_while_held() {
        let path = temp("held");
        let mut a = ServerLock::acquire(&path).unwrap();
        a.write_info(&LockInfo { pid: 42, url: "http://127.0.0.1:1".into() }).unwrap();
        let err = ServerLock::acquire(&path).err().unwrap();
        assert!(err.message().contains("pid 42"), "{err}");
        assert_eq!(running(&path).unwrap().pid, 42);
        a.release();
        assert!(!path.exists());
        assert!(running(&path).is_none());
    }

    #[test]
    fn garbage_lock_file_is_taken_over() {
        let path = temp("garbage");
        std::fs::write(&path, b"\x00\xffnot a lock").unwrap();
        assert!(running(&path).is_none());
        let lock = ServerLock::acquire(&path).unwrap();
        lock.release();
    }

    #[test]
    fn parse_info_refuses_garbage() {
        assert_eq!(parse_info("12\nhttp://127.0.0.1:8420\n").unwrap().pid, 12);
        assert!(parse_info("twelve\nhttp://x\n").is_none());
        assert!(parse_info("12\n").is_none());
    }
}
