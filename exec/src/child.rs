//! The sandbox side: code that runs in the cloned child (the sandbox's init) and in the job
//! process it forks, up to execve. Everything here is async-signal-safe: raw system calls on
//! data prepared by [`crate::plan`], stack buffers, no allocation, no locks, no panics on
//! purpose. Failures are reported to the parent as fixed-size records on a pipe.

use libc::{c_char, c_int};

use crate::plan::{Mode, Plan};
use crate::sys::{self, Errno, SysResult};

/// A step of the setup, reported to the parent on failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Step {
    ParentGone = 1,
    UserNs,
    MakePrivate,
    Scratch,
    Overlay,
    Proc,
    Dev,
    Tmp,
    BindSource,
    BindTarget,
    BindMount,
    PivotRoot,
    Chroot,
    Hostname,
    Loopback,
    Signals,
    Fork,
    Capabilities,
    Ids,
    NoNewPrivs,
    Cwd,
    Exec,
}

impl Step {
    pub(crate) fn from_u32(v: u32) -> Option<Step> {
        use Step::*;
        const ALL: [Step; 22] = [
            ParentGone, UserNs, MakePrivate, Scratch, Overlay, Proc, Dev, Tmp, BindSource,
            BindTarget, BindMount, PivotRoot, Chroot, Hostname, Loopback, Signals, Fork,
            Capabilities, Ids, NoNewPrivs, Cwd, Exec,
        ];
        ALL.into_iter().find(|s| *s as u32 == v)
    }

    pub(crate) fn describe(self) -> &'static str {
        use Step::*;
        match self {
            ParentGone => "checking the caller is alive",
            UserNs => "writing the user namespace id maps",
            MakePrivate => "making mounts private",
            Scratch => "mounting the scratch tmpfs",
            Overlay => "mounting the overlay root",
            Proc => "mounting /proc",
            Dev => "assembling /dev",
            Tmp => "mounting /tmp",
            BindSource => "opening bind source",
            BindTarget => "resolving bind target",
            BindMount => "mounting bind",
            PivotRoot => "pivot_root",
            Chroot => "chroot",
            Hostname => "setting the hostname",
            Loopback => "bringing up lo",
            Signals => "setting signal dispositions",
            Fork => "forking the job",
            Capabilities => "bounding capabilities",
            Ids => "setting user and group ids",
            NoNewPrivs => "setting no_new_privs",
            Cwd => "changing to the working directory",
            Exec => "execve",
        }
    }
}

/// Report record kinds.
pub(crate) const REPORT_FAILURE: u32 = 1;
pub(crate) const REPORT_STATUS: u32 = 2;
/// One record: kind, step, index (which bind or candidate), value (errno or wait status).
pub(crate) const REPORT_LEN: usize = 16;

pub(crate) fn encode(kind: u32, step: u32, index: u32, value: i32) -> [u8; REPORT_LEN] {
    let mut r = [0u8; REPORT_LEN];
    r[0..4].copy_from_slice(&kind.to_ne_bytes());
    r[4..8].copy_from_slice(&step.to_ne_bytes());
    r[8..12].copy_from_slice(&index.to_ne_bytes());
    r[12..16].copy_from_slice(&value.to_ne_bytes());
    r
}

/// A failed step: which, for which item, and the errno.
#[derive(Clone, Copy)]
pub(crate) struct Fail {
    step: Step,
    index: u32,
    errno: Errno,
}

trait Ctx<T> {
    fn at(self, step: Step) -> Result<T, Fail>;
    fn at_item(self, step: Step, index: usize) -> Result<T, Fail>;
}

impl<T> Ctx<T> for SysResult<T> {
    fn at(self, step: Step) -> Result<T, Fail> {
        self.map_err(|errno| Fail { step, index: 0, errno })
    }
    fn at_item(self, step: Step, index: usize) -> Result<T, Fail> {
        self.map_err(|errno| Fail { step, index: index as u32, errno })
    }
}

fn rc(r: c_int) -> SysResult<c_int> {
    if r < 0 { Err(sys::errno()) } else { Ok(r) }
}

