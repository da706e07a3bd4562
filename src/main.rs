//! `ware`: the warefs command. It parses the command line, reaches the store through the one
//! [`api::StoreApi`] interface, and prints results for people or, with `--json`, for scripts.
//! It is the only place that installs a tracing subscriber.
#![forbid(unsafe_code)]

mod api;
mod client;
mod daemon;
mod exit;
mod formula;
mod output;
mod progress;
mod proto;
mod run;

use std::ffi::OsString;
use std::io::{BufWriter, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::json;
use ware_store::pack::{
    DeviceFilter, IdFilter, MtimeFilter, PackOptions, SetidFilter, XattrFilter,
};

use api::{PackSource, StoreApi, WarePath, resolve_ware};
use exit::{EXIT_CODES, Exit, exit_code};
use output::{entry_json, entry_line, human_bytes, safe};
use progress::Bar;
use proto::MountWhat;

/// warefs: content-addressed filesystem trees ("wares"), named by the hash of their content.
///
/// A ware is a directory tree (files, directories, symlinks, hardlinks, modes, owners,
/// xattrs) named by the CID of its root node. Packing the same tree twice, anywhere, gives the
/// same ID. Chunks are deduplicated across every ware of the store and every byte read back is
/// checked against its hash.
#[derive(Parser)]
#[command(name = "ware", version, after_help = EXIT_CODES)]
struct Cli {
    /// The store directory [default: /var/lib/ware for root, else $XDG_DATA_HOME/ware].
    #[arg(long, global = true, env = "WARE_STORE", value_name = "DIR")]
    store: Option<PathBuf>,
    /// Print results as JSON (one document on stdout).
    #[arg(long, global = true)]
    json: bool,
    /// No progress bars or notices on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// A warehouse to fetch from (repeatable; tried in order): file:///DIR, http(s)://…,
    /// s3://BUCKET/PREFIX, ipfs+http://HOST:PORT, ipfs+gateway+http(s)://HOST. Without it,
    /// the URLs listed in $XDG_CONFIG_HOME/ware/warehouses (or /etc/ware/warehouses), one per
    /// line.
    #[arg(long = "warehouse", global = true, value_name = "URL")]
    warehouses: Vec<String>,
    /// Longest time one read of a mount (or one fetch) may take across every retry and
    /// warehouse before it fails with EIO.
    #[arg(long, global = true, value_name = "SECONDS", default_value = "30")]
    read_deadline: f64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pack a directory, a tar file (plain, .gz or .zst) or a tar stream on stdin (`-`) into a
    /// ware; prints the ware ID.
    ///
    /// Defaults keep owners, setuid/setgid bits and xattrs, normalise mtimes (to
    /// 2010-01-01T00:00:00Z, so the same tree always gets the same ID) and leave device
    /// nodes and fifos out: a root filesystem packs with no flags.
    Pack {
        /// Directory, tar file, or `-` for a tar stream on stdin.
        path: OsString,
        #[command(flatten)]
        filters: FilterArgs,
    },
    /// Materialise a ware into DIR (absent or empty). Nothing is created outside DIR, whatever
    /// the ware holds. As non-root, owners are left as the current user (with one notice).
    Unpack {
        /// The ware ID.
        id: OsString,
        /// Target directory (created if absent; must be empty).
        dir: PathBuf,
    },
    /// List a directory of a ware (`ID` or `ID/PATH`), or, with no argument, the store's wares.
    Ls {
        /// `ID[/PATH]`.
        at: Option<OsString>,
    },
    /// Write a file of a ware (`ID/PATH`) to stdout, every chunk verified.
    Cat {
        /// `ID/PATH`.
        at: OsString,
    },
    /// Show one entry of a ware (`ID` or `ID/PATH`).
    Stat {
        /// `ID[/PATH]`.
        at: OsString,
    },
    /// Mount a ware (by ID or name) read-only at MNT, or with `--all` the whole store.
    ///
    /// Nothing is read until a program looks: the mount is ready at once, whatever the size of
    /// the ware, and every byte served is checked against its hash (a damaged chunk reads as
    /// EIO, never as wrong bytes). The store's daemon serves the mount and is started if none
    /// runs; the command returns once the mount is live. Mounted ro,nosuid,nodev.
    ///
    /// With `--all`, `MNT/<id>/` shows any ware of the store on first lookup (a listing of MNT
    /// shows the store's wares) and `MNT/names/<name>` is a symlink to the ware a name points
    /// at.
    #[command(
        override_usage = "ware mount [OPTIONS] ID|NAME MNT\n       ware mount [OPTIONS] --all MNT"
    )]
    Mount {
        /// `ID|NAME MNT`, or only `MNT` with `--all`. MNT is an existing directory.
        #[arg(required = true, num_args = 1..=2, value_name = "ID|NAME MNT")]
        args: Vec<OsString>,
        /// Mount the whole store: every ware as MNT/<id>, every name as MNT/names/<name>.
        #[arg(long)]
        all: bool,
        /// Let other users and other namespaces read the mount (permissions are then checked
        /// by the kernel against each entry's mode and owner: a 0600 file stays private).
        #[arg(long)]
        allow_other: bool,
        /// Stay attached: the mount lasts until this command ends (Ctrl-C unmounts).
        #[arg(long)]
        foreground: bool,
        /// Mount over a directory that is not empty (its contents are hidden while mounted).
        /// Without it such a mountpoint is refused, as fusermount does.
        #[arg(long)]
        nonempty: bool,
    },
    /// Upload a ware to a warehouse: only what the warehouse lacks, packs first and the
    /// ware's manifest last (so an interrupted push is simply run again).
    Push {
        /// The ware ID or name.
        id: String,
        /// The warehouse URL (file:///DIR, s3://BUCKET/PREFIX, ipfs+http://HOST:PORT).
        url: String,
        /// A directory warehouse: make what this push creates readable by every user (0755
        /// directories, 0644 files), for a web server to serve it. Without it, a directory
        /// warehouse is private to its owner (0700/0600): it holds every byte pushed.
        #[arg(long)]
        shared: bool,
    },
    /// Bring a whole ware from a warehouse into the store, every byte verified.
    Pull {
        /// The ware ID.
        id: String,
        /// The warehouse URL; without it, the configured warehouses are tried in order.
        url: Option<String>,
    },
    /// Unmount a ware mount (also one whose daemon died).
    ///
    /// A mount in use (an open file, a shell's working directory) is left in place with an
    /// error, after waiting up to 2 s for a passing user; `--lazy` detaches it at once and it
    /// ends when its last user lets go.
    Umount {
        /// The mountpoint.
        mountpoint: PathBuf,
        /// Detach even when busy.
        #[arg(long)]
        lazy: bool,
    },
    /// Human names for wares, with their history: `set`, `get`, `ls`, `log`, `rm`.
    #[command(subcommand)]
    Name(NameCommand),
    /// The store's daemon, which owns the database and the mounts while any are live.
    #[command(subcommand)]
    Daemon(DaemonCommand),
    /// Run a formula: a job on lazily mounted wares, its outputs packed into wares.
    ///
    /// The formula (JSON, docs/FORMAT.md "Formulas") names the inputs (path in the job →
    /// ware ID or name; `/` is the root filesystem), the action (argv, env, cwd, uid, gid,
    /// hostname, network) and the outputs (path → pack filters). Inputs are mounted through
    /// the store's daemon and nothing is unpacked: the job starts at once and reads only what
    /// it needs. `/` is read-only under a scratch overlay (writes are thrown away), other
    /// inputs are read-only, /tmp is a tmpfs, outputs are written where the formula says and
    /// packed after the job. The job's stdin, stdout and stderr are this command's.
    ///
    /// Exits with the job's exit code (128+N when signal N killed it, 124 when it ran out of
    /// time); 125 when ware itself failed. A run record (formula ID, executor, times, exit
    /// code, output IDs) is kept in the store (`ware runs`) and written to `--record FILE`.
    Run {
        /// The formula file (`-`: stdin).
        formula: PathBuf,
        /// `ns`: Linux namespaces (user when not root, mount, pid, uts, ipc, net) and
        /// pivot_root; `chroot`: a mount namespace and chroot only (weaker: the job shares
        /// the host's pids, network and host name); `runc`: an OCI bundle run by runc (or
        /// crun).
        #[arg(long, value_enum, default_value = "ns")]
        executor: Executor,
        /// Write the run record (JSON) to FILE.
        #[arg(long, value_name = "FILE")]
        record: Option<PathBuf>,
        /// Run the formula N times, each on fresh scratch, and check every run gives the same
        /// outputs and exit code (exit 1 naming what differed if not).
        #[arg(long, default_value = "1", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        repeat: u32,
    },
    /// List the run records the store keeps, oldest first.
    Runs,
    /// Re-hash every chunk and node; name what is corrupt or missing (exit code 4 if any).
    Fsck,
    /// Wares, logical bytes, stored bytes, dedup ratio, chunk count.
    Stats,
    /// Tools for testing warefs itself.
    #[command(hide = true, subcommand)]
    Debug(DebugCommand),
}

