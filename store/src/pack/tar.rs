//! Reading a tar stream (plain, gzip or zstd) into a pack tree, chunking contents as they
//! stream by. Hostile archives get a clear error naming the entry: `..` in paths, entries
//! "through" a symlink, hardlinks to missing or non-file entries, truncated data.

use std::io::{BufRead, BufReader, Read};

use super::Progress;
use super::filters::{DeviceFilter, IdFilter, Notices, PackOptions, RawMeta};
use super::layers::Layer;
use super::pipeline::Pipeline;
use super::tree::{Body, Content, Meta, Node, Tree, show};
use crate::chunk::chunker;
use crate::error::{Error, Result};
use crate::node::{INLINE_MAX, Kind, NORMALISED_MTIME, XATTRS_MAX};

/// Metadata of a directory the archive implies but does not list: 0755, root-owned unless the
/// uid/gid filters say otherwise, normalised mtime.
fn implicit_dir(opts: &PackOptions) -> Meta {
    let id = |f: IdFilter| match f {
        IdFilter::Keep => 0,
        IdFilter::Set(v) => v,
    };
    Meta {
        mode: 0o755,
        uid: id(opts.uid),
        gid: id(opts.gid),
        mtime: NORMALISED_MTIME,
        mtime_nsec: 0,
        xattrs: Vec::new(),
    }
}

/// `input` uncompressed, its compression found by its first bytes (gzip, zstd, or none);
/// `None` when it is empty.
pub fn decompressed<'a>(
    input: impl Read + Send + 'a,
) -> std::io::Result<Option<Box<dyn Read + Send + 'a>>> {
    let mut buf = BufReader::with_capacity(1 << 20, input);
    let head = buf.fill_buf()?;
    Ok(Some(if head.is_empty() {
        return Ok(None);
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(buf))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(buf)?)
    } else {
        Box::new(buf)
    }))
}

pub(crate) fn read(
    input: &mut (dyn Read + Send),
    opts: &PackOptions,
    pipe: &Pipeline,
    progress: &dyn Progress,
    notices: &mut Notices,
) -> Result<Tree> {
    let mut r = Reading::new(opts);
    r.apply(input, opts, pipe, progress, notices, None)?;
    Ok(r.finish(notices))
}

/// Image layers applied in order, lowest first, into one tree ([`super::layers`]).
pub(crate) fn read_layers(
    layers: &mut dyn Iterator<Item = Result<Box<dyn Read + Send>>>,
    opts: &PackOptions,
    pipe: &Pipeline,
    progress: &dyn Progress,
    notices: &mut Notices,
) -> Result<Tree> {
    let mut r = Reading::new(opts);
    for (i, input) in layers.enumerate() {
        let mut layer = Layer::new(i + 1);
        r.apply(
            &mut *input?,
            opts,
            pipe,
            progress,
            notices,
            Some(&mut layer),
        )?;
    }
    Ok(r.finish(notices))
}

/// A tree being read from one tar stream, or from layers one over another.
struct Reading {
    tree: Tree,
    next_link_key: u64,
    absolute: bool,
}

impl Reading {
    fn new(opts: &PackOptions) -> Reading {
        Reading {
            tree: Tree {
                root: Node::dir(implicit_dir(opts)),
            },
            next_link_key: 0,
            absolute: false,
        }
    }

    fn finish(self, notices: &mut Notices) -> Tree {
        if self.absolute {
            notices.note("leading '/' removed from member names", "(absolute paths)");
        }
        self.tree
    }

