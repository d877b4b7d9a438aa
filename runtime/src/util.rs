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
