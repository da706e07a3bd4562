//! Run records: what `ware run` did, kept beside the wares it used and made.
//!
//! The `runs` column family (docs/FORMAT.md, "Store") maps `<started: u64 ms, big-endian>
//! <seq: u32, big-endian>` to a run record as the JSON text `ware run` wrote (the record's
//! format belongs to the root package and is documented in docs/FORMAT.md, "Run records"). The
//! store only keeps them in start order; it never interprets them.

use rocksdb::{IteratorMode, WriteOptions};

use crate::db::{CF_RUNS, Store, db_err};
use crate::error::{Error, Result};

/// The largest record kept (a record is a few KiB: IDs, times, notices).
pub const RUN_RECORD_MAX: usize = 1 << 20;

impl Store {
    /// Keeps a run record (JSON text) under the time its run started.
    pub fn add_run(&self, started_ms: u64, record: &[u8]) -> Result<()> {
        if record.len() > RUN_RECORD_MAX {
            return Err(Error::bad_input(
                "run record",
                format!("{} bytes; at most {RUN_RECORD_MAX}", record.len()),
            ));
        }
        // Two runs may start in the same millisecond: the next free sequence number wins,
        // serialised with name changes (both are rare, small, synced writes).
        let _serial = self.names_lock.lock().unwrap_or_else(|p| p.into_inner());
        let cf = self.cf(CF_RUNS);
        let mut seq = 0u32;
        let key = loop {
            let key = [started_ms.to_be_bytes().as_slice(), &seq.to_be_bytes()].concat();
            if self.db.get_cf(cf, &key).map_err(db_err)?.is_none() {
                break key;
            }
            seq += 1;
        };
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.put_cf_opt(cf, key, record, &wo).map_err(db_err)
    }

    /// Every run record, oldest first: (start time in ms, the record's JSON text).
    pub fn runs(&self) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_RUNS), IteratorMode::Start) {
            let (k, v) = item.map_err(db_err)?;
            let started = k
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| Error::Db(format!("run key of {} bytes", k.len())))?;
            out.push((started, v.to_vec()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_come_back_in_start_order_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.add_run(20, b"{\"b\":1}").unwrap();
            s.add_run(10, b"{\"a\":1}").unwrap();
            s.add_run(20, b"{\"c\":1}").unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        let runs = s.runs().unwrap();
        let texts: Vec<_> = runs
            .iter()
            .map(|(t, v)| (*t, String::from_utf8(v.clone()).unwrap()))
            .collect();
        assert_eq!(
            texts,
            vec![
                (10, "{\"a\":1}".into()),
                (20, "{\"b\":1}".into()),
                (20, "{\"c\":1}".into())
            ]
        );
        assert!(s.add_run(1, &vec![b' '; RUN_RECORD_MAX + 1]).is_err());
        assert_eq!(s.runs().unwrap().len(), 3);
    }
}
