//! `http://…`, `https://…`: a read-only warehouse of static files, and the HTTP plumbing the
//! IPFS kinds share (client, status mapping, body length checks).

use std::ops::Range;

use bytes::Bytes;
use reqwest::{Client, RequestBuilder, Response, StatusCode, header};

use crate::error::{Error, Result};
use crate::key::validate_key;
use crate::options::FetchOptions;
use crate::runtime::call;
use crate::{Kind, Warehouse};

/// Builds the HTTP client of one warehouse: rustls, no system proxy, the connect timeout, and
/// the low-speed timeout as a per-read timeout.
pub(crate) fn client(opts: &FetchOptions, url: &str) -> Result<Client> {
    Client::builder()
        .connect_timeout(opts.connect_timeout)
        .read_timeout(opts.low_speed_timeout)
        .no_proxy()
        .build()
        .map_err(|e| Error::InvalidUrl {
            url: url.to_owned(),
            reason: format!("cannot build an HTTP client: {}", chain(&e)),
        })
}

/// The error and its sources on one line: reqwest's top-level message alone ("error sending
/// request") hides the cause.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

pub(crate) fn transport(url: &str, e: reqwest::Error) -> Error {
    Error::Transport {
        url: url.to_owned(),
        message: chain(&e),
    }
}

/// Sends a request and turns what is not a success into an error: 404 is
/// [`Error::NotFound`], any other non-2xx is [`Error::Status`] with the start of the body.
pub(crate) async fn send(url: &str, req: RequestBuilder) -> Result<Response> {
    let resp = req.send().await.map_err(|e| transport(url, e))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    if status == StatusCode::NOT_FOUND {
        return Err(Error::NotFound {
            url: url.to_owned(),
        });
    }
    // Only the start of an error body is read (it may be of any size), and what is kept is
    // escaped: a server's bytes never reach a terminal or a log raw.
    let mut resp = resp;
    let mut head = Vec::new();
    while head.len() < DETAIL_MAX {
        match resp.chunk().await {
            Ok(Some(c)) => head.extend_from_slice(&c),
            _ => break,
        }
    }
    let detail = detail_text(&head);
    Err(Error::Status {
        url: url.to_owned(),
        status: status.as_u16(),
        detail,
    })
}

/// How much of an error response's body is kept, in characters.
const DETAIL_MAX: usize = 200;

