//! The OCI executor: the overlay root is assembled by our own init in a private mount
//! namespace (so it vanishes with it), and the runtime (`runc run`, or crun) is started there
//! on a bundle in `Job::work` whose `config.json` describes the rest: binds, /proc, /dev, /tmp,
//! namespaces, user, limits.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::plan::{ExecPlan, Mode, Plan, euid_egid, work_subdir};
use crate::spawn::{self, outcome};
use crate::{ExecError, Job, JobStatus, Outcome};

/// Capability names matching [`crate::child::KEPT_CAPS`].
const CAPS: [&str; 11] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_SETFCAP",
];

/// The runtime binary: `WARE_OCI_RUNTIME` (a name looked up in PATH, or a path), else runc,
/// else crun.
pub(crate) fn runtime() -> Result<PathBuf, ExecError> {
    let find = |name: &str| -> Option<PathBuf> {
        if name.contains('/') {
            return Path::new(name).is_file().then(|| PathBuf::from(name));
        }
        let path =
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    };
    match std::env::var("WARE_OCI_RUNTIME") {
        Ok(name) if !name.is_empty() => find(&name)
            .ok_or_else(|| ExecError::Runtime(format!("WARE_OCI_RUNTIME={name}: not found"))),
        _ => find("runc")
            .or_else(|| find("crun"))
            .ok_or_else(|| ExecError::Runtime("neither runc nor crun found in PATH".into())),
    }
}

fn utf8(what: &str, s: &std::ffi::OsStr) -> Result<String, ExecError> {
    s.to_str().map(str::to_owned).ok_or_else(|| {
        ExecError::InvalidJob(format!("{what} {s:?} is not UTF-8 (OCI config is JSON)"))
    })
}

/// The bundle's config.json.
pub(crate) fn config(job: &Job, runtime_name: &str) -> Result<Value, ExecError> {
    let args = job
        .argv
        .iter()
        .map(|a| utf8("argument", a))
        .collect::<Result<Vec<_>, _>>()?;
    let env = job
        .env
        .iter()
        .map(|(k, v)| {
            let mut kv = OsString::from(k);
            kv.push("=");
            kv.push(v);
            utf8("environment entry", &kv)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let caps: Vec<&str> = if job.uid == 0 {
        CAPS.to_vec()
    } else {
        Vec::new()
    };
    let nosuid_nodev = ["nosuid", "nodev"];
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777"]}),
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]}),
    ];
    // runc knows "rro" (recursively read-only, Linux 5.12); for other runtimes plain "ro".
    let ro = if runtime_name.contains("runc") {
        "rro"
    } else {
        "ro"
    };
    for b in &job.mounts {
        let mut options = vec!["rbind", if b.writable { "rw" } else { ro }];
        options.extend(nosuid_nodev);
        mounts.push(json!({
            "destination": utf8("bind target", b.target.as_os_str())?,
            "type": "bind",
            "source": utf8("bind source", b.source.as_os_str())?,
            "options": options,
        }));
    }
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "mount"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
    ];
    if !job.network {
        namespaces.push(json!({"type": "network"}));
    }
    let mut resources = json!({});
    if let Some(m) = job.limits.memory_bytes {
        resources["memory"] = json!({"limit": m, "swap": m});
    }
    if let Some(p) = job.limits.pids {
        resources["pids"] = json!({"limit": p});
    }
    let mut config = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": job.uid, "gid": job.gid, "additionalGids": [job.gid]},
            "args": args,
            "env": env,
            "cwd": utf8("cwd", job.cwd.as_os_str())?,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": true,
        },
        "root": {"path": "rootfs", "readonly": false},
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            "resources": resources,
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    });
    if !job.hostname.is_empty() {
        config["hostname"] = json!(job.hostname);
    }
    Ok(config)
}

