//! Formulas (what a job is), as docs/FORMAT.md ("Formulas") defines them; what running one
//! gave is a run record (`crate::record`).
//!
//! A formula names its inputs by ware ID or name; before it runs, names are resolved to IDs
//! and the result, the *resolved formula*, is what its ID hashes: the CID (DAG-CBOR, BLAKE3)
//! of its inputs, action and outputs' filters. Where wares are fetched from (warehouses) and
//! how long the job may take (limits) are not part of it: they change where and whether a
//! job runs, not what it computes.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use ware_store::WareId;
use ware_store::pack::{
    DeviceFilter, IdFilter, MtimeFilter, PackOptions, SetidFilter, XattrFilter,
};

/// PATH when a formula's environment does not set one (what docker and podman use).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The largest formula file read.
const FORMULA_MAX: u64 = 1 << 20;

/// `(uid_t)-1`: to `setresuid` and `setresgid` it means "leave this one unchanged", so a job
/// asked to run as it would keep the caller's IDs (root's, say). No formula may name it.
const ID_UNCHANGED: u32 = u32::MAX;

/// The largest wall limit: 30 days. A longer job is better run without one.
pub const WALL_SECONDS_MAX: u64 = 30 * 24 * 3600;
/// The largest memory limit: 2^50 bytes (1 PiB); the smallest, 1 MiB.
pub const MEMORY_BYTES_MAX: u64 = 1 << 50;
/// The smallest memory limit a job can start in.
pub const MEMORY_BYTES_MIN: u64 = 1 << 20;
/// The largest pids limit: the kernel's own `PID_MAX_LIMIT` (2^22).
pub const PIDS_MAX: u64 = 1 << 22;

/// A job description, as written by a user.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Formula {
    /// Absolute path in the job → the ware shown there. `/` is the root filesystem.
    #[serde(deserialize_with = "unique_keys")]
    pub inputs: BTreeMap<String, Input>,
    /// What to run.
    pub action: Action,
    /// Absolute path in the job → how to pack what the job leaves there.
    #[serde(default, deserialize_with = "unique_keys")]
    pub outputs: BTreeMap<String, Output>,
    /// Bounds on the run.
    #[serde(default)]
    pub limits: Limits,
}

/// One input: a ware ID or name, and optionally warehouses to fetch it from.
#[derive(Clone, Debug, Serialize)]
pub struct Input {
    /// Ware ID or name.
    pub ware: String,
    /// Warehouses to try (before the configured ones) for what the store lacks.
    pub warehouses: Vec<String>,
    /// Fetch the rest of the ware in the background while the job runs (after its profile):
    /// like `warehouses`, not part of the formula ID.
    pub fill: bool,
}

impl<'de> Deserialize<'de> for Input {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            ware: String,
            #[serde(default)]
            warehouses: Vec<String>,
            #[serde(default)]
            fill: bool,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Id(String),
            Full(Full),
        }
        Ok(match Form::deserialize(d)? {
            Form::Id(ware) => Input {
                ware,
                warehouses: Vec::new(),
                fill: false,
            },
            Form::Full(f) => Input {
                ware: f.ware,
                warehouses: f.warehouses,
                fill: f.fill,
            },
        })
    }
}

/// The job's process.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// Program and arguments; a program without `/` is looked up in the job's PATH.
    pub argv: Vec<String>,
    /// The whole environment (nothing is inherited); PATH defaults to [`DEFAULT_PATH`].
    #[serde(default, deserialize_with = "unique_keys")]
    pub env: BTreeMap<String, String>,
    /// Working directory in the job.
    #[serde(default = "root_dir")]
    pub cwd: String,
    /// User ID in the job.
    #[serde(default)]
    pub uid: u32,
    /// Group ID in the job.
    #[serde(default)]
    pub gid: u32,
    /// Host name in the job.
    #[serde(default = "default_hostname")]
    pub hostname: String,
    /// The host's network; off by default (the job sees only `lo`).
    #[serde(default)]
    pub network: bool,
}

/// A JSON object as a map, refusing a key given twice (serde would keep the last one
/// silently, and the formula's author would run something other than what they read).
fn unique_keys<'de, D, V>(d: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Unique<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Unique<V> {
        type Value = BTreeMap<String, V>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!(
                        "key {key:?} is given twice"
                    )));
                }
                let value = map.next_value()?;
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Unique(std::marker::PhantomData))
}

fn root_dir() -> String {
    "/".into()
}

fn default_hostname() -> String {
    "ware".into()
}

