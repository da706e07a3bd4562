//! The daemon's own operations (`crate::ops`, the `daemon` list): status, mounts, stop.

use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;

use anyhow::Result;
use serde_json::json;

use super::{Daemon, lock};
use crate::ops::{self, Cx, MountInfo, Mounts, Ping, Serves, Shutdown, Umount};
use crate::proto::WIRE;

/// This process's resident memory (VmRSS), if /proc says.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl Serves<Ping> for Daemon {
    fn serve(&self, _: Ping, _: &UnixStream, _: &mut Cx<'_>) -> Result<Option<serde_json::Value>> {
        let (chunks, dirs) = self.caches.used();
        Ok(Some(json!({
            "pid": std::process::id(),
            "store": self.store.dir(),
            "wire": WIRE,
            "memory": {
                "rss_bytes": rss_bytes(),
                "chunk_cache_bytes": chunks,
                "chunk_cache_budget": self.budgets.0,
                "dir_cache_bytes": dirs,
                "dir_cache_budget": self.budgets.1,
            },
        })))
    }
}

impl Serves<ops::Mount> for Daemon {
    fn serve(
        &self,
        op: ops::Mount,
        conn: &UnixStream,
        _: &mut Cx<'_>,
    ) -> Result<Option<MountInfo>> {
        let info = self.mount(
            op.what,
            op.mountpoint,
            (op.allow_other, op.foreground),
            op.fill,
            &op.remote,
        )?;
        if !op.foreground {
            return Ok(Some(info));
        }
        // A foreground mount lives as long as the connection.
        self.attend(conn, &info)
    }
}

impl Serves<Umount> for Daemon {
    fn serve(&self, op: Umount, _: &UnixStream, _: &mut Cx<'_>) -> Result<Option<()>> {
        self.umount(&op.mountpoint, op.lazy)?;
        Ok(Some(()))
    }
}

impl Serves<Mounts> for Daemon {
    fn serve(&self, _: Mounts, _: &UnixStream, _: &mut Cx<'_>) -> Result<Option<Vec<MountInfo>>> {
        self.prune_mounts();
        let infos = lock(&self.mounts)
            .values()
            .map(|l| MountInfo {
                inodes: Some(l.mount.inodes() as u64),
                fetched: l.fetcher.as_ref().map(|f| f.fetch_stats()),
                ..l.info.clone()
            })
            .collect();
        Ok(Some(infos))
    }
}

impl Serves<Shutdown> for Daemon {
    fn serve(&self, _: Shutdown, _: &UnixStream, _: &mut Cx<'_>) -> Result<Option<()>> {
        self.stop.store(true, Ordering::SeqCst);
        Ok(Some(()))
    }
}
