//! Unpacking: a ware becomes a directory tree on disk.
//!
//! Invariant: nothing is created outside the target. Every entry is created with an `*at`
//! system call relative to a directory descriptor this unpack created itself (opened with
//! `O_NOFOLLOW`), under a name that is a single validated path component, with `O_EXCL` or
//! its equivalent, so no symlink (planted or unpacked) is ever followed; hardlink sources are
//! reopened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`. The target must be empty.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timestamps, XattrFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::id::WareId;
use crate::node::{Entry, Kind, MAX_DEPTH};
use crate::pack::filters::Notices;
use crate::pack::{Progress, with_big_stack};
use crate::source::BlockSource;
use crate::tree::Reader;

/// Files whose contents are being written at once.
const WRITERS_IN_FLIGHT: usize = 64;

/// What an unpack did.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct UnpackReport {
    /// Regular files created (hardlinks included).
    pub files: u64,
    /// Directories created, the target included.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Devices and fifos created.
    pub specials: u64,
    /// Content bytes written.
    pub bytes: u64,
    /// Things the user should know (owners not set, xattrs refused, …).
    pub notices: Vec<String>,
}

struct Unpacker<'a> {
    reader: Reader<'a>,
    root: OwnedFd,
    target: PathBuf,
    set_owners: bool,
    progress: &'a dyn Progress,
    /// Hardlink group → path (relative to the target) of its first name.
    links: Mutex<HashMap<u64, Vec<u8>>>,
    report: Mutex<UnpackReport>,
    notices: Mutex<Notices>,
    error: Mutex<Option<Error>>,
}

