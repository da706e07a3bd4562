//! The sandbox side: code that runs in the cloned child (the sandbox's init) and in the job
//! process it forks, up to execve. Everything here is async-signal-safe: raw system calls on
//! data prepared by [`crate::plan`], stack buffers, no allocation, no locks, no panics on
//! purpose. Failures are reported to the parent as fixed-size records on a pipe.

use libc::c_int;

use crate::assemble;
use crate::plan::{Mode, Plan};
use crate::report::{ChildFds, Fail, REPORT_FAILURE, REPORT_STATUS, Step, encode};
use crate::sys::{self, SysResult, rc};

fn report_fail(fd: c_int, f: Fail) {
    let _ = sys::write_all(fd, &encode(REPORT_FAILURE, f.step as u32, f.index, f.errno));
}

fn exit(code: c_int) -> ! {
    // SAFETY: _exit ends the process without running atexit handlers or destructors, which is
    // what a forked copy of a multithreaded process must do.
    unsafe { libc::_exit(code) }
}

/// Entry point of the cloned child (the sandbox's init). Never returns.
pub(crate) fn child_main(plan: &Plan, fds: &ChildFds) -> ! {
    match assemble::setup(plan, fds) {
        Ok(rootfd) => init(plan, fds, rootfd),
        Err(f) => {
            report_fail(fds.report, f);
            exit(126)
        }
    }
}

const INIT_SIGNALS: [c_int; 5] = [
    libc::SIGCHLD,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
];

fn sigset(signals: &[c_int]) -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Every signal back to its default disposition: handlers the caller installed must not run
/// in the sandbox, and SIG_IGN (Rust ignores SIGPIPE) would survive execve.
fn default_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: resetting a disposition to SIG_DFL installs no handler.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// The sandbox's init: forks the job, reaps every child, and when the job is gone kills what
/// is left and reports the job's wait status.
fn init(plan: &Plan, fds: &ChildFds, rootfd: c_int) -> ! {
    // Not dumpable: the job cannot open /proc/1/exe (the caller's binary on the host), /proc/1/fd
    // or /proc/1/mem of its init, even as root (it has no CAP_SYS_PTRACE).
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    default_signals();
    let set = sigset(&INIT_SIGNALS);
    // SAFETY: sigprocmask with a set we own.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) };
    let pid_ns = plan.mode == Mode::Ns;
    if !pid_ns {
        // Without a pid namespace, orphans of the job are reparented here so they can be swept.
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    // SAFETY: a fork-like clone (no CLONE_VM) of this single-threaded process; the child only
    // runs `job`, which is async-signal-safe, and ends in execve or _exit.
    let pid = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, 0, 0, 0, 0) }
        as libc::pid_t;
    if pid == 0 {
        sys::close(rootfd);
        let f = job(plan, fds, me);
        report_fail(fds.report, f);
        exit(127);
    }
    if pid < 0 {
        report_fail(
            fds.report,
            Fail {
                step: Step::Fork,
                index: 0,
                errno: sys::errno(),
            },
        );
        exit(126);
    }
    sys::close(rootfd);
    sys::close(fds.alive);
    // Only the report pipe stays open: the caller's stdio is the job's, not ours to hold.
    // SAFETY: closing descriptor ranges; nothing in this process uses them any more.
    unsafe {
        if fds.report > 0 {
            libc::syscall(libc::SYS_close_range, 0u32, (fds.report - 1) as u32, 0u32);
        }
        libc::syscall(
            libc::SYS_close_range,
            (fds.report + 1) as u32,
            u32::MAX,
            0u32,
        );
    }
    let mut status: Option<c_int> = None;
    while status.is_none() {
        // SAFETY: `info` is ours; `set` is initialised.
        let sig = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::sigwaitinfo(&set, &mut info)
        };
        match sig {
            libc::SIGCHLD => {
                reap(pid, &mut status, false);
            }
            // The parent's wall limit, or its death (PR_SET_PDEATHSIG): everything goes.
            libc::SIGTERM => kill_descendants(pid_ns, me, pid, &mut status),
            // SIGINT/SIGHUP/SIGQUIT from a terminal reach the job directly (same process
            // group); the init ignores them.
            _ => {}
        }
    }
    // The job is gone: its leftovers too. In a pid namespace, the init's exit kills them all.
    if !pid_ns {
        kill_descendants(false, me, pid, &mut status);
    }
    let st = status.unwrap_or(0);
    let _ = sys::write_all(fds.report, &encode(REPORT_STATUS, 0, 0, st));
    exit(0)
}

