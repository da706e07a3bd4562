//! Regressions from a hostile probe of the binary (issue 19): store modes, typos that used to
//! create stores, IDs of inner nodes, names that are not UTF-8, exit codes and messages.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::*;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every file and directory of a store: none may be readable by group or others.
fn wide_modes(store: &Path) -> Vec<String> {
    let mut wide = Vec::new();
    let mut stack = vec![store.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = std::fs::symlink_metadata(&p).unwrap();
        if md.mode() & 0o077 != 0 && !md.file_type().is_symlink() {
            wide.push(format!("{} {:o}", p.display(), md.mode() & 0o7777));
        }
        if md.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    wide
}

#[test]
fn a_store_is_private_to_its_owner() {
    let w = Ware::new();
    let src = w.path("s");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("k"), b"TOPSECRET-a-store-is-private\n").unwrap();
    std::fs::set_permissions(src.join("k"), std::fs::Permissions::from_mode(0o600)).unwrap();
    // No daemon: the command creates the store itself.
    w.pack(&src);
    assert!(!w.store().join("daemon.sock").exists());
    assert_eq!(wide_modes(&w.store()), Vec::<String>::new());
    assert_eq!(std::fs::metadata(w.store()).unwrap().mode() & 0o7777, 0o700);

    // A store made with wider modes (by hand, or an older ware) is narrowed when opened.
    std::fs::set_permissions(w.store(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for e in std::fs::read_dir(w.store()).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    assert!(!wide_modes(&w.store()).is_empty());
    w.ok(["stats"]);
    assert_eq!(wide_modes(&w.store()), Vec::<String>::new());
}

#[test]
fn read_only_commands_on_a_missing_store_create_nothing() {
    let w = Ware::new();
    let typo = w.path("typo");
    let cmd = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ware"))
            .env("WARE_STORE", &typo)
            .arg("-q")
            .args(args)
            .output()
            .unwrap()
    };
    let id = "bafyr4ihnxdbkkiuivcwkohpdudg7rqaeylamnwyq5nwcxwvzoclo7lpm4m";
    for args in [
        &["fsck"][..],
        &["ls"],
        &["ls", id],
        &["cat", &format!("{id}/x")],
        &["stat", id],
        &["stats"],
        &["runs"],
        &["name", "get", "n"],
        &["name", "ls"],
        &["name", "log", "n"],
        &["unpack", id, "/nonexistent-target"],
    ] {
        let out = cmd(args);
        assert_eq!(
            out.status.code(),
            Some(3),
            "ware {args:?}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains(&format!("no store at {}", typo.display())),
            "ware {args:?}: {}",
            stderr(&out)
        );
        assert!(!typo.exists(), "ware {args:?} created {}", typo.display());
    }
    // An empty directory is no store either, and stays empty.
    std::fs::create_dir(&typo).unwrap();
    let out = cmd(&["fsck"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&typo).unwrap().count(), 0);

    // A regular file where the store should be: said plainly, once.
    let file = w.path("file");
    std::fs::write(&file, b"").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ware"))
        .args([
            "-q",
            "--store",
            file.to_str().unwrap(),
            "pack",
            "/etc/hostname",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("is a file, not a store directory"), "{err}");
}

#[test]
fn an_inner_node_id_is_not_a_ware_and_not_corruption() {
    let w = Ware::new();
    let id = w.pack_files("t", &[("sub/f", b"inside\n"), ("top", &[7u8; 300_000])]);
    let st: serde_json::Value =
        serde_json::from_str(&w.ok(["--json", "stat", &format!("{id}/sub")])).unwrap();
    let sub = st["node"].as_str().expect("a directory's node").to_string();
    for args in [
        vec!["ls".to_string(), sub.clone()],
        vec!["stat".into(), sub.clone()],
        vec![
            "unpack".into(),
            sub.clone(),
            w.path("u").display().to_string(),
        ],
        vec!["name".into(), "set".into(), "n".into(), sub.clone()],
    ] {
        let out = w.run(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "ware {args:?}: {err}");
        assert!(
            err.contains(&format!("{sub} is a directory node, not a ware")),
            "ware {args:?}: {err}"
        );
        assert!(!err.contains("corrupt"), "{err}");
    }
    assert!(w.ok(["fsck"]).contains("store is clean"));
}

#[test]
fn names_that_are_not_utf8_are_reachable() {
    let w = Ware::new();
    let src = w.path("t");
    std::fs::create_dir(&src).unwrap();
    let name = OsStr::from_bytes(b"bad\xffname");
    std::fs::write(src.join(name), b"odd bytes\n").unwrap();
    let id = w.pack(&src);
    let mut at = format!("{id}/").into_bytes();
    at.extend_from_slice(name.as_bytes());
    let at = OsStr::from_bytes(&at);
    assert_eq!(w.ok([OsStr::new("cat"), at]), "odd bytes\n");
    let st: serde_json::Value =
        serde_json::from_str(&w.ok([OsStr::new("--json"), OsStr::new("stat"), at])).unwrap();
    assert_eq!(st["size"], 10);
    assert_eq!(st["path_hex"], "6261 64ff 6e61 6d65".replace(' ', ""));
    let ls: serde_json::Value = serde_json::from_str(&w.ok(["--json", "ls", &id])).unwrap();
    assert_eq!(ls[0]["name_hex"], "626164ff6e616d65");
    // The text listing escapes the byte instead of printing it raw.
    assert!(w.ok(["ls", &id]).contains("bad\\xffname"));
}

#[test]
fn exit_codes_and_messages_mean_what_the_table_says() {
    let w = Ware::new();
    let id = w.pack_files("t", &[("f", b"x\n")]);

    // A missing mountpoint or unpack parent is "not found", and the OS error is said once.
    let out = w.run(["mount", &id, "/nonexistent/mnt"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).matches("os error 2").count(),
        1,
        "{}",
        stderr(&out)
    );
    let out = w.run(["unpack", &id, "/nonexistent/parent/dir"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).matches("os error 2").count() <= 1,
        "{}",
        stderr(&out)
    );

    // Bad IDs and names are usage errors; a name may not look like a flag.
    // (A word that could be a name is looked up as one: not found, 3.)
    let out = w.run(["cat", "bafyNOTACID/f"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = w.run(["cat", "bafy:NOT:A:CID/f"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = w.run(["name", "set", "bad name", &id]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = w.run(["name", "set", "--", "-rf", &id]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("must not start with '-'"),
        "{}",
        stderr(&out)
    );
    assert!(w.run(["name", "get", "--", "-rf"]).status.code() != Some(0));

    // A 10 kB argument is not echoed whole.
    let long = "x".repeat(10_000);
    let out = w.run(["name", "set", &format!("{long}!"), &id]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).len() < 500,
        "{} bytes of error",
        stderr(&out).len()
    );
    let out = w.run(["stat", &format!("bafy{long}")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).len() < 500,
        "{} bytes of error",
        stderr(&out).len()
    );

    // With --json, an error is a document on stdout too.
    let out = w.run(["--json", "stat", &format!("{id}/missing")]);
    assert_eq!(out.status.code(), Some(3));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON error");
    assert_eq!(doc["code"], 3);
    assert!(doc["error"].as_str().unwrap().contains("missing"), "{doc}");
}

#[test]
fn garbage_on_stdin_is_refused_without_raw_bytes() {
    let w = Ware::new();
    // Control bytes and an escape sequence, as a garbage "tar" might carry.
    let mut junk = b"\x1b[2J\x1b]0;owned\x07".to_vec();
    junk.extend(noise(3, 4096));
    let out = w.pack_stdin(&junk, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(!err.bytes().any(|b| b == 0x1b || b == 0x07), "{err:?}");
    assert!(err.len() < 1000, "{} bytes of error", err.len());
}

#[test]
fn other_users_cannot_reach_a_store_or_its_daemon() {
    if !require(is_root(), "needs root to try the store as another user") {
        return;
    }
    let w = Ware::new();
    let id = w.pack_files("t", &[("f", b"x\n")]);
    // The scratch directory itself is open to others, so only the store's modes stand between.
    std::fs::set_permissions(w.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(binary_for_others())
        .arg("--store")
        .arg(w.store())
        .args(["cat", &format!("{id}/f")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("ermission denied"),
        "{}",
        stderr(&out)
    );

    // The daemon's socket is 0600 inside the 0700 store.
    let mut daemon = w
        .command()
        .args(["daemon", "run", "--idle-timeout", "30"])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let sock = w.store().join("daemon.sock");
    assert!(wait_for(std::time::Duration::from_secs(10), || sock.exists()));
    assert_eq!(std::fs::metadata(&sock).unwrap().mode() & 0o777, 0o600);
    // `..` never climbs out of a ware.
    let out = w.run(["cat", &format!("{id}/../../etc/passwd")]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    w.ok(["daemon", "stop"]);
    let _ = daemon.wait();
    assert_eq!(wide_modes(&w.store()), Vec::<String>::new());
}

#[test]
fn formulas_that_ask_for_what_the_kernel_reads_specially_are_refused() {
    let w = Ware::new();
    let root = "bafyr4ihnxdbkkiuivcwkohpdudg7rqaeylamnwyq5nwcxwvzoclo7lpm4m";
    let formula = |extra: &str| {
        format!(
            r#"{{"inputs": {{"/": "{root}"}}, "action": {{"argv": ["/bin/sh", "-c", "id"]{extra}}}}}"#
        )
    };
    let limits = |l: &str| {
        format!(
            r#"{{"inputs": {{"/": "{root}"}}, "action": {{"argv": ["/bin/true"]}}, "limits": {{{l}}}}}"#
        )
    };
    let cases = [
        (
            formula(r#", "uid": 4294967295, "gid": 65534"#),
            "action.uid 4294967295",
        ),
        (
            formula(r#", "uid": 65534, "gid": 4294967295"#),
            "action.gid 4294967295",
        ),
        (
            limits(r#""wall_seconds": 18446744073709551615"#),
            "limits.wall_seconds",
        ),
        (
            limits(r#""wall_seconds": 9223372036854775807"#),
            "limits.wall_seconds",
        ),
        (limits(r#""wall_seconds": 0"#), "limits.wall_seconds"),
        (limits(r#""pids": 0"#), "limits.pids"),
        (limits(r#""memory_bytes": 1"#), "limits.memory_bytes"),
        (
            format!(
                r#"{{"inputs": {{"/": "{root}"}}, "action": {{"argv": ["/bin/true"], "env": {{"A": "1", "A": "2"}}}}}}"#
            ),
            "\"A\" is given twice",
        ),
        (
            format!(
                r#"{{"inputs": {{"/": "{root}", "/": "{root}"}}, "action": {{"argv": ["/bin/true"]}}}}"#
            ),
            "\"/\" is given twice",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let f = w.path(&format!("f{i}.json"));
        std::fs::write(&f, text).unwrap();
        let out = w.run([OsStr::new("run"), f.as_os_str()]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(want), "{text}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // Zero runs is not a run.
    let f = w.path("ok.json");
    std::fs::write(&f, formula("")).unwrap();
    let out = w.run([
        OsStr::new("run"),
        OsStr::new("--repeat"),
        OsStr::new("0"),
        f.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // A record that cannot be written is found before anything runs (the input does not even
    // exist: the record is checked first).
    let out = w.run([
        OsStr::new("run"),
        OsStr::new("--record"),
        OsStr::new("/nonexistent/dir/record.json"),
        f.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("/nonexistent/dir/record.json: cannot write the run record"),
        "{}",
        stderr(&out)
    );
}

/// A tree of a few MiB in one or more packs, pushed to a fresh directory warehouse.
fn pushed(w: &Ware, extra: &[&str]) -> (String, std::path::PathBuf) {
    let src = w.path("t");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("d/big"), noise(11, 3 << 20)).unwrap();
    std::fs::write(src.join("secret"), b"TOPSECRET-in-a-warehouse\n").unwrap();
    std::fs::set_permissions(src.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let id = w.pack(&src);
    let wh = w.path("wh");
    let url = format!("file://{}", wh.display());
    let mut args = vec!["push", id.as_str(), url.as_str()];
    args.extend_from_slice(extra);
    w.ok(&args);
    (id, wh)
}

fn packs(wh: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(wh.join("packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

#[test]
fn a_directory_warehouse_is_private_unless_shared() {
    let w = Ware::new();
    let (id, wh) = pushed(&w, &[]);
    assert_eq!(wide_modes(&wh), Vec::<String>::new());
    // --shared: every directory 0755, every file 0644, for a web server to serve.
    let shared = w.path("shared");
    w.ok([
        "push",
        "--shared",
        &id,
        &format!("file://{}", shared.display()),
    ]);
    let mut stack = vec![shared.clone()];
    while let Some(p) = stack.pop() {
        let md = std::fs::metadata(&p).unwrap();
        if md.is_dir() {
            assert_eq!(md.mode() & 0o777, 0o755, "{}", p.display());
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(md.mode() & 0o777, 0o644, "{}", p.display());
        }
    }
}

#[test]
fn a_killed_push_leaves_nothing_the_next_push_keeps() {
    let w = Ware::new();
    let (id, wh) = pushed(&w, &[]);
    // What a push killed two hours ago left, and what one running now is writing.
    let stale = wh.join("packs/.tmp-4242-0");
    let fresh = wh.join("packs/.tmp-4243-0");
    std::fs::write(&stale, vec![0u8; 1 << 20]).unwrap();
    std::fs::write(&fresh, b"being written").unwrap();
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    // Another ware, so the push writes a pack.
    let src2 = w.path("t2");
    std::fs::create_dir(&src2).unwrap();
    std::fs::write(src2.join("f"), noise(12, 100_000)).unwrap();
    let id2 = w.pack(&src2);
    w.ok(["push", &id2, &format!("file://{}", wh.display())]);
    assert!(!stale.exists(), "the stale temporary is still there");
    assert!(
        fresh.exists(),
        "a recent temporary (a push in progress) was removed"
    );
    // Both wares still pull exactly.
    let w2 = Ware::new();
    for i in [&id, &id2] {
        w2.ok(["pull", i, &format!("file://{}", wh.display())]);
    }
    assert!(w2.ok(["fsck"]).contains("store is clean"));
}

#[test]
fn a_damaged_warehouse_is_damage_not_absence() {
    let w = Ware::new();
    let (id, wh) = pushed(&w, &[]);
    let url = format!("file://{}", wh.display());
    let pull = |w: &Ware| {
        let mut c = w.command();
        c.args(["--read-deadline", "3", "pull", &id, &url]);
        bounded(c, std::time::Duration::from_secs(20))
    };
    let pack = packs(&wh, "pack")[0].clone();
    let idx = packs(&wh, "idx")[0].clone();
    let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();

    // A pack or an index missing: exit 4, naming the missing object and the warehouse.
    for gone in [&pack, &idx] {
        let keep = w.path("keep");
        std::fs::rename(gone, &keep).unwrap();
        let out = pull(&Ware::new());
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(4), "{err}");
        assert!(err.contains(&name(gone)) && err.contains(&url), "{err}");
        assert!(err.contains("missing"), "{err}");
        std::fs::rename(&keep, gone).unwrap();
    }

    // A FIFO in place of a pack: an error at once, never a hang.
    let keep = w.path("keep");
    std::fs::rename(&pack, &keep).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&pack)
            .status()
            .unwrap()
            .success()
    );
    let out = pull(&Ware::new());
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("not a regular file") && err.contains(&name(&pack)),
        "{err}"
    );
    std::fs::remove_file(&pack).unwrap();
    std::fs::rename(&keep, &pack).unwrap();

    // No marker, or a marker of a layout this ware does not know: refused, said plainly.
    let marker = wh.join("warefs-warehouse");
    std::fs::rename(&marker, w.path("marker")).unwrap();
    let out = pull(&Ware::new());
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a warefs warehouse"),
        "{}",
        stderr(&out)
    );
    std::fs::write(&marker, b"warefs-warehouse/9\n").unwrap();
    let out = pull(&Ware::new());
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("warefs-warehouse/9"),
        "{}",
        stderr(&out)
    );
    assert_ne!(
        out.status.code(),
        Some(4),
        "an unknown layout is not damage"
    );

    // Mended, the same warehouse pulls exactly.
    std::fs::rename(w.path("marker"), &marker).unwrap();
    let fresh = Ware::new();
    let out = pull(&fresh);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(fresh.ok(["fsck"]).contains("store is clean"));
}

#[test]
fn a_mount_over_files_needs_nonempty() {
    if !can_mount() {
        return;
    }
    let w = Ware::new();
    let id = w.pack_files("t", &[("f", b"in the ware\n")]);
    let mnt = w.path("mnt");
    std::fs::create_dir(&mnt).unwrap();
    std::fs::write(mnt.join("mine"), b"the user's file\n").unwrap();
    let out = w.run(["mount", &id, mnt.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(mnt.join("mine")).unwrap(),
        b"the user's file\n"
    );
    w.ok(["mount", "--nonempty", &id, mnt.to_str().unwrap()]);
    let seen = std::fs::read(mnt.join("f"));
    w.ok(["umount", mnt.to_str().unwrap()]);
    assert_eq!(seen.unwrap(), b"in the ware\n");
    assert_eq!(
        std::fs::read(mnt.join("mine")).unwrap(),
        b"the user's file\n"
    );
    w.ok(["daemon", "stop"]);
}

/// A server answering 500 with a long HTML page holding terminal escapes (#19 item 9): each
/// retry warning and the final error are one line, cut short, with no control byte from the
/// server; `-q` leaves only the error, which names the URL.
#[test]
fn a_servers_error_page_never_reaches_the_terminal_raw() {
    let Some(nginx) = started(servers::Nginx::start()) else {
        return;
    };
    let mut page = String::from("<html>\n<head><title>500</title></head>\n");
    for i in 0..45 {
        page.push_str(&format!(
            "<p>line {i} \x1b]0;pwned\x07\x1b[2J\x1b[31m red</p>\n"
        ));
    }
    page.push_str(&"x".repeat(10_000));
    nginx.seed("e500.html", page.as_bytes());
    let w = Ware::new();
    let id = w.pack_files("t", &[("f", b"data")]);
    let url = format!("http://{}/e500/", nginx.addr);
    let pull = |quiet: bool| {
        let mut c = if quiet { w.command() } else { w.loud_command() };
        c.args(["pull", &id, &url]);
        bounded(c, std::time::Duration::from_secs(120))
    };

    let loud = pull(false);
    let err = stderr(&loud);
    assert_eq!(loud.status.code(), Some(1), "{err}");
    assert!(err.contains("retrying"), "no retry warning:\n{err}");
    for raw in [&loud.stderr, &pull(true).stderr] {
        assert!(
            !raw.iter().any(|&b| b == 0x1b || b == 0x07),
            "a control byte from the server reached stderr:\n{}",
            String::from_utf8_lossy(raw)
        );
        let text = String::from_utf8_lossy(raw);
        assert!(
            !text.contains("line 5 "),
            "the page was echoed whole:\n{text}"
        );
        for l in text.lines() {
            assert!(l.len() < 1500, "a {}-byte line:\n{l}", l.len());
        }
    }
    let quiet = pull(true);
    let err = stderr(&quiet);
    assert!(!err.contains("retrying"), "-q printed retries:\n{err}");
    assert_eq!(
        err.lines().count(),
        1,
        "-q printed more than the error:\n{err}"
    );
    assert!(
        err.contains(&url),
        "the error does not name the URL:\n{err}"
    );
}
