//! Everything the sandbox's child processes need, prepared in the parent: after fork they may
//! not allocate (the caller is multithreaded: another thread may hold the allocator's lock), so
//! every path, argv/envp array and /proc file content is built here.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use libc::c_char;

use crate::{ExecError, Job, sys};

/// Which kind of sandbox the child builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Full assembly, pivot_root, pid namespace.
    Ns,
    /// Full assembly, chroot, no pid namespace.
    Chroot,
    /// Only the overlay root (at `Plan::newroot`); the job is the OCI runtime itself.
    Runtime,
}

/// A bind mount, ready for the child.
pub(crate) struct BindPlan {
    pub source: CString,
    /// Target relative to the new root, components joined by '/', no NUL.
    pub target: Vec<u8>,
    pub writable: bool,
    pub dir: bool,
}

/// What the job process does after the sandbox is built.
pub(crate) struct ExecPlan {
    /// Own the strings `argv_ptrs` and `envp_ptrs` point into.
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    pub argv_ptrs: Vec<*const c_char>,
    pub envp_ptrs: Vec<*const c_char>,
    /// Paths execve tries in order (argv[0] itself, or argv[0] in each PATH entry).
    pub candidates: Vec<CString>,
    pub cwd: CString,
    pub uid: u32,
    pub gid: u32,
    /// setgroups/setgid/setuid (false in a user namespace: the ids are already mapped).
    pub set_ids: bool,
    /// Bound the capabilities and set no_new_privs (false for the OCI runtime).
    pub confine: bool,
    /// Also drop CAP_SYS_CHROOT: set when `/` had to be rebound, where a chroot would let the
    /// job climb out of its root (see [`Plan::rebind_root`]).
    pub drop_chroot: bool,
}

pub(crate) struct Plan {
    pub mode: Mode,
    /// Extra clone flags (namespaces).
    pub clone_flags: u64,
    /// (uid_map, gid_map) contents when a user namespace is created.
    pub userns: Option<(Vec<u8>, Vec<u8>)>,
    /// `/` is not a mount point (the caller runs in a chroot): the child first binds a private
    /// copy of its tree onto `/` and chroots into it, so that `/` can be made private and
    /// pivot_root works. The job's root then sits on the hidden mount that held the chroot, so
    /// the ns executor also drops CAP_SYS_CHROOT (with it, a root job could climb there).
    pub rebind_root: bool,
    pub lower: CString,
    pub scratch: CString,
    pub upper: CString,
    pub workdir: CString,
    pub newroot: CString,
    /// Mode, uid and gid of the lower root directory, given to the overlay's upper root.
    pub root_mode: u32,
    pub root_owner: Option<(u32, u32)>,
    pub userxattr: bool,
    pub binds: Vec<BindPlan>,
    pub hostname: Option<Vec<u8>>,
    pub loopback_up: bool,
    pub devpts_gid: bool,
    pub exec: ExecPlan,
    /// Signal the init gets when the calling thread dies.
    pub init_deathsig: i32,
}

/// Normalises an absolute in-job path into '/'-joined components relative to the job's root;
/// rejects `..` (a target must say where it is, not climb) and NUL bytes.
pub(crate) fn relative_target(what: &str, p: &Path) -> Result<Vec<u8>, ExecError> {
    if !p.is_absolute() {
        return Err(ExecError::InvalidJob(format!(
            "{what} {} is not absolute",
            p.display()
        )));
    }
    let mut out = Vec::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(n.as_bytes());
            }
            Component::ParentDir | Component::Prefix(_) => {
                return Err(ExecError::InvalidJob(format!(
                    "{what} {} contains '..'",
                    p.display()
                )));
            }
        }
    }
    if out.contains(&0) || out.len() >= libc::PATH_MAX as usize {
        return Err(ExecError::InvalidJob(format!(
            "{what} {} is not a usable path",
            p.display()
        )));
    }
    Ok(out)
}

pub(crate) fn cstring(what: &str, bytes: impl Into<Vec<u8>>) -> Result<CString, ExecError> {
    CString::new(bytes).map_err(|_| ExecError::InvalidJob(format!("{what} contains a NUL byte")))
}

