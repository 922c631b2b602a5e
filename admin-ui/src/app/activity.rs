//! One activity: its settings, live figures and charts of sales and
//! rejections over time (the backend's last minutes, loaded when the page
//! opens, then the event stream).

use std::time::Duration;

use leptos::prelude::*;
use seckill_api::{Activity, ActivitySeries, ActivityStats};

use super::activities::live_figures;
use super::api;
use super::local_time::local;
use super::state::ctx;
use super::widgets::{Line, activity_badge, error_box, kpi, line_chart, loading, resource_view};
use crate::format::{count, money};
use crate::i18n::{Lang, tr};
use crate::route::Route;

#[component]
pub fn ActivityPage(lang: Lang, id: u64) -> impl IntoView {
    let activity = LocalResource::new(move || api::get::<Activity>(format!("/admin/api/activities/{id}")));
    let stats = LocalResource::new(move || api::get::<ActivityStats>(format!("/admin/api/activities/{id}/stats")));
    if let Ok(handle) = set_interval_with_handle(move || stats.refetch(), Duration::from_secs(5)) {
        on_cleanup(move || handle.clear());
    }
    view! {
        {move || match activity.get() {
            None => loading(lang).into_any(),
            Some(Err(e)) => error_box(lang, &e).into_any(),
            Some(Ok(a)) => header(lang, &a).into_any(),
        }}
        <LivePanel lang id />
        <section class="card">
            <h2>{tr(lang, "stats.title")}</h2>
            {resource_view(
                lang,
                stats,
                move |s: ActivityStats| {
                    view! {
                        <div class="kpis">
                            {kpi(
                                tr(lang, "stats.invariant"),
                                tr(lang, if s.invariant_ok { "common.ok" } else { "stats.invariant_broken" }).to_owned(),
                                if s.invariant_ok { "good" } else { "bad" },
                            )}
                            {kpi(tr(lang, "activity.remaining"), count(s.remaining), "")}
                            {kpi(tr(lang, "activity.sold"), count(s.sold), "")}
                            {kpi(tr(lang, "activity.tokens"), count(s.live_tokens), "")}
                            {kpi(tr(lang, "stats.stream_length"), count(s.stream_length), "")}
                        </div>
                        <p class="muted small">{tr(lang, "stats.note")}</p>
                    }
                },
            )}
        </section>
    }
}

fn header(lang: Lang, a: &Activity) -> impl IntoView + use<> {
    let id = a.id;
    view! {
        <div class="page-head">
            <div>
                <p class="crumbs">
                    <a href=Route::Activities.href()>{tr(lang, "nav.activities")}</a>
                    " / #"
                    {id}
                </p>
                <h1>{a.name.clone()} " " {activity_badge(lang, a.status)}</h1>
            </div>
            <div class="actions">
                <a class="btn" href=Route::EditActivity(id).href()>
                    {tr(lang, "activity.edit")}
                </a>
                <a class="btn" href=Route::Orders { activity: Some(id), status: None }.href()>
                    {tr(lang, "nav.orders")}
                </a>
                <a class="btn" href=Route::Reconciliation(id).href()>
                    {tr(lang, "recon.short")}
                </a>
                <a class="btn" href=Route::Preflight(id).href()>
                    {tr(lang, "preflight.short")}
                </a>
            </div>
        </div>
        <section class="card">
            <dl class="facts">
                <dt>{tr(lang, "form.price")}</dt>
                <dd>{money(a.price_cents)}</dd>
                <dt>{tr(lang, "activity.total")}</dt>
                <dd>{count(a.total_stock)}</dd>
                <dt>{tr(lang, "form.limit")}</dt>
                <dd>{count(a.limit_per_user)}</dd>
                <dt>{tr(lang, "form.starts_at")}</dt>
                <dd>{local(a.starts_at)}</dd>
                <dt>{tr(lang, "form.ends_at")}</dt>
                <dd>{local(a.ends_at)}</dd>
            </dl>
        </section>
    }
}

/// Live figures and the charts, redrawn on every snapshot.
#[component]
fn LivePanel(lang: Lang, id: u64) -> impl IntoView {
    let c = ctx();
    let past = LocalResource::new(move || api::get::<ActivitySeries>(format!("/admin/api/activities/{id}/series")));
    let live =
        Memo::new(move |_| c.live.with(|s| s.as_ref().and_then(|s| s.activities.iter().find(|a| a.id == id).cloned())));
    view! {
        <section class="card">
            <h2>{tr(lang, "live.title")}</h2>
            {move || match live.get() {
                Some(l) => live_figures(lang, &l).into_any(),
                None => view! { <p class="muted">{tr(lang, "activity.waiting_live")}</p> }.into_any(),
            }}
        </section>
        <section class="card charts">
            {move || {
                let now = c.now_ms.get();
                let past = past.get().and_then(Result::ok);
                let series = c.history.with(|h| h.series_after(id, past.as_ref(), now));
                let sales = line_chart(
                    lang,
                    "chart.sales",
                    vec![Line("sold", "activity.sold", series.sold)],
                    now,
                    true,
                );
                let rates = line_chart(
                    lang,
                    "chart.rates",
                    vec![
                        Line("purchases", "activity.purchases_rate", series.purchases),
                        Line("rejections", "activity.rejections_rate", series.rejections),
                    ],
                    now,
                    false,
                );
                view! {
                    {sales}
                    {rates}
                }
            }}
            {move || {
                past.get()
                    .and_then(Result::err)
                    .map(|e| view! { <p class="muted small">{tr(lang, "chart.past_failed")} " " {e.message}</p> })
            }}
            <p class="muted small">{tr(lang, "chart.note")}</p>
        </section>
    }
}
