//! The ns executor called by an unprivileged user (uid 65534): a user namespace maps the
//! caller to the job's uid, and the overlay, /proc, /dev and binds still work.
#![allow(unsafe_code)] // system calls to set up and check what the test needs

mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Case, minbase};
use ware_exec::{ExecutorKind, JobStatus};

const CHILD_ENV: &str = "WARE_EXEC_ROOTLESS_DIR";

/// The minbase rootfs bind-mounted where `nobody` can reach it (/root is 0700).
struct ReachableRoot {
    _dir: tempfile::TempDir,
    lower: PathBuf,
}

impl ReachableRoot {
    fn new() -> ReachableRoot {
        let dir = tempfile::Builder::new()
            .prefix("ware-rootless")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let lower = dir.path().join("lower");
        std::fs::create_dir(&lower).unwrap();
        let src = CString::new(minbase().as_os_str().as_bytes()).unwrap();
        let dst = CString::new(lower.as_os_str().as_bytes()).unwrap();
        // SAFETY: mount(2) with NUL-terminated strings that outlive the call.
        let r = unsafe {
            libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        assert_eq!(
            r,
            0,
            "bind {}: {}",
            minbase().display(),
            std::io::Error::last_os_error()
        );
        ReachableRoot { _dir: dir, lower }
    }
}

impl Drop for ReachableRoot {
    fn drop(&mut self) {
        let dst = CString::new(self.lower.as_os_str().as_bytes()).unwrap();
        // SAFETY: umount2 of the bind made in `new`.
        unsafe { libc::umount2(dst.as_ptr(), libc::MNT_DETACH) };
    }
}

#[test]
fn unprivileged_caller_runs_ns_jobs() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        return child(Path::new(&dir));
    }
    if !common::can_run() {
        return;
    }
    let root = ReachableRoot::new();
    let c = Case::new(&root.lower, "");
    std::fs::set_permissions(c.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&c.job.work, Some(65534), Some(65534)).unwrap();
    std::fs::write(
        c.tmp.path().join("lower-path"),
        root.lower.as_os_str().as_bytes(),
    )
    .unwrap();
    // The checkout (and this binary in its target/) may sit where uid 65534 cannot enter, such
    // as root's 0700 home: run a copy from the test's own reachable directory.
    let exe = c.tmp.path().join("rootless-test");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(&exe)
        .args([
            "--exact",
            "unprivileged_caller_runs_ns_jobs",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, c.tmp.path())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    assert!(log.contains("rootless outcome"), "{log}");
    assert_eq!(c.output("uid"), "0\n");
    assert!(c.output("dpkg").lines().any(|l| l.starts_with("ii  dpkg ")));
    assert_eq!(c.output("tmp"), "scratch\n");
    assert_eq!(c.output("hostname"), "warejob\n");
    assert_eq!(
        c.output("netdev").lines().count(),
        3,
        "{}",
        c.output("netdev")
    );
    // The output file belongs to the unprivileged caller on the host.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(c.out.join("uid")).unwrap().uid(), 65534);
}

/// Runs in the child process, as uid 65534.
fn child(dir: &Path) {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 65534);
    let lower = PathBuf::from(std::ffi::OsStr::from_bytes(
        &std::fs::read(dir.join("lower-path")).unwrap(),
    ));
    let mut c = Case::new(
        &lower,
        "id -u > /out/uid; dpkg -l > /out/dpkg; echo scratch > /tmp/x && cat /tmp/x > /out/tmp; \
         hostname > /out/hostname; cat /proc/net/dev > /out/netdev",
    );
    c.job.work = dir.join("work");
    c.job.mounts[0].source = dir.join("out");
    let o = ware_exec::run(ExecutorKind::Ns, &c.job).unwrap_or_else(|e| panic!("{e}"));
    println!("rootless outcome: {o:?}");
    assert_eq!(o.status, JobStatus::Exited(0), "{o:?}");
}
