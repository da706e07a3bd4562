//! Printing results for people (aligned text, names made safe for a terminal) and for scripts
//! (`--json`).

use serde_json::{Value, json};
use ware_store::node::{Entry, Kind};

/// A name or path made safe to print: valid UTF-8 is kept, control characters and invalid
/// bytes are escaped (`\n`, `\xff`), so a hostile name cannot move the cursor.
pub fn safe(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// [`safe`], cut after `max` characters (with `…`): for arguments and names echoed in errors,
/// which may be of any length.
pub fn safe_short(bytes: &[u8], max: usize) -> String {
    let s = safe(bytes);
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

/// `rwxr-xr-x`-style permissions, with setuid/setgid/sticky shown as `ls` does.
pub fn mode_string(kind: Kind, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(kind.letter());
    let bit = |m: u32, c: char| if mode & m != 0 { c } else { '-' };
    let special = |x: u32, sp: u32, set: char, unset: char| match (mode & x != 0, mode & sp != 0) {
        (true, true) => set,
        (false, true) => unset,
        (true, false) => 'x',
        (false, false) => '-',
    };
    s.push(bit(0o400, 'r'));
    s.push(bit(0o200, 'w'));
    s.push(special(0o100, 0o4000, 's', 'S'));
    s.push(bit(0o040, 'r'));
    s.push(bit(0o020, 'w'));
    s.push(special(0o010, 0o2000, 's', 'S'));
    s.push(bit(0o004, 'r'));
    s.push(bit(0o002, 'w'));
    s.push(special(0o001, 0o1000, 't', 'T'));
    s
}

/// One `ls -l`-like line.
pub fn entry_line(e: &Entry) -> String {
    let size = match (e.kind, e.rdev) {
        (_, Some((ma, mi))) => format!("{ma}, {mi}"),
        _ => e.size.to_string(),
    };
    let mut line = format!(
        "{} {:>5} {:>5} {:>12} {}",
        mode_string(e.kind, e.mode),
        e.uid,
        e.gid,
        size,
        safe(&e.name)
    );
    if let Some(t) = &e.target {
        line.push_str(" -> ");
        line.push_str(&safe(t));
    }
    line
}

/// An entry as JSON. Names and targets that are not UTF-8 also come as hex (`name_hex`).
pub fn entry_json(e: &Entry) -> Value {
    let mut v = json!({
        "name": String::from_utf8_lossy(&e.name),
        "kind": e.kind.name(),
        "mode": e.mode,
        "mode_octal": format!("{:04o}", e.mode),
        "uid": e.uid,
        "gid": e.gid,
        "mtime": e.mtime,
        "mtime_nsec": e.mtime_nsec,
        "size": e.size,
    });
    let obj = v
        .as_object_mut()
        .expect("json! of an object literal is an object");
    if std::str::from_utf8(&e.name).is_err() {
        obj.insert("name_hex".into(), hex(&e.name).into());
    }
    if let Some(t) = &e.target {
        obj.insert("target".into(), String::from_utf8_lossy(t).into());
        if std::str::from_utf8(t).is_err() {
            obj.insert("target_hex".into(), hex(t).into());
        }
    }
    if let Some((ma, mi)) = e.rdev {
        obj.insert("rdev".into(), json!([ma, mi]));
    }
    if let Some(h) = e.hardlink {
        obj.insert("hardlink_group".into(), h.into());
    }
    if let Some(d) = e.dir {
        obj.insert("node".into(), d.to_string().into());
    }
    if !e.xattrs.is_empty() {
        let x: serde_json::Map<String, Value> = e
            .xattrs
            .iter()
            .map(|(n, val)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    Value::from(hex(val)),
                )
            })
            .collect();
        obj.insert("xattrs_hex".into(), Value::Object(x));
    }
    v
}

/// Bytes as lowercase hex (names that are not UTF-8, in JSON).
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Bytes in human units (binary).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Seconds since the epoch as an RFC 3339 UTC time (`2026-11-25T11:32:52Z`).
pub fn utc_time(secs: u64) -> String {
    let (date, sod) = civil(secs as i64);
    format!(
        "{date}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Milliseconds since the epoch as an RFC 3339 UTC time (`2026-11-25T11:32:52.123Z`).
pub fn utc_time_ms(ms: i64) -> String {
    let (date, sod) = civil(ms.div_euclid(1000));
    format!(
        "{date}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        ms.rem_euclid(1000)
    )
}

/// The date (`YYYY-MM-DD`) and the second of the day of a time in seconds since the epoch.
fn civil(secs: i64) -> (String, i64) {
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (format!("{y:04}-{m:02}-{d:02}"), sod)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_escaped() {
        assert_eq!(safe(b"a\nb\x1b[2J\xff"), "a\\nb\\u{1b}[2J\\xff");
        assert_eq!(safe("é.txt".as_bytes()), "é.txt");
    }

    #[test]
    fn times_print_as_utc() {
        assert_eq!(utc_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_time(1_262_304_000), "2010-01-01T00:00:00Z");
        assert_eq!(utc_time(1_795_606_372), "2026-11-25T11:32:52Z");
        assert_eq!(utc_time(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn modes_print_like_ls() {
        assert_eq!(mode_string(Kind::File, 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string(Kind::Dir, 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(Kind::File, 0o2644), "-rw-r-Sr--");
    }
}
