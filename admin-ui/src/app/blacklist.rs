//! Blacklist: add and remove user ids and IPs/CIDRs, and see when each change
//! reached the edge (the first edge sync after it carrying a new state).

use std::time::Duration;

use leptos::prelude::*;
use seckill_api::{BlacklistEntry, Page};

use super::widgets::{error_box, loading, resource_view};
use super::{api, clock, ctx, now_ms};
use crate::format::ago;
use crate::i18n::{Lang, tr};
use crate::model::{ApiError, BlacklistKind, EdgeSync, encode_segment, reached_edge};

/// How long to watch for the edge picking a change up.
const WATCH_SECS: i32 = 90;

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
            <Panel lang kind=BlacklistKind::Users />
            <Panel lang kind=BlacklistKind::Ips />
        </div>
    }
}

/// Where a change stands on its way to the edge.
#[derive(Debug, Clone, PartialEq)]
enum Reach {
    Waiting,
    Reached { edge: String, at_ms: i64 },
    NoEdge,
    NotSeen,
}

#[derive(Debug, Clone, PartialEq)]
struct Change {
    seq: u32,
    added: bool,
    value: String,
    at_ms: i64,
    reach: Reach,
}

#[component]
fn Panel(lang: Lang, kind: BlacklistKind) -> impl IntoView {
    let entries = RwSignal::new(Vec::<String>::new());
    let next = RwSignal::new(None::<String>);
    let list_error = RwSignal::new(None::<ApiError>);
    let listing = RwSignal::new(true);
    let input = RwSignal::new(String::new());
    let input_error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let changes = RwSignal::new(Vec::<Change>::new());
    let seq = StoredValue::new(0u32);

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
                        e.extend(p.items.into_iter().map(|x| x.value));
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

    // Applies a change, then watches the edges until one syncs a state made after it.
    let change = move |value: String, add: bool| {
        busy.set(true);
        leptos::task::spawn_local(async move {
            let before = api::get::<Vec<EdgeSync>>("/admin/api/edge-status").await.unwrap_or_default();
            let at_ms = now_ms();
            let path = kind.entry_path(&value);
            let result = if add {
                api::bare::<BlacklistEntry>("PUT", &path).await.map(|e| e.value)
            } else {
                api::send_only("DELETE", &path, None).await.map(|()| value.clone())
            };
            busy.set(false);
            let stored = match result {
                Ok(v) => v,
                Err(e) => {
                    input_error.set(Some(e.message));
                    return;
                }
            };
            if add {
                input.set(String::new());
                entries.update(|e| {
                    if !e.contains(&stored) {
                        e.insert(0, stored.clone());
                    }
                });
            } else {
                entries.update(|e| e.retain(|x| *x != stored));
            }
            let n = seq.get_value() + 1;
            seq.set_value(n);
            changes.update(|c| {
                c.insert(0, Change { seq: n, added: add, value: stored, at_ms, reach: Reach::Waiting });
                c.truncate(10);
            });
            let set_reach = move |reach: Reach| {
                changes.update(|c| {
                    if let Some(ch) = c.iter_mut().find(|ch| ch.seq == n) {
                        ch.reach = reach;
                    }
                })
            };
            for _ in 0..WATCH_SECS {
                api::sleep(1000).await;
                let Ok(now) = api::get::<Vec<EdgeSync>>("/admin/api/edge-status").await else { continue };
                if now.is_empty() {
                    set_reach(Reach::NoEdge);
                    return;
                }
                if let Some((edge, at_ms)) = reached_edge(&before, &now, at_ms) {
                    set_reach(Reach::Reached { edge, at_ms });
                    return;
                }
            }
            set_reach(Reach::NotSeen);
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
    let reach_of = move |value: &str| {
        changes.with(|c| c.iter().find(|ch| ch.added && ch.value == value).map(|ch| ch.reach.clone()))
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
            {move || {
                let list = changes.get();
                (!list.is_empty())
                    .then(|| {
                        view! {
                            <ul class="changes">
                                {list.into_iter().map(|ch| change_line(lang, ch)).collect_view()}
                            </ul>
                        }
                    })
            }}
            {move || list_error.get().map(|e| error_box(lang, &e))}
            <ul class="entries">
                {move || {
                    entries
                        .get()
                        .into_iter()
                        .map(|value| {
                            let remove_value = value.clone();
                            let reach = reach_of(&value);
                            view! {
                                <li>
                                    <span class="mono">{value.clone()}</span>
                                    {reach.map(|r| reach_text(lang, &r))}
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
            {move || {
                if listing.get() {
                    loading(lang).into_any()
                } else if let Some(cursor) = next.get() {
                    view! {
                        <button class="btn small" on:click=move |_| load(Some(cursor.clone()))>
                            {tr(lang, "common.load_more")}
                        </button>
                    }
                        .into_any()
                } else if entries.with(Vec::is_empty) {
                    view! { <p class="muted">{tr(lang, "bl.empty")}</p> }.into_any()
                } else {
                    ().into_any()
                }
            }}
        </section>
    }
}

fn reach_text(lang: Lang, r: &Reach) -> impl IntoView + use<> {
    let (class, text) = match r {
        Reach::Waiting => ("reach wait", tr(lang, "bl.reach_waiting").to_owned()),
        Reach::Reached { edge, at_ms } => {
            ("reach ok", format!("{} {} ({edge})", tr(lang, "bl.reached_at"), clock(*at_ms)))
        }
        Reach::NoEdge => ("reach warn", tr(lang, "edge.no_edges").to_owned()),
        Reach::NotSeen => ("reach warn", tr(lang, "bl.reach_not_seen").to_owned()),
    };
    view! { <span class=class>{text}</span> }
}

fn change_line(lang: Lang, ch: Change) -> impl IntoView {
    let action = tr(lang, if ch.added { "bl.added" } else { "bl.removed" });
    view! {
        <li>
            <span class="muted small">{clock(ch.at_ms)}</span>
            " "
            {action}
            " "
            <span class="mono">{ch.value}</span>
            " "
            {reach_text(lang, &ch.reach)}
        </li>
    }
}
