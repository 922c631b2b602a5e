//! The app-wide signals ([`Ctx`]) and what outlives a page load in the
//! browser's storage: the language and when the session expires.

use std::cell::Cell;

use leptos::prelude::*;
use seckill_api::LiveSnapshot;
use time::OffsetDateTime;

use super::local_time::now_ms;
use crate::format;
use crate::i18n::Lang;
use crate::live::History;
use crate::route::Route;

pub const LANG_KEY: &str = "seckill.admin.lang";
const SESSION_KEY: &str = "seckill.admin.session_expires_ms";

/// Whether the operator is logged in. The session itself is an HttpOnly
/// cookie the page cannot read; it remembers only when it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    LoggedOut,
    /// The server answered 401 or the session's time ran out.
    Expired,
    LoggedIn,
}

/// The state of the live stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conn {
    Off,
    Connecting,
    Live,
    Reconnecting,
}

/// The app-wide signals.
#[derive(Clone, Copy)]
pub struct Ctx {
    pub lang: RwSignal<Lang>,
    pub auth: RwSignal<Auth>,
    pub route: RwSignal<Route>,
    pub live: RwSignal<Option<LiveSnapshot>>,
    pub history: RwSignal<History>,
    pub conn: RwSignal<Conn>,
    /// A clock ticking every second, for "3s ago" and the charts.
    pub now_ms: RwSignal<i64>,
}

thread_local! {
    static CTX: Cell<Option<Ctx>> = const { Cell::new(None) };
}

/// The app's signals (the app is single-threaded; set once at mount).
pub fn ctx() -> Ctx {
    CTX.with(|c| c.get()).expect("the app is mounted")
}

impl Ctx {
    /// The signals at start: language and session from storage, the route from the URL.
    pub fn new() -> Self {
        Ctx {
            lang: RwSignal::new(initial_lang()),
            auth: RwSignal::new(initial_auth()),
            route: RwSignal::new(current_route()),
            live: RwSignal::new(None),
            history: RwSignal::new(History::default()),
            conn: RwSignal::new(Conn::Off),
            now_ms: RwSignal::new(now_ms()),
        }
    }

    /// Makes these the signals [`ctx`] returns.
    pub fn install(self) {
        CTX.with(|cell| cell.set(Some(self)));
    }
}

pub fn storage() -> Option<web_sys::Storage> {
    window().local_storage().ok().flatten()
}

/// Opens `route` (through the URL, so back and forward work).
pub fn navigate(route: &Route) {
    let _ = window().location().set_hash(route.href().trim_start_matches('#'));
}

/// Remembers a new session's expiry and shows the dashboard.
pub fn logged_in(expires_at: OffsetDateTime) {
    if let Some(s) = storage() {
        let _ = s.set_item(SESSION_KEY, &format::to_ms(expires_at).to_string());
    }
    ctx().auth.set(Auth::LoggedIn);
}

/// Forgets the session; `expired` says whether to tell the operator why.
pub fn logged_out(expired: bool) {
    if let Some(s) = storage() {
        let _ = s.remove_item(SESSION_KEY);
    }
    let c = ctx();
    if c.auth.get_untracked() != Auth::LoggedOut || !expired {
        c.auth.set(if expired { Auth::Expired } else { Auth::LoggedOut });
    }
}

pub fn stored_session_expiry() -> Option<i64> {
    storage()?.get_item(SESSION_KEY).ok()??.parse().ok()
}

fn initial_auth() -> Auth {
    match stored_session_expiry() {
        Some(exp) if exp > now_ms() => Auth::LoggedIn,
        Some(_) => Auth::Expired,
        None => Auth::LoggedOut,
    }
}

fn initial_lang() -> Lang {
    storage().and_then(|s| s.get_item(LANG_KEY).ok().flatten()).and_then(|v| Lang::from_code(&v)).unwrap_or_default()
}

pub fn current_route() -> Route {
    Route::parse(&location_hash().unwrap_or_default())
}
