//! The store directory is private to its owner: mode 0700, every file in it 0600.
//!
//! A store holds the bytes of every file packed into it, 0600 files included, so its modes
//! must not be wider than the most private file it may hold. The process that opens a store sets
//! its umask to 077 before RocksDB creates anything (RocksDB writes new files from background
//! threads for as long as the store is open, so the umask stays), and a store found with wider
//! modes (made by an older ware, or by hand) is narrowed at open, with a warning.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result};

/// Makes `dir` ready to open as a private store. With `create`, a missing directory is made
/// (0700); without it, a directory that holds no store is [`Error::NoStore`] and nothing is
/// created.
pub(crate) fn prepare(dir: &Path, create: bool) -> Result<()> {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    match std::fs::metadata(dir) {
        Ok(md) if !md.is_dir() => {
            return Err(Error::BadStore {
                dir: dir.to_path_buf(),
                why:
                    "is a file, not a store directory (point --store or WARE_STORE at a directory)"
                        .into(),
            });
        }
        Ok(_) => {
            if !create {
                // Only a store that is not there is "no store": one we may not enter says so.
                // A store another process is creating has its lock before its database: the
                // caller takes the lock to tell "in use" from "no store".
                match std::fs::symlink_metadata(dir.join("CURRENT")) {
                    Ok(_) => {}
                    Err(e)
                        if e.kind() == std::io::ErrorKind::NotFound
                            && !dir.join("ware.lock").exists() =>
                    {
                        return Err(Error::NoStore {
                            dir: dir.to_path_buf(),
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(dir, e)),
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !create {
                return Err(Error::NoStore {
                    dir: dir.to_path_buf(),
                });
            }
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::io(dir, e))?;
        }
        Err(e) => return Err(Error::io(dir, e)),
    }
    narrow(dir);
    Ok(())
}

/// Takes group and other permissions off the store directory and everything directly in it
/// (RocksDB keeps its files flat; `run/` and the socket are made private by their makers).
fn narrow(dir: &Path) {
    let mut narrowed = 0usize;
    let mut fix = |path: &Path, md: &std::fs::Metadata, want: u32| {
        let mode = md.mode() & 0o7777;
        if mode & 0o077 != 0 {
            let new = (mode & !0o077) | want;
            match std::fs::set_permissions(path, std::fs::Permissions::from_mode(new)) {
                Ok(()) => narrowed += 1,
                Err(e) => tracing::warn!(
                    "{}: mode {mode:04o} is readable by others and cannot be narrowed: {e}",
                    path.display()
                ),
            }
        }
    };
    if let Ok(md) = std::fs::metadata(dir) {
        fix(dir, &md, 0o700);
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            // Never follow a symlink out of the store.
            let Ok(md) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if md.is_dir() {
                fix(&path, &md, 0o700);
            } else if md.is_file() {
                fix(&path, &md, 0o600);
            }
        }
    }
    if narrowed > 0 {
        tracing::warn!(
            "store {}: {narrowed} files and directories were readable by other users; made private (0700/0600)",
            dir.display()
        );
    }
}
