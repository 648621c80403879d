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
//!
//! It also unsticks connections that tiny_http accepted but gave no thread.
//! N.B. tiny_http's pool counts its idle threads only when they wake, so a
//! burst of new connections can queue several behind one idle thread, and
//! each keep-alive connection keeps its thread: a queued one waits until
//! another connection closes. A request sitting unread in a socket for
//! `STARVED_AFTER` is the sign. For each such socket this thread opens and
//! at once closes a connection to the server's own address; with every pool
//! thread busy, tiny_http starts a new thread for it, which finds the
//! short-lived connection closed and goes on to the queued one.
//!
//! The same look through `/proc/self/fd` finds the socket of one request
//! (`socket_of`), so that a handler can close a connection tiny_http would
//! keep reading.

use std::collections::{HashMap, HashSet};
use std::mem::ManuallyDrop;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, SocketAddrV6, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
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
pub const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// How long a request may sit unread in its socket before its connection
/// counts as starved of a thread. Longer than any pause between tiny_http
/// accepting a connection and reading it.
pub const STARVED_AFTER: Duration = Duration::from_millis(100);

/// The most nudges sent in one sweep.
const NUDGES_MAX: usize = 32;

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

/// Runs until `stop` is dropped. `addr` is the server's listening address.
pub fn reap_loop(listener: RawFd, addr: SocketAddr, limits: Limits, stop: &Receiver<()>) {
    let mut seen = HashMap::new();
    loop {
        let (n, starved) = sweep(listener, limits, &mut seen);
        if starved > 0 {
            nudge(addr, starved.min(NUDGES_MAX));
            log::debug("connections_nudged", &[("count", &starved)]);
        }
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

/// One pass over the process's sockets; returns how many were shut down,
/// and how many wait with a request no thread reads.
fn sweep(listener: RawFd, limits: Limits, seen: &mut HashMap<u64, Seen>) -> (usize, usize) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return (0, 0);
    };
    let mut starved = 0;
    let start = Instant::now();
    let mut live = HashMap::with_capacity(seen.len());
    let mut reaped = HashSet::new();
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
        if live.contains_key(&inode) || reaped.contains(&inode) {
            // Another descriptor of a socket already looked at: tiny_http
            // holds two per connection, and counting twice would restart
            // the byte count at every sweep.
            continue;
        }
        let Some(st) = tcp_stats(fd) else {
            continue;
        };
        if !st.established {
            continue;
        }
        if u128::from(st.since_recv_ms) >= STARVED_AFTER.as_millis() && unread(fd) > 0 {
            starved += 1;
        }
        let prev = seen.remove(&inode);
        let recv_at_last_send = match prev {
            // Sent something since the last sweep: the count starts again.
            Some(p) if st.since_sent_ms >= p.since_sent_ms => p.recv_at_last_send,
            _ => st.bytes_received,
        };
        if verdict(&st, recv_at_last_send, limits) {
            reaped.insert(inode);
            if shut_if_same(fd, inode) {
                closed += 1;
            }
            continue;
        }
        live.insert(inode, Seen { recv_at_last_send, since_sent_ms: st.since_sent_ms });
    }
    *seen = live;
    if start.elapsed() > Duration::from_millis(100) {
        log::debug("reaper_slow", &[("ms", &start.elapsed().as_millis())]);
    }
    (closed, starved)
}

/// Opens and closes `n` connections to the server at `addr`, so that
/// tiny_http starts threads that then serve the connections it queued.
fn nudge(addr: SocketAddr, n: usize) {
    let target = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    };
    for _ in 0..n {
        if TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_err() {
            return;
        }
    }
}

/// Bytes received on socket `fd` that nobody has read yet.
fn unread(fd: RawFd) -> i32 {
    let mut n: i32 = 0;
    // SAFETY: FIONREAD writes one int through the pointer, which is valid.
    let rc = unsafe { ioctl(fd, FIONREAD, &mut n as *mut i32) };
    if rc == 0 {
        n
    } else {
        0
    }
}

/// Returns true if and only if a connection is past a limit.
pub fn verdict(st: &TcpStats, recv_at_last_send: u64, limits: Limits) -> bool {
    let ms = |d: Duration| d.as_millis().min(u32::MAX as u128) as u32;
    let idle = st.since_recv_ms > ms(limits.idle) && st.since_sent_ms > ms(limits.idle);
    let slow = st.since_sent_ms > ms(limits.request);
    let big = st.bytes_received.saturating_sub(recv_at_last_send) > limits.bytes;
    idle || slow || big
}

/// A handle of its own on this process's TCP connection whose far end is
/// `peer`; `None` when there is none, or no `/proc`.
///
/// N.B. The descriptor found may be closed and reused by its owner at any
/// moment (tiny_http closes a connection's reading half on its own thread),
/// so it is duplicated at once and the duplicate checked: while the caller
/// holds the request, the connection lives, and no other socket can have
/// the same far end.
pub fn socket_of(peer: SocketAddr) -> Option<TcpStream> {
    let dir = std::fs::read_dir("/proc/self/fd").ok()?;
    for entry in dir.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<RawFd>().ok()) else {
            continue;
        };
        let link = std::fs::read_link(entry.path()).ok();
        if link.and_then(|l| socket_inode(&l.to_string_lossy())).is_none()
            || peer_of(fd) != Some(peer)
        {
            continue;
        }
        // SAFETY: the stream borrows `fd` for one `dup` and is never dropped.
        let borrowed = ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(fd) });
        if let Ok(own) = borrowed.try_clone() {
            if own.peer_addr().ok() == Some(peer) {
                return Some(own);
            }
        }
    }
    None
}