fn reap(job: libc::pid_t, status: &mut Option<c_int>, block: bool) -> bool {
    let mut any = false;
    loop {
        let mut st = 0;
        // SAFETY: waitpid writes the status we own.
        let r =
            unsafe { libc::waitpid(-1, &mut st, if block && !any { 0 } else { libc::WNOHANG }) };
        if r <= 0 {
            return any || r == 0;
        }
        any = true;
        if r == job {
            *status = Some(st);
        }
    }
}

/// Kills every descendant and reaps them all (the job included).
fn kill_descendants(pid_ns: bool, me: libc::pid_t, job: libc::pid_t, status: &mut Option<c_int>) {
    if pid_ns {
        // kill(-1) from a pid namespace's init reaches every other process of the namespace.
        // SAFETY: kill with integer arguments.
        unsafe { libc::kill(-1, libc::SIGKILL) };
        while reap(job, status, true) {}
        return;
    }
    // Subreaper sweep: kill our children; their orphans are reparented to us; repeat until we
    // have no children left.
    loop {
        kill_children_of(me);
        if !reap(job, status, true) {
            return;
        }
    }
}

/// SIGKILLs every process whose parent is `me`, found by scanning /proc with stack buffers.
fn kill_children_of(me: libc::pid_t) {
    // SAFETY: open of a static path; closed below.
    let dir = unsafe {
        libc::open(
            c"/proc".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dir < 0 {
        return;
    }
    let mut ents = [0u8; 8192];
    loop {
        // SAFETY: getdents64 fills our buffer.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, dir, ents.as_mut_ptr(), ents.len()) };
        if n <= 0 {
            break;
        }
        let mut off = 0usize;
        while off + 19 < n as usize {
            let reclen = u16::from_ne_bytes([ents[off + 16], ents[off + 17]]) as usize;
            let name = &ents[off + 19..off + reclen];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            if let Some(pid) = parse_u32(name)
                && parent_of(dir, &ents[off + 19..off + reclen]) == Some(me)
            {
                // SAFETY: kill with integer arguments.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
            if reclen == 0 {
                break;
            }
            off += reclen;
        }
    }
    sys::close(dir);
}

fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 9 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u32, |a, &d| a * 10 + (d - b'0') as u32))
}

