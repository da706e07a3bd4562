//! A directory of a ware as a tar stream (`?format=tar`): its files, directories and symlinks
//! with their modes, owners and mtimes, depth-first in name order; file bytes read chunk by
//! chunk as the stream goes, each verified. Devices and fifos are left out.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use ware_store::db::Store;
use ware_store::node::{ChunkRef, Entry, Kind};
use ware_store::{BlockSource, Reader};

/// Reads a file's bytes chunk by chunk from the store.
struct FileBytes<'a> {
    store: &'a Store,
    chunks: std::vec::IntoIter<ChunkRef>,
    current: Vec<u8>,
    at: usize,
}

impl Read for FileBytes<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            let Some(c) = self.chunks.next() else {
                return Ok(0);
            };
            let id = c.id().map_err(|e| std::io::Error::other(e.to_string()))?;
            self.current = self
                .store
                .chunk(&id)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            self.at = 0;
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn header(e: &Entry, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(e.mode & 0o7777);
    h.set_uid(u64::from(e.uid));
    h.set_gid(u64::from(e.gid));
    h.set_mtime(e.mtime.max(0) as u64);
    h.set_size(size);
    h
}

/// Writes `dir` (a directory of `ware`) as a tar to `out`.
pub(super) fn write(store: &Store, dir: &Entry, out: &mut dyn Write) -> std::io::Result<()> {
    let fail = |e: ware_store::Error| std::io::Error::other(e.to_string());
    let reader = Reader::new(store as &dyn BlockSource);
    let mut tar = tar::Builder::new(out);
    // Depth-first in name order: each level's entries in order, a directory's before its
    // next sibling.
    let mut stack: Vec<(PathBuf, std::vec::IntoIter<Entry>)> =
        vec![(PathBuf::new(), reader.list(dir).map_err(fail)?.into_iter())];
    while let Some((path, next)) = stack.last_mut() {
        let Some(e) = next.next() else {
            stack.pop();
            continue;
        };
        let p = path.join(OsStr::from_bytes(&e.name));
        match e.kind {
            Kind::Dir => {
                let mut h = header(&e, tar::EntryType::Directory, 0);
                tar.append_data(&mut h, &p, std::io::empty())?;
                let children = reader.list(&e).map_err(fail)?;
                stack.push((p, children.into_iter()));
            }
            Kind::File => {
                let mut h = header(&e, tar::EntryType::Regular, e.size);
                if let Some(d) = &e.inline {
                    tar.append_data(&mut h, &p, &d[..])?;
                } else {
                    let bytes = FileBytes {
                        store,
                        chunks: reader.chunks(&e).map_err(fail)?.into_iter(),
                        current: Vec::new(),
                        at: 0,
                    };
                    tar.append_data(&mut h, &p, bytes)?;
                }
            }
            Kind::Symlink => {
                let mut h = header(&e, tar::EntryType::Symlink, 0);
                let target = e.target.as_deref().map(|t| &t[..]).unwrap_or_default();
                tar.append_link(&mut h, &p, OsStr::from_bytes(target))?;
            }
            _ => {}
        }
    }
    tar.finish()
}
