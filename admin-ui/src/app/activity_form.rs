//! Create and edit an activity, with each error next to its field.

use leptos::prelude::*;
use seckill_api::{Activity, ErrorCode};

use super::api;
use super::local_time::{local_to_utc, now_ms, offset_at};
use super::state::navigate;
use super::widgets::{error_box, loading};
use crate::form::{ActivityForm, Field, FieldErrors, patch_body};
use crate::format;
use crate::i18n::{Lang, tr};
use crate::route::Route;

/// `id`: `None` for a new activity, `Some` to edit one.
#[component]
pub fn ActivityFormPage(lang: Lang, id: Option<u64>) -> impl IntoView {
    match id {
        None => {
            let now = now_ms();
            let start = format::from_ms(now).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            let form = ActivityForm::new_default(start, offset_at(now));
            view! { <FormView lang original=None form /> }.into_any()
        }
        Some(id) => {
            let activity = LocalResource::new(move || api::get::<Activity>(format!("/admin/api/activities/{id}")));
            (move || match activity.get() {
                None => loading(lang).into_any(),
                Some(Err(e)) => error_box(lang, &e).into_any(),
                Some(Ok(a)) => {
                    let form = ActivityForm::from_activity(&a, offset_at(format::to_ms(a.starts_at)));
                    view! { <FormView lang original=Some(a) form /> }.into_any()
                }
            })
            .into_any()
        }
    }
}

#[component]
fn FormView(lang: Lang, original: Option<Activity>, form: ActivityForm) -> impl IntoView {
    let editing = original.clone();
    let form = RwSignal::new(form);
    let errors = RwSignal::new(FieldErrors::new());
    // What the server said about a field (its message, untranslated).
    let server_errors = RwSignal::new(Vec::<(Field, String)>::new());
    let submitted = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let failure = RwSignal::new(None::<String>);
    let notice = RwSignal::new(None::<&'static str>);

    // After the first submit, errors follow the typing.
    Effect::new(move |_| {
        let f = form.get();
        if submitted.get_untracked() {
            errors.set(f.validate(&local_to_utc).err().unwrap_or_default());
        }
    });

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        submitted.set(true);
        failure.set(None);
        notice.set(None);
        let new = match form.get_untracked().validate(&local_to_utc) {
            Ok(new) => new,
            Err(e) => {
                errors.set(e);
                return;
            }
        };
        errors.set(Vec::new());
        server_errors.set(Vec::new());
        let original = original.clone();
        busy.set(true);
        leptos::task::spawn_local(async move {
            let result = match &original {
                None => api::send::<_, Activity>("POST", "/admin/api/activities", &new).await,
                Some(a) => {
                    let body = patch_body(a, &new);
                    if body.is_empty() {
                        busy.set(false);
                        notice.set(Some("form.unchanged"));
                        return;
                    }
                    let path = format!("/admin/api/activities/{}", a.id);
                    api::send::<_, Activity>("PATCH", &path, &serde_json::Value::Object(body)).await
                }
            };
            busy.set(false);
            match result {
                Ok(saved) => navigate(&Route::Activity(saved.id)),
                Err(e) => match (e.code, Field::from_message(&e.message)) {
                    (Some(ErrorCode::BadRequest), Some(field)) => {
                        let message = e.message.split_once(':').map(|(_, m)| m.trim().to_owned()).unwrap_or(e.message);
                        server_errors.set(vec![(field, message)]);
                    }
                    _ => failure.set(Some(e.message)),
                },
            }
        });
    };

    let title = if editing.is_some() { "form.edit_title" } else { "form.new_title" };
    let back = editing.as_ref().map(|a| Route::Activity(a.id)).unwrap_or(Route::Activities);
    view! {
        <div class="page-head">
            <div>
                <p class="crumbs">
                    <a href=Route::Activities.href()>{tr(lang, "nav.activities")}</a>
                    {editing.as_ref().map(|a| format!(" / #{} {}", a.id, a.name))}
                </p>
                <h1>{tr(lang, title)}</h1>
            </div>
        </div>
        <form class="card form" on:submit=submit novalidate=true>
            {editing
                .as_ref()
                .filter(|a| a.status != seckill_api::ActivityStatus::Scheduled)
                .map(|_| view! { <p class="alert warn">{tr(lang, "form.editing_started")}</p> })}
            {input(lang, form, errors, server_errors, Field::Name, "form.name", "text")}
            <div class="row">
                {input(lang, form, errors, server_errors, Field::Price, "form.price", "text")}
                {input(lang, form, errors, server_errors, Field::Stock, "form.stock", "text")}
                {input(lang, form, errors, server_errors, Field::Limit, "form.limit", "text")}
            </div>
            <div class="row">
                {input(lang, form, errors, server_errors, Field::Start, "form.starts_at", "datetime-local")}
                {input(lang, form, errors, server_errors, Field::End, "form.ends_at", "datetime-local")}
            </div>
            <p class="muted small">{tr(lang, "form.tz_note")}</p>
            {move || failure.get().map(|m| view! { <p class="alert err">{m}</p> })}
            {move || notice.get().map(|k| view! { <p class="alert info">{tr(lang, k)}</p> })}
            <div class="actions">
                <button type="submit" class="btn primary" disabled=move || busy.get()>
                    {move || tr(lang, if busy.get() { "common.saving" } else { "common.save" })}
                </button>
                <a class="btn ghost" href=back.href()>
                    {tr(lang, "common.cancel")}
                </a>
            </div>
        </form>
    }
}

/// One labelled input bound to a field of the form, with its error below.
fn input(
    lang: Lang,
    form: RwSignal<ActivityForm>,
    errors: RwSignal<FieldErrors>,
    server_errors: RwSignal<Vec<(Field, String)>>,
    field: Field,
    label: &'static str,
    kind: &'static str,
) -> impl IntoView {
    let error = move || {
        errors
            .with(|e| e.iter().find(|(f, _)| *f == field).map(|(_, key)| tr(lang, key).to_owned()))
            .or_else(|| server_errors.with(|e| e.iter().find(|(f, _)| *f == field).map(|(_, m)| m.clone())))
    };
    let inputmode = match field {
        Field::Price => Some("decimal"),
        Field::Stock | Field::Limit => Some("numeric"),
        _ => None,
    };
    view! {
        <label class="field" class:invalid=move || error().is_some()>
            <span class="label">{tr(lang, label)}</span>
            <input
                type=kind
                name=field.wire()
                inputmode=inputmode
                aria-invalid=move || error().is_some().to_string()
                prop:value=move || form.with(|f| f.get(field).to_owned())
                on:input=move |ev| {
                    form.update(|f| f.set(field, event_target_value(&ev)));
                    server_errors.update(|e| e.retain(|(f, _)| *f != field));
                }
            />
            {move || error().map(|m| view! { <span class="field-error">{m}</span> })}
        </label>
    }
}
