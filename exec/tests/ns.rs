//! The ns executor's isolation and containment, on the real minbase rootfs, as root.
#![allow(unsafe_code)] // system calls to set up and check what the test needs

mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use common::{Case, minbase};
use ware_exec::{Bind, ExecutorKind, JobStatus};

const NS: ExecutorKind = ExecutorKind::Ns;

fn ok(c: &Case) {
    let o = c.run(NS);
    assert_eq!(o.status, JobStatus::Exited(0), "{o:?}");
}

/// Hostname, network (only `lo`, and up), pids (the job is pid 2 under our init).
#[test]
fn namespaces_are_the_jobs_own() {
    if !common::can_run() {
        return;
    }
    let c = Case::new(
        &minbase(),
        "hostname > /out/hostname; cat /proc/net/dev > /out/netdev; echo $$ > /out/pid; \
         ls /proc | grep -c '^[0-9]' > /out/nproc; \
         (echo > /dev/tcp/127.0.0.1/9) 2> /out/lo; true",
    );
    let mut c = c;
    c.job.argv[0] = "bash".into();
    ok(&c);
    assert_eq!(c.output("hostname"), "warejob\n");
    let ifaces: Vec<String> = c
        .output("netdev")
        .lines()
        .skip(2)
        .map(|l| l.split(':').next().unwrap().trim().to_owned())
        .collect();
    assert_eq!(ifaces, ["lo"]);
    // With lo down this would be "Network is unreachable".
    assert!(
        c.output("lo").contains("Connection refused"),
        "{}",
        c.output("lo")
    );
    assert_eq!(c.output("pid"), "2\n");
    let nproc: u32 = c.output("nproc").trim().parse().unwrap();
    assert!(nproc <= 5, "{nproc} processes visible");
}

/// network=true shares the host's network namespace.
#[test]
fn network_true_is_the_hosts() {
    if !common::can_run() {
        return;
    }
    let mut c = Case::new(&minbase(), "cat /proc/net/dev > /out/netdev");
    c.job.network = true;
    ok(&c);
    let host = std::fs::read_to_string("/proc/net/dev").unwrap();
    assert_eq!(c.output("netdev").lines().count(), host.lines().count());
}

/// The job's background processes die with it (the pid namespace's init exits).
#[test]
fn leftovers_die_with_the_job() {
    if !common::can_run() {
        return;
    }
    let marker = format!("{}.{}", 800 + std::process::id() % 100, std::process::id());
    let c = Case::new(&minbase(), &format!("(setsid sleep {marker} &); exit 3"));
    let o = c.run(NS);
    assert_eq!(o.status, JobStatus::Exited(3));
    assert_eq!(common::processes_with(&marker), Vec::<String>::new());
}

/// uid/gid 65534 inside the job; files it writes to an output are owned by it on the host.
#[test]
fn job_runs_as_nobody() {
    if !common::can_run() {
        return;
    }
    let mut c = Case::new(
        &minbase(),
        "id -u > /out/uid; id -g > /out/gid; id -G > /out/groups; grep -E '^(NoNewPrivs|CapEff)' /proc/self/status > /out/status",
    );
    c.job.uid = 65534;
    c.job.gid = 65534;
    ok(&c);
    assert_eq!(c.output("uid"), "65534\n");
    assert_eq!(c.output("gid"), "65534\n");
    assert_eq!(c.output("groups"), "65534\n");
    let st = c.output("status");
    assert!(st.contains("NoNewPrivs:\t1"), "{st}");
    assert!(st.contains("CapEff:\t0000000000000000"), "{st}");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(c.out.join("uid")).unwrap().uid(), 65534);
}

/// A root job has a bounded capability set: it cannot mount, and sees only 0,1,2 (+ the
/// descriptor `ls` opens) even though the caller holds a descriptor without close-on-exec.
#[test]
fn root_job_is_confined() {
    if !common::can_run() {
        return;
    }
    // SAFETY: plain open(2) without O_CLOEXEC; closed below.
    let leak = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) };
    assert!(leak > 2);
    let c = Case::new(
        &minbase(),
        "ls /proc/self/fd > /out/fds; (mount -t tmpfs none /mnt) 2> /out/mount; echo $? > /out/mount_rc; \
         (echo 1 > /proc/sys/vm/drop_caches) 2> /out/sysctl; \
         (ls /proc/1/root/ > /out/init_root) 2> /out/init_root_err; \
         (cat /proc/1/exe > /dev/null) 2> /out/init_exe; true",
    );
    ok(&c);
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(leak) };
    assert_eq!(
        c.output("fds").split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2", "3"]
    );
    assert_ne!(c.output("mount_rc").trim(), "0", "{}", c.output("mount"));
    assert!(
        c.output("sysctl").contains("Read-only file system"),
        "{}",
        c.output("sysctl")
    );
    assert!(
        c.output("init_root_err").contains("Permission denied"),
        "{}",
        c.output("init_root_err")
    );
    assert!(
        c.output("init_exe").contains("Permission denied"),
        "{}",
        c.output("init_exe")
    );
}

