use super::*;

#[derive(Subcommand)]
pub enum NameCommand {
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

pub(crate) fn name_command(cli: &Cli, cmd: &NameCommand) -> Result<()> {
    let store = open(cli, false)?;
    match cmd {
        NameCommand::Set { name, id } => {
            let id = resolve_ware(id, &store)?;
            let prev = store.ask(ops::NameSet {
                name: name.clone(),
                id: Some(id),
            })?;
            if cli.json {
                print_json(&json!({"name": name, "id": id, "previous": prev}))?;
            }
        }
        NameCommand::Get { name } => {
            let id = store
                .ask(ops::NameGet { name: name.clone() })?
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
            let names = store.ask(ops::Names {})?;
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
            let log = store.ask(ops::NameLog { name: name.clone() })?;
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
            if store
                .ask(ops::NameSet {
                    name: name.clone(),
                    id: None,
                })?
                .is_none()
            {
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
