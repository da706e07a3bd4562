//! The crate's one error type.

use std::io;
use std::path::PathBuf;

/// Why a job could not be run. A job that ran and failed is not an error: its status is in
/// [`crate::Outcome`].
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The job description itself is unusable (relative path, NUL byte, bind onto `/`, …).
    #[error("invalid job: {0}")]
    InvalidJob(String),
    /// A host-side step (preparing the work directory, pipes, spawning) failed.
    #[error("{step}{}: {source}", at(path))]
    Host {
        /// What was being done.
        step: &'static str,
        /// The host path involved (may be empty).
        path: PathBuf,
        /// The system error.
        source: io::Error,
    },
    /// A step of the sandbox setup failed inside the new namespaces, before the job started.
    #[error("sandbox setup: {step}{}: {source}", at(path))]
    Setup {
        /// Which step (e.g. "mount overlay", "resolve bind target").
        step: &'static str,
        /// The path the step was about: a host path for sources, a path inside the job for
        /// targets.
        path: PathBuf,
        /// The system error.
        source: io::Error,
    },
    /// The program could not be executed (not found in the job's PATH, not executable, …).
    #[error("cannot execute {} in the job: {source}", program.display())]
    Exec {
        /// argv[0] as given.
        program: PathBuf,
        /// The execve error (of the last candidate tried).
        source: io::Error,
    },
    /// The job's init process ended without reporting the job's status.
    #[error("the job's init process died unexpectedly ({0})")]
    InitDied(String),
    /// The host cannot give this executor what it needs (and proceeding would be unsafe).
    #[error("cannot run a job here: {0}")]
    Unsupported(String),
    /// The OCI runtime could not be found or failed before the job started.
    #[error("OCI runtime: {0}")]
    Runtime(String),
}

/// " PATH", or nothing for a step about no path.
fn at(path: &std::path::Path) -> String {
    if path.as_os_str().is_empty() {
        String::new()
    } else {
        format!(" {}", path.display())
    }
}

impl ExecError {
    pub(crate) fn host(step: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        ExecError::Host {
            step,
            path: path.into(),
            source,
        }
    }
}