    /// Reads one tar stream into the tree; with `layer`, as an image layer over what the tree
    /// holds (whiteouts applied, an empty layer accepted).
    fn apply(
        &mut self,
        input: &mut (dyn Read + Send),
        opts: &PackOptions,
        pipe: &Pipeline,
        progress: &dyn Progress,
        notices: &mut Notices,
        mut layer: Option<&mut Layer>,
    ) -> Result<()> {
        let label = match &layer {
            Some(l) => format!("<layer {}>", l.number),
            None => "<tar input>".to_string(),
        };
        let Some(reader) = decompressed(input).map_err(|e| Error::io(label.as_str(), e))? else {
            if layer.is_some() {
                return Ok(());
            }
            return Err(Error::bad_input(
                "<tar input>",
                "empty input: not a tar archive",
            ));
        };
        let mut archive = tar::Archive::new(reader);
        let Reading {
            tree,
            next_link_key,
            absolute,
        } = self;
        let entries = archive
            .entries()
            .map_err(|e| Error::bad_input(label.as_str(), format!("not a tar archive: {e}")))?;
        let mut count = 0u64;
        for entry in entries {
            let mut entry = entry.map_err(|e| {
                Error::bad_input(
                    match &layer {
                        Some(l) => format!("layer {} entry {}", l.number, count + 1),
                        None => format!("<tar entry {}>", count + 1),
                    },
                    format!("corrupt or truncated archive: {e}"),
                )
            })?;
            count += 1;
            let header = entry.header().clone();
            let etype = header.entry_type();
            if etype.is_pax_global_extensions() {
                continue; // not a member: its name (GNU tar: /tmp/GlobalHead.%p.%n) is no path
            }
            let raw_path = entry.path_bytes().into_owned();
            let name = match &layer {
                Some(l) => format!("layer {}: {}", l.number, String::from_utf8_lossy(&raw_path)),
                None => String::from_utf8_lossy(&raw_path).into_owned(),
            };
            let path = Tree::components(&raw_path, &name, absolute)?;
            if let Some(l) = layer.as_deref_mut()
                && l.whiteout(tree, &path, &name)?
            {
                continue;
            }
            let pax = pax(&mut entry, &name)?;
            let bad = |why: &str| Error::bad_input(name.clone(), why.to_string());
            let raw = RawMeta {
                mode: header.mode().map_err(|_| bad("bad mode field"))?,
                uid: pax
                    .uid
                    .map(Ok)
                    .unwrap_or_else(|| header.uid())
                    .map_err(|_| bad("bad uid field"))?
                    .try_into()
                    .map_err(|_| bad("uid out of range"))?,
                gid: pax
                    .gid
                    .map(Ok)
                    .unwrap_or_else(|| header.gid())
                    .map_err(|_| bad("bad gid field"))?
                    .try_into()
                    .map_err(|_| bad("gid out of range"))?,
                mtime: pax
                    .mtime
                    .map(|m| m.0)
                    .map(Ok)
                    .unwrap_or_else(|| header.mtime().map(|m| m as i64))
                    .map_err(|_| bad("bad mtime field"))?,
                mtime_nsec: pax.mtime.map(|m| m.1).unwrap_or(0),
            };
            let kind = if etype.is_file() || etype.is_contiguous() {
                Kind::File
            } else if etype.is_dir() {
                Kind::Dir
            } else if etype.is_symlink() {
                Kind::Symlink
            } else if etype.is_hard_link() {
                // Same inode as its target: metadata and content come from the target.
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| bad("hardlink without a target"))?
                    .into_owned();
                let tpath = Tree::components(&target, &name, absolute)?;
                let shown = show(&tpath);
                if tpath == path {
                    return Err(bad("hardlink to itself"));
                }
                let key = match tree.get_mut(&tpath) {
                    Some(Node {
                        body: Body::File { link, .. },
                        ..
                    }) => *link.get_or_insert_with(|| {
                        *next_link_key += 1;
                        *next_link_key
                    }),
                    Some(_) => {
                        return Err(bad(&format!(
                            "hardlink to {shown}, which is not a regular file"
                        )));
                    }
                    None => {
                        return Err(bad(&format!(
                            "hardlink to {shown}, which is not earlier in the archive"
                        )));
                    }
                };
                let mut node = tree
                    .get(&tpath)
                    .cloned()
                    .ok_or_else(|| bad("hardlink target vanished"))?;
                if let Body::File { link, .. } = &mut node.body {
                    *link = Some(key);
                }
                insert(tree, &path, node, &name, opts)?;
                if let Some(l) = layer.as_deref_mut() {
                    l.added(&path);
                }
                continue;
            } else if etype.is_fifo() || etype.is_character_special() || etype.is_block_special() {
                let kind = if etype.is_fifo() {
                    Kind::Fifo
                } else if etype.is_character_special() {
                    Kind::CharDevice
                } else {
                    Kind::BlockDevice
                };
                match opts.devices {
                    DeviceFilter::Skip => {
                        notices.note(
                            "device nodes and fifos left out (--devices keep to pack them)",
                            &name,
                        );
                        continue;
                    }
                    DeviceFilter::Reject => {
                        return Err(bad("is a device node or fifo (--devices reject)"));
                    }
                    DeviceFilter::Keep => kind,
                }
            } else if etype.is_gnu_sparse() {
                return Err(bad("sparse files in tar archives are not supported"));
            } else {
                return Err(bad(&format!(
                    "unsupported tar entry type {:?}",
                    etype.as_byte() as char
                )));
            };
            let meta = opts.meta(raw, kind == Kind::Dir, &name, || Ok(pax.xattrs), notices)?;
            let body = match kind {
                Kind::Dir => Body::Dir(Default::default()),
                Kind::Symlink => {
                    let target = entry
                        .link_name_bytes()
                        .ok_or_else(|| bad("symlink without a target"))?
                        .into_owned();
                    if target.is_empty()
                        || target.len() > crate::node::TARGET_MAX
                        || target.contains(&0)
                    {
                        return Err(bad("symlink target empty, too long or with NUL"));
                    }
                    Body::Symlink(target)
                }
                Kind::File => {
                    let declared = entry.size();
                    let truncated = || {
                        bad(&format!(
                            "truncated archive: entry declares {declared} bytes"
                        ))
                    };
                    let content = if declared <= INLINE_MAX as u64 {
                        let mut data = Vec::with_capacity(declared as usize);
                        (&mut entry)
                            .take(declared)
                            .read_to_end(&mut data)
                            .map_err(|e| bad(&format!("reading content: {e}")))?;
                        if data.len() as u64 != declared {
                            return Err(truncated());
                        }
                        progress.advance(declared);
                        Content::Inline(data)
                    } else {
                        let mut chunks = Vec::new();
                        let mut size = 0u64;
                        for c in chunker(&mut entry) {
                            let c = c.map_err(|e| {
                                bad(&format!("reading content: {}", std::io::Error::from(e)))
                            })?;
                            size += c.length as u64;
                            progress.advance(c.length as u64);
                            chunks.push(pipe.add(c.data)?);
                        }
                        if size != declared {
                            return Err(truncated());
                        }
                        Content::Chunks(chunks, size)
                    };
                    Body::File {
                        content,
                        link: None,
                    }
                }
                Kind::CharDevice | Kind::BlockDevice => {
                    let major = header
                        .device_major()
                        .ok()
                        .flatten()
                        .ok_or_else(|| bad("device without numbers"))?;
                    let minor = header
                        .device_minor()
                        .ok()
                        .flatten()
                        .ok_or_else(|| bad("device without numbers"))?;
                    Body::Special(kind, Some((major, minor)))
                }
                Kind::Fifo => Body::Special(Kind::Fifo, None),
            };
            insert(tree, &path, Node { meta, body }, &name, opts)?;
            if let Some(l) = layer.as_deref_mut() {
                l.added(&path);
            }
        }
        if layer.is_some() {
            // A layer is read to its end, past the archive's end blocks, so a reader that
            // checks the stream when it ends (a digest) gets to say so.
            std::io::copy(&mut archive.into_inner(), &mut std::io::sink())
                .map_err(|e| Error::bad_input(label.as_str(), e.to_string()))?;
        }
        if count == 0 && layer.is_none() {
            return Err(Error::bad_input(
                "<tar input>",
                "no entries: not a tar archive",
            ));
        }
        Ok(())
    }
}

