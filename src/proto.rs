//! The wire protocol between `ware` commands and the per-store daemon (docs/ARCHITECTURE.md,
//! "The daemon").
//!
//! A connection carries one request and its replies. The request is one frame: a 4-byte
//! big-endian length and a JSON [`Request`]; a file descriptor may travel with its first byte
//! (SCM_RIGHTS): the tar stream to pack, or the file `cat` writes to. Replies are JSON lines:
//! any number of progress or [`Reply::Ready`] lines, then one [`Reply::Ok`] or [`Reply::Err`].
//! Nothing else is ever read from or written to the socket.

use std::io::{BufRead, IoSlice, IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use serde::{Deserialize, Serialize};
use ware_store::WareId;
use ware_store::pack::PackOptions;

use crate::api::{RemoteOptions, WarePath};

/// Largest request frame accepted (requests are small: paths, IDs, options).
const MAX_REQUEST: u32 = 1 << 20;

/// What a mount shows.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MountWhat {
    /// One ware.
    Ware(WareId),
    /// The whole store (`ware mount --all`).
    All,
    /// An IPFS UnixFS directory, by its CID (`Qm…`, `bafy…`), read from the IPFS warehouses.
    Unixfs(String),
}

/// A live mount of the daemon.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MountInfo {
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    /// What it shows.
    pub what: MountWhat,
    /// Mounted with allow_other (and default_permissions).
    pub allow_other: bool,
    /// Kept alive by a `ware mount --foreground` that is still attached.
    pub foreground: bool,
    /// Inodes the mount holds now (filled in by `ware daemon status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inodes: Option<u64>,
}

/// One request to the daemon.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Is the daemon there?
    Ping,
    /// Pack a directory (`dir`), or the tar stream whose descriptor comes with the request.
    Pack {
        /// An absolute directory path; `None` for the passed descriptor.
        dir: Option<PathBuf>,
        /// Filters.
        opts: PackOptions,
    },
    /// Unpack a ware into an absolute directory path.
    Unpack {
        /// The ware.
        ware: WareId,
        /// Absolute target directory.
        target: PathBuf,
    },
    /// [`crate::api::StoreApi::stat`].
    Stat {
        /// Where.
        at: WarePath,
        /// Warehouses for what the store lacks.
        #[serde(default)]
        remote: RemoteOptions,
    },
    /// [`crate::api::StoreApi::list`].
    List {
        /// Where.
        at: WarePath,
        /// Warehouses for what the store lacks.
        #[serde(default)]
        remote: RemoteOptions,
    },
    /// Write a file to the descriptor that comes with the request.
    Cat {
        /// Which file.
        at: WarePath,
        /// Warehouses for what the store lacks.
        #[serde(default)]
        remote: RemoteOptions,
    },
    /// Complete wares.
    Wares,
    /// Check the whole store.
    Fsck,
    /// Counts and sizes.
    Stats,
    /// Testing aid: damage a chunk or node.
    Damage {
        /// Where.
        at: WarePath,
    },
    /// Point a name at a ware, or remove it.
    NameSet {
        /// The name.
        name: String,
        /// The ware; `None` removes the name.
        id: Option<WareId>,
    },
    /// What a name points at.
    NameGet {
        /// The name.
        name: String,
    },
    /// Every name.
    Names,
    /// A name's history.
    NameLog {
        /// The name.
        name: String,
    },
    /// Upload a ware to a warehouse.
    Push {
        /// The ware.
        ware: WareId,
        /// The warehouse.
        url: String,
        /// Deadlines.
        remote: RemoteOptions,
    },
    /// Bring a whole ware from a warehouse.
    Pull {
        /// The ware.
        ware: WareId,
        /// Warehouses and deadlines.
        remote: RemoteOptions,
    },
    /// Mount a ware or the whole store.
    Mount {
        /// Warehouses to fetch what the store lacks from, and the read deadline.
        remote: RemoteOptions,
        /// What to show.
        what: MountWhat,
        /// Absolute mountpoint.
        mountpoint: PathBuf,
        /// Let other users (and other namespaces) read it.
        allow_other: bool,
        /// Keep the mount only while this connection stays open.
        foreground: bool,
    },
    /// Unmount a mount.
    Umount {
        /// Absolute mountpoint.
        mountpoint: PathBuf,
        /// Detach it even when busy (it ends when its last user lets go).
        lazy: bool,
    },
    /// The daemon's live mounts.
    Mounts,
    /// Keep a run record.
    AddRun {
        /// When the run started, in ms since the epoch.
        started_ms: u64,
        /// The record.
        record: serde_json::Value,
    },
    /// Every run record.
    Runs,
    /// Unmount everything and exit.
    Shutdown,
}

