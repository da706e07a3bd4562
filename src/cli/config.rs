use super::*;

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print the value of a setting in effect (the file's, else the default).
    Get {
        /// The key, such as `cache.chunk_bytes`.
        key: String,
    },
    /// Set a setting (checked: an unknown key or a bad value is refused, exit 2).
    Set {
        /// The key.
        key: String,
        /// The value.
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
    /// Remove a setting from the file: its default applies again.
    Unset {
        /// The key.
        key: String,
    },
    /// Every setting: key, value, whether the file sets it, default and meaning.
    Ls,
}

pub(crate) fn config(cli: &Cli, cmd: &ConfigCommand) -> Result<()> {
    match cmd {
        ConfigCommand::Get { key } => {
            crate::config::key(key)?;
            let all = open(cli, false)?.ask(ops::ConfigList {})?;
            let s = all
                .into_iter()
                .find(|s| &s.key == key)
                .context("no such setting")?;
            if cli.json {
                print_json(&serde_json::to_value(&s)?)?;
            } else {
                println!("{}", s.value);
            }
        }
        ConfigCommand::Set { key, value } => {
            open(cli, true)?.ask(ops::ConfigSet {
                key: key.clone(),
                value: Some(value.clone()),
            })?;
        }
        ConfigCommand::Unset { key } => {
            open(cli, false)?.ask(ops::ConfigSet {
                key: key.clone(),
                value: None,
            })?;
        }
        ConfigCommand::Ls => {
            let all = open(cli, false)?.ask(ops::ConfigList {})?;
            if cli.json {
                print_json(&serde_json::to_value(&all)?)?;
            } else {
                for s in all {
                    let from = if s.set { "set" } else { "default" };
                    println!(
                        "{} = {}  ({from}; default {}): {}",
                        s.key, s.value, s.default, s.help
                    );
                }
            }
        }
    }
    Ok(())
}
