//! `file:///abs/dir`: a warehouse in a local (or shared, mounted) directory.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::key::{validate_key, validate_prefix};
use crate::{Kind, Warehouse};

/// Temporary files of puts in progress start with this; listings skip them.
const TMP_PREFIX: &str = ".tmp-";

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A directory warehouse: key `a/b` is the file `ROOT/a/b`. Puts write a temporary file in the
/// target's directory, fsync it, rename it over the target and fsync the directory, so a
/// reader sees the old object or the whole new one, and a crash leaves no half object.
#[derive(Debug)]
pub struct DirWarehouse {
    url: String,
    root: PathBuf,
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
        Ok(DirWarehouse { url, root })
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }

    fn key_url(&self, key: &str) -> String {
        format!("{}/{}", self.url.trim_end_matches('/'), key)
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
        let path = self.path(key)?;
        fs::read(&path)
            .map(Bytes::from)
            .map_err(|e| self.io("read", &path, e, key))
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let path = self.path(key)?;
        let len = crate::key::range_len(&self.key_url(key), &range)?;
        let mut file = File::open(&path).map_err(|e| self.io("open", &path, e, key))?;
        let size = file
            .metadata()
            .map_err(|e| self.io("stat", &path, e, key))?
            .len();
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

    fn put(&self, key: &str, data: Bytes) -> Result<()> {
        let path = self.path(key)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| Error::Io {
            op: "create directory",
            path: dir.display().to_string(),
            source: e,
        })?;
        let tmp = dir.join(format!(
            "{TMP_PREFIX}{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
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

    fn exists(&self, key: &str) -> Result<bool> {
        let path = self.path(key)?;
        match fs::metadata(&path) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            // A file where a directory of the key should be: the key cannot exist.
            Err(e) if e.raw_os_error() == Some(20) => Ok(false),
            Err(e) => Err(self.io("stat", &path, e, key)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
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
