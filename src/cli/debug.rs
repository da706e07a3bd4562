use super::*;

#[derive(Subcommand)]
pub enum DebugCommand {
    /// Flip a bit in the first chunk of a file (or in a directory's node) in the store.
    Damage {
        /// `ID/PATH`.
        at: OsString,
    },
}

pub(crate) fn debug(cli: &Cli, cmd: &DebugCommand) -> Result<()> {
    match cmd {
        DebugCommand::Damage { at } => {
            let store = open(cli, false)?;
            let at = WarePath::parse(at, &store)?;
            let what = store.ask(ops::Damage { at })?;
            println!("damaged {what}");
        }
    }
    Ok(())
}
