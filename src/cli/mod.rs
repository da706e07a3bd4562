//! The command line: [`Cli`] and its subcommands, one file per group (`store`: pack, unpack,
//! ls, cat, stat, fsck, stats; `mount`: mount, umount; `warehouse`: push, pull; `name`;
//! `run`: run, runs; `daemon`; `debug`), each with its own help text. The commands reach the
//! store through [`crate::client::StoreClient`] (the operations of `crate::ops`) and print for people or, with `--json`, for scripts.

mod config;
mod daemon;
mod debug;
mod image;
mod mount;
mod name;
mod profile;
mod run;
mod serve;
mod store;
mod warehouse;

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

use crate::api::{self, WarePath};
use crate::client::{self, StoreClient, resolve_ware};
use crate::exit::{self, EXIT_CODES, Exit, exit_code};
use crate::ops::{self, Cx, MountWhat};
use crate::output::{self, entry_json, entry_line, human_bytes, safe};
use crate::progress::Bar;

/// warefs: content-addressed filesystem trees ("wares"), named by the hash of their content.
///
/// A ware is a directory tree (files, directories, symlinks, hardlinks, modes, owners,
/// xattrs) named by the CID of its root node. Packing the same tree twice, anywhere, gives the
/// same ID. Chunks are deduplicated across every ware of the store and every byte read back is
/// checked against its hash.
#[derive(Parser)]
#[command(name = "ware", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// The store directory [default: /var/lib/ware for root, else $XDG_DATA_HOME/ware].
    #[arg(long, global = true, env = "WARE_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Print results as JSON (one document on stdout).
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars or notices on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// A warehouse to fetch from (repeatable; tried in order): file:///DIR, http(s)://…,
    /// s3://BUCKET/PREFIX, ipfs+http://HOST:PORT, ipfs+gateway+http(s)://HOST. Without it,
    /// the URLs listed in $XDG_CONFIG_HOME/ware/warehouses (or /etc/ware/warehouses), one per
    /// line.
    #[arg(long = "warehouse", global = true, value_name = "URL")]
    pub warehouses: Vec<String>,
    /// Longest time one read of a mount (or one fetch) may take across every retry and
    /// warehouse before it fails with EIO [default: the store's read.deadline_s, 30].
    #[arg(long, global = true, value_name = "SECONDS")]
    pub read_deadline: Option<f64>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    Pack(store::Pack),
    Import(image::Import),
    Unpack(store::Unpack),
    Ls(store::Ls),
    Cat(store::Cat),
    Stat(store::Stat),
    Mount(mount::Mount),
    Push(warehouse::Push),
    Pull(warehouse::Pull),
    Umount(mount::Umount),
    /// Human names for wares, with their history: `set`, `get`, `ls`, `log`, `rm`.
    #[command(subcommand)]
    Name(name::NameCommand),
    /// The store's daemon, which owns the database and the mounts while any are live.
    #[command(subcommand)]
    Daemon(daemon::DaemonCommand),
    Run(run::Run),
    Runs(run::Runs),
    Fsck(store::Fsck),
    Stats(store::Stats),
    /// The store's settings (STORE/config.toml): `get`, `set`, `unset`, `ls`.
    ///
    /// A setting comes from a command's flag if it has one, else from this file, else from its
    /// default. `ware config ls` lists every key with its value, default and meaning.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Access profiles, learned from mounts: the order a ware's nodes and chunks were first read.
    ///
    /// Each mount of a ware records what it reads; when it ends, that goes into the ware's
    /// profile (`ware:<id>`), merged with what earlier mounts read; a run's inputs go into
    /// `run:<formula id>:<path>` too. Profiles travel with `ware push` and `pull`, and a lazy
    /// mount of a remote ware fetches its profile's chunks ahead of the reads. Nothing to do
    /// by hand: `ls`, `show` and `rm` are for looking and forgetting.
    #[command(subcommand)]
    Profile(profile::ProfileCommand),
    Prefetch(profile::Prefetch),
    /// A warehouse's catalog, which `ware push` keeps and `ware ls URL` reads: `rebuild`.
    #[command(subcommand)]
    Catalog(warehouse::CatalogCommand),
    Serve(serve::Serve),
    /// Tools for testing warefs itself.
    #[command(hide = true, subcommand)]
    Debug(debug::DebugCommand),
}