/// Unpacks `ware` into `target`, which must be absent or an empty directory.
pub fn unpack(
    src: &dyn BlockSource,
    ware: &WareId,
    target: &Path,
    progress: &dyn Progress,
) -> Result<UnpackReport> {
    let reader = Reader::new(src);
    let root_entry = reader.root(ware)?;
    let io = |e: std::io::Error| Error::io(target, e);
    match std::fs::symlink_metadata(target) {
        Ok(md) if md.is_dir() => {
            if std::fs::read_dir(target).map_err(io)?.next().is_some() {
                return Err(Error::Unpack {
                    path: target.into(),
                    why: "target directory is not empty".into(),
                });
            }
        }
        Ok(_) => {
            return Err(Error::Unpack {
                path: target.into(),
                why: "target exists and is not a directory".into(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir(target).map_err(io)?
        }
        Err(e) => return Err(io(e)),
    }
    let root = rustix::fs::open(
        target,
        OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io(target, e.into()))?;
    let set_owners = rustix::process::geteuid().is_root();
    let u = Unpacker {
        reader,
        root,
        target: target.to_path_buf(),
        set_owners,
        progress,
        links: Mutex::new(HashMap::new()),
        report: Mutex::new(UnpackReport::default()),
        notices: Mutex::new(Notices::default()),
        error: Mutex::new(None),
    };
    with_big_stack(move || {
        let (tokens_tx, tokens_rx) = crossbeam_channel::bounded(WRITERS_IN_FLIGHT);
        let walked = rayon::in_place_scope(|scope| -> Result<()> {
            let root_fd = u.root.try_clone().map_err(|e| Error::io(&u.target, e))?;
            let walk = Walk {
                scope,
                tokens: (&tokens_tx, &tokens_rx),
            };
            let mut rel = Vec::new();
            u.dir(&walk, &root_fd, &root_entry, &mut rel, 0)?;
            u.metadata(&root_fd, None, &root_entry, &[])?;
            Ok(())
        });
        walked?;
        if let Some(e) = u.error.lock().ok().and_then(|mut e| e.take()) {
            return Err(e);
        }
        let mut report = u.report.into_inner().unwrap_or_default();
        report.dirs += 1;
        let mut notices = u.notices.into_inner().unwrap_or_default();
        if !u.set_owners {
            notices.note(
                "not running as root: owners left as the current user",
                "(all entries)",
            );
        }
        report.notices = notices.into_messages();
        Ok(report)
    })
}

/// The parallel half of the walk: a rayon scope for content writers, and tokens bounding how
/// many run (and hold a descriptor) at once.
struct Walk<'s, 'scope> {
    scope: &'s rayon::Scope<'scope>,
    tokens: (
        &'s crossbeam_channel::Sender<()>,
        &'s crossbeam_channel::Receiver<()>,
    ),
}

fn show(rel: &[u8]) -> String {
    String::from_utf8_lossy(rel).into_owned()
}

impl<'a> Unpacker<'a> {
    fn fail_at(&self, rel: &[u8], e: impl std::fmt::Display) -> Error {
        Error::Unpack {
            path: self.target.join(show(rel)),
            why: e.to_string(),
        }
    }

    fn note(&self, what: &'static str, rel: &[u8]) {
        if let Ok(mut n) = self.notices.lock() {
            n.note(what, &show(rel));
        }
    }

    fn count(&self, f: impl FnOnce(&mut UnpackReport)) {
        if let Ok(mut r) = self.report.lock() {
            f(&mut r);
        }
    }

    fn dir<'scope>(
        &'scope self,
        walk: &Walk<'_, 'scope>,
        dirfd: &OwnedFd,
        dir: &Entry,
        rel: &mut Vec<u8>,
        depth: usize,
    ) -> Result<()>
    where
        'a: 'scope,
    {
        if depth > MAX_DEPTH {
            return Err(self.fail_at(rel, format!("deeper than {MAX_DEPTH} levels")));
        }
        let mut children = Vec::new();
        self.reader.for_each_entry(dir, &mut |e| {
            children.push(e);
            Ok(())
        })?;
        for e in children {
            let base = rel.len();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(&e.name);
            let r = self.entry(walk, dirfd, &e, rel, depth);
            rel.truncate(base);
            r?;
            if self.error.lock().map(|e| e.is_some()).unwrap_or(true) {
                return Ok(()); // a writer failed: stop early, the error is reported
            }
        }
        Ok(())
    }

    fn entry<'scope>(
        &'scope self,
        walk: &Walk<'_, 'scope>,
        dirfd: &OwnedFd,
        e: &Entry,
        rel: &mut Vec<u8>,
        depth: usize,
    ) -> Result<()>
    where
        'a: 'scope,
    {
        let name = e.name.as_slice();
        let at = |r: std::result::Result<(), Errno>| {
            r.map_err(|err| self.fail_at(rel, std::io::Error::from(err)))
        };
        match e.kind {
            Kind::Dir => {
                at(rustix::fs::mkdirat(dirfd, name, Mode::from_raw_mode(0o700)))?;
                let fd = rustix::fs::openat(
                    dirfd,
                    name,
                    OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|err| self.fail_at(rel, std::io::Error::from(err)))?;
                self.dir(walk, &fd, e, rel, depth + 1)?;
                self.metadata(&fd, None, e, rel)?;
                self.count(|r| r.dirs += 1);
            }
            Kind::File => {
                let first = e
                    .hardlink
                    .and_then(|g| self.links.lock().ok().and_then(|l| l.get(&g).cloned()));
                if let Some(first) = first {
                    let (parent, fname) = match first.iter().rposition(|&b| b == b'/') {
                        Some(i) => (&first[..i], &first[i + 1..]),
                        None => (&b""[..], &first[..]),
                    };
                    let pfd = rustix::fs::openat2(
                        &self.root,
                        if parent.is_empty() { &b"."[..] } else { parent },
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                        Mode::empty(),
                        ResolveFlags::BENEATH
                            | ResolveFlags::NO_SYMLINKS
                            | ResolveFlags::NO_MAGICLINKS,
                    )
                    .map_err(|err| self.fail_at(rel, std::io::Error::from(err)))?;
                    at(rustix::fs::linkat(
                        &pfd,
                        fname,
                        dirfd,
                        name,
                        AtFlags::empty(),
                    ))?;
                    self.count(|r| r.files += 1);
                    return Ok(());
                }
                if let Some(g) = e.hardlink
                    && let Ok(mut links) = self.links.lock()
                {
                    links.insert(g, rel.clone());
                }
                let fd = rustix::fs::openat(
                    dirfd,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|err| self.fail_at(rel, std::io::Error::from(err)))?;
                self.count(|r| r.files += 1);
                if e.inline.is_some() || e.size == 0 {
                    self.write_file(fd, e, rel)?;
                } else {
                    // Large files are written by the pool while the walk goes on.
                    let _ = walk.tokens.0.send(());
                    let this: &'scope Unpacker<'a> = self;
                    let entry = e.clone();
                    let rel = rel.clone();
                    let rx = walk.tokens.1.clone();
                    walk.scope.spawn(move |_| {
                        if let Err(err) = this.write_file(fd, &entry, &rel)
                            && let Ok(mut slot) = this.error.lock()
                            && slot.is_none()
                        {
                            *slot = Some(err);
                        }
                        let _ = rx.recv();
                    });
                }
            }
            Kind::Symlink => {
                let target: &[u8] = e
                    .target
                    .as_deref()
                    .map(|t| t.as_slice())
                    .unwrap_or_default();
                at(rustix::fs::symlinkat(target, dirfd, name))?;
                self.metadata(dirfd, Some(name), e, rel)?;
                self.count(|r| r.symlinks += 1);
            }
            Kind::Fifo | Kind::CharDevice | Kind::BlockDevice => {
                let (ft, dev) = match e.kind {
                    Kind::Fifo => (FileType::Fifo, 0),
                    Kind::CharDevice => (
                        FileType::CharacterDevice,
                        e.rdev.map(|(a, b)| rustix::fs::makedev(a, b)).unwrap_or(0),
                    ),
                    _ => (
                        FileType::BlockDevice,
                        e.rdev.map(|(a, b)| rustix::fs::makedev(a, b)).unwrap_or(0),
                    ),
                };
                match rustix::fs::mknodat(dirfd, name, ft, Mode::from_raw_mode(0o600), dev) {
                    Ok(()) => {
                        self.metadata(dirfd, Some(name), e, rel)?;
                        self.count(|r| r.specials += 1);
                    }
                    Err(Errno::PERM) => self.note("device nodes not created (needs root)", rel),
                    Err(err) => return Err(self.fail_at(rel, std::io::Error::from(err))),
                }
            }
        }
        Ok(())
    }

    fn write_file(&self, fd: OwnedFd, e: &Entry, rel: &[u8]) -> Result<()> {
        let mut out = BufWriter::with_capacity(256 * 1024, File::from(fd));
        let n = self
            .reader
            .copy_file(e, &mut out)
            .map_err(|err| match err {
                Error::Io { source, .. } => self.fail_at(rel, source),
                other => other,
            })?;
        out.flush().map_err(|err| self.fail_at(rel, err))?;
        let file = out
            .into_inner()
            .map_err(|err| self.fail_at(rel, err.into_error()))?;
        self.progress.advance(n);
        self.count(|r| r.bytes += n);
        self.metadata(&OwnedFd::from(file), None, e, rel)
    }

    /// Applies xattrs, owner, mode and mtime, in that order (chown clears setuid bits, and
    /// every earlier step would change the mtime). `name` is given for entries set through their
    /// parent directory (symlinks, devices); otherwise `fd` is the entry itself.
    fn metadata(&self, fd: &OwnedFd, name: Option<&[u8]>, e: &Entry, rel: &[u8]) -> Result<()> {
        let err = |x: Errno| self.fail_at(rel, std::io::Error::from(x));
        for (xn, xv) in &e.xattrs {
            let r = match name {
                None => rustix::fs::fsetxattr(fd, xn.as_slice(), xv, XattrFlags::empty()),
                Some(n) => {
                    let mut p = format!("/proc/self/fd/{}/", std::os::fd::AsRawFd::as_raw_fd(fd))
                        .into_bytes();
                    p.extend_from_slice(n);
                    rustix::fs::lsetxattr(p.as_slice(), xn.as_slice(), xv, XattrFlags::empty())
                }
            };
            match r {
                Ok(()) => {}
                Err(Errno::PERM | Errno::NOTSUP | Errno::ACCESS) => self.note(
                    "xattrs this filesystem or user cannot set were left out",
                    rel,
                ),
                Err(x) => return Err(err(x)),
            }
        }
        let owner = self.set_owners.then(|| {
            (
                rustix::fs::Uid::from_raw(e.uid),
                rustix::fs::Gid::from_raw(e.gid),
            )
        });
        let ts = Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: e.mtime,
                tv_nsec: e.mtime_nsec.into(),
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: e.mtime,
                tv_nsec: e.mtime_nsec.into(),
            },
        };
        let mode = Mode::from_raw_mode(e.mode);
        match name {
            None => {
                if let Some((u, g)) = owner {
                    rustix::fs::fchown(fd, Some(u), Some(g)).map_err(err)?;
                }
                rustix::fs::fchmod(fd, mode).map_err(err)?;
                rustix::fs::futimens(fd, &ts).map_err(err)?;
            }
            Some(n) => {
                if let Some((u, g)) = owner {
                    rustix::fs::chownat(fd.as_fd(), n, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(err)?;
                }
                if e.kind != Kind::Symlink {
                    // A device or fifo just created by mknodat under this name: not a symlink.
                    rustix::fs::chmodat(fd.as_fd(), n, mode, AtFlags::empty()).map_err(err)?;
                }
                rustix::fs::utimensat(fd.as_fd(), n, &ts, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(err)?;
            }
        }
        Ok(())
    }
}
