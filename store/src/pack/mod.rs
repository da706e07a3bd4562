//! Packing: a directory or a tar stream becomes a ware.
//!
//! The source is first read into an in-memory [`tree::Tree`] (metadata, inline contents and
//! chunk lists; never whole file contents), while file contents stream through a
//! [`pipeline::Pipeline`] that hashes, compresses and stores chunks on every core. Then
//! [`build`] turns the tree into nodes bottom-up and commits the root last.
//!
//! Invariants: the same tree gives the same ID whatever the source (directory or tar), the store
//! or the machine; after an error no node and no ware record is written (chunks already queued
//! may still land, unreferenced, for `gc`); the ware is recorded complete only after every chunk
//! and node it names has been written.

mod build;
mod dir;
pub(crate) mod filters;
mod layers;
mod pipeline;
mod tar;
mod tree;

use std::io::Read;
use std::path::Path;

pub use filters::{DeviceFilter, IdFilter, MtimeFilter, PackOptions, SetidFilter, XattrFilter};
pub use tar::decompressed;

use crate::error::{Error, Result};
use crate::id::WareId;
use crate::source::{BlockSink, WareRecord};

/// Receives progress while packing or unpacking; every method has a do-nothing default.
pub trait Progress: Sync {
    /// The total number of content bytes, once known.
    fn total(&self, _bytes: u64) {}
    /// More content bytes were processed.
    fn advance(&self, _bytes: u64) {}
}

/// Reports no progress.
pub struct NoProgress;
impl Progress for NoProgress {}

/// What a pack did.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct PackReport {
    /// The ware ID.
    pub id: WareId,
    /// Counts and sizes of the ware.
    pub record: WareRecord,
    /// Chunk references in the ware (with repeats).
    pub chunks: u64,
    /// Chunks that were new to the store.
    pub new_chunks: u64,
    /// Bytes those new chunks take at rest.
    pub new_stored_bytes: u64,
    /// Things the user should know that were not errors (skipped devices, stripped paths, …).
    pub notices: Vec<String>,
}

/// Packs a directory tree into `sink`.
pub fn pack_dir(
    sink: &dyn BlockSink,
    path: &Path,
    opts: &PackOptions,
    progress: &dyn Progress,
) -> Result<PackReport> {
    pack_with(sink, |pipe, notices| {
        dir::read(path, opts, pipe, progress, notices)
    })
}

/// Packs a tar stream (plain, gzip or zstd, detected from its first bytes) into `sink`.
pub fn pack_tar(
    sink: &dyn BlockSink,
    input: &mut (dyn Read + Send),
    opts: &PackOptions,
    progress: &dyn Progress,
) -> Result<PackReport> {
    pack_with(sink, |pipe, notices| {
        tar::read(input, opts, pipe, progress, notices)
    })
}

/// Packs image layers (tar streams, plain, gzip or zstd), lowest first, applied one over
/// another as the OCI image spec says (whiteouts and opaque directories; see `layers.rs`) into
/// one tree: an image's root filesystem. An empty layer is fine; a layer that fails to read
/// fails the pack, leaving no ware.
pub fn pack_layers(
    sink: &dyn BlockSink,
    layers: &mut (dyn Iterator<Item = Result<Box<dyn Read + Send>>> + Send),
    opts: &PackOptions,
    progress: &dyn Progress,
) -> Result<PackReport> {
    pack_with(sink, |pipe, notices| {
        tar::read_layers(layers, opts, pipe, progress, notices)
    })
}

/// Reads a tree with `read` (its chunks going through the pipeline into `sink`), then writes
/// its nodes and records the ware, on a thread with a stack deep enough for any tree.
fn pack_with(
    sink: &dyn BlockSink,
    read: impl FnOnce(&pipeline::Pipeline, &mut filters::Notices) -> Result<tree::Tree> + Send,
) -> Result<PackReport> {
    with_big_stack(|| {
        let pipeline_out = pipeline::run(sink, |pipe| {
            let mut notices = filters::Notices::default();
            let tree = read(&pipe, &mut notices)?;
            Ok((tree, notices))
        })?;
        finish(sink, pipeline_out)
    })
}

fn finish(
    sink: &dyn BlockSink,
    out: pipeline::Output<(tree::Tree, filters::Notices)>,
) -> Result<PackReport> {
    let (tree, notices) = out.value;
    let built = build::build(sink, tree)?;
    sink.commit_ware(&built.id, &built.record)?;
    Ok(PackReport {
        id: built.id,
        record: built.record,
        chunks: built.chunk_refs,
        new_chunks: out.new_chunks,
        new_stored_bytes: out.new_stored_bytes,
        notices: notices.into_messages(),
    })
}

/// Runs `f` on a thread with a stack large enough for [`crate::node::MAX_DEPTH`] levels of
/// recursion (the memory is only reserved, not touched).
pub(crate) fn with_big_stack<T: Send>(f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("ware-walk".into())
            .stack_size(1 << 30)
            .spawn_scoped(s, f)
            .map_err(|e| Error::io("<thread>", e))?
            .join()
            .unwrap_or_else(|_| Err(Error::Db("internal error: pack thread panicked".into())))
    })
}
