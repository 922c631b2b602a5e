//! Ending a stream exactly once. hyper drops a response body when the client
//! goes away, so the guard that travels with the body is what guarantees
//! `proxy_on_done`/`on_log`/`on_delete` run — and the filter's in-flight
//! slots are given back — however the stream ends.

use super::worker::WorkerThread;
use crate::vm::Decision;
use std::rc::Rc;

/// Finishes its stream (`on_done`, `on_log`, `on_delete`) exactly once: when
/// the response body ends, or when it is dropped (the client went away).
pub(crate) struct StreamGuard {
    pub(super) worker: Rc<WorkerThread>,
    pub(super) ctx: u32,
    pub(super) generation: u64,
    pub(super) done: bool,
}

impl StreamGuard {
    pub(crate) fn finish(&mut self) {
        if !std::mem::replace(&mut self.done, true) {
            self.worker.finish_stream(self.ctx, self.generation);
        }
    }

    /// Runs `proxy_on_response_body` for a chunk; `None` when the VM failed
    /// (the body then passes through).
    pub(crate) fn response_body(&self, chunk: &[u8], end_of_stream: bool) -> Option<(Decision, Vec<u8>)> {
        let ctx = self.ctx;
        let d = self.worker.stream_op(self.generation, |vm| vm.on_response_body(ctx, chunk, end_of_stream)).ok()?;
        let body = match d {
            Decision::Continue => self.worker.stream_op(self.generation, |vm| Ok(vm.take_response_body(ctx))).ok()?,
            _ => Vec::new(),
        };
        Some((d, body))
    }

    /// Takes what the filter held back (at the end of the body).
    pub(crate) fn take_held_body(&self) -> Vec<u8> {
        let ctx = self.ctx;
        self.worker.stream_op(self.generation, |vm| Ok(vm.take_response_body(ctx))).unwrap_or_default()
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.finish();
    }
}
