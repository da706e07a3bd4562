//! ware-exec: the sandboxes `ware run` runs jobs in, and the process hygiene the daemon needs.
//!
//! [`run`] takes a [`Job`] (a read-only root directory, read-only inputs and writable outputs
//! to bind in, argv/env/cwd/ids, limits) and runs it with one of three executors
//! ([`ExecutorKind`]): `ns` (namespaces, pivot_root: the default), `chroot` (a mount namespace
//! and chroot: weaker, no pid/net/uts isolation) and `runc` (an OCI bundle given to runc or
//! crun).
//!
//! Invariants:
//! - The job's `/` is an overlay whose upper layer lives on a fresh tmpfs: writes to `/` never
//!   reach `Job::root`, and vanish with the job. Read-only binds are mounted read-only
//!   recursively (EROFS); every bind is nosuid,nodev.
//! - Every mount target (binds, /proc, /dev, /tmp) is resolved inside the new root with
//!   openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS), and mounted on the resulting descriptor
//!   with move_mount(2): a symlink in a rootfs can never send a mount onto the host.
//! - The job inherits only descriptors 0, 1 and 2, exactly `Job::env`, default signal
//!   dispositions and an empty signal mask; it runs with no_new_privs and, as root, with a
//!   Docker-like bounded capability set (no CAP_SYS_ADMIN, CAP_MKNOD, CAP_SYS_MODULE, …).
//! - `run` returns only when the job and everything it started are gone (pid namespace, or a
//!   child-subreaper sweep for chroot), or after the wall limit has killed them.
//! - Code between fork and exec allocates nothing: everything it needs is prepared before.
//! - This crate is the owner of `unsafe` for processes, namespaces and mounts; each block says
//!   why it is sound (`// SAFETY:`). It depends on no internal crate.
#![deny(missing_docs)]
#![allow(unsafe_code)] // the crate that owns unsafe for processes, namespaces and mounts

mod assemble;
mod cgroup;
mod child;
mod error;
mod plan;
mod report;
mod runc;
mod spawn;
mod sys;

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

pub use error::ExecError;

/// Which sandbox runs the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecutorKind {
    /// Mount, pid, uts, ipc and (unless networked) net namespaces, plus a user namespace when
    /// not root; pivot_root into the assembled root.
    #[default]
    Ns,
    /// A mount namespace (and a user namespace when not root) and chroot(2). Shares the host's
    /// pids, network, hostname and IPC: not a security boundary.
    Chroot,
    /// An OCI runtime (runc, or crun; `WARE_OCI_RUNTIME` picks one) on a bundle in `Job::work`.
    /// The job is the container's pid 1 (signals from inside its own namespace without a
    /// handler do not kill it), and the runtime's exit code 128+n is reported as
    /// `Signaled(n)`. Needs root.
    Runc,
}

impl FromStr for ExecutorKind {
    type Err = ExecError;
    fn from_str(s: &str) -> Result<Self, ExecError> {
        match s {
            "ns" => Ok(ExecutorKind::Ns),
            "chroot" => Ok(ExecutorKind::Chroot),
            "runc" => Ok(ExecutorKind::Runc),
            other => Err(ExecError::InvalidJob(format!(
                "unknown executor {other:?} (expected ns, chroot or runc)"
            ))),
        }
    }
}

impl fmt::Display for ExecutorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExecutorKind::Ns => "ns",
            ExecutorKind::Chroot => "chroot",
            ExecutorKind::Runc => "runc",
        })
    }
}

/// A job: what to run, on which root, with which inputs and outputs.
#[derive(Debug, Clone)]
pub struct Job {
    /// Host directory shown read-only as the job's `/`; the job writes into a scratch overlay
    /// over it, thrown away afterwards.
    pub root: PathBuf,
    /// Other inputs (read-only) and outputs (writable), mounted in order: parents first.
    pub mounts: Vec<Bind>,
    /// The command; argv[0] without a '/' is looked up in the job's PATH (from `env`, else
    /// `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`) inside the job root.
    pub argv: Vec<OsString>,
    /// Exactly the job's environment; nothing is inherited.
    pub env: Vec<(OsString, OsString)>,
    /// Absolute working directory inside the job; it must exist.
    pub cwd: PathBuf,
    /// User id inside the job.
    pub uid: u32,
    /// Group id inside the job (also its only supplementary group).
    pub gid: u32,
    /// Hostname inside the job (ns and runc executors; empty: the host's name, in a private
    /// UTS namespace).
    pub hostname: String,
    /// false: a new network namespace with only `lo`, up; true: the host's network.
    pub network: bool,
    /// Resource limits.
    pub limits: Limits,
    /// An empty private host directory (0700) the executor may use; the caller removes it.
    pub work: PathBuf,
}

/// A host directory (or file) mounted into the job.
#[derive(Debug, Clone)]
pub struct Bind {
    /// Host path.
    pub source: PathBuf,
    /// Absolute path inside the job; created (inside the job's scratch overlay) if missing.
    pub target: PathBuf,
    /// Outputs are writable; inputs are read-only (writes fail with EROFS).
    pub writable: bool,
}

/// Resource limits; `None` is unlimited.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Wall-clock limit: when it passes, the job and everything it started are killed.
    pub wall: Option<Duration>,
    /// Memory limit (cgroup v2 memory.max, swap off), when the controller is available.
    pub memory_bytes: Option<u64>,
    /// Process count limit (cgroup v2 pids.max), when the controller is available.
    pub pids: Option<u64>,
}

