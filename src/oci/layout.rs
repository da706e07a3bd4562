//! The blobs of an OCI image layout, in a directory (`oci:DIR`) or in a tar of one
//! (`oci-archive:FILE`, read in place: one pass over the tar's headers finds every blob, none
//! is unpacked). Every blob read is checked against its digest and size.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use oci_spec::image::Descriptor;
use sha2::{Digest as _, Sha256};

use crate::exit::Failure;

/// Where the layout's files are.
pub(super) enum Layout {
    Dir(PathBuf),
    /// The archive, and each member's (offset of its data, size) by its path in the layout.
    Archive(PathBuf, HashMap<String, (u64, u64)>),
}

/// A failure with an exit code (3 not found, 4 corrupt): what the message says.
pub(super) fn failure(code: u8, message: String) -> anyhow::Error {
    Failure { code, message }.into()
}

impl Layout {
    pub(super) fn dir(path: &Path) -> Result<Layout> {
        if !path.join("index.json").is_file() {
            return Err(failure(
                3,
                format!(
                    "{}: not an OCI image layout (no index.json)",
                    path.display()
                ),
            ));
        }
        Ok(Layout::Dir(path.to_path_buf()))
    }

    /// A tar archive (an OCI layout's, or `docker save`'s) that must hold `must` (its
    /// `index.json`, `manifest.json`), read in place.
    pub(super) fn archive(path: &Path, must: &str) -> Result<Layout> {
        let f = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
        let mut members = HashMap::new();
        let mut links = Vec::new();
        let mut archive = tar::Archive::new(f);
        for e in archive
            .entries_with_seek()
            .with_context(|| format!("{}: not a tar archive", path.display()))?
        {
            let e = e.with_context(|| format!("{}: a damaged tar archive", path.display()))?;
            let name = String::from_utf8_lossy(&e.path_bytes())
                .trim_start_matches("./")
                .to_string();
            let kind = e.header().entry_type();
            if kind.is_symlink()
                && let Some(t) = e.link_name_bytes()
            {
                // docker save: <id>/layer.tar -> ../<digest>.tar
                let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                let t = String::from_utf8_lossy(&t).into_owned();
                let target = match t.strip_prefix("../") {
                    Some(up) => up.to_string(),
                    None if dir.is_empty() => t,
                    None => format!("{dir}/{t}"),
                };
                links.push((name, target));
            } else if kind.is_file() {
                members.insert(name, (e.raw_file_position(), e.size()));
            }
        }
        for (name, target) in links {
            if let Some(&m) = members.get(&target) {
                members.insert(name, m);
            }
        }
        if !members.contains_key(must) {
            return Err(failure(
                3,
                format!("{}: not an image archive (no {must})", path.display()),
            ));
        }
        Ok(Layout::Archive(path.to_path_buf(), members))
    }

    /// The layout itself, for messages.
    pub(super) fn shown(&self) -> String {
        match self {
            Layout::Dir(p) | Layout::Archive(p, _) => p.display().to_string(),
        }
    }

    /// A file of the layout by its path in it (`index.json`, `blobs/sha256/<hex>`), and its
    /// size.
    pub(super) fn open(&self, name: &str) -> Result<(Box<dyn Read + Send>, u64)> {
        match self {
            Layout::Dir(dir) => {
                let p = dir.join(name);
                let f = File::open(&p).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => {
                        failure(3, format!("{}: {name} is missing", self.shown()))
                    }
                    _ => anyhow::anyhow!("{}: {e}", p.display()),
                })?;
                let len = f.metadata()?.len();
                Ok((Box::new(f), len))
            }
            Layout::Archive(path, members) => {
                let Some(&(at, len)) = members.get(name) else {
                    return Err(failure(3, format!("{}: {name} is missing", self.shown())));
                };
                let mut f = File::open(path)?;
                f.seek(SeekFrom::Start(at))?;
                Ok((Box::new(f.take(len)), len))
            }
        }
    }

    /// A small file of the layout (`index.json`, `manifest.json`), whole (at most 4 MiB).
    pub(super) fn small_file(&self, name: &str) -> Result<Vec<u8>> {
        let (r, len) = self.open(name)?;
        small(r, len, &format!("{}: {name}", self.shown()))
    }

    /// The blob `d` names, checked to be what `d` says, whole (a manifest, index or config:
    /// at most 4 MiB).
    pub(super) fn small_blob(&self, d: &Descriptor) -> Result<Vec<u8>> {
        let mut r = self.blob(d)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)
            .map_err(|e| anyhow::anyhow!("{}: blob {}: {e}", self.shown(), d.digest()))?;
        Ok(out)
    }

    /// Checks that the blob `d` names has its digest and size, reading it once.
    pub(super) fn check_blob(&self, d: &Descriptor) -> Result<()> {
        let mut r = self.blob(d)?;
        std::io::copy(&mut r, &mut std::io::sink())
            .map_err(|e| anyhow::anyhow!("{}: blob {}: {e}", self.shown(), d.digest()))?;
        Ok(())
    }

    /// The blob `d` names as a stream that fails (InvalidData) at its end unless its bytes
    /// have the digest and size `d` gives.
    pub(super) fn blob(&self, d: &Descriptor) -> Result<Box<dyn Read + Send>> {
        let digest = d.digest();
        if digest.algorithm().to_string() != "sha256" {
            bail!(
                "{}: blob {digest}: only sha256 digests are supported",
                self.shown()
            );
        }
        let hex = digest.digest();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("{}: blob {digest}: not a sha256 digest", self.shown());
        }
        let (r, len) = self.open(&format!("blobs/sha256/{hex}"))?;
        if len != d.size() {
            return Err(failure(
                4,
                format!(
                    "{}: blob {digest} is {len} bytes, its descriptor says {}",
                    self.shown(),
                    d.size()
                ),
            ));
        }
        Ok(Box::new(Hashed::new(
            r,
            hex.to_string(),
            format!("blob {digest}"),
        )))
    }
}

fn small(mut r: Box<dyn Read + Send>, len: u64, what: &str) -> Result<Vec<u8>> {
    if len > 4 << 20 {
        bail!("{what}: {len} bytes, more than the 4 MiB a manifest or index may be");
    }
    let mut out = Vec::new();
    r.read_to_end(&mut out).with_context(|| what.to_string())?;
    Ok(out)
}

/// A stream whose SHA-256 must be `want` (lowercase hex): at its end it fails with
/// InvalidData, naming `what`, if it is not.
pub(super) struct Hashed<R> {
    inner: R,
    hash: Sha256,
    want: String,
    what: String,
    done: bool,
}

impl<R: Read> Hashed<R> {
    pub(super) fn new(inner: R, want: String, what: String) -> Hashed<R> {
        Hashed {
            inner,
            hash: Sha256::new(),
            want,
            what,
            done: false,
        }
    }
}

impl<R: Read> Read for Hashed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.hash.update(&buf[..n]);
        } else if !buf.is_empty() && !self.done {
            self.done = true;
            let got = format!("{:x}", self.hash.clone().finalize());
            if got != self.want {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} does not match its digest: its bytes hash to sha256:{got}",
                        self.what
                    ),
                ));
            }
        }
        Ok(n)
    }
}