fn sys_rc(r: libc::c_long) -> SysResult<c_int> {
    if r < 0 { Err(sys::errno()) } else { Ok(r as c_int) }
}

fn report_fail(fd: c_int, f: Fail) {
    let _ = sys::write_all(fd, &encode(REPORT_FAILURE, f.step as u32, f.index, f.errno));
}

fn exit(code: c_int) -> ! {
    // SAFETY: _exit ends the process without running atexit handlers or destructors, which is
    // what a forked copy of a multithreaded process must do.
    unsafe { libc::_exit(code) }
}

/// Descriptors the child gets from the parent.
pub(crate) struct ChildFds {
    /// Write end of the report pipe.
    pub report: c_int,
    /// Read end of the liveness pipe: it hangs up when the parent is gone.
    pub alive: c_int,
}

/// Entry point of the cloned child (the sandbox's init). Never returns.
pub(crate) fn child_main(plan: &Plan, fds: &ChildFds) -> ! {
    match setup(plan, fds) {
        Ok(rootfd) => init(plan, fds, rootfd),
        Err(f) => {
            report_fail(fds.report, f);
            exit(126)
        }
    }
}

fn parent_alive(fds: &ChildFds) -> bool {
    let mut p = libc::pollfd { fd: fds.alive, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, zero timeout.
    let r = unsafe { libc::poll(&mut p, 1, 0) };
    !(r > 0 && p.revents & (libc::POLLHUP | libc::POLLERR) != 0)
}

fn setup(plan: &Plan, fds: &ChildFds) -> Result<c_int, Fail> {
    // SAFETY: prctl with integer arguments.
    rc(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, plan.init_deathsig, 0, 0, 0) })
        .at(Step::ParentGone)?;
    if !parent_alive(fds) {
        return Err(Fail { step: Step::ParentGone, index: 0, errno: libc::ESRCH });
    }
    if let Some((uid_map, gid_map)) = &plan.userns {
        sys::write_file(c"/proc/self/setgroups".as_ptr(), b"deny").at(Step::UserNs)?;
        sys::write_file(c"/proc/self/uid_map".as_ptr(), uid_map).at(Step::UserNs)?;
        sys::write_file(c"/proc/self/gid_map".as_ptr(), gid_map).at(Step::UserNs)?;
    }
    let null: *const c_char = std::ptr::null();
    // SAFETY: mount(2) with a static path and no data: only changes propagation.
    rc(unsafe {
        libc::mount(null, c"/".as_ptr(), null, libc::MS_REC | libc::MS_PRIVATE, std::ptr::null())
    })
    .at(Step::MakePrivate)?;
    let rootfd = overlay_root(plan)?;
    if plan.mode == Mode::Runtime {
        return Ok(rootfd);
    }
    system_mounts(plan, rootfd)?;
    for (i, b) in plan.binds.iter().enumerate() {
        let src = sys::clone_tree(libc::AT_FDCWD, b.source.as_ptr(), true).at_item(Step::BindSource, i)?;
        let mut attrs = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
        if !b.writable {
            attrs |= sys::MOUNT_ATTR_RDONLY;
        }
        sys::set_mount_attr(src, attrs, true).at_item(Step::BindMount, i)?;
        let tgt = resolve_target(rootfd, &b.target, b.dir).at_item(Step::BindTarget, i)?;
        sys::attach(src, tgt).at_item(Step::BindMount, i)?;
        sys::close(tgt);
        sys::close(src);
    }
    // SAFETY: fchdir/chroot/pivot_root/umount2/chdir on a descriptor we own and static paths.
    unsafe {
        rc(libc::fchdir(rootfd)).at(Step::PivotRoot)?;
        if plan.mode == Mode::Ns {
            // pivot_root(".", "."): the old root ends up stacked under the new one and is then
            // detached, so nothing of the host's tree stays reachable.
            sys::pivot_root(c".".as_ptr(), c".".as_ptr()).at(Step::PivotRoot)?;
            rc(libc::umount2(c".".as_ptr(), libc::MNT_DETACH)).at(Step::PivotRoot)?;
        } else {
            rc(libc::chroot(c".".as_ptr())).at(Step::Chroot)?;
        }
        rc(libc::chdir(c"/".as_ptr())).at(Step::PivotRoot)?;
    }
    if let Some(h) = &plan.hostname {
        // SAFETY: `h` is a valid buffer of its length.
        rc(unsafe { libc::sethostname(h.as_ptr().cast(), h.len()) }).at(Step::Hostname)?;
    }
    if plan.loopback_up {
        loopback_up().at(Step::Loopback)?;
    }
    Ok(rootfd)
}

