//! Small pieces shared by the pages.

use leptos::prelude::*;
use seckill_api::{ActivityStatus, CheckStatus, ErrorCode, OrderStatus};

use super::state::{Conn, ctx};
use crate::chart::{self, Frame};
use crate::i18n::{Lang, tr};
use crate::model::ApiError;

/// Renders a resource: a loading line, the error, or `f` of the value.
pub fn resource_view<T, V>(
    lang: Lang,
    res: LocalResource<Result<T, ApiError>>,
    f: impl Fn(T) -> V + Send + 'static,
) -> impl IntoView
where
    T: Clone + 'static,
    V: IntoView + 'static,
{
    move || match res.get() {
        None => loading(lang).into_any(),
        Some(Err(e)) => error_box(lang, &e).into_any(),
        Some(Ok(v)) => f(v).into_any(),
    }
}

/// A page about one activity showing what `GET /admin/api/activities/{id}/{what}`
/// answers, fetched again every 5 s and on demand (pre-flight, reconciliation).
pub fn activity_report_page<T, V>(
    lang: Lang,
    id: u64,
    what: &'static str,
    title_key: &'static str,
    body: impl Fn(T) -> V + Send + 'static,
) -> impl IntoView
where
    T: serde::de::DeserializeOwned + Clone + 'static,
    V: IntoView + 'static,
{
    let report = LocalResource::new(move || super::api::get::<T>(format!("/admin/api/activities/{id}/{what}")));
    if let Ok(handle) = set_interval_with_handle(move || report.refetch(), std::time::Duration::from_secs(5)) {
        on_cleanup(move || handle.clear());
    }
    view! {
        <div class="page-head">
            <div>
                <p class="crumbs">
                    <a href=crate::route::Route::Activities.href()>{tr(lang, "nav.activities")}</a>
                    " / "
                    <a href=crate::route::Route::Activity(id).href()>{format!("#{id}")}</a>
                </p>
                <h1>{tr(lang, title_key)}</h1>
            </div>
            <button class="btn" on:click=move |_| report.refetch()>
                {tr(lang, "common.refresh")}
            </button>
        </div>
        {resource_view(lang, report, body)}
    }
}

/// The foot of a paged list: a spinner while a page loads, "load more" while
/// there is a next page, else what `done` shows.
pub fn list_foot(
    lang: Lang,
    busy: RwSignal<bool>,
    next: RwSignal<Option<String>>,
    load: impl Fn(Option<String>) + Copy + Send + Sync + 'static,
    done: impl Fn() -> AnyView + Send + Sync + 'static,
) -> impl IntoView {
    move || {
        if busy.get() {
            loading(lang).into_any()
        } else if let Some(cursor) = next.get() {
            view! {
                <button class="btn small" on:click=move |_| load(Some(cursor.clone()))>
                    {tr(lang, "common.load_more")}
                </button>
            }
            .into_any()
        } else {
            done()
        }
    }
}

pub fn loading(lang: Lang) -> impl IntoView {
    view! {
        <p class="loading" role="status">
            <span class="spinner"></span>
            {tr(lang, "common.loading")}
        </p>
    }
}

pub fn error_box(lang: Lang, e: &ApiError) -> impl IntoView + use<> {
    let title = match e.status {
        0 => tr(lang, "error.network"),
        404 => tr(lang, "error.not_found"),
        _ => tr(lang, "error.failed"),
    };
    view! {
        <div class="alert err" role="alert">
            <strong>{title}</strong>
            " "
            <span>{e.message.clone()}</span>
        </div>
    }
}

/// The live stream's state, in the top bar.
#[component]
pub fn ConnBadge(lang: Lang) -> impl IntoView {
    let c = ctx();
    let state = move || c.conn.get();
    view! {
        <span
            class="conn"
            class:live=move || state() == Conn::Live
            class:retry=move || matches!(state(), Conn::Reconnecting | Conn::Connecting)
            title=move || tr(lang, "conn.title")
        >
            <span class="dot"></span>
            <span class="conn-text">
                {move || {
                    tr(
                        lang,
                        match state() {
                            Conn::Live => "conn.live",
                            Conn::Connecting => "conn.connecting",
                            Conn::Reconnecting => "conn.reconnecting",
                            Conn::Off => "conn.off",
                        },
                    )
                }}
            </span>
        </span>
    }
}

pub fn activity_badge(lang: Lang, status: ActivityStatus) -> impl IntoView {
    let wire = status.as_str();
    view! { <span class=format!("badge st-{wire}")>{tr(lang, &format!("activity.status.{wire}"))}</span> }
}

pub fn order_badge(lang: Lang, status: OrderStatus) -> impl IntoView {
    let wire = status.as_str();
    view! { <span class=format!("badge os-{wire}")>{tr(lang, &format!("order.status.{wire}"))}</span> }
}

