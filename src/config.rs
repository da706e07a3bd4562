//! The store's settings: `STORE/config.toml`, flat dotted keys (`cache.chunk_bytes = 268435456`),
//! each key declared once in [`KEYS`] with its default, its range and what it does. A setting
//! comes from the command's flag if it has one, else from this file, else from its default.
//! The file is read directly by commands and by the daemon at start; it is written only by
//! the `ConfigSet` operation (through the daemon when one runs), which validates the value,
//! and writes the file whole (a temporary, fsync, rename), private to the store's owner.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The file, inside the store directory.
pub const FILE: &str = "config.toml";

/// A setting: its name, default, range and meaning.
pub struct Key {
    /// Dotted name (`cache.chunk_bytes`).
    pub name: &'static str,
    /// The default, as it would be written in the file.
    pub default: &'static str,
    /// Smallest and largest accepted value.
    pub range: (f64, f64),
    /// Whether the value may have a fraction (seconds may; byte counts may not).
    pub fraction: bool,
    /// What it does (and which flag overrides it).
    pub help: &'static str,
}

/// Every setting there is. Adding one: a line here, and its use where it applies.
pub const KEYS: &[Key] = &[
    Key {
        name: "read.deadline_s",
        default: "30",
        range: (0.001, 86_400.0),
        fraction: true,
        help: "longest time one read of a mount, or one fetch, may take across every retry and \
               warehouse before it fails (EIO for a mount); the flag --read-deadline overrides it",
    },
    Key {
        name: "daemon.idle_timeout_s",
        default: "60",
        range: (1.0, 31_536_000.0),
        fraction: false,
        help: "the daemon exits after this many seconds with no mount and no client; \
               `ware daemon run --idle-timeout` overrides it",
    },
    Key {
        name: "cache.chunk_bytes",
        default: "268435456",
        range: (0.0, 1_099_511_627_776.0),
        fraction: false,
        help: "bytes of decompressed chunks the daemon keeps in memory, for all its mounts together \
               (read when the daemon starts)",
    },
    Key {
        name: "cache.dir_bytes",
        default: "33554432",
        range: (0.0, 1_099_511_627_776.0),
        fraction: false,
        help: "bytes of decoded directories the daemon keeps in memory, for all its mounts \
               together (read when the daemon starts)",
    },
    Key {
        name: "prefetch.concurrency",
        default: "12",
        range: (1.0, 64.0),
        fraction: false,
        help: "requests at once when a mount fetches its ware's access profile ahead of the \
               reads (read at each mount); reads that miss never wait behind them",
    },
    Key {
        name: "prefetch.max_range",
        default: "4194304",
        range: (65_536.0, 268_435_456.0),
        fraction: false,
        help: "largest request of a profile prefetch, in bytes: chunks close together in a \
               pack are fetched in one range request up to this size",
    },
    Key {
        name: "prefetch.siblings_bytes",
        default: "2097152",
        range: (0.0, 268_435_456.0),
        fraction: false,
        help: "a lazy mount of a ware with no access profile: when a file of a directory \
               that no guess brought is opened, the small files after it (up to 256 KiB each) \
               are fetched in the background, up to this many bytes a guess; 0 turns it off",
    },
    Key {
        name: "prefetch.opened_bytes",
        default: "8388608",
        range: (0.0, 1_073_741_824.0),
        fraction: false,
        help: "a lazy mount of a ware with no access profile: a file of at most this many bytes \
               is fetched whole in the background when first opened (range requests in \
               parallel); 0 turns it off",
    },
    Key {
        name: "fill.rate",
        default: "104857600",
        range: (1024.0, 1_099_511_627_776.0),
        fraction: false,
        help: "bytes per second at most of a background fill (`ware mount --fill`, a formula \
               input's \"fill\": true); `ware mount --fill-rate` overrides it",
    },
];

/// One setting as `ware config ls` shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Setting {
    /// The key.
    pub key: String,
    /// The value in effect (from the file, else the default).
    pub value: String,
    /// The default.
    pub default: String,
    /// Whether the file sets it.
    pub set: bool,
    /// What it does.
    pub help: String,
}

/// The settings of one store, as its file has them.
#[derive(Debug, Default)]
pub struct Config {
    values: BTreeMap<String, f64>,
}

fn usage(message: String) -> anyhow::Error {
    crate::exit::Failure { code: 2, message }.into()
}

/// The declaration of `key`, or a usage error naming it and the keys there are.
pub fn key(name: &str) -> Result<&'static Key> {
    KEYS.iter().find(|k| k.name == name).ok_or_else(|| {
        let known: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
        usage(format!(
            "{}: no such setting (there are: {})",
            crate::output::safe_short(name.as_bytes(), 80),
            known.join(", ")
        ))
    })
}

