//! The wire protocol between `ware` commands and the per-store daemon (docs/ARCHITECTURE.md,
//! "The daemon").
//!
//! A connection carries one request and its replies. The request is one frame: a 4-byte
//! big-endian length and a JSON object `{"wire": WIRE, "req": REQUEST}` (the requests are
//! `crate::ops::Request`); a file descriptor may travel with its first byte
//! (SCM_RIGHTS): the tar stream to pack, or the file `cat` writes to. Replies are JSON lines:
//! any number of progress or [`Reply::Ready`] lines, then one [`Reply::Ok`] or [`Reply::Err`].
//! Nothing else is ever read from or written to the socket.

use std::io::{BufRead, IoSlice, IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use anyhow::{Context, Result, bail};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Largest request frame accepted (requests are small: paths, IDs, options).
const MAX_REQUEST: u32 = 1 << 20;

/// The protocol's identity: the crate version and a hash of the files that define the wire
/// (`src/ops/`, this file), made by `build.rs`. A daemon and a client of different builds
/// whose wire differs refuse to talk (the client is told to stop the old daemon) instead of
/// misreading each other.
pub const WIRE: &str = concat!(env!("CARGO_PKG_VERSION"), "+", env!("WARE_WIRE"));

/// A request frame: the protocol identity, then the request.
#[derive(Serialize)]
struct Frame<'a, T> {
    wire: &'a str,
    req: &'a T,
}

/// A request frame as received: the request is read only when the identity matches.
#[derive(Deserialize)]
struct Received {
    /// Absent in frames of builds from before the handshake.
    #[serde(default)]
    wire: String,
    #[serde(default)]
    req: serde_json::Value,
}

/// A client of another build (another wire) asked; its request was not read.
#[derive(Debug)]
pub struct OtherWire {
    /// The client's protocol identity.
    pub theirs: String,
}

impl std::fmt::Display for OtherWire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a client of another build of ware asked (protocol {}; this daemon speaks {WIRE})",
            self.theirs
        )
    }
}

impl std::error::Error for OtherWire {}

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
pub fn send_request<T: Serialize>(
    sock: &UnixStream,
    req: &T,
    fd: Option<BorrowedFd<'_>>,
) -> Result<()> {
    let body = serde_json::to_vec(&Frame { wire: WIRE, req })?;
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
/// client closed the connection without sending anything (a probe: is the daemon there?). A
/// frame of another protocol fails with [`OtherWire`].
pub fn recv_request<T: DeserializeOwned>(
    sock: &UnixStream,
) -> Result<Option<(T, Option<OwnedFd>)>> {
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
    let frame: Received = serde_json::from_slice(&body).context("malformed request")?;
    if frame.wire != WIRE {
        let theirs = if frame.wire.is_empty() {
            "none: an older build".to_string()
        } else {
            frame.wire
        };
        return Err(OtherWire { theirs }.into());
    }
    let req = serde_json::from_value(frame.req).context("malformed request")?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{NameGet, Request};

    fn raw_frame(sock: &UnixStream, body: &[u8], claimed: u32) {
        let mut s = sock;
        s.write_all(&claimed.to_be_bytes()).unwrap();
        s.write_all(body).unwrap();
    }

    #[test]
    fn a_request_and_its_descriptor_arrive_whole() {
        let (a, b) = UnixStream::pair().unwrap();
        let file = tempfile::tempfile().unwrap();
        let req: Request = NameGet {
            name: "base".into(),
        }
        .into();
        send_request(&a, &req, Some(file.as_fd())).unwrap();
        let (got, fd) = recv_request::<Request>(&b).unwrap().unwrap();
        assert!(matches!(got, Request::NameGet(n) if n.name == "base"));
        assert!(fd.is_some(), "the descriptor did not come with the request");
        drop(a);
        assert!(
            recv_request::<Request>(&b).unwrap().is_none(),
            "a closed probe is no request"
        );
    }

    #[test]
    fn truncated_oversized_and_malformed_frames_are_refused() {
        // Cut short: the header promises more than comes before the client hangs up.
        let (a, b) = UnixStream::pair().unwrap();
        raw_frame(&a, b"{\"wire\":", 100);
        drop(a);
        let e = recv_request::<Request>(&b).unwrap_err();
        assert!(format!("{e:#}").contains("reading the request"), "{e:#}");

        let (a, b) = UnixStream::pair().unwrap();
        raw_frame(&a, b"", MAX_REQUEST + 1);
        let e = recv_request::<Request>(&b).unwrap_err();
        assert!(e.to_string().contains("refused"), "{e:#}");

        let (a, b) = UnixStream::pair().unwrap();
        let body = br#"{"wire": "x", "req": {"#;
        raw_frame(&a, body, body.len() as u32);
        let e = recv_request::<Request>(&b).unwrap_err();
        assert!(e.to_string().contains("malformed"), "{e:#}");
    }

    #[test]
    fn a_client_of_another_build_is_told_apart_before_its_request_is_read() {
        let (a, b) = UnixStream::pair().unwrap();
        // Another build's request may not even parse as one of ours.
        let body = br#"{"wire": "0.0.1+0000000000000000", "req": {"op": "frobnicate"}}"#;
        raw_frame(&a, body, body.len() as u32);
        let e = recv_request::<Request>(&b).unwrap_err();
        let other = e.downcast_ref::<OtherWire>().expect("an OtherWire error");
        assert_eq!(other.theirs, "0.0.1+0000000000000000");
        assert!(e.to_string().contains(WIRE), "{e}");
    }

    #[test]
    fn replies_round_trip_and_end_cleanly() {
        let (a, b) = UnixStream::pair().unwrap();
        send_reply(&a, &Reply::Total { bytes: 9 }).unwrap();
        send_reply(
            &a,
            &Reply::Err {
                code: 3,
                message: "x not found".into(),
            },
        )
        .unwrap();
        drop(a);
        let mut input = std::io::BufReader::new(&b);
        assert!(matches!(
            recv_reply(&mut input).unwrap(),
            Some(Reply::Total { bytes: 9 })
        ));
        assert!(matches!(
            recv_reply(&mut input).unwrap(),
            Some(Reply::Err { code: 3, .. })
        ));
        assert!(recv_reply(&mut input).unwrap().is_none());
    }
}
