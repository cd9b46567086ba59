//! Which batches of policy text passed validation in the last successful
//! load of each folder, so that a reload validates only what changed.
//!
//! Validation is the largest part of loading a big set (about 40 % of a
//! load of 10,000 policies) and a static policy's result depends only on
//! the schema and the policy's own text. A batch (see the statements
//! module) whose schema and text are, byte for byte, those of a batch that
//! was part of the previous successful load of the same folder is not
//! validated again; templates and template-linked policies always are. The
//! key is a SHA-256 of the schema and the batch, so a changed batch cannot
//! pass for an unchanged one, and all that is kept is a hash per batch.
//!
//! The record is per thread: every load of the server runs on the loader
//! thread (see the loader module), so each reload finds the previous load
//! of its folder; a load anywhere else simply validates everything.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Identifies one batch's text under one schema.
pub type Key = [u8; 32];

thread_local! {
    static CLEAN: RefCell<HashMap<PathBuf, HashSet<Key>>> = RefCell::new(HashMap::new());
}

/// The key of `batch` validated against the schema text `schema`.
pub fn key(schema: &str, batch: &str) -> Key {
    let mut hash = Sha256::new();
    hash.update((schema.len() as u64).to_le_bytes());
    hash.update(schema);
    hash.update(batch);
    hash.finalize().into()
}

/// Whether `key` was part of the last successful load of `dir`.
pub fn was_clean(dir: &Path, key: &Key) -> bool {
    CLEAN.with_borrow(|clean| clean.get(dir).is_some_and(|keys| keys.contains(key)))
}

/// Records the batches of a successful load of `dir`, replacing those of
/// the load before it.
pub fn remember(dir: &Path, keys: HashSet<Key>) {
    CLEAN.with_borrow_mut(|clean| {
        clean.insert(dir.to_owned(), keys);
    });
}
