//! `kill -9` at any moment of a pack of a real tree leaves a store that opens, passes fsck, and
//! names no half-written ware.

mod common;

use std::ffi::OsStr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn kill_9_during_pack_never_damages_the_store() {
    let Some(tree) = rootfs("small") else {
        return;
    };
    // How long a whole pack takes here, so the kills spread over all of it.
    let reference = Ware::new();
    let started = Instant::now();
    let id = reference.pack(&tree);
    let full = started.elapsed();
    let mut completed = 0;
    for i in 0..50u32 {
        let w = Ware::new();
        let mut child = w
            .command()
            .arg("pack")
            .arg(&tree)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill points from the very start to a little past the end.
        let at = full.mul_f64(f64::from(i) / 45.0);
        std::thread::sleep(at.min(Duration::from_secs(30)));
        let _ = child.kill(); // SIGKILL
        let out = child.wait_with_output().unwrap();
        let finished = out.status.success();
        completed += usize::from(finished);
        let fsck = w.run(["--json", "fsck"]);
        // Killed before RocksDB wrote its first file: there is no store yet, and a read-only
        // command says so rather than make one; the next pack starts afresh.
        if !finished
            && fsck.status.code() == Some(3)
            && String::from_utf8_lossy(&fsck.stdout).contains("no store at")
        {
            continue;
        }
        assert!(
            fsck.status.success(),
            "kill {i} at {at:?}: fsck failed:\n{}",
            String::from_utf8_lossy(&fsck.stdout)
        );
        let wares: serde_json::Value = serde_json::from_str(&w.ok(["--json", "ls"])).unwrap();
        let wares = wares.as_array().unwrap();
        if finished {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), id);
        }
        // A ware is named only if the pack got to its very end, and then it is the right one.
        for ware in wares {
            assert_eq!(
                ware["id"], id,
                "kill {i}: the store names a ware that is not the tree"
            );
        }
        assert!(wares.len() <= 1);
        if i % 10 == 9 {
            // Spot-check that a named ware is whole: it unpacks.
            if let Some(ware) = wares.first() {
                let out = w.path("out");
                w.ok([
                    OsStr::new("unpack"),
                    OsStr::new(ware["id"].as_str().unwrap()),
                    out.as_os_str(),
                ]);
            }
        }
    }
    eprintln!("50 kills; {completed} packs had already finished");
    assert!(completed < 45, "most kills should land during the pack");
}
