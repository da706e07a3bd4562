//! The profiles of one ware as they travel (docs/FORMAT.md, "Profiles in a warehouse"): one
//! DAG-CBOR object under `profiles/<ware id>`, holding each profile of the ware by its key.
//!
//! Invariants: a decoded set has passed the checks of every profile in it, names only the ware
//! it was fetched for (in each key of the form `ware:<id>` and in each profile), holds at most
//! [`SET_MAX_PROFILES`] profiles and is at most [`SET_MAX_BYTES`] long; [`ProfileSet::absorb`]
//! never replaces a profile with one learned from fewer recordings.

use std::collections::BTreeMap;

use cid::Cid;
use serde::{Deserialize, Serialize};

use super::{Profile, check_key};
use crate::error::{Error, Result};
use crate::node::encode;

/// The format name carried by every set.
pub const PROFILES_V1: &str = "warefs-profiles/1";
/// A set holds at most this many profiles (the ware's own and its runs').
pub const SET_MAX_PROFILES: usize = 64;
/// A set is at most this many bytes (a profile is under 1 MiB; most are tens of KiB).
pub const SET_MAX_BYTES: usize = 16 << 20;

/// The profiles of one ware, by key (`ware:<id>`, `run:<formula id>:<path>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileSet {
    /// Always [`PROFILES_V1`].
    #[serde(rename = "format")]
    pub format: String,
    /// The ware.
    #[serde(rename = "ware")]
    pub ware: Cid,
    /// Its profiles, by key.
    #[serde(rename = "profiles")]
    pub profiles: BTreeMap<String, Profile>,
}

impl ProfileSet {
    /// An empty set for `ware`.
    pub fn new(ware: Cid) -> ProfileSet {
        ProfileSet {
            format: PROFILES_V1.into(),
            ware,
            profiles: BTreeMap::new(),
        }
    }

    /// The set's DAG-CBOR bytes. Over [`SET_MAX_PROFILES`], the run profiles learned from the
    /// fewest recordings are left out (the ware's own is kept).
    pub fn encode(&self) -> Vec<u8> {
        if self.profiles.len() <= SET_MAX_PROFILES {
            return encode(self);
        }
        let own = format!("ware:{}", self.ware);
        let mut keys: Vec<&String> = self.profiles.keys().collect();
        keys.sort_by_key(|k| (**k != own, std::cmp::Reverse(self.profiles[*k].runs)));
        keys.truncate(SET_MAX_PROFILES);
        let mut kept = ProfileSet::new(self.ware);
        for k in keys {
            kept.profiles.insert(k.clone(), self.profiles[k].clone());
        }
        encode(&kept)
    }

    /// Decodes and checks the set fetched for `ware`; `what` names it in errors (its URL).
    pub fn decode(ware: &Cid, what: &str, bytes: &[u8]) -> Result<ProfileSet> {
        let bad = |why: String| Error::bad_input(format!("profiles {what}"), why);
        if bytes.len() > SET_MAX_BYTES {
            return Err(bad(format!(
                "{} bytes, more than {SET_MAX_BYTES}",
                bytes.len()
            )));
        }
        let set: ProfileSet = serde_ipld_dagcbor::from_slice(bytes)
            .map_err(|e| bad(format!("does not decode: {e}")))?;
        if set.format != PROFILES_V1 {
            return Err(bad(format!(
                "format {:?}; this ware reads {PROFILES_V1}",
                set.format
            )));
        }
        if set.ware != *ware {
            return Err(bad(format!("it is the set of {}, not of {ware}", set.ware)));
        }
        if set.profiles.len() > SET_MAX_PROFILES {
            return Err(bad(format!(
                "{} profiles, more than {SET_MAX_PROFILES}",
                set.profiles.len()
            )));
        }
        for (key, p) in &set.profiles {
            check_key(key).map_err(|e| bad(e.to_string()))?;
            if let Some(id) = key.strip_prefix("ware:")
                && id != ware.to_string()
            {
                return Err(bad(format!("key {key} is another ware's")));
            }
            p.validate().map_err(|why| bad(format!("{key}: {why}")))?;
            if p.ware != *ware {
                return Err(bad(format!("{key} is a profile of {}", p.ware)));
            }
        }
        Ok(set)
    }

