//! The Leptos app (wasm32 only): the shell and its pages. The app-wide
//! signals live in `state`, the browser's time in `local_time`; pages use
//! those and `api`, never this module.

mod activities;
mod activity;
mod activity_form;
mod anti_bot;
mod api;
mod benchmarks;
mod blacklist;
mod checklist;
mod dead_letters;
mod degraded;
mod edge;
mod local_time;
mod login;
mod orders;
mod preflight;
mod recon;
mod refunds;
mod sse;
mod state;
mod widgets;

use std::time::Duration;

use leptos::prelude::*;

use crate::i18n::{Lang, tr};
use crate::route::{Route, Section};
use local_time::now_ms;
use state::{Auth, Ctx, LANG_KEY, ctx, current_route, logged_out, storage, stored_session_expiry};

pub fn mount() {
    std::panic::set_hook(Box::new(|info| web_sys::console::error_1(&info.to_string().into())));
    if let Some(boot) = document().get_element_by_id("boot") {
        boot.remove();
    }
    leptos::mount::mount_to_body(App);
}

#[component]
fn App() -> impl IntoView {
    let c = Ctx::new();
    c.install();
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
        if logged_in.get() { view! { <Shell lang /> }.into_any() } else { view! { <login::Login lang /> }.into_any() }
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
                <widgets::LangSwitch />
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
