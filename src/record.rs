//! Run records: what running a formula gave, as docs/FORMAT.md ("Run records") defines them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What running a formula gave (docs/FORMAT.md, "Run records").
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    /// The resolved formula's ID.
    pub formula: String,
    /// The executor: `ns`, `chroot` or `runc`.
    pub executor: String,
    /// Each input path and the ware it was.
    pub inputs: BTreeMap<String, String>,
    /// Start and end, RFC 3339 UTC with milliseconds.
    pub started: String,
    /// See `started`.
    pub ended: String,
    /// `exited`, `signaled` or `timed_out`.
    pub status: String,
    /// The job's exit code (128+N after signal N; 124 after the wall limit).
    pub exit_code: i32,
    /// Each output path and the ware packed from it.
    pub outputs: BTreeMap<String, String>,
    /// What the run could not do as asked (limits not enforced, owners filtered, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
    /// What the inputs' mount fetched from warehouses until the job ended, and why (absent
    /// when it read the local store only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched: Option<ware_fetchers::read_through::FetchStats>,
}

/// Formats a time as RFC 3339 UTC with milliseconds (`2026-11-25T14:24:07.123Z`).
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    crate::output::utc_time_ms(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_rfc3339() {
        use std::time::{Duration, UNIX_EPOCH};
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_616_647_123);
        assert_eq!(rfc3339(t), "2026-11-25T14:24:07.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }
}
