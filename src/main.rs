//! `ware`: the warefs command. It parses the command line, reaches the store through the one
//! [`api::StoreApi`] interface, and prints results for people or, with `--json`, for scripts.
//! It is the only place that installs a tracing subscriber.
#![forbid(unsafe_code)]

mod api;
mod output;
mod progress;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::json;
use ware_store::pack::{
    DeviceFilter, IdFilter, MtimeFilter, PackOptions, SetidFilter, XattrFilter,
};

use api::{LocalStore, PackSource, StoreApi, WarePath};
use output::{entry_json, entry_line, human_bytes, safe};
use progress::Bar;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure (bad input, I/O error, …; the message names the ID, path or entry)
  2  usage error
  3  not found (no such ware, or no such path in it)
  4  corruption (fsck found damage, or a read hit bytes that do not match their hash)
  5  the store is in use by another process";

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
        path: String,
        #[command(flatten)]
        filters: FilterArgs,
    },
    /// Materialise a ware into DIR (absent or empty). Nothing is created outside DIR, whatever
    /// the ware holds. As non-root, owners are left as the current user (with one notice).
    Unpack {
        /// The ware ID.
        id: String,
        /// Target directory (created if absent; must be empty).
        dir: PathBuf,
    },
    /// List a directory of a ware (`ID` or `ID/PATH`), or, with no argument, the store's wares.
    Ls {
        /// `ID[/PATH]`.
        at: Option<String>,
    },
    /// Write a file of a ware (`ID/PATH`) to stdout, every chunk verified.
    Cat {
        /// `ID/PATH`.
        at: String,
    },
    /// Show one entry of a ware (`ID` or `ID/PATH`).
    Stat {
        /// `ID[/PATH]`.
        at: String,
    },
    /// Re-hash every chunk and node; name what is corrupt or missing (exit code 4 if any).
    Fsck,
    /// Wares, logical bytes, stored bytes, dedup ratio, chunk count.
    Stats,
    /// Tools for testing warefs itself.
    #[command(hide = true, subcommand)]
    Debug(DebugCommand),
}

#[derive(Subcommand)]
enum DebugCommand {
    /// Flip a bit in the first chunk of a file (or in a directory's node) in the store.
    Damage {
        /// `ID/PATH`.
        at: String,
    },
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

/// An error that carries its own exit code (after the message is printed).
#[derive(Debug)]
struct Exit(u8);
impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}
impl std::error::Error for Exit {}

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

fn open(cli: &Cli) -> Result<Box<dyn StoreApi>> {
    let dir = cli.store.clone().unwrap_or_else(default_store);
    Ok(Box::new(LocalStore::open(&dir)?))
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
        Command::Pack { path, filters } => {
            let opts = filters.options()?;
            let source = if path == "-" {
                PackSource::Tar(Box::new(std::io::stdin()))
            } else {
                let p = PathBuf::from(path);
                let md = std::fs::metadata(&p).with_context(|| format!("{path}: cannot pack"))?;
                if md.is_dir() {
                    PackSource::Dir(p)
                } else {
                    let f =
                        std::fs::File::open(&p).with_context(|| format!("{path}: cannot open"))?;
                    PackSource::Tar(Box::new(f))
                }
            };
            let store = open(cli)?;
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
            let ware = WarePath::parse(id)?;
            anyhow::ensure!(
                ware.path.is_empty(),
                "{id}: unpack takes a ware ID, not a path inside one"
            );
            let store = open(cli)?;
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
            let store = open(cli)?;
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
            let at = WarePath::parse(at)?;
            let entries = open(cli)?.list(&at)?;
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
            let at = WarePath::parse(at)?;
            let store = open(cli)?;
            let mut out = BufWriter::with_capacity(256 * 1024, std::io::stdout().lock());
            store.cat(&at, &mut out)?;
            out.flush()?;
        }
        Command::Stat { at } => {
            let at = WarePath::parse(at)?;
            let e = open(cli)?.stat(&at)?;
            if cli.json {
                let mut v = entry_json(&e);
                v["path"] = json!(at.to_string());
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
            let store = open(cli)?;
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
            let s = open(cli)?.stats()?;
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
            let at = WarePath::parse(at)?;
            let what = open(cli)?.damage(&at)?;
            println!("damaged {what}");
        }
    }
    Ok(())
}

/// The exit code an error means (see `EXIT_CODES`).
fn exit_code(e: &anyhow::Error) -> u8 {
    if let Some(Exit(c)) = e.downcast_ref::<Exit>() {
        return *c;
    }
    match e.downcast_ref::<ware_store::Error>() {
        Some(se) if se.is_not_found() => 3,
        Some(se) if se.is_corruption() => 4,
        Some(ware_store::Error::Busy { .. }) => 5,
        _ => 1,
    }
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    raise_fd_limit();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = exit_code(&e);
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
                eprintln!("ware: error: {}", safe(format!("{e:#}").as_bytes()));
            }
            ExitCode::from(code)
        }
    }
}
