//! Warehouse catalogs: what a warehouse holds, for people and programs that are handed its URL
//! (`ware ls URL`, warehouse mounts). docs/FORMAT.md, "Catalogs", is the specification.
//!
//! ```text
//! catalog/pushes/<secs>-<random>   one push: a ware, its size, the name it was pushed under
//! catalog/pages/<blake3 hex>       up to PAGE_MAX entries, sorted by ware ID (content-named)
//! catalog/head                     the pages in ID order, and the pushes folded into them
//! ```
//!
//! A push writes its own object (two machines pushing at once never write the same key), then
//! folds every push the head lacks into the pages and writes a new head. A reader needs no
//! listing (a web server or CDN cannot list): the head, then its pages. This module is the
//! codec and the merge rules, with no I/O; the protocol against a warehouse is in `fetchers`.
//!
//! Invariants: decoders refuse what is over the stated bounds or out of order; merging is
//! deterministic (the same pushes give the same pages, whoever folds them, in any order).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use cid::Cid;

use crate::error::{Error, Result};
use crate::id::{NodeId, WareId};

/// The head's key.
pub const HEAD_KEY: &str = "catalog/head";
/// The prefix of push objects.
pub const PUSHES_PREFIX: &str = "catalog/pushes/";
/// The prefix of pages.
pub const PAGES_PREFIX: &str = "catalog/pages/";
/// The head's format.
pub const CATALOG_V1: &str = "warefs-catalog/1";
/// A push object's format.
pub const PUSH_V1: &str = "warefs-catalog-push/1";
/// A page's format.
pub const PAGE_V1: &str = "warefs-catalog-page/1";
/// A page holds at most this many wares; a fold splits a fuller one in two.
pub const PAGE_MAX: usize = 4096;
/// Names one ware may carry in a catalog (the most recently pushed are kept).
pub const NAMES_MAX: usize = 64;
/// Largest head, page or push object accepted.
pub const OBJECT_MAX: usize = 16 << 20;
/// Pages a head may name (a million wares at the page size).
pub const PAGES_MAX: usize = 1 << 10;

/// A name a ware was pushed under, and when (seconds since the epoch).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    /// The name.
    #[serde(rename = "n")]
    pub name: String,
    /// When a push published it.
    #[serde(rename = "t")]
    pub at: u64,
}

/// One ware of a catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The ware (its ID as a CID link).
    #[serde(rename = "w")]
    pub ware: Cid,
    /// Logical size: the sum of its regular files' sizes.
    #[serde(rename = "b")]
    pub bytes: u64,
    /// Entries: files, directories (the root included), symlinks, specials.
    #[serde(rename = "e")]
    pub entries: u64,
    /// When it was first pushed (seconds since the epoch).
    #[serde(rename = "t")]
    pub at: u64,
    /// The names it was pushed under, by name.
    #[serde(rename = "n", default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<Named>,
}

impl Entry {
    /// The ware's ID.
    pub fn id(&self) -> WareId {
        NodeId(self.ware)
    }

    /// Takes what `other` (the same ware) adds: the earlier first push, and each name at its
    /// latest push; the most recent [`NAMES_MAX`] names are kept, in name order.
    pub fn absorb(&mut self, other: &Entry) {
        debug_assert_eq!(self.ware, other.ware);
        self.at = self.at.min(other.at);
        let mut names: BTreeMap<String, u64> =
            self.names.iter().map(|n| (n.name.clone(), n.at)).collect();
        for n in &other.names {
            let at = names.entry(n.name.clone()).or_insert(n.at);
            *at = (*at).max(n.at);
        }
        let mut v: Vec<Named> = names
            .into_iter()
            .map(|(name, at)| Named { name, at })
            .collect();
        if v.len() > NAMES_MAX {
            v.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.name.cmp(&b.name)));
            v.truncate(NAMES_MAX);
            v.sort_by(|a, b| a.name.cmp(&b.name));
        }
        self.names = v;
    }
}

/// A push object: the ware one push recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Push {
    /// Always [`PUSH_V1`].
    pub format: String,
    /// The ware, with the name it was pushed under, if any.
    pub entry: Entry,
}

/// A page: wares sorted by ID, each once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// Always [`PAGE_V1`].
    pub format: String,
    /// The wares.
    pub wares: Vec<Entry>,
}