#[derive(Subcommand)]
enum NameCommand {
    /// Point NAME at a ware of the store (the change is logged).
    Set {
        /// `[A-Za-z0-9._-]{1,255}`, not parsing as an ID.
        name: String,
        /// A ware ID, or another name.
        id: String,
    },
    /// Print the ID a name points at.
    Get {
        /// The name.
        name: String,
    },
    /// List every name and its ID.
    Ls,
    /// Every change of a name, oldest first, with its time.
    Log {
        /// The name.
        name: String,
    },
    /// Remove a name (the removal is logged; the ware stays).
    Rm {
        /// The name.
        name: String,
    },
}

#[derive(Subcommand)]
enum DaemonCommand {
    /// Run the daemon in the foreground (commands start it on demand; this is for service
    /// managers and debugging). It logs to STORE/daemon.log.
    Run {
        /// Exit after this many seconds without mounts or clients.
        #[arg(long, default_value = "60", value_name = "SECONDS")]
        idle_timeout: u64,
    },
    /// Show whether the store's daemon runs, its pid and its mounts.
    Status,
    /// Unmount everything and stop the store's daemon.
    Stop,
}

#[derive(Subcommand)]
enum DebugCommand {
    /// Flip a bit in the first chunk of a file (or in a directory's node) in the store.
    Damage {
        /// `ID/PATH`.
        at: OsString,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Executor {
    Ns,
    Chroot,
    Runc,
}

impl From<Executor> for ware_exec::ExecutorKind {
    fn from(e: Executor) -> Self {
        match e {
            Executor::Ns => ware_exec::ExecutorKind::Ns,
            Executor::Chroot => ware_exec::ExecutorKind::Chroot,
            Executor::Runc => ware_exec::ExecutorKind::Runc,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Setid {
    Keep,
    Strip,
    Reject,
}

#[derive(Clone, Copy, ValueEnum)]
enum Devices {
    Skip,
    Keep,
    Reject,
}

#[derive(Clone, Copy, ValueEnum)]
enum Xattrs {
    Keep,
    Skip,
}

#[derive(Args)]
struct FilterArgs {
    /// Owners: `keep`, `zero`, or a number to give every entry.
    #[arg(long, default_value = "keep", value_name = "keep|zero|N")]
    uid: String,
    /// Groups: `keep`, `zero`, or a number to give every entry.
    #[arg(long, default_value = "keep", value_name = "keep|zero|N")]
    gid: String,
    /// Keep modification times instead of normalising them (the ID then changes on `touch`).
    #[arg(long)]
    keep_mtime: bool,
    /// Setuid/setgid bits.
    #[arg(long, value_enum, default_value = "keep")]
    setid: Setid,
    /// Device nodes and fifos.
    #[arg(long, value_enum, default_value = "skip")]
    devices: Devices,
    /// Extended attributes.
    #[arg(long, value_enum, default_value = "keep")]
    xattrs: Xattrs,
}

fn id_filter(s: &str, what: &str) -> Result<IdFilter> {
    Ok(match s {
        "keep" => IdFilter::Keep,
        "zero" => IdFilter::Set(0),
        n => IdFilter::Set(
            n.parse()
                .with_context(|| format!("--{what} {n:?}: expected keep, zero or a number"))?,
        ),
    })
}

impl FilterArgs {
    fn options(&self) -> Result<PackOptions> {
        Ok(PackOptions {
            uid: id_filter(&self.uid, "uid")?,
            gid: id_filter(&self.gid, "gid")?,
            mtime: if self.keep_mtime {
                MtimeFilter::Keep
            } else {
                MtimeFilter::Normalise
            },
            setid: match self.setid {
                Setid::Keep => SetidFilter::Keep,
                Setid::Strip => SetidFilter::Strip,
                Setid::Reject => SetidFilter::Reject,
            },
            devices: match self.devices {
                Devices::Skip => DeviceFilter::Skip,
                Devices::Keep => DeviceFilter::Keep,
                Devices::Reject => DeviceFilter::Reject,
            },
            xattrs: match self.xattrs {
                Xattrs::Keep => XattrFilter::Keep,
                Xattrs::Skip => XattrFilter::Skip,
            },
        })
    }
}

fn default_store() -> PathBuf {
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/ware");
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data.join("ware")
}

fn store_dir(cli: &Cli) -> PathBuf {
    cli.store.clone().unwrap_or_else(default_store)
}

/// Opens the store; only commands that write (or cache what warehouses send) create one.
fn open(cli: &Cli, create: bool) -> Result<Box<dyn StoreApi>> {
    client::open_store(&store_dir(cli), create)
}

/// The warehouses to use: `--warehouse` flags, else the configuration file.
fn remote_options(cli: &Cli) -> api::RemoteOptions {
    let warehouses = if cli.warehouses.is_empty() {
        configured_warehouses()
    } else {
        cli.warehouses.clone()
    };
    api::RemoteOptions {
        warehouses,
        read_deadline_ms: (cli.read_deadline.max(0.001) * 1000.0) as u64,
        shared: false,
    }
}

/// URLs from $XDG_CONFIG_HOME/ware/warehouses (~/.config/…), else /etc/ware/warehouses: one per
/// line, `#` starts a comment.
fn configured_warehouses() -> Vec<String> {
    let user = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")))
        .map(|d| d.join("ware/warehouses"));
    let file = user
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("/etc/ware/warehouses"));
    std::fs::read_to_string(file)
        .map(|text| {
            text.lines()
                .map(|l| l.split('#').next().unwrap_or("").trim())
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn print_json(v: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

fn notices(cli: &Cli, notices: &[String]) {
    if !cli.quiet {
        for n in notices {
            eprintln!("ware: notice: {}", safe(n.as_bytes()));
        }
    }
}

fn run(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::Run {
            formula,
            executor,
            record,
            repeat,
        } => {
            let result = run::run(&run::RunRequest {
                store: &store_dir(cli),
                formula,
                executor: (*executor).into(),
                record: record.as_deref(),
                repeat: *repeat,
                remote: remote_options(cli),
                quiet: cli.quiet,
            })
            .map_err(|e| anyhow::Error::from(RunFailed(e)))?;
            if cli.json {
                print_json(&json!({
                    "runs": result.records,
                    "agree": result.disagreements.is_empty(),
                }))?;
            }
            if *repeat > 1 {
                run::agreement(&result)?;
            }
            let code = result.records.last().map(|r| r.exit_code).unwrap_or(0);
            if code != 0 {
                return Err(Exit(code.clamp(1, 255) as u8).into());
            }
        }
        Command::Runs => {
            let runs = open(cli, false)?.runs()?;
            if cli.json {
                print_json(&serde_json::Value::Array(runs))?;
            } else {
                for r in runs {
                    let s = |k: &str| r.get(k).and_then(|v| v.as_str()).unwrap_or("?").to_string();
                    let outs = r
                        .get("outputs")
                        .and_then(|o| o.as_object())
                        .map(|o| {
                            o.iter()
                                .map(|(p, id)| format!("{p}={}", id.as_str().unwrap_or("?")))
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                        .unwrap_or_default();
                    println!(
                        "{}  {}  {:<6} exit {:<3} {}",
                        s("started"),
                        s("formula"),
                        s("executor"),
                        r.get("exit_code").and_then(|v| v.as_i64()).unwrap_or(-1),
                        outs
                    );
                }
            }
        }
        Command::Pack { path, filters } => {
            let opts = filters.options()?;
            let source = if path == "-" {
                PackSource::Fd(std::io::stdin().as_fd().try_clone_to_owned()?)
            } else {
                let p = PathBuf::from(path);
                let shown = p.display();
                let md = std::fs::metadata(&p).with_context(|| format!("{shown}: cannot pack"))?;
                if md.is_dir() {
                    PackSource::Dir(p)
                } else {
                    let f =
                        std::fs::File::open(&p).with_context(|| format!("{shown}: cannot open"))?;
                    PackSource::Fd(f.into())
                }
            };
            let store = open(cli, true)?;
            let bar = Bar::new("packing", cli.quiet);
            let report = store.pack(source, &opts, &bar);
            bar.finish();
            let report = report?;
            notices(cli, &report.notices);
            if cli.json {
                print_json(&serde_json::to_value(&report)?)?;
            } else {
                println!("{}", report.id);
            }
        }
        Command::Unpack { id, dir } => {
            let store = open(cli, false)?;
            let ware = WarePath::parse(id, &*store)?;
            anyhow::ensure!(
                ware.path.is_empty(),
                "{ware}: unpack takes a ware ID, not a path inside one"
            );
            let bar = Bar::new("unpacking", cli.quiet);
            let r = store.unpack(&ware.ware, dir, &bar);
            bar.finish();
            let r = r?;
            notices(cli, &r.notices);
            if cli.json {
                print_json(&serde_json::to_value(&r)?)?;
            } else if !cli.quiet {
                eprintln!(
                    "unpacked {} files, {} dirs, {} symlinks, {} into {}",
                    r.files,
                    r.dirs,
                    r.symlinks,
                    human_bytes(r.bytes),
                    dir.display()
                );
            }
        }
        Command::Ls { at: None } => {
            let store = open(cli, false)?;
            let wares = store.wares()?;
            if cli.json {
                let v: Vec<_> = wares
                    .iter()
                    .map(|(id, r)| json!({"id": id, "record": r}))
                    .collect();
                print_json(&json!(v))?;
            } else {
                for (id, r) in wares {
                    println!(
                        "{id} {:>8} files {:>10}",
                        r.files,
                        human_bytes(r.logical_bytes)
                    );
                }
            }
        }
        Command::Ls { at: Some(at) } => {
            // Reading through warehouses caches what they send: such a read may create the store.
            let remote = remote_options(cli);
            let store = open(cli, !remote.warehouses.is_empty())?;
            let at = WarePath::parse(at, &*store)?;
            let entries = store.list(&at, &remote)?;
            if cli.json {
                print_json(&json!(entries.iter().map(entry_json).collect::<Vec<_>>()))?;
            } else {
                let mut out = BufWriter::new(std::io::stdout().lock());
                for e in &entries {
                    writeln!(out, "{}", entry_line(e))?;
                }
                out.flush()?;
            }
        }
        Command::Cat { at } => {
            let remote = remote_options(cli);
            let store = open(cli, !remote.warehouses.is_empty())?;
            let at = WarePath::parse(at, &*store)?;
            store.cat(&at, std::io::stdout().as_fd(), &remote)?;
        }
        Command::Stat { at } => {
            let remote = remote_options(cli);
            let store = open(cli, !remote.warehouses.is_empty())?;
            let at = WarePath::parse(at, &*store)?;
            let e = store.stat(&at, &remote)?;
            if cli.json {
                let mut v = entry_json(&e);
                v["path"] = json!(at.to_string());
                if std::str::from_utf8(&at.path).is_err() {
                    v["path_hex"] = json!(output::hex(&at.path));
                }
                print_json(&v)?;
            } else {
                println!("  path: {}", safe(at.to_string().as_bytes()));
                println!("  kind: {}", e.kind.name());
                println!(
                    "  mode: {:04o} ({})",
                    e.mode,
                    output::mode_string(e.kind, e.mode)
                );
                println!(" owner: {}:{}", e.uid, e.gid);
                println!("  size: {}", e.size);
                println!(" mtime: {}.{:09}", e.mtime, e.mtime_nsec);
                if let Some(t) = &e.target {
                    println!("target: {}", safe(t));
                }
                if let Some(h) = e.hardlink {
                    println!("  link: hardlink group {h}");
                }
                for (n, v) in &e.xattrs {
                    println!(" xattr: {}={}", safe(n), safe(v));
                }
            }
        }
        Command::Fsck => {
            let store = open(cli, false)?;
            let bar = Bar::new("checking", cli.quiet);
            let r = store.fsck(&bar);
            bar.finish();
            let r = r?;
            if cli.json {
                print_json(&json!({"clean": r.is_clean(), "report": r}))?;
            } else {
                for c in &r.corrupt {
                    println!("corrupt: {c}");
                }
                for m in &r.missing {
                    println!("missing: {m}");
                }
                for d in &r.database_errors {
                    println!("database: {d}");
                }
                println!(
                    "checked {} chunks, {} nodes, {} wares ({} partly cached, {} pieces not fetched yet); {} unreferenced objects",
                    r.chunks_checked,
                    r.nodes_checked,
                    r.wares_checked,
                    r.partial_wares_checked,
                    r.not_yet_fetched,
                    r.unreferenced
                );
                if r.unreferenced > 0 {
                    // Until `ware gc` lands, the one way to drop them is a fresh store.
                    println!(
                        "the {} unreferenced objects were left by interrupted packs or pulls: a retry reuses them; \
                         to reclaim their space now, push the wares you keep to a warehouse and pull them into a fresh store \
                         (ware push ID file:///DIR; ware --store NEW pull ID file:///DIR)",
                        r.unreferenced
                    );
                }
                println!(
                    "{}",
                    if r.is_clean() {
                        "store is clean"
                    } else {
                        "STORE IS DAMAGED"
                    }
                );
            }
            if !r.is_clean() {
                return Err(Exit(4).into());
            }
        }
        Command::Stats => {
            let s = open(cli, false)?.stats()?;
            if cli.json {
                print_json(&serde_json::to_value(&s)?)?;
            } else {
                println!(
                    "wares:          {} ({} partly cached)",
                    s.wares, s.partial_wares
                );
                println!(
                    "logical bytes:  {} ({})",
                    s.logical_bytes,
                    human_bytes(s.logical_bytes)
                );
                println!(
                    "chunks:         {} ({} uncompressed)",
                    s.chunks,
                    human_bytes(s.chunk_bytes)
                );
                println!(
                    "nodes:          {} ({})",
                    s.nodes,
                    human_bytes(s.node_bytes)
                );
                println!(
                    "stored bytes:   {} ({})",
                    s.stored_bytes,
                    human_bytes(s.stored_bytes)
                );
                println!("dedup ratio:    {:.2}", s.dedup_ratio);
                println!("on disk:        {}", human_bytes(s.disk_bytes));
            }
        }
        Command::Debug(DebugCommand::Damage { at }) => {
            let store = open(cli, false)?;
            let at = WarePath::parse(at, &*store)?;
            let what = store.damage(&at)?;
            println!("damaged {what}");
        }
        Command::Mount {
            args,
            all,
            allow_other,
            foreground,
            nonempty,
        } => {
            let (id, mountpoint) = match (args.as_slice(), *all) {
                ([mnt], true) => (None, PathBuf::from(mnt)),
                ([id, mnt], false) => (
                    Some(id.to_str().ok_or_else(|| {
                        usage(&format!(
                            "{}: a ware ID or name is ASCII",
                            safe(id.as_encoded_bytes())
                        ))
                    })?),
                    PathBuf::from(mnt),
                ),
                (_, true) => return Err(usage("ware mount --all takes only the mountpoint")),
                (_, false) => {
                    return Err(usage("ware mount takes a ware ID or name and a mountpoint"));
                }
            };
            let mountpoint = &mountpoint;
            let mnt = std::fs::canonicalize(mountpoint)
                .with_context(|| format!("{}: cannot mount there", mountpoint.display()))?;
            anyhow::ensure!(
                mnt.is_dir(),
                "{}: the mountpoint must be a directory",
                mountpoint.display()
            );
            // A mount over files hides them until it goes: only when asked. (A ware mounted
            // there already, live or dead, is the daemon's to judge.)
            if !*nonempty
                && !ware_fs::ware_mounts().contains(&mnt)
                && std::fs::read_dir(&mnt).is_ok_and(|mut d| d.next().is_some())
            {
                anyhow::bail!(
                    "{}: the mountpoint is not empty; mounting would hide what it holds (--nonempty to mount over it)",
                    mountpoint.display()
                );
            }
            let daemon = client::ensure_daemon(&store_dir(cli), None)?;
            let what = match id {
                Some(id) => match id.parse::<ware_fetchers::Cid>() {
                    Ok(cid) if ware_fetchers::unixfs::is_unixfs_cid(&cid) => {
                        MountWhat::Unixfs(id.to_string())
                    }
                    _ => MountWhat::Ware(resolve_ware(id, &daemon)?),
                },
                None => MountWhat::All,
            };
            let quiet = cli.quiet;
            let remote = remote_options(cli);
            let info = daemon.mount(what, &mnt, *allow_other, *foreground, &remote, &mut || {
                if !quiet {
                    eprintln!("ware: mounted on {}; Ctrl-C unmounts", mnt.display());
                }
            })?;
            if cli.json {
                print_json(&serde_json::to_value(&info)?)?;
            }
        }
        Command::Umount { mountpoint, lazy } => {
            // Mounts are known by canonical path; a dead one cannot be resolved itself, but
            // its parent can.
            let abs = std::path::absolute(mountpoint)?;
            let mnt = match std::fs::canonicalize(&abs) {
                Ok(p) => p,
                Err(_) => match (abs.parent().map(std::fs::canonicalize), abs.file_name()) {
                    (Some(Ok(parent)), Some(name)) => parent.join(name),
                    _ => abs,
                },
            };
            let by_daemon = client::running_daemon(&store_dir(cli)).map(|d| d.umount(&mnt, *lazy));
            match by_daemon {
                Some(Ok(())) => {}
                Some(Err(e)) if e.downcast_ref::<exit::Failure>().is_some() => return Err(e),
                // No daemon serves this store (or it died under us): the mount is dead or
                // another store's.
                _ if ware_fs::ware_mounts().contains(&mnt) => ware_fs::detach_unmount(&mnt)?,
                _ => {
                    return Err(exit::Failure {
                        code: 3,
                        message: format!("{}: no ware is mounted there", mnt.display()),
                    }
                    .into());
                }
            }
        }
        Command::Push { id, url, shared } => {
            let store = open(cli, false)?;
            let ware = resolve_ware(id, &*store)?;
            let bar = Bar::new("pushing", cli.quiet);
            let remote = api::RemoteOptions {
                shared: *shared,
                ..remote_options(cli)
            };
            let r = store.push(&ware, url, &remote, &bar);
            bar.finish();
            let r = r?;
            if cli.json {
                print_json(&serde_json::to_value(&r)?)?;
            } else if !cli.quiet {
                if r.already_there {
                    eprintln!("{url} has {ware} already");
                } else {
                    eprintln!(
                        "pushed {ware} to {url}: {} of {} chunks new, {} uploaded",
                        r.new_chunks,
                        r.chunks,
                        human_bytes(r.uploaded_bytes)
                    );
                }
            }
        }
        Command::Pull { id, url } => {
            let store = open(cli, true)?;
            let ware = resolve_ware(id, &*store)?;
            let mut opts = remote_options(cli);
            if let Some(u) = url {
                opts.warehouses = vec![u.clone()];
            }
            let bar = Bar::new("pulling", cli.quiet);
            let r = store.pull(&ware, &opts, &bar);
            bar.finish();
            let r = r?;
            if cli.json {
                print_json(&serde_json::to_value(&r)?)?;
            } else if !cli.quiet {
                eprintln!(
                    "pulled {ware} from {}: {} of {} chunks fetched, {}",
                    r.url,
                    r.fetched_chunks,
                    r.chunks,
                    human_bytes(r.fetched_bytes)
                );
            }
        }
        Command::Name(cmd) => name_command(cli, cmd)?,
        Command::Daemon(DaemonCommand::Run { idle_timeout }) => {
            daemon::run(&store_dir(cli), Duration::from_secs(*idle_timeout))?;
        }
        Command::Daemon(DaemonCommand::Status) => match client::running_daemon(&store_dir(cli)) {
            Some(d) => {
                let ping = d.ping()?;
                let mounts = d.mounts()?;
                if cli.json {
                    print_json(&json!({"running": true, "daemon": ping, "mounts": mounts}))?;
                } else {
                    println!("daemon running, pid {}", ping["pid"]);
                    for m in mounts {
                        let what = match m.what {
                            MountWhat::Ware(id) => id.to_string(),
                            MountWhat::All => "--all".to_string(),
                            MountWhat::Unixfs(cid) => cid,
                        };
                        println!("{} {what}", m.mountpoint.display());
                    }
                }
            }
            None => {
                if cli.json {
                    print_json(&json!({"running": false}))?;
                } else {
                    println!("no daemon running for this store");
                }
            }
        },
        Command::Daemon(DaemonCommand::Stop) => {
            if let Some(d) = client::running_daemon(&store_dir(cli)) {
                let pid = d.ping()?["pid"].as_u64().unwrap_or(0);
                d.shutdown()?;
                // Its mounts are gone once the process is.
                let deadline = std::time::Instant::now() + Duration::from_secs(15);
                while process_alive(pid) && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                anyhow::ensure!(
                    !process_alive(pid),
                    "the daemon (pid {pid}) is still running 15 s after it was asked to stop"
                );
            }
        }
    }
    Ok(())
}

/// A usage error (exit code 2), said the way clap says its own.
fn usage(msg: &str) -> anyhow::Error {
    eprintln!("error: {msg}\n\nFor more information, try '--help'.");
    Exit(2).into()
}

fn name_command(cli: &Cli, cmd: &NameCommand) -> Result<()> {
    let store = open(cli, false)?;
    match cmd {
        NameCommand::Set { name, id } => {
            let id = resolve_ware(id, &*store)?;
            let prev = store.name_set(name, Some(&id))?;
            if cli.json {
                print_json(&json!({"name": name, "id": id, "previous": prev}))?;
            }
        }
        NameCommand::Get { name } => {
            let id = store
                .name_get(name)?
                .ok_or_else(|| ware_store::Error::NotFound {
                    what: "name",
                    id: name.clone(),
                })?;
            if cli.json {
                print_json(&json!({"name": name, "id": id}))?;
            } else {
                println!("{id}");
            }
        }
        NameCommand::Ls => {
            let names = store.names()?;
            if cli.json {
                let v: Vec<_> = names
                    .iter()
                    .map(|(n, id)| json!({"name": n, "id": id}))
                    .collect();
                print_json(&json!(v))?;
            } else {
                for (n, id) in names {
                    println!("{n} {id}");
                }
            }
        }
        NameCommand::Log { name } => {
            let log = store.name_log(name)?;
            if log.is_empty() {
                return Err(ware_store::Error::NotFound {
                    what: "name",
                    id: name.clone(),
                }
                .into());
            }
            if cli.json {
                print_json(&serde_json::to_value(&log)?)?;
            } else {
                for c in log {
                    let id =
                        c.id.map(|i| i.to_string())
                            .unwrap_or_else(|| "(removed)".into());
                    println!("{} {id}", output::utc_time(c.at));
                }
            }
        }
        NameCommand::Rm { name } => {
            if store.name_set(name, None)?.is_none() {
                return Err(ware_store::Error::NotFound {
                    what: "name",
                    id: name.clone(),
                }
                .into());
            }
        }
    }
    Ok(())
}

/// True while a process runs (a zombie has finished: only its parent's wait is left).
fn process_alive(pid: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}

/// Deep trees are unpacked with one descriptor per level: allow as many as the hard limit.
fn raise_fd_limit() {
    if let Ok(lim) = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .ok_or(())
    {
        let _ = rustix::process::setrlimit(
            rustix::process::Resource::Nofile,
            rustix::process::Rlimit {
                current: Some(lim),
                maximum: Some(lim),
            },
        );
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon logs what it serves (to its log file); commands only warn. Commands end
    // quietly when their reader goes away (`ware ls | head`); the daemon must not.
    // fuser unmounts again what `ware-fs` already unmounted (to tell a busy mount from a
    // gone one) and warns about the EINVAL it gets: not worth a line per unmount.
    let default_level = match cli.command {
        Command::Daemon(DaemonCommand::Run { .. }) => "info,fuser::mnt=error",
        // `-q`: no notices, and no warnings either (retries of a flaky warehouse, say); errors
        // still show.
        _ if cli.quiet => {
            ware_exec::default_sigpipe();
            "error"
        }
        _ => {
            ware_exec::default_sigpipe();
            "warn,fuser::mnt=error"
        }
    };
    let daemon = matches!(cli.command, Command::Daemon(DaemonCommand::Run { .. }));
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| default_level.into()),
        )
        // The daemon writes to its log file: no colour codes there.
        .with_ansi(!daemon && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    raise_fd_limit();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `ware run` passes the job's exit code through, so its own failures take one a
            // job rarely uses (as docker and podman do).
            let code = if let Some(RunFailed(inner)) = e.downcast_ref::<RunFailed>() {
                // A refused formula or flag is a usage error, whoever finds it.
                if exit_code(inner) == 2 { 2 } else { 125 }
            } else {
                exit_code(&e)
            };
            if e.downcast_ref::<Exit>().is_none() {
                // A closed stdout (`ware cat … | head`) is not worth a message.
                let broken_pipe = e.chain().any(|c| {
                    c.downcast_ref::<std::io::Error>()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                });
                if broken_pipe {
                    return ExitCode::SUCCESS;
                }
                // Messages carry names from wares and archives: escape them for the terminal.
                let message = safe(exit::message(&e).as_bytes());
                eprintln!("ware: error: {message}");
                if cli.json {
                    // Scripts read stdout: an error is a document there too.
                    let _ = print_json(&json!({"error": message, "code": code}));
                }
            }
            ExitCode::from(code)
        }
    }
}

/// `ware run` failed before or after its job (exit code 125).
#[derive(Debug)]
struct RunFailed(anyhow::Error);

impl std::fmt::Display for RunFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::exit::message(&self.0))
    }
}
impl std::error::Error for RunFailed {}
