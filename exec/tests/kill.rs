//! `kill_running_jobs` kills every job of the process, so it has a test binary of its own.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Case, MINBASE};
use ware_exec::{ExecutorKind, JobStatus};

/// `kill_running_jobs` (for a caller's SIGINT/SIGTERM handler) ends running jobs, whole.
fn kill_running_jobs_ends_them(kind: ExecutorKind) {
    let marker = format!("{}.{}", 600 + kind as u32, std::process::id());
    let c = Case::new(
        Path::new(MINBASE),
        &format!("(setsid sleep {marker} &); echo up > /out/up; sleep {marker}"),
    );
    let up = c.out.join("up");
    let killer = std::thread::spawn(move || {
        let t = Instant::now();
        while !up.exists() && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        ware_exec::kill_running_jobs();
    });
    let o = c.run(kind);
    killer.join().unwrap();
    assert!(matches!(o.status, JobStatus::Signaled(_)), "{o:?}");
    assert_eq!(common::processes_with(&marker), Vec::<String>::new());
}

#[test]
fn kill_running_jobs_ends_every_executors_jobs() {
    if !common::can_run() {
        return;
    }
    for kind in [ExecutorKind::Ns, ExecutorKind::Chroot] {
        kill_running_jobs_ends_them(kind);
    }
    if common::have_runc() {
        kill_running_jobs_ends_them(ExecutorKind::Runc);
    }
}
