//! Opening and closing the RocksDB store: the database and column family options, the lock,
//! the format check; a close that leaves the next open little to do.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::Path;

use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, DB, DBCompressionType, Options, WriteOptions,
};

use super::*;

/// Every column family, in the order they are created (docs/FORMAT.md, "Store").
const ALL_CFS: [&str; 8] = [
    CF_CHUNKS,
    CF_CHUNK_META,
    CF_NODES,
    CF_NAMES,
    CF_META,
    CF_RUNS,
    CF_BLOCKS,
    CF_PROFILES,
];

/// Families of a few kilobytes to megabytes, written to by every run and mount.
const SMALL_CFS: [&str; 4] = [CF_NAMES, CF_META, CF_RUNS, CF_PROFILES];

/// The options of the family `name`.
fn family_options(name: &str) -> Options {
    match name {
        CF_CHUNKS | CF_BLOCKS => blob_options(),
        CF_CHUNK_META => {
            let mut o = cf_options();
            o.set_block_based_table_factory(&table_options(true));
            o
        }
        CF_NODES => {
            let mut o = cf_options();
            o.set_compression_type(DBCompressionType::Zstd);
            // Nodes are a few percent of a store and compress well (names, inline files): a
            // higher zstd level costs little time at flush and saves space.
            o.set_compression_options(-14, 12, 0, 0);
            o.set_block_based_table_factory(&table_options(true));
            o
        }
        _ => cf_options(),
    }
}

fn block_cache() -> &'static rocksdb::Cache {
    static CACHE: std::sync::OnceLock<rocksdb::Cache> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES))
}

/// Table options on the shared block cache, with or without a bloom filter.
fn table_options(bloom: bool) -> BlockBasedOptions {
    let mut t = BlockBasedOptions::default();
    t.set_block_cache(block_cache());
    if bloom {
        t.set_bloom_filter(10.0, false);
    }
    t
}

fn cf_options() -> Options {
    let mut o = Options::default();
    o.set_write_buffer_size(64 << 20);
    o.set_block_based_table_factory(&table_options(false));
    o
}

/// Large values in blob files, so compaction does not rewrite them: `chunks`, and foreign
/// blocks, chunk-sized data mostly (UnixFS leaves of 256 KiB to 1 MiB). Stored as they come
/// (chunks are compressed, or not, one by one).
fn blob_options() -> Options {
    let mut o = cf_options();
    o.set_compression_type(DBCompressionType::None);
    o.set_enable_blob_files(true);
    o.set_min_blob_size(1024);
    o.set_blob_compression_type(DBCompressionType::None);
    o
}
impl Store {
    /// Opens (creating if needed) the store in `dir`. Fails with [`Error::Busy`] when another
    /// process holds it. Sets this process's umask to 077 (see `private.rs`): the store is
    /// private to its owner, 0700 and 0600.
    pub fn open(dir: &Path) -> Result<Store> {
        Self::open_with(dir, true)
    }

    /// Opens the store in `dir` only if there is one: a directory with no store is
    /// [`Error::NoStore`] and nothing is created (for commands that only read).
    pub fn open_existing(dir: &Path) -> Result<Store> {
        Self::open_with(dir, false)
    }

    fn open_with(dir: &Path, create: bool) -> Result<Store> {
        crate::private::prepare(dir, create)?;
        let bad = |why: &str| Error::BadStore {
            dir: dir.to_path_buf(),
            why: why.to_string(),
        };
        let has_db = dir.join("CURRENT").exists();
        let lock_path = dir.join("ware.lock");
        if !has_db
            && !lock_path.exists()
            && std::fs::read_dir(dir)
                .map_err(|e| Error::io(dir, e))?
                .next()
                .is_some()
        {
            return Err(bad("directory is not empty and is not a ware store"));
        }
        let mut lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        if let Err(e) = rustix::fs::flock(
            lock.as_fd(),
            rustix::fs::FlockOperation::NonBlockingLockExclusive,
        ) {
            if e == rustix::io::Errno::WOULDBLOCK {
                let holder = std::fs::read_to_string(&lock_path)
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok());
                return Err(Error::Busy {
                    dir: dir.to_path_buf(),
                    holder: holder.map(|p| format!(" (pid {p})")).unwrap_or_default(),
                });
            }
            return Err(Error::io(&lock_path, e.into()));
        }
        // The lock is ours: a store whose maker stopped before its database existed is no
        // store to a command that only reads.
        if !create && !dir.join("CURRENT").exists() {
            return Err(Error::NoStore {
                dir: dir.to_path_buf(),
            });
        }
        lock.set_len(0)
            .and_then(|_| write!(lock, "{}", std::process::id()))
            .map_err(|e| Error::io(&lock_path, e))?;

