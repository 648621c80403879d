//! Closes connections that hold the server without using it: silent ones,
//! ones that trickle a request for too long, and ones that send more than
//! any request may be.
//!
//! N.B. tiny_http reads each connection on its own thread with no time-out
//! and no limit on the header section, and offers no hook to reach an
//! accepted socket. A socket time-out set on the listener (which Linux copies
//! to accepted sockets) also makes `accept` time out, which ends tiny_http's
//! accept loop; one set after accepting does not wake a read already
//! waiting. So this thread looks through `/proc/self/fd` for the server's
//! TCP sockets, asks the kernel (`TCP_INFO`) when each last received and
//! sent data and how much it received, and shuts down the ones past a limit.
//! A shut-down socket makes the blocked read return at once, and tiny_http
//! drops the connection. Without `/proc` (not Linux) nothing is reaped, as
//! the README's Limitations say.

use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::net::{Shutdown, TcpStream};
use std::os::fd::{FromRawFd, RawFd};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::log;

/// What counts as abuse.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Nothing received and nothing sent for this long: closed.
    pub idle: Duration,
    /// No response sent for this long while the client keeps sending (a
    /// request trickled a byte at a time): closed.
    pub request: Duration,
    /// More bytes than this received since the last response: closed (a
    /// header section or body beyond what any request may be).
    pub bytes: u64,
}

/// How often sockets are looked at.
pub const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// The kernel's view of one connection (a few fields of `struct tcp_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpStats {
    pub established: bool,
    /// Milliseconds since data was last sent.
    pub since_sent_ms: u32,
    /// Milliseconds since data was last received.
    pub since_recv_ms: u32,
    pub bytes_received: u64,
}

/// What the reaper remembers of a connection between sweeps.
struct Seen {
    /// Bytes received when the server last sent something.
    recv_at_last_send: u64,
    since_sent_ms: u32,
}

/// Runs until `stop` is dropped.
pub fn reap_loop(listener: RawFd, limits: Limits, stop: &Receiver<()>) {
    let mut seen = HashMap::new();
    loop {
        let n = sweep(listener, limits, &mut seen);
        if n > 0 {
            log::info(
                "connections_closed",
                &[("count", &n), ("reason", &"idle, slow or oversized")],
            );
        }
        match stop.recv_timeout(SWEEP_EVERY) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

/// One pass over the process's sockets; returns how many were shut down.
fn sweep(listener: RawFd, limits: Limits, seen: &mut HashMap<u64, Seen>) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let start = Instant::now();
    let mut live = HashMap::with_capacity(seen.len());
    let mut closed = 0;
    for entry in dir.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<RawFd>().ok()) else {
            continue;
        };
        if fd == listener {
            continue;
        }
        let link = std::fs::read_link(entry.path()).ok();
        let Some(inode) = link.and_then(|l| socket_inode(&l.to_string_lossy())) else {
            continue;
        };
        let Some(st) = tcp_stats(fd) else {
            continue;
        };
        if !st.established {
            continue;
        }
        let prev = seen.remove(&inode);
        let recv_at_last_send = match prev {
            // Sent something since the last sweep: the count starts again.
            Some(p) if st.since_sent_ms >= p.since_sent_ms => p.recv_at_last_send,
            _ => st.bytes_received,
        };
        if verdict(&st, recv_at_last_send, limits) {
            // SAFETY: the stream borrows `fd` for one shutdown call and is
            // never dropped, so the descriptor stays open for its owner.
            let s = ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(fd) });
            let _ = s.shutdown(Shutdown::Both);
            closed += 1;
            continue;
        }
        live.insert(inode, Seen { recv_at_last_send, since_sent_ms: st.since_sent_ms });
    }
    *seen = live;
    if start.elapsed() > Duration::from_millis(100) {
        log::debug("reaper_slow", &[("ms", &start.elapsed().as_millis())]);
    }
    closed
}

/// Returns true if and only if a connection is past a limit.
pub fn verdict(st: &TcpStats, recv_at_last_send: u64, limits: Limits) -> bool {
    let ms = |d: Duration| d.as_millis().min(u32::MAX as u128) as u32;
    let idle = st.since_recv_ms > ms(limits.idle) && st.since_sent_ms > ms(limits.idle);
    let slow = st.since_sent_ms > ms(limits.request);
    let big = st.bytes_received.saturating_sub(recv_at_last_send) > limits.bytes;
    idle || slow || big
}

