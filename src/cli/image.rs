//! `ware import`: OCI images in (src/oci/).

use super::*;
use crate::oci::{ImportReport, Source, host_platform};

/// Import an OCI image's root filesystem as a ware: its layers applied in order (whiteouts and
/// opaque directories as the image spec says), every blob checked against its digest and size
/// and each layer's tar against the config's diff_ids. Prints the ware ID (with --json: the
/// ware, the manifest and config digests, each layer). The same tree gives the same ID however
/// it came: `ware pack` of the unpacked image gives this one.
#[derive(Args)]
pub struct Import {
    /// `oci:DIR[:REF]` (an OCI image layout; REF is its org.opencontainers.image.ref.name; with
    /// no REF, the only manifest), `oci-archive:FILE[:REF]` (a tar of a layout) or
    /// `docker-archive:FILE[:REPO:TAG]` (what `docker save` writes).
    pub source: String,
    /// Name the root filesystem's ware NAME once it is whole.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The platform to take from an index of several (`os/architecture`) [default: this
    /// machine's].
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    #[command(flatten)]
    pub filters: store::FilterArgs,
}

pub(crate) fn import(cli: &Cli, a: &Import) -> Result<()> {
    let source = Source::parse(&a.source)?;
    let op = ops::Import {
        source,
        platform: a.platform.clone().unwrap_or_else(host_platform),
        opts: a.filters.options()?,
        name: a.name.clone(),
    };
    let store = open(cli, true)?;
    let r: ImportReport = call_with_bar(cli, &store, "importing", op, None)?;
    notices(cli, &r.notices);
    if cli.json {
        print_json(&serde_json::to_value(&r)?)?;
    } else {
        println!("{}", r.id);
    }
    Ok(())
}
