use super::*;

/// Upload a ware to a warehouse: only what the warehouse lacks, packs first and the
/// ware's manifest last (so an interrupted push is simply run again), then the ware's
/// access profiles the warehouse lacks (also when it has the ware already).
#[derive(Args)]
pub struct Push {
    /// The ware ID or name.
    pub id: String,
    /// The warehouse URL (file:///DIR, s3://BUCKET/PREFIX, ipfs+http://HOST:PORT).
    pub url: String,
    /// A directory warehouse: make what this push creates readable by every user (0755
    /// directories, 0644 files), for a web server to serve it. Without it, a directory
    /// warehouse is private to its owner (0700/0600): it holds every byte pushed.
    #[arg(long)]
    pub shared: bool,
    /// Record the ware under NAME in the warehouse's catalog (repeatable); pushing by name
    /// (`ware push NAME URL`) records that name too. Names in a warehouse are labels for
    /// people browsing it (`ware ls URL`), not checked by anyone.
    #[arg(long = "name", value_name = "NAME")]
    pub names: Vec<String>,
}

/// Bring a whole ware from a warehouse into the store, every byte verified, with the access
/// profiles the warehouse has for it.
#[derive(Args)]
pub struct Pull {
    /// The ware ID.
    pub id: String,
    /// The warehouse URL; without it, the configured warehouses are tried in order.
    pub url: Option<String>,
}

pub(crate) fn push(cli: &Cli, a: &Push) -> Result<()> {
    let Push {
        id,
        url,
        shared,
        names,
    } = a;
    let store = open(cli, false)?;
    let ware = resolve_ware(id, &store)?;
    let mut names = names.clone();
    if id.parse::<ware_store::WareId>().is_err() {
        names.push(id.clone());
    }
    let remote = api::RemoteOptions {
        shared: *shared,
        ..remote_options(cli)?
    };
    let op = ops::Push {
        ware,
        url: url.clone(),
        remote,
        names,
    };
    let r = call_with_bar(cli, &store, "pushing", op, None)?;
    if cli.json {
        print_json(&serde_json::to_value(&r)?)?;
    } else if !cli.quiet {
        let mut profiles = profiles_note(r.profiles);
        if r.ordered_chunks > 0 {
            profiles += &format!(
                ", {} chunks laid out again in access order",
                r.ordered_chunks
            );
        }
        if let Some(e) = &r.catalog_error {
            eprintln!("warning: {url}: the push is not in the warehouse's catalog: {e}");
        }
        for n in &r.notices {
            eprintln!("warning: {url}: {n}");
        }
        if r.already_there {
            eprintln!("{url} has {ware} already{profiles}");
        } else {
            eprintln!(
                "pushed {ware} to {url}: {} of {} chunks new, {} uploaded{profiles}",
                r.new_chunks,
                r.chunks,
                human_bytes(r.uploaded_bytes)
            );
        }
    }
    Ok(())
}

pub(crate) fn pull(cli: &Cli, a: &Pull) -> Result<()> {
    let Pull { id, url } = a;
    let store = open(cli, true)?;
    let ware = resolve_ware(id, &store)?;
    let mut opts = remote_options(cli)?;
    if let Some(u) = url {
        opts.warehouses = vec![u.clone()];
    }
    let r = call_with_bar(
        cli,
        &store,
        "pulling",
        ops::Pull { ware, remote: opts },
        None,
    )?;
    if cli.json {
        print_json(&serde_json::to_value(&r)?)?;
    } else if !cli.quiet {
        eprintln!(
            "pulled {ware} from {}: {} of {} chunks fetched, {}{}",
            r.url,
            r.fetched_chunks,
            r.chunks,
            human_bytes(r.fetched_bytes),
            profiles_note(r.profiles)
        );
    }
    Ok(())
}

/// ", N profiles" when profiles moved.
fn profiles_note(n: u64) -> String {
    match n {
        0 => String::new(),
        1 => ", 1 profile".to_string(),
        n => format!(", {n} profiles"),
    }
}