/// The start of an error body as one line: whitespace runs become a space, other control
/// characters and invalid UTF-8 are escaped, and it is cut after [`DETAIL_MAX`] characters.
pub(crate) fn detail_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out = String::new();
    let mut space = false;
    for c in text.trim().chars() {
        if out.chars().count() >= DETAIL_MAX {
            out.push('…');
            break;
        }
        if c.is_whitespace() {
            if !space {
                out.push(' ');
            }
            space = true;
            continue;
        }
        space = false;
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Reads the whole body, and checks it against `Content-Length` when there is one (hyper
/// already fails a body cut short of it; this also catches the opposite).
pub(crate) async fn body(url: &str, resp: Response) -> Result<Bytes> {
    let expected = resp.content_length();
    let bytes = resp.bytes().await.map_err(|e| transport(url, e))?;
    if let Some(n) = expected
        && n != bytes.len() as u64
    {
        return Err(Error::Transport {
            url: url.to_owned(),
            message: format!("body of {} bytes, Content-Length {n}", bytes.len()),
        });
    }
    Ok(bytes)
}

/// Joins a `/`-separated key onto a base URL, percent-encoding each segment.
pub(crate) fn join(base: &url::Url, key: &str) -> url::Url {
    let mut u = base.clone();
    if let Ok(mut segments) = u.path_segments_mut() {
        segments.pop_if_empty().extend(key.split('/'));
    }
    u
}

/// A read-only warehouse of static files under a base URL: `get` and `get_range` (Range
/// requests, answers checked to the byte) and `exists` (HEAD). Web servers do not list, and
/// nothing is written over plain HTTP.
#[derive(Debug)]
pub struct HttpWarehouse {
    url: String,
    base: url::Url,
    client: Client,
    opts: FetchOptions,
}

impl HttpWarehouse {
    /// A warehouse of the files under `base` (an `http` or `https` URL).
    pub fn new(base: url::Url, opts: &FetchOptions) -> Result<HttpWarehouse> {
        let url = base.to_string();
        Ok(HttpWarehouse {
            client: client(opts, &url)?,
            url,
            base,
            opts: opts.clone(),
        })
    }

    fn key_url(&self, key: &str) -> Result<url::Url> {
        validate_key(key)?;
        Ok(join(&self.base, key))
    }
}

/// Parses `Content-Range: bytes START-END/TOTAL` (TOTAL may be `*`) into START..END+1.
pub(crate) fn parse_content_range(value: &str) -> Option<Range<u64>> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (span, _total) = rest.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    let a: u64 = a.trim().parse().ok()?;
    let b: u64 = b.trim().parse().ok()?;
    (b >= a).then(|| a..b + 1)
}

impl Warehouse for HttpWarehouse {
    fn url(&self) -> &str {
        &self.url
    }

    fn kind(&self) -> Kind {
        Kind::Http
    }

    fn get(&self, key: &str) -> Result<Bytes> {
        let u = self.key_url(key)?;
        let url = u.as_str();
        call(&self.opts, url, |_| async {
            let resp = send(url, self.client.get(u.clone())).await?;
            body(url, resp).await
        })
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let u = self.key_url(key)?;
        let url = u.as_str();
        let want = crate::key::range_len(url, &range)?;
        if want == 0 {
            return Ok(Bytes::new());
        }
        let header_value = format!("bytes={}-{}", range.start, range.end - 1);
        call(&self.opts, url, |_| async {
            let req = self
                .client
                .get(u.clone())
                .header(header::RANGE, &header_value)
                // A compressed answer would have ranges of the compressed bytes.
                .header(header::ACCEPT_ENCODING, "identity");
            let resp = send(url, req).await?;
            let bad = |reason: String| {
                tracing::warn!(url, %reason, "range answer rejected");
                Err(Error::BadResponse {
                    url: url.to_owned(),
                    reason,
                })
            };
            if resp.status() != StatusCode::PARTIAL_CONTENT {
                return bad(format!(
                    "status {} to a range request for bytes {}..{} (the server ignored Range)",
                    resp.status().as_u16(),
                    range.start,
                    range.end
                ));
            }
            let got = resp
                .headers()
                .get(header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            match got.as_deref().and_then(parse_content_range) {
                Some(r) if r == range => {}
                _ => {
                    return bad(format!(
                        "Content-Range {:?} for bytes {}..{}",
                        got.unwrap_or_default(),
                        range.start,
                        range.end
                    ));
                }
            }
            let bytes = body(url, resp).await?;
            if bytes.len() as u64 != want {
                return bad(format!("{} bytes for a {want}-byte range", bytes.len()));
            }
            Ok(bytes)
        })
    }

    fn put(&self, _key: &str, _data: Bytes) -> Result<()> {
        Err(Error::ReadOnly {
            url: self.url.clone(),
        })
    }

    fn exists(&self, key: &str) -> Result<bool> {
        let u = self.key_url(key)?;
        let url = u.as_str();
        call(&self.opts, url, |_| async {
            match send(url, self.client.head(u.clone())).await {
                Ok(_) => Ok(true),
                Err(Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        })
    }

    fn list(&self, _prefix: &str) -> Result<Vec<String>> {
        Err(Error::Unsupported {
            url: self.url.clone(),
            what: "listing",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        assert_eq!(parse_content_range("bytes 0-9/100"), Some(0..10));
        assert_eq!(parse_content_range("bytes 5-5/*"), Some(5..6));
        assert_eq!(parse_content_range("bytes 9-5/100"), None);
        assert_eq!(parse_content_range("bytes */100"), None);
        assert_eq!(parse_content_range("items 0-9/100"), None);
    }

    #[test]
    fn join_encodes_segments() {
        let base = url::Url::parse("http://h/base/").unwrap();
        assert_eq!(join(&base, "a/b c").as_str(), "http://h/base/a/b%20c");
        let base = url::Url::parse("http://h/base").unwrap();
        assert_eq!(join(&base, "a?x").as_str(), "http://h/base/a%3Fx");
    }

    #[test]
    fn error_bodies_are_one_short_escaped_line() {
        let html = "<html>\r\n<head><title>500</title></head>\r\n\x1b[2J\x1b]0;owned\x07<body>"
            .to_string()
            + &"x".repeat(10_000);
        let d = detail_text(html.as_bytes());
        assert!(!d.chars().any(|c| c.is_control()), "{d:?}");
        assert!(
            d.starts_with("<html> <head><title>500</title></head> \\u{1b}[2J"),
            "{d:?}"
        );
        // An escape written last may pass the bound by its own length, no more.
        assert!(
            d.chars().count() <= DETAIL_MAX + 12,
            "{} characters",
            d.chars().count()
        );
        assert!(d.ends_with('…'));
        assert_eq!(detail_text(b"  short \n"), "short");
        assert_eq!(detail_text(b"bad \xff byte"), "bad \u{fffd} byte");
    }
}
