//! OCI images: `ware import` (src/oci/).

use anyhow::Result;
use serde::{Deserialize, Serialize};
use ware_store::pack::PackOptions;

use super::{Cx, Op};
use crate::api::LocalStore;
use crate::oci::{ImportReport, Source};

/// Import an image's root filesystem (its layers applied in order) as a ware, and name it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Import {
    /// The image.
    pub source: Source,
    /// `os/architecture` to pick from an index of several.
    pub platform: String,
    /// `ware pack`'s filters, with its defaults.
    pub opts: PackOptions,
    /// A name for the root filesystem's ware, set once it is whole.
    pub name: Option<String>,
}

impl Op for Import {
    fn run(self, s: &LocalStore, cx: &mut Cx<'_>) -> Result<ImportReport> {
        if let Some(n) = &self.name {
            ware_store::names::check_name(n)?;
        }
        let report = crate::oci::import(
            s.db(),
            &self.source,
            &self.platform,
            &self.opts,
            cx.progress,
        )?;
        if let Some(n) = &self.name {
            s.db().set_name(n, Some(&report.id))?;
        }
        Ok(report)
    }
}
