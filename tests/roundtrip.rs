//! pack → unpack through the real binary is exact, over generated trees: bytes, modes
//! (setuid/setgid/sticky), owners (as root), symlinks, hardlinks, xattrs, empty files and
//! directories, non-UTF-8 names, files of many chunks.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Spec {
    File {
        data: Data,
        mode: u32,
        owner: (u32, u32),
        xattr: Option<Vec<u8>>,
    },
    Dir {
        children: Vec<(Vec<u8>, Spec)>,
        mode: u32,
    },
    Symlink(Vec<u8>),
    /// A hardlink to the n-th file created so far (modulo their count).
    Hardlink(usize),
}

/// File contents: literal small bytes, or a large pseudo-random file from a seed.
#[derive(Debug, Clone)]
enum Data {
    Bytes(Vec<u8>),
    Big { seed: u64, len: usize },
}

impl Data {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Data::Bytes(b) => b.clone(),
            Data::Big { seed, len } => {
                let mut x = *seed | 1;
                (0..*len)
                    .map(|i| {
                        // Mostly text-like runs (compressible) with noise: exercises zstd and raw.
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        if (i / 4096) % 3 == 0 {
                            b'a' + (x % 7) as u8
                        } else {
                            x as u8
                        }
                    })
                    .collect()
            }
        }
    }
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-z]{1,8}".prop_map(|s| s.into_bytes()),
        // Any bytes but '/' and NUL, not "." or "..": non-UTF-8 names included.
        proptest::collection::vec(1u8..=255, 1..12)
            .prop_filter("no slash, not dot names", |v| !v.contains(&b'/')
                && v != b"."
                && v != b".."),
    ]
}

fn data() -> impl Strategy<Value = Data> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..6000).prop_map(Data::Bytes),
        1 => (any::<u64>(), 4097usize..1_500_000).prop_map(|(seed, len)| Data::Big { seed, len }),
    ]
}

fn mode() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0o644),
        Just(0o755),
        Just(0o600),
        Just(0o4755),
        Just(0o2755),
        Just(0o444),
        Just(0o1777)
    ]
}

fn leaf() -> impl Strategy<Value = Spec> {
    prop_oneof![
        6 => (data(), mode(), (0u32..3, 0u32..3), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)))
            .prop_map(|(data, mode, (u, g), xattr)| Spec::File { data, mode, owner: (u * 1000, g * 100), xattr }),
        2 => proptest::collection::vec(1u8..=255, 1..30).prop_map(Spec::Symlink),
        1 => (0usize..100).prop_map(Spec::Hardlink),
        1 => mode().prop_map(|m| Spec::Dir { children: vec![], mode: m | 0o700 }),
    ]
}

fn tree() -> impl Strategy<Value = Spec> {
    leaf().prop_recursive(4, 40, 8, |inner| {
        (
            proptest::collection::vec((name(), inner), 0..8),
            prop_oneof![Just(0o755), Just(0o700), Just(0o1777), Just(0o2775)],
        )
            .prop_map(|(children, mode)| Spec::Dir { children, mode })
    })
}

fn materialise(path: &Path, spec: &Spec, files: &mut Vec<PathBuf>) {
    match spec {
        Spec::File {
            data,
            mode,
            owner,
            xattr,
        } => {
            std::fs::write(path, data.bytes()).unwrap();
            if let Some(x) = xattr {
                rustix::fs::lsetxattr(path, "user.test", x, rustix::fs::XattrFlags::empty())
                    .unwrap();
            }
            if is_root() {
                std::os::unix::fs::lchown(path, Some(owner.0), Some(owner.1)).unwrap();
            }
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode)).unwrap();
            files.push(path.to_path_buf());
        }
        Spec::Dir { children, mode } => {
            std::fs::create_dir(path).unwrap();
            let mut seen = std::collections::HashSet::new();
            for (n, c) in children {
                if seen.insert(n.clone()) {
                    materialise(&path.join(OsStr::from_bytes(n)), c, files);
                }
            }
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode)).unwrap();
        }
        Spec::Symlink(t) => std::os::unix::fs::symlink(OsStr::from_bytes(t), path).unwrap(),
        Spec::Hardlink(i) => {
            if files.is_empty() {
                std::fs::write(path, b"no file to link to yet").unwrap();
            } else {
                std::fs::hard_link(&files[i % files.len()], path).unwrap();
            }
        }
    }
}

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
