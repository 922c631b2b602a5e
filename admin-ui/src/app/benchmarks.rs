//! The benchmarks' last results (性能分析工具): when each bench script ran
//! last on this machine and its PASS/FAIL lines, the whole summary folded.

use leptos::prelude::*;
use seckill_api::BenchResult;

use super::api;
use super::local_time::local;
use super::widgets::resource_view;
use crate::i18n::{Lang, tr};

#[component]
pub fn BenchResults(lang: Lang) -> impl IntoView {
    let results = LocalResource::new(|| api::get::<Vec<BenchResult>>("/admin/api/benchmarks"));
    view! {
        <section class="card bench-card">
            <h2>{tr(lang, "bench.title")}</h2>
            <p class="muted small mono">"bash bench/compare.sh · bash bench/edge.sh · bash bench/cluster.sh"</p>
            {resource_view(lang, results, move |list: Vec<BenchResult>| list_view(lang, list))}
        </section>
    }
}

fn list_view(lang: Lang, list: Vec<BenchResult>) -> impl IntoView {
    if list.is_empty() {
        return view! { <p class="muted" id="bench-none">{tr(lang, "bench.none")}</p> }.into_any();
    }
    list.into_iter()
        .map(|r| {
            view! {
                <details class="bench-result">
                    <summary>
                        <b class="mono">{r.name.clone()}</b>
                        {format!(" · {}", local(r.ran_at))}
                        <ul class="verdicts">
                            {r
                                .verdicts
                                .iter()
                                .map(|v| {
                                    let class = if v.starts_with("PASS") { "ok-text" } else { "warn-text" };
                                    view! { <li class=class>{v.clone()}</li> }
                                })
                                .collect_view()}
                        </ul>
                    </summary>
                    <pre class="mono small">{r.summary}</pre>
                </details>
            }
        })
        .collect_view()
        .into_any()
}
