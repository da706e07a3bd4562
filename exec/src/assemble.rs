//! Assembling the job's root, in the cloned child: private propagation, the scratch tmpfs and
//! overlay, /proc, /dev, /tmp and the binds (each target resolved inside the new root), then
//! pivot_root or chroot, hostname and `lo`. Async-signal-safe like the rest of the child:
//! raw system calls on prepared data and stack buffers only.

use libc::{c_char, c_int};

use crate::plan::{Mode, Plan};
use crate::report::{ChildFds, Ctx, Fail, Step, parent_alive};
use crate::sys::{self, SysResult, rc};

/// Builds the sandbox; returns a descriptor of the new root's overlay mount.
pub(crate) fn setup(plan: &Plan, fds: &ChildFds) -> Result<c_int, Fail> {
    // SAFETY: prctl with integer arguments.
    rc(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, plan.init_deathsig, 0, 0, 0) })
        .at(Step::ParentGone)?;
    if !parent_alive(fds) {
        return Err(Fail {
            step: Step::ParentGone,
            index: 0,
            errno: libc::ESRCH,
        });
    }
    if let Some((uid_map, gid_map)) = &plan.userns {
        sys::write_file(c"/proc/self/setgroups".as_ptr(), b"deny").at(Step::UserNs)?;
        sys::write_file(c"/proc/self/uid_map".as_ptr(), uid_map).at(Step::UserNs)?;
        sys::write_file(c"/proc/self/gid_map".as_ptr(), gid_map).at(Step::UserNs)?;
    }
    if plan.rebind_root {
        rebind_root().at(Step::RebindRoot)?;
    }
    let null: *const c_char = std::ptr::null();
    // SAFETY: mount(2) with a static path and no data: only changes propagation.
    rc(unsafe {
        libc::mount(
            null,
            c"/".as_ptr(),
            null,
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    })
    .at(Step::MakePrivate)?;
    let rootfd = overlay_root(plan)?;
    if plan.mode == Mode::Runtime {
        return Ok(rootfd);
    }
    system_mounts(plan, rootfd)?;
    for (i, b) in plan.binds.iter().enumerate() {
        let src = sys::clone_tree(libc::AT_FDCWD, b.source.as_ptr(), true)
            .at_item(Step::BindSource, i)?;
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

/// `/` is a directory inside a mount (a chroot), which cannot be made private: put a private
/// copy of the tree at `/` onto it and make that copy the root. The plan checked that the mount
/// below does not propagate, so the bind stays in this namespace.
fn rebind_root() -> SysResult<()> {
    let tree = sys::clone_tree(libc::AT_FDCWD, c"/".as_ptr(), true)?;
    sys::set_propagation(tree, libc::MS_PRIVATE)?;
    let at = open_dir(c"/".as_ptr())?;
    sys::attach(tree, at)?;
    sys::close(at);
    // SAFETY: fchdir/chroot on a descriptor we own and a static path.
    unsafe {
        rc(libc::fchdir(tree))?;
        rc(libc::chroot(c".".as_ptr()))?;
    }
    sys::close(tree);
    Ok(())
}

/// A detached mount of a new filesystem of `fstype` with `options` ((key, value) pairs; a null
/// value sets a flag).
fn new_fs(
    fstype: &std::ffi::CStr,
    options: &[(&std::ffi::CStr, *const c_char)],
    attrs: u64,
) -> SysResult<c_int> {
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
    let scratch = new_fs(
        c"tmpfs",
        &[(c"mode", c"0700".as_ptr())],
        sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
    )
    .at(Step::Scratch)?;
    let at = open_dir(plan.scratch.as_ptr()).at(Step::Scratch)?;
    sys::attach(scratch, at).at(Step::Scratch)?;
    sys::close(at);
    sys::mkdir_at(scratch, c"upper".as_ptr(), 0o755).at(Step::Scratch)?;
    sys::mkdir_at(scratch, c"work".as_ptr(), 0o700).at(Step::Scratch)?;
    // The merged root shows the upper root's mode and owner: make them the lower root's.
    // SAFETY: fchmodat/fchownat on a relative static name below our own tmpfs.
    unsafe {
        rc(libc::fchmodat(
            scratch,
            c"upper".as_ptr(),
            plan.root_mode,
            0,
        ))
        .at(Step::Scratch)?;
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
            let end = buf[start..len]
                .iter()
                .position(|&b| b == b'/')
                .map_or(len, |p| start + p);
            let last = end == len;
            if end == start && !last {
                start = end + 1;
                continue;
            }
            buf[end] = 0;
            let flags = if last {
                last_flags
            } else {
                libc::O_PATH | libc::O_DIRECTORY
            };
            match sys::open_in_root(rootfd, buf.as_ptr().cast(), flags) {
                Ok(fd) if last => return Ok(fd),
                Ok(fd) => sys::close(fd),
                Err(libc::ENOENT) => {
                    let parent = if start == 0 {
                        rootfd
                    } else {
                        buf[start - 1] = 0;
                        let p = sys::open_in_root(
                            rootfd,
                            buf.as_ptr().cast(),
                            libc::O_PATH | libc::O_DIRECTORY,
                        );
                        buf[start - 1] = b'/';
                        p?
                    };
                    let name = buf[start..].as_ptr().cast();
                    // SAFETY: readlinkat into our buffer, at most its length minus one.
                    let n =
                        unsafe { libc::readlinkat(parent, name, link.as_mut_ptr().cast(), MAX) };
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
            sys::set_mount_attr(
                t,
                sys::MOUNT_ATTR_RDONLY | nosuid_nodev | sys::MOUNT_ATTR_NOEXEC,
                false,
            )?;
            // SAFETY: openat of a static name below our own proc mount.
            let at = rc(unsafe {
                libc::openat(
                    proc_,
                    name.as_ptr(),
                    libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                )
            })?;
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

    let dev = new_fs(
        c"tmpfs",
        &[(c"mode", c"0755".as_ptr()), (c"size", c"1m".as_ptr())],
        sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOEXEC,
    )
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
        let at = rc(unsafe {
            libc::openat(
                dev,
                name.as_ptr(),
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        })?;
        sys::attach(src, at)?;
        sys::close(at);
        sys::close(src);
    }
    let mount_dir = |name: &std::ffi::CStr, fd: c_int| -> SysResult<()> {
        sys::mkdir_at(dev, name.as_ptr(), 0o755)?;
        // SAFETY: openat of a static name below our own /dev tmpfs.
        let at = rc(unsafe {
            libc::openat(
                dev,
                name.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        })?;
        let r = sys::attach(fd, at);
        sys::close(at);
        sys::close(fd);
        r
    };
    let pts_opts_root = [
        (c"newinstance", std::ptr::null()),
        (c"ptmxmode", c"0666".as_ptr()),
        (c"mode", c"0620".as_ptr()),
        (c"gid", c"5".as_ptr()),
    ];
    let opts: &[_] = if plan.devpts_gid {
        &pts_opts_root
    } else {
        &pts_opts_root[..3]
    };
    let pts = new_fs(
        c"devpts",
        opts,
        sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOEXEC,
    )?;
    mount_dir(c"pts", pts)?;
    let shm = new_fs(
        c"tmpfs",
        &[(c"mode", c"1777".as_ptr())],
        sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC,
    )?;
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
