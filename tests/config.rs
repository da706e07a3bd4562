//! `ware config` (#11 item 3b): the store's settings in STORE/config.toml, checked on set, and
//! used with the precedence flag > file > default, in process and through the daemon.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn settings(w: &Ware) -> serde_json::Value {
    serde_json::from_str(&w.ok(["--json", "config", "ls"])).unwrap()
}

#[test]
fn settings_are_listed_checked_and_kept_private() {
    let w = Ware::new();
    w.pack_files("t", &[("f", b"x")]);
    let all = settings(&w);
    let keys: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&"read.deadline_s") && keys.contains(&"cache.chunk_bytes"),
        "{all}"
    );
    assert!(
        all.as_array().unwrap().iter().all(|s| s["set"] == false),
        "{all}"
    );
    assert_eq!(w.ok(["config", "get", "read.deadline_s"]).trim(), "30");

    w.ok(["config", "set", "read.deadline_s", "2.5"]);
    assert_eq!(w.ok(["config", "get", "read.deadline_s"]).trim(), "2.5");
    let file = w.store().join("config.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("read.deadline_s = 2.5"), "{text}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "config.toml is {mode:o}");

    for (args, says) in [
        (
            &["config", "set", "cache.typo", "1"][..],
            "cache.typo: no such setting",
        ),
        (
            &["config", "set", "cache.chunk_bytes", "lots"][..],
            "is not a number",
        ),
        (
            &["config", "set", "cache.chunk_bytes", "1.5"][..],
            "not a whole number",
        ),
        (
            &["config", "set", "read.deadline_s", "0"][..],
            "out of range",
        ),
        (&["config", "get", "nope"][..], "nope: no such setting"),
    ] {
        let out = w.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        text,
        "a refused set changed the file"
    );

    w.ok(["config", "unset", "read.deadline_s"]);
    assert_eq!(w.ok(["config", "get", "read.deadline_s"]).trim(), "30");

    // A file edited by hand with an unknown key is refused, naming the file and the key.
    std::fs::write(&file, "[cache]\nchunk_bytez = 1\n").unwrap();
    let out = w.run(["config", "ls"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("cache.chunk_bytez"),
        "{}",
        stderr(&out)
    );

    // No store there: read-only config commands say so and create nothing.
    let fresh = Ware::new();
    let out = fresh.run(["config", "ls"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(!fresh.store().exists(), "config ls created a store");
}

/// The read deadline comes from the flag, else the store's setting, else 30 s: a pull from a
/// warehouse that never answers fails after the one in effect, and says which.
#[test]
fn the_read_deadline_comes_from_the_flag_then_the_file() {
    let w = Ware::new();
    let id = w.pack_files("t", &[("f", b"x")]);
    let hole = servers::Proxy::blackhole();
    let url = format!("http://{}", hole.addr);
    w.ok(["config", "set", "read.deadline_s", "1"]);
    let pull = |extra: &[&str]| {
        let mut c = w.command();
        c.args(extra).args(["pull", &id, &url]);
        bounded(c, std::time::Duration::from_secs(60))
    };
    let out = pull(&[]);
    assert!(
        stderr(&out).contains("1s"),
        "the setting was not used: {}",
        stderr(&out)
    );
    let out = pull(&["--read-deadline", "2"]);
    assert!(
        stderr(&out).contains("2s"),
        "the flag did not win: {}",
        stderr(&out)
    );
}

/// Through the daemon: a setting is written while the daemon holds the store, and the daemon
/// takes its cache budgets from the file when it starts.
#[test]
fn the_daemon_writes_settings_and_starts_with_them() {
    if !can_mount() {
        return;
    }
    let w = Ware::new();
    let id = w.pack_files("t", &[("f", b"x")]);
    let mnt = w.path("mnt");
    std::fs::create_dir(&mnt).unwrap();
    w.ok(["mount", &id, mnt.to_str().unwrap()]);
    w.ok(["config", "set", "cache.chunk_bytes", "1048576"]);
    let budget = |w: &Ware| {
        let st: serde_json::Value =
            serde_json::from_str(&w.ok(["--json", "daemon", "status"])).unwrap();
        st["daemon"]["memory"]["chunk_cache_budget"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(budget(&w), 256 << 20, "a running daemon keeps its budget");
    w.ok(["daemon", "stop"]);
    w.ok(["mount", &id, mnt.to_str().unwrap()]);
    assert_eq!(
        budget(&w),
        1 << 20,
        "the new daemon did not read the setting"
    );
    w.ok(["umount", mnt.to_str().unwrap()]);
}
