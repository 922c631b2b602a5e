//! The login page: the password, and why a session ended if it expired.

use leptos::prelude::*;

use super::api;
use super::state::{Auth, ctx, logged_in};
use super::widgets::LangSwitch;
use crate::i18n::{Lang, tr};

#[component]
pub fn Login(lang: Lang) -> impl IntoView {
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