pub(crate) fn run(job: &Job) -> Result<Outcome, ExecError> {
    let (euid, _) = euid_egid();
    if euid != 0 {
        return Err(ExecError::Runtime(
            "the runc executor needs root (rootless OCI bundles are not implemented): use --executor ns".into(),
        ));
    }
    let rt = runtime()?;
    let rt_name = rt
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let config = config(job, &rt_name)?;
    let config_path = job.work.join("config.json");
    std::fs::write(
        &config_path,
        serde_json::to_vec_pretty(&config).unwrap_or_default(),
    )
    .map_err(|e| ExecError::host("writing", &config_path, e))?;
    let state = work_subdir(&job.work, "state")?;
    let id = format!(
        "ware-{}-{}",
        std::process::id(),
        job.work
            .as_os_str()
            .as_bytes()
            .iter()
            .fold(0u32, |h, &b| h.wrapping_mul(31).wrapping_add(b as u32))
    );
    let argv: Vec<OsString> = vec![
        rt.clone().into(),
        "--root".into(),
        state.clone().into(),
        "run".into(),
        "--bundle".into(),
        job.work.clone().into(),
        id.clone().into(),
    ];
    let env = vec![("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into())];
    let exec = ExecPlan::new(&argv, &env, &job.work, 0, 0, false, false)?;
    let plan = Plan::new(Mode::Runtime, job, exec)?;
    let notices = Vec::new();
    let kill = |pid: libc::pid_t| {
        let ok = Command::new(&rt)
            .arg("--root")
            .arg(&state)
            .args(["kill", &id, "KILL"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // SAFETY: kill with integer arguments; the init is not reaped yet. SIGTERM makes
            // it sweep every descendant (the runtime and the container's processes).
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    };
    let waited = spawn::spawn_and_wait(&plan, job.limits.wall, None, &kill);
    // Whatever happened, leave no container state behind.
    let _ = Command::new(&rt)
        .arg("--root")
        .arg(&state)
        .args(["delete", "--force", &id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let mut out = outcome(job, waited?, notices)?;
    // The runtime exits 128+n when the container's process was killed by signal n.
    if let JobStatus::Exited(c) = out.status
        && c > 128
        && c <= 128 + 64
    {
        out.status = JobStatus::Signaled(c - 128);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Bind, Limits};

    #[test]
    fn config_describes_the_job() {
        let job = Job {
            root: "/r".into(),
            mounts: vec![
                Bind {
                    source: "/in".into(),
                    target: "/in".into(),
                    writable: false,
                },
                Bind {
                    source: "/out".into(),
                    target: "/out".into(),
                    writable: true,
                },
            ],
            argv: vec!["sh".into(), "-c".into(), "true".into()],
            env: vec![("A".into(), "b".into())],
            cwd: "/w".into(),
            uid: 1000,
            gid: 100,
            hostname: "h".into(),
            network: false,
            limits: Limits {
                wall: None,
                memory_bytes: Some(1 << 20),
                pids: Some(9),
            },
            work: "/work".into(),
        };
        let c = config(&job, "runc").unwrap();
        assert_eq!(c["process"]["args"], json!(["sh", "-c", "true"]));
        assert_eq!(c["process"]["env"], json!(["A=b"]));
        assert_eq!(c["process"]["user"]["uid"], 1000);
        assert_eq!(c["process"]["capabilities"]["effective"], json!([]));
        assert_eq!(c["process"]["noNewPrivileges"], true);
        assert_eq!(c["root"]["path"], "rootfs");
        let mounts = c["mounts"].as_array().unwrap();
        let input = mounts.iter().find(|m| m["destination"] == "/in").unwrap();
        assert_eq!(input["options"], json!(["rbind", "rro", "nosuid", "nodev"]));
        let output = mounts.iter().find(|m| m["destination"] == "/out").unwrap();
        assert_eq!(output["options"], json!(["rbind", "rw", "nosuid", "nodev"]));
        let ns = c["linux"]["namespaces"].as_array().unwrap();
        assert!(ns.contains(&json!({"type": "network"})));
        assert_eq!(c["linux"]["resources"]["pids"]["limit"], 9);
        assert_eq!(c["hostname"], "h");
    }
}