/// A detached mount of a new filesystem of `fstype` with `options` ((key, value) pairs; a null
/// value sets a flag).
fn new_fs(fstype: &std::ffi::CStr, options: &[(&std::ffi::CStr, *const c_char)], attrs: u64) -> SysResult<c_int> {
    let fsfd = sys::fs_open(fstype.as_ptr())?;
    for (k, v) in options {
        if let Err(e) = sys::fs_set(fsfd, k.as_ptr(), *v) {
            sys::close(fsfd);
            return Err(e);
        }
    }
    let r = sys::fs_mount(fsfd, attrs);
    sys::close(fsfd);
    r
}

fn open_dir(path: *const c_char) -> SysResult<c_int> {
    // SAFETY: `path` is NUL-terminated.
    rc(unsafe { libc::open(path, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) })
}

/// Scratch tmpfs, then the overlay over the lower root, attached at `plan.newroot`. Returns a
/// descriptor of the overlay's root.
fn overlay_root(plan: &Plan) -> Result<c_int, Fail> {
    let scratch = new_fs(c"tmpfs", &[(c"mode", c"0700".as_ptr())], sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV)
        .at(Step::Scratch)?;
    let at = open_dir(plan.scratch.as_ptr()).at(Step::Scratch)?;
    sys::attach(scratch, at).at(Step::Scratch)?;
    sys::close(at);
    sys::mkdir_at(scratch, c"upper".as_ptr(), 0o755).at(Step::Scratch)?;
    sys::mkdir_at(scratch, c"work".as_ptr(), 0o700).at(Step::Scratch)?;
    // The merged root shows the upper root's mode and owner: make them the lower root's.
    // SAFETY: fchmodat/fchownat on a relative static name below our own tmpfs.
    unsafe {
        rc(libc::fchmodat(scratch, c"upper".as_ptr(), plan.root_mode, 0)).at(Step::Scratch)?;
        if let Some((uid, gid)) = plan.root_owner {
            rc(libc::fchownat(scratch, c"upper".as_ptr(), uid, gid, 0)).at(Step::Scratch)?;
        }
    }
    sys::close(scratch);

    let fsfd = sys::fs_open(c"overlay".as_ptr()).at(Step::Overlay)?;
    // "lowerdir+" (Linux 6.8) takes one path verbatim: no escaping of ':' or ','.
    sys::fs_set(fsfd, c"lowerdir+".as_ptr(), plan.lower.as_ptr()).at(Step::Overlay)?;
    sys::fs_set(fsfd, c"upperdir".as_ptr(), plan.upper.as_ptr()).at(Step::Overlay)?;
    sys::fs_set(fsfd, c"workdir".as_ptr(), plan.workdir.as_ptr()).at(Step::Overlay)?;
    if plan.userxattr {
        sys::fs_set(fsfd, c"userxattr".as_ptr(), std::ptr::null()).at(Step::Overlay)?;
    }
    let root = sys::fs_mount(fsfd, sys::MOUNT_ATTR_NODEV).at(Step::Overlay)?;
    sys::close(fsfd);
    let at = open_dir(plan.newroot.as_ptr()).at(Step::Overlay)?;
    sys::attach(root, at).at(Step::Overlay)?;
    sys::close(at);
    Ok(root)
}

