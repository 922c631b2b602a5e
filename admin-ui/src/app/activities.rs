//! The start page: every activity with its live figures (from the event
//! stream, no reload).

use std::collections::BTreeSet;

use leptos::prelude::*;
use seckill_api::{Activity, ActivityLive, ActivityStatus, OrderStatus};

use super::api;
use super::local_time::local;
use super::state::ctx;
use super::widgets::{activity_badge, code_label, error_box, kpi, loading, order_badge, stock_bar};
use crate::format::{count, money, rate};
use crate::i18n::{Lang, tr};
use crate::live::{rejections_by_code, rejections_total};
use crate::route::Route;

#[component]
pub fn ActivitiesPage(lang: Lang) -> impl IntoView {
    let c = ctx();
    let list = LocalResource::new(|| api::get::<Vec<Activity>>("/admin/api/activities"));

    // An activity the stream shows but the list lacks was created elsewhere: reload the list once.
    let asked_for = StoredValue::new(BTreeSet::<u64>::new());
    Effect::new(move |_| {
        let live_ids: BTreeSet<u64> =
            c.live.with(|s| s.as_ref().map(|s| s.activities.iter().map(|a| a.id).collect()).unwrap_or_default());
        let Some(Ok(known)) = list.get() else { return };
        let unknown: BTreeSet<u64> = live_ids.into_iter().filter(|id| !known.iter().any(|a| a.id == *id)).collect();
        if !unknown.is_empty() && !unknown.is_subset(&asked_for.get_value()) {
            asked_for.update_value(|s| s.extend(unknown));
            list.refetch();
        }
    });

    view! {
        <div class="page-head">
            <h1>{tr(lang, "activities.title")}</h1>
            <a class="btn primary" href=Route::NewActivity.href()>
                {tr(lang, "activities.new")}
            </a>
        </div>
        {move || match list.get() {
            None => loading(lang).into_any(),
            Some(Err(e)) => error_box(lang, &e).into_any(),
            Some(Ok(items)) if items.is_empty() => {
                view! {
                    <section class="card empty">
                        <p>{tr(lang, "activities.empty")}</p>
                        <a class="btn primary" href=Route::NewActivity.href()>
                            {tr(lang, "activities.new")}
                        </a>
                    </section>
                }
                    .into_any()
            }
            Some(Ok(mut items)) => {
                items.sort_by_key(|a| std::cmp::Reverse(a.id));
                view! {
                    <div class="cards">
                        {items.into_iter().map(|a| view! { <ActivityCard lang activity=a /> }).collect_view()}
                    </div>
                }
                    .into_any()
            }
        }}
    }
}

#[component]
fn ActivityCard(lang: Lang, activity: Activity) -> impl IntoView {
    let c = ctx();
    let id = activity.id;
    let live =
        Memo::new(move |_| c.live.with(|s| s.as_ref().and_then(|s| s.activities.iter().find(|a| a.id == id).cloned())));
    let fallback = activity.clone();
    view! {
        <article class="card activity">
            <header class="activity-head">
                <a class="activity-name" href=Route::Activity(id).href()>
                    {activity.name.clone()}
                </a>
                {move || activity_badge(lang, live.get().map(|l| l.status).unwrap_or(fallback.status))}
            </header>
            <p class="muted small">
                {format!("#{id} · {} · ", money(activity.price_cents))}
                {local(activity.starts_at)}
                " → "
                {local(activity.ends_at)}
            </p>
            {
                let activity = activity.clone();
                move || match live.get() {
                    Some(l) => live_figures(lang, &l).into_any(),
                    None => static_figures(lang, &activity).into_any(),
                }
            }
            <footer class="actions">
                <a class="btn small" href=Route::Activity(id).href()>
                    {tr(lang, "activity.details")}
                </a>
                <a class="btn small" href=Route::EditActivity(id).href()>
                    {tr(lang, "activity.edit")}
                </a>
                <a class="btn small" href=Route::Orders { activity: Some(id), status: None }.href()>
                    {tr(lang, "nav.orders")}
                </a>
                <a class="btn small" href=Route::Reconciliation(id).href()>
                    {tr(lang, "recon.short")}
                </a>
                // Before the start, the pre-flight check is the next thing to look at.
                <a
                    class="btn small"
                    class:primary=activity.status == ActivityStatus::Scheduled
                    href=Route::Preflight(id).href()
                >
                    {tr(lang, "preflight.short")}
                </a>
            </footer>
        </article>
    }
}

/// Remaining, sold and the stock bar from the REST answer, until the stream speaks.
fn static_figures(lang: Lang, a: &Activity) -> impl IntoView + use<> {
    view! {
        <div class="kpis">
            {kpi(tr(lang, "activity.remaining"), count(a.remaining), "")}
            {kpi(tr(lang, "activity.sold"), count(a.sold), "")}
            {kpi(tr(lang, "activity.total"), count(a.total_stock), "")}
        </div>
        {stock_bar(lang, a.sold, a.total_stock)}
        <p class="muted small">{tr(lang, "activity.waiting_live")}</p>
    }
}

/// Everything the stream says about one activity.
pub fn live_figures(lang: Lang, l: &ActivityLive) -> impl IntoView + use<> {
    let rejected = rejections_total(l);
    let by_code = rejections_by_code(l);
    let id = l.id;
    view! {
        <div class="kpis">
            {kpi(tr(lang, "activity.remaining"), count(l.remaining), "")}
            {kpi(tr(lang, "activity.sold"), count(l.sold), "good")}
            {kpi(tr(lang, "activity.tokens"), count(l.live_tokens), "")}
            {kpi(tr(lang, "activity.purchases_rate"), rate(l.purchases_per_sec), "good")}
            {kpi(tr(lang, "activity.rejections_rate"), rate(rejected), if rejected > 0.0 { "bad" } else { "" })}
        </div>
        {stock_bar(lang, l.sold, l.total_stock)}
        <div class="chips">
            {OrderStatus::ALL
                .into_iter()
                .map(|s| {
                    let n: i64 = l.orders_by_status.iter().filter(|c| c.status == s).map(|c| c.count).sum();
                    view! {
                        <a class="chip" href=Route::Orders { activity: Some(id), status: Some(s) }.href()>
                            {order_badge(lang, s)}
                            <b>{count(n)}</b>
                        </a>
                    }
                })
                .collect_view()}
        </div>
        {(!by_code.is_empty())
            .then(|| {
                view! {
                    <div class="chips rejections">
                        <span class="muted small">{tr(lang, "activity.rejections_by_reason")}</span>
                        {by_code
                            .into_iter()
                            .map(|(code, per_sec)| {
                                view! {
                                    <span class="chip bad">
                                        {code_label(lang, code)}
                                        " "
                                        <b>{rate(per_sec)}</b>
                                    </span>
                                }
                            })
                            .collect_view()}
                    </div>
                }
            })}
    }
}
