//! The Leptos app (wasm32 only): shared state, the shell and the pages.

mod activities;
mod activity;
mod activity_form;
mod api;
mod blacklist;
mod checklist;
mod dead_letters;
mod edge;
mod orders;
mod preflight;
mod recon;
mod sse;
mod widgets;

use std::cell::Cell;
use std::time::Duration;

use leptos::prelude::*;
use seckill_api::LiveSnapshot;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::format;
use crate::i18n::{Lang, tr};
use crate::live::History;
use crate::route::{Route, Section};

const LANG_KEY: &str = "seckill.admin.lang";
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

pub fn mount() {
    std::panic::set_hook(Box::new(|info| web_sys::console::error_1(&info.to_string().into())));
    if let Some(boot) = document().get_element_by_id("boot") {
        boot.remove();
    }
    leptos::mount::mount_to_body(App);
}

fn storage() -> Option<web_sys::Storage> {
    window().local_storage().ok().flatten()
}

pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// The browser's UTC offset at the instant `ms`.
pub fn offset_at(ms: i64) -> UtcOffset {
    let minutes = -(js_sys::Date::new(&(ms as f64).into()).get_timezone_offset() as i32);
    UtcOffset::from_whole_seconds(minutes * 60).unwrap_or(UtcOffset::UTC)
}

/// `2026-11-11 20:00:00`, local time.
pub fn local(at: OffsetDateTime) -> String {
    format::datetime(at, offset_at(format::to_ms(at)))
}

/// `2026-11-11 20:00:00`, local time, of Unix milliseconds.
pub fn local_ms(ms: i64) -> String {
    format::datetime_ms(ms, offset_at(ms))
}

/// `20:00:05`, local time, of Unix milliseconds.
pub fn clock(ms: i64) -> String {
    format::clock_ms(ms, offset_at(ms))
}

/// `20:00:05` today, `2026-11-10 20:00:05` on another day; local time.
pub fn moment(at: OffsetDateTime) -> String {
    let ms = format::to_ms(at);
    format::moment_ms(ms, now_ms(), offset_at(ms))
}

