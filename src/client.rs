//! Reaching a store: through its daemon when one runs, in this process when none does.
//!
//! [`open_store`] is what every command calls. When the store's daemon answers on its socket,
//! the command becomes a [`RemoteStore`] request; otherwise the command opens the store itself
//! (RocksDB allows one process), and when that process is busy it waits briefly for a daemon
//! that may be starting. [`ensure_daemon`] starts the daemon on demand (mounts need it).

use std::io::{BufReader, Read as _};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::de::DeserializeOwned;
use ware_store::db::StoreStats;
use ware_store::fsck::FsckReport;
use ware_store::names::NameChange;
use ware_store::node::Entry;
use ware_store::pack::{PackOptions, PackReport, Progress};
use ware_store::unpack::UnpackReport;
use ware_store::{WareId, WareRecord};

use crate::api::{LocalStore, PackSource, RemoteOptions, StoreApi, WarePath};
use crate::exit::Failure;
use crate::proto::{MountInfo, MountWhat, Reply, Request, recv_reply, send_request};
use ware_fetchers::transfer::{PullReport, PushReport};

/// Unix sockets take paths of at most 107 bytes; longer store paths get a socket elsewhere.
const SOCKET_PATH_MAX: usize = 100;

/// How long a command waits for a busy store to become reachable (a daemon starting or
/// stopping) before it reports the store as in use.
const BUSY_WAIT: Duration = Duration::from_secs(3);

/// How long `ensure_daemon` waits for a new daemon's socket.
const START_WAIT: Duration = Duration::from_secs(15);

/// How long `ensure_daemon` waits for a command that holds the store to end.
pub const BUSY_START_WAIT: Duration = Duration::from_secs(600);

/// The daemon's socket for a store directory (canonical).
pub fn socket_path(store: &Path) -> PathBuf {
    let p = store.join("daemon.sock");
    if p.as_os_str().len() <= SOCKET_PATH_MAX {
        return p;
    }
    // FNV-1a: stable across builds, so any `ware` finds the daemon of a store.
    use std::os::unix::ffi::OsStrExt;
    let h = store
        .as_os_str()
        .as_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    runtime_dir().join(format!("{h:016x}.sock"))
}

/// A private directory for sockets of long store paths: `/tmp/ware-<uid>`, mode 0700.
pub fn runtime_dir() -> PathBuf {
    std::env::temp_dir().join(format!("ware-{}", rustix::process::geteuid().as_raw()))
}

/// The store directory, made absolute and canonical when it exists.
pub fn canonical_store(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir)
        .or_else(|_| std::path::absolute(dir))
        .unwrap_or_else(|_| dir.to_path_buf())
}

fn connect(store: &Path) -> Option<UnixStream> {
    UnixStream::connect(socket_path(store)).ok()
}

