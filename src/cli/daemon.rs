use super::*;
use crate::daemon;

#[derive(Subcommand)]
pub enum DaemonCommand {
    /// Run the daemon in the foreground (commands start it on demand; this is for service
    /// managers and debugging). It logs to STORE/daemon.log.
    Run {
        /// Exit after this many seconds without mounts or clients [default: the store's
        /// daemon.idle_timeout_s, 60].
        #[arg(long, value_name = "SECONDS")]
        idle_timeout: Option<u64>,
    },
    /// Show whether the store's daemon runs, its pid and its mounts.
    Status,
    /// Unmount everything and stop the store's daemon.
    Stop,
}

pub(crate) fn daemon(cli: &Cli, cmd: &DaemonCommand) -> Result<()> {
    match cmd {
        DaemonCommand::Run { idle_timeout } => {
            daemon::run(&store_dir(cli), idle_timeout.map(Duration::from_secs))?;
        }
        DaemonCommand::Status => match client::running_daemon(&store_dir(cli)) {
            Some(d) => {
                let ping = d.ask(ops::Ping {})?;
                let mounts = d.ask(ops::Mounts {})?;
                if cli.json {
                    print_json(&json!({"running": true, "daemon": ping, "mounts": mounts}))?;
                } else {
                    println!("daemon running, pid {}", ping["pid"]);
                    for m in mounts {
                        let what = match m.what {
                            MountWhat::Ware(id) => id.to_string(),
                            MountWhat::All => "--all".to_string(),
                            MountWhat::Run { formula, .. } => format!("run {formula}"),
                            MountWhat::Unixfs(cid) => cid,
                            MountWhat::Warehouse { url, .. } => url,
                        };
                        println!("{} {what}", m.mountpoint.display());
                    }
                }
            }
            None => {
                if cli.json {
                    print_json(&json!({"running": false}))?;
                } else {
                    println!("no daemon running for this store");
                }
            }
        },
        DaemonCommand::Stop => {
            if let Some(d) = client::running_daemon(&store_dir(cli)) {
                // A daemon of another build answers nothing but that: it is told to stop by
                // signal, found by the pid in the store's lock file.
                let pid = match d.ask(ops::Ping {}) {
                    Ok(p) => p["pid"].as_u64().unwrap_or(0),
                    Err(_) => lock_holder(&store_dir(cli)).unwrap_or(0),
                };
                if d.ask(ops::Shutdown {}).is_err() && pid > 0 {
                    terminate(pid)?;
                }
                // Its mounts are gone once the process is.
                let deadline = std::time::Instant::now() + Duration::from_secs(15);
                while process_alive(pid) && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                anyhow::ensure!(
                    !process_alive(pid),
                    "the daemon (pid {pid}) is still running 15 s after it was asked to stop"
                );
            }
        }
    }
    Ok(())
}

/// True while a process runs (a zombie has finished: only its parent's wait is left).
pub(crate) fn process_alive(pid: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}

/// The pid written in the store's lock file by the process that holds it.
fn lock_holder(store: &std::path::Path) -> Option<u64> {
    let text = std::fs::read_to_string(client::canonical_store(store).join("ware.lock")).ok()?;
    text.trim().parse().ok()
}

/// SIGTERM to `pid` (a daemon stops on it as on `ware daemon stop`).
fn terminate(pid: u64) -> Result<()> {
    let p = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .with_context(|| format!("{pid} is not a process ID"))?;
    rustix::process::kill_process(p, rustix::process::Signal::TERM)
        .with_context(|| format!("signalling the daemon (pid {pid})"))?;
    Ok(())
}
