//! `ware serve`: a read-only HTTP server over a store, for people: `/` lists wares and names,
//! `/<id>/PATH/` a directory (`/<name>/…` too), a file downloads with Range support and a
//! content type from its name, `?format=tar` streams a directory as a tar. Server-rendered
//! HTML, no JavaScript. Nothing writes; every path segment is checked (no `.`, `..`, `/` or
//! NUL once decoded) and resolved inside the ware without following symlinks, so nothing but
//! the store's own bytes is ever served. It runs where the store is open (in its daemon when
//! one runs) until the client that asked for it goes away. The same server speaks the
//! warehouse protocol (`warehouse.rs`), so another machine mounts a ware straight from it.

mod html;
mod tar;
mod warehouse;

use std::convert::Infallible;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{Method, Request, Response, StatusCode};
use ware_store::db::Store;
use ware_store::node::{Entry, Kind};
use ware_store::{BlockSource, Reader, WareId};

/// A response body: whole, or streamed from a blocking producer.
type Body = BoxBody<Bytes, std::io::Error>;

/// Bytes a streamed body holds in its channel before the producer waits for the client.
const STREAM_FRAMES: usize = 8;

/// What every request sees: the store, and the wares laid out as a warehouse.
struct State {
    store: Arc<Store>,
    layouts: warehouse::Layouts,
}

/// Serves `store` on `listener` until `life` (the write end of a pipe whose read end the
/// client holds) reports its reader gone; returns the requests answered.
pub fn run(store: Arc<Store>, listener: std::net::TcpListener, life: OwnedFd) -> Result<u64> {
    let state = Arc::new(State {
        store,
        layouts: warehouse::Layouts::default(),
    });
    let served = Arc::new(AtomicU64::new(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("ware-serve")
        .enable_io()
        .enable_time()
        .build()
        .context("starting the server's runtime")?;
    listener.set_nonblocking(true)?;
    let count = served.clone();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let mut gone = tokio::task::spawn_blocking(move || wait_gone(&life));
        loop {
            tokio::select! {
                _ = &mut gone => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let (state, count) = (state.clone(), count.clone());
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req| {
                            count.fetch_add(1, Ordering::Relaxed);
                            handle(state.clone(), req)
                        });
                        let io = hyper_util::rt::TokioIo::new(stream);
                        if let Err(e) = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, svc)
                            .await
                        {
                            tracing::debug!("serve: a connection ended: {e}");
                        }
                    });
                }
            }
        }
        anyhow::Ok(())
    })?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(served.load(Ordering::Relaxed))
}

/// Returns once the pipe's reader is gone (POLLERR/POLLHUP on its write end).
fn wait_gone(life: &OwnedFd) {
    use rustix::event::{PollFd, PollFlags, poll};
    let fd = life.as_fd();
    loop {
        let mut fds = [PollFd::new(&fd, PollFlags::empty())];
        let t = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 200_000_000,
        };
        match poll(&mut fds, Some(&t)) {
            Ok(_)
                if fds[0]
                    .revents()
                    .intersects(PollFlags::ERR | PollFlags::HUP | PollFlags::NVAL) =>
            {
                return;
            }
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => return,
        }
    }
}

fn whole(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(
        Full::new(body.into())
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        content_type.parse().expect("a valid header value"),
    );
    r
}

fn error(status: StatusCode, why: &str) -> Response<Body> {
    whole(status, "text/html; charset=utf-8", html::error(status, why))
}

/// A body fed by `produce` on a blocking thread through a [`ChannelWriter`].
fn streamed(
    produce: impl FnOnce(&mut ChannelWriter) -> std::io::Result<()> + Send + 'static,
) -> Body {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Frame<Bytes>>>(STREAM_FRAMES);
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter { tx };
        if let Err(e) = produce(&mut w) {
            // The client went away, or the store failed mid-way: the body ends with an error.
            let _ = w.tx.blocking_send(Err(e));
        }
    });
    StreamBody::new(futures::stream::poll_fn(move |cx| rx.poll_recv(cx))).boxed()
}

/// Writes become body frames; a write fails once the client is gone.
pub(crate) struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Frame<Bytes>>>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(Frame::data(Bytes::copy_from_slice(buf))))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What a request names: a ware (by ID or name) and the path's segments inside it.
struct Target {
    ware: WareId,
    /// How the request named it (ID or name), for links.
    named: String,
    segments: Vec<Vec<u8>>,
    trailing_slash: bool,
}

