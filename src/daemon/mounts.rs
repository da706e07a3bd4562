//! The daemon's mounts: setting one up (the source it reads, its profile recording), ending it
//! (`ware umount`, lazily or waiting out a transient user), attending a foreground mount for
//! as long as its client stays, and forgetting mounts unmounted from outside.

use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ware_fs::{MountConfig, MountRoot};
use ware_store::BlockSource;

use super::catalogs::{StoreCatalog, WarehouseCatalog};
use super::{Daemon, Live, TICK, lock};
use crate::api::RemoteOptions;
use crate::ops::{MountInfo, MountWhat};
use crate::profile::{self, Recording};
use crate::proto::{Reply, send_reply};

/// Seconds `ware mount --all` lists what warehouses' catalogs said before reading them again
/// (`ware mount URL` takes `--catalog-ttl`).
pub(crate) const DEFAULT_CATALOG_TTL_S: u64 = 30;

/// How long `ware umount` waits out a transient user of a mount before it reports it busy.
const UMOUNT_PATIENCE: Duration = Duration::from_secs(2);

impl Daemon {
    pub(super) fn mount(
        &self,
        what: MountWhat,
        mountpoint: PathBuf,
        (allow_other, foreground): (bool, bool),
        fill: Option<u64>,
        remote: &RemoteOptions,
    ) -> Result<MountInfo> {
        // Fetching a remote ware's metadata may take a while: not while holding the map,
        // which every other request and the main loop need.
        // IPFS content is read through a ReadThrough even without warehouses: it is what shows
        // foreign trees, from the blocks the store has cached.
        let unixfs = matches!(what, MountWhat::Unixfs(_));
        let (src, fetcher): (Arc<dyn BlockSource>, _) = if remote.warehouses.is_empty() && !unixfs {
            (self.store.clone(), None)
        } else {
            let rt = Arc::new(remote.read_through(self.store.clone())?);
            (rt.clone(), Some(rt))
        };
        // Reading ahead by access profiles (src/profile.rs): a remote ware's metadata first,
        // with the profiles its warehouse holds, then its profile's chunks are fetched; a
        // ware the store holds whole has its profile read into the caches. For a mount's
        // ware, or each input of a run (whose failure the run reports per input).
        let (mut prefetches, mut warmings, mut profiled) = (Vec::new(), Vec::new(), false);
        let set = profile::Settings::of(&self.store);
        for (id, keys, fill) in profile::keys_of(&what, fill, set.fill_rate) {
            let whole = self.store.ware(&id)?.is_some();
            match &fetcher {
                _ if whole => warmings.extend(profile::warm(
                    &self.store,
                    &self.caches,
                    &id,
                    &keys,
                    set.prefetch.concurrency,
                )),
                Some(rt) => match profile::prepare(&self.store, rt, &id, &keys, fill, set.prefetch)
                {
                    Ok(Some(ahead)) => {
                        profiled |= ahead.by_profile.is_some();
                        prefetches.extend(ahead.by_profile.into_iter().chain(ahead.fill));
                    }
                    Ok(None) => {}
                    Err(e) if matches!(what, MountWhat::Ware(_)) => return Err(e),
                    Err(e) => tracing::warn!("input {id}: {e}"),
                },
                None => {}
            }
        }
        let mut mounts = lock(&self.mounts);
        if self.stop.load(Ordering::SeqCst) {
            bail!("the daemon is stopping");
        }
        if mounts.contains_key(&mountpoint) {
            bail!("{}: a ware is already mounted there", mountpoint.display());
        }
        if ware_fs::ware_mounts().contains(&mountpoint) {
            if ware_fs::is_dead(&mountpoint) {
                ware_fs::detach_unmount(&mountpoint)?;
                tracing::info!("cleaned up dead mount {}", mountpoint.display());
            } else {
                bail!(
                    "{}: a ware is already mounted there by another store's daemon",
                    mountpoint.display()
                );
            }
        }
        let (root, fsname) = match &what {
            MountWhat::Ware(id) => (MountRoot::Ware(*id), format!("ware:{id}")),
            // With warehouses, `--all` lists their catalogs' wares beside the store's.
            MountWhat::All if fetcher.is_some() => (
                MountRoot::All(Arc::new(WarehouseCatalog::new(
                    self.store.clone(),
                    true,
                    remote.open()?,
                    Duration::from_secs(DEFAULT_CATALOG_TTL_S),
                ))),
                "ware:all".to_string(),
            ),
            MountWhat::All | MountWhat::Run { .. } => (
                MountRoot::All(Arc::new(StoreCatalog(self.store.clone()))),
                "ware:all".to_string(),
            ),
            MountWhat::Warehouse { url, catalog_ttl_s } => {
                let wh = ware_fetchers::open(url, &remote.fetch_options())
                    .with_context(|| format!("warehouse {url}"))?;
                (
                    MountRoot::All(Arc::new(WarehouseCatalog::new(
                        self.store.clone(),
                        false,
                        vec![wh],
                        Duration::from_secs(*catalog_ttl_s),
                    ))),
                    // A comma would end the mount option it is passed in.
                    format!("ware:{}", url.replace(',', "%2C")),
                )
            }
            MountWhat::Unixfs(cid) => (
                MountRoot::Foreign(
                    cid.parse()
                        .with_context(|| format!("{cid:?} is not a CID"))?,
                ),
                format!("ipfs:{cid}"),
            ),
        };
        // A ware's mount and a run's learn access profiles (src/profile.rs).
        let recording = match &what {
            MountWhat::Ware(id) => Some(Recording::ware(self.store.clone(), *id)),
            MountWhat::Run {
                formula, inputs, ..
            } => Some(Recording::run(self.store.clone(), formula, inputs)),
            _ => None,
        };
        // Without root, entries show as the daemon's user's (MountConfig::owner): a job in a
        // user namespace is then root over its root filesystem, as it would be as root.
        let me = (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        );
        // A background fill is no profile: it comes last, below demand, so guesses still help.
        let guess = fetcher.is_some() && !profiled;
        let cfg = MountConfig {
            allow_other,
            caches: self.caches.clone(),
            fsname,
            owner: (me.0 != 0).then_some(me),
            reads: recording.as_ref().map(Recording::log),
            // No profile to read ahead by (src/profile.rs): guess from what is opened.
            siblings_bytes: if guess { set.siblings_bytes } else { 0 },
            opened_bytes: if guess { set.opened_bytes } else { 0 },
            ..MountConfig::default()
        };
        let mount = ware_fs::mount(src, root, &mountpoint, &cfg)
            .with_context(|| format!("mounting on {}", mountpoint.display()))?;
        let info = MountInfo {
            mountpoint: mountpoint.clone(),
            what,
            allow_other,
            foreground,
            inodes: None,
            fetched: None,
        };
        tracing::info!("mounted {:?} on {}", info.what, mountpoint.display());
        mounts.insert(
            mountpoint,
            Live {
                mount,
                info: info.clone(),
                _recording: recording,
                fetcher,
                _ahead: (prefetches, warmings),
            },
        );
        Ok(info)
    }

