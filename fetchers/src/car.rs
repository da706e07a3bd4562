//! CARv1 encoding, for importing blocks into IPFS nodes that refuse a hash on `block/put`.

use bytes::{BufMut, Bytes, BytesMut};
use cid::Cid;

fn varint(out: &mut BytesMut, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.put_u8(byte);
            return;
        }
        out.put_u8(byte | 0x80);
    }
}

/// A CBOR major type with its argument, in the shortest form (as DAG-CBOR requires).
fn cbor_head(out: &mut BytesMut, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.put_u8(m | n as u8),
        24..=0xff => {
            out.put_u8(m | 24);
            out.put_u8(n as u8);
        }
        0x100..=0xffff => {
            out.put_u8(m | 25);
            out.put_u16(n as u16);
        }
        0x1_0000..=0xffff_ffff => {
            out.put_u8(m | 26);
            out.put_u32(n as u32);
        }
        _ => {
            out.put_u8(m | 27);
            out.put_u64(n);
        }
    }
}

/// A CARv1 file: the DAG-CBOR header `{"roots": [...], "version": 1}` then each block as
/// `varint(len) CID bytes`. The blocks are written as given; the caller computed their CIDs
/// (see [`crate::block_cid`]).
pub fn car_v1(roots: &[Cid], blocks: &[(Cid, &[u8])]) -> Bytes {
    let mut header = BytesMut::new();
    cbor_head(&mut header, 5, 2); // map of 2, keys in DAG-CBOR order (shorter first)
    cbor_head(&mut header, 3, 5);
    header.put_slice(b"roots");
    cbor_head(&mut header, 4, roots.len() as u64);
    for root in roots {
        let bytes = root.to_bytes();
        cbor_head(&mut header, 6, 42);
        cbor_head(&mut header, 2, bytes.len() as u64 + 1);
        header.put_u8(0); // the multibase identity prefix of a binary CID in DAG-CBOR
        header.put_slice(&bytes);
    }
    cbor_head(&mut header, 3, 7);
    header.put_slice(b"version");
    cbor_head(&mut header, 0, 1);

    let mut out = BytesMut::new();
    varint(&mut out, header.len() as u64);
    out.put_slice(&header);
    for (cid, data) in blocks {
        let c = cid.to_bytes();
        varint(&mut out, (c.len() + data.len()) as u64);
        out.put_slice(&c);
        out.put_slice(data);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{BlockHash, RAW, block_cid};

    #[test]
    fn one_block_car_layout() {
        let cid = block_cid(RAW, BlockHash::Sha2_256, b"hello\n");
        let car = car_v1(&[cid], &[(cid, b"hello\n")]);
        let c = cid.to_bytes();
        // header: a2 65 roots 81 d8 2a 58 25 00 <cid 36> 67 version 01
        let header_len = 1 + 6 + 1 + 2 + 2 + 1 + c.len() + 8 + 1;
        assert_eq!(car[0] as usize, header_len);
        assert_eq!(&car[1..8], b"\xa2\x65roots");
        assert_eq!(&car[8..12], &[0x81, 0xd8, 0x2a, 0x58]);
        assert_eq!(car[12] as usize, c.len() + 1);
        let body = &car[1 + header_len..];
        assert_eq!(body[0] as usize, c.len() + 6);
        assert_eq!(&body[1..1 + c.len()], &c[..]);
        assert_eq!(&body[1 + c.len()..], b"hello\n");
    }
}