/// One reply line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Reply {
    /// Progress: the total number of bytes, once known.
    Total {
        /// Bytes.
        bytes: u64,
    },
    /// Progress: more bytes were processed.
    Advance {
        /// Bytes.
        bytes: u64,
    },
    /// A foreground mount is live (the final reply comes when it ends).
    Ready,
    /// The request succeeded; `value` is the result.
    Ok {
        /// The result, as JSON.
        value: serde_json::Value,
    },
    /// The request failed.
    Err {
        /// The exit code the failure means (see `ware --help`).
        code: u8,
        /// The message, naming the ID, path or entry at fault.
        message: String,
    },
}

/// Sends a request frame, with an optional descriptor.
pub fn send_request(sock: &UnixStream, req: &Request, fd: Option<BorrowedFd<'_>>) -> Result<()> {
    let body = serde_json::to_vec(req)?;
    let len = u32::try_from(body.len()).context("request too large")?;
    let head = len.to_be_bytes();
    let fds: Vec<BorrowedFd<'_>> = fd.into_iter().collect();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        bail!("cannot attach a descriptor to the request");
    }
    // The descriptor rides on the first byte; the rest follows as a plain stream.
    let mut sent = rustix::net::sendmsg(
        sock.as_fd(),
        &[IoSlice::new(&head), IoSlice::new(&body)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    let all = [&head[..], &body[..]].concat();
    while sent < all.len() {
        sent += rustix::net::send(sock.as_fd(), &all[sent..], SendFlags::NOSIGNAL)?;
    }
    Ok(())
}

/// Receives a request frame and the descriptor that came with it, if any; `None` when the
/// client closed the connection without sending anything (a probe: is the daemon there?).
pub fn recv_request(sock: &UnixStream) -> Result<Option<(Request, Option<OwnedFd>)>> {
    let mut head = [0u8; 4];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut got = 0;
    let mut fd = None;
    while got < head.len() {
        let msg = rustix::net::recvmsg(
            sock.as_fd(),
            &mut [IoSliceMut::new(&mut head[got..])],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )?;
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = m {
                for f in fds {
                    // Only the first descriptor is used; any extra ones are closed here.
                    if fd.is_none() {
                        fd = Some(f);
                    }
                }
            }
        }
        if msg.bytes == 0 {
            if got == 0 {
                return Ok(None);
            }
            bail!("client closed the connection in the middle of a request");
        }
        got += msg.bytes;
    }
    let len = u32::from_be_bytes(head);
    if len > MAX_REQUEST {
        bail!("request of {len} bytes refused");
    }
    let mut body = vec![0u8; len as usize];
    std::io::Read::read_exact(&mut &*sock, &mut body).context("reading the request")?;
    let req = serde_json::from_slice(&body).context("malformed request")?;
    Ok(Some((req, fd)))
}

/// Writes one reply line.
pub fn send_reply(mut out: &UnixStream, reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply)?;
    line.push(b'\n');
    out.write_all(&line)
}

/// Reads one reply line; `None` at the end of the stream.
pub fn recv_reply(input: &mut impl BufRead) -> Result<Option<Reply>> {
    let mut line = String::new();
    if input.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(
        serde_json::from_str(&line).context("malformed reply from the daemon")?,
    ))
}
