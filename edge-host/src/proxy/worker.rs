//! A worker thread's filter VM as its streams use it: every call goes
//! through [`WorkerThread::with_vm`], which rebuilds a VM that failed and then
//! routes what the callbacks produced (HTTP calls, signals to paused streams,
//! tick changes). Also the worker's background loops: ticks, queues, HTTP
//! calls.

use super::forward;
use super::state::Shared;
use crate::host::{HttpCallRequest, Signal};
use crate::vm::{Vm, VmError};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, watch};

type Waiter = mpsc::UnboundedSender<Signal>;

/// What one worker thread holds for its streams: its VM (rebuilt when it
/// fails), the HTTP client for the filter's calls, the streams waiting for a
/// signal, and the notices its background loops wait on.
pub(super) struct WorkerThread {
    pub(super) index: usize,
    pub(super) shared: Arc<Shared>,
    pub(super) vm: RefCell<Vm>,
    pub(super) generation: Cell<u64>,
    pub(super) client: Client<HttpConnector, Full<Bytes>>,
    pub(super) waiters: RefCell<HashMap<u32, Waiter>>,
    pub(super) tick_notify: Notify,
    pub(super) rebuilt: Notify,
    pub(super) deferred_finish: RefCell<Vec<(u32, u64)>>,
    pub(super) last_rebuild: Cell<Option<Instant>>,
    pub(super) active: Cell<usize>,
}

impl WorkerThread {
    /// Runs `f` on the VM, rebuilds a VM that failed, then routes what the
    /// callbacks produced (HTTP calls, signals, tick changes).
    pub(super) fn with_vm<R>(self: &Rc<Self>, f: impl FnOnce(&mut Vm) -> Result<R, VmError>) -> Result<R, VmError> {
        let r = f(&mut self.vm.borrow_mut());
        if r.is_err() {
            self.recover();
        }
        self.after_vm();
        r
    }

    /// [`WorkerThread::with_vm`] for a stream of generation `generation`: a stream
    /// of a VM since rebuilt is gone.
    pub(super) fn stream_op<R>(
        self: &Rc<Self>,
        generation: u64,
        f: impl FnOnce(&mut Vm) -> Result<R, VmError>,
    ) -> Result<R, VmError> {
        if generation != self.generation.get() {
            return Err(VmError::Failed("the VM was rebuilt since the stream began".into()));
        }
        self.with_vm(f)
    }

    pub(super) fn recover(self: &Rc<Self>) {
        if self.vm.borrow().failure().is_none() {
            return;
        }
        if self.last_rebuild.get().is_some_and(|t| t.elapsed() < Duration::from_millis(500)) {
            return;
        }
        self.last_rebuild.set(Some(Instant::now()));
        self.shared.count(self.shared.metrics.vm_rebuilds);
        // The streams the failed VM left open are ended in the new one, so
        // that what they held (in-flight slots) is given back: see `Orphan`.
        let rebuilt = self.shared.plugin.rebuild(&mut self.vm.borrow_mut());
        match rebuilt {
            Ok(()) => {
                self.generation.set(self.generation.get() + 1);
                self.shared.healthy[self.index].store(true, Ordering::Relaxed);
                // Paused streams of the old VM end.
                for (_, w) in self.waiters.borrow_mut().drain() {
                    let _ = w.send(Signal::Reset);
                }
                self.deferred_finish.borrow_mut().clear();
                self.tick_notify.notify_one();
                self.rebuilt.notify_waiters();
                tracing::warn!(worker = self.index, "filter VM rebuilt after a failure");
            }
            Err(e) => {
                self.shared.healthy[self.index].store(false, Ordering::Relaxed);
                tracing::error!(worker = self.index, "rebuilding the filter VM failed: {e:#}");
            }
        }
    }

    pub(super) fn after_vm(self: &Rc<Self>) {
        loop {
            let Ok(mut vm) = self.vm.try_borrow_mut() else { return };
            let deferred = std::mem::take(&mut *self.deferred_finish.borrow_mut());
            for (ctx, generation) in deferred {
                if generation == self.generation.get() {
                    let _ = vm.finish_stream(ctx);
                }
            }
            let calls = vm.take_http_calls();
            let signals = vm.take_signals();
            let tick = vm.take_tick_change();
            drop(vm);
            if tick.is_some() {
                self.tick_notify.notify_one();
            }
            for (ctx, signal) in signals {
                if let Some(w) = self.waiters.borrow().get(&ctx) {
                    let _ = w.send(signal);
                }
            }
            let generation = self.generation.get();
            let empty = calls.is_empty();
            for call in calls {
                tokio::task::spawn_local(self.clone().http_call(call, generation));
            }
            if empty && self.deferred_finish.borrow().is_empty() {
                return;
            }
        }
    }

    pub(super) async fn http_call(self: Rc<Self>, call: HttpCallRequest, generation: u64) {
        let response = forward::perform_call(&self.client, &call).await;
        let m = &self.shared.metrics;
        self.shared.count(if response.is_some() { m.calls_ok } else { m.calls_failed });
        if generation != self.generation.get() {
            return; // the token belonged to a VM since rebuilt
        }
        let _ = self.with_vm(|vm| vm.deliver_http_call(call.token, response));
    }

    pub(super) async fn tick_loop(self: Rc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let period = self.vm.borrow().tick_period();
            match period {
                None => tokio::select! {
                    _ = self.tick_notify.notified() => {}
                    _ = shutdown.changed() => return,
                },
                Some(p) => tokio::select! {
                    _ = tokio::time::sleep(p) => { let _ = self.with_vm(|vm| vm.tick()); }
                    _ = self.tick_notify.notified() => {}
                    _ = shutdown.changed() => return,
                },
            }
        }
    }

    pub(super) async fn queue_loop(self: Rc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let notifier = self.vm.borrow().queue_notifier();
            tokio::select! {
                _ = notifier.notify.notified() => { let _ = self.with_vm(|vm| vm.deliver_queue_ready()); }
                _ = self.rebuilt.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    pub(super) fn finish_stream(self: &Rc<Self>, ctx: u32, generation: u64) {
        if generation != self.generation.get() {
            return;
        }
        self.waiters.borrow_mut().remove(&ctx);
        match self.vm.try_borrow_mut() {
            Ok(mut vm) => {
                let r = vm.finish_stream(ctx);
                drop(vm);
                if r.is_err() {
                    self.recover();
                }
                self.after_vm();
            }
            // Inside a VM call (cannot happen from hyper's polls, but be safe).
            Err(_) => self.deferred_finish.borrow_mut().push((ctx, generation)),
        }
    }
}