pub fn check_badge(lang: Lang, status: CheckStatus) -> impl IntoView {
    let wire = status.as_str();
    view! { <span class=format!("badge cs-{wire}")>{tr(lang, &format!("check.status.{wire}"))}</span> }
}

/// An error code's name: `sold_out` → 已售罄 / Sold out.
pub fn code_label(lang: Lang, code: ErrorCode) -> &'static str {
    tr(lang, &format!("code.{}", code.as_str()))
}

/// The stock bar: the sold part filled.
pub fn stock_bar(lang: Lang, sold: i64, total: i64) -> impl IntoView {
    let pct = crate::format::percent(sold, total);
    view! {
        <div
            class="stock-bar"
            role="meter"
            aria-valuemin="0"
            aria-valuemax="100"
            aria-valuenow=format!("{pct:.0}")
            aria-label=tr(lang, "activity.sold_share")
        >
            <div class="fill" style=format!("width:{pct:.2}%")></div>
            <span class="pct">{format!("{pct:.1}%")}</span>
        </div>
    }
}

/// A labelled figure.
pub fn kpi(label: &'static str, value: String, class: &'static str) -> impl IntoView {
    view! {
        <div class=format!("kpi {class}")>
            <span class="kpi-label">{label}</span>
            <span class="kpi-value">{value}</span>
        </div>
    }
}

/// One series of a chart: its CSS class, the i18n key of its legend, its points.
pub struct Line(pub &'static str, pub &'static str, pub Vec<(f64, f64)>);

/// A line chart as inline SVG. x values are seconds relative to `now_ms`,
/// labelled as local clock times.
pub fn line_chart(lang: Lang, title: &'static str, series: Vec<Line>, now_ms: i64, fill_first: bool) -> impl IntoView {
    // A narrower drawing on a phone, so the labels stay readable once scaled down.
    let narrow = window().inner_width().ok().and_then(|w| w.as_f64()).is_some_and(|w| w < 600.0);
    let frame =
        if narrow { Frame { width: 360.0, height: 200.0, left: 40.0, ..Frame::default() } } else { Frame::default() };
    let points: Vec<&[(f64, f64)]> = series.iter().map(|l| l.2.as_slice()).collect();
    let model = chart::layout(&points, frame, 60.0);
    let empty = points.iter().all(|p| p.len() < 2);
    let area = if fill_first { chart::area_path(points[0], &model.scale) } else { String::new() };
    let baseline = model.scale.baseline();
    let view_box = format!("0 0 {} {}", frame.width, frame.height);
    let grid = model
        .y_ticks
        .iter()
        .map(|(y, label)| {
            view! {
                <line class="grid" x1=frame.left x2=frame.width - frame.right y1=*y y2=*y></line>
                <text class="tick" x=frame.left - 6.0 y=y + 4.0 text-anchor="end">
                    {label.clone()}
                </text>
            }
        })
        .collect_view();
    let x_labels = model
        .x_ticks
        .iter()
        .map(|(x, secs)| {
            let at = now_ms + (secs * 1000.0) as i64;
            view! {
                <text class="tick" x=*x y=frame.height - 6.0 text-anchor="middle">
                    {super::local_time::clock(at)}
                </text>
            }
        })
        .collect_view();
    let lines = series
        .iter()
        .zip(&model.paths)
        .map(|(Line(class, _, _), d)| view! { <path class=format!("line {class}") d=d.clone()></path> })
        .collect_view();
    let legend = series
        .iter()
        .map(|Line(class, key, points)| {
            let last = points.last().map(|p| chart::tick_label(p.1)).unwrap_or_else(|| "—".into());
            view! {
                <span class=format!("legend {class}")>
                    <i></i>
                    {tr(lang, key)}
                    ": "
                    <b>{last}</b>
                </span>
            }
        })
        .collect_view();
    view! {
        <figure class="chart">
            <figcaption>{tr(lang, title)} <span class="legends">{legend}</span></figcaption>
            <svg viewBox=view_box role="img" aria-label=tr(lang, title)>
                {grid}
                <line class="axis" x1=frame.left x2=frame.width - frame.right y1=baseline y2=baseline></line>
                <path class="area" d=area></path>
                {lines}
                {x_labels}
            </svg>
            {empty.then(|| view! { <p class="chart-empty muted">{tr(lang, "chart.waiting")}</p> })}
        </figure>
    }
}

/// 中文 | EN.
#[component]
pub fn LangSwitch() -> impl IntoView {
    let c = ctx();
    view! {
        <div class="lang-switch" role="group" aria-label="Language / 语言">
            {[Lang::Zh, Lang::En]
                .into_iter()
                .map(|l| {
                    view! {
                        <button
                            type="button"
                            class:active=move || c.lang.get() == l
                            aria-pressed=move || (c.lang.get() == l).to_string()
                            on:click=move |_| c.lang.set(l)
                        >
                            {l.label()}
                        </button>
                    }
                })
                .collect_view()}
        </div>
    }
}
