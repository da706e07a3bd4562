//! The parent side: clone the sandbox's init into its namespaces, wait for its report, enforce
//! the wall limit, and turn what happened into an [`Outcome`] or an [`ExecError`].

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::cgroup::Cgroup;
use crate::child;
use crate::plan::{ExecPlan, Mode, Plan, euid_egid};
use crate::report::{ChildFds, REPORT_FAILURE, REPORT_LEN, REPORT_STATUS, Step};
use crate::{ExecError, ExecutorKind, Job, JobStatus, Outcome};

/// Inits of running jobs.
static RUNNING: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

pub(crate) fn kill_all_running() {
    let running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    for &pid in running.iter() {
        // SIGTERM makes the init kill every other process of the job, reap them and report
        // the job's status (SIGKILL would kill the init before it could report).
        // SAFETY: kill with integer arguments; the pid is not reaped while registered.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), ExecError> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(ExecError::host(
            "creating a pipe",
            "",
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: both descriptors are fresh and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x200000000;

/// What the child reported and how it ended.
pub(crate) struct Waited {
    pub failure: Option<(Step, u32, i32)>,
    /// The job's wait status as the init saw it.
    pub job_status: Option<i32>,
    /// The init's own wait status.
    pub init_status: i32,
    pub timed_out: bool,
    pub started: SystemTime,
    pub ended: SystemTime,
}

/// Clones the init (into `cgroup` if given), runs `plan` in it and waits for everything to end.
/// `on_timeout` is called once when the wall limit passes, with the init's pid.
pub(crate) fn spawn_and_wait(
    plan: &Plan,
    wall: Option<Duration>,
    cgroup: Option<&Cgroup>,
    on_timeout: &dyn Fn(libc::pid_t),
) -> Result<Waited, ExecError> {
    let (report_r, report_w) = pipe()?;
    let (alive_r, alive_w) = pipe()?;
    let mut args = CloneArgs {
        flags: plan.clone_flags,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(cg) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = cg.dir_fd() as u64;
    }
    let fds = ChildFds {
        report: report_w.as_raw_fd(),
        alive: alive_r.as_raw_fd(),
    };
    let started = SystemTime::now();
    let t0 = Instant::now();
    // SAFETY: clone3 without CLONE_VM and with no stack is a fork into new namespaces. The
    // child runs only `child_main`, which allocates nothing, takes no lock and ends in execve
    // or _exit, so the copy of this multithreaded process's state is never used unsafely.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            size_of::<CloneArgs>(),
        )
    } as libc::pid_t;
    if pid == 0 {
        // SAFETY: closing the parent's ends in the child's copy of the descriptor table.
        unsafe {
            libc::close(report_r.as_raw_fd());
            libc::close(alive_w.as_raw_fd());
        }
        child::child_main(plan, &fds);
    }
    if pid < 0 {
        return Err(ExecError::host(
            "creating the sandbox (clone3)",
            "",
            io::Error::last_os_error(),
        ));
    }
    drop(report_w);
    drop(alive_r);
    RUNNING.lock().unwrap_or_else(|e| e.into_inner()).push(pid);

    // A limit past what an Instant can hold is no limit (formulas cap it well before that).
    let deadline = wall.and_then(|w| t0.checked_add(w));
    let mut timed_out = false;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let timeout_ms = match deadline {
            Some(d) if !timed_out => {
                let left = d.saturating_duration_since(Instant::now());
                left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32
            }
            _ => -1,
        };
        let mut p = libc::pollfd {
            fd: report_r.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        if r < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if r == 0 {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                timed_out = true;
                on_timeout(pid);
            }
            continue;
        }
        // SAFETY: read into our buffer.
        let n = unsafe { libc::read(report_r.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n as usize]);
    }
    RUNNING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|&p| p != pid);
    let mut init_status = 0;
    loop {
        // SAFETY: waitpid on our own child, writing a status we own.
        let r = unsafe { libc::waitpid(pid, &mut init_status, libc::__WALL) };
        if r >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break;
        }
    }
    drop(alive_w);
    let ended = SystemTime::now();
    let mut failure = None;
    let mut job_status = None;
    for rec in bytes.chunks_exact(REPORT_LEN) {
        let word = |i: usize| u32::from_ne_bytes([rec[i], rec[i + 1], rec[i + 2], rec[i + 3]]);
        match word(0) {
            REPORT_FAILURE if failure.is_none() => {
                if let Some(step) = Step::from_u32(word(4)) {
                    failure = Some((step, word(8), word(12) as i32));
                }
            }
            REPORT_STATUS => job_status = Some(word(12) as i32),
            _ => {}
        }
    }
    Ok(Waited {
        failure,
        job_status,
        init_status,
        timed_out,
        started,
        ended,
    })
}

