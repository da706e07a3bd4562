//! `ware name`: human names for wares, with their history, usable wherever an ID is.

mod common;

use common::*;

#[test]
fn names_point_at_wares_keep_their_history_and_work_as_ids() {
    let w = Ware::new();
    let a = w.path("a");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::write(a.join("f"), b"one\n").unwrap();
    let b = w.path("b");
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(b.join("f"), b"two\n").unwrap();
    let ida = w.pack(&a);
    let idb = w.pack(&b);

    w.ok(["name", "set", "base", &ida]);
    assert_eq!(w.ok(["name", "get", "base"]).trim(), ida);
    assert_eq!(w.ok(["cat", "base/f"]), "one\n");
    w.ok(["name", "set", "base", &idb]);
    assert_eq!(w.ok(["cat", "base/f"]), "two\n");
    assert!(w.ok(["ls", "base"]).contains(" f"));
    w.ok(["name", "set", "alias", "base"]);
    assert_eq!(w.ok(["name", "get", "alias"]).trim(), idb);

    let ls: serde_json::Value = serde_json::from_str(&w.ok(["--json", "name", "ls"])).unwrap();
    assert_eq!(
        ls,
        serde_json::json!([{"name": "alias", "id": idb}, {"name": "base", "id": idb}])
    );
    let log: serde_json::Value =
        serde_json::from_str(&w.ok(["--json", "name", "log", "base"])).unwrap();
    let ids: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![ida.as_str(), idb.as_str()]);
    assert!(log[0]["at"].as_u64().unwrap() > 1_700_000_000);
    let human = w.ok(["name", "log", "base"]);
    assert_eq!(human.lines().count(), 2);
    // Each line: an RFC 3339 UTC time, then the ID.
    assert!(
        human
            .lines()
            .all(|l| l.split(' ').next().unwrap().ends_with('Z')),
        "{human}"
    );
    assert!(human.lines().last().unwrap().ends_with(&idb), "{human}");

    w.ok(["name", "rm", "alias"]);
    let gone = w.run(["name", "get", "alias"]);
    assert_eq!(gone.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("alias"));
    let log = w.ok(["name", "log", "alias"]);
    assert!(log.lines().last().unwrap().ends_with("(removed)"), "{log}");
}

#[test]
fn bad_names_and_unknown_wares_are_refused_clearly() {
    let w = Ware::new();
    let a = w.path("a");
    std::fs::create_dir_all(&a).unwrap();
    let ida = w.pack(&a);
    for bad in ["a/b", "with space", "..", &"x".repeat(256), &ida] {
        let out = w.run(["name", "set", bad, &ida]);
        // What is typed is not well formed: a usage error (exit 2).
        assert_eq!(
            out.status.code(),
            Some(2),
            "name {bad:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("name"));
    }
    // A ware this store does not hold cannot be named.
    let absent = "bafyr4iekilryssxdbgvpocfyobuwk4fp42b6rr3adj5nd33ko3zwdpatia";
    let out = w.run(["name", "set", "x", absent]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains(absent));
    // An unknown name is "not found", naming it.
    let out = w.run(["cat", "nosuch/f"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuch"));
}
