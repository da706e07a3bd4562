//! OCI images in (`ware import`): an image's root filesystem, its layers applied one over
//! another, as a ware. Sources are named as skopeo names them: `oci:DIR[:REF]` (an image
//! layout), `oci-archive:FILE[:REF]` (a tar of one) and `docker-archive:FILE[:REPO:TAG]`
//! (what `docker save` writes; docker.rs). Every blob is checked against its
//! digest and size, each layer's uncompressed tar against the config's `diff_ids`; nothing is
//! recorded unless all of it is right.

// The store's error type travels by value through the layer iterator pack_layers takes.
#![allow(clippy::result_large_err)]

mod docker;
mod layout;

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use serde::{Deserialize, Serialize};
use ware_store::WareId;
use ware_store::db::Store;
use ware_store::pack::{PackOptions, Progress, pack_layers};

use layout::{Hashed, Layout, failure};

/// The annotation that names a manifest of a layout (`oci:DIR:REF`).
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Where an image comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// `oci`, `oci-archive` or `docker-archive`.
    pub transport: String,
    /// The layout directory or archive (absolute).
    pub path: PathBuf,
    /// The manifest's `org.opencontainers.image.ref.name`, if given.
    pub reference: Option<String>,
}

impl Source {
    /// Parses `oci:DIR[:REF]`, `oci-archive:FILE[:REF]` or `docker-archive:FILE[:REPO:TAG]` (a
    /// relative path made absolute).
    pub fn parse(s: &str) -> Result<Source> {
        let Some((transport, rest)) = s.split_once(':') else {
            bail!("{s:?}: not an image source (oci:DIR[:REF] or oci-archive:FILE[:REF])");
        };
        if !matches!(transport, "oci" | "oci-archive" | "docker-archive") {
            bail!(
                "{s:?}: unknown transport {transport:?} (oci:DIR[:REF], oci-archive:FILE[:REF] \
                 or docker-archive:FILE[:REPO:TAG]; registries are not supported yet)"
            );
        }
        // The path is the first prefix that exists (a REF may hold ':', a path too).
        let existing = std::iter::once(rest.len())
            .chain(rest.match_indices(':').map(|(i, _)| i))
            .find(|&i| std::path::Path::new(&rest[..i]).exists());
        let (path, reference) = match existing {
            Some(i) if i < rest.len() => (&rest[..i], Some(rest[i + 1..].to_string())),
            Some(_) => (rest, None),
            None => match rest.split_once(':') {
                Some((p, r)) if !r.is_empty() => (p, Some(r.to_string())),
                _ => (rest, None),
            },
        };
        let reference = reference.filter(|r| !r.is_empty());
        if path.is_empty() {
            bail!("{s:?}: no path");
        }
        Ok(Source {
            transport: transport.to_string(),
            path: std::path::absolute(path)?,
            reference,
        })
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.transport, self.path.display())?;
        if let Some(r) = &self.reference {
            write!(f, ":{r}")?;
        }
        Ok(())
    }
}

/// One layer as imported.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImportedLayer {
    /// The blob's digest.
    pub digest: String,
    /// The uncompressed tar's digest (the config's `diff_ids`).
    pub diff_id: String,
    /// The blob's media type.
    pub media_type: String,
    /// The blob's size in bytes.
    pub size: u64,
}

/// What `ware import` did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImportReport {
    /// The root filesystem's ware.
    pub id: WareId,
    /// The image manifest's digest (none in a `docker save` archive).
    pub manifest: Option<String>,
    /// The image config's digest.
    pub config: String,
    /// The platform of the image (`os/architecture`), where its config says.
    pub platform: String,
    /// The layers, lowest first.
    pub layers: Vec<ImportedLayer>,
    /// The ware's record.
    pub record: ware_store::WareRecord,
    /// What packing noticed (entries left out by the filters).
    pub notices: Vec<String>,
}

/// This machine's platform, as OCI names it (`linux/amd64`).
pub fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    format!("linux/{arch}")
}

fn is_index(d: &Descriptor) -> bool {
    matches!(d.media_type(), MediaType::ImageIndex)
        || d.media_type().to_string() == "application/vnd.docker.distribution.manifest.list.v2+json"
}

/// The manifest of `index` for `reference` (or the only one), an index it names resolved for
/// `platform`.
fn pick(
    layout: &Layout,
    index: &ImageIndex,
    reference: Option<&str>,
    platform: &str,
) -> Result<Descriptor> {
    let manifests = index.manifests();
    fn named(d: &Descriptor) -> Option<&str> {
        d.annotations()
            .as_ref()
            .and_then(|a| a.get(REF_NAME))
            .map(String::as_str)
    }
    let candidates: Vec<&Descriptor> = match reference {
        Some(r) => manifests.iter().filter(|d| named(d) == Some(r)).collect(),
        None => manifests.iter().collect(),
    };
    let chosen = match candidates.as_slice() {
        [one] => (*one).clone(),
        [] => {
            let refs: Vec<&str> = manifests.iter().filter_map(named).collect();
            return Err(failure(
                3,
                format!(
                    "{}: no manifest named {:?} (it names: {})",
                    layout.shown(),
                    reference.unwrap_or(""),
                    if refs.is_empty() {
                        "none".to_string()
                    } else {
                        refs.join(", ")
                    }
                ),
            ));
        }
        many => by_platform(layout, many, platform)?,
    };
    if is_index(&chosen) {
        let nested = ImageIndex::from_reader(&layout.small_blob(&chosen)?[..])
            .with_context(|| format!("{}: index {}", layout.shown(), chosen.digest()))?;
        let all: Vec<&Descriptor> = nested.manifests().iter().collect();
        return by_platform(layout, &all, platform);
    }
    Ok(chosen)
}

