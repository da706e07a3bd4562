//! What every test crate of warefs shares, defined once: the skip rule, deterministic test data,
//! scratch space, the benchmark root filesystems, bounded waits, process checks, and the real
//! servers the warehouse tests run against ([`servers`]).
//!
//! **The skip rule.** A test that cannot run here (no root, no `/dev/fuse`, a server or tool
//! not installed) says so loudly, on the terminal even when the test harness captures output,
//! and returns; under `CI=true` it fails instead, so CI never passes a test it did not run.
//! [`require`], [`skip`] and [`started`] are the only ways a test skips.

pub mod procs;
pub mod servers;

use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use procs::processes_with;

/// Deterministic incompressible bytes (xorshift), the same on every machine.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// True under CI (`CI` set to anything but empty, `false` or `0`), where a test that cannot
/// run must fail rather than skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The skip rule: `true` when `cond` holds; otherwise [`skip`]s with `why` and returns `false`
/// (`if !require(is_root(), "needs root") { return; }`).
pub fn require(cond: bool, why: impl Display) -> bool {
    if !cond {
        skip(why);
    }
    cond
}

/// Skips the running test: prints `SKIPPED <test>: <why>` on the terminal (past the harness's
/// capture) and appends it to `$WARE_TEST_SKIP_LOG` when set (scripts/test lists them at the
/// end); under CI, panics instead.
pub fn skip(why: impl Display) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let line = format!("SKIPPED {test}: {why}");
    assert!(!in_ci(), "under CI every test must run, but {line}");
    // Written to the stream itself: libtest captures only the print macros.
    let _ = writeln!(std::io::stderr(), "{line}");
    let log = std::env::var_os("WARE_TEST_SKIP_LOG").and_then(|log| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .ok()
    });
    if let Some(mut f) = log {
        let _ = writeln!(f, "{line}");
    }
}

/// A server (or anything) a test needs started: its value, or `None` after [`skip`]ping with
/// the reason (`let Some(nginx) = started(Nginx::start()) else { return };`).
pub fn started<T>(r: anyhow::Result<T>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            skip(format!("{e:#} (scripts/setup installs the test servers)"));
            None
        }
    }
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Whether FUSE mounts can be made here (root and /dev/fuse); skips like [`require`] if not.
pub fn can_mount() -> bool {
    if !is_root() {
        return require(false, "mount tests need root");
    }
    require(
        Path::new("/dev/fuse").exists(),
        "mount tests need /dev/fuse",
    )
}

/// A benchmark root filesystem of scripts/rootfs (`small`: debootstrap minbase; `large`: with
/// python3, numpy, gcc): `$WARE_TEST_ROOTFS_SMALL`/`_LARGE` (scripts/test exports them), else the
/// build cache's copy if complete; skips like [`require`] if there is none.
pub fn rootfs(kind: &str) -> Option<PathBuf> {
    let var = format!("WARE_TEST_ROOTFS_{}", kind.to_uppercase());
    let found = std::env::var_os(&var)
        .map(PathBuf::from)
        .or_else(|| {
            let cache = std::env::var_os("WARE_BUILD_CACHE")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("XDG_CACHE_HOME")
                        .map(PathBuf::from)
                        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
                        .map(|c| c.join("warefs-build"))
                })?;
            let dir = cache.join(format!("rootfs-{kind}"));
            cache
                .join(format!("rootfs-{kind}.complete"))
                .exists()
                .then_some(dir)
        })
        .filter(|p| p.join("usr/bin").is_dir());
    if found.is_none() {
        skip(format!(
            "no {kind} root filesystem: set {var} or run scripts/rootfs {kind}"
        ));
    }
    found
}

/// Where tests put their files: $WARE_TEST_TMP or /var/tmp (a real disk, with xattrs, where
/// /tmp may be a small tmpfs).
pub fn scratch() -> PathBuf {
    let p = std::env::var_os("WARE_TEST_TMP")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    std::fs::create_dir_all(&p).expect("scratch dir");
    p
}

/// A fresh directory in [`scratch`], removed when dropped.
pub fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(scratch())
        .expect("tempdir in the scratch directory")
}

/// Polls `cond` every 20 ms until it holds or `limit` passes; its last answer.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// `cmd` run by `wrapper`: the wrapper's own program and arguments, then `cmd`'s program and
/// arguments, with `cmd`'s environment (`prlimit --data=N --`, `unshare … sh -c SCRIPT`).
pub fn under(mut wrapper: Command, cmd: &Command) -> Command {
    wrapper.arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapper.env(k, v),
            None => wrapper.env_remove(k),
        };
    }
    wrapper
}

/// Runs `cmd`, killing it if it has not ended within `limit` (a hang is a failure, not a stuck
/// suite).
pub fn bounded(mut cmd: Command, limit: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait for the command"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{cmd:?} hangs: still running after {limit:?}");
        }
    }
}