/// Where a head finds a page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRef {
    /// The lowest ware ID of the page (pages are in ID order and do not overlap).
    pub first: Cid,
    /// Its name: the lowercase hex BLAKE3 of its bytes (key `catalog/pages/<name>`).
    pub name: String,
    /// How many wares it holds.
    pub count: u64,
}

/// A page a fold replaced, and when: a reader of an older head may still fetch it, so it is
/// removed only after [`GRACE_SECS`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retired {
    /// The page's name.
    pub name: String,
    /// When it was replaced (seconds since the epoch).
    pub at: u64,
}

/// How long a folded push object or a replaced page is kept before a fold removes it.
pub const GRACE_SECS: u64 = 3600;

/// The head: the pages, and the push objects already folded into them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Always [`CATALOG_V1`].
    pub format: String,
    /// The pages, in ID order.
    pub pages: Vec<PageRef>,
    /// The keys of the push objects folded in, sorted.
    pub folded: Vec<String>,
    /// Pages replaced by a fold, not yet removed.
    #[serde(default)]
    pub retired: Vec<Retired>,
}

/// The key of a page named `name`.
pub fn page_key(name: &str) -> String {
    format!("{PAGES_PREFIX}{name}")
}

/// The key of a push object made at `secs` with a random `tag`.
pub fn push_key(secs: u64, tag: u64) -> String {
    format!("{PUSHES_PREFIX}{secs:012}-{tag:016x}")
}

/// The time a push key says it was made, if it is one of [`push_key`]'s.
pub fn push_key_secs(key: &str) -> Option<u64> {
    let rest = key.strip_prefix(PUSHES_PREFIX)?;
    let (secs, tag) = rest.split_once('-')?;
    (secs.len() == 12 && tag.len() == 16 && u64::from_str_radix(tag, 16).is_ok())
        .then(|| secs.parse().ok())
        .flatten()
}

fn bad(what: &str, why: impl std::fmt::Display) -> Error {
    Error::Malformed(format!("catalog {what}: {why}"))
}

fn decode<T: for<'de> Deserialize<'de>>(what: &str, bytes: &[u8]) -> Result<T> {
    if bytes.len() > OBJECT_MAX {
        return Err(bad(
            what,
            format!("{} bytes, more than {OBJECT_MAX}", bytes.len()),
        ));
    }
    serde_ipld_dagcbor::from_slice(bytes).map_err(|e| bad(what, format!("undecodable: {e}")))
}

fn check_format(what: &str, got: &str, want: &str) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(bad(what, format!("format {got:?}, not {want:?}")))
    }
}

fn check_entry(what: &str, e: &Entry) -> Result<()> {
    if e.names.len() > NAMES_MAX {
        return Err(bad(what, format!("{}: over {NAMES_MAX} names", e.ware)));
    }
    for n in &e.names {
        crate::name::check_name(&n.name).map_err(|err| bad(what, err))?;
    }
    if !e.names.windows(2).all(|w| w[0].name < w[1].name) {
        return Err(bad(what, format!("{}: names not sorted", e.ware)));
    }
    Ok(())
}

impl Push {
    /// A push object of `entry`.
    pub fn new(entry: Entry) -> Push {
        Push {
            format: PUSH_V1.into(),
            entry,
        }
    }

    /// Its DAG-CBOR bytes.
    pub fn encode(&self) -> Vec<u8> {
        crate::node::encode(self)
    }

    /// Decodes and checks a push object.
    pub fn decode(bytes: &[u8]) -> Result<Push> {
        let p: Push = decode("push", bytes)?;
        check_format("push", &p.format, PUSH_V1)?;
        check_entry("push", &p.entry)?;
        Ok(p)
    }
}

impl Page {
    /// A page of `wares` (sorted by ID, each once).
    pub fn new(wares: Vec<Entry>) -> Page {
        Page {
            format: PAGE_V1.into(),
            wares,
        }
    }

    /// Its DAG-CBOR bytes, and its name.
    pub fn encode(&self) -> (Vec<u8>, String) {
        let bytes = crate::node::encode(self);
        let name = blake3::hash(&bytes).to_hex().to_string();
        (bytes, name)
    }

