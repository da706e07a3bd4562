//! Mounting without root, through Debian's setuid `fusermount3` (as libfuse does): /dev/fuse
//! is mode 0600 here and mount(2) needs CAP_SYS_ADMIN, so an ordinary user asks the helper to
//! open the device, mount it, and pass the open descriptor back over a socket
//! (`_FUSE_COMMFD`). Unmounting goes through it too (`fusermount3 -u`).
//!
//! fuser 0.18 only falls back to the helper when mount(2) says EPERM, not when /dev/fuse
//! cannot be opened, hence this module.

use std::io::{self, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SocketFlags, SocketType,
};

/// The helper, from $FUSERMOUNT_PATH or the PATH.
fn helper() -> String {
    std::env::var("FUSERMOUNT_PATH").unwrap_or_else(|_| "fusermount3".into())
}

/// True when this process must mount through the helper: it is not root.
pub(crate) fn needed() -> bool {
    !rustix::process::geteuid().is_root()
}

/// Mounts `/dev/fuse` at `mountpoint` with `options` (comma-separated, as mount(8) takes
/// them) and returns the open device.
pub(crate) fn mount(mountpoint: &Path, options: &str) -> io::Result<OwnedFd> {
    // Our end closes on exec; the helper's end must survive it. Whoever else this process
    // starts meanwhile may inherit the helper's end too, so the answer is read only once
    // the helper has exited (it sends the descriptor, then exits), never by waiting on EOF.
    let (ours, theirs) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::empty(),
        None,
    )?;
    rustix::io::fcntl_setfd(&ours, rustix::io::FdFlags::CLOEXEC)?;
    let out = Command::new(helper())
        .arg("-o")
        .arg(options)
        .arg("--")
        .arg(mountpoint)
        .env("_FUSE_COMMFD", theirs.as_raw_fd().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", helper())))?
        .wait_with_output()?;
    drop(theirs);
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{} failed ({}): {}",
            helper(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut byte = [0u8; 1];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    rustix::net::recvmsg(
        &ours,
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fd = None;
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = m {
            for f in fds {
                fd.get_or_insert(f);
            }
        }
    }
    fd.ok_or_else(|| io::Error::other(format!("{} sent no descriptor", helper())))
}

/// Unmounts through the helper (`-z`: lazily). A busy mount fails with EBUSY.
pub(crate) fn unmount(mountpoint: &Path, lazy: bool) -> io::Result<()> {
    let mut cmd = Command::new(helper());
    cmd.arg("-u");
    if lazy {
        cmd.arg("-z");
    }
    let out = cmd
        .arg("--")
        .arg(mountpoint)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    if out.status.success() {
        return Ok(());
    }
    let msg = String::from_utf8_lossy(&out.stderr);
    if msg.contains("busy") {
        return Err(io::Error::from_raw_os_error(
            rustix::io::Errno::BUSY.raw_os_error(),
        ));
    }
    if msg.contains("not found in") || msg.contains("Invalid argument") {
        return Err(io::Error::from_raw_os_error(
            rustix::io::Errno::INVAL.raw_os_error(),
        ));
    }
    Err(io::Error::other(format!(
        "{} -u failed: {}",
        helper(),
        msg.trim()
    )))
}