        // Opening is on the path of every cold command (a daemon starts for a mount or a run):
        // a WAL left by the last daemon is replayed into the memtable, not flushed into a new
        // table file with its fsyncs; no table properties or file sizes are read at open; tables
        // are opened by this thread, not by a pool of 16 threads started for each family.
        let mut opts = Options::default()
            .get_options_from_string(
                "avoid_flush_during_recovery=true;skip_checking_sst_file_sizes_on_db_open=true",
            )
            .map_err(|e| bad(&format!("database options: {}", e.into_string())))?;
        opts.set_skip_stats_update_on_db_open(true);
        opts.set_max_file_opening_threads(1);
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as i32)
            .unwrap_or(2);
        opts.increase_parallelism(cpus);
        opts.set_max_background_jobs(cpus.max(2));
        opts.set_keep_log_file_num(3);
        opts.set_log_level(rocksdb::LogLevel::Warn);
        opts.set_max_total_wal_size(512 << 20);
        opts.set_db_write_buffer_size(MEMTABLES_BYTES);

        let cfs: Vec<_> = ALL_CFS
            .iter()
            .map(|&name| ColumnFamilyDescriptor::new(name, family_options(name)))
            .collect();
        let db = DB::open_cf_descriptors(&opts, dir, cfs)
            .map_err(|e| bad(&format!("cannot open the database: {}", e.into_string())))?;
        let store = Store {
            db,
            dir: dir.to_path_buf(),
            _lock: lock,
            names_lock: std::sync::Mutex::new(()),
        };
        match store
            .db
            .get_cf(store.cf(CF_META), b"format")
            .map_err(db_err)?
        {
            Some(v) if v == STORE_FORMAT.as_bytes() => {}
            Some(v) => {
                return Err(bad(&format!(
                    "store format {:?}; this ware reads {STORE_FORMAT}",
                    String::from_utf8_lossy(&v)
                )));
            }
            None => {
                let mut wo = WriteOptions::default();
                wo.set_sync(true);
                store
                    .db
                    .put_cf_opt(store.cf(CF_META), b"format", STORE_FORMAT, &wo)
                    .map_err(db_err)?;
            }
        }
        Ok(store)
    }
}

/// A store closes with its memtables written to tables, so the next open (the daemon's start,
/// on the path of a cold command) replays no log: opening no longer flushes what it replays
/// (`avoid_flush_during_recovery`), and without this the logs of past processes would pile up.
/// A process that dies without closing leaves its log, replayed into the next one's memtable
/// and written out when that one closes.
impl Drop for Store {
    fn drop(&mut self) {
        let cfs: Vec<_> = ALL_CFS
            .iter()
            .filter_map(|n| self.db.cf_handle(n))
            .collect();
        if let Err(e) = self
            .db
            .flush_cfs_opt(&cfs, &rocksdb::FlushOptions::default())
        {
            tracing::warn!(
                "{}: flushing the database at close: {e}",
                self.dir.display()
            );
        }
        // The small families every run and mount writes a little to get a table per close,
        // and with keys that grow (run records by time) compaction only moves each table down,
        // never merging them: a store would open one more file per run, for ever. Merge them
        // into one here once they are more than a few (kilobytes: quick).
        for name in SMALL_CFS {
            let Some(cf) = self.db.cf_handle(name) else {
                continue;
            };
            let tables: u64 = (0..7)
                .filter_map(|level| {
                    self.db
                        .property_int_value_cf(
                            cf,
                            format!("rocksdb.num-files-at-level{level}").as_str(),
                        )
                        .ok()
                        .flatten()
                })
                .sum();
            if tables > 4 {
                let mut how = rocksdb::CompactOptions::default();
                how.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
                self.db
                    .compact_range_cf_opt(cf, None::<&[u8]>, None::<&[u8]>, &how);
            }
        }
    }
}