    pub(super) fn umount(&self, mountpoint: &Path, lazy: bool) -> Result<()> {
        let r = self.umount_inner(mountpoint, lazy);
        ware_exec::trim_heap();
        r
    }

    pub(super) fn umount_inner(&self, mountpoint: &Path, lazy: bool) -> Result<()> {
        let live = lock(&self.mounts).remove(mountpoint);
        match live {
            Some(l) if lazy => {
                if let Err(e) = l.mount.unmount() {
                    tracing::info!("{e}: detached lazily");
                }
                Ok(())
            }
            Some(mut l) => match l.mount.try_unmount(UMOUNT_PATIENCE) {
                Ok(()) => {
                    tracing::info!("unmounted {}", mountpoint.display());
                    Ok(())
                }
                Err(e) => {
                    lock(&self.mounts).insert(mountpoint.to_path_buf(), l);
                    Err(anyhow::Error::new(e).context(
                        "the mount is in use (a program has a file open or its working \
                         directory there); close it, or use `ware umount --lazy`",
                    ))
                }
            },
            None if ware_fs::ware_mounts().iter().any(|m| m == mountpoint) => {
                ware_fs::detach_unmount(mountpoint)?;
                tracing::info!("detached {} (not one of ours)", mountpoint.display());
                Ok(())
            }
            None => Err(crate::exit::Failure {
                code: 3,
                message: format!("{}: no ware is mounted there", mountpoint.display()),
            }
            .into()),
        }
    }

    /// A foreground mount lives as long as its client's connection: tell the client it is
    /// ready, then wait for the client to go (unmount) or the mount to end (reply).
    pub(super) fn attend(&self, conn: &UnixStream, info: &MountInfo) -> Result<Option<MountInfo>> {
        if let Err(e) = send_reply(conn, &Reply::Ready) {
            // The client left while we mounted: its mount goes with it.
            let _ = self.umount(&info.mountpoint, true);
            return Err(e.into());
        }
        loop {
            let mut fds = [rustix::event::PollFd::new(
                conn,
                rustix::event::PollFlags::IN | rustix::event::PollFlags::HUP,
            )];
            let ready = rustix::event::poll(
                &mut fds,
                Some(&rustix::event::Timespec {
                    tv_sec: 0,
                    tv_nsec: TICK.as_nanos() as i64,
                }),
            )
            .unwrap_or(0);
            if ready > 0 {
                // A foreground client never sends anything more: readable means it is gone.
                tracing::info!("foreground client of {} left", info.mountpoint.display());
                let _ = self.umount(&info.mountpoint, true);
                return Ok(None);
            }
            let still = lock(&self.mounts)
                .get(&info.mountpoint)
                .is_some_and(|l| !l.mount.is_finished());
            if !still || self.stop.load(Ordering::SeqCst) {
                return Ok(Some(info.clone()));
            }
        }
    }

    /// [`Self::prune_mounts`], unless a request holds the map.
    pub(super) fn try_prune_mounts(&self) -> Option<usize> {
        match self.mounts.try_lock() {
            Ok(m) => Some(self.prune_locked(m)),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(self.prune_locked(p.into_inner())),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Forgets mounts whose session ended (unmounted from outside); returns how many live.
    pub(super) fn prune_mounts(&self) -> usize {
        self.prune_locked(lock(&self.mounts))
    }

    pub(super) fn prune_locked(
        &self,
        mut mounts: MutexGuard<'_, BTreeMap<PathBuf, Live>>,
    ) -> usize {
        let ended: Vec<PathBuf> = mounts
            .iter()
            .filter(|(_, l)| l.mount.is_finished())
            .map(|(p, _)| p.clone())
            .collect();
        for p in ended {
            tracing::info!("{} was unmounted from outside", p.display());
            mounts.remove(&p);
        }
        if !mounts.is_empty() {
            *lock(&self.last_activity) = Instant::now();
        }
        mounts.len()
    }
}
