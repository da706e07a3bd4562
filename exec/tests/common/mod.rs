//! Shared helpers: skip rules, a job on the minbase rootfs, output directories.
#![allow(dead_code)]

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ware_exec::{Bind, ExecutorKind, Job, Limits, Outcome};

#[allow(unused_imports)]
pub use ware_test_kit::processes_with;

/// The small benchmark rootfs (debootstrap minbase) the jobs run on.
pub fn minbase() -> PathBuf {
    static ROOT: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| ware_test_kit::rootfs("small"))
        .clone()
        .expect("can_run() first")
}

/// True if the test can run (root and the minbase rootfs); skips by the kit's rule otherwise.
pub fn can_run() -> bool {
    ware_test_kit::require(ware_test_kit::is_root(), "the executor tests need root")
        && ware_test_kit::rootfs("small").is_some()
}

/// True if an OCI runtime is installed; skips by the kit's rule otherwise.
pub fn have_runc() -> bool {
    ware_test_kit::require(
        Path::new("/usr/bin/runc").exists() || Path::new("/usr/bin/crun").exists(),
        "neither runc nor crun installed",
    )
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
        let tmp = ware_test_kit::tempdir("ware-exec-test");
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
