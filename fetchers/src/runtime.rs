//! The crate's tokio runtime and the one loop that runs every network call: attempts with a
//! timeout each, retries with backoff and jitter, all inside one deadline.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Runtime;

use crate::error::{Error, Result};
use crate::options::FetchOptions;

static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();

/// The runtime shared by every warehouse of the process: two worker threads are plenty for
/// I/O, and one runtime means one connection pool per client and no thread explosion when
/// many warehouses are open.
fn runtime() -> Result<&'static Runtime> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("ware-fetch")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Io {
            op: "start the tokio runtime",
            path: String::new(),
            source: std::io::Error::other(e.clone()),
        })
}

/// Runs `fut` to completion on the crate's runtime from a plain thread. Called from inside
/// some other async context (where `block_on` would panic), it blocks a scoped helper thread
/// instead, so a caller's mistake costs a thread, not a panic.
pub(crate) fn block_on<F: Future + Send>(fut: F) -> Result<F::Output>
where
    F::Output: Send,
{
    let rt = runtime()?;
    if tokio::runtime::Handle::try_current().is_ok() {
        Ok(std::thread::scope(|s| {
            s.spawn(|| rt.block_on(fut))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        }))
    } else {
        Ok(rt.block_on(fut))
    }
}

/// Runs one warehouse call: `attempt` is called for each try; a retryable error (see
/// [`Error::is_retryable`]) waits and tries again up to `opts.retries` times; each try is
/// bounded by `opts.request_timeout` and the whole call by `opts.deadline`, after which it is
/// [`Error::Timeout`] naming `url`.
pub(crate) fn call<T, F, Fut>(opts: &FetchOptions, url: &str, mut attempt: F) -> Result<T>
where
    T: Send,
    F: FnMut(u32) -> Fut + Send,
    Fut: Future<Output = Result<T>> + Send,
{
    let deadline = opts.deadline;
    let all = async {
        let mut n: u32 = 0;
        loop {
            let result = match tokio::time::timeout(opts.request_timeout, attempt(n)).await {
                Ok(r) => r,
                Err(_) => Err(Error::Transport {
                    url: url.to_owned(),
                    message: format!("attempt timed out after {:?}", opts.request_timeout),
                }),
            };
            match result {
                Err(e) if e.is_retryable() && n < opts.retries => {
                    let wait = opts.backoff(n);
                    tracing::warn!(url, attempt = n + 1, error = %e, ?wait, "retrying");
                    tokio::time::sleep(wait).await;
                    n += 1;
                }
                other => return other,
            }
        }
    };
    block_on(async {
        match tokio::time::timeout(deadline, all).await {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(url, ?deadline, "deadline passed");
                Err(Error::Timeout {
                    url: url.to_owned(),
                    deadline,
                })
            }
        }
    })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn quick() -> FetchOptions {
        FetchOptions {
            retries: 3,
            backoff_initial: Duration::from_millis(1),
            backoff_max: Duration::from_millis(2),
            deadline: Duration::from_millis(300),
            ..FetchOptions::default()
        }
    }

    #[test]
    fn retries_only_what_may_pass_and_stops_at_the_deadline() {
        // A retryable error is tried 1 + retries times.
        let mut n = 0;
        let r: Result<()> = call(&quick(), "u", |_| {
            n += 1;
            async {
                Err(Error::Status {
                    url: "u".into(),
                    status: 503,
                    detail: String::new(),
                })
            }
        });
        assert!(matches!(r, Err(Error::Status { status: 503, .. })));
        assert_eq!(n, 4);
        // A 404 or 403 is final at once.
        for e in [
            Error::NotFound { url: "u".into() },
            Error::Status {
                url: "u".into(),
                status: 403,
                detail: String::new(),
            },
        ] {
            let mut n = 0;
            let mut e = Some(e);
            let _ = call(&quick(), "u", |_| {
                n += 1;
                let e = e.take().expect("called once");
                async move { Err::<(), _>(e) }
            });
            assert_eq!(n, 1);
        }
        // A hung attempt ends with Timeout at the deadline.
        let r: Result<()> = call(&quick(), "slow", |_| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        });
        assert!(
            matches!(r, Err(Error::Timeout { ref url, .. }) if url == "slow"),
            "{r:?}"
        );
    }

    #[test]
    fn works_from_inside_another_runtime() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let r = rt.block_on(async { call(&quick(), "u", |_| async { Ok(7) }) });
        assert_eq!(r.unwrap(), 7);
    }
}
