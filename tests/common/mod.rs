//! Shared helpers for the end-to-end tests: run the real `ware` binary against a fresh store,
//! and compare directory trees entry by entry.
#![allow(dead_code)]

pub mod generate;

// The kit every test crate shares: the skip rule, noise, scratch, servers, process checks.
#[allow(unused_imports)]
pub use ware_test_kit::*;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A fresh store and a way to run `ware` on it.
pub struct Ware {
    pub dir: tempfile::TempDir,
}

impl Default for Ware {
    fn default() -> Self {
        Self::new()
    }
}

impl Ware {
    pub fn new() -> Ware {
        Ware {
            dir: tempdir("ware-test"),
        }
    }

    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// A path for test files inside this test's scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn command(&self) -> Command {
        let mut c = self.loud_command();
        c.arg("--quiet");
        c
    }

    /// [`Ware::command`] without `--quiet`: notices, warnings and retries show on stderr.
    pub fn loud_command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ware"));
        c.arg("--store").arg(self.store());
        c.env_remove("WARE_STORE");
        // A daemon a test causes to start stops when the test process ends, however it ends
        // (a Ctrl-C, a kill -9): no daemon or mount outlives the run.
        c.env("WARE_DAEMON_EXIT_WITH", std::process::id().to_string());
        c
    }

    /// Runs `ware ARGS` and returns its output, whatever the exit code.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ware")
    }

    /// Runs `ware ARGS`, which must succeed; returns stdout.
    pub fn ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "ware {args:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Packs a path (directory or tar file) and returns the ware ID.
    pub fn pack(&self, path: &Path) -> String {
        let id = self
            .ok([OsStr::new("pack"), path.as_os_str()])
            .trim()
            .to_string();
        assert!(id.starts_with("bafyr4i"), "unexpected ID {id:?}");
        id
    }

    /// Makes the directory `dir` in this test's scratch holding `files` (relative path →
    /// contents; parents are made) and packs it; returns the ware ID.
    pub fn pack_files(&self, dir: &str, files: &[(&str, &[u8])]) -> String {
        let root = self.path(dir);
        std::fs::create_dir_all(&root).unwrap();
        for (rel, data) in files {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, data).unwrap();
        }
        self.pack(&root)
    }

    /// Packs a tar stream given on stdin; returns the output (the caller checks success).
    pub fn pack_stdin(&self, tar: &[u8], extra: &[&str]) -> Output {
        use std::io::Write;
        let mut child = self
            .command()
            .arg("pack")
            .args(extra)
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ware");
        let mut stdin = child.stdin.take().expect("stdin");
        let data = tar.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        let out = child.wait_with_output().expect("wait ware");
        let _ = writer.join();
        out
    }

    /// The bytes the store's first mount fetched (demand, readahead, prefetch and fill),
    /// and its `fetched` counters from `ware --json daemon status`.
    pub fn first_mount_fetched(&self) -> (u64, serde_json::Value) {
        let status: serde_json::Value =
            serde_json::from_str(&self.ok(["--json", "daemon", "status"])).expect("status json");
        let f = status["mounts"][0]["fetched"].clone();
        let got = [
            "demand_bytes",
            "readahead_bytes",
            "prefetch_bytes",
            "fill_bytes",
        ]
        .iter()
        .map(|k| f[k].as_u64().unwrap_or_default())
        .sum();
        (got, f)
    }

    /// `ware --json stats` as JSON.
    pub fn stats(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(["--json", "stats"])).expect("stats json")
    }
}

/// A test stops what it started: the store's daemon (and with it every mount it serves).
impl Drop for Ware {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Keep the store (and its daemon.log) of a failed test for a post-mortem.
            self.dir.disable_cleanup(true);
            eprintln!("test files kept in {}", self.dir.path().display());
        }
        if self.store().join("daemon.sock").exists() {
            let _ = self
                .command()
                .args(["daemon", "stop"])
                .stdin(Stdio::null())
                .output();
        }
    }
}

/// The trimmed stdout of a `ware` run that must have succeeded (its stderr shown if not).
pub fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "ware failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A copy of the `ware` binary that every user may run: the checkout (and its `target/`) may
/// sit in a directory only its owner can enter, such as root's home.
pub fn binary_for_others() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    static COPY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    COPY.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ware-test-bin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("binary dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = dir.join("ware");
        std::fs::copy(env!("CARGO_BIN_EXE_ware"), &bin).expect("copy ware");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin
    })
    .clone()
}

