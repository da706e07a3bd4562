//! warefs as a library: the store interface and its two implementations (in process, and
//! through the store's daemon), the daemon, the wire protocol between them, formulas and
//! runs, and the command line (`cli`), which `src/main.rs` only parses and calls. Tests of the
//! protocol, the client and the daemon use it in process.
#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod daemon;
pub mod exit;
pub mod formula;
pub mod oci;
pub mod ops;
pub mod output;
pub mod profile;
pub mod progress;
pub mod proto;
pub mod record;
pub mod run;
pub mod serve;