/// Splits and checks a request path. `Err` is the status to answer, and why.
fn target(
    store: &Store,
    path: &str,
) -> std::result::Result<Option<Target>, (StatusCode, &'static str)> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    if rest.is_empty() {
        return Ok(None);
    }
    let trailing_slash = rest.ends_with('/');
    let mut parts = rest.trim_end_matches('/').split('/');
    let first = parts.next().unwrap_or_default();
    let mut segments = Vec::new();
    for raw in parts {
        let seg: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
        if seg.is_empty() || seg == b"." || seg == b".." || seg.contains(&b'/') || seg.contains(&0)
        {
            return Err((StatusCode::BAD_REQUEST, "that path is not inside a ware"));
        }
        segments.push(seg);
    }
    let first: String = percent_encoding::percent_decode_str(first)
        .decode_utf8()
        .map_err(|_| (StatusCode::NOT_FOUND, "no such ware or name"))?
        .into_owned();
    let ware = match first.parse::<WareId>() {
        Ok(id) => id,
        Err(_) => match ware_store::names::check_name(&first)
            .ok()
            .and_then(|()| store.name(&first).ok().flatten())
        {
            Some(id) => id,
            None => return Err((StatusCode::NOT_FOUND, "no such ware or name")),
        },
    };
    match store.ware(&ware) {
        Ok(Some(_)) => {}
        _ => {
            return Err((
                StatusCode::NOT_FOUND,
                "this store does not hold that ware whole",
            ));
        }
    }
    Ok(Some(Target {
        ware,
        named: first,
        segments,
        trailing_slash,
    }))
}

async fn handle(
    state: Arc<State>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, Infallible> {
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "this server only reads");
        r.headers_mut()
            .insert("allow", "GET, HEAD".parse().expect("valid"));
        return Ok(r);
    }
    let path = req.uri().path().to_string();
    let tar = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "format=tar"));
    let range = req
        .headers()
        .get("range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let answered =
        tokio::task::spawn_blocking(move || respond(&state, &path, tar, range.as_deref()))
            .await
            .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "the request failed"));
    Ok(if head {
        let (parts, _) = answered.into_parts();
        Response::from_parts(
            parts,
            Full::new(Bytes::new())
                .map_err(|n: Infallible| match n {})
                .boxed(),
        )
    } else {
        answered
    })
}

fn respond(state: &State, path: &str, tar: bool, range: Option<&str>) -> Response<Body> {
    let store = &state.store;
    let key = path.strip_prefix('/').unwrap_or(path);
    if warehouse::RESERVED.contains(&key.split('/').next().unwrap_or_default()) {
        return protocol(state, key, range);
    }
    let t = match target(store, path) {
        Ok(Some(t)) => t,
        Ok(None) => return index(store),
        Err((status, why)) => return error(status, why),
    };
    let reader = Reader::new(&**store as &dyn BlockSource);
    let joined = t.segments.join(&b'/');
    let entry = match reader.resolve(&t.ware, &joined) {
        Ok(e) => e,
        Err(ware_store::Error::NoSuchPath { .. } | ware_store::Error::NotADirectory { .. }) => {
            return error(StatusCode::NOT_FOUND, "no such entry in the ware");
        }
        Err(e) => {
            tracing::warn!("serve {path}: {e}");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the store could not read it",
            );
        }
    };
    match entry.kind {
        Kind::Dir if !t.trailing_slash => {
            let mut r = error(StatusCode::MOVED_PERMANENTLY, "a directory");
            let to = format!("{}/", path.trim_end_matches('/'));
            r.headers_mut()
                .insert("location", to.parse().expect("a path from a request"));
            r
        }
        Kind::Dir if tar => {
            let store = store.clone();
            let name = t
                .segments
                .last()
                .map(|s| String::from_utf8_lossy(s).into_owned());
            let file = format!("{}.tar", name.unwrap_or_else(|| t.named.clone()));
            let mut r = Response::new(streamed(move |w| tar::write(&store, &entry, w)));
            let h = r.headers_mut();
            h.insert("content-type", "application/x-tar".parse().expect("valid"));
            if let Ok(v) = format!("attachment; filename=\"{}\"", file.replace('"', "")).parse() {
                h.insert("content-disposition", v);
            }
            r
        }
        Kind::Dir => match reader.list(&entry) {
            Ok(entries) => whole(
                StatusCode::OK,
                "text/html; charset=utf-8",
                html::directory(&t.named, &t.segments, &entries),
            ),
            Err(e) => {
                tracing::warn!("serve {path}: {e}");
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the store could not list it",
                )
            }
        },
        Kind::File => file(store, &t, entry, range),
        _ => whole(
            StatusCode::OK,
            "text/html; charset=utf-8",
            html::entry(&t.named, &t.segments, &entry),
        ),
    }
}

