//! Image layers applied one over another (`pack_layers`): whiteouts, opaque directories
//! wherever their marker stands, a directory deleted and recreated in one layer, hardlinks to
//! a lower layer's file, markers never in the result; the flattened tree gets the ID the same
//! tree gets as one plain tar; malformed whiteouts are refused naming the layer and entry.

// The store's error type travels by value through the layer iterator.
#![allow(clippy::result_large_err)]

use std::io::Read;

use ware_store::node::Kind;
use ware_store::pack::{NoProgress, PackOptions, pack_layers, pack_tar};
use ware_store::{MemStore, Reader, Result, WareId};

/// One tar entry: a path and what it is.
enum E<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Link(&'a str, &'a str),
}

fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            E::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, p, std::io::empty()).unwrap();
            }
            E::File(p, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, p, *data).unwrap();
            }
            E::Link(p, target) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(0o644);
                h.set_size(0);
                b.append_link(&mut h, p, target).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn layers(store: &MemStore, tars: Vec<Vec<u8>>) -> Result<WareId> {
    let mut it = tars
        .into_iter()
        .map(|t| Ok(Box::new(std::io::Cursor::new(t)) as Box<dyn Read + Send>));
    Ok(pack_layers(store, &mut it, &PackOptions::default(), &NoProgress)?.id)
}

/// Every path of a ware, with `/` after directories, in walk order.
fn paths(store: &MemStore, id: &WareId) -> Vec<String> {
    let r = Reader::new(store);
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), r.root(id).unwrap())];
    while let Some((at, dir)) = stack.pop() {
        for e in r.list(&dir).unwrap() {
            let p = format!("{at}{}", String::from_utf8_lossy(&e.name));
            if e.kind == Kind::Dir {
                out.push(format!("{p}/"));
                stack.push((format!("{p}/"), e));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn layers_apply_as_the_image_spec_says() {
    let store = MemStore::new();
    let big = vec![7u8; 100_000];
    let lower = tar_of(&[
        E::Dir("a/"),
        E::File("a/x", b"x"),
        E::File("a/y", b"y"),
        E::Dir("d/"),
        E::File("d/1", b"one"),
        E::File("f", b"gone soon"),
        E::File("keep", b"kept"),
        E::Dir("o/"),
        E::File("o/old", b"old"),
        E::Dir("o/sub/"),
        E::File("o/sub/deep", b"deep"),
        E::File("h1", &big),
    ]);
    let upper = tar_of(&[
        E::File(".wh.f", b""),
        E::File("a/.wh.x", b""),
        E::File(".wh.d", b""),
        E::Dir("d/"),
        E::File("d/2", b"two"),
        E::File("o/new", b"new"),
        E::File("o/sub/fresh", b"fresh"),
        // The marker after what the layer put there: only the lower children go.
        E::File("o/.wh..wh..opq", b""),
        E::File(".wh..wh.plnk", b""),
        E::Link("h2", "h1"),
    ]);
    let id = layers(&store, vec![lower, Vec::new(), upper]).unwrap();
    assert_eq!(
        paths(&store, &id),
        [
            "a/",
            "a/y",
            "d/",
            "d/2",
            "h1",
            "h2",
            "keep",
            "o/",
            "o/new",
            "o/sub/",
            "o/sub/fresh"
        ]
    );
    let r = Reader::new(&store);
    let h1 = r.resolve(&id, b"h1").unwrap();
    let h2 = r.resolve(&id, b"h2").unwrap();
    assert!(
        h1.hardlink.is_some() && h1.hardlink == h2.hardlink,
        "{h1:?} {h2:?}"
    );

    // The same tree as one plain tar: the same ID.
    let flat = tar_of(&[
        E::Dir("a/"),
        E::File("a/y", b"y"),
        E::Dir("d/"),
        E::File("d/2", b"two"),
        E::File("keep", b"kept"),
        E::Dir("o/"),
        E::Dir("o/sub/"),
        E::File("o/sub/fresh", b"fresh"),
        E::File("o/new", b"new"),
        E::File("h1", &big),
        E::Link("h2", "h1"),
    ]);
    let plain = pack_tar(
        &store,
        &mut std::io::Cursor::new(flat),
        &PackOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(plain.id, id);
}

#[test]
fn an_opaque_marker_first_hides_the_lower_directory_and_keeps_what_follows() {
    let store = MemStore::new();
    let lower = tar_of(&[
        E::Dir("etc/"),
        E::File("etc/a", b"a"),
        E::File("etc/b", b"b"),
    ]);
    let upper = tar_of(&[
        E::Dir("etc/"),
        E::File("etc/.wh..wh..opq", b""),
        E::File("etc/c", b"c"),
    ]);
    let id = layers(&store, vec![lower, upper]).unwrap();
    assert_eq!(paths(&store, &id), ["etc/", "etc/c"]);
}

#[test]
fn malformed_whiteouts_are_refused_naming_layer_and_entry() {
    let store = MemStore::new();
    for bad in ["x/.wh.", "x/.wh..."] {
        let upper = tar_of(&[E::Dir("x/"), E::File(bad, b"")]);
        let lower = tar_of(&[E::Dir("x/")]);
        let err = layers(&store, vec![lower, upper]).unwrap_err().to_string();
        assert!(err.contains("layer 2") && err.contains(bad), "{bad}: {err}");
    }
    // A layer that is not a tar at all.
    let garbage = vec![0x5au8; 4096];
    let err = layers(&store, vec![tar_of(&[E::Dir("x/")]), garbage])
        .unwrap_err()
        .to_string();
    assert!(err.contains("layer 2"), "{err}");
    assert!(store.wares().is_empty(), "nothing half-imported");
}