/// How one output is packed, and where it goes.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// Owners: `"keep"` or a number (default 0, so the output is the same whoever ran it).
    #[serde(default = "zero_id")]
    pub uid: IdSpec,
    /// Groups: as `uid`.
    #[serde(default = "zero_id")]
    pub gid: IdSpec,
    /// `"normalise"` (default: 2010-01-01) or `"keep"`.
    #[serde(default = "default_mtime")]
    pub mtime: String,
    /// Setuid/setgid bits: `"strip"` (default), `"keep"` or `"reject"`.
    #[serde(default = "default_setid")]
    pub setid: String,
    /// Device nodes and fifos: `"skip"` (default), `"keep"` or `"reject"`.
    #[serde(default = "default_devices")]
    pub devices: String,
    /// Extended attributes: `"keep"` (default) or `"skip"`.
    #[serde(default = "default_xattrs")]
    pub xattrs: String,
    /// A warehouse to push the output to after the run (not part of the formula's ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warehouse: Option<String>,
}

fn zero_id() -> IdSpec {
    IdSpec::Set(0)
}
fn default_mtime() -> String {
    "normalise".into()
}
fn default_setid() -> String {
    "strip".into()
}
fn default_devices() -> String {
    "skip".into()
}
fn default_xattrs() -> String {
    "keep".into()
}

/// An owner filter: keep what the job wrote, or set one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdSpec {
    /// Keep the job's owners.
    Keep,
    /// Set every owner to this.
    Set(u32),
}

impl Serialize for IdSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            IdSpec::Keep => s.serialize_str("keep"),
            IdSpec::Set(n) => s.serialize_u32(*n),
        }
    }
}

impl<'de> Deserialize<'de> for IdSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            N(u32),
            S(String),
        }
        match Form::deserialize(d)? {
            Form::N(n) => Ok(IdSpec::Set(n)),
            Form::S(s) if s == "keep" => Ok(IdSpec::Keep),
            Form::S(s) => Err(serde::de::Error::custom(format!(
                "{s:?}: an owner filter is \"keep\" or a number"
            ))),
        }
    }
}

impl Output {
    /// The pack options these filters stand for.
    pub fn pack_options(&self, path: &str) -> Result<PackOptions> {
        let bad = |field: &str, value: &str, allowed: &str| {
            anyhow::anyhow!("output {path}: {field} {value:?}: expected {allowed}")
        };
        let id = |s: IdSpec| match s {
            IdSpec::Keep => IdFilter::Keep,
            IdSpec::Set(n) => IdFilter::Set(n),
        };
        Ok(PackOptions {
            uid: id(self.uid),
            gid: id(self.gid),
            mtime: match self.mtime.as_str() {
                "normalise" | "normalize" => MtimeFilter::Normalise,
                "keep" => MtimeFilter::Keep,
                v => return Err(bad("mtime", v, "\"normalise\" or \"keep\"")),
            },
            setid: match self.setid.as_str() {
                "strip" => SetidFilter::Strip,
                "keep" => SetidFilter::Keep,
                "reject" => SetidFilter::Reject,
                v => return Err(bad("setid", v, "\"strip\", \"keep\" or \"reject\"")),
            },
            devices: match self.devices.as_str() {
                "skip" => DeviceFilter::Skip,
                "keep" => DeviceFilter::Keep,
                "reject" => DeviceFilter::Reject,
                v => return Err(bad("devices", v, "\"skip\", \"keep\" or \"reject\"")),
            },
            xattrs: match self.xattrs.as_str() {
                "keep" => XattrFilter::Keep,
                "skip" => XattrFilter::Skip,
                v => return Err(bad("xattrs", v, "\"keep\" or \"skip\"")),
            },
        })
    }
}

/// Bounds on a run.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock seconds before the job is killed.
    #[serde(default)]
    pub wall_seconds: Option<u64>,
    /// Memory, in bytes (cgroup v2 `memory.max`, where available).
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    /// Processes and threads (cgroup v2 `pids.max`, where available).
    #[serde(default)]
    pub pids: Option<u64>,
}

/// What a formula's ID hashes: inputs by ID, the action with its defaults filled in, the
/// outputs' filters.
#[derive(Serialize)]
struct Resolved<'a> {
    inputs: BTreeMap<&'a str, String>,
    action: &'a Action,
    outputs: BTreeMap<&'a str, OutputFilters<'a>>,
}

