//! End-to-end tests of `ware run`: jobs on a lazily mounted Debian rootfs, through the real
//! binary, its daemon, real FUSE mounts and real namespaces (and runc), with outputs packed
//! into wares and run records kept.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// The small rootfs packed into a fresh store, or `None` (skipped) where that cannot be done.
fn debian() -> Option<(Ware, String, PathBuf)> {
    if !can_mount() {
        return None;
    }
    let rootfs = rootfs("small")?;
    let w = Ware::new();
    let id = w.pack(&rootfs);
    Some((w, id, rootfs))
}

fn write_formula(w: &Ware, name: &str, f: &Value) -> PathBuf {
    let p = w.path(name);
    std::fs::write(&p, serde_json::to_vec_pretty(f).unwrap()).unwrap();
    p
}

/// `ware run` with extra flags; stdin closed, output captured.
fn run(w: &Ware, formula: &Path, extra: &[&str]) -> Output {
    w.command()
        .arg("run")
        .args(extra)
        .arg(formula)
        .stdin(Stdio::null())
        .output()
        .expect("run ware")
}

/// `ware run --executor EXECUTOR --record RECORD FORMULA`.
fn run_by(w: &Ware, formula: &Path, executor: &str, record: &Path) -> Output {
    run(
        w,
        formula,
        &["--executor", executor, "--record", record.to_str().unwrap()],
    )
}

fn record(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("run record written"))
        .expect("run record is JSON")
}

/// Unpacks an output ware and returns where.
fn unpack(w: &Ware, id: &str, name: &str) -> PathBuf {
    let dir = w.path(name);
    w.ok(["unpack", id, dir.to_str().unwrap()]);
    dir
}

/// One formula run by each executor: the job's exit code and stdout come back, its outputs
/// unpack to what it wrote, writes to `/` stay in its scratch overlay, and every run is
/// recorded in the store.
#[test]
fn each_executor_runs_a_job_on_a_lazily_mounted_rootfs() {
    let Some((w, root, _)) = debian() else {
        return;
    };
    let script = "dpkg -l > /out/packages; echo hello > /out/hello; mkdir -p /out/d/e; \
                  echo scratch > /etc/scratch-file; cat /etc/scratch-file; \
                  echo to-stdout; echo to-stderr >&2; exit 7";
    let f = write_formula(
        &w,
        "job.json",
        &json!({
            "inputs": {"/": root},
            "action": {"argv": ["/bin/sh", "-c", script], "env": {"LANG": "C"}},
            "outputs": {"/out": {"warehouse": format!("file://{}", w.path("out-warehouse").display())}},
        }),
    );
    let mut outputs = Vec::new();
    for executor in ["ns", "chroot", "runc"] {
        let rec_path = w.path(&format!("{executor}.record.json"));
        let out = run_by(&w, &f, executor, &rec_path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(7), "{executor}: {stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("scratch\nto-stdout"),
            "{executor}: {stdout}"
        );
        assert!(stderr.contains("to-stderr"), "{executor}: {stderr}");

        let rec = record(&rec_path);
        assert_eq!(rec["exit_code"], 7, "{rec}");
        assert_eq!(rec["status"], "exited");
        assert_eq!(rec["executor"], executor);
        assert_eq!(rec["inputs"]["/"], root.as_str());
        let out_id = rec["outputs"]["/out"]
            .as_str()
            .expect("output ID")
            .to_string();
        let dir = unpack(&w, &out_id, &format!("{executor}-out"));
        let packages = std::fs::read_to_string(dir.join("packages")).unwrap();
        assert!(
            packages.lines().any(|l| l.starts_with("ii  dpkg ")),
            "{executor}: dpkg -l in the job listed:\n{packages}"
        );
        assert_eq!(std::fs::read(dir.join("hello")).unwrap(), b"hello\n");
        assert!(dir.join("d/e").is_dir());
        outputs.push(out_id);
    }
    // Each output was pushed where the formula said.
    assert!(w.path("out-warehouse/wares").join(&outputs[0]).is_file());
    // The root ware did not change: its /etc has no scratch file.
    let etc = w.ok(["ls", &format!("{root}/etc")]);
    assert!(!etc.contains("scratch-file"), "{etc}");
    // Three executors, one deterministic job: one output.
    assert!(outputs.windows(2).all(|p| p[0] == p[1]), "{outputs:?}");

    let runs: Value = serde_json::from_str(&w.ok(["--json", "runs"])).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 3, "{runs:?}");
    let formula_ids: Vec<_> = runs.iter().map(|r| r["formula"].clone()).collect();
    assert!(formula_ids.iter().all(|f| *f == formula_ids[0]));

    // --repeat runs it again on fresh scratch and checks the outputs agree.
    let out = w
        .command()
        .args(["--json", "run", "--repeat", "2"])
        .arg(&f)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The job's own stdout comes first; the JSON document is what follows it.
    let stdout = String::from_utf8(out.stdout).unwrap();
    let json_at = stdout
        .find("\n{")
        .expect("a JSON document after the job's output");
    let v: Value = serde_json::from_str(&stdout[json_at..]).unwrap();
    assert_eq!(v["agree"], true, "{v}");
    assert_eq!(v["runs"][1]["outputs"]["/out"], outputs[0].as_str());

    // And on another machine's fresh store: the same formula ID, the same output ID.
    let (w2, root2, _) = debian().unwrap();
    assert_eq!(root2, root);
    let f2 = write_formula(
        &w2,
        "job.json",
        &serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap(),
    );
    let rec2 = w2.path("record.json");
    let out = run(&w2, &f2, &["--record", rec2.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(7));
    let rec2 = record(&rec2);
    assert_eq!(rec2["outputs"]["/out"], outputs[0].as_str());
    assert_eq!(rec2["formula"], formula_ids[0]);
}