fn by_platform(layout: &Layout, ds: &[&Descriptor], platform: &str) -> Result<Descriptor> {
    let of = |d: &Descriptor| {
        d.platform()
            .as_ref()
            .map(|p| format!("{}/{}", p.os(), p.architecture()))
    };
    if let Some(d) = ds.iter().find(|d| of(d).as_deref() == Some(platform)) {
        return Ok((*d).clone());
    }
    let have: Vec<String> = ds
        .iter()
        .map(|d| of(d).unwrap_or_else(|| d.digest().to_string()))
        .collect();
    Err(failure(
        3,
        format!(
            "{}: no manifest for {platform} (--platform; it has: {})",
            layout.shown(),
            have.join(", ")
        ),
    ))
}

/// A layer's uncompressed stream, found by its first bytes (the store's rule for tars); an
/// empty blob is an empty layer.
fn uncompressed(blob: Box<dyn Read + Send>) -> std::io::Result<Box<dyn Read + Send>> {
    Ok(ware_store::pack::decompressed(blob)?.unwrap_or_else(|| Box::new(std::io::empty())))
}

/// Imports the image at `source` into `store`: the ware of its root filesystem.
pub fn import(
    store: &Store,
    source: &Source,
    platform: &str,
    opts: &PackOptions,
    progress: &dyn Progress,
) -> Result<ImportReport> {
    let layout = match source.transport.as_str() {
        "oci" => Layout::dir(&source.path)?,
        "docker-archive" => {
            let layout = Layout::archive(&source.path, "manifest.json")?;
            return docker::import(store, &layout, source, opts, progress);
        }
        _ => Layout::archive(&source.path, "index.json")?,
    };
    let index = ImageIndex::from_reader(&layout.small_file("index.json")?[..])
        .with_context(|| format!("{}: index.json", layout.shown()))?;
    let desc = pick(&layout, &index, source.reference.as_deref(), platform)?;
    let manifest = ImageManifest::from_reader(&layout.small_blob(&desc)?[..])
        .with_context(|| format!("{}: manifest {}", layout.shown(), desc.digest()))?;
    let config_desc = manifest.config();
    let config = ImageConfiguration::from_reader(&layout.small_blob(config_desc)?[..])
        .with_context(|| format!("{}: config {}", layout.shown(), config_desc.digest()))?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(failure(
            4,
            format!(
                "{}: manifest {} has {} layers, its config {} diff_ids",
                layout.shown(),
                desc.digest(),
                manifest.layers().len(),
                diff_ids.len()
            ),
        ));
    }
    let mut layers = Vec::new();
    for (d, diff) in manifest.layers().iter().zip(diff_ids) {
        // The blob as stored first, so a damaged one is named as such (exit 4).
        layout
            .check_blob(d)
            .map_err(|e| match digest_mismatch(&e) {
                true => failure(4, format!("{e:#}")),
                false => e,
            })?;
        if diff.strip_prefix("sha256:").is_none_or(|h| h.len() != 64) {
            bail!(
                "{}: diff_id {diff:?} is not a sha256 digest",
                layout.shown()
            );
        }
        layers.push(ImportedLayer {
            digest: d.digest().to_string(),
            diff_id: diff.clone(),
            media_type: d.media_type().to_string(),
            size: d.size(),
        });
    }
    let report = pack_checked(
        store,
        &layout,
        source,
        &layers,
        &|i| {
            let d = &manifest.layers()[i];
            Ok((layout.blob(d)?, d.digest().to_string()))
        },
        opts,
        progress,
    )?;
    Ok(ImportReport {
        id: report.id,
        manifest: Some(desc.digest().to_string()),
        config: config_desc.digest().to_string(),
        platform: format!("{}/{}", config.os(), config.architecture()),
        layers,
        record: report.record,
        notices: report.notices,
    })
}

/// Packs the layers, each opened by `open(i)` (its blob, checked as it is read, and the name
/// to give it), its uncompressed stream checked against `layers[i].diff_id`.
#[allow(clippy::type_complexity)]
fn pack_checked(
    store: &Store,
    layout: &Layout,
    source: &Source,
    layers: &[ImportedLayer],
    open: &(dyn Fn(usize) -> Result<(Box<dyn Read + Send>, String)> + Sync),
    opts: &PackOptions,
    progress: &dyn Progress,
) -> Result<ware_store::pack::PackReport> {
    let mut streams =
        layers
            .iter()
            .enumerate()
            .map(|(i, l)| -> ware_store::Result<Box<dyn Read + Send>> {
                let at = || format!("layer {}", i + 1);
                let (blob, what) =
                    open(i).map_err(|e| ware_store::Error::bad_input(at(), format!("{e:#}")))?;
                let plain = uncompressed(blob).map_err(|e| ware_store::Error::io(at(), e))?;
                let want = l.diff_id.trim_start_matches("sha256:").to_string();
                Ok(Box::new(Hashed::new(
                    plain,
                    want,
                    format!("{} ({what}) uncompressed, diff_id {},", at(), l.diff_id),
                )))
            });
    pack_layers(store, &mut streams, opts, progress).map_err(|e| {
        let e = anyhow::Error::from(e);
        if digest_mismatch(&e) {
            failure(4, format!("{}: {e:#}", layout.shown()))
        } else {
            e.context(format!("importing {source}"))
        }
    })
}

/// Whether an error says bytes do not match their digest.
fn digest_mismatch(e: &anyhow::Error) -> bool {
    format!("{e:#}").contains("does not match its digest")
}