/// A root directory with planted symlinks: a read-only overlay of `planted` over the minbase
/// (nothing is ever written into the cached rootfs), unmounted on drop.
struct PlantedRoot {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl PlantedRoot {
    fn new(links: &[(&str, &str)]) -> PlantedRoot {
        let dir = tempfile::Builder::new()
            .prefix("ware-planted")
            .tempdir()
            .unwrap();
        let planted = dir.path().join("planted");
        let root = dir.path().join("root");
        std::fs::create_dir(&planted).unwrap();
        std::fs::create_dir(&root).unwrap();
        for (name, target) in links {
            std::os::unix::fs::symlink(target, planted.join(name)).unwrap();
        }
        let opts = CString::new(format!(
            "lowerdir={}:{}",
            planted.display(),
            minbase().display()
        ))
        .unwrap();
        let target = CString::new(root.as_os_str().as_bytes()).unwrap();
        // SAFETY: mount(2) with NUL-terminated strings that outlive the call.
        let r = unsafe {
            libc::mount(
                c"overlay".as_ptr(),
                target.as_ptr(),
                c"overlay".as_ptr(),
                libc::MS_RDONLY,
                opts.as_ptr().cast(),
            )
        };
        assert_eq!(
            r,
            0,
            "mount planted overlay: {}",
            std::io::Error::last_os_error()
        );
        PlantedRoot { _dir: dir, root }
    }
}

impl Drop for PlantedRoot {
    fn drop(&mut self) {
        let target = CString::new(self.root.as_os_str().as_bytes()).unwrap();
        // SAFETY: umount2 of the mount made in `new`.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Mount targets are resolved inside the new root: symlinks to host paths, absolute or via
/// `..`, land inside the job's root (on its scratch overlay), never on the host.
#[test]
fn mount_targets_stay_inside_the_root() {
    if !common::can_run() {
        return;
    }
    // Not under /tmp: the planted /tmp link points into it.
    let host = tempfile::Builder::new()
        .prefix("ware-hostside")
        .tempdir_in("/var/tmp")
        .unwrap();
    let hostside = host.path().to_str().unwrap().to_owned();
    let planted = PlantedRoot::new(&[
        ("evil-abs", &hostside),
        ("evil-rel", &format!("../../../../../../../..{hostside}")),
        ("tmp", &format!("../../../..{hostside}/tmp")),
        ("proc", &format!("{hostside}/proc")),
        ("etc-link", "/etc"),
    ]);
    let mut c = Case::new(
        &planted.root,
        "echo a > /evil-abs/sub/out/a && echo b > /evil-rel/deeper/out/b && echo t > /tmp/t && \
         stat -f -c %T /tmp/ > /out/tmpfs && ls /proc/self/fd > /out/fds && \
         ls /etc-link/out2 > /out/etc_out2",
    );
    let out2 = c.tmp.path().join("out2");
    std::fs::create_dir(&out2).unwrap();
    std::fs::write(out2.join("marker"), "m").unwrap();
    for (src, target) in [
        (c.out.clone(), "/evil-abs/sub/out"),
        (c.out.clone(), "/evil-rel/deeper/out"),
        (out2, "/etc-link/out2"),
    ] {
        c.job.mounts.push(Bind {
            source: src,
            target: target.into(),
            writable: true,
        });
    }
    ok(&c);
    assert_eq!(c.output("a"), "a\n");
    assert_eq!(c.output("b"), "b\n");
    assert_eq!(c.output("tmpfs"), "tmpfs\n");
    assert_eq!(c.output("etc_out2"), "marker\n");
    // Nothing was created on the host side of any planted link.
    let left: Vec<_> = std::fs::read_dir(host.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "created on the host: {left:?}");
    drop(planted);
}

/// The host's filesystem is out of reach: not via `..`, /proc/self/root, /proc/1/root, nor
/// the old root.
#[test]
fn host_is_invisible() {
    if !common::can_run() {
        return;
    }
    let canary_dir = tempfile::Builder::new()
        .prefix("ware-canary")
        .tempdir()
        .unwrap();
    let canary = canary_dir.path().join("canary");
    std::fs::write(&canary, "host").unwrap();
    let canary = canary.to_str().unwrap();
    let c = Case::new(
        &minbase(),
        &format!(
            "n=0; for p in {canary} /../../..{canary} /proc/self/root{canary} /proc/1/root{canary} \
             /proc/self/cwd/../..{canary}; do test -e $p && echo $p >> /out/seen; n=$((n+1)); done; \
             echo $n > /out/tried; grep -c ' / / ' /proc/self/mountinfo > /out/roots; \
             cat /proc/self/mountinfo > /out/mountinfo",
        ),
    );
    ok(&c);
    assert_eq!(c.output("tried"), "5\n");
    assert!(!c.out.join("seen").exists(), "seen: {}", c.output("seen"));
    // One root mount (the overlay); the host's old root is detached, not stacked.
    assert_eq!(c.output("roots"), "1\n", "{}", c.output("mountinfo"));
}

/// A missing cwd is an error naming it; an unknown program is an Exec error.
#[test]
fn setup_errors_name_the_culprit() {
    if !common::can_run() {
        return;
    }
    let mut c = Case::new(&minbase(), "true");
    c.job.cwd = "/no/such/dir".into();
    let e = ware_exec::run(NS, &c.job).unwrap_err().to_string();
    assert!(e.contains("/no/such/dir"), "{e}");
    let mut c = Case::new(&minbase(), "true");
    c.job.argv = vec!["no-such-program".into()];
    let e = ware_exec::run(NS, &c.job).unwrap_err();
    assert!(matches!(e, ware_exec::ExecError::Exec { .. }), "{e}");
    let mut c = Case::new(&minbase(), "true");
    c.job.mounts.push(Bind {
        source: "/nonexistent-src".into(),
        target: "/x".into(),
        writable: false,
    });
    let e = ware_exec::run(NS, &c.job).unwrap_err().to_string();
    assert!(e.contains("/nonexistent-src"), "{e}");
}

/// Memory/pids limits are enforced through cgroup v2, or the outcome says they are not.
#[test]
fn limits_are_enforced_or_noticed() {
    if !common::can_run() {
        return;
    }
    let mut c = Case::new(&minbase(), "cat /proc/self/cgroup > /out/cgroup");
    c.job.limits.memory_bytes = Some(256 << 20);
    c.job.limits.pids = Some(64);
    let o = c.run(NS);
    assert_eq!(o.status, JobStatus::Exited(0));
    let cg = c.output("cgroup");
    for ctl in ["memory", "pids"] {
        let noticed = o
            .notices
            .iter()
            .any(|n| n.starts_with(&format!("{ctl} limit not enforced")));
        let enforced = cg
            .lines()
            .any(|l| l.starts_with("0::") && l.contains("ware-job-"));
        assert!(
            noticed ^ enforced,
            "{ctl}: notices {:?}, cgroup {cg}",
            o.notices
        );
    }
}

/// uid or gid 4294967295 is `(uid_t)-1`, which setresuid/setresgid read as "leave unchanged":
/// asked for, the job would keep the caller's root. The executor checks the IDs it got after
/// switching and fails before the job starts. (Formulas refuse the number first; this holds
/// for any other caller of the library.)
#[test]
fn an_id_the_kernel_reads_as_unchanged_never_runs_the_job_as_root() {
    if !common::can_run() {
        return;
    }
    for kind in [ExecutorKind::Ns, ExecutorKind::Chroot] {
        for (uid, gid) in [(u32::MAX, 65534), (65534, u32::MAX)] {
            let mut c = Case::new(&minbase(), "id > /out/id");
            c.job.uid = uid;
            c.job.gid = gid;
            let e = ware_exec::run(kind, &c.job).unwrap_err().to_string();
            // setgroups may refuse the number itself (EINVAL); either way, the job never starts.
            assert!(
                e.contains("checking the job's real, effective and saved ids")
                    || e.contains("setting user and group ids"),
                "{kind:?}: {e}"
            );
            assert!(
                !c.out.join("id").exists(),
                "{kind:?}: the job ran: {}",
                c.output("id")
            );
        }
    }
}

/// A wall limit past what the clock can add is no panic: the job runs to its end.
#[test]
fn a_huge_wall_limit_is_no_panic() {
    if !common::can_run() {
        return;
    }
    for secs in [u64::MAX, i64::MAX as u64] {
        let c =
            Case::new(&minbase(), "echo ran > /out/r").wall(std::time::Duration::from_secs(secs));
        ok(&c);
        assert_eq!(c.output("r"), "ran\n");
    }
}
