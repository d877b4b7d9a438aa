//! Small task helpers shared across the runtime.

use tokio::task::JoinHandle;

/// Aborts a spawned task when dropped, so a component's background tasks die with it (a
/// TaskManager dropped as a crash would take its tasks and servers along).
#[derive(Debug)]
pub struct AbortOnDrop<T>(pub JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Locks a std mutex, carrying on past poisoning: the data behind rill's mutexes (queues, maps
/// of channels) stays consistent even if a holder panicked, and a TaskManager must keep serving.
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Background tasks owned by a component (one per connection), aborted with it.
#[derive(Debug, Default)]
pub struct TaskSet {
    tasks: Vec<AbortOnDrop<()>>,
}

impl TaskSet {
    /// Spawns `fut` and keeps it; finished tasks are forgotten as new ones arrive.
    pub fn spawn(&mut self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.retain(|t| !t.0.is_finished());
        self.tasks.push(AbortOnDrop(tokio::spawn(fut)));
    }
}

/// HMAC-SHA256 of `parts`, back to back, under `key`: the MAC behind claim and write grants.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut m =
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        m.update(part);
    }
    m.finalize().into_bytes().into()
}

/// A fresh 256-bit key as 64 hex digits, from OS entropy: for keys and secrets that must be
/// unpredictable (`rill certs`' sink-store write key, a real run's secret and write key).
/// Real build only; nothing simulated may draw it (ARCHITECTURE rule 2).
#[cfg(not(madsim))]
pub fn fresh_key_hex() -> String {
    use std::fmt::Write as _;
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
