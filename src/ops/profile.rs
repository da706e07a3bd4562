//! The operations on access profiles (docs/FORMAT.md, "Profiles"): list, show and remove
//! them, and prefetch a ware by one without mounting it.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use ware_fetchers::read_through::PrefetchReport;
use ware_store::WareId;

use super::{Cx, Op};
use crate::api::{LocalStore, RemoteOptions, usage_error};

/// A stored access profile, as `ware profile ls` and `show` tell it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProfileInfo {
    /// `ware:<id>` or `run:<formula id>:<path>`.
    pub key: String,
    /// The CID of the profile's bytes.
    pub id: String,
    /// Its size in bytes.
    pub bytes: usize,
    /// The ware it is of (`None` when it cannot be read).
    pub ware: Option<String>,
    /// How many recordings went into it.
    pub runs: u64,
    /// Nodes it lists.
    pub nodes: usize,
    /// Chunks it lists.
    pub chunks: usize,
    /// Why it cannot be read, if it cannot.
    pub error: Option<String>,
    /// With `show`: every block in first-read order, with the recordings that missed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Vec<(String, u8)>>,
}

impl ProfileInfo {
    fn of(s: ware_store::profiles::StoredProfile, with_blocks: bool) -> ProfileInfo {
        use ware_store::profile::{BlockKind, block_kind};
        let (ware, runs, nodes, chunks, error, blocks) = match &s.profile {
            Ok(p) => {
                let n = |k| {
                    p.blocks
                        .iter()
                        .filter(|b| block_kind(&b.0) == Some(k))
                        .count()
                };
                (
                    Some(p.ware.to_string()),
                    p.runs,
                    n(BlockKind::Node),
                    n(BlockKind::Chunk),
                    None,
                    with_blocks.then(|| p.blocks.iter().map(|b| (b.0.to_string(), b.1)).collect()),
                )
            }
            Err(e) => (None, 0, 0, 0, Some(e.clone()), None),
        };
        ProfileInfo {
            key: s.key,
            id: s.id.to_string(),
            bytes: s.bytes,
            ware,
            runs,
            nodes,
            chunks,
            error,
            blocks,
        }
    }
}

/// Every access profile the store holds, in key order.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ProfileList {}

impl Op for ProfileList {
    fn run(self, s: &LocalStore, _: &mut Cx<'_>) -> Result<Vec<ProfileInfo>> {
        Ok(s.db()
            .profiles()?
            .into_iter()
            .map(|p| ProfileInfo::of(p, false))
            .collect())
    }
}

/// One access profile with its blocks, by key (`ware:<id>`, `run:<formula>:<path>`) or by
/// the CID of its bytes.
#[derive(Debug, Serialize, Deserialize)]
pub struct ProfileShow {
    /// A key or a profile's CID.
    pub which: String,
}

impl Op for ProfileShow {
    fn run(self, s: &LocalStore, _: &mut Cx<'_>) -> Result<ProfileInfo> {
        let found = if self.which.starts_with("ware:") || self.which.starts_with("run:") {
            s.db().profile(&self.which)?
        } else {
            let id: ware_store::NodeId = self.which.parse()?;
            s.db().profiles()?.into_iter().find(|p| p.id == id)
        };
        let p = found.ok_or_else(|| ware_store::Error::NotFound {
            what: "profile",
            id: self.which.clone(),
        })?;
        Ok(ProfileInfo::of(p, true))
    }
}

/// Forget an access profile (the next mount or run goes without it and learns it again).
#[derive(Debug, Serialize, Deserialize)]
pub struct ProfileRemove {
    /// `ware:<id>` or `run:<formula id>:<path>`.
    pub key: String,
}

impl Op for ProfileRemove {
    fn run(self, s: &LocalStore, _: &mut Cx<'_>) -> Result<()> {
        if !s.db().remove_profile(&self.key)? {
            return Err(ware_store::Error::NotFound {
                what: "profile",
                id: self.key,
            }
            .into());
        }
        Ok(())
    }
}

/// Fetch the chunks of a ware's profile into the store, as a mount of it would at its start,
/// without mounting it (`ware prefetch`).
#[derive(Debug, Serialize, Deserialize)]
pub struct Prefetch {
    /// The ware.
    pub ware: WareId,
    /// The profile's key; without one, `run` keys are not guessed: `ware:<id>`.
    pub profile: Option<String>,
    /// Warehouses and the read deadline.
    pub remote: RemoteOptions,
}

impl Op for Prefetch {
    fn run(self, s: &LocalStore, cx: &mut Cx<'_>) -> Result<PrefetchReport> {
        let ware = self.ware;
        let key = self
            .profile
            .clone()
            .unwrap_or_else(|| crate::profile::ware_key(&ware));
        ware_store::profile::check_key(&key)?;
        let store = s.shared();
        if store.ware(&ware)?.is_some() {
            // Whole in the store: nothing to fetch, whatever the profile lists.
            let p = profile_of(s, &key, &ware)?;
            let chunks = p
                .blocks
                .iter()
                .filter(|b| {
                    ware_store::profile::block_kind(&b.0)
                        == Some(ware_store::profile::BlockKind::Chunk)
                })
                .count() as u64;
            return Ok(PrefetchReport {
                chunks,
                cached: chunks,
                ..PrefetchReport::default()
            });
        }
        if self.remote.warehouses.is_empty() {
            return Err(usage_error(format!(
                "the store does not hold {ware} and no warehouse is given to prefetch it \
                 from (--warehouse URL)"
            )));
        }
        let rt = self.remote.read_through(store.clone())?;
        // As a mount does: the ware's metadata with its profiles (kept), then the named one.
        let opts = crate::profile::Settings::of(&store).prefetch;
        let keys = std::slice::from_ref(&key);
        let Some(started) = crate::profile::prepare(&store, &rt, &ware, keys, None, opts)? else {
            return Err(ware_store::Error::NotFound {
                what: "ware in any warehouse",
                id: format!("{ware} ({})", self.remote.warehouses.join(", ")),
            }
            .into());
        };
        let Some(running) = started.by_profile else {
            // Why not: no such profile (exit 3), an unreadable one or another ware's; else
            // its blocks were mostly another ware's.
            profile_of(s, &key, &ware)?;
            anyhow::bail!("profile {key}: most of its blocks are not {ware}'s; not used");
        };
        cx.progress.total(running.report().planned_bytes);
        let mut shown = 0;
        loop {
            let done = running.finished();
            let r = running.report();
            cx.progress.advance(r.bytes.saturating_sub(shown));
            shown = r.bytes.max(shown);
            if done {
                return Ok(r);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// The sound profile of `ware` under `key`, or why not: not found (exit 3), unreadable, or
/// another ware's.
fn profile_of(s: &LocalStore, key: &str, ware: &WareId) -> Result<ware_store::profile::Profile> {
    let stored = s
        .db()
        .profile(key)?
        .ok_or_else(|| ware_store::Error::NotFound {
            what: "profile",
            id: key.to_string(),
        })?;
    let p = stored.profile.map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        p.ware == ware.0,
        "profile {key} is of {}, not of {ware}",
        p.ware
    );
    Ok(p)
}
