//! `file:///abs/dir`: a warehouse in a local (or shared, mounted) directory.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::key::{validate_key, validate_prefix};
use crate::{Kind, Warehouse};

/// Temporary files of puts in progress start with this; listings skip them.
const TMP_PREFIX: &str = ".tmp-";

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Reads of directory warehouses on their worker threads now, in this process.
static READS_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// Past this many reads not back, the file system under a warehouse hangs (a dead NFS server):
/// a new read fails at once instead of leaving one more thread stuck.
const MAX_READS_IN_FLIGHT: usize = 64;

/// A temporary file older than this was left by a put that was killed (a put writes its file
/// in seconds and renames it at once): the first put into its directory removes it.
const STALE_TMP_AGE: Duration = Duration::from_secs(3600);

/// A directory warehouse: key `a/b` is the file `ROOT/a/b`. Puts write a temporary file in the
/// target's directory, fsync it, rename it over the target and fsync the directory, so a
/// reader sees the old object or the whole new one, and a crash leaves no half object; the
/// temporaries of a killed put are removed by the next process that puts into that directory,
/// once they are an hour old. What a put creates is private to its owner (0700, 0600) unless
/// the warehouse is shared (0755, 0644), whatever the process's umask.
#[derive(Debug)]
pub struct DirWarehouse {
    url: String,
    root: PathBuf,
    shared: bool,
    /// Reads run on a worker thread and fail with [`Error::Timeout`] past this, so a file
    /// system that hangs under the warehouse (NFS with its server gone) cannot hang a reader.
    deadline: Option<Duration>,
    /// Directories whose stale temporaries this process has swept already.
    swept: Mutex<HashSet<PathBuf>>,
}

impl DirWarehouse {
    /// A warehouse rooted at `root`, an absolute path; it need not exist until the first put.
    pub fn new(root: PathBuf) -> Result<DirWarehouse> {
        let url = format!("file://{}", root.display());
        if !root.is_absolute() {
            return Err(Error::InvalidUrl {
                url,
                reason: "the directory must be an absolute path".into(),
            });
        }
        Ok(DirWarehouse {
            url,
            root,
            shared: false,
            deadline: None,
            swept: Mutex::new(HashSet::new()),
        })
    }

    /// Bounds every read (`get`, `get_range`, `exists`, `list`) by `deadline`.
    pub fn deadline(mut self, deadline: Duration) -> DirWarehouse {
        self.deadline = Some(deadline);
        self
    }