/// `text` as a value of `key`, or a usage error naming both.
pub fn parse(key: &Key, text: &str) -> Result<f64> {
    let shown = crate::output::safe_short(text.as_bytes(), 80);
    let v: f64 = text
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| usage(format!("{}: {shown:?} is not a number", key.name)))?;
    if !key.fraction && v.fract() != 0.0 {
        return Err(usage(format!(
            "{}: {shown} is not a whole number",
            key.name
        )));
    }
    let (lo, hi) = key.range;
    if v < lo || v > hi {
        return Err(usage(format!(
            "{}: {shown} is out of range ({} to {})",
            key.name,
            show(lo),
            show(hi)
        )));
    }
    Ok(v)
}

fn show(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e18 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

impl Config {
    /// The settings in `STORE/config.toml` (none if the file is absent). A file that does not
    /// parse, or sets an unknown key or a bad value, is an error naming the file and the key.
    pub fn load(store: &Path) -> Result<Config> {
        let path = store.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let table: toml::Table = text
            .parse()
            .with_context(|| format!("{} is not valid TOML", path.display()))?;
        let mut flat = Vec::new();
        flatten("", &toml::Value::Table(table), &mut flat);
        let mut values = BTreeMap::new();
        for (name, v) in flat {
            let at = || format!("{}: {name}", path.display());
            let k = key(&name).with_context(at)?;
            let text = match v {
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::String(s) => s,
                other => other.to_string(),
            };
            values.insert(name.clone(), parse(k, &text).with_context(at)?);
        }
        Ok(Config { values })
    }

    /// The value of `key` in effect: the file's, else the default.
    pub fn get(&self, name: &str) -> f64 {
        self.values.get(name).copied().unwrap_or_else(|| {
            let k = key(name).expect("a declared key");
            parse(k, k.default).expect("a valid default")
        })
    }

    /// Every setting, in key order, with where its value comes from.
    pub fn list(&self) -> Vec<Setting> {
        let mut out: Vec<Setting> = KEYS
            .iter()
            .map(|k| Setting {
                key: k.name.into(),
                value: show(self.get(k.name)),
                default: k.default.into(),
                set: self.values.contains_key(k.name),
                help: k.help.into(),
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// Sets `name` to `value` (validated) in `STORE/config.toml`, or removes it (`None`: back
    /// to the default). The file is replaced whole, 0600.
    pub fn set(store: &Path, name: &str, value: Option<&str>) -> Result<()> {
        let k = key(name)?;
        let mut cfg = Config::load(store)?;
        match value {
            Some(v) => {
                cfg.values.insert(k.name.into(), parse(k, v)?);
            }
            None => {
                cfg.values.remove(k.name);
            }
        }
        let mut text = String::from("# warefs store settings (`ware config ls` shows them all)\n");
        for (n, v) in &cfg.values {
            text.push_str(&format!("{n} = {}\n", show(*v)));
        }
        write_whole(&store.join(FILE), text.as_bytes())
    }
}

/// Dotted names and leaf values of a TOML table.
fn flatten(prefix: &str, v: &toml::Value, out: &mut Vec<(String, toml::Value)>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&name, v, out);
            }
        }
        leaf => out.push((prefix.to_string(), leaf.clone())),
    }
}

/// Replaces `path` with `data`: a private temporary beside it, fsynced, renamed over it.
fn write_whole(path: &Path, data: &[u8]) -> Result<()> {
    let tmp: PathBuf = path.with_extension(format!("toml.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::Error::new(e).context(format!("writing {}", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_values_are_checked() {
        for k in KEYS {
            parse(k, k.default).unwrap_or_else(|e| panic!("{}: {e}", k.name));
        }
        let k = key("cache.chunk_bytes").unwrap();
        assert!(parse(k, "1.5").is_err());
        assert!(parse(k, "-1").is_err());
        assert!(parse(k, "lots").is_err());
        assert!(key("cache.nope").is_err());
        assert_eq!(parse(key("read.deadline_s").unwrap(), "2.5").unwrap(), 2.5);
    }

    #[test]
    fn the_file_round_trips_and_nested_tables_read_as_dotted_keys() {
        let dir = tempfile::tempdir().unwrap();
        Config::set(dir.path(), "read.deadline_s", Some("7")).unwrap();
        Config::set(dir.path(), "cache.chunk_bytes", Some("1048576")).unwrap();
        let c = Config::load(dir.path()).unwrap();
        assert_eq!(c.get("read.deadline_s"), 7.0);
        assert_eq!(c.get("daemon.idle_timeout_s"), 60.0);
        Config::set(dir.path(), "read.deadline_s", None).unwrap();
        assert_eq!(
            Config::load(dir.path()).unwrap().get("read.deadline_s"),
            30.0
        );

        std::fs::write(dir.path().join(FILE), "[cache]\nchunk_bytes = 4096\n").unwrap();
        assert_eq!(
            Config::load(dir.path()).unwrap().get("cache.chunk_bytes"),
            4096.0
        );
        std::fs::write(dir.path().join(FILE), "cache.typo = 1\n").unwrap();
        let e = Config::load(dir.path()).unwrap_err();
        assert!(format!("{e:#}").contains("cache.typo"), "{e:#}");
    }
}