fn path_c(what: &str, p: &Path) -> Result<CString, ExecError> {
    cstring(what, p.as_os_str().as_bytes())
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The execve candidates for argv[0], as execvp would try them.
fn candidates(argv0: &OsStr, env: &[(OsString, OsString)]) -> Result<Vec<CString>, ExecError> {
    let a = argv0.as_bytes();
    if a.is_empty() {
        return Err(ExecError::InvalidJob("argv[0] is empty".into()));
    }
    if a.contains(&b'/') {
        return Ok(vec![cstring("argv[0]", a)?]);
    }
    let path = env
        .iter()
        .find(|(k, _)| k.as_bytes() == b"PATH")
        .map(|(_, v)| v.as_bytes().to_vec())
        .unwrap_or_else(|| DEFAULT_PATH.as_bytes().to_vec());
    path.split(|&b| b == b':')
        .map(|dir| {
            let mut c = if dir.is_empty() {
                b".".to_vec()
            } else {
                dir.to_vec()
            };
            c.push(b'/');
            c.extend_from_slice(a);
            cstring("PATH entry", c)
        })
        .collect()
}

impl ExecPlan {
    pub(crate) fn new(
        argv: &[OsString],
        env: &[(OsString, OsString)],
        cwd: &Path,
        uid: u32,
        gid: u32,
        set_ids: bool,
        confine: bool,
    ) -> Result<ExecPlan, ExecError> {
        let Some(argv0) = argv.first() else {
            return Err(ExecError::InvalidJob("argv is empty".into()));
        };
        let candidates = candidates(argv0, env)?;
        let argv: Vec<CString> = argv
            .iter()
            .map(|a| cstring("argv", a.clone().into_vec()))
            .collect::<Result<_, _>>()?;
        let envp: Vec<CString> = env
            .iter()
            .map(|(k, v)| {
                if k.is_empty() || k.as_bytes().contains(&b'=') {
                    return Err(ExecError::InvalidJob(format!("bad environment name {k:?}")));
                }
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                cstring("environment", kv)
            })
            .collect::<Result<_, _>>()?;
        let mut argv_ptrs: Vec<*const c_char> = argv.iter().map(|c| c.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        let mut envp_ptrs: Vec<*const c_char> = envp.iter().map(|c| c.as_ptr()).collect();
        envp_ptrs.push(std::ptr::null());
        if !cwd.is_absolute() {
            return Err(ExecError::InvalidJob(format!(
                "cwd {} is not absolute",
                cwd.display()
            )));
        }
        Ok(ExecPlan {
            _argv: argv,
            _envp: envp,
            argv_ptrs,
            envp_ptrs,
            candidates,
            cwd: path_c("cwd", cwd)?,
            uid,
            gid,
            set_ids,
            confine,
            drop_chroot: false,
        })
    }
}

/// The caller's effective ids.
pub(crate) fn euid_egid() -> (u32, u32) {
    // SAFETY: geteuid/getegid cannot fail and touch no memory.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// Creates `dir` (mode 0700) inside the job's work directory.
pub(crate) fn work_subdir(work: &Path, name: &str) -> Result<PathBuf, ExecError> {
    use std::os::unix::fs::DirBuilderExt;
    let p = work.join(name);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&p)
        .map_err(|e| ExecError::host("creating", &p, e))?;
    Ok(p)
}

impl Plan {
    /// The root-assembly part of a plan; `exec` says what runs in it.
    pub(crate) fn new(mode: Mode, job: &Job, mut exec: ExecPlan) -> Result<Plan, ExecError> {
        let (euid, egid) = euid_egid();
        let rootless = euid != 0;
        let rebind_root = needs_rebind(rootless)?;
        exec.drop_chroot = rebind_root && mode == Mode::Ns;
        let meta = std::fs::metadata(&job.root)
            .map_err(|e| ExecError::host("reading root", &job.root, e))?;
        if !meta.is_dir() {
            return Err(ExecError::InvalidJob(format!(
                "root {} is not a directory",
                job.root.display()
            )));
        }
        let scratch = work_subdir(&job.work, "scratch")?;
        let newroot = work_subdir(&job.work, "rootfs")?;
        let mut binds = Vec::new();
        for b in &job.mounts {
            let target = relative_target("bind target", &b.target)?;
            if target.is_empty() {
                return Err(ExecError::InvalidJob("a bind cannot target /".into()));
            }
            let m = std::fs::metadata(&b.source)
                .map_err(|e| ExecError::host("reading bind source", &b.source, e))?;
            binds.push(BindPlan {
                source: path_c("bind source", &b.source)?,
                target,
                writable: b.writable,
                dir: m.is_dir(),
            });
        }
        let mut flags = libc::CLONE_NEWNS as u64;
        if mode == Mode::Ns {
            flags |= (libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC) as u64;
            if !job.network {
                flags |= libc::CLONE_NEWNET as u64;
            }
        }
        let userns = rootless.then(|| {
            flags |= libc::CLONE_NEWUSER as u64;
            (
                format!("{} {} 1\n", job.uid, euid).into_bytes(),
                format!("{} {} 1\n", job.gid, egid).into_bytes(),
            )
        });
        let hostname = (mode == Mode::Ns && !job.hostname.is_empty())
            .then(|| job.hostname.as_bytes().to_vec());
        Ok(Plan {
            mode,
            clone_flags: flags,
            userns,
            rebind_root,
            lower: path_c("root", &job.root)?,
            upper: path_c("work", &scratch.join("upper"))?,
            workdir: path_c("work", &scratch.join("work"))?,
            scratch: path_c("work", &scratch)?,
            newroot: path_c("work", &newroot)?,
            root_mode: meta.mode() & 0o7777,
            root_owner: (!rootless).then(|| (meta.uid(), meta.gid())),
            userxattr: rootless,
            binds,
            hostname,
            loopback_up: mode == Mode::Ns && !job.network,
            devpts_gid: !rootless,
            exec,
            init_deathsig: if mode == Mode::Ns {
                libc::SIGKILL
            } else {
                libc::SIGTERM
            },
        })
    }
}

/// Whether `/` must be rebound in the child (it is not a mount point), and whether that is
/// safe: the bind lands on the mount holding `/`, so if that mount is shared the bind (and every
/// mount of the job after it) would appear in its peers outside the job's namespace. In a new
/// user namespace (`rootless`) copied mounts become slaves and nothing propagates out.
fn needs_rebind(rootless: bool) -> Result<bool, ExecError> {
    let io = std::io::Error::from_raw_os_error;
    let mount_root =
        sys::root_is_mount_root().map_err(|e| ExecError::host("looking at", "/", io(e)))?;
    if mount_root || rootless {
        return Ok(!mount_root);
    }
    match sys::root_mount_propagation() {
        Ok(p) if p & libc::MS_SHARED == 0 => Ok(true),
        Ok(_) => Err(ExecError::Unsupported(
            "/ is not a mount point (ware runs inside a chroot?) and the mount holding it is \
             shared, so the job's mounts would appear outside its namespace; make that mount \
             private (mount --make-rprivate on it, outside the chroot) or run ware where / is a \
             mount point"
                .into(),
        )),
        Err(e) => Err(ExecError::Unsupported(format!(
            "/ is not a mount point (ware runs inside a chroot?) and whether the mount holding \
             it is shared cannot be told (statmount: {}), so the job's mounts might appear \
             outside its namespace",
            io(e)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_normalised_and_never_climb() {
        assert_eq!(
            relative_target("t", Path::new("/a//b/./c/")).unwrap(),
            b"a/b/c"
        );
        assert_eq!(relative_target("t", Path::new("/")).unwrap(), b"");
        assert!(relative_target("t", Path::new("a/b")).is_err());
        assert!(relative_target("t", Path::new("/a/../../etc")).is_err());
    }

    #[test]
    fn argv0_is_looked_up_in_the_jobs_path() {
        let env = vec![("PATH".into(), "/x/bin::/y".into())];
        let c = candidates(OsStr::new("sh"), &env).unwrap();
        assert_eq!(
            c,
            [
                c"/x/bin/sh".to_owned(),
                c"./sh".to_owned(),
                c"/y/sh".to_owned()
            ]
        );
        let c = candidates(OsStr::new("./run"), &env).unwrap();
        assert_eq!(c, [c"./run".to_owned()]);
        assert_eq!(candidates(OsStr::new("ls"), &[]).unwrap().len(), 6);
    }
}
