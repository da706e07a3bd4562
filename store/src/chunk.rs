//! Chunking (FastCDC v2020), and the at-rest encoding of chunks (zstd, or raw when zstd does not
//! help), with verification on every decode.
//!
//! Invariant: [`decode_chunk`] never returns bytes whose BLAKE3 hash differs from the ID asked
//! for, and never allocates more than [`MAX_CHUNK`] bytes for a chunk.

use std::io::Read;

use crate::error::{Error, Result};
use crate::id::ChunkId;

/// Smallest chunk FastCDC cuts (except a file's last chunk). Part of format v1.
pub const MIN_CHUNK: usize = 16 * 1024;
/// Average chunk size FastCDC aims for. Part of format v1.
pub const AVG_CHUNK: usize = 64 * 1024;
/// Largest chunk FastCDC cuts. Part of format v1; also the decode bound.
pub const MAX_CHUNK: usize = 256 * 1024;
/// zstd level used at rest.
pub const ZSTD_LEVEL: i32 = 3;

/// First byte of a stored chunk: the bytes follow as they are (what `ware serve`'s packs
/// hold, their stored lengths known before any chunk is read).
pub const TAG_RAW: u8 = 0;
/// First byte of a stored chunk: a zstd frame follows.
const TAG_ZSTD: u8 = 1;

/// Splits a stream into content-defined chunks with the format v1 parameters
/// (FastCDC 2020, normalisation level 1, min/avg/max 16/64/256 KiB).
pub fn chunker<R: Read>(source: R) -> fastcdc::v2020::StreamCDC<R> {
    fastcdc::v2020::StreamCDC::with_level(
        source,
        MIN_CHUNK,
        AVG_CHUNK,
        MAX_CHUNK,
        fastcdc::v2020::Normalization::Level1,
    )
}

/// Encodes a chunk for storage: zstd when that saves more than 1/32 of its size, raw otherwise.
pub fn encode_chunk(data: &[u8]) -> Vec<u8> {
    thread_local! {
        // One compression context per thread: creating one per chunk costs more than the
        // compression of a small chunk.
        static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            std::cell::RefCell::new(zstd::bulk::Compressor::new(ZSTD_LEVEL).ok());
    }
    let compressed = COMPRESSOR.with(|c| match c.borrow_mut().as_mut() {
        Some(c) => c.compress(data).ok(),
        None => zstd::bulk::compress(data, ZSTD_LEVEL).ok(),
    });
    if let Some(z) = compressed
        && z.len() + data.len() / 32 < data.len()
    {
        let mut out = Vec::with_capacity(z.len() + 1);
        out.push(TAG_ZSTD);
        out.extend_from_slice(&z);
        return out;
    }
    let mut out = Vec::with_capacity(data.len() + 1);
    out.push(TAG_RAW);
    out.extend_from_slice(data);
    out
}

/// Decodes a stored chunk and checks it against its ID.
pub fn decode_chunk(id: ChunkId, stored: &[u8]) -> Result<Vec<u8>> {
    let data = match stored.split_first() {
        Some((&TAG_RAW, rest)) if rest.len() <= MAX_CHUNK => rest.to_vec(),
        Some((&TAG_ZSTD, rest)) => {
            thread_local! {
                static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
                    std::cell::RefCell::new(zstd::bulk::Decompressor::new().ok());
            }
            // The capacity bounds the output: a hostile frame cannot make us allocate more.
            DECOMPRESSOR
                .with(|d| match d.borrow_mut().as_mut() {
                    Some(d) => d.decompress(rest, MAX_CHUNK),
                    None => zstd::bulk::decompress(rest, MAX_CHUNK),
                })
                .map_err(|_| Error::CorruptChunk(id))?
        }
        _ => return Err(Error::CorruptChunk(id)),
    };
    if ChunkId::of(&data) != id {
        return Err(Error::CorruptChunk(id));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn compressible_chunks_shrink_and_random_ones_stay_raw() {
        let text = b"warefs ".repeat(5000);
        let enc = encode_chunk(&text);
        assert_eq!(enc[0], TAG_ZSTD);
        assert!(enc.len() < text.len() / 10);
        let noise: Vec<u8> = (0..50_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let id = ChunkId::of(&noise);
        let enc = encode_chunk(&noise);
        assert_eq!(decode_chunk(id, &enc).unwrap(), noise);
    }

    #[test]
    fn any_flipped_byte_is_caught() {
        let data = b"some chunk bytes ".repeat(300);
        let id = ChunkId::of(&data);
        let enc = encode_chunk(&data);
        for i in 0..enc.len() {
            let mut bad = enc.clone();
            bad[i] ^= 0x40;
            assert!(decode_chunk(id, &bad).is_err(), "flip at {i} not caught");
        }
        assert!(decode_chunk(id, &[]).is_err());
    }

    #[test]
    fn chunk_sizes_follow_the_format_bounds() {
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
            .collect();
        let chunks: Vec<_> = chunker(&data[..]).map(|c| c.unwrap()).collect();
        let n = chunks.len();
        for (i, c) in chunks.iter().enumerate() {
            assert!(c.length <= MAX_CHUNK);
            if i + 1 < n {
                assert!(c.length >= MIN_CHUNK);
            }
        }
        assert_eq!(chunks.iter().map(|c| c.length).sum::<usize>(), data.len());
    }

    proptest! {
        #[test]
        fn chunk_then_reassemble_is_identity(data in proptest::collection::vec(any::<u8>(), 0..400_000)) {
            let mut out = Vec::new();
            for c in chunker(&data[..]) {
                let c = c.unwrap();
                let id = ChunkId::of(&c.data);
                out.extend(decode_chunk(id, &encode_chunk(&c.data)).unwrap());
            }
            prop_assert_eq!(out, data);
        }
    }
}
