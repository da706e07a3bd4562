//! The pages: plain server-rendered HTML, every name escaped, every link percent-encoded.

use hyper::StatusCode;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};
use ware_store::WareId;
use ware_store::node::{Entry, Kind};

use crate::output::{human_bytes, mode_string, safe};

/// What stays as it is in a link's path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `text` with `&`, `<`, `>`, `"` and `'` escaped.
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn seg(bytes: &[u8]) -> String {
    percent_encode(bytes, SEGMENT).to_string()
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}td{{padding:0 1em 0 0}}\
         .n{{text-align:right}}code{{font-size:90%}}</style></head>\
         <body><h1>{t}</h1>\n{body}</body></html>\n",
        t = esc(title)
    )
}

/// The href of `/<named>/<segments…>/`.
fn href(named: &str, segments: &[Vec<u8>]) -> String {
    let mut h = format!("/{}/", seg(named.as_bytes()));
    for s in segments {
        h.push_str(&seg(s));
        h.push('/');
    }
    h
}

/// Where `/<named>/<segments…>` is, each part a link.
fn crumbs(named: &str, segments: &[Vec<u8>]) -> String {
    let mut out = format!(
        "<p><a href=\"/\">wares</a> / <a href=\"{}\">{}</a>",
        href(named, &[]),
        esc(named)
    );
    for i in 0..segments.len() {
        out.push_str(&format!(
            " / <a href=\"{}\">{}</a>",
            href(named, &segments[..=i]),
            esc(&safe(&segments[i]))
        ));
    }
    out.push_str("</p>\n");
    out
}

/// `/`: the store's wares and names.
pub(super) fn index(
    wares: &[(WareId, ware_store::WareRecord)],
    names: &[(String, WareId)],
) -> String {
    let mut b = String::from("<h2>Names</h2>\n<table>\n");
    for (n, id) in names {
        b.push_str(&format!(
            "<tr><td><a href=\"/{}/\">{}</a></td><td><code><a href=\"/{id}/\">{id}</a></code></td></tr>\n",
            seg(n.as_bytes()),
            esc(n)
        ));
    }
    b.push_str("</table>\n<h2>Wares</h2>\n<table>\n");
    for (id, r) in wares {
        b.push_str(&format!(
            "<tr><td><code><a href=\"/{id}/\">{id}</a></code></td><td class=\"n\">{}</td>\
             <td class=\"n\">files: {}</td></tr>\n",
            esc(&human_bytes(r.logical_bytes)),
            r.files
        ));
    }
    b.push_str("</table>\n");
    page("wares", &b)
}

/// A directory of a ware.
pub(super) fn directory(named: &str, segments: &[Vec<u8>], entries: &[Entry]) -> String {
    let here = href(named, segments);
    let mut b = crumbs(named, segments);
    b.push_str(&format!(
        "<p><a href=\"{here}?format=tar\">download as tar</a></p>\n<table>\n"
    ));
    if !segments.is_empty() {
        b.push_str("<tr><td><a href=\"../\">../</a></td></tr>\n");
    }
    for e in entries {
        let name = esc(&safe(&e.name));
        let link = match e.kind {
            Kind::Dir => format!("<a href=\"{here}{}/\">{name}/</a>", seg(&e.name)),
            _ => format!("<a href=\"{here}{}\">{name}</a>", seg(&e.name)),
        };
        let target = e
            .target
            .as_ref()
            .map(|t| format!(" → <code>{}</code>", esc(&safe(t))))
            .unwrap_or_default();
        b.push_str(&format!(
            "<tr><td><code>{}</code></td><td class=\"n\">{}</td><td>{link}{target}</td></tr>\n",
            esc(&mode_string(e.kind, e.mode)),
            if e.kind == Kind::File {
                esc(&human_bytes(e.size))
            } else {
                String::new()
            },
        ));
    }
    b.push_str("</table>\n");
    let title = format!(
        "{}/{}",
        named,
        segments
            .iter()
            .map(|s| safe(s))
            .collect::<Vec<_>>()
            .join("/")
    );
    page(&title, &b)
}

/// An entry that is neither a file nor a directory (a symlink, a device, a fifo): what it is,
/// never what it points at.
pub(super) fn entry(named: &str, segments: &[Vec<u8>], e: &Entry) -> String {
    let mut b = crumbs(named, segments);
    b.push_str(&format!(
        "<p><code>{}</code>",
        esc(&mode_string(e.kind, e.mode))
    ));
    if let Some(t) = &e.target {
        b.push_str(&format!(
            " symlink to <code>{}</code> (not followed)",
            esc(&safe(t))
        ));
    }
    b.push_str("</p>\n");
    page(&safe(&e.name), &b)
}

pub(super) fn error(status: StatusCode, why: &str) -> String {
    page(
        &status.to_string(),
        &format!("<p>{}</p><p><a href=\"/\">wares</a></p>\n", esc(why)),
    )
}
