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
