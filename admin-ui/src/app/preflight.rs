//! Pre-flight: is the activity ready to go live, and if not, why not.

use leptos::prelude::*;

use super::widgets::activity_report_page;
use crate::i18n::{Lang, tr};
use crate::model::Preflight;

#[component]
pub fn PreflightPage(lang: Lang, id: u64) -> impl IntoView {
    activity_report_page(lang, id, "preflight", "preflight.title", move |p: Preflight| body(lang, p))
}

fn body(lang: Lang, p: Preflight) -> impl IntoView {
    let failing = p.checks.iter().filter(|c| !c.ok).count();
    let (class, key) = if p.ready { ("verdict ok", "preflight.ready") } else { ("verdict err", "preflight.not_ready") };
    view! {
        <section class=class>
            <span class="verdict-mark">{if p.ready { "✓" } else { "✗" }}</span>
            <div>
                <h2>{tr(lang, key)}</h2>
                {(!p.ready && failing > 0)
                    .then(|| view! { <p>{format!("{} {failing}", tr(lang, "preflight.failing_count"))}</p> })}
            </div>
        </section>
        <section class="card flush">
            <ul class="checks">
                {p
                    .checks
                    .into_iter()
                    .map(|c| {
                        let title = lang.pick(&c.title_zh, &c.title_en, &c.id).to_owned();
                        view! {
                            <li class:ok=c.ok class:bad=!c.ok>
                                <span class="mark" aria-hidden="true">
                                    {if c.ok { "✓" } else { "✗" }}
                                </span>
                                <div>
                                    <b>{title}</b>
                                    <span class="sr-only">
                                        {tr(lang, if c.ok { "common.ok" } else { "preflight.check_failed" })}
                                    </span>
                                    <p class="muted small">{c.detail}</p>
                                </div>
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        </section>
    }
}
