//! Human names for wares, with their history (repeatr's audit log).
//!
//! The `names` column family holds two kinds of keys (docs/FORMAT.md, "Store"):
//! - `cur/<name>` → the binary CID the name points at now;
//! - `log/<name>/<seq>` (seq: 8 bytes big-endian, from 1) → a DAG-CBOR [`NameChange`].
//!
//! Invariant: a name's current value and its log entry are written in one synced batch, so the
//! log always ends with the current value, even after a crash.

use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions};

use crate::db::{CF_NAMES, Store, db_err};
use crate::error::{Error, Result};
use crate::id::WareId;

pub use crate::name::{NAME_MAX, check_name};

/// One change of a name: what it pointed at from `at` on (`None`: removed).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NameChange {
    /// Seconds since the epoch.
    pub at: u64,
    /// The ware it names from then on; `None` when the name was removed.
    pub id: Option<WareId>,
}

fn cur_key(name: &str) -> Vec<u8> {
    [b"cur/", name.as_bytes()].concat()
}

fn log_prefix(name: &str) -> Vec<u8> {
    [b"log/", name.as_bytes(), b"/"].concat()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Store {
    /// Points `name` at `id` (or removes it, with `None`), logging the change. Returns the
    /// previous value. Setting a name to the value it already has logs nothing.
    pub fn set_name(&self, name: &str, id: Option<&WareId>) -> Result<Option<WareId>> {
        check_name(name)?;
        // Concurrent changes (through the daemon) must not reuse a log sequence number.
        let _serial = self.names_lock.lock().unwrap_or_else(|p| p.into_inner());
        let prev = self.name(name)?;
        if prev.as_ref() == id {
            return Ok(prev);
        }
        let seq = self.name_log(name)?.len() as u64 + 1;
        let change = NameChange {
            at: now(),
            id: id.copied(),
        };
        let mut batch = WriteBatch::default();
        let cf = self.cf(CF_NAMES);
        match id {
            Some(id) => batch.put_cf(cf, cur_key(name), id.to_bytes()),
            None => batch.delete_cf(cf, cur_key(name)),
        }
        let enc = serde_ipld_dagcbor::to_vec(&change)
            .map_err(|e| Error::Db(format!("encoding a name change: {e}")))?;
        batch.put_cf(
            cf,
            [log_prefix(name), seq.to_be_bytes().to_vec()].concat(),
            enc,
        );
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(db_err)?;
        Ok(prev)
    }

    /// What a name points at now.
    pub fn name(&self, name: &str) -> Result<Option<WareId>> {
        self.db
            .get_cf(self.cf(CF_NAMES), cur_key(name))
            .map_err(db_err)?
            .map(|v| WareId::from_bytes(&v))
            .transpose()
    }

    /// Every current name, sorted.
    pub fn names(&self) -> Result<Vec<(String, WareId)>> {
        let mut out = Vec::new();
        for (k, v) in self.names_prefixed(b"cur/")? {
            out.push((
                String::from_utf8_lossy(&k).into_owned(),
                WareId::from_bytes(&v)?,
            ));
        }
        Ok(out)
    }

    /// Every change of a name, oldest first (empty for a name never set).
    pub fn name_log(&self, name: &str) -> Result<Vec<NameChange>> {
        self.names_prefixed(&log_prefix(name))?
            .into_iter()
            .map(|(_, v)| {
                serde_ipld_dagcbor::from_slice(&v)
                    .map_err(|e| Error::Db(format!("log of name {name:?}: {e}")))
            })
            .collect()
    }

    /// (key without the prefix, value) for every key under a prefix, in key order.
    fn names_prefixed(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        let it = self.db.iterator_cf(
            self.cf(CF_NAMES),
            IteratorMode::From(prefix, Direction::Forward),
        );
        for item in it {
            let (k, v) = item.map_err(db_err)?;
            let Some(rest) = k.strip_prefix(prefix) else {
                break;
            };
            out.push((rest.to_vec(), v.into_vec()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["base", "debian-12.5_amd64", "a", &"x".repeat(255)] {
            check_name(good).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "sp ace",
            "é",
            &"x".repeat(256),
            "bafyr4iekilryssxdbgvpocfyobuwk4fp42b6rr3adj5nd33ko3zwdpatia",
            "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn set_get_list_log_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let a = WareId::of(b"\xa0");
        let b = WareId::of(b"\xa1");
        {
            let s = Store::open(dir.path()).unwrap();
            assert_eq!(s.set_name("base", Some(&a)).unwrap(), None);
            assert_eq!(s.set_name("base", Some(&a)).unwrap(), Some(a));
            assert_eq!(s.set_name("base", Some(&b)).unwrap(), Some(a));
            s.set_name("other", Some(&a)).unwrap();
            s.set_name("other", None).unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.name("base").unwrap(), Some(b));
        assert_eq!(s.name("other").unwrap(), None);
        assert_eq!(s.names().unwrap(), vec![("base".to_string(), b)]);
        let log: Vec<_> = s
            .name_log("base")
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(log, vec![Some(a), Some(b)]);
        let log: Vec<_> = s
            .name_log("other")
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(log, vec![Some(a), None]);
        // A name that is a prefix of another does not see the other's log.
        s.set_name("bas", Some(&a)).unwrap();
        assert_eq!(s.name_log("bas").unwrap().len(), 1);
    }
}