#[derive(Serialize)]
struct OutputFilters<'a> {
    uid: IdSpec,
    gid: IdSpec,
    mtime: &'a str,
    setid: &'a str,
    devices: &'a str,
    xattrs: &'a str,
}

impl Formula {
    /// Reads and checks a formula file (`-` for stdin).
    pub fn load(path: &Path) -> Result<Formula> {
        use std::io::Read;
        let mut text = String::new();
        let what = path.display();
        if path == Path::new("-") {
            std::io::stdin()
                .take(FORMULA_MAX + 1)
                .read_to_string(&mut text)
                .context("reading the formula from stdin")?;
        } else {
            std::fs::File::open(path)
                .with_context(|| format!("{what}: cannot open the formula"))?
                .take(FORMULA_MAX + 1)
                .read_to_string(&mut text)
                .with_context(|| format!("{what}: cannot read the formula"))?;
        }
        ensure!(
            text.len() as u64 <= FORMULA_MAX,
            "{what}: a formula is at most {FORMULA_MAX} bytes"
        );
        // A formula that is not well formed is a usage error (exit 2), like a bad flag.
        let refused = |e: anyhow::Error| {
            crate::api::usage_error(format!(
                "{what}: not a valid formula: {}",
                crate::exit::message(&e)
            ))
        };
        let mut f: Formula = serde_json::from_str(&text).map_err(|e| refused(e.into()))?;
        f.check().map_err(refused)?;
        f.action
            .env
            .entry("PATH".into())
            .or_insert_with(|| DEFAULT_PATH.into());
        Ok(f)
    }

    /// Checks what serde cannot: paths, argv, names of variables, filters.
    pub fn check(&self) -> Result<()> {
        ensure!(
            self.inputs.contains_key("/"),
            "inputs must include \"/\", the job's root filesystem"
        );
        for p in self.inputs.keys() {
            check_job_path(p).with_context(|| format!("input {p:?}"))?;
        }
        for (p, out) in &self.outputs {
            check_job_path(p).with_context(|| format!("output {p:?}"))?;
            ensure!(p != "/", "output \"/\": the root cannot be an output");
            ensure!(
                !self.inputs.contains_key(p),
                "output {p:?} is also an input"
            );
            // An output under a read-only input would need a mountpoint the input may lack,
            // and its contents would hide part of that input.
            if let Some(inp) = self
                .inputs
                .keys()
                .filter(|i| *i != "/")
                .find(|i| Path::new(p).starts_with(i))
            {
                bail!("output {p:?} lies inside input {inp:?}, which is read-only");
            }
            out.pack_options(p)?;
        }
        ensure!(
            !self.action.argv.is_empty(),
            "action.argv is empty: name a program to run"
        );
        ensure!(
            !self.action.argv.iter().any(|a| a.contains('\0')),
            "action.argv holds a NUL byte"
        );
        for (k, v) in &self.action.env {
            ensure!(
                !k.is_empty() && !k.contains('=') && !k.contains('\0') && !v.contains('\0'),
                "action.env: {k:?} is not a valid variable"
            );
        }
        check_job_path(&self.action.cwd).context("action.cwd")?;
        ensure!(
            !self.action.hostname.is_empty()
                && self.action.hostname.len() <= 64
                && self
                    .action
                    .hostname
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'),
            "action.hostname {:?}: 1 to 64 of A-Z, a-z, 0-9, '-', '.'",
            self.action.hostname
        );
        for (what, id) in [
            ("action.uid", self.action.uid),
            ("action.gid", self.action.gid),
        ] {
            ensure!(
                id != ID_UNCHANGED,
                "{what} {id}: 4294967295 is (uid_t)-1, which the kernel reads as \"leave unchanged\"; name a real ID"
            );
        }
        let limits = [
            (
                "limits.wall_seconds",
                self.limits.wall_seconds,
                1,
                WALL_SECONDS_MAX,
            ),
            (
                "limits.memory_bytes",
                self.limits.memory_bytes,
                MEMORY_BYTES_MIN,
                MEMORY_BYTES_MAX,
            ),
            ("limits.pids", self.limits.pids, 1, PIDS_MAX),
        ];
        for (what, value, min, max) in limits {
            if let Some(v) = value {
                ensure!(
                    (min..=max).contains(&v),
                    "{what} {v}: must be from {min} to {max}"
                );
            }
        }
        Ok(())
    }

