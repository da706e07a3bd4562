//! Exit codes: what an error means to a script (`ware --help` lists them).

use std::fmt;

/// The exit codes, as `ware --help` shows them.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure (bad input, I/O error, …; the message names the ID, path or entry)
  2  usage error
  3  not found (no such ware, name or path, or no such mount)
  4  corruption (fsck found damage, or a read hit bytes that do not match their hash)
  5  the store is in use by another process, or its daemon is another build of ware
     (stop it: `ware daemon stop`)
`ware run` exits with its job's exit code (128+N after signal N, 124 after its time limit),
2 when the formula or a flag is refused (before anything runs), or 125 when ware itself failed.";

/// An error whose message has already been printed; only its exit code is left.
#[derive(Debug)]
pub struct Exit(pub u8);

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit {}", self.0)
    }
}
impl std::error::Error for Exit {}

/// An error reported by the daemon, with the exit code it means there.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: u8,
    /// The message.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
impl std::error::Error for Failure {}

/// The exit code an error means (see [`EXIT_CODES`]).
pub fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(Exit(c)) = cause.downcast_ref::<Exit>() {
            return *c;
        }
        if let Some(f) = cause.downcast_ref::<Failure>() {
            return f.code;
        }
        match cause.downcast_ref::<ware_store::Error>() {
            Some(se) if se.is_usage() => return 2,
            Some(se) if se.is_not_found() => return 3,
            Some(se) if se.is_corruption() => return 4,
            Some(ware_store::Error::Busy { .. }) => return 5,
            _ => {}
        }
        if cause
            .downcast_ref::<ware_fetchers::Error>()
            .is_some_and(|fe| fe.is_corruption())
        {
            return 4;
        }
        // A path that does not exist (a mountpoint, the parent of an unpack target, a file to
        // pack) is "not found" too.
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
        {
            return 3;
        }
    }
    1
}

/// An error's message with its causes, each said once: a cause whose text an outer one already
/// holds (an I/O error wrapped with its path) is not repeated.
pub fn message(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}