    /// Runs the read `f` on a worker thread, waiting at most the deadline for it. A worker
    /// stuck in the file system stays stuck (nothing can interrupt it) but holds nothing of the
    /// caller's; at most [`MAX_READS_IN_FLIGHT`] can be out at once.
    fn bounded<T: Send + 'static>(
        &self,
        key: &str,
        f: impl FnOnce(&DirWarehouse) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let Some(deadline) = self.deadline else {
            return f(self);
        };
        let timeout = || Error::Timeout {
            url: self.key_url(key),
            deadline,
        };
        if READS_IN_FLIGHT.fetch_add(1, Ordering::SeqCst) >= MAX_READS_IN_FLIGHT {
            READS_IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(
                url = %self.url,
                "{MAX_READS_IN_FLIGHT} reads of directory warehouses have not returned: \
                 the file system under one hangs"
            );
            return Err(timeout());
        }
        let worker = DirWarehouse {
            url: self.url.clone(),
            root: self.root.clone(),
            shared: self.shared,
            deadline: None,
            swept: Mutex::new(HashSet::new()),
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new()
            .name("dir-read".into())
            .spawn(move || {
                let r = f(&worker);
                READS_IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
                let _ = tx.send(r);
            });
        if let Err(e) = spawned {
            READS_IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::Io {
                op: "start a read worker for",
                path: self.root.display().to_string(),
                source: e,
            });
        }
        match rx.recv_timeout(deadline) {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(url = %self.key_url(key), ?deadline, "read of a directory warehouse did not return");
                Err(timeout())
            }
        }
    }

    /// Makes what puts create readable by every user (0755 directories, 0644 files).
    pub fn shared(mut self, shared: bool) -> DirWarehouse {
        self.shared = shared;
        self
    }

    fn dir_mode(&self) -> u32 {
        if self.shared { 0o755 } else { 0o700 }
    }

    fn file_mode(&self) -> u32 {
        if self.shared { 0o644 } else { 0o600 }
    }

    /// Creates `dir` and any missing parents (the root included) with this warehouse's mode,
    /// set explicitly so the umask does not decide who may read the warehouse.
    fn create_dirs(&self, dir: &Path) -> std::io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            self.create_dirs(parent)?;
        }
        match fs::DirBuilder::new().mode(self.dir_mode()).create(dir) {
            Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(self.dir_mode())),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Once per directory and process: removes temporaries of puts killed over an hour ago.
    fn sweep_stale(&self, dir: &Path) {
        if !self
            .swept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(dir.to_path_buf())
        {
            return;
        }
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        let now = SystemTime::now();
        for e in entries.flatten() {
            if !e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                continue;
            }
            let Ok(md) = e.metadata() else { continue };
            let age = md.modified().ok().and_then(|m| now.duration_since(m).ok());
            if md.is_file() && age.is_some_and(|a| a > STALE_TMP_AGE) {
                match fs::remove_file(e.path()) {
                    Ok(()) => tracing::info!(
                        "removed {}, left by an interrupted put ({} bytes)",
                        e.path().display(),
                        md.len()
                    ),
                    Err(err) => tracing::warn!("cannot remove stale {}: {err}", e.path().display()),
                }
            }
        }
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }

    fn key_url(&self, key: &str) -> String {
        format!("{}/{}", self.url.trim_end_matches('/'), key)
    }

    /// Opens the object of `key` for reading: only a regular file inside the warehouse. The
    /// open never blocks (`O_NONBLOCK`: a FIFO put in place of a pack would hang a read
    /// forever), follows no symlink out of the root (`RESOLVE_BENEATH`) nor at the end
    /// (`O_NOFOLLOW`), and what was opened is checked to be a regular file before a byte is
    /// read. Returns the file and its size.
    fn open_object(&self, key: &str) -> Result<(File, u64)> {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        let path = self.path(key)?;
        let root = rustix::fs::open(
            &self.root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.io("open", &self.root, e.into(), key))?;
        let fd = rustix::fs::openat2(
            &root,
            key,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::NOCTTY,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|e| match e {
            rustix::io::Errno::LOOP | rustix::io::Errno::XDEV => self.not_regular(key, "a symlink"),
            e => self.io("open", &path, e.into(), key),
        })?;
        let file = File::from(fd);
        let md = file
            .metadata()
            .map_err(|e| self.io("stat", &path, e, key))?;
        if !md.is_file() {
            let what = if md.is_dir() {
                "a directory"
            } else {
                "not a regular file (a FIFO, socket or device)"
            };
            return Err(self.not_regular(key, what));
        }
        Ok((file, md.len()))
    }

    fn not_regular(&self, key: &str, what: &str) -> Error {
        Error::BadResponse {
            url: self.key_url(key),
            reason: format!("is {what}; a directory warehouse serves only regular files inside it"),
        }
    }

    fn io(&self, op: &'static str, path: &Path, source: std::io::Error, key: &str) -> Error {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound {
                url: self.key_url(key),
            }
        } else {
            Error::Io {
                op,
                path: path.display().to_string(),
                source,
            }
        }
    }
}

impl Warehouse for DirWarehouse {
    fn url(&self) -> &str {
        &self.url
    }

    fn kind(&self) -> Kind {
        Kind::Dir
    }

    fn get(&self, key: &str) -> Result<Bytes> {
        let k = key.to_owned();
        self.bounded(key, move |w| w.read_object(&k))
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let k = key.to_owned();
        self.bounded(key, move |w| w.read_range(&k, range))
    }

    fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.write_object(key, data)
    }

    fn exists(&self, key: &str) -> Result<bool> {
        let k = key.to_owned();
        self.bounded(key, move |w| w.stat_object(&k))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let p = prefix.to_owned();
        self.bounded(prefix, move |w| w.list_keys(&p))
    }

    fn delete(&self, key: &str) -> Result<()> {
        let k = key.to_owned();
        self.bounded(key, move |w| {
            let path = w.path(&k)?;
            match fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(w.io("remove", &path, e, &k)),
            }
        })
    }
}