    /// Takes the profiles of `other` (of the same ware) that this set lacks or holds from fewer
    /// recordings; returns their keys.
    pub fn absorb(&mut self, other: &ProfileSet) -> Vec<String> {
        let mut taken = Vec::new();
        if other.ware != self.ware {
            return taken;
        }
        for (key, p) in &other.profiles {
            let newer = match self.profiles.get(key) {
                None => true,
                Some(mine) => p.runs > mine.runs,
            };
            if newer {
                self.profiles.insert(key.clone(), p.clone());
                taken.push(key.clone());
            }
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{ChunkId, NodeId};

    fn ware() -> Cid {
        NodeId::of(b"ware").0
    }

    fn set(profiles: &[(&str, u64)]) -> ProfileSet {
        let mut s = ProfileSet::new(ware());
        for (k, runs) in profiles {
            let mut p = Profile::first(ware(), &[ChunkId::of(k.as_bytes()).to_cid()]);
            p.runs = *runs;
            s.profiles.insert(k.to_string(), p);
        }
        s
    }

    #[test]
    fn sets_round_trip_and_foreign_or_damaged_ones_are_refused() {
        let f = NodeId::of(b"formula");
        let s = set(&[(&format!("ware:{}", ware()), 3), (&format!("run:{f}:/"), 1)]);
        let bytes = s.encode();
        assert_eq!(ProfileSet::decode(&ware(), "u", &bytes).unwrap(), s);
        // Fetched for another ware.
        let other = NodeId::of(b"other").0;
        let err = ProfileSet::decode(&other, "u", &bytes)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not of"), "{err}");
        // A profile inside naming another ware.
        let mut s2 = s.clone();
        s2.profiles.values_mut().next().unwrap().ware = other;
        let err = ProfileSet::decode(&ware(), "u", &encode(&s2))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a profile of"), "{err}");
        // Another ware's own key.
        let s3 = set(&[(&format!("ware:{other}"), 1)]);
        assert!(ProfileSet::decode(&ware(), "u", &encode(&s3)).is_err());
        // A bad key, bad bytes, a cut set.
        let s4 = set(&[("nonsense", 1)]);
        assert!(ProfileSet::decode(&ware(), "u", &encode(&s4)).is_err());
        assert!(ProfileSet::decode(&ware(), "u", b"\xa1garbage").is_err());
        assert!(ProfileSet::decode(&ware(), "u", &bytes[..bytes.len() - 3]).is_err());
    }

    #[test]
    fn absorb_takes_what_is_missing_or_learned_from_more_recordings() {
        let f = NodeId::of(b"formula");
        let (own, run) = (format!("ware:{}", ware()), format!("run:{f}:/"));
        let mut here = set(&[(&own, 3)]);
        let there = set(&[(&own, 2), (&run, 1)]);
        assert_eq!(here.absorb(&there), vec![run.clone()]);
        assert_eq!(here.profiles[&own].runs, 3, "not replaced by an older one");
        let newer = set(&[(&own, 5)]);
        assert_eq!(here.absorb(&newer), vec![own.clone()]);
        assert!(
            here.absorb(&newer).is_empty(),
            "nothing new the second time"
        );
    }

    #[test]
    fn an_oversized_set_keeps_the_wares_own_and_the_most_learned_runs() {
        let f = NodeId::of(b"formula");
        let mut s = set(&[(&format!("ware:{}", ware()), 1)]);
        for n in 0..(SET_MAX_PROFILES + 5) {
            let mut p = Profile::first(ware(), &[ChunkId::of(&[n as u8]).to_cid()]);
            p.runs = n as u64 + 2;
            s.profiles.insert(format!("run:{f}:/p{n}"), p);
        }
        let back = ProfileSet::decode(&ware(), "u", &s.encode()).unwrap();
        assert_eq!(back.profiles.len(), SET_MAX_PROFILES);
        assert!(back.profiles.contains_key(&format!("ware:{}", ware())));
        assert!(!back.profiles.contains_key(&format!("run:{f}:/p0")));
    }
}
