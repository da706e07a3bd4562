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
