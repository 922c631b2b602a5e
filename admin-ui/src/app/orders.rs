//! Orders: filters (activity, status) in the URL, cursor pagination.

use leptos::prelude::*;
use seckill_api::{Activity, Order, OrderStatus, Page};

use super::api;
use super::local_time::local;
use super::refunds::RefundsDue;
use super::state::navigate;
use super::widgets::{error_box, loading, order_badge};
use crate::format::{count, money};
use crate::i18n::{Lang, tr};
use crate::model::encode_segment;
use crate::route::Route;

const PAGE_SIZES: [usize; 3] = [20, 50, 100];

#[component]
pub fn OrdersPage(lang: Lang, activity: Option<u64>, status: Option<OrderStatus>) -> impl IntoView {
    let activities = LocalResource::new(|| api::get::<Vec<Activity>>("/admin/api/activities"));
    let limit = RwSignal::new(PAGE_SIZES[0]);
    // The cursors of the pages seen so far; the last one is the current page's.
    let cursors = RwSignal::new(vec![None::<String>]);
    let page = LocalResource::new(move || {
        let cursor = cursors.with(|c| c.last().cloned().flatten());
        let limit = limit.get();
        let mut query = vec![format!("limit={limit}")];
        if let Some(a) = activity {
            query.push(format!("activity_id={a}"));
        }
        if let Some(s) = status {
            query.push(format!("status={}", s.as_str()));
        }
        if let Some(c) = cursor {
            query.push(format!("cursor={}", encode_segment(&c)));
        }
        let path = format!("/admin/api/orders?{}", query.join("&"));
        async move { api::get::<Page<Order>>(&path).await }
    });

    let on_activity = move |ev: leptos::ev::Event| {
        let activity = event_target_value(&ev).parse().ok();
        navigate(&Route::Orders { activity, status });
    };
    let on_status = move |ev: leptos::ev::Event| {
        let status = OrderStatus::parse(&event_target_value(&ev));
        navigate(&Route::Orders { activity, status });
    };
    let on_limit = move |ev: leptos::ev::Event| {
        if let Ok(n) = event_target_value(&ev).parse() {
            cursors.set(vec![None]);
            limit.set(n);
        }
    };

    view! {
        <div class="page-head">
            <h1>{tr(lang, "orders.title")}</h1>
            <a class="btn small" href=crate::route::Route::DeadLetters.href()>
                {tr(lang, "dead.title")}
            </a>
        </div>
        <section class="card filters">
            <label class="field inline">
                <span class="label">{tr(lang, "orders.activity")}</span>
                <select on:change=on_activity>
                    <option value="" selected=activity.is_none()>
                        {tr(lang, "common.all")}
                    </option>
                    {move || {
                        let list = activities.get().and_then(Result::ok).unwrap_or_default();
                        let mut options: Vec<(u64, String)> = list.into_iter().map(|a| (a.id, a.name)).collect();
                        if let Some(a) = activity
                            && !options.iter().any(|(id, _)| *id == a)
                        {
                            options.push((a, String::new()));
                        }
                        options
                            .into_iter()
                            .map(|(id, name)| {
                                view! {
                                    <option value=id.to_string() selected=activity == Some(id)>
                                        {format!("#{id} {name}")}
                                    </option>
                                }
                            })
                            .collect_view()
                    }}
                </select>
            </label>
            <label class="field inline">
                <span class="label">{tr(lang, "orders.status")}</span>
                <select on:change=on_status>
                    <option value="" selected=status.is_none()>
                        {tr(lang, "common.all")}
                    </option>
                    {OrderStatus::ALL
                        .into_iter()
                        .map(|s| {
                            let wire = s.as_str();
                            view! {
                                <option value=wire selected=status == Some(s)>
                                    {tr(lang, &format!("order.status.{wire}"))}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
            </label>
            <label class="field inline">
                <span class="label">{tr(lang, "common.per_page")}</span>
                <select on:change=on_limit>
                    {PAGE_SIZES
                        .into_iter()
                        .map(|n| view! { <option value=n.to_string() selected=n == PAGE_SIZES[0]>{n}</option> })
                        .collect_view()}
                </select>
            </label>
        </section>
        <section class="card flush">
            {move || match page.get() {
                None => loading(lang).into_any(),
                Some(Err(e)) => error_box(lang, &e).into_any(),
                Some(Ok(p)) => table(lang, p, cursors).into_any(),
            }}
        </section>
        <RefundsDue lang />
    }
}

fn table(lang: Lang, page: Page<Order>, cursors: RwSignal<Vec<Option<String>>>) -> impl IntoView {
    let number = cursors.with_untracked(Vec::len);
    let next = page.next_cursor.clone();
    let empty = page.items.is_empty();
    let heads = [
        "orders.id",
        "orders.activity",
        "orders.user",
        "orders.quantity",
        "orders.amount",
        "orders.status",
        "orders.created",
        "orders.deadline",
    ];
    view! {
        <div class="table-wrap">
            <table class="table stack">
                <thead>
                    <tr>
                        {heads
                            .map(|h| {
                                let num = matches!(h, "orders.quantity" | "orders.amount");
                                view! { <th class:num=num>{tr(lang, h)}</th> }
                            })
                            .collect_view()}
                    </tr>
                </thead>
                <tbody>
                    {page
                        .items
                        .into_iter()
                        .map(|o| {
                            view! {
                                <tr>
                                    <td data-label=tr(lang, heads[0]) class="mono">{o.order_id.clone()}</td>
                                    <td data-label=tr(lang, heads[1])>
                                        <a href=Route::Activity(o.activity_id).href()>{format!("#{}", o.activity_id)}</a>
                                    </td>
                                    <td data-label=tr(lang, heads[2]) class="mono">{o.user_id.clone()}</td>
                                    <td data-label=tr(lang, heads[3]) class="num">{count(o.quantity)}</td>
                                    <td data-label=tr(lang, heads[4]) class="num">{money(o.amount_cents)}</td>
                                    <td data-label=tr(lang, heads[5])>{order_badge(lang, o.status)}</td>
                                    <td data-label=tr(lang, heads[6])>{local(o.created_at)}</td>
                                    <td data-label=tr(lang, heads[7])>{local(o.pay_deadline)}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
        {empty.then(|| view! { <p class="muted pad">{tr(lang, "orders.empty")}</p> })}
        <div class="pager">
            <button
                class="btn small"
                disabled=number <= 1
                on:click=move |_| {
                    cursors
                        .update(|c| {
                            if c.len() > 1 {
                                c.pop();
                            }
                        })
                }
            >
                {tr(lang, "common.prev")}
            </button>
            <span class="muted">{format!("{} {number}", tr(lang, "common.page"))}</span>
            <button
                class="btn small"
                disabled=next.is_none()
                on:click=move |_| {
                    if let Some(n) = next.clone() {
                        cursors.update(|c| c.push(Some(n)));
                    }
                }
            >
                {tr(lang, "common.next")}
            </button>
        </div>
    }
}