/// The ppid field of /proc/<name>/stat (`name` NUL-terminated in the dirent).
fn parent_of(procfd: c_int, name: &[u8]) -> Option<libc::pid_t> {
    let mut path = [0u8; 32];
    let len = name.iter().position(|&b| b == 0)?;
    if len + 6 > path.len() {
        return None;
    }
    path[..len].copy_from_slice(&name[..len]);
    path[len..len + 5].copy_from_slice(b"/stat");
    // SAFETY: `path` is NUL-terminated (zeroed buffer).
    let fd = unsafe {
        libc::openat(
            procfd,
            path.as_ptr().cast(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    let mut buf = [0u8; 512];
    // SAFETY: read into our buffer.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    sys::close(fd);
    if n <= 0 {
        return None;
    }
    let s = &buf[..n as usize];
    // "pid (comm) state ppid ...": comm may contain anything, so parse after the last ')'.
    let close = s.iter().rposition(|&b| b == b')')?;
    let mut fields = s[close + 1..]
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty());
    fields.next()?;
    parse_u32(fields.next()?).map(|p| p as libc::pid_t)
}

/// Capabilities a root job keeps (Docker's default set): no CAP_SYS_ADMIN, CAP_MKNOD,
/// CAP_NET_RAW, CAP_SYS_MODULE, CAP_SYS_PTRACE, …
pub(crate) const KEPT_CAPS: [c_int; 11] = [
    0,  // CAP_CHOWN
    1,  // CAP_DAC_OVERRIDE
    3,  // CAP_FOWNER
    4,  // CAP_FSETID
    5,  // CAP_KILL
    6,  // CAP_SETGID
    7,  // CAP_SETUID
    8,  // CAP_SETPCAP
    10, // CAP_NET_BIND_SERVICE
    18, // CAP_SYS_CHROOT
    31, // CAP_SETFCAP
];

const CAP_SYS_CHROOT: c_int = 18;

/// The job process: drop what it must not have, then execve. Returns only on failure.
fn job(plan: &Plan, fds: &ChildFds, init_pid: libc::pid_t) -> Fail {
    let deathsig = || -> SysResult<()> {
        // SAFETY: prctl/getppid with integer arguments.
        unsafe {
            rc(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
            if libc::getppid() != init_pid {
                return Err(libc::ESRCH);
            }
        }
        Ok(())
    };
    if let Err(e) = deathsig() {
        return Fail {
            step: Step::ParentGone,
            index: 0,
            errno: e,
        };
    }
    let _ = fds;
    default_signals();
    let empty = sigset(&[]);
    // SAFETY: sigprocmask with a set we own.
    let unmasked = unsafe { libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) };
    if let Err(e) = rc(unmasked) {
        return Fail {
            step: Step::Signals,
            index: 0,
            errno: e,
        };
    }
    let x = &plan.exec;
    if x.confine {
        for cap in 0..64 {
            if KEPT_CAPS.contains(&cap) && !(x.drop_chroot && cap == CAP_SYS_CHROOT) {
                continue;
            }
            // SAFETY: prctl with integer arguments.
            match rc(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) }) {
                Ok(_) => {}
                Err(libc::EINVAL) => break, // past the last capability this kernel knows
                Err(e) => {
                    return Fail {
                        step: Step::Capabilities,
                        index: cap as u32,
                        errno: e,
                    };
                }
            }
        }
    }
    if x.set_ids {
        let groups = [x.gid];
        // Raw system calls, not glibc's wrappers: those broadcast the change to every thread
        // glibc believes exists (the parent's, copied into this process by clone) and wait
        // for them forever.
        // SAFETY: setgroups reads our one-element array; setresgid/setresuid take integers.
        let r = unsafe {
            let g = x.gid as libc::c_long;
            let u = x.uid as libc::c_long;
            sys::check(libc::syscall(
                libc::SYS_setgroups,
                1 as libc::c_long,
                groups.as_ptr(),
            ))
            .and_then(|_| sys::check(libc::syscall(libc::SYS_setresgid, g, g, g)))
            .and_then(|_| sys::check(libc::syscall(libc::SYS_setresuid, u, u, u)))
        };
        if let Err(e) = r {
            return Fail {
                step: Step::Ids,
                index: 0,
                errno: e,
            };
        }
        // Check what the kernel did rather than trust it did what was asked: an ID it reads
        // specially ((uid_t)-1 is "unchanged") would leave the job with the caller's IDs.
        let (mut ru, mut eu, mut su, mut rg, mut eg, mut sg) = (0u32, 0u32, 0u32, 0u32, 0u32, 0u32);
        // SAFETY: getresuid/getresgid write three integers each into our locals.
        let got = unsafe {
            sys::check(libc::syscall(
                libc::SYS_getresuid,
                &mut ru,
                &mut eu,
                &mut su,
            ))
            .and_then(|_| {
                sys::check(libc::syscall(
                    libc::SYS_getresgid,
                    &mut rg,
                    &mut eg,
                    &mut sg,
                ))
            })
        };
        let asked = [x.uid, x.uid, x.uid, x.gid, x.gid, x.gid];
        if got.is_err() || [ru, eu, su, rg, eg, sg] != asked {
            return Fail {
                step: Step::IdsCheck,
                index: 0,
                errno: libc::EPERM,
            };
        }
        // Changing credentials clears the parent-death signal: set it again.
        if let Err(e) = deathsig() {
            return Fail {
                step: Step::ParentGone,
                index: 0,
                errno: e,
            };
        }
    }
    if x.confine {
        // SAFETY: prctl with integer arguments.
        if let Err(e) = rc(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }) {
            return Fail {
                step: Step::NoNewPrivs,
                index: 0,
                errno: e,
            };
        }
    }
    // Every descriptor but 0, 1, 2 is closed by execve (the report pipe stays usable until then).
    if let Err(e) = sys::cloexec_from(3) {
        return Fail {
            step: Step::Exec,
            index: 0,
            errno: e,
        };
    }
    // SAFETY: chdir with a NUL-terminated path.
    if let Err(e) = rc(unsafe { libc::chdir(x.cwd.as_ptr()) }) {
        return Fail {
            step: Step::Cwd,
            index: 0,
            errno: e,
        };
    }
    let mut err = libc::ENOENT;
    let mut saw_eacces = false;
    for (i, c) in x.candidates.iter().enumerate() {
        // SAFETY: NUL-terminated path and NULL-terminated pointer arrays built by the plan.
        unsafe { libc::execve(c.as_ptr(), x.argv_ptrs.as_ptr(), x.envp_ptrs.as_ptr()) };
        err = sys::errno();
        match err {
            libc::EACCES => saw_eacces = true,
            libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
            _ => {
                return Fail {
                    step: Step::Exec,
                    index: i as u32,
                    errno: err,
                };
            }
        }
    }
    Fail {
        step: Step::Exec,
        index: 0,
        errno: if saw_eacces { libc::EACCES } else { err },
    }
}
