//! `kill_running_jobs` kills every job of the process, so it has a test binary of its own.

mod common;

use std::time::{Duration, Instant};

use common::{Case, minbase};
use ware_exec::{ExecutorKind, JobStatus};

/// `kill_running_jobs` (for a caller's SIGINT/SIGTERM handler) ends running jobs, whole.
fn kill_running_jobs_ends_them(kind: ExecutorKind) {
    let marker = format!("{}.{}", 600 + kind as u32, std::process::id());
    let c = Case::new(
        &minbase(),
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

const CHILD_ENV: &str = "WARE_EXEC_DYING_CALLER";

/// When the caller dies (kill -9), its jobs die with it, whole: PR_SET_PDEATHSIG on the init.
#[test]
fn jobs_die_with_their_caller() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        // The doomed caller: run a job that never ends.
        let (kind, marker) = spec.split_once(' ').unwrap();
        let c = Case::new(
            &minbase(),
            &format!("(setsid sleep {marker} &); sleep {marker}"),
        );
        let _ = ware_exec::run(kind.parse().unwrap(), &c.job);
        return;
    }
    if !common::can_run() {
        return;
    }
    let mut kinds = vec![ExecutorKind::Ns, ExecutorKind::Chroot];
    if common::have_runc() {
        kinds.push(ExecutorKind::Runc);
    }
    for kind in kinds {
        let marker = format!("{}.{}", 500 + kind as u32, std::process::id());
        // The caller dies before it can remove its case's directory: it makes it in ours.
        let scratch = ware_test_kit::tempdir("ware-exec-caller");
        let mut caller = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "jobs_die_with_their_caller", "--test-threads=1"])
            .env(CHILD_ENV, format!("{kind} {marker}"))
            .env("WARE_TEST_TMP", scratch.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while common::processes_with(&format!("sleep {marker}")).len() < 2 {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{kind}: job did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        caller.kill().unwrap();
        caller.wait().unwrap();
        let t = Instant::now();
        while !common::processes_with(&format!("sleep {marker}")).is_empty() {
            assert!(
                t.elapsed() < Duration::from_secs(3),
                "{kind}: left behind: {:?}",
                common::processes_with(&marker)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
