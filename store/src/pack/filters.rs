//! Pack filters (as repeatr has them): what to do with owners, mtimes, setuid/setgid bits,
//! devices and xattrs. The defaults keep a root filesystem intact (owners, setid bits, xattrs)
//! and make IDs reproducible (mtimes normalised; device nodes and fifos skipped, since
//! executors provide their own /dev).

use std::collections::BTreeMap;

use super::tree::Meta;
use crate::error::{Error, Result};
use crate::node::NORMALISED_MTIME;

/// What to do with a uid or gid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum IdFilter {
    /// Keep it (default).
    #[default]
    Keep,
    /// Set every one to this value (0 for "zero").
    Set(u32),
}

/// What to do with modification times.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MtimeFilter {
    /// Set every mtime to 2010-01-01T00:00:00Z (default).
    #[default]
    Normalise,
    /// Keep mtimes, nanoseconds included.
    Keep,
}

/// What to do with setuid and setgid bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SetidFilter {
    /// Keep them (default: a rootfs needs its setuid binaries).
    #[default]
    Keep,
    /// Clear them.
    Strip,
    /// Refuse the pack, naming the entry.
    Reject,
}

/// What to do with device nodes and fifos.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DeviceFilter {
    /// Leave them out, with one notice (default).
    #[default]
    Skip,
    /// Keep them in the ware.
    Keep,
    /// Refuse the pack, naming the entry.
    Reject,
}

/// What to do with extended attributes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum XattrFilter {
    /// Keep them (default).
    #[default]
    Keep,
    /// Leave them out.
    Skip,
}

/// How to pack: the filters.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct PackOptions {
    /// Owners.
    pub uid: IdFilter,
    /// Groups.
    pub gid: IdFilter,
    /// Modification times.
    pub mtime: MtimeFilter,
    /// Setuid and setgid bits.
    pub setid: SetidFilter,
    /// Device nodes and fifos.
    pub devices: DeviceFilter,
    /// Extended attributes.
    pub xattrs: XattrFilter,
}

/// Counts of things a pack changed or left out, turned into one notice each.
#[derive(Default)]
pub(crate) struct Notices {
    counts: BTreeMap<&'static str, (u64, String)>,
}

impl Notices {
    /// Counts one occurrence of a kind of notice; the first entry is kept as an example.
    pub fn note(&mut self, what: &'static str, entry: &str) {
        let slot = self.counts.entry(what).or_insert((0, entry.to_string()));
        slot.0 += 1;
    }
    pub fn into_messages(self) -> Vec<String> {
        self.counts
            .into_iter()
            .map(|(what, (n, first))| {
                format!(
                    "{what}: {n} entr{} (first: {first})",
                    if n == 1 { "y" } else { "ies" }
                )
            })
            .collect()
    }
}

/// Metadata of an entry before filtering.
pub(crate) struct RawMeta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub mtime_nsec: u32,
}

impl PackOptions {
    /// Applies every metadata filter: uid/gid/mtime/setid to `raw`, and the xattr filter
    /// (`xattrs` is only called when xattrs are kept). `entry` names the entry in errors.
    pub(crate) fn meta(
        &self,
        raw: RawMeta,
        is_dir: bool,
        entry: &str,
        xattrs: impl FnOnce() -> Result<Vec<(Vec<u8>, Vec<u8>)>>,
        notices: &mut Notices,
    ) -> Result<Meta> {
        let m = self.apply(raw, is_dir, entry, notices)?;
        let xattrs = if self.xattrs == XattrFilter::Keep {
            xattrs()?
        } else {
            Vec::new()
        };
        Ok(Meta {
            mode: m.mode,
            uid: m.uid,
            gid: m.gid,
            mtime: m.mtime,
            mtime_nsec: m.mtime_nsec,
            xattrs,
        })
    }

    fn apply(
        &self,
        raw: RawMeta,
        is_dir: bool,
        entry: &str,
        notices: &mut Notices,
    ) -> Result<RawMeta> {
        let mut m = raw;
        m.mode &= 0o7777;
        if let IdFilter::Set(v) = self.uid {
            m.uid = v;
        }
        if let IdFilter::Set(v) = self.gid {
            m.gid = v;
        }
        if self.mtime == MtimeFilter::Normalise {
            m.mtime = NORMALISED_MTIME;
            m.mtime_nsec = 0;
        }
        // setgid on a directory only means "children inherit the group"; not a privilege.
        let setid_bits = if is_dir { 0o4000 } else { 0o6000 };
        if m.mode & setid_bits != 0 {
            match self.setid {
                SetidFilter::Keep => {}
                SetidFilter::Strip => {
                    m.mode &= !setid_bits;
                    notices.note("setuid/setgid bits stripped", entry);
                }
                SetidFilter::Reject => {
                    return Err(Error::bad_input(
                        entry,
                        "has setuid/setgid bits (--setid reject)",
                    ));
                }
            }
        }
        Ok(m)
    }
}
