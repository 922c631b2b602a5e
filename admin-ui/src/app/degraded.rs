//! The degraded-mode switch: an operator sheds everything at the edge but
//! token and purchase (the seed's 降级策略), saying why, and switches it off.

use leptos::prelude::*;
use seckill_api::{DegradedMode, DegradedModeChange};

use super::api;
use super::local_time::local;
use super::widgets::{error_box, loading};
use crate::i18n::{Lang, tr};

#[component]
pub fn DegradedSwitch(lang: Lang) -> impl IntoView {
    let mode = LocalResource::new(|| api::get::<DegradedMode>("/admin/api/degraded"));
    view! {
        <section class="card degraded-card">
            <h2>{tr(lang, "degraded.title")}</h2>
            <p class="muted small">{tr(lang, "degraded.what")}</p>
            {move || match mode.get() {
                None => loading(lang).into_any(),
                Some(Err(e)) => error_box(lang, &e).into_any(),
                Some(Ok(m)) => view! { <Switch lang mode=m on_changed=move || mode.refetch() /> }.into_any(),
            }}
        </section>
    }
}

#[component]
fn Switch(lang: Lang, mode: DegradedMode, on_changed: impl Fn() + Copy + 'static) -> impl IntoView {
    let reason = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let change = move |degraded: bool| {
        let body = DegradedModeChange { degraded, reason: reason.get_untracked() };
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            match api::send::<_, DegradedMode>("PUT", "/admin/api/degraded", &body).await {
                Ok(_) => on_changed(),
                Err(e) => error.set(Some(e.message)),
            }
            busy.set(false);
        });
    };
    let status = if mode.degraded {
        let since = mode.since.map(local).unwrap_or_default();
        view! {
            <p class="alert warn" id="degraded-status">
                <b>{tr(lang, "degraded.on")}</b>
                {format!(" {} {since}: {}", tr(lang, "degraded.since"), mode.reason)}
            </p>
            <button type="button" class="btn primary" disabled=move || busy.get() on:click=move |_| change(false)>
                {tr(lang, "degraded.switch_off")}
            </button>
        }
        .into_any()
    } else {
        view! {
            <p class="ok-text" id="degraded-status">{tr(lang, "degraded.off")}</p>
            <form class="tick-form" on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                change(true);
            }>
                <input
                    type="text"
                    class="grow"
                    name="reason"
                    placeholder=tr(lang, "degraded.reason")
                    prop:value=move || reason.get()
                    on:input=move |ev| reason.set(event_target_value(&ev))
                />
                <button type="submit" class="btn danger" disabled=move || busy.get()>
                    {tr(lang, "degraded.switch_on")}
                </button>
            </form>
        }
        .into_any()
    };
    view! {
        {status}
        {move || error.get().map(|m| view! { <p class="field-error">{m}</p> })}
    }
}
