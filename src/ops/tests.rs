//! The operations on the wire and through the one dispatch.

use super::*;
use crate::api::{RemoteOptions, WarePath};
use ware_store::pack::PackOptions;

/// Every operation goes on the wire as `{"op": NAME, …fields}` and comes back the same.
#[test]
fn every_request_round_trips() {
    let id = WareId::of(b"\xa0");
    let at = WarePath {
        ware: id,
        path: b"etc/os-release".to_vec(),
    };
    let remote = RemoteOptions {
        warehouses: vec!["file:///w".into()],
        read_deadline_ms: 5000,
        shared: true,
    };
    let all: Vec<Request> = vec![
        Pack {
            dir: Some("/src".into()),
            opts: PackOptions::default(),
        }
        .into(),
        Unpack {
            ware: id,
            target: "/t".into(),
        }
        .into(),
        Stat {
            at: at.clone(),
            remote: remote.clone(),
        }
        .into(),
        List {
            at: at.clone(),
            remote: remote.clone(),
        }
        .into(),
        Cat {
            at: at.clone(),
            remote: remote.clone(),
        }
        .into(),
        Wares {}.into(),
        Fsck {}.into(),
        Stats {}.into(),
        Damage { at: at.clone() }.into(),
        NameSet {
            name: "base".into(),
            id: Some(id),
        }
        .into(),
        NameGet {
            name: "base".into(),
        }
        .into(),
        Names {}.into(),
        NameLog {
            name: "base".into(),
        }
        .into(),
        Push {
            ware: id,
            url: "s3://b/p".into(),
            remote: remote.clone(),
            names: vec!["app".into()],
        }
        .into(),
        Pull {
            ware: id,
            remote: remote.clone(),
        }
        .into(),
        AddRun {
            started_ms: 7,
            record: serde_json::json!({"exit_code": 0}),
        }
        .into(),
        Runs {}.into(),
        ConfigSet {
            key: "cache.chunk_bytes".into(),
            value: Some("1M".into()),
        }
        .into(),
        ConfigList {}.into(),
        ProfileList {}.into(),
        ProfileShow {
            which: format!("ware:{id}"),
        }
        .into(),
        ProfileRemove {
            key: format!("ware:{id}"),
        }
        .into(),
        Prefetch {
            ware: id,
            profile: Some(format!("run:{id}:/data")),
            remote: remote.clone(),
        }
        .into(),
        Ping {}.into(),
        Mount {
            remote: remote.clone(),
            what: MountWhat::Ware(id),
            mountpoint: "/m".into(),
            allow_other: true,
            foreground: true,
            fill: Some(1 << 20),
        }
        .into(),
        Umount {
            mountpoint: "/m".into(),
            lazy: true,
        }
        .into(),
        Mounts {}.into(),
        Shutdown {}.into(),
    ];
    let mut names = std::collections::BTreeSet::new();
    for req in all {
        let text = serde_json::to_string(&req).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let name = v["op"].as_str().unwrap().to_string();
        assert!(
            names.insert(name.clone()),
            "two operations are called {name}"
        );
        let back: Request = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), text, "{name}");
    }
    assert_eq!(names.len(), 28);
    // A run's mount (what it shows is the only difference) goes and comes back the same.
    let run: Request = Mount {
        remote,
        what: MountWhat::Run {
            formula: id,
            inputs: [("/".to_string(), id)].into(),
            fill: vec![id],
        },
        mountpoint: "/r".into(),
        allow_other: true,
        foreground: true,
        fill: None,
    }
    .into();
    let text = serde_json::to_string(&run).unwrap();
    let back: Request = serde_json::from_str(&text).unwrap();
    assert_eq!(serde_json::to_string(&back).unwrap(), text);
    assert!(names.contains("name_set") && names.contains("add_run"));
}

/// An operation the daemon does not know is refused with its name, not misread.
#[test]
fn an_unknown_operation_is_refused() {
    let e = serde_json::from_str::<Request>(r#"{"op": "format_disk"}"#).unwrap_err();
    assert!(e.to_string().contains("format_disk"), "{e}");
}

/// A daemon that answers its own operations with fixed replies.
struct FakeDaemon;

impl Serves<Ping> for FakeDaemon {
    fn serve(&self, _: Ping, _: &UnixStream, _: &mut Cx<'_>) -> Result<Option<serde_json::Value>> {
        Ok(Some(serde_json::json!({"pid": 1})))
    }
}
impl Serves<Mount> for FakeDaemon {
    fn serve(&self, _: Mount, _: &UnixStream, _: &mut Cx<'_>) -> Result<Option<MountInfo>> {
        Ok(None) // a foreground mount whose client went away: no reply due
    }
}
impl Serves<Umount> for FakeDaemon {
    fn serve(&self, _: Umount, _: &UnixStream, _: &mut Cx<'_>) -> Result<Option<()>> {
        anyhow::bail!("nothing is mounted there")
    }
}
impl Serves<Mounts> for FakeDaemon {
    fn serve(&self, _: Mounts, _: &UnixStream, _: &mut Cx<'_>) -> Result<Option<Vec<MountInfo>>> {
        Ok(Some(Vec::new()))
    }
}
impl Serves<Shutdown> for FakeDaemon {
    fn serve(&self, _: Shutdown, _: &UnixStream, _: &mut Cx<'_>) -> Result<Option<()>> {
        Ok(Some(()))
    }
}

/// The one dispatch: store operations run on the store, daemon operations go to the
/// daemon, and each reply is its operation's reply type as JSON.
#[test]
fn requests_are_served_by_their_own_implementation() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(&dir.path().join("store")).unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"served\n").unwrap();
    let (conn, _peer) = UnixStream::pair().unwrap();
    let serve = |req: Request| req.serve(&store, &FakeDaemon, &conn, &mut Cx::plain());

    let v = serve(
        Pack {
            dir: Some(src),
            opts: PackOptions::default(),
        }
        .into(),
    )
    .unwrap()
    .unwrap();
    let id = serde_json::from_value::<PackReport>(v).unwrap().id;
    let set = NameSet {
        name: "base".into(),
        id: Some(id),
    };
    assert_eq!(serve(set.into()).unwrap(), Some(serde_json::Value::Null));
    let got = serve(
        NameGet {
            name: "base".into(),
        }
        .into(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        serde_json::from_value::<Option<WareId>>(got).unwrap(),
        Some(id)
    );
    let at = WarePath {
        ware: id,
        path: b"f".to_vec(),
    };
    let stat = serve(
        Stat {
            at: at.clone(),
            remote: RemoteOptions::default(),
        }
        .into(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(serde_json::from_value::<Entry>(stat).unwrap().size, 7);
    // Cat writes to the descriptor of its request: without one it is refused.
    let e = serve(
        Cat {
            at,
            remote: RemoteOptions::default(),
        }
        .into(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("needs a file descriptor"), "{e}");

    assert_eq!(
        serve(Ping {}.into()).unwrap(),
        Some(serde_json::json!({"pid": 1}))
    );
    let mount = Mount {
        remote: RemoteOptions::default(),
        what: MountWhat::All,
        mountpoint: "/m".into(),
        allow_other: false,
        foreground: true,
        fill: None,
    };
    assert_eq!(serve(mount.into()).unwrap(), None);
    let umount = Umount {
        mountpoint: "/m".into(),
        lazy: false,
    };
    assert!(serve(umount.into()).is_err());
}
