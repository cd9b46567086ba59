//! Hot reload: the policy folder is re-read when it changes, on SIGHUP, and
//! by a periodic content check, and the serving store is swapped whole.
//!
//! A new set is parsed and validated on a blocking thread, off the request
//! path; only a complete, valid set replaces the serving one, in one atomic
//! pointer swap, so every Check sees one consistent set. A broken set is
//! logged with file, line and policy id, counted, and reported by the
//! Status RPC and `/readyz`, while the last good set keeps serving.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::policy::{LoadError, PolicyStore};
use crate::server::{pb::StatusResponse, Shared};

/// Quiet time after a file event before reloading: a `kubectl apply` or an
/// editor save arrives as a burst of events.
const DEBOUNCE: Duration = Duration::from_millis(250);
/// Content check interval, for filesystems whose events are unreliable.
const POLL: Duration = Duration::from_secs(5);

/// What the last reloads did, for Status and readiness.
#[derive(Debug, Default)]
pub struct ReloadStatus {
    inner: Mutex<Counts>,
}

#[derive(Debug, Default, Clone)]
struct Counts {
    last_error: Option<String>,
    ok: u64,
    failed: u64,
}

impl ReloadStatus {
    fn succeeded(&self) {
        if let Ok(mut c) = self.inner.lock() {
            c.ok += 1;
            c.last_error = None;
        }
    }

    fn failed(&self, error: &LoadError) -> bool {
        let Ok(mut c) = self.inner.lock() else {
            return true;
        };
        c.failed += 1;
        let text = error.to_string();
        let new = c.last_error.as_deref() != Some(text.as_str());
        c.last_error = Some(text);
        new
    }

    /// The last load error, if the newest files did not load.
    pub fn last_error(&self) -> Option<String> {
        self.inner.lock().ok().and_then(|c| c.last_error.clone())
    }

    /// Status RPC answer for the serving store.
    pub fn report(&self, store: &PolicyStore) -> StatusResponse {
        let counts = self.inner.lock().map(|c| c.clone()).unwrap_or_default();
        StatusResponse {
            policy_set_version: store.version.clone(),
            policy_count: u32::try_from(store.policy_count).unwrap_or(u32::MAX),
            loaded_at: crate::mapping::datetime(store.loaded_at),
            last_error: counts.last_error.unwrap_or_default(),
            reloads_ok: counts.ok,
            reloads_failed: counts.failed,
        }
    }
}

/// Loads the policy folder again and swaps it in if it is valid and
/// different. Returns whether the serving set changed.
pub async fn reload(shared: &Arc<Shared>) -> bool {
    let dir = shared.config.policy_dir.clone();
    let routes = shared.config.request.routes.clone();
    let loaded = tokio::task::spawn_blocking(move || PolicyStore::load(&dir, &routes)).await;
    let result = match loaded {
        Ok(result) => result,
        Err(join) => Err(LoadError::Io {
            path: shared.config.policy_dir.clone(),
            reason: format!("loader stopped: {join}"),
        }),
    };
    match result {
        Ok(store) if store.version == shared.store.load().version => {
            shared.status.succeeded();
            false
        }
        Ok(store) => {
            let (version, count) = (store.version.clone(), store.policy_count);
            shared.store.store(Arc::new(store));
            shared.status.succeeded();
            crate::metrics::policy_loaded(&version, count, true);
            tracing::info!(policy_set.version = %version, policy.count = count, "policies reloaded");
            true
        }
        Err(error) => {
            crate::metrics::policy_load_failed();
            if shared.status.failed(&error) {
                tracing::error!(error = %error, "policy reload failed; the previous set keeps serving");
            }
            false
        }
    }
}

/// Watches the policy folder (and its parent, which sees a swapped
/// symlink), listens for SIGHUP and polls; runs until the process ends.
/// The returned watcher must be kept alive for as long as reloads should run.
pub fn spawn(shared: Arc<Shared>) -> notify::Result<notify::RecommendedWatcher> {
    let (tx, rx) = mpsc::channel::<()>(16);
    let mut watcher = notify::recommended_watcher(move |_event| {
        // A full channel already holds a pending reload.
        let _ = tx.try_send(());
    })?;
    let dir = shared.config.policy_dir.clone();
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        // Best effort: the parent may not be readable in a locked-down pod.
        let _ = watcher.watch(parent, RecursiveMode::NonRecursive);
    }
    tokio::spawn(run(shared, rx));
    Ok(watcher)
}

async fn run(shared: Arc<Shared>, mut events: mpsc::Receiver<()>) {
    let mut hup = hangup_stream();
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            Some(()) = events.recv() => {
                tokio::time::sleep(DEBOUNCE).await;
                while events.try_recv().is_ok() {}
            }
            Some(()) = recv_hup(&mut hup) => {
                tracing::info!("SIGHUP: reloading policies");
            }
            _ = poll.tick() => {}
        }
        reload(&shared).await;
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(unix)]
fn hangup_stream() -> Hangup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}
#[cfg(unix)]
async fn recv_hup(hup: &mut Hangup) -> Option<()> {
    match hup {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}