/// Maps a wait status.
pub(crate) fn job_status(st: i32) -> JobStatus {
    if libc::WIFSIGNALED(st) {
        JobStatus::Signaled(libc::WTERMSIG(st))
    } else {
        JobStatus::Exited(libc::WEXITSTATUS(st))
    }
}

/// Turns a failure report into the error naming the path at fault.
pub(crate) fn setup_error(job: &Job, step: Step, index: u32, errno: i32) -> ExecError {
    let source = io::Error::from_raw_os_error(errno);
    let bind = job.mounts.get(index as usize);
    let path: PathBuf = match step {
        Step::Exec => {
            return ExecError::Exec {
                program: job.argv.first().map(PathBuf::from).unwrap_or_default(),
                source,
            };
        }
        Step::BindSource => bind.map(|b| b.source.clone()).unwrap_or_default(),
        Step::BindTarget | Step::BindMount => bind.map(|b| b.target.clone()).unwrap_or_default(),
        Step::Cwd => job.cwd.clone(),
        Step::Overlay => job.root.clone(),
        Step::Scratch => job.work.join("scratch"),
        Step::Proc => "/proc".into(),
        Step::Dev => "/dev".into(),
        Step::Tmp => "/tmp".into(),
        _ => PathBuf::new(),
    };
    ExecError::Setup {
        step: step.describe(),
        path,
        source,
    }
}

/// Turns what the wait saw into an outcome.
pub(crate) fn outcome(job: &Job, w: Waited, notices: Vec<String>) -> Result<Outcome, ExecError> {
    if let Some((step, index, errno)) = w.failure {
        return Err(setup_error(job, step, index, errno));
    }
    let status = if w.timed_out {
        JobStatus::TimedOut
    } else if let Some(st) = w.job_status {
        job_status(st)
    } else {
        return Err(ExecError::InitDied(match job_status(w.init_status) {
            JobStatus::Signaled(s) => format!("killed by signal {s}"),
            other => format!("exit code {}", other.exit_code()),
        }));
    };
    Ok(Outcome {
        status,
        started: w.started,
        ended: w.ended,
        notices,
    })
}

/// The ns and chroot executors.
pub(crate) fn run_native(kind: ExecutorKind, job: &Job) -> Result<Outcome, ExecError> {
    let (euid, _) = euid_egid();
    let rootless = euid != 0;
    let mut notices = Vec::new();
    let mode = if kind == ExecutorKind::Ns {
        Mode::Ns
    } else {
        Mode::Chroot
    };
    if mode == Mode::Chroot {
        if !job.network {
            notices
                .push("network not isolated: the chroot executor shares the host's network".into());
        }
        if !job.hostname.is_empty() {
            notices.push("hostname not set: the chroot executor shares the host's hostname".into());
        }
    }
    if rootless {
        let (_, egid) = euid_egid();
        // SAFETY: getgroups(0, NULL) only returns the count.
        let ngroups = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
        if ngroups > 1 || (ngroups == 1 && egid != job.gid) {
            notices.push(
                "supplementary groups kept: an unprivileged user namespace cannot drop them".into(),
            );
        }
    }
    let exec = ExecPlan::new(
        &job.argv, &job.env, &job.cwd, job.uid, job.gid, !rootless, true,
    )?;
    let plan = Plan::new(mode, job, exec)?;
    if plan.exec.drop_chroot {
        notices.push(
            "/ is not a mount point (a chroot): the job's root was bound onto itself and the job \
             runs without CAP_SYS_CHROOT"
                .into(),
        );
    }
    let cgroup = Cgroup::create(&job.limits, &mut notices)?;
    let sig = plan.init_deathsig;
    let waited = spawn_and_wait(&plan, job.limits.wall, cgroup.as_ref(), &|pid| {
        // SAFETY: kill with integer arguments; the init is not reaped yet.
        unsafe { libc::kill(pid, sig) };
    });
    if let Some(cg) = cgroup {
        cg.finish(&mut notices);
    }
    outcome(job, waited?, notices)
}
