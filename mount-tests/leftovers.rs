//! Nothing a test starts outlives the test process, however it ends (issue 24).
//!
//! This target has no libtest harness: run plainly it is the check; run with
//! `WARE_LEFTOVERS_CHILD=DIR` it is the victim. The victim, a test process like any other,
//! starts every kind of server the harness has (nginx, s3s-fs, a js-ipfs node) and a store
//! daemon with a FUSE mount (through the `ware` binary, as the mount tests do), says it is
//! ready, and waits. The check starts it in a session of its own (`setsid`), kills it with
//! SIGKILL, or with SIGINT to its process group as a Ctrl-C at a terminal would, and asserts
//! that within 5 seconds no process of that session is left and no mount remains at the
//! victim's mountpoint.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const CHILD_ENV: &str = "WARE_LEFTOVERS_CHILD";

fn main() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        victim(Path::new(&dir));
        return;
    }
    if !can_mount() {
        return;
    }
    for server in ["nginx", "s3s-fs", "jsipfs"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {server} || ls /root/.cache/warefs-build/js-ipfs-*/node_modules/.bin/{server}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !require(
            found,
            format!("{server} is not installed (scripts/test-servers)"),
        ) {
            return;
        }
    }
    for signal in ["KILL", "INT"] {
        check(signal);
        println!("test leftovers_after_sig{} ... ok", signal.to_lowercase());
    }
}

/// The victim: every server, a daemon and a mount, then wait to be killed.
fn victim(dir: &Path) {
    let nginx = servers::Nginx::start().expect("nginx");
    let s3 = servers::S3s::start().expect("s3s-fs");
    let ipfs = servers::JsIpfs::start().expect("jsipfs");
    let w = Ware::new();
    let id = w.pack_files("src", &[("f", b"still here\n")]);
    let mnt = w.path("mnt");
    std::fs::create_dir(&mnt).unwrap();
    w.ok(["mount", &id, mnt.to_str().unwrap()]);
    assert_eq!(std::fs::read(mnt.join("f")).unwrap(), b"still here\n");
    let _keep = (&nginx, &s3, &ipfs);
    // The scratch directory stays for the check to look at (and remove).
    let scratch = w.dir.path().to_path_buf();
    std::mem::forget(w);
    std::fs::write(dir.join("mnt"), mnt.as_os_str().as_encoded_bytes()).unwrap();
    std::fs::write(dir.join("scratch"), scratch.as_os_str().as_encoded_bytes()).unwrap();
    std::fs::write(dir.join("ready"), b"").unwrap();
    // Until killed: that is the whole point of the victim.
    loop {
        std::thread::park();
    }
}

/// The processes of session `sid` (pid: command), from /proc.
fn session(sid: u32) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // Fields after the command's closing parenthesis: state ppid pgrp session …
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(3) == Some(&sid.to_string().as_str()) && fields.first() != Some(&"Z") {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            found.push(format!(
                "{name}: {}",
                String::from_utf8_lossy(&cmd).replace('\0', " ")
            ));
        }
    }
    found
}

fn mounted_at(mnt: &Path) -> bool {
    ware_fs::ware_mounts().contains(&mnt.to_path_buf())
        || std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(mnt.to_str().unwrap()))
}

fn check(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("setsid")
        .arg(std::env::current_exe().unwrap())
        .env(CHILD_ENV, dir.path())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // setsid execs in place (the child is no group leader): the child's pid is the session.
    let sid = child.id();
    let ready = dir.path().join("ready");
    let mut ended = None;
    wait_for(Duration::from_secs(120), || {
        ended = child.try_wait().unwrap();
        ended.is_some() || ready.exists()
    });
    if let Some(st) = ended {
        panic!("the victim ended before it was ready: {st}");
    }
    assert!(ready.exists(), "the victim was not ready in 120 s");
    let mnt = PathBuf::from(std::fs::read_to_string(dir.path().join("mnt")).unwrap());
    let scratch = PathBuf::from(std::fs::read_to_string(dir.path().join("scratch")).unwrap());
    let before = session(sid);
    assert!(
        before.len() >= 5,
        "the victim's session holds only {before:#?}"
    );
    assert!(mounted_at(&mnt));
    let target = if signal == "INT" {
        format!("-{sid}")
    } else {
        sid.to_string()
    };
    assert!(
        Command::new("kill")
            .args([&format!("-{signal}"), "--", &target])
            .status()
            .unwrap()
            .success()
    );
    let _ = child.wait();
    // Bounded, not timed: the point is that they go, not how fast.
    let gone = wait_for(Duration::from_secs(5), || {
        session(sid).is_empty() && !mounted_at(&mnt)
    });
    let left = session(sid);
    let still_mounted = mounted_at(&mnt);
    if !gone {
        // Do not leave them for the next run either.
        for p in &left {
            let pid = p.split(':').next().unwrap();
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
        let _ = Command::new("umount").arg("-l").arg(&mnt).status();
    }
    assert!(
        left.is_empty(),
        "after SIG{signal}, still running: {left:#?}"
    );
    assert!(
        !still_mounted,
        "after SIG{signal}, {} is still mounted",
        mnt.display()
    );
    let _ = std::fs::remove_dir_all(&scratch);
}
