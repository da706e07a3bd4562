//! Writing tar archives by hand, header by header: the `tar` crate's builder refuses the very
//! things the hostile cases need (`..`, lying sizes, bad checksums).
#![allow(dead_code)]

pub const REG: u8 = b'0';
pub const HARDLINK: u8 = b'1';
pub const SYMLINK: u8 = b'2';
pub const CHAR: u8 = b'3';
pub const BLOCK: u8 = b'4';
pub const DIR: u8 = b'5';
pub const FIFO: u8 = b'6';
pub const PAX: u8 = b'x';
pub const GNU_LONGNAME: u8 = b'L';

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Magic {
    /// POSIX ustar: `ustar\0` `00`.
    Ustar,
    /// GNU: `ustar ` ` \0`.
    Gnu,
}

/// One raw 512-byte tar header, every field settable (and breakable).
#[derive(Clone)]
pub struct Hdr {
    pub name: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: u64,
    pub typeflag: u8,
    pub linkname: Vec<u8>,
    pub dev: (u32, u32),
    pub magic: Magic,
    /// Write the size field in base-256 (GNU) rather than octal.
    pub size_base256: bool,
    /// Write the size field as 12 octal digits with no terminator (room for 8 GiB).
    pub size_octal12: bool,
    /// Added to the correct checksum (non-zero: a corrupt header).
    pub checksum_delta: i64,
}

impl Hdr {
    pub fn new(name: impl AsRef<[u8]>, typeflag: u8, size: u64) -> Hdr {
        let mode = match typeflag {
            DIR => 0o755,
            SYMLINK => 0o777,
            _ => 0o644,
        };
        Hdr {
            name: name.as_ref().to_vec(),
            mode,
            uid: 0,
            gid: 0,
            size,
            mtime: 1_600_000_000,
            typeflag,
            linkname: Vec::new(),
            dev: (0, 0),
            magic: Magic::Ustar,
            size_base256: false,
            size_octal12: false,
            checksum_delta: 0,
        }
    }

    pub fn mode(mut self, mode: u32) -> Hdr {
        self.mode = mode;
        self
    }

    pub fn link(mut self, target: impl AsRef<[u8]>) -> Hdr {
        self.linkname = target.as_ref().to_vec();
        self
    }

    pub fn dev(mut self, major: u32, minor: u32) -> Hdr {
        self.dev = (major, minor);
        self
    }

    pub fn bytes(&self) -> [u8; 512] {
        let mut h = [0u8; 512];
        assert!(
            self.name.len() <= 100,
            "test bug: name longer than 100 bytes (use a PAX path)"
        );
        assert!(
            self.linkname.len() <= 100,
            "test bug: link name longer than 100 bytes"
        );
        h[..self.name.len()].copy_from_slice(&self.name);
        octal(&mut h[100..108], self.mode as u64);
        octal(&mut h[108..116], self.uid);
        octal(&mut h[116..124], self.gid);
        if self.size_base256 {
            h[124] = 0x80;
            h[128..136].copy_from_slice(&self.size.to_be_bytes());
        } else if self.size_octal12 {
            let s = format!("{:012o}", self.size);
            assert_eq!(s.len(), 12, "test bug: size does not fit 12 octal digits");
            h[124..136].copy_from_slice(s.as_bytes());
        } else {
            octal(&mut h[124..136], self.size);
        }
        octal(&mut h[136..148], self.mtime);
        h[156] = self.typeflag;
        h[157..157 + self.linkname.len()].copy_from_slice(&self.linkname);
        match self.magic {
            Magic::Ustar => {
                h[257..263].copy_from_slice(b"ustar\0");
                h[263..265].copy_from_slice(b"00");
            }
            Magic::Gnu => {
                h[257..263].copy_from_slice(b"ustar ");
                h[263..265].copy_from_slice(b" \0");
            }
        }
        h[265..269].copy_from_slice(b"root");
        h[297..301].copy_from_slice(b"root");
        if matches!(self.typeflag, CHAR | BLOCK) {
            octal(&mut h[329..337], self.dev.0 as u64);
            octal(&mut h[337..345], self.dev.1 as u64);
        }
        h[148..156].fill(b' ');
        let sum: i64 = h.iter().map(|&b| b as i64).sum::<i64>() + self.checksum_delta;
        let ck = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(ck.as_bytes());
        h
    }
}

/// Writes `v` as zero-padded octal filling all but the last byte of `field`, NUL-terminated.
pub fn octal(field: &mut [u8], v: u64) {
    let w = field.len() - 1;
    let s = format!("{v:0w$o}");
    assert_eq!(
        s.len(),
        w,
        "test bug: {v} does not fit a {}-byte octal field",
        field.len()
    );
    field[..w].copy_from_slice(s.as_bytes());
    field[w] = 0;
}

/// PAX records: `LEN key=value\n`, LEN counting itself.
pub fn pax_records(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in records {
        let body_len = 1 + k.len() + 1 + v.len() + 1; // " " key "=" value "\n"
        let mut n = body_len + 1;
        while body_len + n.to_string().len() != n {
            n = body_len + n.to_string().len();
        }
        out.extend_from_slice(n.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out
}

/// A tar archive being written.
#[derive(Default)]
pub struct Tar(pub Vec<u8>);

impl Tar {
    pub fn new() -> Tar {
        Tar::default()
    }

    /// A header followed by `data`, padded to a block.
    pub fn entry(&mut self, h: &Hdr, data: &[u8]) -> &mut Tar {
        self.0.extend_from_slice(&h.bytes());
        self.0.extend_from_slice(data);
        self.pad();
        self
    }

    pub fn pad(&mut self) {
        let rem = self.0.len() % 512;
        if rem != 0 {
            self.0.resize(self.0.len() + 512 - rem, 0);
        }
    }

    pub fn file(&mut self, name: impl AsRef<[u8]>, data: &[u8]) -> &mut Tar {
        self.entry(&Hdr::new(name, REG, data.len() as u64), data)
    }

    pub fn file_mode(&mut self, name: impl AsRef<[u8]>, mode: u32, data: &[u8]) -> &mut Tar {
        self.entry(&Hdr::new(name, REG, data.len() as u64).mode(mode), data)
    }

    pub fn dir(&mut self, name: impl AsRef<[u8]>) -> &mut Tar {
        self.entry(&Hdr::new(name, DIR, 0), &[])
    }

    pub fn symlink(&mut self, name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> &mut Tar {
        self.entry(&Hdr::new(name, SYMLINK, 0).link(target), &[])
    }

    pub fn hardlink(&mut self, name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> &mut Tar {
        self.entry(&Hdr::new(name, HARDLINK, 0).link(target), &[])
    }

    /// A PAX extended header ('x') describing the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Tar {
        let body = pax_records(records);
        self.entry(
            &Hdr::new("./PaxHeaders/entry", PAX, body.len() as u64),
            &body,
        )
    }

    /// A GNU long name ('L') for the next entry.
    pub fn gnu_longname(&mut self, name: &[u8]) -> &mut Tar {
        let mut body = name.to_vec();
        body.push(0);
        let mut h = Hdr::new("././@LongLink", GNU_LONGNAME, body.len() as u64);
        h.magic = Magic::Gnu;
        self.entry(&h, &body)
    }

    /// The archive with its two zero end-of-archive blocks.
    pub fn finish(&self) -> Vec<u8> {
        let mut v = self.0.clone();
        v.resize(v.len() + 1024, 0);
        v
    }
}
