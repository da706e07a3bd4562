//! `ware run`: a formula's inputs mounted lazily by the store's daemon, its job run by an
//! executor (crate `exec`) on the assembled root, its outputs packed into wares, and a run
//! record kept in the store.
//!
//! Each run works in a private directory `STORE/run/<start ms>-<pid>-<n>/` (0700): `mnt/`
//! holds one `--all` mount of the store for this run (every input is `mnt/<id>`), `out/<k>/`
//! the output directories the job writes into, `work/` the executor's scratch. The mount is a
//! foreground mount of the daemon, so it ends with this command even if it is killed; the
//! directory is removed at the end, and stale ones (their process gone) at the next run.

use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use ware_exec::{Bind, ExecutorKind, Job, JobStatus};
use ware_store::WareId;

use crate::api::RemoteOptions;
use crate::client::{self, RemoteStore};
use crate::client::{StoreClient, resolve_ware};
use crate::formula::{Formula, IdSpec};
use crate::ops::{self, Cx, MountWhat};
use crate::output::safe;
use crate::record::{RunRecord, rfc3339};

/// What `ware run` was asked.
pub struct RunRequest<'a> {
    /// The store.
    pub store: &'a Path,
    /// The formula file (`-`: stdin).
    pub formula: &'a Path,
    /// The executor.
    pub executor: ExecutorKind,
    /// Where to write the (last) run record, as JSON.
    pub record: Option<&'a Path>,
    /// Run this many times and compare the outputs.
    pub repeat: u32,
    /// Configured warehouses and the read deadline.
    pub remote: RemoteOptions,
    /// No summary on stderr.
    pub quiet: bool,
}

/// What `ware run` did: every run's record, and whether repeated runs agreed.
pub struct RunResult {
    /// One record per run, in order.
    pub records: Vec<RunRecord>,
    /// With `repeat > 1`: the outputs that differed between runs (empty: all agreed).
    pub disagreements: Vec<String>,
}

/// Runs a formula `repeat` times.
pub fn run(req: &RunRequest<'_>) -> Result<RunResult> {
    let formula = Formula::load(req.formula)?;
    if let Some(path) = req.record {
        // Found now, not after the job ran: a record that cannot be written is lost work.
        check_writable(path)?;
    }
    let daemon = client::ensure_daemon(req.store, None)?;
    let mut resolved = BTreeMap::new();
    for (path, input) in &formula.inputs {
        let id = resolve_ware(&input.ware, &StoreClient::Remote(daemon.clone()))
            .with_context(|| format!("input {path}: {:?}", input.ware))?;
        resolved.insert(path.clone(), id);
    }
    let formula_id = formula.id(&resolved)?;
    // Warehouses the formula names come first: they are where its author put the inputs.
    let mut remote = req.remote.clone();
    let mut named: Vec<String> = Vec::new();
    for w in formula.inputs.values().flat_map(|i| &i.warehouses) {
        if !named.contains(w) {
            named.push(w.clone());
        }
    }
    remote.warehouses.retain(|w| !named.contains(w));
    named.append(&mut remote.warehouses);
    remote.warehouses = named;

    let base = client::canonical_store(req.store).join("run");
    sweep_stale(&base);
    let mut records = Vec::new();
    for n in 0..req.repeat.max(1) {
        let rec = run_once(
            &daemon, req, &formula, &resolved, formula_id, &remote, &base, n,
        )?;
        if !req.quiet {
            summary(&rec, n, req.repeat);
        }
        records.push(rec);
    }
    let mut disagreements = Vec::new();
    if let Some(first) = records.first() {
        for path in formula.outputs.keys() {
            let ids: Vec<_> = records.iter().map(|r| r.outputs.get(path)).collect();
            if ids.iter().any(|i| *i != ids[0]) {
                disagreements.push(path.clone());
            }
        }
        if records.iter().any(|r| r.exit_code != first.exit_code) {
            disagreements.push("exit code".into());
        }
    }
    if let (Some(path), Some(last)) = (req.record, records.last()) {
        write_record(path, last)?;
    }
    Ok(RunResult {
        records,
        disagreements,
    })
}

