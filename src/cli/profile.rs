use super::*;

#[derive(Subcommand)]
pub enum ProfileCommand {
    /// Every access profile: key, blocks (nodes and chunks), recordings, CID.
    Ls,
    /// One profile and its blocks in first-read order (with how many recent recordings missed
    /// each), by key (`ware:<id>`, `run:<formula id>:<path>`) or by its CID.
    Show {
        /// `ware:<id>`, `run:<formula id>:<path>`, or the profile's CID.
        which: String,
    },
    /// Forget a profile: the next mount or run of the ware goes without it and learns it again.
    Rm {
        /// `ware:<id>` or `run:<formula id>:<path>`.
        key: String,
    },
}

fn line(p: &ops::ProfileInfo) -> String {
    match &p.error {
        Some(e) => format!("{}  unreadable: {}", output::safe(p.key.as_bytes()), e),
        None => format!(
            "{}  {} nodes, {} chunks, {} recordings, {}  {}",
            output::safe(p.key.as_bytes()),
            p.nodes,
            p.chunks,
            p.runs,
            output::human_bytes(p.bytes as u64),
            p.id
        ),
    }
}

pub(crate) fn profile(cli: &Cli, cmd: &ProfileCommand) -> Result<()> {
    match cmd {
        ProfileCommand::Ls => {
            let all = open(cli, false)?.ask(ops::ProfileList {})?;
            if cli.json {
                print_json(&serde_json::to_value(&all)?)?;
            } else {
                for p in &all {
                    println!("{}", line(p));
                }
            }
        }
        ProfileCommand::Show { which } => {
            let p = open(cli, false)?.ask(ops::ProfileShow {
                which: which.clone(),
            })?;
            if cli.json {
                print_json(&serde_json::to_value(&p)?)?;
            } else {
                println!("{}", line(&p));
                for (cid, missed) in p.blocks.iter().flatten() {
                    match missed {
                        0 => println!("{cid}"),
                        n => println!("{cid}  (not read by the last {n})"),
                    }
                }
            }
        }
        ProfileCommand::Rm { key } => {
            open(cli, false)?.ask(ops::ProfileRemove { key: key.clone() })?;
        }
    }
    Ok(())
}

/// Fetch a ware's access profile into the store from its warehouse, as a mount would at its
/// start, without mounting it: the chunks a job will read first are then local.
///
/// The ware's metadata (its directory tree) and its profiles come first, then the profile's
/// chunks, `prefetch.concurrency` requests at a time. Exit 3: the ware is in no warehouse, or
/// it has no such profile.
#[derive(Args)]
pub struct Prefetch {
    /// The ware ID or name.
    pub id: String,
    /// The profile to fetch by: `ware:<id>` (the default) or `run:<formula id>:<path>`.
    #[arg(long, value_name = "KEY")]
    pub profile: Option<String>,
}

pub(crate) fn prefetch(cli: &Cli, a: &Prefetch) -> Result<()> {
    let store = open(cli, true)?;
    let ware = resolve_ware(&a.id, &store)?;
    let op = ops::Prefetch {
        ware,
        profile: a.profile.clone(),
        remote: remote_options(cli)?,
    };
    let r = call_with_bar(cli, &store, "prefetching", op, None)?;
    if cli.json {
        print_json(&serde_json::to_value(&r)?)?;
    } else if !cli.quiet {
        eprintln!(
            "prefetched {ware}: {} of {} chunks fetched in {} requests, {}{}{}",
            r.chunks - r.cached,
            r.chunks,
            r.requests,
            output::human_bytes(r.bytes),
            match r.failed {
                0 => String::new(),
                n => format!(", {n} requests failed (left to the reads)"),
            },
            match r.skipped {
                0 => String::new(),
                n => format!(", {n} blocks not the ware's skipped"),
            }
        );
    }
    Ok(())
}