/// The inode of a `socket:[12345]` link target.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

extern "C" {
    fn getsockopt(fd: i32, level: i32, name: i32, value: *mut u8, len: *mut u32) -> i32;
}

const IPPROTO_TCP: i32 = 6;
const TCP_INFO: i32 = 11;
const TCP_ESTABLISHED: u8 = 1;

/// Reads `TCP_INFO` for `fd`; `None` if it is not a TCP socket.
///
/// Offsets are those of Linux's `struct tcp_info`, which only ever grows at
/// its end: state at 0, last_data_sent at 44, last_data_recv at 52,
/// bytes_received at 128.
pub fn tcp_stats(fd: RawFd) -> Option<TcpStats> {
    let mut buf = [0u8; 192];
    let mut len = buf.len() as u32;
    // SAFETY: `buf` is writable for `len` bytes, and the kernel writes at
    // most `len` bytes and stores the length it wrote in `len`.
    let rc = unsafe { getsockopt(fd, IPPROTO_TCP, TCP_INFO, buf.as_mut_ptr(), &mut len) };
    if rc != 0 || len < 136 {
        return None;
    }
    let u32_at = |o: usize| u32::from_ne_bytes(buf[o..o + 4].try_into().unwrap_or([0; 4]));
    let u64_at = |o: usize| u64::from_ne_bytes(buf[o..o + 8].try_into().unwrap_or([0; 8]));
    Some(TcpStats {
        established: buf[0] == TCP_ESTABLISHED,
        since_sent_ms: u32_at(44),
        since_recv_ms: u32_at(52),
        bytes_received: u64_at(128),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::os::fd::AsRawFd;

    const LIMITS: Limits =
        Limits { idle: Duration::from_secs(10), request: Duration::from_secs(30), bytes: 1000 };

    fn st(sent: u32, recv: u32, bytes: u64) -> TcpStats {
        TcpStats {
            established: true,
            since_sent_ms: sent,
            since_recv_ms: recv,
            bytes_received: bytes,
        }
    }

    #[test]
    fn verdicts_follow_the_limits() {
        assert!(!verdict(&st(9_000, 9_000, 10), 0, LIMITS), "busy enough");
        assert!(verdict(&st(10_001, 10_001, 10), 0, LIMITS), "silent both ways");
        assert!(!verdict(&st(20_000, 100, 10), 0, LIMITS), "trickling, not yet too long");
        assert!(verdict(&st(30_001, 100, 10), 0, LIMITS), "trickling too long");
        assert!(verdict(&st(0, 0, 5_000), 3_000, LIMITS), "too much since the last answer");
        assert!(!verdict(&st(0, 0, 5_000), 4_500, LIMITS));
    }

    #[test]
    fn reads_socket_inodes() {
        assert_eq!(socket_inode("socket:[8812]"), Some(8812));
        assert_eq!(socket_inode("/tmp/x.db"), None);
    }

    #[test]
    fn tcp_info_sees_received_bytes_and_a_sweep_closes_an_oversized_sender() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut server_side, _) = l.accept().unwrap();
        client.write_all(&[b'x'; 5000]).unwrap();
        let mut buf = vec![0u8; 5000];
        server_side.read_exact(&mut buf).unwrap();
        let s = tcp_stats(server_side.as_raw_fd()).expect("a TCP socket");
        assert!(s.established);
        assert_eq!(s.bytes_received, 5000);
        assert!(
            tcp_stats(l.as_raw_fd()).is_some_and(|s| !s.established),
            "a listener is not established"
        );
        let mut seen = HashMap::new();
        seen.insert(u64::MAX, Seen { recv_at_last_send: 0, since_sent_ms: 0 });
        let limits = Limits { bytes: 100, ..LIMITS };
        // The first sight of a socket counts from what it has already sent.
        sweep(l.as_raw_fd(), limits, &mut seen);
        client.write_all(&[b'y'; 500]).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(sweep(l.as_raw_fd(), limits, &mut seen) >= 1);
        let mut rest = Vec::new();
        server_side.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = server_side.read_to_end(&mut rest);
        assert!(rest.len() <= 500, "the shut-down socket reads to its end");
    }
}