/// Shuts socket `fd` down both ways if it still is the socket `inode`:
/// its owner may have closed it, and a new connection taken its number,
/// since it was looked at.
fn shut_if_same(fd: RawFd, inode: u64) -> bool {
    // SAFETY: the stream borrows `fd` for one `dup` and is never dropped.
    let borrowed = ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(fd) });
    let Ok(own) = borrowed.try_clone() else {
        return false;
    };
    inode_of(&own) == Some(inode) && own.shutdown(Shutdown::Both).is_ok()
}

/// The inode of the socket behind `sock`.
pub fn inode_of(sock: &TcpStream) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", sock.as_raw_fd())).ok()?;
    socket_inode(&link.to_string_lossy())
}

/// The address of the far end of socket `fd`.
fn peer_of(fd: RawFd) -> Option<SocketAddr> {
    let mut buf = [0u8; 128];
    let mut len = buf.len() as u32;
    // SAFETY: `buf` is writable for `len` bytes, and the kernel writes at
    // most `len` bytes of a `sockaddr` and stores its length in `len`.
    let rc = unsafe { getpeername(fd, buf.as_mut_ptr(), &mut len) };
    if rc != 0 {
        return None;
    }
    parse_sockaddr(&buf[..(len as usize).min(buf.len())])
}

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// Reads a `sockaddr_in` or `sockaddr_in6`: the family in native order,
/// then the port and the address in network order.
fn parse_sockaddr(b: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes(b.get(0..2)?.try_into().ok()?);
    let port = u16::from_be_bytes(b.get(2..4)?.try_into().ok()?);
    match family {
        AF_INET => {
            let ip: [u8; 4] = b.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))
        }
        AF_INET6 => {
            let ip: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            let scope = u32::from_ne_bytes(b.get(24..28)?.try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, scope)))
        }
        _ => None,
    }
}

/// The inode of a `socket:[12345]` link target.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

const FIONREAD: std::ffi::c_ulong = 0x541B;

extern "C" {
    fn ioctl(fd: i32, request: std::ffi::c_ulong, ...) -> i32;
    fn getsockopt(fd: i32, level: i32, name: i32, value: *mut u8, len: *mut u32) -> i32;
    fn getpeername(fd: i32, addr: *mut u8, len: *mut u32) -> i32;
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
pub(super) mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::os::fd::AsRawFd;

    /// Held by every test that opens sockets: a sweep looks at all of the
    /// process's sockets, those of tests running beside it too.
    pub(crate) static SOCKETS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    pub(crate) fn sockets() -> std::sync::MutexGuard<'static, ()> {
        SOCKETS.lock().unwrap_or_else(|p| p.into_inner())
    }

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
        let _sockets = sockets();
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
        assert!(sweep(l.as_raw_fd(), limits, &mut seen).0 >= 1);
        let mut rest = Vec::new();
        server_side.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = server_side.read_to_end(&mut rest);
        assert!(rest.len() <= 500, "the shut-down socket reads to its end");
    }

    #[test]
    fn finds_a_connection_by_its_peer_and_shuts_it() {
        let _sockets = sockets();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server_side, peer) = l.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        let own = socket_of(peer).expect("the accepted socket is found by its peer");
        assert_eq!(own.peer_addr().unwrap(), peer);
        assert_ne!(own.as_raw_fd(), server_side.as_raw_fd(), "a descriptor of its own");
        assert!(socket_of("127.0.0.1:1".parse().unwrap()).is_none());
        own.shutdown(Shutdown::Both).unwrap();
        drop(own);
        client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(client.read(&mut buf).unwrap(), 0, "the client sees the end");
        drop(server_side);
    }

    /// tiny_http holds two descriptors of each connection; the second one
    /// seen in a sweep reset the byte count, so only bytes received within
    /// one sweep were ever counted against the limit.
    #[test]
    fn regression_two_descriptors_of_one_socket_restarted_the_byte_count() {
        let _sockets = sockets();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut server_side, _) = l.accept().unwrap();
        let _second = server_side.try_clone().unwrap();
        let limits = Limits { bytes: 100, ..LIMITS };
        let mut seen = HashMap::new();
        let mut buf = [0u8; 64];
        sweep(l.as_raw_fd(), limits, &mut seen);
        for round in 0..3 {
            client.write_all(&[b'z'; 60]).unwrap();
            server_side.read_exact(&mut buf[..60]).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            let closed = sweep(l.as_raw_fd(), limits, &mut seen).0;
            // 60 bytes, then 120: past the limit at the second round.
            assert_eq!(closed, usize::from(round == 1), "round {round}");
            if closed > 0 {
                break;
            }
        }
    }

    #[test]
    fn parses_socket_addresses_of_both_families() {
        let mut v4 = [0u8; 16];
        v4[0..2].copy_from_slice(&AF_INET.to_ne_bytes());
        v4[2..4].copy_from_slice(&8420u16.to_be_bytes());
        v4[4..8].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(parse_sockaddr(&v4), Some("127.0.0.1:8420".parse().unwrap()));
        let mut v6 = [0u8; 28];
        v6[0..2].copy_from_slice(&AF_INET6.to_ne_bytes());
        v6[2..4].copy_from_slice(&80u16.to_be_bytes());
        v6[23] = 1;
        assert_eq!(parse_sockaddr(&v6), Some("[::1]:80".parse().unwrap()));
        assert_eq!(parse_sockaddr(&v4[..3]), None);
        assert_eq!(parse_sockaddr(&[0u8; 16]), None);
    }
}
