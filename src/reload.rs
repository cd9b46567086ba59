//! Hot reload: the policy folder is re-read when it changes, on SIGHUP, and
//! by a periodic content check, and the serving store is swapped whole.
//!
//! A new set is parsed and validated on a blocking thread, off the request
//! path; only a complete, valid set replaces the serving one, in one atomic
//! pointer swap, so every Check sees one consistent set. A broken set is
//! logged with file, line and policy id, counted, and reported by the
//! Status RPC and `/readyz`, while the last good set keeps serving.

use std::path::Path;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::policy::{LoadError, PolicyStore};
use crate::server::{pb::StatusResponse, Shared};

/// Quiet time after a file event before reloading: a `kubectl apply` or an
/// editor save arrives as a burst of events.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// What the last reloads did, for Status and readiness.
#[derive(Debug, Default)]
pub struct ReloadStatus {
    inner: Mutex<Counts>,
    /// Last shadow load error, so a broken shadow folder is logged once.
    shadow_error: Mutex<Option<String>>,
}

#[derive(Debug, Default, Clone)]
struct Counts {
    last_error: Option<String>,
    /// Content hash of the files that failed, so an unchanged broken
    /// folder is not parsed again on every poll.
    rejected: Option<String>,
    ok: u64,
    failed: u64,
}

impl ReloadStatus {
    fn succeeded(&self) {
        if let Ok(mut c) = self.inner.lock() {
            c.ok += 1;
            c.last_error = None;
            c.rejected = None;
        }
    }

    fn failed(&self, error: &LoadError, version: Option<String>) {
        if let Ok(mut c) = self.inner.lock() {
            c.failed += 1;
            c.last_error = Some(error.to_string());
            c.rejected = version;
        }
    }

    fn clear_error(&self) {
        if let Ok(mut c) = self.inner.lock() {
            c.last_error = None;
            c.rejected = None;
        }
    }

    fn rejected(&self) -> Option<String> {
        self.inner.lock().ok().and_then(|c| c.rejected.clone())
    }