/// Places a node at `path`; a later entry replaces an earlier one, as tar extraction does,
/// except that a directory over a directory keeps the children and takes the new metadata.
fn insert(
    tree: &mut Tree,
    path: &[Vec<u8>],
    node: Node,
    entry: &str,
    opts: &PackOptions,
) -> Result<()> {
    let Some(last) = path.last() else {
        // "./" itself: the root directory's metadata.
        if !matches!(node.body, Body::Dir(_)) {
            return Err(Error::bad_input(
                entry,
                "the archive root is not a directory",
            ));
        }
        tree.root.meta = node.meta;
        return Ok(());
    };
    let parent = tree.parent_mut(path, &implicit_dir(opts), entry)?;
    match (parent.get_mut(last), node) {
        (
            Some(
                existing @ Node {
                    body: Body::Dir(_), ..
                },
            ),
            Node {
                meta,
                body: Body::Dir(_),
            },
        ) => existing.meta = meta,
        (_, node) => {
            parent.insert(last.clone(), node);
        }
    }
    Ok(())
}

/// What PAX extended headers say about an entry.
#[derive(Default)]
struct Pax {
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<(i64, u32)>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn pax<R: Read>(entry: &mut tar::Entry<R>, name: &str) -> Result<Pax> {
    let bad = |why: String| Error::bad_input(name, why);
    let mut out = Pax::default();
    // The size the tar reader went by: the first PAX size if it parsed, else the header's.
    let size = entry.size();
    let Some(exts) = entry
        .pax_extensions()
        .map_err(|e| bad(format!("bad PAX header: {e}")))?
    else {
        return Ok(out);
    };
    let mut xattrs = std::collections::BTreeMap::new();
    let (mut paths, mut linkpaths) = (0u32, 0u32);
    for ext in exts {
        let ext = ext.map_err(|e| bad(format!("bad PAX header: {e}")))?;
        let key = ext.key_bytes();
        let value = ext.value_bytes();
        let num = || {
            std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
        };
        match key {
            b"uid" => out.uid = Some(num().ok_or_else(|| bad("bad PAX uid".into()))?),
            b"gid" => out.gid = Some(num().ok_or_else(|| bad("bad PAX gid".into()))?),
            b"mtime" => {
                out.mtime = Some(parse_pax_time(value).ok_or_else(|| bad("bad PAX mtime".into()))?)
            }
            // An unparsable (or repeated, different) size would be skipped silently by the reader,
            // which then reads the entry with another size than other tools do.
            b"size" if num() != Some(size) => return Err(bad("bad PAX size".into())),
            // The reader takes the first of repeated records, POSIX and GNU tar the last: refuse
            // an archive that other tools would read as another tree.
            b"path" | b"linkpath" => {
                let n = if key == b"path" {
                    &mut paths
                } else {
                    &mut linkpaths
                };
                *n += 1;
                if *n > 1 {
                    let key = String::from_utf8_lossy(key);
                    return Err(bad(format!("repeated PAX {key} record")));
                }
            }
            _ => {
                if let Some(xname) = key.strip_prefix(b"SCHILY.xattr.") {
                    if xname.is_empty() || xname.len() > 255 || xname.contains(&0) {
                        return Err(bad("bad xattr name in PAX header".into()));
                    }
                    // A later record for the same name replaces an earlier one.
                    xattrs.insert(xname.to_vec(), value.to_vec());
                }
            }
        }
    }
    let total: usize = xattrs.iter().map(|(n, v)| n.len() + v.len()).sum();
    if total > XATTRS_MAX {
        return Err(bad(format!("xattrs larger than {XATTRS_MAX} bytes")));
    }
    out.xattrs = xattrs.into_iter().collect();
    Ok(out)
}

/// Parses a PAX time: decimal seconds with an optional fraction.
fn parse_pax_time(v: &[u8]) -> Option<(i64, u32)> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = frac.chars().take(9).collect();
    let nsec = if digits.is_empty() {
        0
    } else {
        digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32)
    };
    if secs < 0 && nsec > 0 {
        // "-1.5" means 1.5 s before the epoch: floor the seconds, keep nanoseconds positive.
        return Some((secs - 1, 1_000_000_000 - nsec));
    }
    Some((secs, nsec))
}
