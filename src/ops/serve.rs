//! `ware serve` as an operation: it runs where the store is open (in its daemon when one
//! runs) and serves until the client that asked goes away.

use std::io::Write;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{Cx, Op};
use crate::api::LocalStore;

/// Serve the store over HTTP, read-only, on `listen`, until the descriptor that came with the
/// request (a pipe's write end) has no reader. The first line written to it is
/// `listening on ADDR`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Serve {
    /// The address to listen on (`127.0.0.1:PORT`; port 0: any free one).
    pub listen: String,
}

/// What a serve did.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ServeReport {
    /// The address it listened on.
    pub listened: String,
    /// Requests answered.
    pub requests: u64,
}

impl Op for Serve {
    fn run(self, s: &LocalStore, cx: &mut Cx<'_>) -> Result<ServeReport> {
        let life = cx.take_fd("serve")?;
        let listener = std::net::TcpListener::bind(&self.listen)
            .with_context(|| format!("cannot listen on {}", self.listen))?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() {
            tracing::warn!("serving the store on {addr}: reachable from other machines");
        }
        let mut told = std::fs::File::from(life.try_clone()?);
        writeln!(told, "listening on {addr}")?;
        drop(told);
        tracing::info!("serving the store on http://{addr}/");
        let requests = crate::serve::run(s.shared(), listener, life)?;
        tracing::info!("stopped serving on {addr} after {requests} requests");
        Ok(ServeReport {
            listened: addr.to_string(),
            requests,
        })
    }
}