    /// Its DAG-CBOR bytes, and the reference a head keeps to it.
    pub fn encode_ref(&self) -> (Vec<u8>, PageRef) {
        let (bytes, name) = self.encode();
        let r = PageRef {
            first: self.wares.first().map_or(Cid::default(), |e| e.ware),
            name,
            count: self.wares.len() as u64,
        };
        (bytes, r)
    }

    /// Decodes a page fetched as `name`: it must hash to its name, hold at most
    /// [`PAGE_MAX`] wares, sorted by ID, each once.
    pub fn decode(name: &str, bytes: &[u8]) -> Result<Page> {
        let what = format!("page {name}");
        if blake3::hash(bytes).to_hex().as_str() != name {
            return Err(bad(&what, "does not hash to its name"));
        }
        let p: Page = decode(&what, bytes)?;
        check_format(&what, &p.format, PAGE_V1)?;
        if p.wares.len() > PAGE_MAX {
            return Err(bad(&what, format!("over {PAGE_MAX} wares")));
        }
        if !p.wares.windows(2).all(|w| w[0].ware < w[1].ware) {
            return Err(bad(&what, "wares not in ID order"));
        }
        for e in &p.wares {
            check_entry(&what, e)?;
        }
        Ok(p)
    }
}

impl Head {
    /// An empty catalog.
    pub fn new() -> Head {
        Head {
            format: CATALOG_V1.into(),
            ..Head::default()
        }
    }

    /// Its DAG-CBOR bytes.
    pub fn encode(&self) -> Vec<u8> {
        crate::node::encode(self)
    }

    /// Decodes and checks a head: at most [`PAGES_MAX`] pages in ID order, push keys sorted.
    pub fn decode(bytes: &[u8]) -> Result<Head> {
        let h: Head = decode("head", bytes)?;
        check_format("head", &h.format, CATALOG_V1)?;
        if h.pages.len() > PAGES_MAX {
            return Err(bad("head", format!("over {PAGES_MAX} pages")));
        }
        if !h.pages.windows(2).all(|w| w[0].first < w[1].first) {
            return Err(bad("head", "pages not in ID order"));
        }
        if !h.folded.windows(2).all(|w| w[0] < w[1]) {
            return Err(bad("head", "folded pushes not sorted"));
        }
        Ok(h)
    }

    /// The index of the page `ware` belongs in (the last whose first ID is not above it; the
    /// first page for IDs below all), or `None` when there are no pages.
    pub fn page_of(&self, ware: &WareId) -> Option<usize> {
        if self.pages.is_empty() {
            return None;
        }
        Some(self.pages.partition_point(|p| p.first <= ware.0).max(1) - 1)
    }
}

/// Merges `entries` into the wares of a page (sorted by ID, each once), in place.
pub fn merge(wares: &mut Vec<Entry>, entries: impl IntoIterator<Item = Entry>) {
    for e in entries {
        match wares.binary_search_by(|w| w.ware.cmp(&e.ware)) {
            Ok(i) => wares[i].absorb(&e),
            Err(i) => {
                let mut fresh = e.clone();
                // Through absorb, so its names are normalised like every other.
                fresh.names.clear();
                fresh.absorb(&e);
                wares.insert(i, fresh);
            }
        }
    }
}

/// Cuts sorted wares into pages of at most [`PAGE_MAX`], each split in even halves.
pub fn paginate(wares: Vec<Entry>) -> Vec<Page> {
    if wares.len() <= PAGE_MAX {
        return vec![Page::new(wares)];
    }
    let parts = wares.len().div_ceil(PAGE_MAX);
    let per = wares.len().div_ceil(parts);
    let mut out = Vec::with_capacity(parts);
    let mut rest = wares;
    while rest.len() > per {
        let tail = rest.split_off(per);
        out.push(Page::new(rest));
        rest = tail;
    }
    out.push(Page::new(rest));
    out
}

