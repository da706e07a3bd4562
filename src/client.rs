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
use ware_store::WareId;
use ware_store::pack::Progress;

use crate::api::{LocalStore, WarePath};
use crate::exit::Failure;
use crate::ops::{Cx, NameGet, Op, Request, Wire};
use crate::proto::{Reply, recv_reply, send_request};

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
pub fn open_store(dir: &Path, create: bool) -> Result<StoreClient> {
    let store = canonical_store(dir);
    let deadline = Instant::now() + BUSY_WAIT;
    loop {
        if connect(&store).is_some() {
            return Ok(StoreClient::Remote(RemoteStore { store }));
        }
        let opened = if create {
            LocalStore::open(&store)
        } else {
            LocalStore::open_existing(&store)
        };
        match opened {
            Ok(s) => return Ok(StoreClient::Local(s)),
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
        // A daemon is listening some 30 ms after it starts: look often at first (a connect
        // attempt costs microseconds), so a cold start does not wait out a long nap.
        let since = START_WAIT.saturating_sub(deadline.saturating_duration_since(Instant::now()));
        std::thread::sleep(if since < Duration::from_millis(500) {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(20)
        });
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
                // A daemon from before the protocol handshake cannot read our frame at all.
                Some(Reply::Err { message, .. }) if message.starts_with("malformed request") => {
                    return Err(anyhow!(Failure {
                        code: 5,
                        message: format!(
                            "{} cannot read this command's request ({message}): it is another \
                             build of ware; stop it with `ware daemon stop` and run the \
                             command again",
                            daemon()
                        ),
                    }));
                }
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

    /// Any operation, through the daemon: the descriptor of `cx` goes with the request, its
    /// progress comes back to `cx.progress`.
    pub fn call<O: Wire>(&self, op: O, cx: &mut Cx<'_>) -> Result<O::Reply> {
        self.call_until_ready(op, cx, &mut || {})
    }

    /// [`RemoteStore::call`] for an operation that may answer `ready` before its end (a
    /// foreground mount): `on_ready` runs then.
    pub fn call_until_ready<O: Wire>(
        &self,
        op: O,
        cx: &mut Cx<'_>,
        on_ready: &mut dyn FnMut(),
    ) -> Result<O::Reply> {
        let req: Request = op.into();
        let fd = cx.fd.as_ref().map(|f| f.as_fd());
        let v = self.call_with(&req, fd, cx.progress, on_ready)?;
        serde_json::from_value(v).context("unexpected answer from the daemon")
    }

    /// An operation with no descriptor and no progress.
    pub fn ask<O: Wire>(&self, op: O) -> Result<O::Reply> {
        self.call(op, &mut Cx::plain())
    }
}

/// A store as a command reaches it: opened in this process, or through its daemon. Every
/// store operation ([`crate::ops::Op`]) runs the same way on either.
pub enum StoreClient {
    /// Opened here (no daemon ran).
    Local(LocalStore),
    /// Through the daemon.
    Remote(RemoteStore),
}

impl StoreClient {
    /// Runs `op` with the descriptor and progress of `cx`.
    pub fn call<O: Op>(&self, op: O, cx: &mut Cx<'_>) -> Result<O::Reply> {
        match self {
            StoreClient::Local(s) => op.run(s, cx),
            StoreClient::Remote(r) => r.call(op, cx),
        }
    }

    /// Runs `op`, with no descriptor and no progress.
    pub fn ask<O: Op>(&self, op: O) -> Result<O::Reply> {
        self.call(op, &mut Cx::plain())
    }
}

impl WarePath {
    /// Parses `ID[/PATH]` or `NAME[/PATH]`, asking the store what a name points at. The path
    /// is taken as bytes (an OS string): names in a ware need not be UTF-8.
    pub fn parse(s: &std::ffi::OsStr, store: &StoreClient) -> Result<WarePath> {
        use std::os::unix::ffi::OsStrExt;
        let bytes = s.as_bytes();
        let (head, path) = match bytes.iter().position(|&b| b == b'/') {
            Some(i) => (&bytes[..i], &bytes[i + 1..]),
            None => (bytes, &b""[..]),
        };
        let shown = crate::output::safe_short(bytes, 120);
        let head = std::str::from_utf8(head)
            .map_err(|_| crate::api::usage_error(format!("{shown}: a ware ID or name is ASCII")))?;
        Ok(WarePath {
            ware: resolve_ware(head, store).with_context(|| {
                format!("{shown}: expected a ware ID or name, optionally followed by /PATH")
            })?,
            path: path.to_vec(),
        })
    }
}

/// A ware ID, or the ID a name points at now.
pub fn resolve_ware(id_or_name: &str, store: &StoreClient) -> Result<WareId> {
    if let Ok(id) = id_or_name.parse::<WareId>() {
        return Ok(id);
    }
    if ware_store::names::check_name(id_or_name).is_err() {
        // Neither an ID nor a possible name: say why it is not an ID.
        return Ok(id_or_name.parse::<WareId>()?);
    }
    store
        .ask(NameGet {
            name: id_or_name.to_string(),
        })?
        .ok_or_else(|| {
            ware_store::Error::NotFound {
                what: "name",
                id: crate::output::safe_short(id_or_name.as_bytes(), 120),
            }
            .into()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Names;
    use crate::proto::{recv_request, send_reply};

    /// A fake daemon on the store's socket that serves one connection with `answer`.
    fn fake_daemon(
        store: &Path,
        answer: impl FnOnce(UnixStream) + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        let listener = std::os::unix::net::UnixListener::bind(socket_path(store)).unwrap();
        std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let _ = recv_request::<Request>(&conn).unwrap();
            answer(conn);
        })
    }

    #[test]
    fn a_daemon_that_goes_away_mid_call_is_an_error_naming_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = canonical_store(dir.path());
        let t = fake_daemon(&store, |conn| {
            // Some progress, then the daemon dies without an answer.
            send_reply(&conn, &Reply::Advance { bytes: 1 }).unwrap();
        });
        let e = RemoteStore {
            store: store.clone(),
        }
        .ask(Names {})
        .unwrap_err();
        t.join().unwrap();
        let text = format!("{e:#}");
        assert!(
            text.contains("closed the connection without an answer"),
            "{text}"
        );
        assert!(text.contains("daemon.log"), "{text}");
    }

    #[test]
    fn a_daemons_error_keeps_its_exit_code_and_a_wrong_answer_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = canonical_store(dir.path());
        let t = fake_daemon(&store, |conn| {
            let reply = Reply::Err {
                code: 3,
                message: "name base not found".into(),
            };
            send_reply(&conn, &reply).unwrap();
        });
        let remote = RemoteStore {
            store: store.clone(),
        };
        let e = remote.ask(Names {}).unwrap_err();
        t.join().unwrap();
        assert_eq!(crate::exit::exit_code(&e), 3, "{e:#}");

        std::fs::remove_file(socket_path(&store)).unwrap();
        let t = fake_daemon(&store, |conn| {
            let value = serde_json::json!({"not": "a list of names"});
            send_reply(&conn, &Reply::Ok { value }).unwrap();
        });
        let e = remote.ask(Names {}).unwrap_err();
        t.join().unwrap();
        assert!(format!("{e:#}").contains("unexpected answer"), "{e:#}");
    }
}
