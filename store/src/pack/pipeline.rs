//! The chunk pipeline: producers (file readers) hash chunks and hand new ones to worker threads
//! that compress and store them in batches, so reading, hashing, compressing and writing all
//! run at once on every core.
//!
//! Invariant: when [`run`] returns Ok, every chunk handed to [`Pipeline::add`] is in the sink;
//! a chunk is sent to the sink at most once per pack, and never when the sink already has it.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::chunk::encode_chunk;
use crate::error::{Error, Result};
use crate::id::ChunkId;
use crate::node::ChunkRef;
use crate::source::BlockSink;

/// Bytes of encoded chunks a worker gathers before one write.
const BATCH_BYTES: usize = 8 << 20;

/// State shared by producers and workers.
struct Shared<'s> {
    sink: &'s dyn BlockSink,
    seen: Mutex<HashSet<ChunkId>>,
    failed: AtomicBool,
    error: Mutex<Option<Error>>,
    new_chunks: AtomicU64,
    new_stored_bytes: AtomicU64,
}

/// Handle producers use to add chunks. Dropping it (when `produce` returns) closes the queue.
pub(crate) struct Pipeline<'a, 's> {
    shared: &'a Shared<'s>,
    tx: Sender<(ChunkId, Vec<u8>)>,
}

/// What [`run`] gives back.
pub(crate) struct Output<T> {
    pub value: T,
    pub new_chunks: u64,
    pub new_stored_bytes: u64,
}

impl Pipeline<'_, '_> {
    /// Adds one chunk: hashes it, and queues it for storing unless already known.
    pub fn add(&self, data: Vec<u8>) -> Result<ChunkRef> {
        let sh = self.shared;
        if sh.failed.load(Ordering::Relaxed) {
            return Err(sh.take_error());
        }
        let id = ChunkId::of(&data);
        let len = data.len() as u32;
        let fresh = sh
            .seen
            .lock()
            .map_err(|_| Error::Db("pipeline lock poisoned".into()))?
            .insert(id);
        if fresh && self.tx.send((id, data)).is_err() {
            return Err(sh.take_error());
        }
        Ok(ChunkRef::new(id, len))
    }
}

impl Shared<'_> {
    fn take_error(&self) -> Error {
        self.error
            .lock()
            .ok()
            .and_then(|mut e| e.take())
            .unwrap_or_else(|| Error::Db("chunk writer stopped".into()))
    }

    fn fail(&self, e: Error) {
        if let Ok(mut slot) = self.error.lock()
            && slot.is_none()
        {
            *slot = Some(e);
        }
        self.failed.store(true, Ordering::Relaxed);
    }

    fn flush(&self, batch: &mut Vec<(ChunkId, u32, Vec<u8>)>) -> Result<()> {
        if !batch.is_empty() {
            self.sink.put_chunks(batch)?;
            let stored: usize = batch.iter().map(|c| c.2.len()).sum();
            self.new_chunks
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            self.new_stored_bytes
                .fetch_add(stored as u64, Ordering::Relaxed);
            batch.clear();
        }
        Ok(())
    }

    fn work(&self, rx: Receiver<(ChunkId, Vec<u8>)>) {
        let mut batch: Vec<(ChunkId, u32, Vec<u8>)> = Vec::new();
        let mut bytes = 0usize;
        for (id, data) in rx.iter() {
            if self.failed.load(Ordering::Relaxed) {
                continue; // drain, so producers never block on a dead pipeline
            }
            let step = |batch: &mut Vec<_>, bytes: &mut usize| -> Result<()> {
                if self.sink.has_chunk(&id)? {
                    return Ok(());
                }
                let enc = encode_chunk(&data);
                *bytes += enc.len();
                batch.push((id, data.len() as u32, enc));
                if *bytes >= BATCH_BYTES {
                    self.flush(batch)?;
                    *bytes = 0;
                }
                Ok(())
            };
            if let Err(e) = step(&mut batch, &mut bytes) {
                self.fail(e);
            }
        }
        if !self.failed.load(Ordering::Relaxed)
            && let Err(e) = self.flush(&mut batch)
        {
            self.fail(e);
        }
    }
}

/// Runs `produce` with a pipeline whose workers store chunks into `sink`; returns once every
/// chunk is stored, or with the first error of either side.
pub(crate) fn run<T: Send>(
    sink: &dyn BlockSink,
    produce: impl for<'a, 's> FnOnce(Pipeline<'a, 's>) -> Result<T> + Send,
) -> Result<Output<T>> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let (tx, rx) = bounded(workers * 16);
    let shared = Shared {
        sink,
        seen: Mutex::new(HashSet::new()),
        failed: AtomicBool::new(false),
        error: Mutex::new(None),
        new_chunks: AtomicU64::new(0),
        new_stored_bytes: AtomicU64::new(0),
    };
    let value = std::thread::scope(|s| {
        for i in 0..workers {
            let rx = rx.clone();
            let shared = &shared;
            std::thread::Builder::new()
                .name(format!("ware-chunk-{i}"))
                .spawn_scoped(s, move || shared.work(rx))
                .map_err(|e| Error::io("<thread>", e))?;
        }
        drop(rx);
        // `produce` owns the only sender: when it returns, the workers drain and stop, and the
        // scope waits for them.
        produce(Pipeline {
            shared: &shared,
            tx,
        })
    });
    if shared.failed.load(Ordering::Relaxed) {
        return Err(shared.take_error());
    }
    Ok(Output {
        value: value?,
        new_chunks: shared.new_chunks.load(Ordering::Relaxed),
        new_stored_bytes: shared.new_stored_bytes.load(Ordering::Relaxed),
    })
}