pub(crate) fn default_store() -> PathBuf {
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

pub(crate) fn store_dir(cli: &Cli) -> PathBuf {
    cli.store.clone().unwrap_or_else(default_store)
}

/// Opens the store; only commands that write (or cache what warehouses send) create one.
/// Runs `op` on `store` (with `fd`, if it takes one) under a progress bar titled `what`, the
/// bar finished however the call ends.
pub(crate) fn call_with_bar<O: ops::Op>(
    cli: &Cli,
    store: &StoreClient,
    what: &str,
    op: O,
    fd: Option<std::os::fd::OwnedFd>,
) -> Result<O::Reply> {
    let bar = Bar::new(what, cli.quiet);
    let r = store.call(op, &mut Cx::new(fd, &bar));
    bar.finish();
    r
}

pub(crate) fn open(cli: &Cli, create: bool) -> Result<StoreClient> {
    client::open_store(&store_dir(cli), create)
}

/// The warehouses to use (`--warehouse` flags, else the warehouses file) and the read deadline
/// (`--read-deadline`, else the store's `read.deadline_s`).
pub(crate) fn remote_options(cli: &Cli) -> Result<api::RemoteOptions> {
    let warehouses = if cli.warehouses.is_empty() {
        configured_warehouses()
    } else {
        cli.warehouses.clone()
    };
    let deadline = match cli.read_deadline {
        Some(d) => d,
        None => crate::config::Config::load(&client::canonical_store(&store_dir(cli)))?
            .get("read.deadline_s"),
    };
    Ok(api::RemoteOptions {
        warehouses,
        read_deadline_ms: (deadline.max(0.001) * 1000.0) as u64,
        shared: false,
    })
}

/// URLs from $XDG_CONFIG_HOME/ware/warehouses (~/.config/…), else /etc/ware/warehouses: one per
/// line, `#` starts a comment.
pub(crate) fn configured_warehouses() -> Vec<String> {
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

pub(crate) fn print_json(v: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

pub(crate) fn notices(cli: &Cli, notices: &[String]) {
    if !cli.quiet {
        for n in notices {
            eprintln!("ware: notice: {}", safe(n.as_bytes()));
        }
    }
}

pub(crate) fn run(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::Pack(a) => store::pack(cli, a),
        Command::Import(a) => image::import(cli, a),
        Command::Unpack(a) => store::unpack(cli, a),
        Command::Ls(a) => store::ls(cli, a),
        Command::Cat(a) => store::cat(cli, a),
        Command::Stat(a) => store::stat(cli, a),
        Command::Fsck(a) => store::fsck(cli, a),
        Command::Stats(a) => store::stats(cli, a),
        Command::Mount(a) => mount::mount(cli, a),
        Command::Umount(a) => mount::umount(cli, a),
        Command::Push(a) => warehouse::push(cli, a),
        Command::Pull(a) => warehouse::pull(cli, a),
        Command::Name(cmd) => name::name_command(cli, cmd),
        Command::Daemon(cmd) => daemon::daemon(cli, cmd),
        Command::Run(a) => run::run(cli, a),
        Command::Runs(a) => run::runs(cli, a),
        Command::Config(cmd) => config::config(cli, cmd),
        Command::Profile(cmd) => profile::profile(cli, cmd),
        Command::Prefetch(a) => profile::prefetch(cli, a),
        Command::Catalog(c) => warehouse::catalog(cli, c),
        Command::Serve(a) => serve::serve(cli, a),
        Command::Debug(cmd) => debug::debug(cli, cmd),
    }
}

/// A usage error (exit code 2), said the way clap says its own.
pub(crate) fn usage(msg: &str) -> anyhow::Error {
    eprintln!("error: {msg}\n\nFor more information, try '--help'.");
    Exit(2).into()
}

/// Deep trees are unpacked with one descriptor per level: allow as many as the hard limit.
pub(crate) fn raise_fd_limit() {
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

/// Runs the command line `cli` (what `ware` parsed) and returns the exit code.
pub fn main(cli: Cli) -> ExitCode {
    // The daemon logs what it serves (to its log file); commands only warn. Commands end
    // quietly when their reader goes away (`ware ls | head`); the daemon must not.
    // fuser unmounts again what `ware-fs` already unmounted (to tell a busy mount from a
    // gone one) and warns about the EINVAL it gets: not worth a line per unmount.
    let default_level = match cli.command {
        Command::Daemon(daemon::DaemonCommand::Run { .. }) => "info,fuser::mnt=error",
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
    let daemon = matches!(
        cli.command,
        Command::Daemon(daemon::DaemonCommand::Run { .. })
    );
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
                if ops::broken_pipe(&e) {
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
pub struct RunFailed(anyhow::Error);

impl std::fmt::Display for RunFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::exit::message(&self.0))
    }
}
impl std::error::Error for RunFailed {}