/// Resolves `rel` below `rootfd` without ever leaving it (RESOLVE_IN_ROOT: symlinks and `..`
/// are resolved as if `rootfd` were `/`), creating what is missing: directories, and for a
/// file target the last component as an empty file. A dangling symlink on the way is followed
/// (its target spliced into the path, still inside the root) and its target created. Returns
/// an O_PATH descriptor.
pub(crate) fn resolve_target(rootfd: c_int, rel: &[u8], dir: bool) -> SysResult<c_int> {
    const MAX: usize = libc::PATH_MAX as usize;
    let mut buf = [0u8; MAX + 1];
    let mut spliced = [0u8; MAX + 1];
    let mut link = [0u8; MAX + 1];
    if rel.len() >= MAX {
        return Err(libc::ENAMETOOLONG);
    }
    buf[..rel.len()].copy_from_slice(rel);
    let mut len = rel.len();
    let last_flags = libc::O_PATH | if dir { libc::O_DIRECTORY } else { 0 };
    let mut hops = 0;
    'restart: loop {
        if len == 0 {
            return sys::open_in_root(rootfd, c".".as_ptr(), libc::O_PATH | libc::O_DIRECTORY);
        }
        buf[len] = 0;
        match sys::open_in_root(rootfd, buf.as_ptr().cast(), last_flags) {
            Err(libc::ENOENT) => {}
            other => return other,
        }
        let mut start = 0;
        loop {
            let end = buf[start..len].iter().position(|&b| b == b'/').map_or(len, |p| start + p);
            let last = end == len;
            if end == start && !last {
                start = end + 1;
                continue;
            }
            buf[end] = 0;
            let flags = if last { last_flags } else { libc::O_PATH | libc::O_DIRECTORY };
            match sys::open_in_root(rootfd, buf.as_ptr().cast(), flags) {
                Ok(fd) if last => return Ok(fd),
                Ok(fd) => sys::close(fd),
                Err(libc::ENOENT) => {
                    let parent = if start == 0 {
                        rootfd
                    } else {
                        buf[start - 1] = 0;
                        let p = sys::open_in_root(rootfd, buf.as_ptr().cast(), libc::O_PATH | libc::O_DIRECTORY);
                        buf[start - 1] = b'/';
                        p?
                    };
                    let name = buf[start..].as_ptr().cast();
                    // SAFETY: readlinkat into our buffer, at most its length minus one.
                    let n = unsafe { libc::readlinkat(parent, name, link.as_mut_ptr().cast(), MAX) };
                    let made = if n >= 0 {
                        Ok(())
                    } else if !matches!(sys::errno(), libc::EINVAL | libc::ENOENT) {
                        Err(sys::errno())
                    } else if last && !dir {
                        sys::mkfile_at(parent, name)
                    } else {
                        sys::mkdir_at(parent, name, 0o755)
                    };
                    if start != 0 {
                        sys::close(parent);
                    }
                    made?;
                    if n >= 0 {
                        // A dangling symlink: continue with its target in place of it, relative
                        // to the directory holding it, or to the root when absolute.
                        hops += 1;
                        if hops > 40 {
                            return Err(libc::ELOOP);
                        }
                        let target = &link[..n as usize];
                        let mut w = 0;
                        let mut put = |bytes: &[u8]| -> SysResult<()> {
                            if w + bytes.len() >= MAX {
                                return Err(libc::ENAMETOOLONG);
                            }
                            spliced[w..w + bytes.len()].copy_from_slice(bytes);
                            w += bytes.len();
                            Ok(())
                        };
                        if target.first() != Some(&b'/') {
                            put(&buf[..start])?;
                        }
                        put(target)?;
                        if !last {
                            put(b"/")?;
                            put(&buf[end + 1..len])?;
                        }
                        let skip = spliced[..w].iter().take_while(|&&b| b == b'/').count();
                        len = w - skip;
                        buf[..len].copy_from_slice(&spliced[skip..w]);
                        continue 'restart;
                    }
                    match sys::open_in_root(rootfd, buf.as_ptr().cast(), flags) {
                        Ok(fd) if last => return Ok(fd),
                        Ok(fd) => sys::close(fd),
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
            buf[end] = b'/';
            start = end + 1;
        }
    }
}

/// /proc, /dev and /tmp of the job, each resolved inside the new root.
fn system_mounts(plan: &Plan, rootfd: c_int) -> Result<(), Fail> {
    let nosuid_nodev = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
    // /proc: created here, in the new pid namespace (this process is its pid 1), so it shows
    // the job's processes only (chroot: the host's: documented).
    let proc_ = new_fs(c"proc", &[], nosuid_nodev | sys::MOUNT_ATTR_NOEXEC).at(Step::Proc)?;
    let at = resolve_target(rootfd, b"proc", true).at(Step::Proc)?;
    sys::attach(proc_, at).at(Step::Proc)?;
    sys::close(at);
    // Kernel knobs that are not namespaced stay read-only, as Docker has them. Best effort in a
    // user namespace, where the job's root is not the host's root anyway.
    for name in [c"sys", c"sysrq-trigger", c"irq", c"bus", c"fs"] {
        let r = (|| {
            let t = match sys::clone_tree(proc_, name.as_ptr(), false) {
                Err(libc::ENOENT) => return Ok(()),
                r => r?,
            };
            sys::set_mount_attr(t, sys::MOUNT_ATTR_RDONLY | nosuid_nodev | sys::MOUNT_ATTR_NOEXEC, false)?;
            // SAFETY: openat of a static name below our own proc mount.
            let at = rc(unsafe { libc::openat(proc_, name.as_ptr(), libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) })?;
            sys::attach(t, at)?;
            sys::close(at);
            sys::close(t);
            Ok(())
        })();
        if plan.userns.is_none() {
            r.at(Step::Proc)?;
        }
    }
    sys::close(proc_);

    let dev = new_fs(c"tmpfs", &[(c"mode", c"0755".as_ptr()), (c"size", c"1m".as_ptr())], sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOEXEC)
        .at(Step::Dev)?;
    let at = resolve_target(rootfd, b"dev", true).at(Step::Dev)?;
    sys::attach(dev, at).at(Step::Dev)?;
    sys::close(at);
    populate_dev(plan, dev).at(Step::Dev)?;
    sys::close(dev);

    let tmp = new_fs(c"tmpfs", &[(c"mode", c"1777".as_ptr())], nosuid_nodev).at(Step::Tmp)?;
    let at = resolve_target(rootfd, b"tmp", true).at(Step::Tmp)?;
    sys::attach(tmp, at).at(Step::Tmp)?;
    sys::close(at);
    sys::close(tmp);
    Ok(())
}

fn populate_dev(plan: &Plan, dev: c_int) -> SysResult<()> {
    let nodes = [
        (c"null", c"/dev/null"),
        (c"zero", c"/dev/zero"),
        (c"full", c"/dev/full"),
        (c"random", c"/dev/random"),
        (c"urandom", c"/dev/urandom"),
        (c"tty", c"/dev/tty"),
    ];
    for (name, host) in nodes {
        sys::mkfile_at(dev, name.as_ptr())?;
        let src = sys::clone_tree(libc::AT_FDCWD, host.as_ptr(), false)?;
        // SAFETY: openat of a static name below our own /dev tmpfs.
        let at = rc(unsafe { libc::openat(dev, name.as_ptr(), libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) })?;
        sys::attach(src, at)?;
        sys::close(at);
        sys::close(src);
    }
    let mount_dir = |name: &std::ffi::CStr, fd: c_int| -> SysResult<()> {
        sys::mkdir_at(dev, name.as_ptr(), 0o755)?;
        // SAFETY: openat of a static name below our own /dev tmpfs.
        let at = rc(unsafe { libc::openat(dev, name.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC) })?;
        let r = sys::attach(fd, at);
        sys::close(at);
        sys::close(fd);
        r
    };
    let pts_opts_root = [(c"newinstance", std::ptr::null()), (c"ptmxmode", c"0666".as_ptr()), (c"mode", c"0620".as_ptr()), (c"gid", c"5".as_ptr())];
    let opts: &[_] = if plan.devpts_gid { &pts_opts_root } else { &pts_opts_root[..3] };
    let pts = new_fs(c"devpts", opts, sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOEXEC)?;
    mount_dir(c"pts", pts)?;
    let shm = new_fs(c"tmpfs", &[(c"mode", c"1777".as_ptr())], sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC)?;
    mount_dir(c"shm", shm)?;
    for (target, name) in [
        (c"pts/ptmx", c"ptmx"),
        (c"/proc/self/fd", c"fd"),
        (c"/proc/self/fd/0", c"stdin"),
        (c"/proc/self/fd/1", c"stdout"),
        (c"/proc/self/fd/2", c"stderr"),
    ] {
        // SAFETY: symlinkat with static strings below our own /dev tmpfs.
        rc(unsafe { libc::symlinkat(target.as_ptr(), dev, name.as_ptr()) })?;
    }
    Ok(())
}

/// SIOCSIFFLAGS IFF_UP on `lo`: no `ip` binary needed.
fn loopback_up() -> SysResult<()> {
    // SAFETY: a plain datagram socket, closed below.
    let s = rc(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own.
    let r = unsafe {
        rc(libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr)).and_then(|_| {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            rc(libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr))
        })
    };
    sys::close(s);
    r.map(drop)
}

const INIT_SIGNALS: [c_int; 5] = [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT];

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
    let pid = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, 0, 0, 0, 0) } as libc::pid_t;
    if pid == 0 {
        sys::close(rootfd);
        let f = job(plan, fds, me);
        report_fail(fds.report, f);
        exit(127);
    }
    if pid < 0 {
        report_fail(fds.report, Fail { step: Step::Fork, index: 0, errno: sys::errno() });
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
        libc::syscall(libc::SYS_close_range, (fds.report + 1) as u32, u32::MAX, 0u32);
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
        let r = unsafe { libc::waitpid(-1, &mut st, if block && !any { 0 } else { libc::WNOHANG }) };
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
    let dir = unsafe { libc::open(c"/proc".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
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
    let fd = unsafe { libc::openat(procfd, path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
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
    let mut fields = s[close + 1..].split(|&b| b == b' ').filter(|f| !f.is_empty());
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
        return Fail { step: Step::ParentGone, index: 0, errno: e };
    }
    let _ = fds;
    default_signals();
    let empty = sigset(&[]);
    // SAFETY: sigprocmask with a set we own.
    if let Err(e) = rc(unsafe { libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) }) {
        return Fail { step: Step::Signals, index: 0, errno: e };
    }
    let x = &plan.exec;
    if x.confine {
        for cap in 0..64 {
            if KEPT_CAPS.contains(&cap) {
                continue;
            }
            // SAFETY: prctl with integer arguments.
            match rc(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) }) {
                Ok(_) => {}
                Err(libc::EINVAL) => break, // past the last capability this kernel knows
                Err(e) => return Fail { step: Step::Capabilities, index: cap as u32, errno: e },
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
            sys_rc(libc::syscall(libc::SYS_setgroups, 1 as libc::c_long, groups.as_ptr()))
                .and_then(|_| sys_rc(libc::syscall(libc::SYS_setresgid, g, g, g)))
                .and_then(|_| sys_rc(libc::syscall(libc::SYS_setresuid, u, u, u)))
        };
        if let Err(e) = r {
            return Fail { step: Step::Ids, index: 0, errno: e };
        }
        // Changing credentials clears the parent-death signal: set it again.
        if let Err(e) = deathsig() {
            return Fail { step: Step::ParentGone, index: 0, errno: e };
        }
    }
    if x.confine {
        // SAFETY: prctl with integer arguments.
        if let Err(e) = rc(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }) {
            return Fail { step: Step::NoNewPrivs, index: 0, errno: e };
        }
    }
    // Every descriptor but 0, 1, 2 is closed by execve (the report pipe stays usable until then).
    if let Err(e) = sys::cloexec_from(3) {
        return Fail { step: Step::Exec, index: 0, errno: e };
    }
    // SAFETY: chdir with a NUL-terminated path.
    if let Err(e) = rc(unsafe { libc::chdir(x.cwd.as_ptr()) }) {
        return Fail { step: Step::Cwd, index: 0, errno: e };
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
            _ => return Fail { step: Step::Exec, index: i as u32, errno: err },
        }
    }
    Fail { step: Step::Exec, index: 0, errno: if saw_eacces { libc::EACCES } else { err } }
}
