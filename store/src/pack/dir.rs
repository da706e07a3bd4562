//! Reading a directory tree from disk: a depth-first walk in name-byte order collects metadata
//! and small files, then every larger file is chunked in parallel through the pipeline.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::Progress;
use super::filters::{DeviceFilter, Notices, PackOptions, RawMeta};
use super::pipeline::Pipeline;
use super::tree::{Body, Content, Node, Tree};
use crate::chunk::chunker;
use crate::error::{Error, Result};
use crate::node::{INLINE_MAX, Kind, MAX_DEPTH, XATTRS_MAX, check_name};

/// A file to be chunked after the walk.
struct PendingFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

struct Walk<'o> {
    opts: &'o PackOptions,
    /// Files handed to `spawn` so far.
    pending: usize,
    /// Starts chunking a file in the background; its result comes back under its index.
    spawn: &'o (dyn Fn(usize, PendingFile) + Sync),
    /// (dev, ino) of multiply-linked files → index in `pending`.
    inodes: HashMap<(u64, u64), usize>,
    /// (dev, ino) of multiply-linked files → hardlink key.
    link_keys: HashMap<(u64, u64), u64>,
    total_bytes: u64,
}

pub(crate) fn read(
    root: &Path,
    opts: &PackOptions,
    pipe: &Pipeline,
    progress: &dyn Progress,
    notices: &mut Notices,
) -> Result<Tree> {
    // The root may be given through a symlink (as `tar -C` allows); nothing below it is followed.
    let md = fs::metadata(root).map_err(|e| Error::io(root, e))?;
    if !md.is_dir() {
        return Err(Error::bad_input(
            root.display().to_string(),
            "not a directory",
        ));
    }
    // Larger files are chunked on the thread pool as soon as the walk finds them, so reading
    // metadata and small files overlaps with chunking and compression.
    let (tx, rx) = crossbeam_channel::unbounded::<(usize, Result<Content>)>();
    let (root_node, pending) = rayon::in_place_scope(|scope| {
        let spawn = |i: usize, f: PendingFile| {
            let tx = tx.clone();
            scope.spawn(move |_| {
                let _ = tx.send((i, chunk_file(&f, pipe, progress)));
            });
        };
        let mut walk = Walk {
            opts,
            pending: 0,
            spawn: &spawn,
            inodes: HashMap::new(),
            link_keys: HashMap::new(),
            total_bytes: 0,
        };
        let node = walk.node(root, &md, 0, notices);
        progress.total(walk.total_bytes);
        node.map(|n| (n, walk.pending))
    })?;
    drop(tx);
    let mut root_node =
        root_node.ok_or_else(|| Error::bad_input(root.display().to_string(), "not a directory"))?;
    let mut contents: Vec<Option<Content>> = vec![None; pending];
    for (i, r) in rx.iter() {
        contents[i] = Some(r?);
    }
    resolve(&mut root_node, &contents)?;
    Ok(Tree { root: root_node })
}

