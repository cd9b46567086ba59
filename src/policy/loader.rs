//! One long-lived thread for every policy load, at start and on reload.
//!
//! A load of thousands of policies allocates and frees tens of megabytes at
//! once. With glibc's allocator each thread allocates from its own arena and
//! freed memory stays in that arena, so loads spread over Tokio's short-lived
//! blocking threads left a new arena's worth of memory behind after each
//! reload (resident memory more than doubled after one reload of 10,000
//! policies). On one thread every load reuses the memory of the previous
//! one. Loads are rare and already serialised by the reload loop, so one
//! thread costs no latency that matters.
//!
//! The thread runs at a lower priority (nice [`LOADER_NICE`] on Linux): a
//! reload of 10,000 policies is a few hundred milliseconds of one core, and
//! on a busy machine the Checks should have that core first. Under
//! saturation a reload therefore takes longer; the old set serves until
//! the new one is ready.
//!
//! The set a reload replaces is freed here too ([`retire`]): freeing
//! 10,000 policies takes about 30 ms, which on a request thread would hold
//! up every Check queued behind it.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

type Job = Box<dyn FnOnce() + Send>;

/// Nice value the loader thread gives itself (0 is normal, 19 lowest).
pub const LOADER_NICE: i32 = 10;

/// How long a retired set waits for the Checks still using it.
const RETIRE_WAIT: Duration = Duration::from_secs(2);

static LOADER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();

fn sender() -> Option<mpsc::Sender<Job>> {
    let lock = LOADER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("policy-loader".into())
            .spawn(move || {
                lower_priority();
                for job in rx {
                    job();
                }
            });
        if let Err(error) = spawned {
            tracing::error!(error = %error, "cannot start the policy loader thread");
        }
        Mutex::new(tx)
    });
    lock.lock().ok().map(|tx| tx.clone())
}

/// Makes the calling thread yield to the request threads. Best effort: a
/// system that refuses keeps the normal priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let thread = rustix::thread::gettid();
        if let Err(error) = rustix::process::setpriority_process(Some(thread), LOADER_NICE) {
            tracing::warn!(error = %error, "cannot lower the policy loader's priority");
        }
    }
}

/// Frees `old` on the loader thread once the Checks that still hold it are
/// done (or after [`RETIRE_WAIT`]), so its last reference is not dropped
/// on a request thread. Without a loader thread it is dropped here.
pub fn retire<T: Send + Sync + 'static>(old: Arc<T>) {
    let job: Job = Box::new(move || {
        let deadline = Instant::now() + RETIRE_WAIT;
        while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(old);
    });
    if let Some(tx) = sender() {
        let _ = tx.send(job);
    }
}

/// Runs `job` on the loader thread; `None` if that thread is gone.
pub async fn run<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(job());
    });
    sender()?.send(job).ok()?;
    rx.await.ok()
}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_loader_runs_at_a_lower_priority() {
        let nice = || rustix::process::getpriority_process(Some(rustix::thread::gettid()));
        let loader = super::run(nice).await;
        assert_eq!(loader.map(|n| n.ok()), Some(Some(super::LOADER_NICE)));
    }

    #[tokio::test]
    async fn a_retired_value_is_dropped_on_the_loader_thread_after_its_users() {
        struct Witness(std::sync::mpsc::Sender<Option<String>>);
        impl Drop for Witness {
            fn drop(&mut self) {
                let _ = self
                    .0
                    .send(std::thread::current().name().map(str::to_owned));
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let old = super::Arc::new(Witness(tx));
        let user = super::Arc::clone(&old);
        super::retire(old);
        // Still in use: not dropped yet.
        assert!(rx.recv_timeout(super::Duration::from_millis(50)).is_err());
        drop(user);
        let dropped_on = rx.recv_timeout(super::Duration::from_secs(5)).unwrap();
        assert_eq!(dropped_on.as_deref(), Some("policy-loader"));
    }

    #[tokio::test]
    async fn jobs_run_on_one_named_thread() {
        let name = || std::thread::current().name().map(str::to_owned);
        let first = super::run(name).await;
        let second = super::run(name).await;
        assert_eq!(first.clone().flatten().as_deref(), Some("policy-loader"));
        assert_eq!(first, second);
    }
}