    /// Records a shadow load error; true when it is new.
    fn shadow_failed(&self, error: &LoadError) -> bool {
        let Ok(mut last) = self.shadow_error.lock() else {
            return true;
        };
        let text = error.to_string();
        let new = last.as_deref() != Some(text.as_str());
        *last = Some(text);
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

/// Loads the policy folder (and the shadow folder) again and swaps in
/// what is valid and different. Returns whether the serving set changed.
pub async fn reload(shared: &Arc<Shared>) -> bool {
    if let (Some(dir), Some(shadow)) = (&shared.config.shadow_policy_dir, &shared.shadow) {
        reload_shadow(shared, dir, shadow).await;
    }
    let serving = shared.store.load().version.clone();
    let skip = [Some(serving.clone()), shared.status.rejected()];
    let started = std::time::Instant::now();
    match load_if_changed(shared, &shared.config.policy_dir, &shared.store, skip).await {
        Loaded::Unchanged(version) => {
            if version == serving {
                // The files are back to what serves: nothing is broken.
                shared.status.clear_error();
            }
            false
        }
        Loaded::New(store) => {
            let (version, count) = (store.version.clone(), store.policy_count);
            let old = shared.store.swap(Arc::from(store));
            crate::policy::loader::retire(old);
            shared.status.succeeded();
            crate::metrics::policy_loaded(&version, count, true);
            tracing::info!(
                policy_set.version = %version,
                policy.count = count,
                load.ms = started.elapsed().as_millis() as u64,
                "policies reloaded"
            );
            true
        }
        Loaded::Failed(version, error) => {
            crate::metrics::policy_load_failed();
            shared.status.failed(&error, version);
            tracing::error!(error = %error, "policy reload failed; the previous set keeps serving");
            false
        }
    }
}

async fn reload_shadow(shared: &Arc<Shared>, dir: &Path, shadow: &ArcSwap<PolicyStore>) {
    let skip = [Some(shadow.load().version.clone()), None];
    match load_if_changed(shared, dir, shadow, skip).await {
        Loaded::New(store) => {
            tracing::info!(policy_set.version = %store.version, "shadow policies reloaded");
            crate::policy::loader::retire(shadow.swap(Arc::from(store)));
        }
        Loaded::Unchanged(_) => {}
        Loaded::Failed(_, error) => {
            if shared.status.shadow_failed(&error) {
                tracing::warn!(error = %error, "shadow policy reload failed; the previous shadow set stays");
            }
        }
    }
}

/// What a reload attempt found.
enum Loaded {
    /// The folder's content, by version, is one of the versions to skip.
    Unchanged(String),
    New(Box<PolicyStore>),
    /// The folder's content (by version, when readable) failed to load.
    Failed(Option<String>, LoadError),
}

/// Loads a folder on the loader thread unless its content hash is one of
/// `skip` (the serving version, or a version that already failed), taking
/// what did not change from `previous` (the set serving from `dir`).
async fn load_if_changed(
    shared: &Arc<Shared>,
    dir: &Path,
    previous: &ArcSwap<PolicyStore>,
    skip: [Option<String>; 2],
) -> Loaded {
    let owned = dir.to_owned();
    let routes = shared.config.request.routes.clone();
    let previous = previous.load_full();
    let task = crate::policy::loader::run(move || {
        let version = match PolicyStore::version_of(&owned) {
            Ok(version) => version,
            Err(error) => return Loaded::Failed(None, error),
        };
        if skip.iter().flatten().any(|v| *v == version) {
            return Loaded::Unchanged(version);
        }
        match PolicyStore::reload(&owned, &routes, &previous) {
            Ok(store) => Loaded::New(Box::new(store)),
            Err(error) => Loaded::Failed(Some(version), error),
        }
    });
    task.await.unwrap_or_else(|| {
        let reason = "the policy loader thread stopped".to_owned();
        Loaded::Failed(
            None,
            LoadError::Io {
                path: dir.to_owned(),
                reason,
            },
        )
    })
}

/// Watches the policy folder (and its parent, which sees a swapped
/// symlink), listens for SIGHUP and polls; runs until the process ends.
/// The returned watcher must be kept alive for as long as reloads should run.
pub fn spawn(shared: Arc<Shared>) -> notify::Result<Option<notify::RecommendedWatcher>> {
    let (tx, rx) = mpsc::channel::<()>(16);
    let watcher = if shared.config.reload.watch {
        Some(watch(&shared, tx)?)
    } else {
        None
    };
    tokio::spawn(run(shared, rx));
    Ok(watcher)
}

fn watch(shared: &Shared, tx: mpsc::Sender<()>) -> notify::Result<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |_event| {
        // A full channel already holds a pending reload.
        let _ = tx.try_send(());
    })?;
    let dirs = std::iter::once(&shared.config.policy_dir).chain(&shared.config.shadow_policy_dir);
    for dir in dirs {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Best effort: the parent may not be readable in a locked-down pod.
            let _ = watcher.watch(parent, RecursiveMode::NonRecursive);
        }
    }
    Ok(watcher)
}

async fn run(shared: Arc<Shared>, mut events: mpsc::Receiver<()>) {
    let mut hup = hangup_stream();
    let poll_ms = shared.config.reload.poll_interval_ms;
    let mut poll = tokio::time::interval(Duration::from_millis(poll_ms.max(1)));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    poll.tick().await;
    loop {
        tokio::select! {
            Some(()) = events.recv() => {
                tokio::time::sleep(DEBOUNCE).await;
                while events.try_recv().is_ok() {}
            }
            Some(()) = recv_hup(&mut hup) => {
                tracing::info!("SIGHUP: reloading policies");
            }
            _ = poll.tick(), if poll_ms > 0 => {}
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