#[allow(clippy::too_many_arguments)]
fn run_once(
    daemon: &RemoteStore,
    req: &RunRequest<'_>,
    formula: &Formula,
    resolved: &BTreeMap<String, WareId>,
    formula_id: WareId,
    remote: &RemoteOptions,
    base: &Path,
    n: u32,
) -> Result<RunRecord> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let dir = base.join(format!("{now_ms}-{}-{n}", std::process::id()));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("{}: cannot create the run directory", dir.display()))?;
    // The directory's owner is the only one who may pass: the mount inside it is
    // allow_other (so a job running as another uid can read it), the outputs are the job's.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    let cleanup = RunDir(dir.clone());
    let mnt = dir.join("mnt");
    let work = dir.join("work");
    let outs = dir.join("out");
    for d in [&mnt, &work, &outs] {
        std::fs::DirBuilder::new().mode(0o700).create(d)?;
    }

    // The inputs' reads are learned as their run:<formula>:<path> profiles (src/profile.rs).
    let what = MountWhat::Run {
        formula: formula_id,
        inputs: resolved.clone(),
        fill: formula
            .inputs
            .iter()
            .filter(|(_, i)| i.fill)
            .filter_map(|(p, _)| resolved.get(p).copied())
            .collect(),
    };
    let mount = ForegroundMount::start(daemon, &mnt, what, remote)?;
    tracing::debug!("inputs mounted at {}", mnt.display());
    let result = (|| -> Result<RunRecord> {
        let mut mounts = Vec::new();
        let mut inputs = BTreeMap::new();
        for (path, id) in resolved {
            let src = mnt.join(id.to_string());
            match std::fs::metadata(&src) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => bail!("input {path}: ware {id} is not a directory tree"),
                Err(e) => {
                    return Err(ware_store::Error::NotFound {
                        what: "input ware in the store or any warehouse",
                        id: format!("{id} (input {path}: {e})"),
                    }
                    .into());
                }
            }
            inputs.insert(path.clone(), id.to_string());
            if path != "/" {
                mounts.push(Bind {
                    source: src,
                    target: PathBuf::from(path),
                    writable: false,
                });
            }
        }
        let mut out_dirs = BTreeMap::new();
        for (k, path) in formula.outputs.keys().enumerate() {
            let host = outs.join(k.to_string());
            std::fs::DirBuilder::new().mode(0o755).create(&host)?;
            if rustix::process::geteuid().is_root() {
                // The job writes its outputs as its own uid.
                rustix::fs::chown(
                    &host,
                    Some(rustix::fs::Uid::from_raw(formula.action.uid)),
                    Some(rustix::fs::Gid::from_raw(formula.action.gid)),
                )
                .with_context(|| format!("output {path}: cannot hand it to the job's uid"))?;
            }
            mounts.push(Bind {
                source: host.clone(),
                target: PathBuf::from(path),
                writable: true,
            });
            out_dirs.insert(path.clone(), host);
        }
        // Parents before children: `/a` is mounted before `/a/b`.
        mounts.sort_by_key(|b| b.target.components().count());

        let job = Job {
            root: mnt.join(resolved["/"].to_string()),
            mounts,
            argv: formula.action.argv.iter().map(Into::into).collect(),
            env: formula
                .action
                .env
                .iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            cwd: PathBuf::from(&formula.action.cwd),
            uid: formula.action.uid,
            gid: formula.action.gid,
            hostname: formula.action.hostname.clone(),
            network: formula.action.network,
            limits: ware_exec::Limits {
                wall: formula.limits.wall_seconds.map(Duration::from_secs),
                memory_bytes: formula.limits.memory_bytes,
                pids: formula.limits.pids,
            },
            work: work.clone(),
        };
        let outcome = {
            let _signals = JobSignals::install()?;
            ware_exec::run(req.executor, &job)
                .with_context(|| format!("running formula {formula_id}"))?
        };
        tracing::debug!("job ended: {:?}", outcome.status);
        let mut notices = outcome.notices.clone();
        let fetched = fetched_by(daemon, &mnt);

        let mut outputs = BTreeMap::new();
        for (path, host) in &out_dirs {
            let spec = &formula.outputs[path];
            let opts = spec.pack_options(path)?;
            let report = daemon
                .ask(ops::Pack {
                    dir: Some(host.clone()),
                    opts,
                })
                .with_context(|| format!("packing output {path}"))?;
            notices.extend(report.notices.iter().map(|m| format!("output {path}: {m}")));
            let keeps_owners = spec.uid == IdSpec::Keep || spec.gid == IdSpec::Keep;
            if keeps_owners && !rustix::process::geteuid().is_root() {
                notices.push(format!(
                    "output {path}: owners kept as the host sees them (the user who ran the \
                     job), not as the job saw them: without root, every file a job writes \
                     belongs to that user"
                ));
            }
            if let Some(url) = &spec.warehouse {
                daemon
                    .ask(ops::Push {
                        ware: report.id,
                        url: url.clone(),
                        remote: remote.clone(),
                        names: Vec::new(),
                    })
                    .with_context(|| format!("pushing output {path} ({}) to {url}", report.id))?;
            }
            outputs.insert(path.clone(), report.id.to_string());
        }
        let (status, exit_code) = match outcome.status {
            JobStatus::Exited(_) => ("exited", outcome.status.exit_code()),
            JobStatus::Signaled(_) => ("signaled", outcome.status.exit_code()),
            JobStatus::TimedOut => ("timed_out", outcome.status.exit_code()),
        };
        Ok(RunRecord {
            formula: formula_id.to_string(),
            executor: req.executor.to_string(),
            inputs,
            started: rfc3339(outcome.started),
            ended: rfc3339(outcome.ended),
            status: status.into(),
            exit_code,
            outputs,
            notices,
            fetched,
        })
    })();
    // Outputs are packed (or the run failed): the mount is no longer needed.
    tracing::debug!("outputs packed");
    mount.stop();
    tracing::debug!("inputs unmounted");
    drop(cleanup);
    tracing::debug!("run directory removed");
    let record = result?;
    daemon
        .ask(ops::AddRun {
            started_ms: now_ms,
            record: serde_json::to_value(&record)?,
        })
        .context("keeping the run record in the store")?;
    tracing::debug!("run record kept");
    Ok(record)
}

