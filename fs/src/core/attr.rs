//! Attributes: what `stat` shows of a ware's entry, or of the synthetic directories and
//! links of an `--all` mount.

use super::*;

/// An inode's attributes, as `stat` shows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Attr {
    pub ino: u64,
    pub size: u64,
    /// 512-byte blocks.
    pub blocks: u64,
    /// Access, modification and change time alike (a ware has one time per entry).
    pub time: SystemTime,
    pub kind: Kind,
    /// Permission bits, setuid/setgid/sticky included.
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    /// Device number in the kernel's `new_encode_dev` form.
    pub rdev: u32,
    pub blksize: u32,
}

fn time(secs: i64, nsec: u32) -> SystemTime {
    let t = if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    };
    t.and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nsec))))
        .unwrap_or(UNIX_EPOCH)
}

/// The kernel's `new_encode_dev`: the form `st_rdev` travels in over FUSE.
fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

impl Core {
    pub(super) fn synthetic(&self, ino: u64, kind: Kind, perm: u16, size: u64) -> Attr {
        Attr {
            ino,
            size,
            blocks: 0,
            time: self.started,
            kind,
            perm,
            nlink: 1,
            uid: self.owner.map_or(0, |o| o.0),
            gid: self.owner.map_or(0, |o| o.1),
            rdev: 0,
            blksize: BLOCK,
        }
    }

    /// A node's attributes and how long the kernel may keep them.
    pub(super) fn attr(&self, node: &Node) -> R<(Attr, Duration)> {
        match &node.kind {
            NodeKind::AllRoot | NodeKind::NamesDir => Ok((
                self.synthetic(node.ino, Kind::Dir, 0o555, u64::from(BLOCK)),
                SHORT_TTL,
            )),
            NodeKind::Listed { at, .. } => {
                let mut attr = self.synthetic(node.ino, Kind::Dir, 0o555, u64::from(BLOCK));
                attr.time = *at;
                Ok((attr, SHORT_TTL))
            }
            NodeKind::NameLink(target) => {
                let size = Self::link_target(target).len() as u64;
                Ok((
                    self.synthetic(node.ino, Kind::Symlink, 0o777, size),
                    SHORT_TTL,
                ))
            }
            NodeKind::Ware { ware, entry, .. } => {
                let nlink = match (entry.kind, entry.hardlink) {
                    (Kind::File, Some(g)) => self.link_counts(ware)?.get(&g).copied().unwrap_or(1),
                    _ => 1,
                };
                let (size, blocks) = match entry.kind {
                    Kind::File => (entry.size, entry.size.div_ceil(u64::from(BLOCK)) * 8),
                    Kind::Dir => (u64::from(BLOCK), 8),
                    Kind::Symlink => (entry.target.as_ref().map_or(0, |t| t.len() as u64), 0),
                    _ => (0, 0),
                };
                let t = time(entry.mtime, entry.mtime_nsec);
                Ok((
                    Attr {
                        ino: node.ino,
                        size,
                        blocks,
                        time: t,
                        kind: entry.kind,
                        perm: (entry.mode & 0o7777) as u16,
                        nlink,
                        uid: self.owner.map_or(entry.uid, |o| o.0),
                        gid: self.owner.map_or(entry.gid, |o| o.1),
                        rdev: entry.rdev.map_or(0, |(ma, mi)| encode_dev(ma, mi)),
                        blksize: BLOCK,
                    },
                    LONG_TTL,
                ))
            }
        }
    }
}
