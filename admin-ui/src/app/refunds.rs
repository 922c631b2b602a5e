//! Payments that could not pay their order (late, a second payment, a wrong
//! amount): the money a provider took that has to go back, with why.

use leptos::prelude::*;
use seckill_api::payment::Payment;

use super::api;
use super::local_time::local;
use super::widgets::resource_view;
use crate::format::money;
use crate::i18n::{Lang, tr};

#[component]
pub fn RefundsDue(lang: Lang) -> impl IntoView {
    let refunds =
        LocalResource::new(|| api::get::<Vec<Payment>>("/admin/api/payments?outcome=refund_needed&limit=100"));
    view! {
        <section class="card flush refunds-card">
            <h2 class="pad">{tr(lang, "refunds.title")}</h2>
            {resource_view(lang, refunds, move |list: Vec<Payment>| table(lang, list))}
        </section>
    }
}

fn table(lang: Lang, list: Vec<Payment>) -> impl IntoView {
    if list.is_empty() {
        return view! { <p class="pad muted" id="refunds-none">{tr(lang, "refunds.none")}</p> }.into_any();
    }
    let heads = ["refunds.payment", "refunds.order", "refunds.amount", "refunds.reason", "refunds.at"];
    view! {
        <div class="table-wrap">
            <table class="table stack" data-test="refunds">
                <thead>
                    <tr>{heads.map(|h| view! { <th>{tr(lang, h)}</th> }).collect_view()}</tr>
                </thead>
                <tbody>
                    {list
                        .into_iter()
                        .map(|p| {
                            view! {
                                <tr>
                                    <td data-label=tr(lang, heads[0]) class="mono">{p.payment_id}</td>
                                    <td data-label=tr(lang, heads[1]) class="mono">{p.order_id}</td>
                                    <td data-label=tr(lang, heads[2]) class="num">{money(p.amount_cents)}</td>
                                    <td data-label=tr(lang, heads[3])>{p.reason}</td>
                                    <td data-label=tr(lang, heads[4])>{local(p.applied_at)}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}
