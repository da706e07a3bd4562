//! Access profiles (docs/FORMAT.md, "Profiles"), learned and used.
//!
//! Learning: a [`Recorder`] is told by a mount (`ware_fs::ReadLog`) of each node and chunk read
//! for a ware, cached or not, and keeps the first reads in order, per ware; when the mount
//! ends, [`Recording`] merges what it saw into the profiles in the store. A mount of one ware
//! feeds `ware:<id>`; the mount of a run's inputs feeds `run:<formula>:<path>` for each input
//! and the input ware's own profile.
//!
//! Using: profiles fetched from a warehouse are kept ([`keep_fetched`]); a mount of a remote
//! ware, or `ware prefetch`, starts fetching the chunks of the first sound profile it finds
//! ([`prepare`], [`prefetch`]) with the store's settings ([`Settings`]); a mount of a ware the
//! store holds whole reads its profile into the caches ([`warm`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use ware_fetchers::read_through::{Prefetch, PrefetchOptions, ReadThrough};
use ware_fs::ReadLog;
use ware_store::db::Store;
use ware_store::profile::{PROFILE_MAX_BLOCKS, Profile, ProfileSet};
use ware_store::{Cid, WareId};

use crate::ops::MountWhat;

/// The key of a ware's own profile.
pub fn ware_key(id: &WareId) -> String {
    format!("ware:{id}")
}

/// The key of the profile of a run's input: the formula's ID and the input's path.
pub fn run_key(formula: &WareId, path: &str) -> String {
    format!("run:{formula}:{path}")
}

/// One ware's first reads, in order.
#[derive(Default)]
struct Reads {
    seen: HashSet<Cid>,
    order: Vec<Cid>,
}

/// Notes first reads, in order, for each of the wares it watches; reads of other wares (an
/// `--all` mount shows every ware of the store) are not kept.
pub struct Recorder {
    wares: Mutex<HashMap<Cid, Reads>>,
}

impl Recorder {
    /// A recorder watching `wares`, having seen nothing.
    pub fn new(wares: impl IntoIterator<Item = WareId>) -> Self {
        Recorder {
            wares: Mutex::new(wares.into_iter().map(|w| (w.0, Reads::default())).collect()),
        }
    }

    /// What was read of `ware` so far, in first-read order.
    pub fn reads(&self, ware: &WareId) -> Vec<Cid> {
        self.wares
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ware.0)
            .map(|r| r.order.clone())
            .unwrap_or_default()
    }
}

impl ReadLog for Recorder {
    fn read(&self, ware: &Cid, block: &Cid) {
        let mut wares = self.wares.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: a profile holds at most PROFILE_MAX_BLOCKS; later reads are not kept.
        if let Some(r) = wares.get_mut(ware)
            && r.order.len() < PROFILE_MAX_BLOCKS
            && r.seen.insert(*block)
        {
            r.order.push(*block);
        }
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let wares = self.wares.lock().unwrap_or_else(|p| p.into_inner());
        f.debug_struct("Recorder")
            .field("wares", &wares.len())
            .finish()
    }
}

/// A mount's recording: when dropped (the mount ended), what it read goes into its profiles
/// (each merged with the one the store holds). A failure is logged, never fatal: a profile
/// is a hint.
pub struct Recording {
    store: Arc<Store>,
    recorder: Arc<Recorder>,
    /// Each profile this recording feeds, with the ware whose reads go into it.
    keys: Vec<(String, WareId)>,
}

impl Recording {
    /// Records the reads of a mount of one ware, for `ware:<id>`.
    pub fn ware(store: Arc<Store>, ware: WareId) -> Recording {
        Recording {
            store,
            recorder: Arc::new(Recorder::new([ware])),
            keys: vec![(ware_key(&ware), ware)],
        }
    }

    /// Records the reads of a run's inputs (input path → ware), each for
    /// `run:<formula>:<path>` and for its ware's own profile.
    pub fn run(
        store: Arc<Store>,
        formula: &WareId,
        inputs: &BTreeMap<String, WareId>,
    ) -> Recording {
        let mut keys: Vec<(String, WareId)> = inputs
            .iter()
            .map(|(path, id)| (run_key(formula, path), *id))
            .collect();
        for id in inputs.values() {
            let k = ware_key(id);
            if !keys.iter().any(|(have, _)| *have == k) {
                keys.push((k, *id));
            }
        }
        Recording {
            store,
            recorder: Arc::new(Recorder::new(inputs.values().copied())),
            keys,
        }
    }

