use super::*;

/// Pack a directory, a tar file (plain, .gz or .zst) or a tar stream on stdin (`-`) into a
/// ware; prints the ware ID.
///
/// Defaults keep owners, setuid/setgid bits and xattrs, normalise mtimes (to
/// 2010-01-01T00:00:00Z, so the same tree always gets the same ID) and leave device
/// nodes and fifos out: a root filesystem packs with no flags.
#[derive(Args)]
pub struct Pack {
    /// Directory, tar file, or `-` for a tar stream on stdin.
    pub path: OsString,
    #[command(flatten)]
    pub filters: FilterArgs,
}

/// Materialise a ware into DIR (absent or empty). Nothing is created outside DIR, whatever
/// the ware holds. As non-root, owners are left as the current user (with one notice).
#[derive(Args)]
pub struct Unpack {
    /// The ware ID.
    pub id: OsString,
    /// Target directory (created if absent; must be empty).
    pub dir: PathBuf,
}

/// List a directory of a ware (`ID` or `ID/PATH`); a warehouse's wares and names (`URL`:
/// what its catalog records of every push); or, with no argument, the store's wares.
#[derive(Args)]
pub struct Ls {
    /// `ID[/PATH]`, or a warehouse URL (file:///DIR, http(s)://…, s3://BUCKET/PREFIX).
    pub at: Option<OsString>,
}

/// Write a file of a ware (`ID/PATH`) to stdout, every chunk verified.
#[derive(Args)]
pub struct Cat {
    /// `ID/PATH`.
    pub at: OsString,
}

/// Show one entry of a ware (`ID` or `ID/PATH`).
#[derive(Args)]
pub struct Stat {
    /// `ID[/PATH]`.
    pub at: OsString,
}

/// Re-hash every chunk and node; name what is corrupt or missing (exit code 4 if any).
#[derive(Args)]
pub struct Fsck {}

/// Wares, logical bytes, stored bytes, dedup ratio, chunk count.
#[derive(Args)]
pub struct Stats {}

pub(crate) fn pack(cli: &Cli, a: &Pack) -> Result<()> {
    let Pack { path, filters } = a;
    let opts = filters.options()?;
    let source = if path == "-" {
        (None, Some(std::io::stdin().as_fd().try_clone_to_owned()?))
    } else {
        let p = PathBuf::from(path);
        let shown = p.display();
        let md = std::fs::metadata(&p).with_context(|| format!("{shown}: cannot pack"))?;
        if md.is_dir() {
            (Some(std::path::absolute(&p)?), None)
        } else {
            let f = std::fs::File::open(&p).with_context(|| format!("{shown}: cannot open"))?;
            (None, Some(f.into()))
        }
    };
    let store = open(cli, true)?;
    let (dir, fd) = source;
    let report = call_with_bar(cli, &store, "packing", ops::Pack { dir, opts }, fd)?;
    notices(cli, &report.notices);
    if cli.json {
        print_json(&serde_json::to_value(&report)?)?;
    } else {
        println!("{}", report.id);
    }
    Ok(())
}

pub(crate) fn unpack(cli: &Cli, a: &Unpack) -> Result<()> {
    let Unpack { id, dir } = a;
    let store = open(cli, false)?;
    let ware = WarePath::parse(id, &store)?;
    anyhow::ensure!(
        ware.path.is_empty(),
        "{ware}: unpack takes a ware ID, not a path inside one"
    );
    let op = ops::Unpack {
        ware: ware.ware,
        target: std::path::absolute(dir)?,
    };
    let r = call_with_bar(cli, &store, "unpacking", op, None)?;
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
    Ok(())
}

/// The store and the place `at` (`ID|NAME[/PATH]`) names in it, for a read that may go
/// through the warehouses: such a read caches what they send, so it may create the store.
fn open_at(cli: &Cli, at: &OsString) -> Result<(StoreClient, WarePath, api::RemoteOptions)> {
    let remote = remote_options(cli)?;
    let store = open(cli, !remote.warehouses.is_empty())?;
    let at = WarePath::parse(at, &store)?;
    Ok((store, at, remote))
}

