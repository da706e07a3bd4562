//! The per-store daemon: the one process that owns a store's database and its FUSE sessions
//! while mounts are live (docs/ARCHITECTURE.md, "The daemon").
//!
//! It listens on a unix socket only its owner can open (mode 0600 in a store directory, peer
//! credentials checked), serves every [`Request`] on a thread of its own, and exits when it has
//! had no mount and no client for its idle timeout, or on SIGTERM/SIGINT, unmounting
//! everything first. At start it lazily unmounts ware mounts whose daemon died.
//!
//! Invariants: the socket file is removed before the database is released, so a command that
//! finds no socket can open the store itself; the daemon's descriptors are close-on-exec, so
//! nothing it starts inherits them; a request handler never panics the daemon (each runs on its
//! own thread and a panic only ends that request).

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ware_fetchers::read_through::{Prefetch, ReadThrough};
use ware_fs::Mount;
use ware_store::db::Store;
use ware_store::pack::Progress;

use crate::api::LocalStore;
use crate::client::{canonical_store, runtime_dir, socket_path};
use crate::exit::exit_code;
use crate::ops::{Cx, MountInfo, Request};
use crate::profile::Recording;
use crate::proto::{OtherWire, Reply, WIRE, recv_request, send_reply};

mod catalogs;
mod mounts;
mod serves;

/// How often the daemon looks at its flags, mounts and idle time.
const TICK: Duration = Duration::from_millis(200);

/// Allocations from this size up get their own mapping, returned to the system when freed.
/// Setting it also stops glibc from raising it after each free of such a block, which made
/// every run's FUSE buffers (16 MiB per serving thread) and chunk buffers stay in the heap: RSS
/// grew by 50 MB per `ware run` for the first runs and never came back.
const MMAP_THRESHOLD: usize = 1 << 20;

struct Live {
    mount: Mount,
    info: MountInfo,
    /// What the mount read, kept as the ware's profile once the mount is gone (after `mount`,
    /// so it is dropped after the unmount).
    _recording: Option<Recording>,
    /// The source reading through to warehouses, if any: what it fetched, and why.
    fetcher: Option<Arc<ReadThrough>>,
    /// Reading ahead by profiles (prefetches from warehouses, cache warming from the store);
    /// they stop when the mount ends.
    _ahead: (Vec<Prefetch>, Vec<ware_fs::Warming>),
}

