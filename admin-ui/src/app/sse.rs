//! The live stream: `GET /admin/api/events` (server-sent events, `snapshot`
//! about once a second) feeding `Ctx::live` and `Ctx::history`.
//!
//! The browser's `EventSource` retries by itself after a dropped connection;
//! when it gives up (the server answered an error, e.g. 401) or goes silent,
//! this reconnects with a backoff (1 s doubling to 30 s) and probes the
//! session, so an expired one sends the operator to the login.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use leptos::prelude::*;
use seckill_api::{EdgeSync, LiveSnapshot};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{Event, EventSource, MessageEvent};

use super::api;
use super::local_time::now_ms;
use super::state::{Auth, Conn, ctx};

const EVENTS: &str = "/admin/api/events";
/// Silence after which a connection is presumed dead.
const SILENCE_MS: i64 = 15_000;
const MAX_BACKOFF_MS: u32 = 30_000;

struct Connection {
    source: EventSource,
    _on_snapshot: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(Event)>,
}

thread_local! {
    static CURRENT: RefCell<Option<Connection>> = const { RefCell::new(None) };
    /// Bumped on every (re)connect and close, so stale callbacks and timers do nothing.
    static GENERATION: Cell<u32> = const { Cell::new(0) };
    static BACKOFF_MS: Cell<u32> = const { Cell::new(1000) };
    static LAST_MESSAGE_MS: Cell<i64> = const { Cell::new(0) };
    static WATCHDOG: Cell<bool> = const { Cell::new(false) };
}

/// Starts the stream (if it is not running).
pub fn open() {
    let running = CURRENT.with(|c| c.borrow().is_some());
    if !running {
        ctx().conn.set(Conn::Connecting);
        connect();
    }
    if !WATCHDOG.with(|w| w.replace(true)) {
        set_interval(watchdog, Duration::from_secs(5));
    }
}

/// Stops the stream.
pub fn close() {
    GENERATION.with(|g| g.set(g.get().wrapping_add(1)));
    drop_current();
    ctx().conn.set(Conn::Off);
}

fn drop_current() {
    if let Some(conn) = CURRENT.with(|c| c.borrow_mut().take()) {
        conn.source.close();
    }
}

fn connect() {
    let generation = GENERATION.with(|g| {
        g.set(g.get().wrapping_add(1));
        g.get()
    });
    drop_current();
    LAST_MESSAGE_MS.with(|l| l.set(now_ms()));
    let Ok(source) = EventSource::new(EVENTS) else {
        retry_later(generation);
        return;
    };
    let on_snapshot = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        if GENERATION.with(Cell::get) != generation {
            return;
        }
        let Some(data) = ev.data().as_string() else { return };
        match serde_json::from_str::<LiveSnapshot>(&data) {
            Ok(snapshot) => {
                LAST_MESSAGE_MS.with(|l| l.set(now_ms()));
                BACKOFF_MS.with(|b| b.set(1000));
                let c = ctx();
                c.history.update(|h| h.push(&snapshot));
                c.live.set(Some(snapshot));
                if c.conn.get_untracked() != Conn::Live {
                    c.conn.set(Conn::Live);
                }
            }
            Err(e) => web_sys::console::warn_1(&format!("live snapshot not understood: {e}").into()),
        }
    });
    let watched = source.clone();
    let on_error = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
        if GENERATION.with(Cell::get) != generation {
            return;
        }
        if watched.ready_state() == EventSource::CLOSED {
            retry_later(generation);
        } else {
            // The browser retries by itself.
            ctx().conn.set(Conn::Reconnecting);
        }
    });
    let _ = source.add_event_listener_with_callback("snapshot", on_snapshot.as_ref().unchecked_ref());
    source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    CURRENT.with(|c| *c.borrow_mut() = Some(Connection { source, _on_snapshot: on_snapshot, _on_error: on_error }));
}

/// Closes the connection of `generation` and opens a new one after the backoff.
fn retry_later(generation: u32) {
    if GENERATION.with(Cell::get) != generation {
        return;
    }
    drop_current();
    let c = ctx();
    c.conn.set(Conn::Reconnecting);
    let delay = BACKOFF_MS.with(|b| {
        let d = b.get();
        b.set((d * 2).min(MAX_BACKOFF_MS));
        d
    });
    // A cheap authenticated call: a 401 here ends the session (and the stream).
    leptos::task::spawn_local(async {
        let _ = api::get::<Vec<EdgeSync>>("/admin/api/edge-status").await;
    });
    set_timeout(
        move || {
            if GENERATION.with(Cell::get) == generation && ctx().auth.get_untracked() == Auth::LoggedIn {
                connect();
            }
        },
        Duration::from_millis(delay as u64),
    );
}

fn watchdog() {
    let c = ctx();
    if c.auth.get_untracked() != Auth::LoggedIn {
        return;
    }
    let running = CURRENT.with(|cur| cur.borrow().is_some());
    let silent = now_ms() - LAST_MESSAGE_MS.with(Cell::get) > SILENCE_MS;
    if running && silent {
        retry_later(GENERATION.with(Cell::get));
    }
}
