//! The production checklist: the seed's five groups, each item's status and
//! evidence; manual items ticked by an operator with a note (kept in the DB).

use leptos::prelude::*;
use seckill_api::{CheckStatus, ChecklistItem, ChecklistTick};

use super::api;
use super::benchmarks::BenchResults;
use super::local_time::local;
use super::widgets::{check_badge, resource_view};
use crate::i18n::{Lang, tr};
use crate::model::{CHECK_GROUPS, checklist_counts, group_checklist};

#[component]
pub fn ChecklistPage(lang: Lang) -> impl IntoView {
    let items = LocalResource::new(|| api::get::<Vec<ChecklistItem>>("/admin/api/checklist"));
    view! {
        <div class="page-head">
            <h1>{tr(lang, "checklist.title")}</h1>
            <button class="btn" on:click=move |_| items.refetch()>
                {tr(lang, "common.refresh")}
            </button>
        </div>
        {resource_view(lang, items, move |list: Vec<ChecklistItem>| body(lang, list, move || items.refetch()))}
        <BenchResults lang />
    }
}

fn body(lang: Lang, list: Vec<ChecklistItem>, reload: impl Fn() + Copy + 'static) -> impl IntoView {
    let counts = checklist_counts(&list);
    view! {
        <div class="chips summary">
            {CheckStatus::ALL
                .into_iter()
                .zip(counts)
                .map(|(s, n)| {
                    view! {
                        <span class=format!("chip cs-{}", s.as_str())>
                            {tr(lang, &format!("check.status.{}", s.as_str()))}
                            " "
                            <b>{n}</b>
                        </span>
                    }
                })
                .collect_view()}
        </div>
        {group_checklist(&list)
            .into_iter()
            .map(|(group, items)| {
                let title = CHECK_GROUPS
                    .iter()
                    .find(|(id, _, _)| *id == group)
                    .map(|(_, zh, en)| lang.pick(zh, en, &group).to_owned())
                    .unwrap_or(group);
                view! {
                    <section class="card flush">
                        <h2 class="pad">{title}</h2>
                        <ul class="check-items">
                            {items.into_iter().map(|item| view! { <Item lang item reload /> }).collect_view()}
                        </ul>
                    </section>
                }
            })
            .collect_view()}
    }
}

#[component]
fn Item(lang: Lang, item: ChecklistItem, reload: impl Fn() + Copy + 'static) -> impl IntoView {
    let manual = item.status == CheckStatus::Manual || item.ticked || item.ticked_at.is_some();
    let ticked = RwSignal::new(item.ticked);
    let note = RwSignal::new(if manual { item.evidence.clone() } else { String::new() });
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let id = item.id.clone();
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let tick = ChecklistTick { id: id.clone(), ticked: ticked.get_untracked(), note: note.get_untracked() };
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            let body = serde_json::to_value(&tick).unwrap_or_default();
            match api::send_only("PUT", "/admin/api/checklist", Some(&body)).await {
                Ok(()) => reload(),
                Err(e) => {
                    error.set(Some(e.message));
                    busy.set(false);
                }
            }
        });
    };
    view! {
        <li class="check-item">
            <div class="check-head">
                {check_badge(lang, item.status)}
                // The seed's own name, whatever the UI language, with the English beside it.
                <b lang="zh">{item.title_zh.clone()}</b>
                <span class="muted">{item.title_en.clone()}</span>
                <span class="muted small mono">{item.id.clone()}</span>
            </div>
            {(!manual && !item.evidence.is_empty())
                .then(|| view! { <p class="evidence">{item.evidence.clone()}</p> })}
            {manual
                .then(|| {
                    view! {
                        <form class="tick-form" on:submit=save>
                            <label class="tick">
                                <input
                                    type="checkbox"
                                    prop:checked=move || ticked.get()
                                    on:change=move |ev| ticked.set(event_target_checked(&ev))
                                />
                                {tr(lang, "checklist.ticked")}
                            </label>
                            <input
                                type="text"
                                class="grow"
                                placeholder=tr(lang, "checklist.note")
                                prop:value=move || note.get()
                                on:input=move |ev| note.set(event_target_value(&ev))
                            />
                            <button type="submit" class="btn small primary" disabled=move || busy.get()>
                                {tr(lang, "common.save")}
                            </button>
                        </form>
                        {item
                            .ticked_at
                            .map(|at| {
                                view! { <p class="muted small">{format!("{} {}", tr(lang, "checklist.ticked_at"), local(at))}</p> }
                            })}
                        {move || error.get().map(|m| view! { <p class="field-error">{m}</p> })}
                    }
                })}
        </li>
    }
}
