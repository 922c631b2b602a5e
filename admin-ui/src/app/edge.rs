//! Edge rules: the current version, when the edges picked it up, the form,
//! and the version history.

use std::time::Duration;

use leptos::prelude::*;
use seckill_api::{EdgeRules, EdgeRulesVersion, EdgeSync, Page, RateRule};

use super::anti_bot::AntiBotSwitch;
use super::api;
use super::degraded::DegradedSwitch;
use super::local_time::{local, local_ms};
use super::state::ctx;
use super::widgets::{error_box, list_foot, loading, resource_view};
use crate::format::{ago, count};
use crate::i18n::{Lang, tr};
use crate::model::{RulesField, RulesForm, encode_segment, trim_float};

#[component]
pub fn EdgeRulesPage(lang: Lang) -> impl IntoView {
    let current = LocalResource::new(|| api::get::<EdgeRulesVersion>("/admin/api/edge-rules"));
    let edges = LocalResource::new(|| api::get::<Vec<EdgeSync>>("/admin/api/edge-status"));
    let history_reload = RwSignal::new(0u32);
    if let Ok(handle) = set_interval_with_handle(
        move || {
            edges.refetch();
            current.refetch();
        },
        Duration::from_secs(5),
    ) {
        on_cleanup(move || handle.clear());
    }
    let saved = move || {
        current.refetch();
        edges.refetch();
        history_reload.update(|n| *n += 1);
    };
    view! {
        <div class="page-head">
            <h1>{tr(lang, "edge.title")}</h1>
        </div>
        <DegradedSwitch lang />
        <AntiBotSwitch lang />
        <section class="card">
            <h2>{tr(lang, "edge.current")}</h2>
            {move || match current.get() {
                None => loading(lang).into_any(),
                Some(Err(e)) => error_box(lang, &e).into_any(),
                Some(Ok(v)) => pickup(lang, &v).into_any(),
            }}
            {resource_view(lang, edges, move |list: Vec<EdgeSync>| edge_table(lang, list, current))}
        </section>
        <section class="card">
            <h2>{tr(lang, "edge.edit")}</h2>
            // The form is built once from the first answer (not on every refresh, which would wipe typing).
            {move || {
                let first = current.with_untracked(|c| c.clone());
                match first {
                    None => {
                        current.track();
                        loading(lang).into_any()
                    }
                    Some(Err(e)) => error_box(lang, &e).into_any(),
                    Some(Ok(v)) => view! { <RulesEditor lang base=v.rules on_saved=saved /> }.into_any(),
                }
            }}
        </section>
        <section class="card flush">
            <h2 class="pad">{tr(lang, "edge.history")}</h2>
            {move || {
                history_reload.get();
                view! { <History lang /> }
            }}
        </section>
    }
}

/// "Version 7, saved at …; picked up by the edge at …". Version 0 is the
/// built-in defaults, which nobody saved (its time would read 1970).
fn pickup(lang: Lang, v: &EdgeRulesVersion) -> impl IntoView + use<> {
    let picked = match v.edge_synced_at {
        Some(at) => view! { <span class="ok-text">{format!("{} {}", tr(lang, "edge.picked_up_at"), local(at))}</span> }
            .into_any(),
        None => view! { <span class="warn-text">{tr(lang, "edge.not_picked_up")}</span> }.into_any(),
    };
    view! {
        <p class="lead">
            <b>{format!("{} {}", tr(lang, "edge.version"), v.version)}</b>
            {if v.version == 0 {
                format!(" · {} · ", tr(lang, "edge.defaults"))
            } else {
                format!(" · {} {} · ", tr(lang, "edge.saved_at"), local(v.created_at))
            }}
            {picked}
        </p>
        <p class="muted small">{summary(lang, &v.rules)}</p>
    }
}

fn rule_text(r: &RateRule) -> String {
    format!("{}/s, burst {}", trim_float(r.rate_per_sec), r.burst)
}

fn summary(lang: Lang, r: &EdgeRules) -> String {
    format!(
        "{}: {} · {}: {} · {}: {} / {}",
        tr(lang, "edge.per_ip"),
        rule_text(&r.per_ip),
        tr(lang, "edge.per_user"),
        rule_text(&r.per_user),
        tr(lang, "edge.in_flight"),
        count(r.max_in_flight_per_ip as i64),
        count(r.max_in_flight_total as i64)
    )
}