/// What the daemon's mount at `mnt` fetched from warehouses so far (None: it reads the local
/// store only, or the daemon cannot say).
fn fetched_by(daemon: &RemoteStore, mnt: &Path) -> Option<ware_fetchers::read_through::FetchStats> {
    let mounts = daemon
        .ask(ops::Mounts {})
        .map_err(|e| tracing::warn!("the inputs' fetch counters: {e:#}"))
        .ok()?;
    mounts.into_iter().find(|m| m.mountpoint == mnt)?.fetched
}

/// What `ware run` does with signals while its job runs. Ctrl-C (SIGINT, SIGQUIT) reaches the
/// job directly (it shares the terminal's process group), so `ware` itself waits, as a shell
/// does, and then packs what the job left and exits with its status. SIGTERM and SIGHUP kill
/// the job's whole tree, after which the run ends the same way.
struct JobSignals {
    ids: Vec<signal_hook::SigId>,
    handle: signal_hook::iterator::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl JobSignals {
    fn install() -> Result<JobSignals> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut ids = Vec::new();
        for sig in [SIGINT, SIGQUIT] {
            // A registered handler replaces the default action (death); the job gets the
            // signal from the terminal by itself.
            ids.push(signal_hook::flag::register(sig, flag.clone())?);
        }
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGHUP])?;
        let handle = signals.handle();
        let thread = std::thread::spawn(move || {
            for sig in signals.forever() {
                tracing::warn!("signal {sig}: stopping the job");
                ware_exec::kill_running_jobs();
            }
        });
        Ok(JobSignals {
            ids,
            handle,
            thread: Some(thread),
        })
    }
}

impl Drop for JobSignals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One `--all` mount of the store, alive while a thread waits on the daemon's answer.
struct ForegroundMount {
    daemon: RemoteStore,
    mnt: PathBuf,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl ForegroundMount {
    fn start(
        daemon: &RemoteStore,
        mnt: &Path,
        what: MountWhat,
        remote: &RemoteOptions,
    ) -> Result<ForegroundMount> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (daemon_t, mnt_t, remote) = (daemon.clone(), mnt.to_path_buf(), remote.clone());
        // As root the job may run as any uid: the mount lets other users in (the kernel
        // checks each entry's mode; the run directory around it is 0700). Otherwise the job
        // runs as this user, mapped into its user namespace.
        let allow_other = rustix::process::geteuid().is_root();
        let thread = std::thread::spawn(move || {
            let op = ops::Mount {
                remote,
                what,
                mountpoint: mnt_t,
                allow_other,
                foreground: true,
                fill: None,
            };
            daemon_t
                .call_until_ready(op, &mut Cx::plain(), &mut || {
                    let _ = ready_tx.send(());
                })
                .map(|_| ())
        });
        match ready_rx.recv() {
            Ok(()) => Ok(ForegroundMount {
                daemon: daemon.clone(),
                mnt: mnt.to_path_buf(),
                thread: Some(thread),
            }),
            Err(_) => {
                // The thread ended without the mount going live: its error says why.
                let err = match thread.join() {
                    Ok(Err(e)) => e,
                    Ok(Ok(())) => anyhow!("the daemon ended the mount before it was live"),
                    Err(_) => anyhow!("the mount thread panicked"),
                };
                Err(err.context(format!("mounting the inputs at {}", mnt.display())))
            }
        }
    }