    /// The formula's ID, given what each input resolved to.
    pub fn id(&self, resolved: &BTreeMap<String, WareId>) -> Result<WareId> {
        let r = Resolved {
            inputs: self
                .inputs
                .keys()
                .map(|p| {
                    let id = resolved
                        .get(p)
                        .with_context(|| format!("input {p} is not resolved"))?;
                    Ok((p.as_str(), id.to_string()))
                })
                .collect::<Result<_>>()?,
            action: &self.action,
            outputs: self
                .outputs
                .iter()
                .map(|(p, o)| {
                    (
                        p.as_str(),
                        OutputFilters {
                            uid: o.uid,
                            gid: o.gid,
                            mtime: &o.mtime,
                            setid: &o.setid,
                            devices: &o.devices,
                            xattrs: &o.xattrs,
                        },
                    )
                })
                .collect(),
        };
        Ok(ware_store::verify::cbor_id(&r)?.0)
    }
}

/// A path inside the job: absolute, no `.`, `..` or empty components, no trailing `/`.
fn check_job_path(p: &str) -> Result<()> {
    ensure!(p.starts_with('/'), "not an absolute path");
    ensure!(!p.contains('\0'), "holds a NUL byte");
    ensure!(p == "/" || !p.ends_with('/'), "ends with '/'");
    ensure!(!p.contains("//"), "holds an empty component");
    for c in Path::new(p).components() {
        match c {
            Component::RootDir | Component::Normal(_) => {}
            _ => bail!("holds '.' or '..'"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Formula> {
        let f: Formula = serde_json::from_str(s)?;
        f.check()?;
        Ok(f)
    }

    fn root() -> String {
        WareId::of(b"a root node").to_string()
    }

    #[test]
    fn a_minimal_formula_gets_defaults_and_a_stable_id() {
        let root = root();
        let f = parse(&format!(
            r#"{{"inputs": {{"/": "{root}"}}, "action": {{"argv": ["/bin/true"]}},
                "outputs": {{"/out": {{}}}}}}"#
        ))
        .unwrap();
        assert_eq!(f.action.cwd, "/");
        assert_eq!(f.action.hostname, "ware");
        assert!(!f.action.network);
        assert_eq!(f.outputs["/out"].uid, IdSpec::Set(0));
        let ids = BTreeMap::from([("/".to_string(), root.parse::<WareId>().unwrap())]);
        let id = f.id(&ids).unwrap();
        assert_eq!(id, f.id(&ids).unwrap());
        // A warehouse or a limit does not change what the job computes, so not its ID.
        let mut g = f.clone();
        g.limits.wall_seconds = Some(5);
        g.outputs.get_mut("/out").unwrap().warehouse = Some("file:///x".into());
        g.inputs.get_mut("/").unwrap().warehouses = vec!["file:///y".into()];
        assert_eq!(g.id(&ids).unwrap(), id);
        // An argument does.
        g.action.argv.push("x".into());
        assert_ne!(g.id(&ids).unwrap(), id);
    }

    #[test]
    fn bad_formulas_are_refused_with_the_field_named() {
        let cases = [
            (r#"{"inputs": {}, "action": {"argv": ["x"]}}"#, "\"/\""),
            (
                r#"{"inputs": {"/": "a", "rel": "b"}, "action": {"argv": ["x"]}}"#,
                "input \"rel\"",
            ),
            (
                r#"{"inputs": {"/": "a", "/x/../y": "b"}, "action": {"argv": ["x"]}}"#,
                "'..'",
            ),
            (r#"{"inputs": {"/": "a"}, "action": {"argv": []}}"#, "argv"),
            (
                r#"{"inputs": {"/": "a"}, "action": {"argv": ["x"]}, "outputs": {"/": {}}}"#,
                "root",
            ),
            (
                r#"{"inputs": {"/": "a", "/src": "b"}, "action": {"argv": ["x"]},
                    "outputs": {"/src/out": {}}}"#,
                "inside input",
            ),
            (
                r#"{"inputs": {"/": "a"}, "action": {"argv": ["x"]},
                    "outputs": {"/o": {"setid": "maybe"}}}"#,
                "setid",
            ),
            (
                r#"{"inputs": {"/": "a"}, "action": {"argv": ["x"], "hostname": "a b"}}"#,
                "hostname",
            ),
        ];
        for (text, want) in cases {
            let err = format!("{:#}", parse(text).unwrap_err());
            assert!(err.contains(want), "{text}: {err}");
        }
        let err = serde_json::from_str::<Formula>(
            r#"{"inputs": {"/": "a"}, "action": {"argv": ["x"]}, "extra": 1}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("extra"), "{err}");
    }
}