pub(crate) fn ls(cli: &Cli, a: &Ls) -> Result<()> {
    if let Some(url) =
        a.at.as_ref()
            .and_then(|at| at.to_str())
            .filter(|s| s.contains("://"))
    {
        return warehouse::ls_url(cli, url);
    }
    match &a.at {
        None => {
            let store = open(cli, false)?;
            let wares = store.ask(ops::Wares {})?;
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
        Some(at) => ls_path(cli, at, None)?,
    }
    Ok(())
}

/// `ware ls ID[/PATH]`, with `warehouse` tried first if given (`ware ls URL/ID/PATH`).
pub(crate) fn ls_path(cli: &Cli, at: &OsString, warehouse: Option<&str>) -> Result<()> {
    let (store, at, remote) = match warehouse {
        None => open_at(cli, at)?,
        Some(url) => {
            let mut remote = remote_options(cli)?;
            remote.warehouses.retain(|w| w != url);
            remote.warehouses.insert(0, url.to_string());
            let store = open(cli, true)?;
            let at = WarePath::parse(at, &store)?;
            (store, at, remote)
        }
    };
    let entries = store.ask(ops::List {
        at: at.clone(),
        remote,
    })?;
    if cli.json {
        print_json(&json!(entries.iter().map(entry_json).collect::<Vec<_>>()))?;
    } else {
        let mut out = BufWriter::new(std::io::stdout().lock());
        for e in &entries {
            writeln!(out, "{}", entry_line(e))?;
        }
        out.flush()?;
    }
    Ok(())
}

pub(crate) fn cat(cli: &Cli, a: &Cat) -> Result<()> {
    let (store, at, remote) = open_at(cli, &a.at)?;
    let out = std::io::stdout().as_fd().try_clone_to_owned()?;
    store.call(
        ops::Cat { at, remote },
        &mut Cx::new(Some(out), &ware_store::pack::NoProgress),
    )?;
    Ok(())
}

pub(crate) fn stat(cli: &Cli, a: &Stat) -> Result<()> {
    let (store, at, remote) = open_at(cli, &a.at)?;
    let e = store.ask(ops::Stat {
        at: at.clone(),
        remote,
    })?;
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
    Ok(())
}

pub(crate) fn fsck(cli: &Cli, a: &Fsck) -> Result<()> {
    let _ = a;
    let store = open(cli, false)?;
    let r = call_with_bar(cli, &store, "checking", ops::Fsck {}, None)?;
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
    Ok(())
}

pub(crate) fn stats(cli: &Cli, a: &Stats) -> Result<()> {
    let _ = a;
    let store = open(cli, false)?;
    let s = store.ask(ops::Stats {})?;
    // With a daemon: what each of its mounts fetched from warehouses, and why.
    let mounts = match &store {
        StoreClient::Remote(d) => d.ask(ops::Mounts {})?,
        StoreClient::Local(_) => Vec::new(),
    };
    if cli.json {
        let mut v = serde_json::to_value(&s)?;
        v["mounts"] = serde_json::to_value(
            mounts
                .iter()
                .map(|m| json!({"mountpoint": m.mountpoint, "fetched": m.fetched}))
                .collect::<Vec<_>>(),
        )?;
        print_json(&v)?;
    } else {
        for m in &mounts {
            if let Some(f) = &m.fetched {
                println!(
                    "mount {}: fetched {} on demand ({} requests, reads waited {} ms), {} ahead of \
                     readers, {} by profile ({} requests), {} by fill",
                    safe(m.mountpoint.as_os_str().as_encoded_bytes()),
                    human_bytes(f.demand_bytes),
                    f.demand_requests,
                    f.demand_wait_ms,
                    human_bytes(f.readahead_bytes),
                    human_bytes(f.prefetch_bytes),
                    f.prefetch_requests,
                    human_bytes(f.fill_bytes)
                );
            }
        }
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
    Ok(())
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Setid {
    Keep,
    Strip,
    Reject,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Devices {
    Skip,
    Keep,
    Reject,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Xattrs {
    Keep,
    Skip,
}

#[derive(Args)]
pub struct FilterArgs {
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

pub(crate) fn id_filter(s: &str, what: &str) -> Result<IdFilter> {
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
    pub(crate) fn options(&self) -> Result<PackOptions> {
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