fn resolve(node: &mut Node, contents: &[Option<Content>]) -> Result<()> {
    match &mut node.body {
        Body::File { content, .. } => {
            if let Content::Pending(i) = content {
                *content = contents[*i]
                    .clone()
                    .ok_or_else(|| Error::Db("internal error: unread file".into()))?;
            }
        }
        Body::Dir(children) => {
            for c in children.values_mut() {
                resolve(c, contents)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn chunk_file(f: &PendingFile, pipe: &Pipeline, progress: &dyn Progress) -> Result<Content> {
    let file = open_nofollow(&f.path)?;
    let md = file.metadata().map_err(|e| Error::io(&f.path, e))?;
    if md.dev() != f.dev || md.ino() != f.ino {
        return Err(Error::bad_input(
            f.path.display().to_string(),
            "file was replaced while packing",
        ));
    }
    let mut chunks = Vec::new();
    let mut size = 0u64;
    for c in chunker(file) {
        let c = c.map_err(|e| Error::io(&f.path, std::io::Error::from(e)))?;
        size += c.length as u64;
        progress.advance(c.length as u64);
        chunks.push(pipe.add(c.data)?);
    }
    if size as usize <= INLINE_MAX {
        // The file shrank below the inline threshold while we packed; its bytes are gone
        // from the stream we consumed, so say so rather than guess.
        return Err(Error::bad_input(
            f.path.display().to_string(),
            "file changed size while packing",
        ));
    }
    Ok(Content::Chunks(chunks, size))
}

fn open_nofollow(path: &Path) -> Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

impl Walk<'_> {
    /// Reads one entry (recursing into directories). `None` means "left out by a filter".
    fn node(
        &mut self,
        path: &Path,
        md: &fs::Metadata,
        depth: usize,
        notices: &mut Notices,
    ) -> Result<Option<Node>> {
        let shown = || path.display().to_string();
        let ft = md.file_type();
        let is_dir = ft.is_dir();
        let raw = RawMeta {
            mode: md.mode(),
            uid: md.uid(),
            gid: md.gid(),
            mtime: md.mtime(),
            mtime_nsec: md.mtime_nsec().clamp(0, 999_999_999) as u32,
        };
        let kind = if ft.is_file() {
            Kind::File
        } else if is_dir {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink
        } else if ft.is_fifo() {
            Kind::Fifo
        } else if ft.is_char_device() {
            Kind::CharDevice
        } else if ft.is_block_device() {
            Kind::BlockDevice
        } else {
            notices.note("sockets left out", &shown());
            return Ok(None);
        };
        if matches!(kind, Kind::Fifo | Kind::CharDevice | Kind::BlockDevice) {
            match self.opts.devices {
                DeviceFilter::Skip => {
                    notices.note(
                        "device nodes and fifos left out (--devices keep to pack them)",
                        &shown(),
                    );
                    return Ok(None);
                }
                DeviceFilter::Reject => {
                    return Err(Error::bad_input(
                        shown(),
                        "is a device node or fifo (--devices reject)",
                    ));
                }
                DeviceFilter::Keep => {}
            }
        }
        let meta = self
            .opts
            .meta(raw, is_dir, &shown(), || read_xattrs(path), notices)?;
        let body = match kind {
            Kind::Dir => {
                if depth >= MAX_DEPTH {
                    return Err(Error::bad_input(
                        shown(),
                        format!("deeper than {MAX_DEPTH} levels"),
                    ));
                }
                let mut names: Vec<Vec<u8>> = Vec::new();
                for de in fs::read_dir(path).map_err(|e| Error::io(path, e))? {
                    let de = de.map_err(|e| Error::io(path, e))?;
                    names.push(de.file_name().as_bytes().to_vec());
                }
                names.sort_unstable();
                let mut children = std::collections::BTreeMap::new();
                for name in names {
                    let child_path = path.join(std::ffi::OsStr::from_bytes(&name));
                    check_name(&name)
                        .map_err(|why| Error::bad_input(child_path.display().to_string(), why))?;
                    let cmd =
                        fs::symlink_metadata(&child_path).map_err(|e| Error::io(&child_path, e))?;
                    if let Some(child) = self.node(&child_path, &cmd, depth + 1, notices)? {
                        children.insert(name, child);
                    }
                }
                Body::Dir(children)
            }
            Kind::File => {
                let key = (md.dev(), md.ino());
                let next_key = self.link_keys.len() as u64;
                let link = (md.nlink() > 1).then(|| *self.link_keys.entry(key).or_insert(next_key));
                let content = if let Some(&i) = self.inodes.get(&key) {
                    Content::Pending(i)
                } else if md.len() as usize <= INLINE_MAX {
                    let mut data = Vec::with_capacity(md.len() as usize);
                    open_nofollow(path)?
                        .take(INLINE_MAX as u64 + 1)
                        .read_to_end(&mut data)
                        .map_err(|e| Error::io(path, e))?;
                    if data.len() > INLINE_MAX {
                        return Err(Error::bad_input(shown(), "file changed size while packing"));
                    }
                    Content::Inline(data)
                } else {
                    self.total_bytes += md.len();
                    let i = self.pending;
                    self.pending += 1;
                    (self.spawn)(
                        i,
                        PendingFile {
                            path: path.to_path_buf(),
                            dev: md.dev(),
                            ino: md.ino(),
                        },
                    );
                    if link.is_some() {
                        self.inodes.insert(key, i);
                    }
                    Content::Pending(i)
                };
                Body::File { content, link }
            }
            Kind::Symlink => {
                let target = fs::read_link(path).map_err(|e| Error::io(path, e))?;
                Body::Symlink(target.as_os_str().as_bytes().to_vec())
            }
            Kind::Fifo => Body::Special(Kind::Fifo, None),
            Kind::CharDevice | Kind::BlockDevice => {
                let rdev = md.rdev();
                Body::Special(
                    kind,
                    Some((rustix::fs::major(rdev), rustix::fs::minor(rdev))),
                )
            }
        };
        Ok(Some(Node { meta, body }))
    }
}

/// Reads a path's xattrs (without following symlinks), sorted by name.
pub(crate) fn read_xattrs(path: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let io = |e: rustix::io::Errno| Error::io(path, std::io::Error::from(e));
    let mut names = vec![0u8; 1024];
    let len = loop {
        match rustix::fs::llistxattr(path, &mut names[..]) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) if names.len() < XATTRS_MAX * 2 => {
                names.resize(names.len() * 4, 0)
            }
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(io(e)),
        }
    };
    let mut out = Vec::new();
    let mut total = 0usize;
    for name in names[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = std::ffi::CString::new(name)
            .map_err(|_| Error::bad_input(path.display().to_string(), "bad xattr name"))?;
        let mut value = vec![0u8; 256];
        let vlen = loop {
            match rustix::fs::lgetxattr(path, cname.as_c_str(), &mut value[..]) {
                Ok(n) => break n,
                Err(rustix::io::Errno::RANGE) if value.len() < XATTRS_MAX => {
                    value.resize(XATTRS_MAX, 0)
                }
                Err(rustix::io::Errno::NODATA) => break usize::MAX, // removed meanwhile
                Err(e) => return Err(io(e)),
            }
        };
        if vlen == usize::MAX {
            continue;
        }
        value.truncate(vlen);
        total += name.len() + vlen;
        if total > XATTRS_MAX {
            return Err(Error::bad_input(
                path.display().to_string(),
                format!("xattrs larger than {XATTRS_MAX} bytes"),
            ));
        }
        out.push((name.to_vec(), value));
    }
    out.sort();
    Ok(out)
}
