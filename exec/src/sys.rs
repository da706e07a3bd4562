//! Thin wrappers over the system calls the sandboxes need, usable between `fork` and `exec`:
//! none of them allocates, takes a lock or touches anything but its arguments. Errors are the
//! raw errno, so a child can report them through a pipe without formatting anything.

use libc::{c_char, c_int, c_long, c_uint, c_void};

/// A raw errno value.
pub(crate) type Errno = i32;
/// What every wrapper returns.
pub(crate) type SysResult<T> = Result<T, Errno>;

// The mount API and openat2 constants are kernel ABI; spelled out here so the crate does not
// depend on which of them a given libc release exports.
pub(crate) const OPEN_TREE_CLONE: c_uint = 1;
pub(crate) const OPEN_TREE_CLOEXEC: c_uint = libc::O_CLOEXEC as c_uint;
pub(crate) const AT_RECURSIVE: c_uint = 0x8000;
pub(crate) const MOVE_MOUNT_F_EMPTY_PATH: c_uint = 0x4;
pub(crate) const MOVE_MOUNT_T_EMPTY_PATH: c_uint = 0x40;
pub(crate) const FSOPEN_CLOEXEC: c_uint = 1;
pub(crate) const FSMOUNT_CLOEXEC: c_uint = 1;
pub(crate) const FSCONFIG_SET_FLAG: c_uint = 0;
pub(crate) const FSCONFIG_SET_STRING: c_uint = 1;
pub(crate) const FSCONFIG_CMD_CREATE: c_uint = 6;
pub(crate) const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub(crate) const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub(crate) const MOUNT_ATTR_NODEV: u64 = 0x4;
pub(crate) const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub(crate) const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub(crate) const RESOLVE_IN_ROOT: u64 = 0x10;
pub(crate) const CLOSE_RANGE_CLOEXEC: c_uint = 1 << 2;

const SYS_OPEN_TREE: c_long = 428;
const SYS_MOVE_MOUNT: c_long = 429;
const SYS_FSOPEN: c_long = 430;
const SYS_FSCONFIG: c_long = 431;
const SYS_FSMOUNT: c_long = 432;
const SYS_OPENAT2: c_long = 437;
const SYS_MOUNT_SETATTR: c_long = 442;
const SYS_STATMOUNT: c_long = 457;
const STATMOUNT_MNT_BASIC: u64 = 0x2;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub(crate) fn errno() -> Errno {
    // SAFETY: __errno_location returns this thread's errno slot; reading it is always valid.
    unsafe { *libc::__errno_location() }
}

/// A raw syscall's return value as a result: negative is the errno.
pub(crate) fn check(r: c_long) -> SysResult<c_int> {
    if r < 0 { Err(errno()) } else { Ok(r as c_int) }
}

/// A libc return value as a result: negative is the errno.
pub(crate) fn rc(r: c_int) -> SysResult<c_int> {
    if r < 0 { Err(errno()) } else { Ok(r) }
}

/// openat2(2): `path` resolved below `dirfd` as if `dirfd` were `/` (RESOLVE_IN_ROOT), with no
/// magic links (`/proc/self/root` and friends): nothing can lead outside `dirfd`.
pub(crate) fn open_in_root(dirfd: c_int, path: *const c_char, flags: c_int) -> SysResult<c_int> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    // A scoped lookup fails with EAGAIN when any mount or rename happened on the system during
    // the walk (the kernel cannot then prove it stayed inside): retry, boundedly.
    let mut tries = 0;
    loop {
        // SAFETY: `path` is NUL-terminated (callers pass CString/NUL-terminated buffers) and
        // `how` lives across the call; the kernel copies both.
        let r = check(unsafe {
            libc::syscall(
                SYS_OPENAT2,
                dirfd,
                path,
                &how as *const OpenHow,
                size_of::<OpenHow>(),
            )
        });
        match r {
            Err(libc::EAGAIN) | Err(libc::EINTR) if tries < 10_000 => tries += 1,
            r => return r,
        }
    }
}