fn index(store: &Store) -> Response<Body> {
    match (store.wares(), store.names()) {
        (Ok(w), Ok(n)) => whole(
            StatusCode::OK,
            "text/html; charset=utf-8",
            html::index(&w, &n),
        ),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!("serve /: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the store could not list its wares",
            )
        }
    }
}

/// `bytes=A-B`, `bytes=A-`, `bytes=-N` of a file of `size` bytes, as `start..end`; `None` for
/// what is not one satisfiable range (served whole, or refused with 416 by the caller).
fn parse_range(h: &str, size: u64) -> Option<std::result::Result<(u64, u64), ()>> {
    let spec = h.strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let r = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (size.saturating_sub(n), size)
        }
        (a, "") => (a.parse().ok()?, size),
        (a, b) => {
            let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
            if b < a {
                return None;
            }
            (a, b.saturating_add(1).min(size))
        }
    };
    Some(if r.0 < size && r.0 < r.1 {
        Ok(r)
    } else {
        Err(())
    })
}

/// A warehouse object, whole or by range.
fn protocol(state: &State, key: &str, range: Option<&str>) -> Response<Body> {
    let kind = "application/octet-stream";
    match state.layouts.get(&state.store, key) {
        Ok(warehouse::Object::Bytes(b)) => {
            ranged(b.len() as u64, range, kind, move |start, end, w| {
                std::io::Write::write_all(w, &b[start as usize..end as usize])
            })
        }
        Ok(warehouse::Object::Pack(p)) => {
            let store = state.store.clone();
            ranged(p.len, range, kind, move |start, end, w| {
                warehouse::write_pack(&store, &p, start, end, w)
            })
        }
        Ok(warehouse::Object::Missing) => error(StatusCode::NOT_FOUND, "no such object"),
        Err(e) => {
            tracing::warn!("serve /{key}: {e:#}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the store could not read it",
            )
        }
    }
}

fn file(store: &Arc<Store>, t: &Target, entry: Entry, range: Option<&str>) -> Response<Body> {
    let name = t
        .segments
        .last()
        .map(|s| String::from_utf8_lossy(s).into_owned());
    let kind = name
        .as_deref()
        .and_then(|n| mime_guess::from_path(n).first_raw())
        .unwrap_or("application/octet-stream");
    let store = store.clone();
    ranged(entry.size, range, kind, move |start, end, w| {
        write_range(&store, &entry, start, end, w)
    })
}

/// `size` bytes of `kind`, or the one range the request asks for (206; 416 for one outside),
/// written by `produce(start, end, out)` on a blocking thread.
fn ranged(
    size: u64,
    range: Option<&str>,
    kind: &str,
    produce: impl FnOnce(u64, u64, &mut ChannelWriter) -> std::io::Result<()> + Send + 'static,
) -> Response<Body> {
    let (start, end, partial) = match range.and_then(|h| parse_range(h, size)) {
        Some(Ok((a, b))) => (a, b, true),
        Some(Err(())) => {
            let mut r = error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "that range is not in the file",
            );
            if let Ok(v) = format!("bytes */{size}").parse() {
                r.headers_mut().insert("content-range", v);
            }
            return r;
        }
        None => (0, size, false),
    };
    let mut r = Response::new(streamed(move |w| produce(start, end, w)));
    *r.status_mut() = if partial {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let h = r.headers_mut();
    if let Ok(v) = kind.parse() {
        h.insert("content-type", v);
    }
    h.insert("accept-ranges", "bytes".parse().expect("valid"));
    h.insert("content-length", (end - start).into());
    if partial && let Ok(v) = format!("bytes {start}-{}/{size}", end - 1).parse() {
        h.insert("content-range", v);
    }
    r
}

/// Writes bytes `start..end` of a file, reading (and verifying) only the chunks they are in.
fn write_range(
    store: &Store,
    entry: &Entry,
    start: u64,
    end: u64,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let fail = |e: ware_store::Error| std::io::Error::other(e.to_string());
    if let Some(d) = &entry.inline {
        return out.write_all(&d[start as usize..end as usize]);
    }
    let reader = Reader::new(store as &dyn BlockSource);
    let mut at = 0u64;
    for c in reader.chunks(entry).map_err(fail)? {
        let (from, to) = (at, at + c.len());
        at = to;
        if to <= start {
            continue;
        }
        if from >= end {
            break;
        }
        let data = store.chunk(&c.id().map_err(fail)?).map_err(fail)?;
        let a = start.saturating_sub(from) as usize;
        let b = (end.min(to) - from) as usize;
        out.write_all(
            data.get(a..b)
                .ok_or_else(|| std::io::Error::other("a short chunk"))?,
        )?;
    }
    Ok(())
}