/// A job cannot write to its read-only inputs, reach the host's files (through symlinks
/// planted in its inputs, `..`, /proc/*/root or descriptors), or the network.
#[test]
fn the_job_is_contained() {
    let Some((w, _, rootfs)) = debian() else {
        return;
    };
    // A secret on the host, and a root whose /out and /tmp point at host paths.
    let host = w.path("host");
    std::fs::create_dir(&host).unwrap();
    let secret = host.join("secret");
    std::fs::write(&secret, "host secret\n").unwrap();
    let trap = w.path("trap-root");
    let cp = Command::new("cp")
        .args(["-a"])
        .arg(&rootfs)
        .arg(&trap)
        .status()
        .unwrap();
    assert!(cp.success());
    std::os::unix::fs::symlink(&host, trap.join("out")).unwrap();
    let host_tmp = w.path("host-tmp");
    std::fs::create_dir(&host_tmp).unwrap();
    std::fs::remove_dir_all(trap.join("tmp")).unwrap();
    std::os::unix::fs::symlink(&host_tmp, trap.join("tmp")).unwrap();
    let root = w.pack(&trap);
    // A data input with links out of it.
    let data = w.path("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("file"), "data\n").unwrap();
    std::os::unix::fs::symlink(&secret, data.join("abs-link")).unwrap();
    std::os::unix::fs::symlink(
        format!("../../../../../../../..{}", secret.display()),
        data.join("up-link"),
    )
    .unwrap();
    let data_id = w.pack(&data);

    let s = secret.display();
    let script = format!(
        "exec 2>&1; \
         touch /data/new && echo WROTE-DATA; \
         echo x > /data/file && echo WROTE-FILE; \
         for p in {s} /data/abs-link /data/up-link /proc/self/root{s} /proc/1/root{s} \
                  /proc/self/cwd/../../../..{s} /tmp/secret; do \
           cat $p 2>/dev/null; done; \
         echo out > /out/written; echo tmp > /tmp/written; \
         ls /proc/self/fd > /out/fds; \
         tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /out/netdevs; \
         hostname > /out/hostname; echo $$ > /out/pid; \
         ls /proc | grep -c '^[0-9]' > /out/procs"
    );
    let f = write_formula(
        &w,
        "contain.json",
        &json!({
            "inputs": {"/": root, "/data": data_id},
            "action": {"argv": ["/bin/sh", "-c", script], "hostname": "jobhost"},
            "outputs": {"/out": {}},
        }),
    );
    for executor in ["ns", "runc"] {
        let rec_path = w.path(&format!("contain-{executor}.json"));
        let out = run_by(&w, &f, executor, &rec_path);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{executor}: {stdout}\n{stderr}");
        assert!(
            !stdout.contains("host secret"),
            "{executor} reached the host: {stdout}"
        );
        assert!(
            !stdout.contains("WROTE"),
            "{executor} wrote to an input: {stdout}"
        );
        assert!(
            stdout.contains("Read-only file system"),
            "{executor}: writes to /data should fail with EROFS: {stdout}"
        );
        // The host directory the root's /out and /tmp point at got nothing.
        let mut on_host: Vec<_> = std::fs::read_dir(&host)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        on_host.sort();
        assert_eq!(on_host, ["secret"], "{executor} wrote to the host");
        assert_eq!(
            std::fs::read_dir(&host_tmp).unwrap().count(),
            0,
            "{executor}: /tmp"
        );
        assert_eq!(std::fs::read(&secret).unwrap(), b"host secret\n");
        assert_eq!(std::fs::read(data.join("file")).unwrap(), b"data\n");

        let rec = record(&rec_path);
        let dir = unpack(
            &w,
            rec["outputs"]["/out"].as_str().unwrap(),
            &format!("contain-{executor}-out"),
        );
        let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
        assert_eq!(read("written"), "out\n");
        assert_eq!(
            read("netdevs").trim(),
            "lo",
            "{executor}: the job saw a network"
        );
        assert_eq!(read("hostname").trim(), "jobhost");
        // A fresh pid namespace: the job's shell is one of a handful of processes.
        let procs: u32 = read("procs").trim().parse().unwrap();
        assert!(procs < 10, "{executor}: the job sees {procs} processes");
        // Nothing but stdin, stdout, stderr and the listing's own directory.
        let fds: Vec<_> = read("fds").lines().map(String::from).collect();
        assert!(fds.len() <= 4, "{executor}: leaked descriptors {fds:?}");
    }
}

/// Limits and failures: a job over its time is stopped (exit 124); ware's own failures exit
/// 125 and name what is at fault.
#[test]
fn time_limits_and_failures_have_their_exit_codes() {
    let Some((w, root, _)) = debian() else {
        return;
    };
    // Sleeps with this test's own lengths, so only its own processes are looked for.
    let me = std::process::id();
    let (slow, sleeper, term) = (
        format!("1000.{me}"),
        format!("1001.{me}"),
        format!("1002.{me}"),
    );
    let f = write_formula(
        &w,
        "slow.json",
        &json!({
            "inputs": {"/": root},
            "action": {"argv": ["/bin/sh", "-c", format!("sleep {slow} & sleep {slow}")]},
            "limits": {"wall_seconds": 1},
        }),
    );
    let rec_path = w.path("slow.record");
    let t = Instant::now();
    let out = run(&w, &f, &["--record", rec_path.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(124),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Bounded, not timed: a kill that did not take would wait 1000 s.
    assert!(t.elapsed() < Duration::from_secs(60));
    assert_eq!(record(&rec_path)["status"], "timed_out");
    assert_eq!(
        processes_with(&format!("sleep {slow}")),
        Vec::<String>::new(),
        "processes outlived the job"
    );

    // `ware run` killed outright: its job dies with it, and its mount goes.
    let f_sleep = write_formula(
        &w,
        "sleeper.json",
        &json!({"inputs": {"/": root}, "action": {"argv": ["/bin/sh", "-c", format!("sleep {sleeper} & sleep {sleeper}")]}}),
    );
    let mut child = w
        .command()
        .arg("run")
        .arg(&f_sleep)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let running = |pat: &str| !processes_with(pat).is_empty();
    assert!(
        wait_for(Duration::from_secs(30), || running(&format!(
            "sleep {sleeper}"
        ))),
        "the job did not start"
    );
    child.kill().unwrap();
    let _ = child.wait();
    wait_for(Duration::from_secs(30), || {
        !running(&format!("sleep {sleeper}")) && !mounted(&w)
    });
    assert!(
        !running(&format!("sleep {sleeper}")),
        "the job outlived ware run"
    );
    assert!(!mounted(&w), "the inputs' mount outlived ware run");

    // SIGTERM to `ware run` stops its job, and what the job wrote is still packed.
    let f_term = write_formula(
        &w,
        "term.json",
        &json!({"inputs": {"/": root},
                "action": {"argv": ["/bin/sh", "-c", format!("echo partial > /out/p; sleep {term}")]},
                "outputs": {"/out": {}}}),
    );
    let rec_term = w.path("term.record");
    let child = w
        .command()
        .args(["run", "--record", rec_term.to_str().unwrap()])
        .arg(&f_term)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The sleep itself, not the shell whose command line names it: by then /out/p is written.
    let sleeping = || {
        processes_with(&format!("sleep {term}")).iter().any(|p| {
            p.split_once(": ")
                .is_some_and(|(_, cmd)| cmd.starts_with("sleep "))
        })
    };
    wait_for(Duration::from_secs(30), sleeping);
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(137),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec = record(&rec_term);
    assert_eq!(rec["status"], "signaled");
    let partial = w.ok([
        "cat",
        &format!("{}/p", rec["outputs"]["/out"].as_str().unwrap()),
    ]);
    assert_eq!(partial, "partial\n");
    assert!(!running(&format!("sleep {term}")));

    // A signal: 128 + N.
    let f = write_formula(
        &w,
        "killed.json",
        &json!({"inputs": {"/": root}, "action": {"argv": ["/bin/sh", "-c", "kill -9 $$"]}}),
    );
    assert_eq!(run(&w, &f, &[]).status.code(), Some(137));

    // An input nobody has.
    let missing = ware_store::NodeId::of(b"a node nobody has").to_string();
    let f = write_formula(
        &w,
        "missing.json",
        &json!({"inputs": {"/": missing}, "action": {"argv": ["/bin/true"]}}),
    );
    let out = run(&w, &f, &[]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&missing));

    // A bad formula is a usage error (exit 2) naming its field; a missing program says so.
    let f = write_formula(
        &w,
        "bad.json",
        &json!({"inputs": {"/": root}, "action": {"argv": ["/bin/true"], "cwd": "rel"}}),
    );
    let out = run(&w, &f, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cwd"));
    let f = write_formula(
        &w,
        "noprog.json",
        &json!({"inputs": {"/": root}, "action": {"argv": ["no-such-program"]}}),
    );
    let out = run(&w, &f, &[]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no-such-program"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing is left mounted or behind in the store's run directory (the killed run's is
    // swept by the next run).
    assert!(!mounted(&w));
    let left: Vec<_> = std::fs::read_dir(w.store().join("run"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

/// An ordinary user runs a job: its store and daemon are its own, the inputs come lazily
/// from a warehouse, the mount goes through the setuid fusermount3 and the job runs in a
/// user namespace (as root there, which is the user outside).
///
/// Unprivileged FUSE needs a /dev/fuse users may open (0666, as udev makes it on Debian);
/// this machine has it 0600, so the test gives the user one in a private mount namespace
/// rather than changing the host's.
#[test]
fn an_unprivileged_user_runs_a_job() {
    let Some((w, root, _)) = debian() else {
        return;
    };
    let have = |p: &str| Path::new(p).exists();
    if !require(
        have("/usr/bin/fusermount3") && have("/usr/bin/setpriv") && have("/usr/bin/unshare"),
        "fusermount3, setpriv and unshare are needed (scripts/setup installs them)",
    ) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let open = |p: &Path, mode| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
    // The root's warehouse, readable by everyone.
    let wh = w.path("warehouse");
    w.ok(["push", &root, &format!("file://{}", wh.display())]);
    open(w.dir.path(), 0o755).unwrap();
    let chmod = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&wh)
        .status()
        .unwrap();
    assert!(chmod.success());
    // The user's own directory.
    let home = w.path("nobody");
    std::fs::create_dir(&home).unwrap();
    rustix::fs::chown(
        &home,
        Some(rustix::fs::Uid::from_raw(65534)),
        Some(rustix::fs::Gid::from_raw(65534)),
    )
    .unwrap();
    let f = home.join("job.json");
    std::fs::write(
        &f,
        serde_json::to_vec(&json!({
            "inputs": {"/": {"ware": root, "warehouses": [format!("file://{}", wh.display())]}},
            "action": {"argv": ["/bin/sh", "-c",
                "id -u > /out/uid; dpkg -l | grep -c '^ii' > /out/packages; touch /etc/x"]},
            "outputs": {"/out": {}},
        }))
        .unwrap(),
    )
    .unwrap();
    open(&f, 0o644).unwrap();
    let dev = w.path("fuse");
    let mknod = Command::new("mknod")
        .arg(&dev)
        .args(["c", "10", "229"])
        .status()
        .unwrap();
    assert!(mknod.success());
    open(&dev, 0o666).unwrap();

    let ware = env!("CARGO_BIN_EXE_ware");
    let store = home.join("store");
    let script = format!(
        "set -e; mount --bind {dev} /dev/fuse; \
         exec setpriv --reuid=65534 --regid=65534 --clear-groups --reset-env \
           sh -c 'export HOME={home}; W=\"{ware} --store {store}\"; \
             $W run --record {home}/record.json {f}; rc=$?; \
             out=$(sed -n \"s/.*\\\"\\/out\\\": \\\"\\(.*\\)\\\".*/\\1/p\" {home}/record.json); \
             echo uid=$($W cat $out/uid); echo packages=$($W cat $out/packages); \
             $W daemon stop; exit $rc'",
        dev = dev.display(),
        home = home.display(),
        store = store.display(),
        f = f.display(),
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // Root in the job's user namespace is the user outside.
    assert!(stdout.contains("uid=0\n"), "{stdout}\n{stderr}");
    let n: u32 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("packages="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        n > 50,
        "dpkg -l in the job listed {n} packages:\n{stdout}\n{stderr}"
    );
    let rec = record(&home.join("record.json"));
    assert_eq!(rec["exit_code"], 0, "{rec}");
}

/// Builds a chroot of the host (a plain directory on a fresh tmpfs, each top-level directory
/// bound into it) in a private mount namespace, runs `ware ARGS` and then `ware daemon stop`
/// inside it, and reports the namespace's mount count before and after on stderr as
/// `mounts outside: N -> M`. With `shared`, the tmpfs holding the chroot is a shared mount.
fn ware_in_chroot(w: &Ware, shared: bool, args: &[&str]) -> Output {
    const SCRIPT: &str = r#"
set -eu
mode=$1; base=$2; shift 2
mount -t tmpfs -o mode=0755 ware-chroot "$base"
if [ "$mode" = shared ]; then mount --make-shared "$base"; fi
root=$base/root
mkdir "$root"
for e in /*; do
  n=${e#/}
  if [ -L "$e" ]; then ln -s "$(readlink "$e")" "$root/$n"
  elif [ -d "$e" ]; then
    mkdir "$root/$n"
    # /tmp holds $base: bound alone, without what is mounted below it.
    if [ "$n" = tmp ]; then mount --bind "$e" "$root/$n"; else mount --rbind "$e" "$root/$n"; fi
  fi
done
before=$(wc -l < /proc/self/mountinfo)
set +e
chroot "$root" /bin/sh -c '"$@"; rc=$?; "$1" "$2" "$3" daemon stop; exit $rc' job "$@"
rc=$?
echo "mounts outside: $before -> $(wc -l < /proc/self/mountinfo)" >&2
exit $rc
"#;
    let base = tempfile::Builder::new()
        .prefix("ware-test-chroot")
        .tempdir()
        .unwrap();
    let mut unshare = Command::new("unshare");
    unshare.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        SCRIPT,
        "sh",
    ]);
    unshare.arg(if shared { "shared" } else { "private" });
    unshare.arg(base.path());
    // The ware command line: program, then `--store STORE` first (the stop reuses them).
    let mut ware = w.command();
    ware.args(args);
    under(unshare, &ware)
        .stdin(Stdio::null())
        .output()
        .expect("run unshare")
}

fn mounts_outside(stderr: &str) -> (String, String) {
    let l = stderr
        .lines()
        .find_map(|l| l.strip_prefix("mounts outside: "))
        .unwrap_or_else(|| panic!("no mount count in:\n{stderr}"));
    let (a, b) = l.split_once(" -> ").unwrap();
    (a.to_string(), b.to_string())
}

/// `ware run` inside a chroot, where `/` is not a mount point (#19): the ns and chroot
/// executors bind the root onto itself and run the job; the ns job may not chroot (it could
/// climb out of its root); nothing is left mounted outside. Where the mount holding the chroot
/// is shared, the run is refused with the reason, before anything is mounted.
#[test]
fn jobs_run_where_root_is_not_a_mount_point() {
    let Some((w, root, _)) = debian() else {
        return;
    };
    let f = write_formula(
        &w,
        "job.json",
        &json!({
            "inputs": {"/": root},
            "action": {"argv": ["/bin/sh", "-c",
                "echo in-job; mkdir /x; chroot /x /bin/true && echo chroot-allowed; \
                 echo > /out/done"]},
            "outputs": {"/out": {"warehouse": format!("file://{}", w.path("wh").display())}},
        }),
    );
    for executor in ["ns", "chroot"] {
        let rec = w.path(&format!("{executor}.json"));
        let out = ware_in_chroot(
            &w,
            false,
            &[
                "run",
                "--executor",
                executor,
                "--record",
                rec.to_str().unwrap(),
                f.to_str().unwrap(),
            ],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{executor}: {stdout}\n{stderr}");
        assert!(stdout.contains("in-job"), "{executor}: {stdout}\n{stderr}");
        let (before, after) = mounts_outside(&stderr);
        assert_eq!(before, after, "{executor}: {stderr}");
        let rec = record(&rec);
        assert!(rec["outputs"]["/out"].is_string(), "{rec}");
        if executor == "ns" {
            assert!(!stdout.contains("chroot-allowed"), "{stdout}");
            let notices = rec["notices"].to_string();
            assert!(notices.contains("not a mount point"), "{rec}");
        }
    }

    let out = ware_in_chroot(&w, true, &["run", f.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("/ is not a mount point") && stderr.contains("is shared"),
        "{stderr}"
    );
    let (before, after) = mounts_outside(&stderr);
    assert_eq!(before, after, "{stderr}");
}

/// Whether anything is mounted below the test's store.
fn mounted(w: &Ware) -> bool {
    let store = w.store();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(store.to_str().unwrap())
}