struct Daemon {
    local: LocalStore,
    store: Arc<Store>,
    mounts: Mutex<BTreeMap<PathBuf, Live>>,
    /// Shared by every mount: the budgets bound the daemon, not each mount.
    caches: Arc<ware_fs::Caches>,
    /// Their budgets (chunks, directories), from the store's settings.
    budgets: (u64, u64),
    clients: AtomicUsize,
    last_activity: Mutex<Instant>,
    stop: Arc<AtomicBool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A request thread that panicked cannot leave these maps half-updated: take them anyway.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `WARE_DAEMON_EXIT_WITH=PID`: the daemon stops, unmounting everything as on SIGTERM, when
/// process PID ends, however it ends. The daemon is detached by design (a user's mounts outlive
/// the command that made them); a test harness or supervisor sets this so a daemon its run
/// started cannot outlive the run. Commands pass their environment to a daemon they start.
pub const EXIT_WITH_ENV: &str = "WARE_DAEMON_EXIT_WITH";

/// Sets `stop` when process `pid` ends (watched through a pidfd, so a reused pid cannot fool
/// it); at once if there is no such process.
fn stop_when_gone(pid: &str, stop: Arc<AtomicBool>) -> Result<()> {
    use rustix::event::{PollFd, PollFlags};
    let raw: i32 = pid
        .parse()
        .with_context(|| format!("{EXIT_WITH_ENV}={pid}: not a process ID"))?;
    let pidfd = rustix::process::Pid::from_raw(raw)
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
    let Some(pidfd) = pidfd else {
        tracing::info!("process {raw} ({EXIT_WITH_ENV}) is gone already: stopping");
        stop.store(true, Ordering::SeqCst);
        return Ok(());
    };
    std::thread::Builder::new()
        .name("exit-with".into())
        .spawn(move || {
            let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
            while let Err(rustix::io::Errno::INTR) = rustix::event::poll(&mut fds, None) {}
            tracing::info!("process {raw} ({EXIT_WITH_ENV}) ended: stopping");
            stop.store(true, Ordering::SeqCst);
        })
        .context("starting the exit-with watcher")?;
    Ok(())
}

/// Runs the daemon of the store in `dir` until it is idle for `idle` (by default the store's
/// `daemon.idle_timeout_s`) or told to stop.
pub fn run(dir: &Path, idle: Option<Duration>) -> Result<()> {
    // Before anything of ours is open: drop whatever the starting command left us.
    ware_exec::close_inherited_fds().context("closing inherited descriptors")?;
    ware_exec::return_large_allocations(MMAP_THRESHOLD);
    // Opening the store sets the umask to 077 (store/src/private.rs) before anything is
    // created: RocksDB's files, the log and the socket are private.
    let dir = canonical_store(dir);
    let local = LocalStore::open(&dir)?;
    let store = local.shared();
    let cfg = crate::config::Config::load(&dir)?;
    let idle = idle.unwrap_or_else(|| Duration::from_secs_f64(cfg.get("daemon.idle_timeout_s")));
    let budgets = (
        cfg.get("cache.chunk_bytes") as u64,
        cfg.get("cache.dir_bytes") as u64,
    );

    // From here on, nothing goes to the terminal of the command that started us.
    let log_path = dir.join("daemon.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("{}: cannot open the daemon log", log_path.display()))?;
    rustix::stdio::dup2_stdout(log.as_fd())?;
    rustix::stdio::dup2_stderr(log.as_fd())?;
    let _ = std::env::set_current_dir("/");

    clean_dead_mounts();

    let sock_path = socket_path(&dir);
    if sock_path.parent() == Some(runtime_dir().as_path()) {
        private_dir(&runtime_dir())?;
    }
    // We hold the store's lock, so a socket file left here is a dead daemon's.
    let _ = std::fs::remove_file(&sock_path);
    let listener = UnixListener::bind(&sock_path)
        .with_context(|| format!("{}: cannot listen", sock_path.display()))?;
    std::fs::set_permissions(&sock_path, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    if let Some(pid) = std::env::var_os(EXIT_WITH_ENV) {
        stop_when_gone(&pid.to_string_lossy(), stop.clone())?;
    }
    let daemon = Arc::new(Daemon {
        local,
        store,
        mounts: Mutex::new(BTreeMap::new()),
        caches: ware_fs::Caches::new(budgets.0, budgets.1),
        budgets,
        clients: AtomicUsize::new(0),
        last_activity: Mutex::new(Instant::now()),
        stop,
    });
    tracing::info!(
        "daemon {} serving store {} on {}",
        std::process::id(),
        dir.display(),
        sock_path.display()
    );

    while !daemon.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((conn, _)) => {
                daemon.clients.fetch_add(1, Ordering::SeqCst);
                let d = daemon.clone();
                let spawned = std::thread::Builder::new()
                    .name("ware-client".into())
                    .spawn(move || {
                        d.serve(conn);
                        *lock(&d.last_activity) = Instant::now();
                        d.clients.fetch_sub(1, Ordering::SeqCst);
                    });
                if let Err(e) = spawned {
                    tracing::error!("cannot start a thread for a client: {e}");
                    daemon.clients.fetch_sub(1, Ordering::SeqCst);
                }
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => tracing::warn!("accept: {e}"),
        }
        let _ = rustix::event::poll(
            &mut [rustix::event::PollFd::new(
                &listener,
                rustix::event::PollFlags::IN,
            )],
            Some(&rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: TICK.as_nanos() as i64,
            }),
        );
        // A mount being set up holds the map: look again at the next tick.
        let Some(live) = daemon.try_prune_mounts() else {
            continue;
        };
        if live == 0
            && daemon.clients.load(Ordering::SeqCst) == 0
            && lock(&daemon.last_activity).elapsed() >= idle
        {
            tracing::info!("idle for {}s with no mounts: exiting", idle.as_secs());
            break;
        }
    }

    // Stop taking clients first, then end the mounts, then release the store.
    let _ = std::fs::remove_file(&sock_path);
    drop(listener);
    let mounts = std::mem::take(&mut *lock(&daemon.mounts));
    // Children before parents: a mount inside another one goes first.
    for (mp, live) in mounts.into_iter().rev() {
        match live.mount.unmount() {
            Ok(()) => tracing::info!("unmounted {}", mp.display()),
            Err(e) => tracing::error!("unmounting {}: {e}", mp.display()),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while daemon.clients.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::info!("daemon {} stopped", std::process::id());
    Ok(())
}

/// Makes `dir` a directory of ours, mode 0700, refusing one that someone else made (or a
/// symlink): in a shared /tmp, another user must not be able to hold our socket.
fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(anyhow::Error::new(e).context(format!("{}", dir.display()))),
    }
    let md = std::fs::symlink_metadata(dir)?;
    let me = rustix::process::geteuid().as_raw();
    if !md.is_dir() || md.uid() != me || md.mode() & 0o077 != 0 {
        bail!(
            "{}: not a private directory of uid {me} (owner {}, mode {:o}); remove it",
            dir.display(),
            md.uid(),
            md.mode() & 0o7777
        );
    }
    Ok(())
}

/// Ware mounts whose daemon died answer ENOTCONN: detach them so their mountpoints work again.
fn clean_dead_mounts() {
    for mp in ware_fs::ware_mounts() {
        if ware_fs::is_dead(&mp) {
            match ware_fs::detach_unmount(&mp) {
                Ok(()) => tracing::info!("cleaned up dead mount {}", mp.display()),
                Err(e) => tracing::warn!("cannot clean up dead mount {}: {e}", mp.display()),
            }
        }
    }
}

/// Forwards progress to the client, at most every 100 ms.
struct SocketProgress<'a> {
    conn: &'a UnixStream,
    pending: AtomicU64,
    last: Mutex<Instant>,
}