/// Everything a user would notice about one entry.
#[derive(Debug, PartialEq, Eq)]
pub struct Seen {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Option<(i64, i64)>,
    pub content: Option<[u8; 32]>,
    pub size: u64,
    pub target: Option<Vec<u8>>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    pub rdev: u64,
    /// Index of the first path with the same inode (hardlink structure), if it has others.
    pub link_of: Option<Vec<u8>>,
}

/// Reads a tree into path → [`Seen`]. `skip` leaves out kinds (e.g. devices) by name.
pub fn snapshot(
    root: &Path,
    with_mtime: bool,
    with_owner: bool,
    skip: &[&str],
) -> BTreeMap<Vec<u8>, Seen> {
    let mut out = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    walk(
        root,
        root,
        with_mtime,
        with_owner,
        skip,
        &mut out,
        &mut inodes,
    );
    out
}

fn walk(
    root: &Path,
    path: &Path,
    with_mtime: bool,
    with_owner: bool,
    skip: &[&str],
    out: &mut BTreeMap<Vec<u8>, Seen>,
    inodes: &mut HashMap<(u64, u64), Vec<u8>>,
) {
    let md = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rel = path
        .strip_prefix(root)
        .expect("under root")
        .as_os_str()
        .as_bytes()
        .to_vec();
    let ft = md.file_type();
    use std::os::unix::fs::FileTypeExt;
    let kind = if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else {
        "socket"
    };
    if skip.contains(&kind) {
        return;
    }
    let content = ft
        .is_file()
        .then(|| *blake3::hash(&std::fs::read(path).expect("read file")).as_bytes());
    let target = ft.is_symlink().then(|| {
        std::fs::read_link(path)
            .expect("readlink")
            .as_os_str()
            .as_bytes()
            .to_vec()
    });
    let link_of = if ft.is_file() && md.nlink() > 1 {
        Some(
            inodes
                .entry((md.dev(), md.ino()))
                .or_insert_with(|| rel.clone())
                .clone(),
        )
    } else {
        None
    };
    out.insert(
        rel,
        Seen {
            kind,
            mode: md.mode() & 0o7777,
            uid: if with_owner { md.uid() } else { 0 },
            gid: if with_owner { md.gid() } else { 0 },
            mtime: (with_mtime && !ft.is_dir()).then(|| (md.mtime(), md.mtime_nsec())),
            content,
            size: if ft.is_file() { md.len() } else { 0 },
            target,
            xattrs: xattrs(path),
            rdev: md.rdev(),
            link_of,
        },
    );
    if ft.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(path)
            .expect("read_dir")
            .map(|e| e.expect("dirent").file_name())
            .collect();
        names.sort();
        for n in names {
            walk(
                root,
                &path.join(n),
                with_mtime,
                with_owner,
                skip,
                out,
                inodes,
            );
        }
    }
}

/// A path's xattrs (user-visible ones), sorted.
pub fn xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut buf = vec![0u8; 65536];
    let n = match rustix::fs::llistxattr(path, &mut buf[..]) {
        Ok(n) => n,
        Err(_) => return Vec::new(),
    };
    let mut out = Vec::new();
    for name in buf[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let mut v = vec![0u8; 65536];
        let cname = std::ffi::CString::new(name).expect("xattr name");
        if let Ok(len) = rustix::fs::lgetxattr(path, cname.as_c_str(), &mut v[..]) {
            v.truncate(len);
            out.push((name.to_vec(), v));
        }
    }
    out.sort();
    out
}

/// Asserts two snapshots are equal, reporting the first few differing paths.
pub fn assert_same(a: &BTreeMap<Vec<u8>, Seen>, b: &BTreeMap<Vec<u8>, Seen>) {
    let mut diffs = Vec::new();
    for (k, va) in a {
        match b.get(k) {
            None => diffs.push(format!("only in source: {}", String::from_utf8_lossy(k))),
            Some(vb) if va != vb => {
                diffs.push(format!("{}: {va:?} != {vb:?}", String::from_utf8_lossy(k)))
            }
            _ => {}
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            diffs.push(format!("only in copy: {}", String::from_utf8_lossy(k)));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} differences, first ones:\n{}",
        diffs.len(),
        diffs
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
