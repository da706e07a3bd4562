//! The rules of a name (`ware name`, names in a warehouse's catalog), without the store that
//! keeps them.

use crate::error::{Error, Result};

/// The longest name.
pub const NAME_MAX: usize = 255;

/// Checks a name: `[A-Za-z0-9._-]{1,255}`, not `.` or `..`, and not something that parses as
/// a CID (so `NAME/PATH` and `ID/PATH` can never be confused).
pub fn check_name(name: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::bad_name(name, why));
    if name.is_empty() || name.len() > NAME_MAX {
        return bad("a name has 1 to 255 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return bad("a name may only hold A-Z, a-z, 0-9, '.', '_' and '-'");
    }
    if name.starts_with('-') {
        return bad("a name must not start with '-' (it would read as a flag)");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not names");
    }
    if cid::Cid::try_from(name).is_ok() {
        return bad("it parses as a CID; a name must not look like an ID");
    }
    Ok(())
}