fn edge_table(
    lang: Lang,
    list: Vec<EdgeSync>,
    current: LocalResource<Result<EdgeRulesVersion, crate::model::ApiError>>,
) -> impl IntoView {
    let c = ctx();
    if list.is_empty() {
        return view! { <p class="alert warn">{tr(lang, "edge.no_edges")}</p> }.into_any();
    }
    let current_version = current.with_untracked(|v| v.as_ref().and_then(|v| v.as_ref().ok()).map(|v| v.version));
    view! {
        <div class="table-wrap">
            <table class="table stack">
                <thead>
                    <tr>
                        <th>{tr(lang, "edge.edge_id")}</th>
                        <th>{tr(lang, "edge.rules_version")}</th>
                        <th>{tr(lang, "edge.rules_since")}</th>
                        <th>{tr(lang, "edge.last_sync")}</th>
                    </tr>
                </thead>
                <tbody>
                    {list
                        .into_iter()
                        .map(|e| {
                            let behind = current_version.is_some_and(|v| v != e.rules_version);
                            let at = e.at_ms;
                            view! {
                                <tr class:bad-row=behind>
                                    <td data-label=tr(lang, "edge.edge_id") class="mono">{e.edge_id.clone()}</td>
                                    <td data-label=tr(lang, "edge.rules_version")>
                                        {e.rules_version}
                                        {behind.then(|| view! { <span class="badge cs-warning">{tr(lang, "edge.behind")}</span> })}
                                    </td>
                                    <td data-label=tr(lang, "edge.rules_since")>{local_ms(e.rules_since_ms)}</td>
                                    <td data-label=tr(lang, "edge.last_sync")>
                                        {move || ago(c.now_ms.get(), at, lang)}
                                    </td>
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

#[component]
fn RulesEditor(lang: Lang, base: EdgeRules, on_saved: impl Fn() + Copy + 'static) -> impl IntoView {
    let form = RwSignal::new(RulesForm::from_rules(&base));
    let errors = RwSignal::new(Vec::<(RulesField, &'static str)>::new());
    let busy = RwSignal::new(false);
    let message = RwSignal::new(None::<Result<String, String>>);
    let base = StoredValue::new(base);

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        message.set(None);
        let rules = match form.get_untracked().apply(&base.get_value()) {
            Ok(r) => r,
            Err(e) => {
                errors.set(e);
                return;
            }
        };
        errors.set(Vec::new());
        busy.set(true);
        leptos::task::spawn_local(async move {
            let result = api::send::<_, EdgeRulesVersion>("PUT", "/admin/api/edge-rules", &rules).await;
            busy.set(false);
            match result {
                Ok(v) => {
                    base.set_value(v.rules.clone());
                    form.set(RulesForm::from_rules(&v.rules));
                    message.set(Some(Ok(format!("{} {}", tr(lang, "edge.saved_version"), v.version))));
                    on_saved();
                }
                Err(e) => message.set(Some(Err(e.message))),
            }
        });
    };

    let field = move |label: &'static str,
                      which: RulesField,
                      get: fn(&RulesForm) -> String,
                      set: fn(&mut RulesForm, String)| {
        let error = move || errors.with(|e| e.iter().find(|(f, _)| *f == which).map(|(_, k)| tr(lang, k)));
        view! {
            <label class="field" class:invalid=move || error().is_some()>
                <span class="label">{tr(lang, label)}</span>
                <input
                    type="text"
                    inputmode="decimal"
                    prop:value=move || form.with(get)
                    on:input=move |ev| form.update(|f| set(f, event_target_value(&ev)))
                />
                {move || error().map(|m| view! { <span class="field-error">{m}</span> })}
            </label>
        }
    };

    let routes = base.with_value(|b| b.routes.clone());
    view! {
        <form class="form" on:submit=submit novalidate=true>
            <fieldset>
                <legend>{tr(lang, "edge.per_ip")}</legend>
                <div class="row">
                    {field("edge.rate", RulesField::PerIpRate, |f| f.per_ip_rate.clone(), |f, v| f.per_ip_rate = v)}
                    {field("edge.burst", RulesField::PerIpBurst, |f| f.per_ip_burst.clone(), |f, v| f.per_ip_burst = v)}
                </div>
            </fieldset>
            <fieldset>
                <legend>{tr(lang, "edge.per_user")}</legend>
                <div class="row">
                    {field("edge.rate", RulesField::PerUserRate, |f| f.per_user_rate.clone(), |f, v| f.per_user_rate = v)}
                    {field("edge.burst", RulesField::PerUserBurst, |f| f.per_user_burst.clone(), |f, v| f.per_user_burst = v)}
                </div>
            </fieldset>
            <fieldset>
                <legend>{tr(lang, "edge.in_flight")}</legend>
                <div class="row">
                    {field(
                        "edge.in_flight_per_ip",
                        RulesField::InFlightPerIp,
                        |f| f.in_flight_per_ip.clone(),
                        |f, v| f.in_flight_per_ip = v,
                    )}
                    {field(
                        "edge.in_flight_total",
                        RulesField::InFlightTotal,
                        |f| f.in_flight_total.clone(),
                        |f, v| f.in_flight_total = v,
                    )}
                </div>
            </fieldset>
            {routes
                .into_iter()
                .enumerate()
                .map(|(i, route)| {
                    let method = route.method.clone().unwrap_or_else(|| "*".into());
                    view! {
                        <fieldset>
                            <legend>
                                {format!("{} {}", tr(lang, "edge.route"), route.name)}
                                <span class="muted mono small">{format!(" {method} {}", route.path)}</span>
                            </legend>
                            <div class="row">
                                {[0usize, 1]
                                    .into_iter()
                                    .filter(|k| form.with_untracked(|f| f.routes.get(i).is_some_and(|r| r[*k].is_some())))
                                    .map(|k| route_pair(lang, form, errors, i, k))
                                    .collect_view()}
                            </div>
                        </fieldset>
                    }
                })
                .collect_view()}
            {move || {
                message
                    .get()
                    .map(|m| match m {
                        Ok(text) => view! { <p class="alert ok">{text}</p> }.into_any(),
                        Err(text) => view! { <p class="alert err">{text}</p> }.into_any(),
                    })
            }}
            <div class="actions">
                <button type="submit" class="btn primary" disabled=move || busy.get()>
                    {move || tr(lang, if busy.get() { "common.saving" } else { "edge.save" })}
                </button>
            </div>
        </form>
    }
}

/// The rate and burst inputs of route `i`, per-IP (`k` = 0) or per-user (1).
fn route_pair(
    lang: Lang,
    form: RwSignal<RulesForm>,
    errors: RwSignal<Vec<(RulesField, &'static str)>>,
    i: usize,
    k: usize,
) -> impl IntoView {
    let scope = if k == 0 { "edge.per_ip" } else { "edge.per_user" };
    let one = move |burst: bool| {
        let error = move || {
            errors.with(|e| e.iter().find(|(f, _)| *f == RulesField::Route(i, k, burst)).map(|(_, m)| tr(lang, m)))
        };
        let label = format!("{} · {}", tr(lang, scope), tr(lang, if burst { "edge.burst" } else { "edge.rate" }));
        view! {
            <label class="field" class:invalid=move || error().is_some()>
                <span class="label">{label}</span>
                <input
                    type="text"
                    inputmode="decimal"
                    prop:value=move || {
                        form.with(|f| {
                            f.routes
                                .get(i)
                                .and_then(|r| r[k].as_ref())
                                .map(|(rate, b)| if burst { b.clone() } else { rate.clone() })
                                .unwrap_or_default()
                        })
                    }
                    on:input=move |ev| {
                        let v = event_target_value(&ev);
                        form.update(|f| {
                            if let Some(Some((rate, b))) = f.routes.get_mut(i).map(|r| &mut r[k]) {
                                if burst {
                                    *b = v;
                                } else {
                                    *rate = v;
                                }
                            }
                        })
                    }
                />
                {move || error().map(|m| view! { <span class="field-error">{m}</span> })}
            </label>
        }
    };
    view! {
        {one(false)}
        {one(true)}
    }
}

/// The version history, newest first, a page at a time.
#[component]
fn History(lang: Lang) -> impl IntoView {
    let versions = RwSignal::new(Vec::<EdgeRulesVersion>::new());
    let next = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<crate::model::ApiError>);
    let loading_more = RwSignal::new(true);
    let load = move |cursor: Option<String>| {
        loading_more.set(true);
        leptos::task::spawn_local(async move {
            let path = match &cursor {
                Some(c) => format!("/admin/api/edge-rules/history?limit=20&cursor={}", encode_segment(c)),
                None => "/admin/api/edge-rules/history?limit=20".to_owned(),
            };
            match api::get::<Page<EdgeRulesVersion>>(&path).await {
                Ok(p) => {
                    versions.update(|v| v.extend(p.items));
                    next.set(p.next_cursor);
                    error.set(None);
                }
                Err(e) => error.set(Some(e)),
            }
            loading_more.set(false);
        });
    };
    load(None);
    view! {
        <div class="table-wrap">
            <table class="table stack">
                <thead>
                    <tr>
                        <th>{tr(lang, "edge.version")}</th>
                        <th>{tr(lang, "edge.saved_at")}</th>
                        <th>{tr(lang, "edge.per_ip")}</th>
                        <th>{tr(lang, "edge.per_user")}</th>
                        <th>{tr(lang, "edge.in_flight")}</th>
                        <th>{tr(lang, "edge.picked_up")}</th>
                    </tr>
                </thead>
                <tbody>
                    {move || {
                        versions
                            .get()
                            .into_iter()
                            .map(|v| {
                                view! {
                                    <tr>
                                        <td data-label=tr(lang, "edge.version")><b>{v.version}</b></td>
                                        <td data-label=tr(lang, "edge.saved_at")>{local(v.created_at)}</td>
                                        <td data-label=tr(lang, "edge.per_ip")>{rule_text(&v.rules.per_ip)}</td>
                                        <td data-label=tr(lang, "edge.per_user")>{rule_text(&v.rules.per_user)}</td>
                                        <td data-label=tr(lang, "edge.in_flight")>
                                            {format!("{} / {}", v.rules.max_in_flight_per_ip, v.rules.max_in_flight_total)}
                                        </td>
                                        <td data-label=tr(lang, "edge.picked_up")>
                                            {v.edge_synced_at.map(local).unwrap_or_else(|| "—".into())}
                                        </td>
                                    </tr>
                                }
                            })
                            .collect_view()
                    }}
                </tbody>
            </table>
        </div>
        {move || error.get().map(|e| error_box(lang, &e))}
        <div class="pager">
            {list_foot(
                lang,
                loading_more,
                next,
                load,
                move || view! { <span class="muted small">{tr(lang, "common.end_of_list")}</span> }.into_any(),
            )}
        </div>
    }
}
