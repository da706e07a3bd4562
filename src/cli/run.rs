use super::*;
use crate::run;

/// Run a formula: a job on lazily mounted wares, its outputs packed into wares.
///
/// The formula (JSON, docs/FORMAT.md "Formulas") names the inputs (path in the job →
/// ware ID or name; `/` is the root filesystem), the action (argv, env, cwd, uid, gid,
/// hostname, network) and the outputs (path → pack filters). Inputs are mounted through
/// the store's daemon and nothing is unpacked: the job starts at once and reads only what
/// it needs. `/` is read-only under a scratch overlay (writes are thrown away), other
/// inputs are read-only, /tmp is a tmpfs, outputs are written where the formula says and
/// packed after the job. The job's stdin, stdout and stderr are this command's.
///
/// Exits with the job's exit code (128+N when signal N killed it, 124 when it ran out of
/// time); 125 when ware itself failed. A run record (formula ID, executor, times, exit
/// code, output IDs) is kept in the store (`ware runs`) and written to `--record FILE`.
#[derive(Args)]
pub struct Run {
    /// The formula file (`-`: stdin).
    pub formula: PathBuf,
    /// `ns`: Linux namespaces (user when not root, mount, pid, uts, ipc, net) and
    /// pivot_root; `chroot`: a mount namespace and chroot only (weaker: the job shares
    /// the host's pids, network and host name); `runc`: an OCI bundle run by runc (or
    /// crun).
    #[arg(long, value_enum, default_value = "ns")]
    pub executor: Executor,
    /// Write the run record (JSON) to FILE.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Run the formula N times, each on fresh scratch, and check every run gives the same
    /// outputs and exit code (exit 1 naming what differed if not).
    #[arg(long, default_value = "1", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
}

/// List the run records the store keeps, oldest first.
#[derive(Args)]
pub struct Runs {}

pub(crate) fn run(cli: &Cli, a: &Run) -> Result<()> {
    let Run {
        formula,
        executor,
        record,
        repeat,
    } = a;
    let result = run::run(&run::RunRequest {
        store: &store_dir(cli),
        formula,
        executor: (*executor).into(),
        record: record.as_deref(),
        repeat: *repeat,
        remote: remote_options(cli)?,
        quiet: cli.quiet,
    })
    .map_err(|e| anyhow::Error::from(RunFailed(e)))?;
    if cli.json {
        print_json(&json!({
            "runs": result.records,
            "agree": result.disagreements.is_empty(),
        }))?;
    }
    if *repeat > 1 {
        run::agreement(&result)?;
    }
    let code = result.records.last().map(|r| r.exit_code).unwrap_or(0);
    if code != 0 {
        return Err(Exit(code.clamp(1, 255) as u8).into());
    }
    Ok(())
}

pub(crate) fn runs(cli: &Cli, a: &Runs) -> Result<()> {
    let _ = a;
    let runs = open(cli, false)?.ask(ops::Runs {})?;
    if cli.json {
        print_json(&serde_json::Value::Array(runs))?;
    } else {
        for r in runs {
            let s = |k: &str| r.get(k).and_then(|v| v.as_str()).unwrap_or("?").to_string();
            let outs = r
                .get("outputs")
                .and_then(|o| o.as_object())
                .map(|o| {
                    o.iter()
                        .map(|(p, id)| format!("{p}={}", id.as_str().unwrap_or("?")))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            println!(
                "{}  {}  {:<6} exit {:<3} {}",
                s("started"),
                s("formula"),
                s("executor"),
                r.get("exit_code").and_then(|v| v.as_i64()).unwrap_or(-1),
                outs
            );
        }
    }
    Ok(())
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Executor {
    Ns,
    Chroot,
    Runc,
}

impl From<Executor> for ware_exec::ExecutorKind {
    fn from(e: Executor) -> Self {
        match e {
            Executor::Ns => ware_exec::ExecutorKind::Ns,
            Executor::Chroot => ware_exec::ExecutorKind::Chroot,
            Executor::Runc => ware_exec::ExecutorKind::Runc,
        }
    }
}