impl SocketProgress<'_> {
    fn flush(&self) {
        let bytes = self.pending.swap(0, Ordering::SeqCst);
        if bytes > 0 {
            let _ = send_reply(self.conn, &Reply::Advance { bytes });
        }
    }
}

impl Progress for SocketProgress<'_> {
    fn total(&self, bytes: u64) {
        let _ = send_reply(self.conn, &Reply::Total { bytes });
    }
    fn advance(&self, bytes: u64) {
        self.pending.fetch_add(bytes, Ordering::SeqCst);
        let mut last = lock(&self.last);
        if last.elapsed() >= Duration::from_millis(100) {
            *last = Instant::now();
            drop(last);
            self.flush();
        }
    }
}

impl Daemon {
    fn serve(&self, conn: UnixStream) {
        let _ = conn.set_nonblocking(false);
        // A client that connects and says nothing must not keep the daemon up forever.
        let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
        let me = rustix::process::geteuid();
        match rustix::net::sockopt::socket_peercred(&conn) {
            Ok(cred) if cred.uid == me || cred.uid.is_root() => {}
            Ok(cred) => {
                tracing::warn!("refused a client of uid {}", cred.uid.as_raw());
                return;
            }
            Err(e) => {
                tracing::warn!("cannot read a client's credentials: {e}");
                return;
            }
        }
        let (req, fd) = match recv_request(&conn) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("bad request: {e:#}");
                let reply = match e.downcast_ref::<OtherWire>() {
                    Some(other) => Reply::Err {
                        code: 5,
                        message: format!(
                            "the daemon of store {} (pid {}) is another build of ware \
                             (protocol {WIRE}, this command's {}): stop it with `ware daemon \
                             stop` (its mounts end) and run the command again",
                            self.store.dir().display(),
                            std::process::id(),
                            other.theirs
                        ),
                    },
                    None => Reply::Err {
                        code: 1,
                        message: crate::exit::message(&e),
                    },
                };
                let _ = send_reply(&conn, &reply);
                return;
            }
        };
        let _ = conn.set_read_timeout(None);
        tracing::debug!("request {req:?}");
        let progress = SocketProgress {
            conn: &conn,
            pending: AtomicU64::new(0),
            last: Mutex::new(Instant::now()),
        };
        let result = self.handle(&conn, req, fd, &progress);
        progress.flush();
        let reply = match result {
            Ok(Some(value)) => Reply::Ok { value },
            Ok(None) => return,
            Err(e) => Reply::Err {
                code: exit_code(&e),
                message: crate::exit::message(&e),
            },
        };
        let _ = send_reply(&conn, &reply);
    }

    /// Serves one request; `Ok(None)` means no reply is due (the client went away).
    fn handle(
        &self,
        conn: &UnixStream,
        req: Request,
        fd: Option<OwnedFd>,
        progress: &dyn Progress,
    ) -> Result<Option<serde_json::Value>> {
        req.serve(&self.local, self, conn, &mut Cx::new(fd, progress))
    }
}
