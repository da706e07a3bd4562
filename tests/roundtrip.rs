//! pack → unpack through the real binary is exact, over generated trees: bytes, modes
//! (setuid/setgid/sticky), owners (as root), symlinks, hardlinks, xattrs, empty files and
//! directories, non-UTF-8 names, files of many chunks.

mod common;

use std::ffi::OsStr;

use common::generate::{Spec, materialise, name, tree};
use common::*;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 20, .. ProptestConfig::default() })]

    #[test]
    fn pack_then_unpack_is_exact(children in proptest::collection::vec((name(), tree()), 0..8), keep_mtime in any::<bool>()) {
        let w = Ware::new();
        let src = w.path("src");
        let mut files = Vec::new();
        materialise(&src, &Spec::Dir { children, mode: 0o755 }, &mut files);
        let id = if keep_mtime {
            w.ok([OsStr::new("pack"), OsStr::new("--keep-mtime"), src.as_os_str()]).trim().to_string()
        } else {
            w.pack(&src)
        };
        let out = w.path("out");
        w.ok([OsStr::new("unpack"), OsStr::new(&id), out.as_os_str()]);
        // Owners are only restored as root; mtimes only when kept.
        let a = snapshot(&src, keep_mtime, is_root(), &[]);
        let b = snapshot(&out, keep_mtime, is_root(), &[]);
        assert_same(&a, &b);
        // The same tree packed again, into a second store, gives the same ID.
        let w2 = Ware::new();
        let id2 = if keep_mtime {
            w2.ok([OsStr::new("pack"), OsStr::new("--keep-mtime"), src.as_os_str()]).trim().to_string()
        } else {
            w2.pack(&src)
        };
        prop_assert_eq!(id, id2);
        // And the store is clean.
        w.ok(["fsck"]);
    }
}
