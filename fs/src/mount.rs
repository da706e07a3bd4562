//! Mounting and unmounting, and finding warefs mounts in /proc/self/mountinfo.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fuser::{BackgroundSession, Config, MountOption, SessionACL};
use rustix::mount::UnmountFlags;
use ware_store::{BlockSource, Reader};

use crate::core::Core;
use crate::fuse::WareFs;
use crate::fusermount;
use crate::{FsError, MountConfig, MountRoot};

/// The FUSE subtype of every warefs mount: /proc/self/mountinfo shows `fuse.ware`.
const SUBTYPE: &str = "ware";
const FSTYPE: &str = "fuse.ware";

/// A live mount. Dropping it unmounts (lazily, if the mount is busy).
pub struct Mount {
    mountpoint: PathBuf,
    session: Option<BackgroundSession>,
    core: Arc<Core>,
}

/// Mounts `root` read-only at `mountpoint`, served from `src`; returns once the mount is
/// visible in /proc/self/mountinfo. For [`MountRoot::Ware`] the ware's root node is read
/// first: a missing or corrupt ID fails with [`FsError::Ware`] and nothing is mounted.
pub fn mount(
    src: Arc<dyn BlockSource>,
    root: MountRoot,
    mountpoint: &Path,
    cfg: &MountConfig,
) -> Result<Mount, FsError> {
    let root_entry = match &root {
        MountRoot::Ware(id) => {
            let entry = Reader::new(&*src)
                .root(id)
                .map_err(|source| FsError::Ware { id: id.0, source })?;
            // The root node is what any use of the ware reads first.
            if let Some(log) = &cfg.reads {
                log.read(&id.0, &id.0);
            }
            Some(entry)
        }
        MountRoot::Foreign(cid) => {
            let fail = |source| FsError::Ware { id: *cid, source };
            let tree = src.foreign().ok_or_else(|| {
                fail(ware_store::Error::BadId(format!(
                    "{cid}: this source shows no foreign (IPFS) trees"
                )))
            })?;
            let root = tree.root(cid).map_err(fail)?;
            if root.kind != ware_store::node::Kind::Dir {
                return Err(fail(ware_store::Error::BadId(format!(
                    "{cid} is not a directory (only directories can be mounted; try `ware cat`)"
                ))));
            }
            Some(root)
        }
        MountRoot::All(_) => None,
    };
    let bad = |why: String| FsError::Mountpoint {
        path: mountpoint.to_path_buf(),
        why,
    };
    let mp = mountpoint.canonicalize().map_err(|e| bad(e.to_string()))?;
    if !mp.is_dir() {
        return Err(bad("not a directory".into()));
    }
    let core = Core::new(src, &root, root_entry, cfg.caches.clone())
        .with_owner(cfg.owner)
        .with_reads(cfg.reads.clone())
        .with_siblings(cfg.siblings_bytes, cfg.opened_bytes);
    let core = Arc::new(core);

    let mut options = vec![
        MountOption::FSName(cfg.fsname.replace([',', ' ', '\t', '\n', '\\'], "_")),
        // fuser mounts as plain "fuse" and keeps `Subtype` for fusermount; the kernel takes
        // the subtype as a mount option too.
        MountOption::CUSTOM(format!("subtype={SUBTYPE}")),
        MountOption::RO,
        MountOption::DefaultPermissions,
        MountOption::CUSTOM(format!("max_read={}", cfg.max_read.max(4096))),
        if cfg.suid {
            MountOption::Suid
        } else {
            MountOption::NoSuid
        },
        if cfg.dev {
            MountOption::Dev
        } else {
            MountOption::NoDev
        },
    ];
    options.dedup();
    let mut config = Config::default();
    config.mount_options = options;
    config.acl = if cfg.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    config.n_threads = Some(cfg.threads.max(1));
    config.clone_fd = true;

    let mount_err = |source| FsError::Mount {
        path: mp.clone(),
        source,
    };
    let session = if fusermount::needed() {
        let mut opts = vec![
            format!(
                "fsname={}",
                cfg.fsname.replace([',', ' ', '\t', '\n', '\\'], "_")
            ),
            format!("subtype={SUBTYPE}"),
            "ro,nosuid,nodev,default_permissions".to_string(),
            format!("max_read={}", cfg.max_read.max(4096)),
        ];
        if cfg.allow_other {
            opts.push("allow_other".into());
        }
        let fd = fusermount::mount(&mp, &opts.join(",")).map_err(mount_err)?;
        fuser::Session::from_fd(WareFs::new(core.clone()), fd, config.acl, config)
            .and_then(|s| s.spawn())
            .map_err(mount_err)?
    } else {
        fuser::spawn_mount(WareFs::new(core.clone()), &mp, &config).map_err(mount_err)?
    };
    let mount = Mount {
        mountpoint: mp.clone(),
        session: Some(session),
        core,
    };
    let deadline = Instant::now() + cfg.mount_timeout;
    while !ware_mounts().contains(&mp) {
        if Instant::now() > deadline || mount.is_finished() {
            return Err(FsError::NotLive {
                path: mp,
                secs: cfg.mount_timeout.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if cfg.read_ahead_kb > 0 {
        set_read_ahead(&mp, cfg.read_ahead_kb);
    }
    tracing::info!(mountpoint = %mp.display(), "mounted");
    Ok(mount)
}

/// Raises the kernel's readahead for the mount (a speed-up only: failures are logged).
fn set_read_ahead(mp: &Path, kb: u32) {
    let dev = match std::fs::metadata(mp) {
        Ok(m) => m.dev(),
        Err(e) => {
            tracing::debug!("readahead: stat {}: {e}", mp.display());
            return;
        }
    };
    let file = format!(
        "/sys/class/bdi/{}:{}/read_ahead_kb",
        rustix::fs::major(dev),
        rustix::fs::minor(dev)
    );
    if let Err(e) = std::fs::write(&file, kb.to_string()) {
        tracing::debug!("readahead: {file}: {e}");
    }
}

impl Mount {
    /// Inodes the mount holds now: about what the kernel holds (see `forget`), plus the roots.
    pub fn inodes(&self) -> usize {
        self.core.inode_count()
    }

    /// Where it is mounted (canonical path).
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// True once the session has ended, for example after `umount` from outside.
    pub fn is_finished(&self) -> bool {
        self.session.as_ref().is_none_or(|s| s.guard.is_finished())
    }

    /// Unmounts and waits for the serving threads to finish. A busy mount fails with
    /// [`FsError::Unmount`] and is then detached lazily: it leaves the namespace at once and
    /// ends when its last user lets go.
    pub fn unmount(mut self) -> Result<(), FsError> {
        self.finish(false)
    }

    /// Unmounts, but leaves a mount that stays busy in place: a transient user (a `statfs`
    /// or an `ls` finishing) is waited out for up to `patience`; after that the mount is
    /// untouched and the error is EBUSY, for the caller to report or to [`Mount::unmount`]
    /// lazily.
    pub fn try_unmount(&mut self, patience: Duration) -> Result<(), FsError> {
        let deadline = Instant::now() + patience;
        while !self.is_finished() {
            match sys_unmount(&self.mountpoint, false) {
                Ok(()) => break,
                Err(e) if e == rustix::io::Errno::BUSY && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) if e == rustix::io::Errno::BUSY => {
                    return Err(FsError::Unmount {
                        path: self.mountpoint.clone(),
                        source: e.into(),
                    });
                }
                // Gone already, or another failure: `finish` sorts it out.
                Err(_) => break,
            }
        }
        self.finish(false)
    }

    fn finish(&mut self, quiet: bool) -> Result<(), FsError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let failed = if session.guard.is_finished() {
            None
        } else {
            match sys_unmount(&self.mountpoint, false) {
                Ok(()) => None,
                // Already unmounted from outside, the session just has not noticed yet.
                Err(e)
                    if e == rustix::io::Errno::INVAL
                        && !ware_mounts().contains(&self.mountpoint) =>
                {
                    None
                }
                Err(e) => Some(e),
            }
        };
        if let Some(e) = failed {
            let err = std::io::Error::from(e);
            if !quiet {
                tracing::warn!(mountpoint = %self.mountpoint.display(), "unmount: {err}; detaching");
            }
            if let Err(e) = sys_unmount(&self.mountpoint, true) {
                tracing::warn!(mountpoint = %self.mountpoint.display(), "detach: {e}");
            }
            // The session ends when the detached mount's last user lets go; wait for it
            // away from the caller, so fuser never unmounts the path a second time.
            let reaper = std::thread::Builder::new()
                .name("ware-fs-reaper".into())
                .spawn(move || {
                    let _ = session.join();
                });
            if let Err(e) = reaper {
                tracing::warn!("cannot start a thread to reap a detached mount: {e}");
            }
            return Err(FsError::Unmount {
                path: self.mountpoint.clone(),
                source: err,
            });
        }
        if let Err(e) = session.join() {
            tracing::warn!(mountpoint = %self.mountpoint.display(), "FUSE session ended with: {e}");
        }
        tracing::info!(mountpoint = %self.mountpoint.display(), "unmounted");
        Ok(())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = self.finish(true);
    }
}

impl std::fmt::Debug for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mount")
            .field("mountpoint", &self.mountpoint)
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Lazily unmounts (`MNT_DETACH`) whatever is mounted at `path`: the way to clear a mount
/// whose daemon died (every access gives ENOTCONN).
pub fn detach_unmount(path: &Path) -> Result<(), FsError> {
    sys_unmount(path, true).map_err(|e| FsError::Unmount {
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// Unmounts (`lazy`: detaches), through fusermount3 when this process is not root.
fn sys_unmount(path: &Path, lazy: bool) -> Result<(), rustix::io::Errno> {
    if fusermount::needed() {
        return fusermount::unmount(path, lazy).map_err(|e| {
            e.raw_os_error()
                .map(rustix::io::Errno::from_raw_os_error)
                .unwrap_or(rustix::io::Errno::IO)
        });
    }
    let flags = if lazy {
        UnmountFlags::DETACH
    } else {
        UnmountFlags::empty()
    };
    rustix::mount::unmount(path, flags)
}

/// Mountpoints of the warefs FUSE mounts (type `fuse.ware`) in this mount namespace.
pub fn ware_mounts() -> Vec<PathBuf> {
    match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(s) => parse_mountinfo(&s),
        Err(e) => {
            tracing::warn!("/proc/self/mountinfo: {e}");
            Vec::new()
        }
    }
}

/// True when `path` is a mount whose daemon is gone (the kernel answers ENOTCONN). Asked with
/// `statfs`, which always reaches the daemon: a plain `stat` may be answered from attributes
/// the kernel still holds (a ware's are cached for long).
pub fn is_dead(path: &Path) -> bool {
    let notconn = rustix::io::Errno::NOTCONN;
    match rustix::fs::statfs(path) {
        Ok(_) => false,
        Err(e) if e == notconn => true,
        Err(_) => std::fs::symlink_metadata(path)
            .is_err_and(|e| e.raw_os_error() == Some(notconn.raw_os_error())),
    }
}

fn parse_mountinfo(text: &str) -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if fields.get(sep + 1) == Some(&FSTYPE)
            && let Some(mp) = fields.get(4)
        {
            out.push(PathBuf::from(std::ffi::OsString::from_vec(unescape(mp))));
        }
    }
    out
}

/// Undoes the kernel's octal escapes (`\040` for a space, and so on).
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_is_parsed_and_unescaped() {
        let text = "\
36 35 98:0 / /mnt/a\\040b rw,nosuid - fuse.ware ware ro,user_id=0
37 35 0:50 / /mnt/other rw - fuse sshfs rw
38 35 0:51 / /mnt/c\\134d rw shared:5 - fuse.ware ware ro
39 35 0:52 / /x rw - ext4 /dev/sda1 rw
";
        assert_eq!(
            parse_mountinfo(text),
            vec![PathBuf::from("/mnt/a b"), PathBuf::from("/mnt/c\\d")]
        );
        assert_eq!(unescape("a\\011b\\"), b"a\tb\\");
    }
}