    /// What the mount tells of its reads.
    pub fn log(&self) -> Arc<dyn ReadLog> {
        self.recorder.clone()
    }

    /// Merges the reads into the store's profiles; returns each profile written and how many
    /// blocks it lists now.
    pub fn keep(&self) -> anyhow::Result<Vec<(String, usize)>> {
        let mut kept = Vec::new();
        for (key, ware) in &self.keys {
            let reads = self.recorder.reads(ware);
            if reads.is_empty() {
                continue;
            }
            let p = match self.stored(key, ware)? {
                Some(old) => old.merge(&reads),
                None => Profile::first(ware.0, &reads),
            };
            let n = p.blocks.len();
            let id = self.store.put_profile(key, &p)?;
            tracing::info!(
                "profile {key}: {} blocks read, {n} kept after {} recordings ({id})",
                reads.len(),
                p.runs
            );
            kept.push((key.clone(), n));
        }
        Ok(kept)
    }

    /// The store's profile under `key`, if it is a sound profile of `ware`.
    fn stored(&self, key: &str, ware: &WareId) -> anyhow::Result<Option<Profile>> {
        Ok(match self.store.profile(key)? {
            Some(s) => match s.profile {
                Ok(p) if p.ware == ware.0 => Some(p),
                Ok(_) => {
                    tracing::warn!("profile {key} names another ware; starting it anew");
                    None
                }
                Err(e) => {
                    tracing::warn!("{e}; starting the profile anew");
                    None
                }
            },
            None => None,
        })
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if let Err(e) = self.keep() {
            let keys: Vec<&str> = self.keys.iter().map(|(k, _)| k.as_str()).collect();
            tracing::warn!("keeping the profiles {}: {e:#}", keys.join(", "));
        }
    }
}

/// The settings reading ahead follows, as the store's config file has them now (read once per
/// mount; a file that cannot be read means the defaults, with a warning).
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// `prefetch.concurrency` and `prefetch.max_range`.
    pub prefetch: PrefetchOptions,
    /// `fill.rate`: the background fill's cap when a mount or formula input does not set one.
    pub fill_rate: u64,
    /// `prefetch.siblings_bytes`: reading ahead beside opened files when no profile is used.
    pub siblings_bytes: u64,
    /// `prefetch.opened_bytes`: files fetched whole when opened, when no profile is used.
    pub opened_bytes: u64,
}

impl Settings {
    /// The settings of `store`.
    pub fn of(store: &Store) -> Settings {
        // A file that cannot be read means every default, as declared in src/config.rs.
        let c = crate::config::Config::load(store.dir()).unwrap_or_else(|e| {
            tracing::warn!("{e:#}: reading ahead with the default settings");
            crate::config::Config::default()
        });
        Settings {
            prefetch: PrefetchOptions {
                concurrency: c.get("prefetch.concurrency") as usize,
                max_range: c.get("prefetch.max_range") as u64,
            },
            fill_rate: c.get("fill.rate") as u64,
            siblings_bytes: c.get("prefetch.siblings_bytes") as u64,
            opened_bytes: c.get("prefetch.opened_bytes") as u64,
        }
    }
}

/// What a mount of a remote ware fetches ahead of its reads: by its profile, then the rest
/// of it (`--fill`). Dropping it stops both.
#[derive(Default)]
pub struct Ahead {
    /// The prefetch by the first sound profile, if there is one.
    pub by_profile: Option<Prefetch>,
    /// The background fill, if asked for.
    pub fill: Option<Prefetch>,
}

/// Makes a remote `ware` readable through `rt` (its metadata, with the profiles its warehouse
/// holds, which the store keeps), then starts prefetching it by the first sound profile under
/// `keys`, and with `fill` (bytes a second) the rest of it after that, in the background.
/// `None`: no warehouse has the ware (its reads fail as not found).
pub fn prepare(
    store: &Store,
    rt: &ReadThrough,
    ware: &WareId,
    keys: &[String],
    fill: Option<u64>,
    opts: PrefetchOptions,
) -> anyhow::Result<Option<Ahead>> {
    if !rt.prepare(ware)? {
        return Ok(None);
    }
    if let Some(set) = rt.profiles(ware) {
        keep_fetched(store, &set);
    }
    let by_profile = prefetch(store, rt, ware, keys, opts);
    let fill = fill.and_then(|rate| {
        tracing::info!("{ware}: filling in the background at up to {rate} bytes/s");
        rt.fill(ware, by_profile.as_ref(), Some(rate), opts.max_range)
    });
    Ok(Some(Ahead { by_profile, fill }))
}