    fn stop(mut self) {
        self.unmount();
    }

    fn unmount(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        // The job and its namespaces are gone, so nothing should hold the mount; if something
        // still does, detach it rather than leave it behind. (A daemon that is gone took the
        // mount with it.)
        let umount = |lazy| {
            self.daemon.ask(ops::Umount {
                mountpoint: self.mnt.clone(),
                lazy,
            })
        };
        if umount(false).is_err() {
            let _ = umount(true);
        }
        // The daemon notices the unmount on its next tick and only then answers the thread's
        // call, which nobody needs to wait for.
        drop(thread);
    }
}

impl Drop for ForegroundMount {
    fn drop(&mut self) {
        self.unmount();
    }
}

/// Removes a run directory, never descending into a mount still there.
struct RunDir(PathBuf);

impl Drop for RunDir {
    fn drop(&mut self) {
        remove_run_dir(&self.0);
    }
}

fn remove_run_dir(dir: &Path) {
    for sub in ["out", "work"] {
        let p = dir.join(sub);
        if let Err(e) = std::fs::remove_dir_all(&p)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("{}: cannot remove: {e}", p.display());
        }
    }
    // `mnt` is only removed when empty: an unmount that failed leaves it (and the directory)
    // for the next run's sweep.
    let _ = std::fs::remove_dir(dir.join("mnt"));
    let _ = std::fs::remove_dir(dir);
}

/// Removes what runs killed before they could clean up left behind.
fn sweep_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.split('-').nth(1))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let alive = Path::new("/proc").join(pid.to_string()).exists();
        if !alive {
            let dir = e.path();
            if ware_fs::ware_mounts().contains(&dir.join("mnt")) {
                let _ = ware_fs::detach_unmount(&dir.join("mnt"));
            }
            remove_run_dir(&dir);
        }
    }
}

/// Where the run record for `path` is written before it is renamed into place.
fn record_tmp(path: &Path) -> std::path::PathBuf {
    path.with_extension("tmp-ware")
}

/// Fails now if the run record could not be written to `path` later (what `write_record` does
/// first: create its temporary beside it).
fn check_writable(path: &Path) -> Result<()> {
    let tmp = record_tmp(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .and_then(|_| std::fs::remove_file(&tmp))
        .with_context(|| format!("{}: cannot write the run record here", path.display()))
}

fn write_record(path: &Path, rec: &RunRecord) -> Result<()> {
    let text = serde_json::to_string_pretty(rec)? + "\n";
    let tmp = record_tmp(path);
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .with_context(|| format!("{}: cannot write the run record", path.display()))
}

fn summary(rec: &RunRecord, n: u32, repeat: u32) {
    let which = if repeat > 1 {
        format!(" {}/{repeat}", n + 1)
    } else {
        String::new()
    };
    let how = match rec.status.as_str() {
        "exited" => format!("exit {}", rec.exit_code),
        "signaled" => format!("killed by signal {}", rec.exit_code - 128),
        _ => "timed out".to_string(),
    };
    eprintln!("ware: run{which} of {}: {how}", rec.formula);
    for (path, id) in &rec.outputs {
        eprintln!("ware:   output {path} = {id}");
    }
    for m in &rec.notices {
        eprintln!("ware: notice: {}", safe(m.as_bytes()));
    }
}

/// Checks that repeated runs agreed; `Err` names what differed.
pub fn agreement(result: &RunResult) -> Result<()> {
    if result.disagreements.is_empty() {
        return Ok(());
    }
    let detail: Vec<String> = result
        .disagreements
        .iter()
        .map(|what| {
            let seen: Vec<String> = result
                .records
                .iter()
                .map(|r| match what.as_str() {
                    "exit code" => r.exit_code.to_string(),
                    p => r.outputs.get(p).cloned().unwrap_or_default(),
                })
                .collect();
            format!("{what}: {}", seen.join(" vs "))
        })
        .collect();
    bail!(
        "the runs disagree (not reproducible): {}",
        detail.join("; ")
    )
}
