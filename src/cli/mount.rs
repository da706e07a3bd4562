use super::*;

/// Mount a ware (by ID or name) read-only at MNT, or with `--all` the whole store.
///
/// Nothing is read until a program looks: the mount is ready at once, whatever the size of
/// the ware, and every byte served is checked against its hash (a damaged chunk reads as
/// EIO, never as wrong bytes). The store's daemon serves the mount and is started if none
/// runs; the command returns once the mount is live. Mounted ro,nosuid,nodev.
///
/// With `--all`, `MNT/<id>/` shows any ware of the store on first lookup (a listing of MNT
/// shows the store's wares, and those of the warehouses' catalogs) and `MNT/names/<name>` is
/// a symlink to the ware a name points at.
///
/// With a warehouse URL instead of an ID, the warehouse as a tree: `MNT/<id>/` for each ware
/// its catalog lists, `MNT/names/<name>` for each name pushed there, everything read lazily
/// and verified; the catalog is read again after --catalog-ttl, so new pushes appear.
#[derive(Args)]
#[command(
    override_usage = "ware mount [OPTIONS] ID|NAME MNT\n       ware mount [OPTIONS] URL MNT\n       ware mount [OPTIONS] --all MNT"
)]
pub struct Mount {
    /// `ID|NAME MNT`, `URL MNT` (a warehouse), or only `MNT` with `--all`. MNT is an existing
    /// directory.
    #[arg(required = true, num_args = 1..=2, value_name = "ID|NAME|URL MNT")]
    pub args: Vec<OsString>,
    /// A warehouse mount: seconds its catalog's listing is shown before it is read again.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub catalog_ttl: u64,
    /// Mount the whole store: every ware as MNT/<id>, every name as MNT/names/<name>.
    #[arg(long)]
    pub all: bool,
    /// Let other users and other namespaces read the mount (permissions are then checked
    /// by the kernel against each entry's mode and owner: a 0600 file stays private).
    #[arg(long)]
    pub allow_other: bool,
    /// Stay attached: the mount lasts until this command ends (Ctrl-C unmounts).
    #[arg(long)]
    pub foreground: bool,
    /// Mount over a directory that is not empty (its contents are hidden while mounted).
    /// Without it such a mountpoint is refused, as fusermount does.
    #[arg(long)]
    pub nonempty: bool,
    /// A remote ware: after its access profile, fetch the rest of it in the background (one
    /// request at a time, never while a read is fetching, at most --fill-rate), until it is
    /// whole in the store or unmounted.
    #[arg(long)]
    pub fill: bool,
    /// The background fill's cap, in bytes per second, with K, M or G (1024-based) [default:
    /// the store's fill.rate, 100M].
    #[arg(
        long,
        value_name = "BYTES/s",
        requires = "fill",
        value_parser = parse_rate,
        allow_hyphen_values = true
    )]
    pub fill_rate: Option<u64>,
}

/// A rate in bytes per second: a whole number with an optional K, M or G (1024-based).
pub(crate) fn parse_rate(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(format!("{text:?}: the suffix is K, M or G")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let n: i128 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number of bytes per second"))?;
    if n <= 0 {
        return Err(format!("{text:?}: a rate must be above 0"));
    }
    u64::try_from(n)
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Unmount a ware mount (also one whose daemon died).
///
/// A mount in use (an open file, a shell's working directory) is left in place with an
/// error, after waiting up to 2 s for a passing user; `--lazy` detaches it at once and it
/// ends when its last user lets go.
#[derive(Args)]
pub struct Umount {
    /// The mountpoint.
    pub mountpoint: PathBuf,
    /// Detach even when busy.
    #[arg(long)]
    pub lazy: bool,
}

pub(crate) fn mount(cli: &Cli, a: &Mount) -> Result<()> {
    let Mount {
        args,
        all,
        allow_other,
        foreground,
        nonempty,
        fill,
        fill_rate,
        catalog_ttl,
    } = a;
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
    let mut remote = remote_options(cli)?;
    let what = match id {
        Some(url) if url.contains("://") => {
            remote.warehouses.retain(|w| w != url);
            remote.warehouses.insert(0, url.to_string());
            MountWhat::Warehouse {
                url: url.to_string(),
                catalog_ttl_s: *catalog_ttl,
            }
        }
        Some(id) => match id.parse::<ware_fetchers::Cid>() {
            Ok(cid) if ware_fetchers::unixfs::is_unixfs_cid(&cid) => {
                MountWhat::Unixfs(id.to_string())
            }
            _ => MountWhat::Ware(resolve_ware(id, &StoreClient::Remote(daemon.clone()))?),
        },
        None => MountWhat::All,
    };
    let quiet = cli.quiet;
    let fill = match (fill, fill_rate) {
        (false, _) => None,
        (true, Some(r)) => Some(*r),
        (true, None) => Some(
            crate::config::Config::load(&client::canonical_store(&store_dir(cli)))?.get("fill.rate")
                as u64,
        ),
    };
    let op = ops::Mount {
        remote,
        what,
        mountpoint: mnt.clone(),
        allow_other: *allow_other,
        foreground: *foreground,
        fill,
    };
    let info = daemon.call_until_ready(op, &mut Cx::plain(), &mut || {
        if !quiet {
            eprintln!("ware: mounted on {}; Ctrl-C unmounts", mnt.display());
        }
    })?;
    if cli.json {
        print_json(&serde_json::to_value(&info)?)?;
    }
    Ok(())
}

pub(crate) fn umount(cli: &Cli, a: &Umount) -> Result<()> {
    let Umount { mountpoint, lazy } = a;
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
    let by_daemon = client::running_daemon(&store_dir(cli)).map(|d| {
        d.ask(ops::Umount {
            mountpoint: mnt.clone(),
            lazy: *lazy,
        })
    });
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
    Ok(())
}
