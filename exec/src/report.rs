//! What the sandbox's child and the parent share: the numbered setup steps, a failed step,
//! the fixed-size records the child writes on its report pipe, and the pipes it gets. Used on
//! both sides of the clone, so async-signal-safe like the child: no allocation.

use libc::c_int;

use crate::sys::{Errno, SysResult};

/// Declares [`Step`] and its descriptions from one list, numbered from 1 in list order.
macro_rules! steps {
    ($first:ident => $first_what:literal, $($name:ident => $what:literal,)*) => {
        /// A step of the setup, reported to the parent on failure.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u32)]
        pub(crate) enum Step {
            $first = 1,
            $($name,)*
        }

        impl Step {
            const ALL: &[Step] = &[Step::$first, $(Step::$name,)*];

            /// What the step does, for error messages.
            pub(crate) fn describe(self) -> &'static str {
                match self {
                    Step::$first => $first_what,
                    $(Step::$name => $what,)*
                }
            }
        }
    };
}

steps! {
    ParentGone => "checking the caller is alive",
    UserNs => "writing the user namespace id maps",
    RebindRoot => "binding / onto itself (it is not a mount point)",
    MakePrivate => "making mounts private",
    Scratch => "mounting the scratch tmpfs",
    Overlay => "mounting the overlay root",
    Proc => "mounting /proc",
    Dev => "assembling /dev",
    Tmp => "mounting /tmp",
    BindSource => "opening bind source",
    BindTarget => "resolving bind target",
    BindMount => "mounting bind",
    PivotRoot => "pivot_root",
    Chroot => "chroot",
    Hostname => "setting the hostname",
    Loopback => "bringing up lo",
    Signals => "setting signal dispositions",
    Fork => "forking the job",
    Capabilities => "bounding capabilities",
    Ids => "setting user and group ids",
    IdsCheck => "checking the job's real, effective and saved ids are the ones asked for",
    NoNewPrivs => "setting no_new_privs",
    Cwd => "changing to the working directory",
    Exec => "execve",
}

impl Step {
    /// The step a report's number names.
    pub(crate) fn from_u32(v: u32) -> Option<Step> {
        Step::ALL.iter().copied().find(|s| *s as u32 == v)
    }
}

/// Report record kinds.
pub(crate) const REPORT_FAILURE: u32 = 1;
pub(crate) const REPORT_STATUS: u32 = 2;
/// One record: kind, step, index (which bind or candidate), value (errno or wait status).
pub(crate) const REPORT_LEN: usize = 16;

pub(crate) fn encode(kind: u32, step: u32, index: u32, value: i32) -> [u8; REPORT_LEN] {
    let mut r = [0u8; REPORT_LEN];
    r[0..4].copy_from_slice(&kind.to_ne_bytes());
    r[4..8].copy_from_slice(&step.to_ne_bytes());
    r[8..12].copy_from_slice(&index.to_ne_bytes());
    r[12..16].copy_from_slice(&value.to_ne_bytes());
    r
}

/// A failed step: which, for which item, and the errno.
#[derive(Clone, Copy)]
pub(crate) struct Fail {
    pub step: Step,
    pub index: u32,
    pub errno: Errno,
}

pub(crate) trait Ctx<T> {
    fn at(self, step: Step) -> Result<T, Fail>;
    fn at_item(self, step: Step, index: usize) -> Result<T, Fail>;
}

impl<T> Ctx<T> for SysResult<T> {
    fn at(self, step: Step) -> Result<T, Fail> {
        self.map_err(|errno| Fail {
            step,
            index: 0,
            errno,
        })
    }
    fn at_item(self, step: Step, index: usize) -> Result<T, Fail> {
        self.map_err(|errno| Fail {
            step,
            index: index as u32,
            errno,
        })
    }
}

/// Descriptors the child gets from the parent.
pub(crate) struct ChildFds {
    /// Write end of the report pipe.
    pub report: c_int,
    /// Read end of the liveness pipe: it hangs up when the parent is gone.
    pub alive: c_int,
}

pub(crate) fn parent_alive(fds: &ChildFds) -> bool {
    let mut p = libc::pollfd {
        fd: fds.alive,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let r = unsafe { libc::poll(&mut p, 1, 0) };
    !(r > 0 && p.revents & (libc::POLLHUP | libc::POLLERR) != 0)
}
