//! `sparkq run`: take the lock, open the store, bind, start the handler
//! pool and the maintenance threads, and wait for a stop. Shutdown is the
//! reverse: unblock and join the handlers, stop maintenance, release the
//! lock, then let the store close.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::clock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::http::{self, App};
use crate::lock::{LockInfo, ServerLock};
use crate::log;
use crate::maintenance::Maintenance;
use crate::scripts::ScriptIndex;
use crate::store::Store;

/// Room for a request's header section on top of the body limit.
const HEADER_BYTES: u64 = 64 * 1024;

/// Runs the server in the foreground until `stop`, Ctrl-C or SIGTERM.
/// `notes` are printed after the URL line (e.g. that a config was created).
pub fn run(config: Config, notes: &[String]) -> Result<()> {
    let started = Instant::now();
    let host = config.server.host.clone();
    if !is_loopback(&host) && config.server.token.is_none() {
        return Err(Error::Invalid(format!(
            "refusing to listen on non-loopback address \"{host}\" without a token: \
             set server.token in the config or SPARKQ_TOKEN"
        )));
    }
    let mut lock = ServerLock::acquire(&config.lock_path())?;
    let store = Store::open(&config.database.path, config.database.synchronous)?;
    let project = &config.project;
    store.ensure_project(
        &project.name,
        &project.repo_path.to_string_lossy(),
        project.prd_path.as_ref().map(|p| p.to_string_lossy()).as_deref(),
        clock::now(),
    )?;
    let listener = bind(&host, config.server.port)?;
    let addr = listener.local_addr()?;
    let url = match addr {
        SocketAddr::V6(a) => format!("http://[{}]:{}", a.ip(), a.port()),
        SocketAddr::V4(a) => format!("http://{a}"),
    };
    lock.write_info(&LockInfo { pid: std::process::id(), url: url.clone() })?;
    let listener_fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
    let server = tiny_http::Server::from_listener(listener, None)
        .map_err(|e| Error::Internal(format!("cannot start the HTTP server: {e}")))?;
    let server = Arc::new(server);

    let store = Arc::new(store);
    let scripts = ScriptIndex::build(&config.script_dirs);
    let threads = config.server.threads;
    let reaper_limits = http::reaper::Limits {
        idle: Duration::from_secs(config.server.idle_timeout_seconds),
        request: Duration::from_secs(config.server.request_timeout_seconds),
        bytes: config.server.max_body_bytes + HEADER_BYTES,
    };
    let config_path = config.file.clone();
    let db_path = config.database.path.clone();
    let config = Arc::new(RwLock::new(Arc::new(config)));
    let (stop_tx, stop_rx) = mpsc::channel();
    let app = Arc::new(App {
        store: store.clone(),
        config: config.clone(),
        scripts: RwLock::new(Arc::new(scripts)),
        started,
        addr,
        shutdown: Mutex::new(Some(stop_tx)),
    });
    let stopping = Arc::new(AtomicBool::new(false));
    let workers = http::spawn_workers(server.clone(), app.clone(), threads, stopping.clone())?;
    let maintenance = Maintenance::start(store.clone(), config)?;
    let (sweep_stop, sweep_rx) = mpsc::channel::<()>();
    let sweeper = std::thread::Builder::new()
        .name("sparkq-reaper".into())
        .spawn(move || http::reaper::reap_loop(listener_fd, addr, reaper_limits, &sweep_rx))?;
    signals::install();
    signals::raise_fd_limit();

    print_banner(&url, config_path.as_deref(), &db_path, &store, notes);
    log::info(
        "listening",
        &[
            ("url", &url),
            (
                "config",
                &config_path.as_ref().map_or("(defaults)".into(), |p| p.display().to_string()),
            ),
            ("database", &db_path.display()),
            ("threads", &threads),
            ("pid", &std::process::id()),
            ("startup_ms", &started.elapsed().as_millis()),
        ],
    );

    let why = loop {
        match stop_rx.recv_timeout(Duration::from_millis(100)) {
            Ok(()) => break "stop requested",
            Err(RecvTimeoutError::Disconnected) => break "stop requested",
            Err(RecvTimeoutError::Timeout) if signals::received() => break "signal received",
            Err(RecvTimeoutError::Timeout) => {}
        }
    };
    log::info("shutting_down", &[("reason", &why)]);
    stopping.store(true, Ordering::SeqCst);
    for _ in &workers {
        server.unblock();
    }
    for w in workers {
        let _ = w.join();
    }
    maintenance.stop();
    drop(sweep_stop);
    let _ = sweeper.join();
    drop(app);
    drop(server);
    lock.release();
    log::info("stopped", &[("uptime_s", &started.elapsed().as_secs())]);
    if http::listener_failed() {
        return Err(Error::Internal(
            "the server stopped accepting connections; see the log above".into(),
        ));
    }
    Ok(())
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Binds the listening socket, naming the address when that fails.
fn bind(host: &str, port: u16) -> Result<TcpListener> {
    TcpListener::bind((host, port)).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::AddrInUse => format!("port {port} is already in use"),
            std::io::ErrorKind::AddrNotAvailable => {
                format!("address \"{host}\" is not on this machine")
            }
            std::io::ErrorKind::PermissionDenied => format!("permission denied for port {port}"),
            _ => e.to_string(),
        };
        Error::Unavailable(format!("cannot listen on {host}:{port}: {why}"))
    })
}