/// open_tree(2) with OPEN_TREE_CLONE: a detached copy of the mount tree at `path`.
pub(crate) fn clone_tree(dirfd: c_int, path: *const c_char, recursive: bool) -> SysResult<c_int> {
    let mut flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: `path` is NUL-terminated; open_tree only reads it.
    check(unsafe { libc::syscall(SYS_OPEN_TREE, dirfd, path, flags) })
}

/// mount_setattr(2) on a mount fd (AT_EMPTY_PATH), optionally on every mount below it.
pub(crate) fn set_mount_attr(mntfd: c_int, set: u64, recursive: bool) -> SysResult<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH as c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: the empty path and `attr` are valid for the call; the kernel copies them.
    check(unsafe {
        libc::syscall(
            SYS_MOUNT_SETATTR,
            mntfd,
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// mount_setattr(2) changing only the propagation of a mount fd (and every mount below it):
/// `MS_PRIVATE`, `MS_SLAVE`, ….
pub(crate) fn set_propagation(mntfd: c_int, propagation: u64) -> SysResult<()> {
    let attr = MountAttr {
        attr_set: 0,
        attr_clr: 0,
        propagation,
        userns_fd: 0,
    };
    // SAFETY: the empty path and `attr` are valid for the call; the kernel copies them.
    check(unsafe {
        libc::syscall(
            SYS_MOUNT_SETATTR,
            mntfd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as c_uint | AT_RECURSIVE,
            &attr as *const MountAttr,
            size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// statx(2) of `/` with `mask`. Host side only.
fn statx_root(mask: c_uint) -> SysResult<libc::statx> {
    // SAFETY: an all-zero statx is a valid value; the kernel fills it.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a static path and a buffer we own.
    rc(unsafe { libc::statx(libc::AT_FDCWD, c"/".as_ptr(), 0, mask, &mut st) })?;
    Ok(st)
}

/// Whether `/` is the root of a mount (false inside a chroot to a plain directory). Host side.
pub(crate) fn root_is_mount_root() -> SysResult<bool> {
    let st = statx_root(0)?;
    let bit = libc::STATX_ATTR_MOUNT_ROOT as u64;
    if st.stx_attributes_mask & bit == 0 {
        return Err(libc::ENOTSUP);
    }
    Ok(st.stx_attributes & bit != 0)
}

#[repr(C)]
struct MntIdReq {
    size: u32,
    spare: u32,
    mnt_id: u64,
    param: u64,
}

/// The propagation flags (`MS_SHARED`, `MS_SLAVE`, …) of the mount holding `/`, by statmount(2)
/// (Linux 6.8), which also answers for a mount a chroot hides. Host side.
pub(crate) fn root_mount_propagation() -> SysResult<u64> {
    let st = statx_root(libc::STATX_MNT_ID_UNIQUE)?;
    if st.stx_mask & libc::STATX_MNT_ID_UNIQUE == 0 {
        return Err(libc::ENOTSUP);
    }
    let req = MntIdReq {
        size: size_of::<MntIdReq>() as u32,
        spare: 0,
        mnt_id: st.stx_mnt_id,
        param: STATMOUNT_MNT_BASIC,
    };
    // struct statmount: `mask` at byte 8, `mnt_propagation` at byte 72 (kernel ABI).
    let mut buf = [0u64; 64];
    // SAFETY: `req` and `buf` live across the call; the kernel writes at most `size_of_val(&buf)`.
    check(unsafe {
        libc::syscall(
            SYS_STATMOUNT,
            &req as *const MntIdReq,
            buf.as_mut_ptr(),
            size_of_val(&buf),
            0,
        )
    })?;
    if buf[1] & STATMOUNT_MNT_BASIC == 0 {
        return Err(libc::ENOTSUP);
    }
    Ok(buf[9])
}

/// move_mount(2): attach the detached mount `mntfd` on the directory (or file) `targetfd`.
pub(crate) fn attach(mntfd: c_int, targetfd: c_int) -> SysResult<()> {
    // SAFETY: both paths are empty C strings; the descriptors are the caller's.
    check(unsafe {
        libc::syscall(
            SYS_MOVE_MOUNT,
            mntfd,
            c"".as_ptr(),
            targetfd,
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })
    .map(drop)
}

/// fsopen(2).
pub(crate) fn fs_open(fstype: *const c_char) -> SysResult<c_int> {
    // SAFETY: `fstype` is NUL-terminated.
    check(unsafe { libc::syscall(SYS_FSOPEN, fstype, FSOPEN_CLOEXEC) })
}

/// fsconfig(2) FSCONFIG_SET_STRING (or SET_FLAG when `value` is null).
pub(crate) fn fs_set(fsfd: c_int, key: *const c_char, value: *const c_char) -> SysResult<()> {
    let cmd = if value.is_null() {
        FSCONFIG_SET_FLAG
    } else {
        FSCONFIG_SET_STRING
    };
    // SAFETY: key and value (when non-null) are NUL-terminated.
    check(unsafe { libc::syscall(SYS_FSCONFIG, fsfd, cmd, key, value, 0) }).map(drop)
}

/// fsconfig(FSCONFIG_CMD_CREATE) then fsmount(2): a detached mount of the configured fs.
pub(crate) fn fs_mount(fsfd: c_int, attrs: u64) -> SysResult<c_int> {
    let null: *const c_void = std::ptr::null();
    // SAFETY: CMD_CREATE takes no key or value.
    check(unsafe { libc::syscall(SYS_FSCONFIG, fsfd, FSCONFIG_CMD_CREATE, null, null, 0) })?;
    // SAFETY: fsmount only takes integers.
    check(unsafe { libc::syscall(SYS_FSMOUNT, fsfd, FSMOUNT_CLOEXEC, attrs as c_uint) })
}

/// pivot_root(2).
pub(crate) fn pivot_root(new: *const c_char, old: *const c_char) -> SysResult<()> {
    // SAFETY: both paths are NUL-terminated.
    check(unsafe { libc::syscall(libc::SYS_pivot_root, new, old) }).map(drop)
}

/// close_range(2) with CLOSE_RANGE_CLOEXEC: every descriptor from `first` up is closed at exec.
pub(crate) fn cloexec_from(first: c_uint) -> SysResult<()> {
    // SAFETY: marks descriptors close-on-exec; no memory is touched.
    check(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    })
    .map(drop)
}

/// close(2), errors ignored (the descriptor is gone either way).
pub(crate) fn close(fd: c_int) {
    // SAFETY: closing a descriptor this code opened and no Rust object owns.
    unsafe { libc::close(fd) };
}

/// mkdirat(2); an existing entry is not an error (the caller opens it next and finds out).
pub(crate) fn mkdir_at(dirfd: c_int, name: *const c_char, mode: libc::mode_t) -> SysResult<()> {
    // SAFETY: `name` is NUL-terminated.
    match rc(unsafe { libc::mkdirat(dirfd, name, mode) }) {
        Ok(_) | Err(libc::EEXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates an empty regular file to mount a file on; an existing entry is not an error.
pub(crate) fn mkfile_at(dirfd: c_int, name: *const c_char) -> SysResult<()> {
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `name` is NUL-terminated.
    match rc(unsafe { libc::openat(dirfd, name, flags, 0o644) }) {
        Ok(fd) => {
            close(fd);
            Ok(())
        }
        Err(libc::EEXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes all of `buf` to `fd` (short writes retried).
pub(crate) fn write_all(fd: c_int, mut buf: &[u8]) -> SysResult<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is a valid slice for its length.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = errno();
            if e == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// Opens `path` for writing and writes `data` to it (procfs and cgroupfs files).
pub(crate) fn write_file(path: *const c_char, data: &[u8]) -> SysResult<()> {
    // SAFETY: `path` is NUL-terminated.
    let fd = rc(unsafe { libc::open(path, libc::O_WRONLY | libc::O_CLOEXEC) })?;
    let r = write_all(fd, data);
    close(fd);
    r
}
