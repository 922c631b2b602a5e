//! Blacklist: add and remove user ids and IPs/CIDRs, and see for every entry
//! whether the edge enforces it yet. The backend says when the first edge
//! sync served each entry; entries still waiting are asked again every few
//! seconds, so the page shows the moment they get there.

use std::time::Duration;

use leptos::prelude::*;
use seckill_api::{BlacklistEntry, EdgeSync, Page};
use time::OffsetDateTime;

use super::api;
use super::local_time::moment;
use super::state::ctx;
use super::widgets::{error_box, list_foot, resource_view};
use crate::format::ago;
use crate::i18n::{Lang, tr};
use crate::model::{ApiError, BlacklistKind, encode_segment};

/// How often entries not yet at the edge are asked again.
const RECHECK_EVERY: Duration = Duration::from_secs(2);
/// At most this many waiting entries are asked per round (the first shown).
const RECHECK_MAX: usize = 20;

#[component]
pub fn BlacklistPage(lang: Lang) -> impl IntoView {
    let edges = LocalResource::new(|| api::get::<Vec<EdgeSync>>("/admin/api/edge-status"));
    if let Ok(handle) = set_interval_with_handle(move || edges.refetch(), Duration::from_secs(5)) {
        on_cleanup(move || handle.clear());
    }
    let c = ctx();
    view! {
        <div class="page-head">
            <h1>{tr(lang, "bl.title")}</h1>
        </div>
        <section class="card">
            <h2>{tr(lang, "bl.edges")}</h2>
            {resource_view(
                lang,
                edges,
                move |list: Vec<EdgeSync>| {
                    if list.is_empty() {
                        return view! { <p class="alert warn">{tr(lang, "edge.no_edges")}</p> }.into_any();
                    }
                    view! {
                        <ul class="plain">
                            {list
                                .into_iter()
                                .map(|e| {
                                    let at = e.at_ms;
                                    view! {
                                        <li>
                                            <span class="mono">{e.edge_id}</span>
                                            " · "
                                            {tr(lang, "edge.last_sync")}
                                            " "
                                            {move || ago(c.now_ms.get(), at, lang)}
                                            <span class="muted small mono">{format!(" ({})", e.version)}</span>
                                        </li>
                                    }
                                })
                                .collect_view()}
                        </ul>
                    }
                        .into_any()
                },
            )}
        </section>
        <div class="grid2">
            <Panel lang kind=BlacklistKind::Users edges />
            <Panel lang kind=BlacklistKind::Ips edges />
        </div>
    }
}