/// Opens a store for a command: its daemon if one runs, else in this process. With `create`
/// false (commands that only read), a directory with no store is an error and nothing is
/// created: a typo in `--store` must not make an empty store that looks clean.
pub fn open_store(dir: &Path, create: bool) -> Result<Box<dyn StoreApi>> {
    let store = canonical_store(dir);
    let deadline = Instant::now() + BUSY_WAIT;
    loop {
        if connect(&store).is_some() {
            return Ok(Box::new(RemoteStore { store }));
        }
        let opened = if create {
            LocalStore::open(&store)
        } else {
            LocalStore::open_existing(&store)
        };
        match opened {
            Ok(s) => return Ok(Box::new(s)),
            Err(e) => {
                let busy = matches!(
                    e.downcast_ref::<ware_store::Error>(),
                    Some(ware_store::Error::Busy { .. })
                );
                if !busy || Instant::now() > deadline {
                    return Err(e);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// The store's daemon, started if none runs.
///
/// While another command holds the store itself (no daemon was running when it started), the
/// daemon cannot open it: this waits for that command to end, up to [`BUSY_START_WAIT`],
/// saying so once on stderr.
pub fn ensure_daemon(dir: &Path, idle_timeout: Option<Duration>) -> Result<RemoteStore> {
    let give_up = Instant::now() + BUSY_START_WAIT;
    let mut told = false;
    loop {
        match start_daemon(dir, idle_timeout) {
            Err(e)
                if Instant::now() < give_up
                    && e.downcast_ref::<Failure>().is_some_and(|f| f.code == 5) =>
            {
                if !told {
                    eprintln!(
                        "ware: {e}; waiting for it to finish (up to {} min)",
                        BUSY_START_WAIT.as_secs() / 60
                    );
                    told = true;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            other => return other,
        }
    }
}

fn start_daemon(dir: &Path, idle_timeout: Option<Duration>) -> Result<RemoteStore> {
    let store = canonical_store(dir);
    if connect(&store).is_some() {
        return Ok(RemoteStore { store });
    }
    std::fs::create_dir_all(&store)
        .with_context(|| format!("{}: cannot create", store.display()))?;
    let store = canonical_store(&store);
    let exe = std::env::current_exe().context("cannot find the ware binary to start the daemon")?;
    let mut cmd = Command::new(exe);
    cmd.arg("--store").arg(&store).arg("daemon").arg("run");
    if let Some(t) = idle_timeout {
        cmd.arg("--idle-timeout").arg(t.as_secs().to_string());
    }
    // Its own process group, so a Ctrl-C at the terminal does not reach it; its stdout and
    // stderr come here until it has opened the store, then go to its log.
    let mut child = cmd
        .current_dir("/")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start the daemon")?;
    let deadline = Instant::now() + START_WAIT;
    loop {
        if connect(&store).is_some() {
            return Ok(RemoteStore { store });
        }
        if let Some(status) = child.try_wait()? {
            let code = status
                .code()
                .and_then(|c| u8::try_from(c).ok())
                .unwrap_or(1);
            let mut msg = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut msg);
            }
            // Busy: another command may be starting a daemon at this moment; give it a
            // moment to answer before reporting the store busy (the caller waits on).
            if code == 5 {
                let moment = Instant::now() + Duration::from_secs(2);
                while Instant::now() < moment {
                    if connect(&store).is_some() {
                        return Ok(RemoteStore { store });
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            if connect(&store).is_some() {
                return Ok(RemoteStore { store });
            }
            let mut msg = msg.trim().trim_start_matches("ware: error: ").to_string();
            if msg.is_empty() {
                msg = format!("see {}", store.join("daemon.log").display());
            }
            return Err(anyhow!(Failure {
                code,
                message: format!("the store's daemon did not start: {msg}"),
            }));
        }
        if Instant::now() > deadline {
            bail!(
                "the store's daemon did not answer on {} within {}s; see {}",
                socket_path(&store).display(),
                START_WAIT.as_secs(),
                store.join("daemon.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The daemon of a store, if one runs.
pub fn running_daemon(dir: &Path) -> Option<RemoteStore> {
    let store = canonical_store(dir);
    connect(&store).map(|_| RemoteStore { store })
}

/// A store reached through its daemon. Each request is one connection.
#[derive(Clone)]
pub struct RemoteStore {
    store: PathBuf,
}

impl RemoteStore {
    /// Sends a request and waits for its result, forwarding progress.
    fn call_with(
        &self,
        req: &Request,
        fd: Option<BorrowedFd<'_>>,
        progress: &dyn Progress,
        on_ready: &mut dyn FnMut(),
    ) -> Result<serde_json::Value> {
        let daemon = || format!("the daemon of store {}", self.store.display());
        let sock = UnixStream::connect(socket_path(&self.store))
            .with_context(|| format!("cannot reach {}", daemon()))?;
        // Only the daemon, running as us (or root), may answer for the store.
        let me = rustix::process::geteuid();
        match rustix::net::sockopt::socket_peercred(&sock) {
            Ok(c) if c.uid == me || c.uid.is_root() => {}
            Ok(c) => bail!(
                "{}: the socket is held by uid {}, not by this store's owner",
                daemon(),
                c.uid.as_raw()
            ),
            Err(e) => bail!("{}: cannot check the socket's owner: {e}", daemon()),
        }
        send_request(&sock, req, fd).with_context(|| format!("talking to {}", daemon()))?;
        let mut input = BufReader::new(&sock);
        loop {
            match recv_reply(&mut input).with_context(|| format!("talking to {}", daemon()))? {
                Some(Reply::Total { bytes }) => progress.total(bytes),
                Some(Reply::Advance { bytes }) => progress.advance(bytes),
                Some(Reply::Ready) => on_ready(),
                Some(Reply::Ok { value }) => return Ok(value),
                Some(Reply::Err { code, message }) => {
                    return Err(anyhow!(Failure { code, message }));
                }
                None => bail!(
                    "the daemon of store {} closed the connection without an answer (see {})",
                    self.store.display(),
                    self.store.join("daemon.log").display()
                ),
            }
        }
    }

    fn call<T: DeserializeOwned>(&self, req: &Request) -> Result<T> {
        self.call_progress(req, None, &ware_store::pack::NoProgress)
    }

    fn call_progress<T: DeserializeOwned>(
        &self,
        req: &Request,
        fd: Option<BorrowedFd<'_>>,
        progress: &dyn Progress,
    ) -> Result<T> {
        let v = self.call_with(req, fd, progress, &mut || {})?;
        serde_json::from_value(v).context("unexpected answer from the daemon")
    }

    /// Mounts a ware (or the whole store). With `foreground`, `on_ready` runs once the mount
    /// is live and the call returns only when the mount ends.
    pub fn mount(
        &self,
        what: MountWhat,
        mountpoint: &Path,
        allow_other: bool,
        foreground: bool,
        remote: &RemoteOptions,
        on_ready: &mut dyn FnMut(),
    ) -> Result<MountInfo> {
        let req = Request::Mount {
            remote: remote.clone(),
            what,
            mountpoint: mountpoint.to_path_buf(),
            allow_other,
            foreground,
        };
        let v = self.call_with(&req, None, &ware_store::pack::NoProgress, on_ready)?;
        Ok(serde_json::from_value(v)?)
    }

    /// Unmounts one of the daemon's mounts (or a dead ware mount).
    pub fn umount(&self, mountpoint: &Path, lazy: bool) -> Result<()> {
        self.call::<serde_json::Value>(&Request::Umount {
            mountpoint: mountpoint.to_path_buf(),
            lazy,
        })?;
        Ok(())
    }

    /// The daemon's live mounts.
    pub fn mounts(&self) -> Result<Vec<MountInfo>> {
        self.call(&Request::Mounts)
    }

    /// Asks the daemon to unmount everything and exit.
    pub fn shutdown(&self) -> Result<()> {
        self.call::<serde_json::Value>(&Request::Shutdown)?;
        Ok(())
    }

    /// The daemon's process ID and store, for `ware daemon status`.
    pub fn ping(&self) -> Result<serde_json::Value> {
        self.call(&Request::Ping)
    }
}

impl StoreApi for RemoteStore {
    fn pack(
        &self,
        source: PackSource,
        opts: &PackOptions,
        progress: &dyn Progress,
    ) -> Result<PackReport> {
        match source {
            PackSource::Dir(p) => {
                let dir = std::path::absolute(&p)?;
                self.call_progress(
                    &Request::Pack {
                        dir: Some(dir),
                        opts: *opts,
                    },
                    None,
                    progress,
                )
            }
            PackSource::Fd(f) => self.call_progress(
                &Request::Pack {
                    dir: None,
                    opts: *opts,
                },
                Some(f.as_fd()),
                progress,
            ),
        }
    }

    fn unpack(
        &self,
        ware: &WareId,
        target: &Path,
        progress: &dyn Progress,
    ) -> Result<UnpackReport> {
        let target = std::path::absolute(target)?;
        self.call_progress(
            &Request::Unpack {
                ware: *ware,
                target,
            },
            None,
            progress,
        )
    }

    fn stat(&self, at: &WarePath, remote: &RemoteOptions) -> Result<Entry> {
        self.call(&Request::Stat {
            at: at.clone(),
            remote: remote.clone(),
        })
    }

    fn list(&self, at: &WarePath, remote: &RemoteOptions) -> Result<Vec<Entry>> {
        self.call(&Request::List {
            at: at.clone(),
            remote: remote.clone(),
        })
    }

    fn cat(&self, at: &WarePath, out: BorrowedFd<'_>, remote: &RemoteOptions) -> Result<u64> {
        self.call_progress(
            &Request::Cat {
                at: at.clone(),
                remote: remote.clone(),
            },
            Some(out),
            &ware_store::pack::NoProgress,
        )
    }

    fn wares(&self) -> Result<Vec<(WareId, WareRecord)>> {
        self.call(&Request::Wares)
    }

    fn fsck(&self, progress: &dyn Progress) -> Result<FsckReport> {
        self.call_progress(&Request::Fsck, None, progress)
    }

    fn stats(&self) -> Result<StoreStats> {
        self.call(&Request::Stats)
    }

    fn damage(&self, at: &WarePath) -> Result<String> {
        self.call(&Request::Damage { at: at.clone() })
    }

    fn name_set(&self, name: &str, id: Option<&WareId>) -> Result<Option<WareId>> {
        self.call(&Request::NameSet {
            name: name.to_string(),
            id: id.copied(),
        })
    }

    fn name_get(&self, name: &str) -> Result<Option<WareId>> {
        self.call(&Request::NameGet {
            name: name.to_string(),
        })
    }

    fn names(&self) -> Result<Vec<(String, WareId)>> {
        self.call(&Request::Names)
    }

    fn add_run(&self, started_ms: u64, record: &serde_json::Value) -> Result<()> {
        self.call::<serde_json::Value>(&Request::AddRun {
            started_ms,
            record: record.clone(),
        })?;
        Ok(())
    }

    fn runs(&self) -> Result<Vec<serde_json::Value>> {
        self.call(&Request::Runs)
    }

    fn name_log(&self, name: &str) -> Result<Vec<NameChange>> {
        self.call(&Request::NameLog {
            name: name.to_string(),
        })
    }

    fn push(
        &self,
        ware: &WareId,
        url: &str,
        remote: &RemoteOptions,
        progress: &dyn Progress,
    ) -> Result<PushReport> {
        let req = Request::Push {
            ware: *ware,
            url: url.to_string(),
            remote: remote.clone(),
        };
        self.call_progress(&req, None, progress)
    }

    fn pull(
        &self,
        ware: &WareId,
        remote: &RemoteOptions,
        progress: &dyn Progress,
    ) -> Result<PullReport> {
        let req = Request::Pull {
            ware: *ware,
            remote: remote.clone(),
        };
        self.call_progress(&req, None, progress)
    }
}
