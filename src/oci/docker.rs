//! `docker-archive:FILE[:REPO:TAG]`: what `docker save` and `skopeo copy … docker-archive:`
//! write. `manifest.json` lists each image's config, tags and layer files (uncompressed tars,
//! or compressed in the OCI-blobs variant); the config names the layers' diff_ids, and is
//! itself named by its digest, which is checked.

use std::io::Read;

use anyhow::{Context, Result};
use oci_spec::image::ImageConfiguration;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use ware_store::db::Store;
use ware_store::pack::{PackOptions, Progress};

use super::layout::{Hashed, Layout, failure};
use super::{ImportReport, ImportedLayer, Source, pack_checked};

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// The sha256 hex a member's name gives (`<hex>.json`, `<hex>.tar`, `blobs/sha256/<hex>`).
fn named_digest(name: &str) -> Option<&str> {
    let base = name.rsplit('/').next()?;
    let hex = base.split('.').next()?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// Whether `tag` (as the archive records it, `docker.io/library/debian:12`) is what the user
/// typed (`debian:12`, `library/debian:12`, or the whole of it).
fn tag_matches(tag: &str, typed: &str) -> bool {
    tag == typed
        || tag.strip_prefix("docker.io/") == Some(typed)
        || tag.strip_prefix("docker.io/library/") == Some(typed)
}

pub(super) fn import(
    store: &Store,
    layout: &Layout,
    source: &Source,
    opts: &PackOptions,
    progress: &dyn Progress,
) -> Result<ImportReport> {
    let entries: Vec<Entry> = serde_json::from_slice(&layout.small_file("manifest.json")?)
        .with_context(|| format!("{}: manifest.json", layout.shown()))?;
    let tags = |e: &Entry| e.repo_tags.clone().unwrap_or_default();
    let entry = match &source.reference {
        Some(r) => entries
            .iter()
            .find(|e| tags(e).iter().any(|t| tag_matches(t, r))),
        None if entries.len() == 1 => entries.first(),
        None => None,
    };
    let Some(entry) = entry else {
        let all: Vec<String> = entries.iter().flat_map(tags).collect();
        return Err(failure(
            3,
            format!(
                "{}: no image {} (it holds: {})",
                layout.shown(),
                match &source.reference {
                    Some(r) => format!("tagged {r:?}"),
                    None => "alone (name one with :REPO:TAG)".to_string(),
                },
                if all.is_empty() {
                    format!("{} untagged", entries.len())
                } else {
                    all.join(", ")
                }
            ),
        ));
    };
    let config_bytes = layout.small_file(&entry.config)?;
    let config_hex = format!("{:x}", Sha256::digest(&config_bytes));
    if let Some(want) = named_digest(&entry.config)
        && want != config_hex
    {
        return Err(failure(
            4,
            format!(
                "{}: config {} does not match its digest: its bytes hash to sha256:{config_hex}",
                layout.shown(),
                entry.config
            ),
        ));
    }
    let config = ImageConfiguration::from_reader(&config_bytes[..])
        .with_context(|| format!("{}: config {}", layout.shown(), entry.config))?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != entry.layers.len() {
        return Err(failure(
            4,
            format!(
                "{}: {} layers listed, its config {} diff_ids",
                layout.shown(),
                entry.layers.len(),
                diff_ids.len()
            ),
        ));
    }
    let mut layers = Vec::new();
    for (file, diff) in entry.layers.iter().zip(diff_ids) {
        let (mut r, size) = layout.open(file)?;
        // A layer file named by a digest (the OCI-blobs variant, or a compressed layer) is
        // checked against it first; an uncompressed one is checked by its diff_id as read.
        if let Some(want) = named_digest(file) {
            let mut h = Hashed::new(&mut r, want.to_string(), format!("layer {file}"));
            std::io::copy(&mut h, &mut std::io::sink())
                .map_err(|e| failure(4, format!("{}: {e}", layout.shown())))?;
        }
        layers.push(ImportedLayer {
            digest: named_digest(file).map_or_else(|| diff.clone(), |h| format!("sha256:{h}")),
            diff_id: diff.clone(),
            media_type: "application/vnd.docker.image.rootfs.diff.tar".to_string(),
            size,
        });
    }
    let report = pack_checked(
        store,
        layout,
        source,
        &layers,
        &|i| {
            let (r, _) = layout.open(&entry.layers[i])?;
            Ok((r as Box<dyn Read + Send>, entry.layers[i].clone()))
        },
        opts,
        progress,
    )?;
    Ok(ImportReport {
        id: report.id,
        manifest: None,
        config: format!("sha256:{config_hex}"),
        platform: format!("{}/{}", config.os(), config.architecture()),
        layers,
        record: report.record,
        notices: report.notices,
    })
}