/// One list. `edges` is the page's edge-sync list, reloaded when an entry
/// reaches the edge so that both say the same.
#[component]
fn Panel(lang: Lang, kind: BlacklistKind, edges: LocalResource<Result<Vec<EdgeSync>, ApiError>>) -> impl IntoView {
    let entries = RwSignal::new(Vec::<BlacklistEntry>::new());
    let next = RwSignal::new(None::<String>);
    let list_error = RwSignal::new(None::<ApiError>);
    let listing = RwSignal::new(true);
    let input = RwSignal::new(String::new());
    let input_error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let rechecking = StoredValue::new(false);

    let load = move |cursor: Option<String>| {
        listing.set(true);
        leptos::task::spawn_local(async move {
            let mut path = format!("{}?limit=100", kind.collection());
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={}", encode_segment(c)));
            }
            match api::get::<Page<BlacklistEntry>>(&path).await {
                Ok(p) => {
                    entries.update(|e| {
                        if cursor.is_none() {
                            e.clear();
                        }
                        // A set scan may repeat an entry on a later page.
                        for item in p.items {
                            if !e.iter().any(|x| x.value == item.value) {
                                e.push(item);
                            }
                        }
                    });
                    next.set(p.next_cursor);
                    list_error.set(None);
                }
                Err(e) => list_error.set(Some(e)),
            }
            listing.set(false);
        });
    };
    load(None);

    // Asks again about the entries the edge does not have yet, one round at a time.
    let recheck = move || {
        let no_edge = edges.with_untracked(|e| matches!(e, Some(Ok(list)) if list.is_empty()));
        if rechecking.get_value() || no_edge {
            return;
        }
        let waiting: Vec<String> = entries.with_untracked(|e| {
            e.iter().filter(|x| x.reached_edge_at.is_none()).take(RECHECK_MAX).map(|x| x.value.clone()).collect()
        });
        if waiting.is_empty() {
            return;
        }
        rechecking.set_value(true);
        leptos::task::spawn_local(async move {
            let mut any_reached = false;
            for value in waiting {
                match api::get::<BlacklistEntry>(kind.entry_path(&value)).await {
                    Ok(fresh) if fresh.reached_edge_at.is_some() => {
                        any_reached = true;
                        let _ = entries.try_update(|e| {
                            if let Some(x) = e.iter_mut().find(|x| x.value == fresh.value) {
                                *x = fresh;
                            }
                        });
                    }
                    // Removed meanwhile (another operator, another tab).
                    Err(e) if e.status == 404 => {
                        let _ = entries.try_update(|e| e.retain(|x| x.value != value));
                    }
                    _ => {}
                }
            }
            if any_reached {
                edges.refetch();
            }
            let _ = rechecking.try_set_value(false);
        });
    };
    if let Ok(handle) = set_interval_with_handle(recheck, RECHECK_EVERY) {
        on_cleanup(move || handle.clear());
    }

    let change = move |value: String, add: bool| {
        busy.set(true);
        leptos::task::spawn_local(async move {
            let path = kind.entry_path(&value);
            let result = if add {
                api::bare::<BlacklistEntry>("PUT", &path).await.map(Some)
            } else {
                api::send_only("DELETE", &path, None).await.map(|()| None)
            };
            busy.set(false);
            match result {
                Ok(Some(added)) => {
                    input.set(String::new());
                    entries.update(|e| {
                        e.retain(|x| x.value != added.value);
                        e.insert(0, added);
                    });
                }
                Ok(None) => entries.update(|e| e.retain(|x| x.value != value)),
                Err(e) => input_error.set(Some(e.message)),
            }
        });
    };

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let value = input.get_untracked().trim().to_owned();
        match kind.check(&value) {
            Ok(()) => {
                input_error.set(None);
                change(value, true);
            }
            Err(key) => input_error.set(Some(tr(lang, key).to_owned())),
        }
    };

    let (title, placeholder) = match kind {
        BlacklistKind::Users => ("bl.users", "bl.user_placeholder"),
        BlacklistKind::Ips => ("bl.ips", "bl.ip_placeholder"),
    };
    view! {
        <section class="card">
            <h2>{tr(lang, title)}</h2>
            <form class="inline-form" on:submit=submit novalidate=true>
                <label class="field grow" class:invalid=move || input_error.get().is_some()>
                    <span class="sr-only">{tr(lang, title)}</span>
                    <input
                        type="text"
                        autocomplete="off"
                        spellcheck="false"
                        placeholder=tr(lang, placeholder)
                        prop:value=move || input.get()
                        on:input=move |ev| {
                            input.set(event_target_value(&ev));
                            input_error.set(None);
                        }
                    />
                    {move || input_error.get().map(|m| view! { <span class="field-error">{m}</span> })}
                </label>
                <button type="submit" class="btn primary" disabled=move || busy.get()>
                    {tr(lang, "bl.add")}
                </button>
            </form>
            {move || list_error.get().map(|e| error_box(lang, &e))}
            <ul class="entries">
                {move || {
                    entries
                        .get()
                        .into_iter()
                        .map(|entry| {
                            let remove_value = entry.value.clone();
                            view! {
                                <li>
                                    <span class="mono">{entry.value}</span>
                                    {reach_text(lang, entry.reached_edge_at)}
                                    <button
                                        class="btn small danger"
                                        disabled=move || busy.get()
                                        on:click=move |_| {
                                            let question = format!("{} {}?", tr(lang, "bl.confirm_remove"), remove_value);
                                            if window().confirm_with_message(&question).unwrap_or(false) {
                                                change(remove_value.clone(), false);
                                            }
                                        }
                                    >
                                        {tr(lang, "bl.remove")}
                                    </button>
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ul>
            {list_foot(
                lang,
                listing,
                next,
                load,
                move || {
                    if entries.with(Vec::is_empty) {
                        view! { <p class="muted">{tr(lang, "bl.empty")}</p> }.into_any()
                    } else {
                        ().into_any()
                    }
                },
            )}
        </section>
    }
}

/// "已同步到边缘 12:03:04" / "reached the edge at 12:03:04", or still waiting.
fn reach_text(lang: Lang, reached_edge_at: Option<OffsetDateTime>) -> impl IntoView {
    let (class, text) = match reached_edge_at {
        Some(at) => ("reach ok", format!("{} {}", tr(lang, "bl.reached_at"), moment(at))),
        None => ("reach wait", tr(lang, "bl.reach_waiting").to_owned()),
    };
    view! { <span class=class>{text}</span> }
}