/// A wall-clock time of the browser's zone as an instant (the browser knows
/// the zone's rules at that date).
pub fn local_to_utc(p: PrimitiveDateTime) -> OffsetDateTime {
    let d = js_sys::Date::new_with_year_month_day_hr_min_sec(
        p.year() as u32,
        u8::from(p.month()) as i32 - 1,
        p.day() as i32,
        p.hour() as i32,
        p.minute() as i32,
        p.second() as i32,
    );
    format::from_ms(d.get_time() as i64).unwrap_or_else(|| p.assume_utc())
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

fn stored_session_expiry() -> Option<i64> {
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

fn current_route() -> Route {
    Route::parse(&location_hash().unwrap_or_default())
}

#[component]
fn App() -> impl IntoView {
    let c = Ctx {
        lang: RwSignal::new(initial_lang()),
        auth: RwSignal::new(initial_auth()),
        route: RwSignal::new(current_route()),
        live: RwSignal::new(None),
        history: RwSignal::new(History::default()),
        conn: RwSignal::new(Conn::Off),
        now_ms: RwSignal::new(now_ms()),
    };
    CTX.with(|cell| cell.set(Some(c)));
    provide_context(c);

    let _ = window_event_listener(leptos::ev::hashchange, move |_| c.route.set(current_route()));

    // The language: kept in localStorage, on <html lang> and in the title.
    Effect::new(move |_| {
        let lang = c.lang.get();
        if let Some(s) = storage() {
            let _ = s.set_item(LANG_KEY, lang.code());
        }
        if let Some(html) = document().document_element() {
            let _ = html.set_attribute("lang", lang.html_lang());
        }
        document().set_title(tr(lang, "app.title"));
    });

    // The clock, and the session's end.
    set_interval(
        move || {
            let now = now_ms();
            c.now_ms.set(now);
            if c.auth.get_untracked() == Auth::LoggedIn && stored_session_expiry().is_some_and(|exp| exp <= now) {
                logged_out(true);
            }
        },
        Duration::from_secs(1),
    );

    // The live stream runs while logged in.
    Effect::new(move |_| {
        if c.auth.get() == Auth::LoggedIn {
            sse::open();
        } else {
            sse::close();
        }
    });

    let logged_in = Memo::new(move |_| c.auth.get() == Auth::LoggedIn);
    move || {
        let lang = c.lang.get();
        if logged_in.get() { view! { <Shell lang /> }.into_any() } else { view! { <Login lang /> }.into_any() }
    }
}

#[component]
fn Shell(lang: Lang) -> impl IntoView {
    let c = ctx();
    let route = Memo::new(move |_| c.route.get());
    let section = Memo::new(move |_| route.get().section());
    let logout = move |_| {
        leptos::task::spawn_local(async move {
            let _ = api::logout().await;
            logged_out(false);
        });
    };
    view! {
        <header class="topbar">
            <a class="brand" href="#/activities">
                <span class="logo">"秒"</span>
                <span class="brand-text">{tr(lang, "app.title")}</span>
            </a>
            <nav class="nav">
                {Section::ALL
                    .into_iter()
                    .map(|s| {
                        view! {
                            <a href=s.route().href() class:active=move || section.get() == s>
                                {tr(lang, s.label())}
                            </a>
                        }
                    })
                    .collect_view()}
            </nav>
            <div class="tools">
                <widgets::ConnBadge lang />
                <LangSwitch />
                <button class="btn small ghost" on:click=logout>
                    {tr(lang, "nav.logout")}
                </button>
            </div>
        </header>
        <main class="page">{move || page(route.get(), lang)}</main>
    }
}

fn page(route: Route, lang: Lang) -> AnyView {
    match route {
        Route::Activities => view! { <activities::ActivitiesPage lang /> }.into_any(),
        Route::NewActivity => view! { <activity_form::ActivityFormPage lang id=None /> }.into_any(),
        Route::EditActivity(id) => view! { <activity_form::ActivityFormPage lang id=Some(id) /> }.into_any(),
        Route::Activity(id) => view! { <activity::ActivityPage lang id /> }.into_any(),
        Route::Reconciliation(id) => view! { <recon::ReconciliationPage lang id /> }.into_any(),
        Route::Preflight(id) => view! { <preflight::PreflightPage lang id /> }.into_any(),
        Route::Orders { activity, status } => view! { <orders::OrdersPage lang activity status /> }.into_any(),
        Route::EdgeRules => view! { <edge::EdgeRulesPage lang /> }.into_any(),
        Route::Blacklist => view! { <blacklist::BlacklistPage lang /> }.into_any(),
        Route::Checklist => view! { <checklist::ChecklistPage lang /> }.into_any(),
        Route::DeadLetters => view! { <dead_letters::DeadLettersPage lang /> }.into_any(),
        Route::NotFound(path) => view! {
            <section class="card">
                <h1>{tr(lang, "notfound.title")}</h1>
                <p class="muted">{path}</p>
                <a class="btn" href="#/activities">
                    {tr(lang, "notfound.back")}
                </a>
            </section>
        }
        .into_any(),
    }
}

/// 中文 | EN.
#[component]
fn LangSwitch() -> impl IntoView {
    let c = ctx();
    view! {
        <div class="lang-switch" role="group" aria-label="Language / 语言">
            {[Lang::Zh, Lang::En]
                .into_iter()
                .map(|l| {
                    view! {
                        <button
                            type="button"
                            class:active=move || c.lang.get() == l
                            aria-pressed=move || (c.lang.get() == l).to_string()
                            on:click=move |_| c.lang.set(l)
                        >
                            {l.label()}
                        </button>
                    }
                })
                .collect_view()}
        </div>
    }
}

#[component]
fn Login(lang: Lang) -> impl IntoView {
    let expired = ctx().auth.get_untracked() == Auth::Expired;
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let pw = password.get_untracked();
        if pw.is_empty() {
            error.set(Some(tr(lang, "login.err.empty").into()));
            return;
        }
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            match api::login(&pw).await {
                Ok(session) => logged_in(session.expires_at),
                Err(e) => {
                    let message = if e.is_unauthorized() { tr(lang, "login.err.wrong").to_owned() } else { e.message };
                    error.set(Some(message));
                    busy.set(false);
                }
            }
        });
    };
    view! {
        <div class="login-wrap">
            <form class="card login" on:submit=submit>
                <div class="login-head">
                    <span class="logo big">"秒"</span>
                    <h1>{tr(lang, "app.title")}</h1>
                </div>
                <LangSwitch />
                {expired.then(|| view! { <p class="alert warn">{tr(lang, "login.expired")}</p> })}
                <label class="field">
                    <span class="label">{tr(lang, "login.password")}</span>
                    <input
                        type="password"
                        name="password"
                        autocomplete="current-password"
                        autofocus=true
                        prop:value=move || password.get()
                        on:input=move |ev| password.set(event_target_value(&ev))
                    />
                    {move || error.get().map(|e| view! { <span class="field-error">{e}</span> })}
                </label>
                <button type="submit" class="btn primary block" disabled=move || busy.get()>
                    {move || tr(lang, if busy.get() { "login.busy" } else { "login.submit" })}
                </button>
            </form>
        </div>
    }
}