/// `ware ls URL`: the wares and names a warehouse's catalog records; `URL/ID[/PATH]`: a
/// directory of a ware in it; `URL/NAME`: the root of the ware the catalog names so.
pub(crate) fn ls_url(cli: &Cli, url: &str) -> Result<()> {
    if let Some((base, at)) = split_at_id(url) {
        return store::ls_path(cli, &OsString::from(at), Some(base));
    }
    let opts = remote_options(cli)?.fetch_options();
    let wh = ware_fetchers::open(url, &opts).with_context(|| format!("warehouse {url}"))?;
    if !wh.kind().can_catalog() {
        anyhow::bail!(
            "{url}: a gateway cannot say what it holds (the node's RPC API, ipfs+http://HOST:PORT, \
             lists its pins); its wares still mount by ID"
        );
    }
    let listing = ware_fetchers::catalog::read(&*wh).with_context(|| format!("warehouse {url}"))?;
    if !listing.found {
        // An older warehouse, or one nothing was pushed to since catalogs: typed IDs still work.
        let marked = wh.exists(ware_store::bundle::MARKER_KEY).unwrap_or(false);
        if !marked {
            if let Some((base, name)) = url.trim_end_matches('/').rsplit_once('/')
                && ware_store::names::check_name(name).is_ok()
                && base.contains("://")
                && !base.ends_with('/')
                && let Some(done) = ls_named(cli, base, name)?
            {
                return Ok(done);
            }
            return Err(ware_store::Error::NotFound {
                what: "warefs warehouse",
                id: format!("{url} (no {} marker)", ware_store::bundle::MARKER_KEY),
            }
            .into());
        }
        if !cli.quiet && !cli.json {
            eprintln!(
                "{url} has no catalog (pushed to before catalogs?): its wares are reachable by \
                 ID only; `ware push ID {url}` again records one"
            );
        }
    }
    if cli.json {
        let wares: Vec<_> = listing
            .wares
            .iter()
            .map(|e| {
                if listing.pinned {
                    // What a node does not keep is null, not 0.
                    return json!({"id": e.id(), "bytes": null, "entries": null,
                        "pushed_at": null, "names": []});
                }
                json!({
                    "id": e.id(),
                    "bytes": e.bytes,
                    "entries": e.entries,
                    "pushed_at": crate::output::utc_time(e.at),
                    "names": e.names.iter().map(|n| &n.name).collect::<Vec<_>>(),
                })
            })
            .collect();
        let names: serde_json::Map<String, serde_json::Value> = listing
            .names
            .iter()
            .map(|(n, (id, at))| {
                (
                    n.clone(),
                    json!({"id": id, "pushed_at": crate::output::utc_time(*at)}),
                )
            })
            .collect();
        print_json(&json!({
            "url": url,
            "catalog": listing.found,
            "pins": listing.pinned,
            "wares": wares,
            "names": names,
        }))?;
        return Ok(());
    }
    let mut out = BufWriter::new(std::io::stdout().lock());
    if listing.pinned {
        // An IPFS node's pins: IDs only (a node keeps no sizes, dates or names).
        for e in &listing.wares {
            writeln!(out, "{}  pinned", e.id())?;
        }
        out.flush()?;
        return Ok(());
    }
    for e in &listing.wares {
        let names: Vec<&str> = e
            .names
            .iter()
            .filter(|n| {
                listing
                    .names
                    .get(&n.name)
                    .is_some_and(|(id, _)| *id == e.id())
            })
            .map(|n| n.name.as_str())
            .collect();
        writeln!(
            out,
            "{} {:>10} {:>9} entries  {}  {}",
            e.id(),
            human_bytes(e.bytes),
            e.entries,
            crate::output::utc_time(e.at),
            names.join(" ")
        )?;
    }
    out.flush()?;
    Ok(())
}

/// `URL/ID[/PATH]` split where its first path segment that is a ware ID starts.
fn split_at_id(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let mut at = scheme.len() + 3;
    for seg in rest.split('/') {
        if at > scheme.len() + 3 && seg.parse::<ware_store::WareId>().is_ok() {
            return Some((url[..at].trim_end_matches('/'), &url[at..]));
        }
        at += seg.len() + 1;
    }
    None
}

/// `ware ls URL/NAME`: the root of the ware the warehouse's catalog names `name`; `None`
/// when `base` is not a warehouse with a catalog either.
fn ls_named(cli: &Cli, base: &str, name: &str) -> Result<Option<()>> {
    let opts = remote_options(cli)?.fetch_options();
    let Ok(wh) = ware_fetchers::open(base, &opts) else {
        return Ok(None);
    };
    let listing =
        ware_fetchers::catalog::read(&*wh).with_context(|| format!("warehouse {base}"))?;
    if !listing.found {
        return Ok(None);
    }
    let Some((id, _)) = listing.names.get(name) else {
        return Err(ware_store::Error::NotFound {
            what: "name",
            id: format!("{name} in the catalog of {base}"),
        }
        .into());
    };
    store::ls_path(cli, &OsString::from(id.to_string()), Some(base)).map(Some)
}

/// `ware catalog`: a warehouse's catalog (docs/FORMAT.md, "Catalogs").
#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Write a warehouse's catalog anew from what it lists (a directory or S3 warehouse): the
    /// catalog's own pages and pushes that still decode (with their names), and every ware
    /// whose manifest is there (found that way: no name, pushed now). For a catalog that was
    /// lost or damaged.
    Rebuild {
        /// The warehouse URL (file:///DIR, s3://BUCKET/PREFIX).
        url: String,
    },
}

pub(crate) fn catalog(cli: &Cli, cmd: &CatalogCommand) -> Result<()> {
    match cmd {
        CatalogCommand::Rebuild { url } => {
            let opts = remote_options(cli)?.fetch_options();
            let wh = ware_fetchers::open(url, &opts).with_context(|| format!("warehouse {url}"))?;
            let r = ware_fetchers::catalog::rebuild(&*wh, ware_fetchers::catalog::now())
                .with_context(|| format!("rebuilding the catalog of {url}"))?;
            if cli.json {
                print_json(&serde_json::to_value(&r)?)?;
            } else if !cli.quiet {
                eprintln!(
                    "rebuilt the catalog of {url}: {} wares ({} found by their manifest alone){}",
                    r.wares,
                    r.from_manifests,
                    match r.refused {
                        0 => String::new(),
                        n => format!("; {n} damaged catalog objects passed over"),
                    }
                );
            }
        }
    }
    Ok(())
}
