//! ware-exec: what a process needs to run jobs safely. Today: descriptor hygiene for the
//! daemon; the executors issue adds namespaces, bind and overlay mounts, `pivot_root` and runc
//! bundles here.
//!
//! Invariants:
//! - This crate is the owner of `unsafe` for processes and namespaces; each block says why it
//!   is sound (`// SAFETY:`), and no other internal crate depends on it but the root package.
//! - It depends on no internal crate.
#![deny(missing_docs)]

use std::io;

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
            assert_eq!(
                unsafe { libc::fcntl(fd, libc::F_GETFD) },
                -1,
                "fd {fd} still open"
            );
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
