//! The token step's proof of work (接口防刷): how many zero bits a buyer's
//! client must find before it may ask for a purchase token; 0 is off.

use leptos::prelude::*;
use seckill_api::AntiBot;
use seckill_api::pow::MAX_BITS;

use super::api;
use super::widgets::{error_box, loading};
use crate::i18n::{Lang, tr};

#[component]
pub fn AntiBotSwitch(lang: Lang) -> impl IntoView {
    let current = LocalResource::new(|| api::get::<AntiBot>("/admin/api/anti-bot"));
    view! {
        <section class="card anti-bot-card">
            <h2>{tr(lang, "anti_bot.title")}</h2>
            <p class="muted small">{tr(lang, "anti_bot.what")}</p>
            {move || match current.get() {
                None => loading(lang).into_any(),
                Some(Err(e)) => error_box(lang, &e).into_any(),
                Some(Ok(setting)) => view! { <BitsForm lang setting on_saved=move || current.refetch() /> }.into_any(),
            }}
        </section>
    }
}

#[component]
fn BitsForm(lang: Lang, setting: AntiBot, on_saved: impl Fn() + Copy + 'static) -> impl IntoView {
    let bits = RwSignal::new(setting.pow_bits.to_string());
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Ok(pow_bits) = bits.get_untracked().trim().parse::<u32>() else {
            error.set(Some(format!("0–{MAX_BITS}")));
            return;
        };
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            match api::send::<_, AntiBot>("PUT", "/admin/api/anti-bot", &AntiBot { pow_bits }).await {
                Ok(_) => on_saved(),
                Err(e) => error.set(Some(e.message)),
            }
            busy.set(false);
        });
    };
    let status = if setting.pow_bits == 0 {
        view! { <p class="warn-text" id="anti-bot-status">{tr(lang, "anti_bot.off")}</p> }.into_any()
    } else {
        view! {
            <p class="ok-text" id="anti-bot-status">{format!("{} {}", tr(lang, "anti_bot.on"), setting.pow_bits)}</p>
        }
        .into_any()
    };
    view! {
        {status}
        <form class="tick-form" on:submit=save>
            <label>
                {tr(lang, "anti_bot.bits")}
                <input
                    type="number"
                    name="pow_bits"
                    min="0"
                    max=MAX_BITS.to_string()
                    prop:value=move || bits.get()
                    on:input=move |ev| bits.set(event_target_value(&ev))
                />
            </label>
            <button type="submit" class="btn primary" disabled=move || busy.get()>
                {tr(lang, "common.save")}
            </button>
        </form>
        {move || error.get().map(|m| view! { <p class="field-error">{m}</p> })}
    }
}
