//! Generated trees (proptest strategies) shared by the pack/unpack round-trip tests and the
//! mount tests: the same trees must come back exact both ways.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::is_root;

#[derive(Debug, Clone)]
pub enum Spec {
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
pub enum Data {
    Bytes(Vec<u8>),
    Big { seed: u64, len: usize },
}

impl Data {
    pub fn bytes(&self) -> Vec<u8> {
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

pub fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-z]{1,8}".prop_map(|s| s.into_bytes()),
        // Any bytes but '/' and NUL, not "." or "..": non-UTF-8 names included.
        proptest::collection::vec(1u8..=255, 1..12)
            .prop_filter("no slash, not dot names", |v| !v.contains(&b'/')
                && v != b"."
                && v != b".."),
    ]
}

pub fn data() -> impl Strategy<Value = Data> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..6000).prop_map(Data::Bytes),
        1 => (any::<u64>(), 4097usize..1_500_000).prop_map(|(seed, len)| Data::Big { seed, len }),
    ]
}

pub fn mode() -> impl Strategy<Value = u32> {
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

pub fn leaf() -> impl Strategy<Value = Spec> {
    prop_oneof![
        6 => (data(), mode(), (0u32..3, 0u32..3), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)))
            .prop_map(|(data, mode, (u, g), xattr)| Spec::File { data, mode, owner: (u * 1000, g * 100), xattr }),
        2 => proptest::collection::vec(1u8..=255, 1..30).prop_map(Spec::Symlink),
        1 => (0usize..100).prop_map(Spec::Hardlink),
        1 => mode().prop_map(|m| Spec::Dir { children: vec![], mode: m | 0o700 }),
    ]
}

pub fn tree() -> impl Strategy<Value = Spec> {
    leaf().prop_recursive(4, 40, 8, |inner| {
        (
            proptest::collection::vec((name(), inner), 0..8),
            prop_oneof![Just(0o755), Just(0o700), Just(0o1777), Just(0o2775)],
        )
            .prop_map(|(children, mode)| Spec::Dir { children, mode })
    })
}

pub fn materialise(path: &Path, spec: &Spec, files: &mut Vec<PathBuf>) {
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
