//! What both scheduler handles hold: the pool, and the count of live
//! handles that tells the pool when no more work can arrive.

use crate::runtime::pool::Pool;
use crate::runtime::worker::Worker;
use std::sync::Arc;

pub(super) struct Handle {
    pub(super) pool: Arc<Pool>,
}

impl Handle {
    pub(super) fn new(pool: Pool) -> Arc<Handle> {
        let pool = Arc::new(pool);
        pool.handle_created();
        Arc::new(Handle { pool })
    }

    /// One figure per worker (empty before the workers start).
    pub(super) fn per_worker(&self, f: impl Fn(&Worker) -> u64) -> Vec<u64> {
        self.pool.workers().iter().map(f).collect()
    }

    /// Changes a setting fixed at start; says so in the log once the
    /// workers run.
    pub(super) fn before_start(
        &self,
        what: std::fmt::Arguments<'_>,
        f: impl FnOnce(&mut crate::runtime::pool::PoolConfig),
    ) {
        if !self.pool.reconfigure(f) {
            log::warn!("{what} ignored: this scheduler's workers are already running");
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.pool.handle_dropped();
    }
}
