//! Dead letters: order events the worker could not write, each with its
//! reason, and the operator's two ways out: replay it (after a fix, the
//! order becomes its row) or refund it (its units go back on sale). Each is
//! done once; the backend refuses a second one and says why.

use leptos::prelude::*;
use seckill_api::{DeadLetter, DeadLetterResolution, Page};

use super::api;
use super::widgets::{error_box, list_foot};
use crate::i18n::{Lang, tr};
use crate::model::{ApiError, encode_segment};
use crate::route::Route;

#[component]
pub fn DeadLettersPage(lang: Lang) -> impl IntoView {
    let items = RwSignal::new(Vec::<DeadLetter>::new());
    let next = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<ApiError>);
    let listing = RwSignal::new(true);
    let done = RwSignal::new(None::<DeadLetterResolution>);

    let load = move |cursor: Option<String>| {
        listing.set(true);
        leptos::task::spawn_local(async move {
            let mut path = "/admin/api/dead-letters?limit=100".to_owned();
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={}", encode_segment(c)));
            }
            match api::get::<Page<DeadLetter>>(path).await {
                Ok(page) => {
                    items.update(|list| {
                        if cursor.is_none() {
                            list.clear();
                        }
                        list.extend(page.items);
                    });
                    next.set(page.next_cursor);
                    error.set(None);
                }
                Err(e) => error.set(Some(e)),
            }
            listing.set(false);
        });
    };
    load(None);

    view! {
        <div class="page-head">
            <h1>{tr(lang, "dead.title")}</h1>
            <button class="btn small" on:click=move |_| load(None)>
                {tr(lang, "common.refresh")}
            </button>
        </div>
        <p class="muted">{tr(lang, "dead.explain")}</p>
        {move || {
            done.get()
                .map(|d| {
                    let key = if d.action == "refunded" { "dead.refunded" } else { "dead.replayed" };
                    view! {
                        <p class="alert ok" role="status" data-test="dead-done">
                            {tr(lang, key)}
                            " "
                            <span class="mono">{d.order_id}</span>
                        </p>
                    }
                })
        }}
        {move || error.get().map(|e| error_box(lang, &e))}
        <section class="card flush">
            <div class="table-wrap">
                <table class="table stack" data-test="dead-letters">
                    <thead>
                        <tr>
                            <th>{tr(lang, "dead.order")}</th>
                            <th>{tr(lang, "recon.reason")}</th>
                            <th>{tr(lang, "recon.fields")}</th>
                            <th></th>
                        </tr>
                    </thead>
                    <tbody>
                        <For
                            each=move || items.get()
                            key=|d| (d.activity_id, d.id.clone())
                            children=move |d| view! { <Row lang dead=d items done /> }
                        />
                    </tbody>
                </table>
            </div>
            <div class="pad">
                {list_foot(
                    lang,
                    listing,
                    next,
                    load,
                    move || {
                        let empty = items.with(Vec::is_empty);
                        view! {
                            <p class="muted small">
                                {tr(lang, if empty { "dead.none" } else { "common.end_of_list" })}
                            </p>
                        }
                            .into_any()
                    },
                )}
            </div>
        </section>
    }
}

/// One dead letter with its two actions; a settled one leaves the list.
#[component]
fn Row(
    lang: Lang,
    dead: DeadLetter,
    items: RwSignal<Vec<DeadLetter>>,
    done: RwSignal<Option<DeadLetterResolution>>,
) -> impl IntoView {
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let (activity, id) = (dead.activity_id, dead.id.clone());
    let act = move |what: &'static str| {
        let id = id.clone();
        move |_| {
            if busy.get_untracked() {
                return;
            }
            busy.set(true);
            error.set(None);
            let id = id.clone();
            leptos::task::spawn_local(async move {
                let path = format!("/admin/api/dead-letters/{activity}/{id}/{what}");
                match api::bare::<DeadLetterResolution>("POST", &path).await {
                    Ok(resolution) => {
                        items.update(|list| list.retain(|d| !(d.activity_id == activity && d.id == id)));
                        done.set(Some(resolution));
                    }
                    Err(e) => {
                        error.set(Some(e.message));
                        busy.set(false);
                    }
                }
            });
        }
    };
    let fields = dead.fields.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
    view! {
        <tr data-order=dead.order_id.clone()>
            <td data-label=tr(lang, "dead.order")>
                <a class="mono" href=Route::Reconciliation(activity).href()>
                    {dead.order_id.clone()}
                </a>
            </td>
            <td data-label=tr(lang, "recon.reason")>
                {dead.reason.clone()}
                {move || error.get().map(|e| view! { <span class="field-error">{e}</span> })}
            </td>
            <td data-label=tr(lang, "recon.fields") class="mono small">{fields}</td>
            <td class="actions">
                <button class="btn small" data-action="replay" disabled=move || busy.get() on:click=act("replay")>
                    {tr(lang, "dead.replay")}
                </button>
                <button class="btn small danger" data-action="refund" disabled=move || busy.get() on:click=act("refund")>
                    {tr(lang, "dead.refund")}
                </button>
            </td>
        </tr>
    }
}