/// Each name of the wares, with the ware it was pushed for last (a later push wins; at the
/// same second, the greater ID), and when.
pub fn names<'a>(wares: impl IntoIterator<Item = &'a Entry>) -> BTreeMap<String, (WareId, u64)> {
    let mut out: BTreeMap<String, (WareId, u64)> = BTreeMap::new();
    for e in wares {
        for n in &e.names {
            let cand = (e.id(), n.at);
            out.entry(n.name.clone())
                .and_modify(|cur| {
                    if (cand.1, cand.0) > (cur.1, cur.0) {
                        *cur = cand;
                    }
                })
                .or_insert(cand);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(k: u64) -> WareId {
        NodeId::of(&k.to_le_bytes())
    }

    fn entry(k: u64, at: u64, names: &[(&str, u64)]) -> Entry {
        Entry {
            ware: id(k).0,
            bytes: 1000 * k,
            entries: k,
            at,
            names: names
                .iter()
                .map(|(n, t)| Named {
                    name: n.to_string(),
                    at: *t,
                })
                .collect(),
        }
    }

    #[test]
    fn merging_is_the_same_in_any_order() {
        let pushes = [
            entry(3, 20, &[("app", 20)]),
            entry(1, 10, &[("base", 10)]),
            entry(3, 15, &[("app", 15), ("old", 15)]),
            entry(2, 30, &[("app", 30)]),
        ];
        let mut a = Vec::new();
        merge(&mut a, pushes.iter().cloned());
        let mut b = Vec::new();
        merge(&mut b, pushes.iter().rev().cloned());
        assert_eq!(a, b);
        let mut want = vec![id(1), id(2), id(3)];
        want.sort();
        assert_eq!(a.iter().map(Entry::id).collect::<Vec<_>>(), want);
        let a3 = a.iter().find(|e| e.id() == id(3)).unwrap();
        assert_eq!(a3.at, 15, "the first push of a ware is kept");
        assert_eq!(a3.names, entry(3, 0, &[("app", 20), ("old", 15)]).names);
        let n = names(&a);
        assert_eq!(n["app"], (id(2), 30), "the latest push of a name wins");
        assert_eq!(n["old"], (id(3), 15));
    }

    #[test]
    fn pages_split_and_decode_only_as_written() {
        let wares: Vec<Entry> = (0..256).map(|k| entry(k, 1, &[])).collect();
        let mut sorted = wares.clone();
        sorted.sort_by_key(|a| a.ware);
        let pages = paginate(sorted.clone());
        assert_eq!(pages.len(), 1);
        let (bytes, name) = pages[0].encode();
        assert_eq!(Page::decode(&name, &bytes).unwrap(), pages[0]);
        // Another name, flipped bytes, unsorted wares: refused.
        assert!(Page::decode(&"0".repeat(64), &bytes).is_err());
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        let flipped_name = blake3::hash(&flipped).to_hex().to_string();
        assert!(Page::decode(&flipped_name, &flipped).is_err());
        let mut unsorted = Page::new(sorted.clone());
        unsorted.wares.swap(0, 1);
        let (ub, un) = unsorted.encode();
        assert!(Page::decode(&un, &ub).is_err());
        // Over a page: even halves, in order, none over the limit.
        let mut many: Vec<Entry> = (0..PAGE_MAX as u64 + 10)
            .map(|k| entry(k, 1, &[]))
            .collect();
        many.sort_by_key(|a| a.ware);
        let pages = paginate(many);
        assert_eq!(pages.len(), 2);
        assert!(pages.iter().all(|p| p.wares.len() <= PAGE_MAX));
        assert!(pages[0].wares.last().unwrap().ware < pages[1].wares[0].ware);
    }

    #[test]
    fn a_head_finds_the_page_of_an_id() {
        let mut h = Head::new();
        assert_eq!(h.page_of(&id(1)), None);
        let mut ids: Vec<WareId> = (0..3).map(id).collect();
        ids.sort();
        for w in &ids {
            h.pages.push(PageRef {
                first: w.0,
                name: String::new(),
                count: 1,
            });
        }
        assert_eq!(h.page_of(&ids[0]), Some(0));
        assert_eq!(h.page_of(&ids[1]), Some(1));
        assert_eq!(h.page_of(&ids[2]), Some(2));
        let back = Head::decode(&h.encode()).unwrap();
        assert_eq!(back, h);
        assert!(push_key_secs(&push_key(1_700_000_000, 7)) == Some(1_700_000_000));
        assert_eq!(push_key_secs("catalog/pushes/x"), None);
    }
}