/// How the job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// It exited with this code.
    Exited(i32),
    /// It was killed by this signal.
    Signaled(i32),
    /// The wall limit passed and it was killed.
    TimedOut,
}

impl JobStatus {
    /// A shell-style exit code: the code itself, 128 + signal, or 124 for a timeout (as
    /// coreutils `timeout` reports it).
    pub fn exit_code(&self) -> i32 {
        match *self {
            JobStatus::Exited(c) => c,
            JobStatus::Signaled(s) => 128 + s,
            JobStatus::TimedOut => 124,
        }
    }
}

/// The result of a job that ran.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// How it ended.
    pub status: JobStatus,
    /// When the sandbox was started.
    pub started: SystemTime,
    /// When the job and all its processes were gone.
    pub ended: SystemTime,
    /// Degradations the user must be told about (a limit not enforced, an isolation the
    /// executor does not provide, …).
    pub notices: Vec<String>,
}

/// Runs `job` with the executor `kind` and blocks until it and everything it started are gone.
///
/// The job's stdin, stdout and stderr are the caller's descriptors 0, 1 and 2. It stays in the
/// caller's process group, so a terminal's Ctrl-C reaches it directly. If the calling thread
/// dies, the job is killed (PR_SET_PDEATHSIG on the sandbox's init). A caller that handles
/// SIGINT/SIGTERM itself should call [`kill_running_jobs`] from its handler thread.
pub fn run(kind: ExecutorKind, job: &Job) -> Result<Outcome, ExecError> {
    match kind {
        ExecutorKind::Ns | ExecutorKind::Chroot => spawn::run_native(kind, job),
        ExecutorKind::Runc => runc::run(job),
    }
}

/// Kills every job this process is running (their whole process trees): for a caller that
/// catches SIGINT/SIGTERM and wants its jobs gone before it exits. `run` then returns their
/// status (`Signaled(9)`) as usual.
pub fn kill_running_jobs() {
    spawn::kill_all_running();
}

/// Closes every descriptor from 3 up, whatever opened it: what a daemon inherits from the
/// command that started it (a caller's pipe, a terminal, a stray file) must neither keep that
/// caller waiting for an end-of-file nor leak into what the daemon starts.
///
/// Call it first thing in a fresh process, before anything of its own is open: descriptors the
/// process itself holds (files, sockets) would be closed under their owners.
pub fn close_inherited_fds() -> io::Result<()> {
    // SAFETY: close_range(2) only closes descriptors; the caller guarantees none of them is
    // owned by anything in this process yet, so no Rust object is left with a dangling fd.
    let r = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if r == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::ENOSYS) {
        return Err(err);
    }
    // Kernels before 5.9: close what /proc/self/fd lists, collected before closing any.
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: as above; the descriptor of the directory listing is already closed, and
        // closing a number that is no longer open only returns EBADF.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// Makes the C allocator give every allocation of `threshold` bytes or more its own mapping,
/// returned to the system when freed, for a long-lived process. Setting it also stops glibc
/// from raising the threshold after each free of such a block (its default), after which large
/// short-lived buffers (a FUSE session's 16 MiB per thread, decompressed chunks) stay in the
/// heap once freed: a daemon's resident memory then only grows. Call before starting threads.
pub fn return_large_allocations(threshold: usize) {
    let t = threshold.min(i32::MAX as usize) as libc::c_int;
    // SAFETY: mallopt only sets an allocator parameter.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, t) };
}

/// Gives the system back the free memory of the C allocator's heaps (glibc's malloc_trim):
/// whole free pages inside them too, not only at their tops. For a long-lived process, after
/// it freed a lot (a mount's tables at unmount).
pub fn trim_heap() {
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe { libc::malloc_trim(0) };
}

/// Restores the default action of SIGPIPE (terminate), as command-line tools have it: a
/// command whose reader went away (`ware stats | head -1`) ends quietly instead of failing on
/// its next write. Rust ignores SIGPIPE by default; long-lived servers (the daemon) keep that.
pub fn default_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_DFL installs no handler and touches no
    // memory of this process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn executor_kind_round_trips() {
        for k in [ExecutorKind::Ns, ExecutorKind::Chroot, ExecutorKind::Runc] {
            assert_eq!(k.to_string().parse::<ExecutorKind>().unwrap(), k);
        }
        assert!("docker".parse::<ExecutorKind>().is_err());
    }

    #[test]
    fn exit_codes() {
        assert_eq!(JobStatus::Exited(7).exit_code(), 7);
        assert_eq!(JobStatus::Signaled(9).exit_code(), 137);
        assert_eq!(JobStatus::TimedOut.exit_code(), 124);
    }

    /// In a child process (the test harness's own descriptors must not be closed under it):
    /// a descriptor opened without close-on-exec is closed by the call.
    #[test]
    fn inherited_descriptors_are_closed() {
        if std::env::var_os("WARE_EXEC_CHILD").is_some() {
            // SAFETY: plain open(2) of /dev/null; the number is only probed, never owned.
            let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) };
            assert!(fd > 2);
            // SAFETY: F_GETFD on a plain number has no effect but its answer.
            assert!(unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0);
            close_inherited_fds().unwrap();
            // SAFETY: as above.
            let after = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            assert_eq!(after, -1, "fd {fd} still open");
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let out = Command::new(exe)
            .args([
                "--exact",
                "tests::inherited_descriptors_are_closed",
                "--nocapture",
            ])
            .env("WARE_EXEC_CHILD", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
    }
}
