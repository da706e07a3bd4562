//! Unit tests of the node codec and its checks.

use super::*;
use ipld_core::ipld::Ipld;

fn file(name: &[u8], data: &[u8]) -> Entry {
    let mut e = Entry::new(name.to_vec(), Kind::File);
    e.mode = 0o644;
    e.size = data.len() as u64;
    e.inline = Some(ByteBuf::from(data.to_vec()));
    e
}

#[test]
fn encoding_is_canonical_dag_cbor() {
    let mut e = file(b"\xffnot-utf8", b"hi");
    e.xattrs = vec![(
        ByteBuf::from(b"user.a".to_vec()),
        ByteBuf::from(b"1".to_vec()),
    )];
    let bytes = encode(&DirNode {
        entries: vec![e],
        parts: vec![],
    });
    // Re-encoding the generic IPLD form gives the same bytes: map keys are in canonical order.
    let generic: Ipld = serde_ipld_dagcbor::from_slice(&bytes).unwrap();
    assert_eq!(serde_ipld_dagcbor::to_vec(&generic).unwrap(), bytes);
    let id = NodeId::of(&bytes);
    let back = DirNode::decode(&id, &bytes).unwrap();
    assert_eq!(back.entries[0].name.as_ref(), b"\xffnot-utf8");
}

#[test]
fn hostile_entries_are_refused() {
    for name in [&b""[..], b".", b"..", b"a/b", b"a\0b", &[b'x'; 256]] {
        let e = file(name, b"");
        assert!(e.validate(false).is_err(), "{name:?} accepted");
    }
    let mut e = file(b"a", b"abc");
    e.size = 4;
    assert!(e.validate(false).is_err());
    let mut e = file(b"a", b"abc");
    e.mode = 0o170644;
    assert!(e.validate(false).is_err());
    let mut d = Entry::new(b"d".to_vec(), Kind::Dir);
    assert!(d.validate(false).is_err(), "dir without node");
    d.target = Some(ByteBuf::from(b"x".to_vec()));
    assert!(d.validate(false).is_err());
}

proptest::proptest! {
    /// Decoders of untrusted bytes never panic: any input is a node or an error.
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let id = NodeId::of(&bytes);
        let _ = RootNode::decode(&id, &bytes);
        let _ = DirNode::decode(&id, &bytes);
        let _ = FileNode::decode(&id, &bytes);
    }

    /// Damaging any byte of a valid node never yields a node that fails validation.
    #[test]
    fn mutated_nodes_decode_valid_or_not_at_all(pos in 0usize..4096, bit in 0u8..8) {
        let mut e = file(b"name", b"content");
        e.xattrs = vec![(ByteBuf::from(b"user.x".to_vec()), ByteBuf::from(b"v".to_vec()))];
        let mut bytes = encode(&DirNode { entries: vec![e.clone(), file(b"other", b"")], parts: vec![] });
        let i = pos % bytes.len();
        bytes[i] ^= 1 << bit;
        let id = NodeId::of(&bytes);
        if let Ok(n) = DirNode::decode(&id, &bytes) {
            for e in &n.entries {
                proptest::prop_assert!(e.validate(false).is_ok());
            }
        }
    }
}

#[test]
fn unsorted_or_unknown_nodes_are_corrupt() {
    let n = DirNode {
        entries: vec![file(b"b", b""), file(b"a", b"")],
        parts: vec![],
    };
    let bytes = encode(&n);
    let err = DirNode::decode(&NodeId::of(&bytes), &bytes).unwrap_err();
    assert!(err.is_corruption(), "{err}");
    let junk = b"\xa1\x61z\x01";
    assert!(DirNode::decode(&NodeId::of(junk), junk).is_err());
    assert!(RootNode::decode(&NodeId::of(junk), junk).is_err());
}
