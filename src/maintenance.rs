//! The maintenance threads: the timeout sweep and the purge. Each is a named
//! std thread that does one job per pass, logs only when rows changed, and
//! sleeps on a channel so that shutdown wakes it at once.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, RwLock};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::clock;
use crate::config::Config;
use crate::error::Result;
use crate::log;
use crate::store::Store;

/// Tasks deleted per purge transaction: about 15 ms of work on the
/// benchmark machine, so a claim waiting behind one batch waits that long.
pub const PURGE_BATCH: u32 = 500;

/// The pause after each full batch. Another process waiting for the write
/// lock polls with SQLite's growing sleeps (1, 2, 5, 10, 15, 20, 25 ms…);
/// a gap this long lets it in instead of the next batch.
pub const PURGE_PAUSE: Duration = Duration::from_millis(25);

const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// The running maintenance threads; dropping it does not stop them, `stop`
/// does.
pub struct Maintenance {
    stops: Vec<Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl Maintenance {
    /// Starts the sweep and the purge. Both read the config on every pass,
    /// so `reload` changes their intervals and cut-off.
    pub fn start(
        store: Arc<Store>,
        config: Arc<RwLock<Arc<Config>>>,
    ) -> std::io::Result<Maintenance> {
        let mut m = Maintenance { stops: Vec::new(), threads: Vec::new() };
        let (tx, rx) = mpsc::channel();
        let (s, c) = (store.clone(), config.clone());
        m.threads.push(
            thread::Builder::new()
                .name("sparkq-expire".into())
                .spawn(move || expire_loop(&s, &c, &rx))?,
        );
        m.stops.push(tx);
        let (tx, rx) = mpsc::channel();
        m.threads.push(
            thread::Builder::new()
                .name("sparkq-purge".into())
                .spawn(move || purge_loop(&store, &config, &rx))?,
        );
        m.stops.push(tx);
        Ok(m)
    }

    /// Wakes both threads, tells them to stop, and waits for them.
    pub fn stop(self) {
        drop(self.stops);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn current(config: &RwLock<Arc<Config>>) -> Arc<Config> {
    config.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Sleeps for `d`; returns false when told to stop.
fn sleep(stop: &Receiver<()>, d: Duration) -> bool {
    matches!(stop.recv_timeout(d), Err(RecvTimeoutError::Timeout))
}

fn expire_loop(store: &Store, config: &RwLock<Arc<Config>>, stop: &Receiver<()>) {
    loop {
        let every = Duration::from_secs(current(config).maintenance_interval_seconds.max(1));
        if !sleep(stop, every) {
            return;
        }
        match store.expire(clock::now()) {
            Ok(ids) if !ids.is_empty() => {
                log::info("tasks_auto_failed", &[("count", &ids.len()), ("ids", &ids.join(","))])
            }
            Ok(_) => {}
            Err(e) => log::error("timeout_sweep_failed", &[("error", &e)]),
        }
    }
}

fn purge_loop(store: &Store, config: &RwLock<Arc<Config>>, stop: &Receiver<()>) {
    loop {
        let days = current(config).purge_older_than_days;
        let cutoff = clock::now() - (days as i64).saturating_mul(86_400_000);
        match purge(store, cutoff, Some(stop)) {
            Ok(0) => {}
            Ok(n) => log::info("tasks_purged", &[("count", &n), ("older_than_days", &days)]),
            Err(e) => log::error("purge_failed", &[("error", &e)]),
        }
        if !sleep(stop, PURGE_EVERY) {
            return;
        }
    }
}

/// Deletes finished tasks older than `cutoff` in batches; returns how many.
/// With `stop`, a shutdown ends the purge between two batches.
pub fn purge(store: &Store, cutoff: clock::Millis, stop: Option<&Receiver<()>>) -> Result<usize> {
    let mut total = 0;
    loop {
        let n = store.purge_batch(cutoff, PURGE_BATCH)?;
        total += n;
        if n < PURGE_BATCH as usize {
            return Ok(total);
        }
        match stop {
            Some(stop) => {
                if !matches!(stop.recv_timeout(PURGE_PAUSE), Err(RecvTimeoutError::Timeout)) {
                    return Ok(total);
                }
            }
            None => std::thread::sleep(PURGE_PAUSE),
        }
    }
}
