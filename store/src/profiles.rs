//! The store's access profiles ([`crate::profile`]), by key.
//!
//! The `profiles` column family (docs/FORMAT.md, "Store") maps a key (`ware:<id>` or
//! `run:<formula id>:<path>`, UTF-8) to a profile's DAG-CBOR bytes; a profile's CID is the
//! hash of those bytes. Profiles are disposable: nothing else refers to them, and they keep
//! nothing alive.

use rocksdb::{IteratorMode, WriteOptions};

use crate::db::{CF_PROFILES, Store, db_err};
use crate::error::{Error, Result};
use crate::id::NodeId;
use crate::id::WareId;
use crate::profile::{Profile, ProfileSet, check_key};

/// A stored profile: its key, its CID, and what it holds. A profile whose bytes no longer
/// decode is listed with the error instead.
#[derive(Clone, Debug)]
pub struct StoredProfile {
    /// `ware:<id>` or `run:<formula id>:<path>`.
    pub key: String,
    /// The CID of its bytes.
    pub id: NodeId,
    /// Its size in bytes.
    pub bytes: usize,
    /// The profile, or why it cannot be read.
    pub profile: std::result::Result<Profile, String>,
}

fn stored(key: String, bytes: &[u8]) -> StoredProfile {
    StoredProfile {
        id: NodeId::of(bytes),
        bytes: bytes.len(),
        profile: Profile::decode(&key, bytes).map_err(|e| e.to_string()),
        key,
    }
}

impl Store {
    /// Keeps `profile` under `key` (replacing what was there), synced.
    pub fn put_profile(&self, key: &str, profile: &Profile) -> Result<NodeId> {
        check_key(key)?;
        let (id, bytes) = profile.encode();
        // What goes in must read back: the same checks as on the way out.
        Profile::decode(key, &bytes)?;
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db
            .put_cf_opt(self.cf(CF_PROFILES), key.as_bytes(), bytes, &wo)
            .map_err(db_err)?;
        Ok(id)
    }

    /// The profile under `key`, if any.
    pub fn profile(&self, key: &str) -> Result<Option<StoredProfile>> {
        check_key(key)?;
        Ok(self
            .db
            .get_cf(self.cf(CF_PROFILES), key.as_bytes())
            .map_err(db_err)?
            .map(|v| stored(key.to_string(), &v)))
    }

    /// Every profile, in key order.
    pub fn profiles(&self) -> Result<Vec<StoredProfile>> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_PROFILES), IteratorMode::Start)
        {
            let (k, v) = item.map_err(db_err)?;
            let key = String::from_utf8(k.to_vec())
                .map_err(|_| Error::Db("a profile key is not UTF-8".into()))?;
            out.push(stored(key, &v));
        }
        Ok(out)
    }

    /// The profiles of `ware` (its own and its runs'), as a set to travel; profiles that do not
    /// decode are left out.
    pub fn ware_profiles(&self, ware: &WareId) -> Result<ProfileSet> {
        let mut set = ProfileSet::new(ware.0);
        for s in self.profiles()? {
            if let Ok(p) = s.profile
                && p.ware == ware.0
            {
                set.profiles.insert(s.key, p);
            }
        }
        Ok(set)
    }

    /// Keeps the profiles of `set` that the store lacks, holds from fewer recordings, or holds
    /// damaged; returns their keys.
    pub fn absorb_profiles(&self, set: &ProfileSet) -> Result<Vec<String>> {
        let mut mine = ProfileSet::new(set.ware);
        for key in set.profiles.keys() {
            if let Some(StoredProfile { profile: Ok(p), .. }) = self.profile(key)?
                && p.ware == set.ware
            {
                mine.profiles.insert(key.clone(), p);
            }
        }
        let taken = mine.absorb(set);
        for key in &taken {
            self.put_profile(key, &mine.profiles[key])?;
        }
        Ok(taken)
    }

    /// Removes the profile under `key`; false when there was none.
    pub fn remove_profile(&self, key: &str) -> Result<bool> {
        check_key(key)?;
        let cf = self.cf(CF_PROFILES);
        if self
            .db
            .get_cf(cf, key.as_bytes())
            .map_err(db_err)?
            .is_none()
        {
            return Ok(false);
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db
            .delete_cf_opt(cf, key.as_bytes(), &wo)
            .map_err(db_err)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ChunkId;

    #[test]
    fn profiles_are_kept_listed_replaced_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let w = NodeId::of(b"ware");
        let key = format!("ware:{w}");
        let p = Profile::first(w.0, &[ChunkId::of(b"a").to_cid()]);
        {
            let s = Store::open(dir.path()).unwrap();
            assert!(s.profile(&key).unwrap().is_none());
            let id = s.put_profile(&key, &p).unwrap();
            assert_eq!(s.profile(&key).unwrap().unwrap().id, id);
            assert!(s.put_profile("nonsense", &p).is_err());
        }
        let s = Store::open(dir.path()).unwrap();
        let all = s.profiles().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].key, key);
        assert_eq!(all[0].profile.as_ref().unwrap(), &p);
        // As a set to travel, and taken back by another store only where it knows less.
        let set = s.ware_profiles(&w).unwrap();
        assert_eq!(set.profiles.len(), 1);
        let dir2 = tempfile::tempdir().unwrap();
        let t = Store::open(dir2.path()).unwrap();
        assert_eq!(t.absorb_profiles(&set).unwrap(), vec![key.clone()]);
        assert!(t.absorb_profiles(&set).unwrap().is_empty());
        assert_eq!(t.profile(&key).unwrap().unwrap().profile.unwrap(), p);
        assert!(s.remove_profile(&key).unwrap());
        assert!(!s.remove_profile(&key).unwrap());
        assert!(s.profiles().unwrap().is_empty());
    }
}
