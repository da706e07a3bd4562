//! Validation of object keys and list prefixes.

use crate::error::{Error, Result};

/// Checks that `key` is a relative `/`-separated path: not empty, no leading `/`, no empty
/// segment (so no trailing `/` and no `//`), no `.` or `..` segment, no NUL, backslash or
/// control character. Every kind refuses the same keys, so a key that works on one warehouse
/// works on all of them and cannot escape a directory warehouse's root.
pub fn validate_key(key: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::InvalidKey {
            key: key.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if key.is_empty() {
        return bad("empty");
    }
    if key.starts_with('/') {
        return bad("leading '/'");
    }
    if key.chars().any(|c| c == '\\' || c.is_control()) {
        return bad("backslash or control character");
    }
    for segment in key.split('/') {
        match segment {
            "" => return bad("empty segment"),
            "." | ".." => return bad("'.' or '..' segment"),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a list prefix: empty (everything), or a string that would be a valid key once its
/// final segment is completed; a trailing `/` is allowed (a "directory" prefix).
pub fn validate_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Ok(());
    }
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    validate_key(trimmed).map_err(|e| match e {
        Error::InvalidKey { reason, .. } => Error::InvalidKey {
            key: prefix.to_owned(),
            reason,
        },
        other => other,
    })?;
    // A partial last segment such as "." or ".." would still name a parent directory.
    Ok(())
}

/// The length of a range asked of the object at `url`, or [`Error::InvalidRange`] when it ends
/// before it starts.
pub(crate) fn range_len(url: &str, range: &std::ops::Range<u64>) -> Result<u64> {
    if range.end < range.start {
        return Err(Error::InvalidRange {
            url: url.to_owned(),
            start: range.start,
            end: range.end,
        });
    }
    Ok(range.end - range.start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        for good in ["a", "a/b", "chunks/ab/cdef", "x.y", "..a", "a..", ".hidden"] {
            validate_key(good).unwrap();
        }
        for bad in [
            "", "/a", "a/", "a//b", "..", "a/../b", ".", "a/./b", "a\\b", "a\0b", "a\nb",
        ] {
            assert!(
                matches!(validate_key(bad), Err(Error::InvalidKey { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn prefixes() {
        for good in ["", "a", "a/", "a/b", "chunks/"] {
            validate_prefix(good).unwrap();
        }
        for bad in ["/", "/a", "a//", "../", "a/../"] {
            assert!(validate_prefix(bad).is_err(), "{bad:?}");
        }
    }
}