/// The start-up lines on stdout; the URL comes first so that scripts and
/// tests can read it.
fn print_banner(
    url: &str,
    config: Option<&std::path::Path>,
    db: &std::path::Path,
    store: &Store,
    notes: &[String],
) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{url}");
    for n in notes {
        let _ = writeln!(out, "{n}");
    }
    let config =
        config.map_or("(none: built-in defaults)".to_string(), |p| p.display().to_string());
    let _ = writeln!(out, "config: {config}");
    let _ = writeln!(out, "database: {}", db.display());
    match store.list_streams(None, Some(true), 1000, 0) {
        Ok(streams) if streams.is_empty() => {
            let _ = writeln!(
                out,
                "streams: none active (create one: sparkq stream create NAME --session S)"
            );
        }
        Ok(streams) => {
            let _ = writeln!(out, "streams:");
            for s in streams.iter().rev() {
                let _ = writeln!(out, "  {} ({} queued)", s.name, s.counts[0]);
            }
        }
        Err(e) => log::warn("stream_list_failed", &[("error", &e)]),
    }
    let _ = out.flush();
}

/// Ctrl-C and SIGTERM stop the server the same way `sparkq stop` does; the
/// open-file limit is raised at start.
///
/// N.B. The handler only sets a flag; the main loop polls it every 100 ms.
/// That is the one thing a signal handler may safely do, and it keeps this
/// to two libc calls instead of a crate.
mod signals {
    use std::sync::atomic::{AtomicBool, Ordering};

    static RECEIVED: AtomicBool = AtomicBool::new(false);

    extern "C" fn on_signal(_: i32) {
        RECEIVED.store(true, Ordering::SeqCst);
    }

    extern "C" {
        fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    }

    const SIGINT: i32 = 2;
    const SIGTERM: i32 = 15;

    pub fn install() {
        // SAFETY: `on_signal` only stores to an atomic, which is
        // async-signal-safe; `signal` is given valid signal numbers.
        unsafe {
            signal(SIGINT, on_signal);
            signal(SIGTERM, on_signal);
        }
    }

    #[repr(C)]
    struct Rlimit {
        cur: u64,
        max: u64,
    }

    extern "C" {
        fn getrlimit(resource: i32, rlim: *mut Rlimit) -> i32;
        fn setrlimit(resource: i32, rlim: *const Rlimit) -> i32;
    }

    const RLIMIT_NOFILE: i32 = 7;

    /// Raises the open-file limit to its hard maximum: each connection holds
    /// a descriptor, and running out would end tiny_http's accept loop.
    pub fn raise_fd_limit() {
        let mut r = Rlimit { cur: 0, max: 0 };
        // SAFETY: both calls get a valid pointer to a properly laid out
        // `struct rlimit` (two 64-bit words on 64-bit Linux).
        unsafe {
            if getrlimit(RLIMIT_NOFILE, &mut r) == 0 && r.cur < r.max {
                r.cur = r.max;
                setrlimit(RLIMIT_NOFILE, &r);
            }
        }
    }

    pub fn received() -> bool {
        RECEIVED.load(Ordering::SeqCst)
    }
}
