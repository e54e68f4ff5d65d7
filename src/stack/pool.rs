//! Recycles stacks by size so that spawning does not `mmap` in steady state.
//!
//! Two tiers: each worker keeps a small [`LocalCache`] it reaches without a
//! lock, and overflows into (or refills from) one process-wide list per size
//! class. Sizes are already page-rounded, so a class is an exact size: the
//! usable size a thread asks for (every stack adds the same guard page and
//! signal reserve to it).

use super::{Stack, StackError};
use std::collections::HashMap;
use std::sync::Mutex;

/// Stacks a worker keeps for itself.
const LOCAL_CAP: usize = 64;
/// Stacks kept process-wide per size class; beyond this they are unmapped.
const GLOBAL_CAP: usize = 1024;

static GLOBAL: Mutex<Option<HashMap<usize, Vec<Stack>>>> = Mutex::new(None);

/// A worker's private stash of recycled stacks.
#[derive(Default)]
pub(crate) struct LocalCache {
    stacks: Vec<Stack>,
}

impl LocalCache {
    /// A stack with `usable` bytes (page-rounded), recycled when possible.
    pub(crate) fn take(&mut self, usable: usize) -> Result<Stack, StackError> {
        let len = super::mapped_len(usable);
        if let Some(i) = self.stacks.iter().rposition(|s| s.mapped() == len) {
            return Ok(self.stacks.swap_remove(i));
        }
        let recycled = GLOBAL
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
            .and_then(|m| m.get_mut(&usable))
            .and_then(Vec::pop);
        match recycled {
            Some(s) => Ok(s),
            None => Stack::map(usable),
        }
    }

    /// Returns a stack whose thread has finished.
    pub(crate) fn give(&mut self, stack: Stack) {
        if self.stacks.len() < LOCAL_CAP {
            self.stacks.push(stack);
        } else {
            give_global(stack);
        }
    }
}

impl Drop for LocalCache {
    fn drop(&mut self) {
        for s in self.stacks.drain(..) {
            give_global(s);
        }
    }
}

fn give_global(stack: Stack) {
    let mut g = GLOBAL.lock().unwrap_or_else(|p| p.into_inner());
    let list = g.get_or_insert_with(HashMap::new).entry(stack.usable()).or_default();
    if list.len() < GLOBAL_CAP {
        list.push(stack);
    }
    // else: dropped here, which unmaps it.
}