/// Keeps the profiles of `set` (fetched from a warehouse) that the store lacks or knows from
/// fewer recordings; returns how many. A hint: a failure is logged, never fatal.
pub fn keep_fetched(store: &Store, set: &ProfileSet) -> u64 {
    match store.absorb_profiles(set) {
        Ok(keys) => {
            if !keys.is_empty() {
                tracing::info!(
                    "profiles of {} from its warehouse: {}",
                    set.ware,
                    keys.join(", ")
                );
            }
            keys.len() as u64
        }
        Err(e) => {
            tracing::warn!("keeping the profiles of {}: {e}", set.ware);
            0
        }
    }
}

/// The wares of a mount that profiles are kept for, each with the keys of its profiles in the
/// order they are looked up and the rate of its background fill if it has one: a mount's ware
/// (`ware:<id>`; `fill` is the mount's); each input of a run, once per ware
/// (`run:<formula>:<path>`, then `ware:<id>`; filled at `run_fill_rate` if the formula asks).
pub fn keys_of(
    what: &MountWhat,
    fill: Option<u64>,
    run_fill_rate: u64,
) -> Vec<(WareId, Vec<String>, Option<u64>)> {
    match what {
        MountWhat::Ware(id) => vec![(*id, vec![ware_key(id)], fill)],
        MountWhat::Run {
            formula,
            inputs,
            fill,
        } => {
            let mut out: Vec<(WareId, Vec<String>, Option<u64>)> = Vec::new();
            for (path, id) in inputs {
                if !out.iter().any(|(w, _, _)| w == id) {
                    let rate = fill.contains(id).then_some(run_fill_rate);
                    out.push((*id, vec![run_key(formula, path), ware_key(id)], rate));
                }
            }
            out
        }
        MountWhat::All | MountWhat::Unixfs(_) | MountWhat::Warehouse { .. } => Vec::new(),
    }
}

/// The sound profiles of `ware` under `keys`, in that order, as (key, blocks); a damaged one,
/// or one of another ware, is passed over with a warning.
fn sound_profiles(store: &Store, ware: &WareId, keys: &[String]) -> Vec<(String, Vec<Cid>)> {
    let mut out = Vec::new();
    for key in keys {
        let p = match store.profile(key) {
            Ok(Some(s)) => s.profile,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("profile {key}: {e}");
                continue;
            }
        };
        match p {
            Ok(p) if p.ware == ware.0 => {
                out.push((key.clone(), p.blocks.iter().map(|b| b.0).collect()));
            }
            Ok(p) => tracing::warn!("profile {key} is of {}, not {ware}: not used", p.ware),
            Err(e) => tracing::warn!("{e}: not used"),
        }
    }
    out
}

/// Starts prefetching `ware` (prepared in `rt`) by the first of its sound profiles under
/// `keys` that the prefetch takes (one whose blocks are mostly not the ware's is refused).
pub fn prefetch(
    store: &Store,
    rt: &ReadThrough,
    ware: &WareId,
    keys: &[String],
    opts: PrefetchOptions,
) -> Option<Prefetch> {
    sound_profiles(store, ware, keys)
        .into_iter()
        .find_map(|(key, blocks)| {
            rt.prefetch_profile(ware, &format!("profile {key}"), &blocks, opts)
        })
}

/// Starts reading the first sound profile of `ware` (which the store holds whole) under `keys`
/// from the store into `caches`, `threads` reads at a time (`prefetch.concurrency`), so a cold
/// start stops paying one disk read and one decompression at a time.
pub fn warm(
    store: &Arc<Store>,
    caches: &Arc<ware_fs::Caches>,
    ware: &WareId,
    keys: &[String],
    threads: usize,
) -> Option<ware_fs::Warming> {
    let (key, blocks) = sound_profiles(store, ware, keys).into_iter().next()?;
    tracing::info!(
        "profile {key}: reading {} blocks ahead from the store",
        blocks.len()
    );
    let src: Arc<dyn ware_store::BlockSource> = store.clone();
    Some(ware_fs::warm(src, caches.clone(), blocks, threads))
}
