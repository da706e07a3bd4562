//! What every executor (ns, chroot, runc) must do, on the real minbase rootfs, as root.

mod common;

use std::time::{Duration, Instant};

use common::{Case, minbase};
use ware_exec::{Bind, ExecutorKind, JobStatus};

fn ready(kind: ExecutorKind) -> bool {
    common::can_run() && (kind != ExecutorKind::Runc || common::have_runc())
}

/// `dpkg -l` runs on the root and its output lands in the writable bind, on the host.
fn dpkg_lists_packages(kind: ExecutorKind) {
    if !ready(kind) {
        return;
    }
    let c = Case::new(
        &minbase(),
        "dpkg -l > /out/dpkg.txt && echo done > /out/flag",
    );
    let o = c.run(kind);
    assert_eq!(o.status, JobStatus::Exited(0), "{o:?}");
    let list = c.output("dpkg.txt");
    assert!(list.lines().any(|l| l.starts_with("ii  dpkg ")), "{list}");
    assert!(
        list.lines().any(|l| l.starts_with("ii  base-files ")),
        "{list}"
    );
    assert_eq!(c.output("flag"), "done\n");
    assert!(o.started <= o.ended);
}

/// Exit codes and signals come back as they were.
fn status_comes_back(kind: ExecutorKind) {
    if !ready(kind) {
        return;
    }
    let o = Case::new(&minbase(), "exit 7").run(kind);
    assert_eq!(o.status, JobStatus::Exited(7));
    assert_eq!(o.status.exit_code(), 7);
    // Under runc the job is the container's pid 1, which cannot be killed by a signal from
    // inside its own pid namespace: there the shell's child is killed and the runtime's
    // 128+9 comes back as Signaled(9).
    let script = if kind == ExecutorKind::Runc {
        "sh -c 'kill -9 $$'"
    } else {
        "kill -9 $$"
    };
    let o = Case::new(&minbase(), script).run(kind);
    assert_eq!(o.status, JobStatus::Signaled(9));
    assert_eq!(o.status.exit_code(), 137);
}

/// Writes to `/` land in the scratch overlay (the job sees them) and never in the lower dir.
fn root_writes_are_discarded(kind: ExecutorKind) {
    if !ready(kind) {
        return;
    }
    let probe = format!("ware-probe-{kind}-{}", std::process::id());
    let c = Case::new(
        &minbase(),
        &format!(
            "echo scratch > /etc/{probe} && cat /etc/{probe} > /out/seen && rm /usr/bin/dpkg && test ! -e /usr/bin/dpkg && echo gone > /out/rm"
        ),
    );
    let o = c.run(kind);
    assert_eq!(o.status, JobStatus::Exited(0));
    assert_eq!(c.output("seen"), "scratch\n");
    assert_eq!(c.output("rm"), "gone\n");
    assert!(!&minbase().join("etc").join(&probe).exists());
    assert!(&minbase().join("usr/bin/dpkg").exists());
}

/// A read-only bind refuses writes with EROFS, and its files are readable.
fn readonly_bind_is_erofs(kind: ExecutorKind) {
    if !ready(kind) {
        return;
    }
    let mut c = Case::new(
        &minbase(),
        "cat /in/data > /out/read; (echo x > /in/new) 2> /out/err; echo $? > /out/rc; (echo y >> /in/data) 2>> /out/err; true",
    );
    let input = c.tmp.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("data"), "input\n").unwrap();
    c.job.mounts.push(Bind {
        source: input.clone(),
        target: "/in".into(),
        writable: false,
    });
    let o = c.run(kind);
    assert_eq!(o.status, JobStatus::Exited(0));
    assert_eq!(c.output("read"), "input\n");
    assert_ne!(c.output("rc").trim(), "0");
    let err = c.output("err");
    assert_eq!(err.matches("Read-only file system").count(), 2, "{err}");
    assert!(!input.join("new").exists());
    assert_eq!(
        std::fs::read_to_string(input.join("data")).unwrap(),
        "input\n"
    );
}

/// The wall limit kills the job and everything it started (also what escaped with setsid), on
/// time.
fn wall_limit_kills_everything(kind: ExecutorKind) {
    if !ready(kind) {
        return;
    }
    let marker = format!("{}.{}", 700 + kind as u32, std::process::id());
    let c = Case::new(
        &minbase(),
        &format!("sleep {marker} & (setsid sleep {marker} &) ; sleep {marker}"),
    )
    .wall(Duration::from_millis(700));
    let t = Instant::now();
    let o = c.run(kind);
    let took = t.elapsed();
    assert_eq!(o.status, JobStatus::TimedOut);
    assert_eq!(o.status.exit_code(), 124);
    assert!(took < Duration::from_millis(1700), "took {took:?}");
    assert_eq!(common::processes_with(&marker), Vec::<String>::new());
}

macro_rules! for_each_executor {
    ($($name:ident),*) => {
        mod ns { $( #[test] fn $name() { super::$name(ware_exec::ExecutorKind::Ns) } )* }
        mod chroot { $( #[test] fn $name() { super::$name(ware_exec::ExecutorKind::Chroot) } )* }
        mod runc { $( #[test] fn $name() { super::$name(ware_exec::ExecutorKind::Runc) } )* }
    };
}

for_each_executor!(
    dpkg_lists_packages,
    status_comes_back,
    root_writes_are_discarded,
    readonly_bind_is_erofs,
    wall_limit_kills_everything
);
