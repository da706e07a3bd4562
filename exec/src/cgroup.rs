//! Memory and pids limits through a cgroup v2 child of the caller's own cgroup. When the
//! hierarchy or a controller is missing (hybrid v1/v2 machines), the limit is not enforced and
//! the caller gets a notice saying so: never a silent no-op.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{ExecError, Limits};

/// A job's cgroup: created before the job, the job is cloned into it (CLONE_INTO_CGROUP),
/// removed after.
pub(crate) struct Cgroup {
    dir: PathBuf,
    fd: OwnedFd,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// The cgroup2 mount point, from /proc/self/mountinfo.
fn cgroup2_mount() -> Option<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        if post.split(' ').next()? != "cgroup2" {
            return None;
        }
        Some(PathBuf::from(pre.split(' ').nth(4)?))
    })
}

/// This process's cgroup v2 path ("0::/path" in /proc/self/cgroup).
fn own_cgroup() -> Option<String> {
    let s = fs::read_to_string("/proc/self/cgroup").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_owned))
}

fn list(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

impl Cgroup {
    /// A cgroup with `limits` applied, or `None` (with a notice per limit not enforced).
    pub(crate) fn create(
        limits: &Limits,
        notices: &mut Vec<String>,
    ) -> Result<Option<Cgroup>, ExecError> {
        let mut wanted: Vec<(&str, &str, String)> = Vec::new();
        if let Some(m) = limits.memory_bytes {
            wanted.push(("memory", "memory.max", m.to_string()));
        }
        if let Some(p) = limits.pids {
            wanted.push(("pids", "pids.max", p.to_string()));
        }
        if wanted.is_empty() {
            return Ok(None);
        }
        let base = match (cgroup2_mount(), own_cgroup()) {
            (Some(m), Some(p)) => m.join(p.trim_start_matches('/')),
            _ => {
                for (c, _, _) in &wanted {
                    notices.push(format!("{c} limit not enforced: no cgroup v2 hierarchy"));
                }
                return Ok(None);
            }
        };
        let available = list(&base.join("cgroup.controllers"));
        let enabled = list(&base.join("cgroup.subtree_control"));
        wanted.retain(|(c, _, _)| {
            if !available.iter().any(|a| a == c) {
                notices.push(format!(
                    "{c} limit not enforced: cgroup v2 {c} controller not available in {} (it lists: {})",
                    base.display(),
                    if available.is_empty() { "none".to_owned() } else { available.join(" ") }
                ));
                return false;
            }
            if !enabled.iter().any(|a| a == c)
                && let Err(e) = fs::write(base.join("cgroup.subtree_control"), format!("+{c}"))
            {
                notices.push(format!(
                    "{c} limit not enforced: cannot enable the {c} controller for children of {}: {e}",
                    base.display()
                ));
                return false;
            }
            true
        });
        if wanted.is_empty() {
            return Ok(None);
        }
        let dir = base.join(format!(
            "ware-job-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        if let Err(e) = fs::create_dir(&dir) {
            for (c, _, _) in &wanted {
                notices.push(format!(
                    "{c} limit not enforced: cannot create {}: {e}",
                    dir.display()
                ));
            }
            return Ok(None);
        }
        let cg = Cgroup {
            fd: fs::File::open(&dir)
                .map_err(|e| ExecError::host("opening cgroup", &dir, e))?
                .into(),
            dir,
        };
        for (c, file, value) in &wanted {
            fs::write(cg.dir.join(file), value)
                .map_err(|e| ExecError::host("setting limit", cg.dir.join(file), e))?;
            if *c == "memory" {
                // Without this the job swaps instead of meeting its limit; absent without swap.
                let _ = fs::write(cg.dir.join("memory.swap.max"), "0");
            }
        }
        Ok(Some(cg))
    }

    pub(crate) fn dir_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// Notes an OOM kill, then removes the (by now empty) cgroup.
    pub(crate) fn finish(self, notices: &mut Vec<String>) {
        if let Ok(ev) = fs::read_to_string(self.dir.join("memory.events")) {
            let kills = ev
                .lines()
                .find_map(|l| l.strip_prefix("oom_kill "))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .unwrap_or(0);
            if kills > 0 {
                notices.push(format!(
                    "the memory limit was hit: {kills} process(es) killed"
                ));
            }
        }
        drop(self.fd);
        // The last task may take a moment to leave after it was reaped.
        for _ in 0..50 {
            match fs::remove_dir(&self.dir) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    notices.push(format!("cgroup {} not removed: {e}", self.dir.display()));
                    return;
                }
                _ => return,
            }
        }
    }
}
