//! Shared helpers: skip rules, a job on the minbase rootfs, output directories.
#![allow(dead_code)]
#![allow(unsafe_code)] // system calls to set up and check what the test needs

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ware_exec::{Bind, ExecutorKind, Job, Limits, Outcome};

#[path = "../../../tests/common/procs.rs"]
mod procs;
#[allow(unused_imports)]
pub use procs::processes_with;

pub const MINBASE: &str = "/root/.cache/warefs-build/rootfs-small";

fn skip(reason: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("cannot run under CI=true: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
    false
}

/// True if the test can run (root and the minbase rootfs); prints why not otherwise.
pub fn can_run() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return skip("the executor tests need root");
    }
    if !Path::new(MINBASE).join("usr/bin/dpkg").exists() {
        return skip(&format!("{MINBASE} missing: run scripts/rootfs small"));
    }
    true
}

/// True if an OCI runtime is installed.
pub fn have_runc() -> bool {
    if Path::new("/usr/bin/runc").exists() || Path::new("/usr/bin/crun").exists() {
        return true;
    }
    skip("neither runc nor crun installed")
}

/// A test case's scratch: the work dir, an output dir bound at /out, and the job.
pub struct Case {
    pub tmp: tempfile::TempDir,
    pub out: PathBuf,
    pub job: Job,
}

impl Case {
    /// `sh -c script` on `root` with /out bound writable.
    pub fn new(root: &Path, script: &str) -> Case {
        let tmp = tempfile::Builder::new()
            .prefix("ware-exec-test")
            .tempdir()
            .unwrap();
        let out = tmp.path().join("out");
        let work = tmp.path().join("work");
        std::fs::create_dir(&out).unwrap();
        std::fs::create_dir(&work).unwrap();
        std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
        let job = Job {
            root: root.to_path_buf(),
            mounts: vec![Bind {
                source: out.clone(),
                target: "/out".into(),
                writable: true,
            }],
            argv: ["sh", "-c", script].iter().map(OsString::from).collect(),
            env: vec![
                ("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into()),
                ("HOME".into(), "/root".into()),
                ("LC_ALL".into(), "C".into()),
            ],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            hostname: "warejob".into(),
            network: false,
            limits: Limits::default(),
            work,
        };
        Case { tmp, out, job }
    }

    pub fn run(&self, kind: ExecutorKind) -> Outcome {
        match ware_exec::run(kind, &self.job) {
            Ok(o) => o,
            Err(e) => panic!("{kind}: {e}"),
        }
    }

    pub fn output(&self, name: &str) -> String {
        std::fs::read_to_string(self.out.join(name))
            .unwrap_or_else(|e| panic!("output {name}: {e}"))
    }

    pub fn wall(mut self, d: Duration) -> Case {
        self.job.limits.wall = Some(d);
        self
    }
}
