//! Reconciliation of one activity: Redis sold against the order stream, the
//! dead letters and the order DB; any drift in red.

use leptos::prelude::*;
use seckill_api::Reconciliation;

use super::widgets::{activity_report_page, order_badge};
use crate::format::count;
use crate::i18n::{Lang, tr};
use crate::route::Route;

#[component]
pub fn ReconciliationPage(lang: Lang, id: u64) -> impl IntoView {
    activity_report_page(lang, id, "reconciliation", "recon.title", move |r: Reconciliation| body(lang, r))
}

fn row(lang: Lang, label: &'static str, value: i64, bad: bool) -> impl IntoView {
    view! {
        <tr class:bad-row=bad>
            <th scope="row">{tr(lang, label)}</th>
            <td class="num">{count(value)}</td>
        </tr>
    }
}

fn body(lang: Lang, r: Reconciliation) -> impl IntoView {
    let accounted = r.db_holding_quantity + r.db_unreleased_quantity + r.stream_quantity + r.dead_letter_quantity;
    let verdict = if r.ok { ("alert ok", "recon.ok") } else { ("alert err", "recon.not_ok") };
    view! {
        <p class=verdict.0>{tr(lang, verdict.1)}</p>
        <div class="grid2">
            <section class="card">
                <h2>{tr(lang, "recon.redis")}</h2>
                <table class="table kv">
                    <tbody>
                        {row(lang, "activity.total", r.total_stock, false)}
                        {row(lang, "recon.redis_remaining", r.redis_remaining, false)}
                        {row(lang, "recon.redis_sold", r.redis_sold, false)}
                        <tr class:bad-row=!r.invariant_ok>
                            <th scope="row">{tr(lang, "stats.invariant")}</th>
                            <td class="num">
                                {tr(lang, if r.invariant_ok { "common.ok" } else { "stats.invariant_broken" })}
                            </td>
                        </tr>
                    </tbody>
                </table>
            </section>
            <section class="card">
                <h2>{tr(lang, "recon.accounted")}</h2>
                <table class="table kv">
                    <tbody>
                        {row(lang, "recon.db_holding", r.db_holding_quantity, false)}
                        {row(lang, "recon.db_unreleased", r.db_unreleased_quantity, false)}
                        {row(lang, "recon.stream_quantity", r.stream_quantity, false)}
                        {row(lang, "recon.dead_letter_quantity", r.dead_letter_quantity, r.dead_letter_quantity != 0)}
                        {row(lang, "recon.accounted_total", accounted, false)}
                        <tr class="drift" class:bad-row=r.drift != 0>
                            <th scope="row">{tr(lang, "recon.drift")}</th>
                            <td class="num" class:drift-bad=r.drift != 0>
                                {count(r.drift)}
                            </td>
                        </tr>
                    </tbody>
                </table>
                <p class="muted small">{tr(lang, "recon.formula")}</p>
            </section>
        </div>
        <section class="card">
            <h2>{tr(lang, "recon.counts")}</h2>
            <div class="kpis">
                <div class="kpi">
                    <span class="kpi-label">{tr(lang, "recon.stream_orders")}</span>
                    <span class="kpi-value">{count(r.stream_orders)}</span>
                </div>
                <div class="kpi">
                    <span class="kpi-label">{tr(lang, "recon.stream_pending")}</span>
                    <span class="kpi-value">{count(r.stream_pending)}</span>
                </div>
                <div class="kpi" class:bad=r.dead_letters != 0>
                    <span class="kpi-label">{tr(lang, "recon.dead_letters")}</span>
                    <span class="kpi-value">{count(r.dead_letters)}</span>
                </div>
                <div class="kpi">
                    <span class="kpi-label">{tr(lang, "recon.db_orders")}</span>
                    <span class="kpi-value">{count(r.db_orders)}</span>
                </div>
            </div>
            <div class="chips">
                {r
                    .db_orders_by_status
                    .iter()
                    .map(|s| {
                        view! {
                            <a class="chip" href=Route::Orders { activity: Some(r.activity_id), status: Some(s.status) }.href()>
                                {order_badge(lang, s.status)}
                                <b>{count(s.count)}</b>
                            </a>
                        }
                    })
                    .collect_view()}
            </div>
        </section>
        {(!r.dead_letter_samples.is_empty())
            .then(|| {
                view! {
                    <section class="card flush">
                        <div class="pad row-between">
                            <h2>{tr(lang, "recon.dead_letter_samples")}</h2>
                            <a class="btn small" href=Route::DeadLetters.href()>
                                {tr(lang, "recon.settle")}
                            </a>
                        </div>
                        <div class="table-wrap">
                            <table class="table stack">
                                <thead>
                                    <tr>
                                        <th>{tr(lang, "recon.entry")}</th>
                                        <th>{tr(lang, "recon.reason")}</th>
                                        <th>{tr(lang, "recon.fields")}</th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {r
                                        .dead_letter_samples
                                        .iter()
                                        .map(|d| {
                                            let fields = d
                                                .fields
                                                .iter()
                                                .map(|(k, v)| format!("{k}={v}"))
                                                .collect::<Vec<_>>()
                                                .join(" ");
                                            view! {
                                                <tr>
                                                    <td data-label=tr(lang, "recon.entry") class="mono">{d.entry_id.clone()}</td>
                                                    <td data-label=tr(lang, "recon.reason")>{d.reason.clone()}</td>
                                                    <td data-label=tr(lang, "recon.fields") class="mono small">{fields}</td>
                                                </tr>
                                            }
                                        })
                                        .collect_view()}
                                </tbody>
                            </table>
                        </div>
                    </section>
                }
            })}
    }
}