/// The reads and writes themselves, unbounded (run on a worker by [`DirWarehouse::bounded`]).
impl DirWarehouse {
    fn read_object(&self, key: &str) -> Result<Bytes> {
        let (mut file, size) = self.open_object(key)?;
        let mut buf = Vec::with_capacity(size.min(1 << 30) as usize);
        file.read_to_end(&mut buf)
            .map_err(|e| self.io("read", &self.root.join(key), e, key))?;
        Ok(Bytes::from(buf))
    }

    fn read_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let path = self.path(key)?;
        let len = crate::key::range_len(&self.key_url(key), &range)?;
        let (mut file, size) = self.open_object(key)?;
        if range.end > size {
            return Err(Error::BadResponse {
                url: self.key_url(key),
                reason: format!(
                    "range {}..{} past the end of a {size}-byte object",
                    range.start, range.end
                ),
            });
        }
        file.seek(SeekFrom::Start(range.start))
            .map_err(|e| self.io("seek", &path, e, key))?;
        let mut buf = vec![0u8; len as usize];
        file.read_exact(&mut buf).map_err(|e| Error::BadResponse {
            url: self.key_url(key),
            reason: format!("short read of range {}..{}: {e}", range.start, range.end),
        })?;
        Ok(Bytes::from(buf))
    }

    fn write_object(&self, key: &str, data: Bytes) -> Result<()> {
        let path = self.path(key)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        self.create_dirs(&dir).map_err(|e| Error::Io {
            op: "create directory",
            path: dir.display().to_string(),
            source: e,
        })?;
        self.sweep_stale(&dir);
        let tmp = dir.join(format!(
            "{TMP_PREFIX}{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let write = || -> std::io::Result<()> {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(self.file_mode())
                .open(&tmp)?;
            f.set_permissions(fs::Permissions::from_mode(self.file_mode()))?;
            f.write_all(&data)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::Io {
                op: "write",
                path: path.display().to_string(),
                source: e,
            }
        })
    }

    fn stat_object(&self, key: &str) -> Result<bool> {
        let path = self.path(key)?;
        match fs::metadata(&path) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            // A file where a directory of the key should be: the key cannot exist.
            Err(e) if e.raw_os_error() == Some(20) => Ok(false),
            Err(e) => Err(self.io("stat", &path, e, key)),
        }
    }

    fn list_keys(&self, prefix: &str) -> Result<Vec<String>> {
        validate_prefix(prefix)?;
        // Walk only the deepest directory the prefix names in full, then filter by the rest.
        let dir_part = match prefix.rfind('/') {
            Some(i) => &prefix[..=i],
            None => "",
        };
        let mut out = Vec::new();
        walk(&self.root.join(dir_part), dir_part, prefix, &mut out)?;
        out.sort();
        Ok(out)
    }
}

fn walk(dir: &Path, rel: &str, prefix: &str, out: &mut Vec<String>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.kind() == std::io::ErrorKind::NotADirectory =>
        {
            return Ok(());
        }
        Err(e) => {
            return Err(Error::Io {
                op: "list",
                path: dir.display().to_string(),
                source: e,
            });
        }
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::Io {
            op: "list",
            path: dir.display().to_string(),
            source: e,
        })?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue; // not UTF-8: cannot be a key
        };
        if name.starts_with(TMP_PREFIX) {
            continue;
        }
        let key = format!("{rel}{name}");
        let ty = entry.file_type().map_err(|e| Error::Io {
            op: "list",
            path: entry.path().display().to_string(),
            source: e,
        })?;
        if ty.is_dir() {
            let sub = format!("{key}/");
            if sub.starts_with(prefix) || prefix.starts_with(&sub) {
                walk(&entry.path(), &sub, prefix, out)?;
            }
        } else if ty.is_file() && key.starts_with(prefix) {
            out.push(key);
        }
    }
    Ok(())
}
