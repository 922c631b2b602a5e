//! What the admin dashboard reads beyond plain records: the live event
//! stream and an activity's recent series, the production checklist and an
//! activity's pre-flight.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::{Json, Router};
use seckill_api::{ActivitySeries, BenchResult, ChecklistItem, ChecklistTick, Preflight, PreflightCheck};

use futures::Stream;

use crate::activities;
use crate::checklist::{self, Probes};
use crate::clock::now_ms;
use crate::config::Settings;
use crate::live::{self, LiveStats};
use crate::orders::Orders;
use crate::routes::auth::Admin;
use crate::routes::error::ApiError;
use crate::routes::extract::{ActivityId, JsonBody};
use crate::state::AppState;
use crate::store::Store;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/api/events", get(events))
        .route("/admin/api/checklist", get(get_checklist).put(tick))
        .route("/admin/api/benchmarks", get(benchmarks))
        .route("/admin/api/activities/{id}/preflight", get(preflight))
        .route("/admin/api/activities/{id}/series", get(series))
}

/// The server-sent event stream: a `snapshot` event every `live::PERIOD`
/// (`unavailable` while Redis is).
async fn events(
    State(live): State<LiveStats>,
    State(orders): State<Orders>,
    _: Admin,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let start = (live.totals(), Instant::now());
    let stream = futures::stream::unfold((start, true), move |((before, at), first)| {
        let (live, orders) = (live.clone(), orders.clone());
        async move {
            if !first {
                tokio::time::sleep(live::PERIOD).await;
            }
            let totals = live.totals();
            let event = match live::snapshot(&orders, &before, &totals, at.elapsed()).await {
                Some(snap) => Event::default().event("snapshot").json_data(&snap).unwrap_or_default(),
                None => Event::default().event("unavailable").data("redis or the order database is unavailable"),
            };
            Some((Ok(event), ((totals, Instant::now()), false)))
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The recent past of the activity's purchases and refusals, per second.
async fn series(
    State(store): State<Store>,
    State(live): State<LiveStats>,
    _: Admin,
    ActivityId(id): ActivityId,
) -> Result<Json<ActivitySeries>, ApiError> {
    activities::record(&store, id).await?;
    Ok(Json(live.series(id, now_ms())))
}

async fn get_checklist(State(probes): State<Probes>, _: Admin) -> Result<Json<Vec<ChecklistItem>>, ApiError> {
    Ok(Json(checklist::checklist(&probes).await?))
}

async fn tick(
    State(probes): State<Probes>,
    _: Admin,
    JsonBody(tick): JsonBody<ChecklistTick>,
) -> Result<Json<Vec<ChecklistItem>>, ApiError> {
    if !checklist::is_manual(&probes, &tick.id).await {
        return Err(ApiError::bad_request(format!(
            "id: {:?} is not a manual checklist item (probed items cannot be ticked)",
            tick.id
        )));
    }
    if tick.ticked && tick.note.trim().is_empty() {
        return Err(ApiError::bad_request("note: say what was checked when ticking an item"));
    }
    if tick.note.chars().count() > 2000 {
        return Err(ApiError::bad_request("note: at most 2000 characters"));
    }
    probes.orders.db.tick(&tick.id, tick.ticked, tick.note.trim()).await?;
    tracing::info!(item = %tick.id, ticked = tick.ticked, "checklist item ticked");
    Ok(Json(checklist::checklist(&probes).await?))
}

fn check(id: &str, zh: &str, en: &str, ok: bool, detail: String) -> PreflightCheck {
    PreflightCheck { id: id.into(), title_zh: zh.into(), title_en: en.into(), ok, detail }
}

/// Is the activity ready to go live? Every check says why not.
async fn preflight(
    State(probes): State<Probes>,
    _: Admin,
    ActivityId(id): ActivityId,
) -> Result<Json<Preflight>, ApiError> {
    let (store, db) = (&probes.orders.store, &probes.orders.db);
    let activity = activities::record(store, id).await?;
    let mut checks = Vec::new();
    let warm = activity.remaining + activity.sold == activity.total_stock;
    checks.push(check(
        "stock_warmed",
        "库存已预热",
        "Stock warmed",
        warm,
        format!("remaining {} + sold {} vs total {}", activity.remaining, activity.sold, activity.total_stock),
    ));
    let loaded = store.scripts_loaded().await.unwrap_or(false);
    if !loaded {
        // Loading is cheap and harmless: do it, then report what Redis says.
        let _ = store.load_scripts().await;
    }
    let loaded = store.scripts_loaded().await.unwrap_or(false);
    checks.push(check(
        "scripts_loaded",
        "Lua 脚本已加载",
        "Scripts loaded",
        loaded,
        if loaded { "SCRIPT EXISTS: yes".into() } else { "redis does not hold the scripts".into() },
    ));
    let (consumers, lag) = checklist::backlog(&probes).await.unwrap_or((0, -1));
    checks.push(check(
        "workers_consuming",
        "订单消费者在线",
        "Order workers consuming",
        consumers > 0 && lag >= 0,
        format!("consumers active in the last 10 s: {consumers}, orders waiting: {lag}"),
    ));
    let db = db.ping().await;
    checks.push(check(
        "db_reachable",
        "订单库可访问",
        "Order DB reachable",
        db.is_ok(),
        db.map(|()| "SELECT 1 answered".to_owned()).unwrap_or_else(|e| e.to_string()),
    ));
    let (synced, detail) = checklist::edge_synced(&probes).await.unwrap_or((false, "state unavailable".into()));
    checks.push(check("edge_synced", "边缘已同步", "Edge synced", synced, detail));
    let not_over = activity.ends_at_ms > now_ms();
    checks.push(check(
        "window_open",
        "活动未结束",
        "Window not over",
        not_over,
        if not_over { "ends in the future".into() } else { "the activity has already ended".into() },
    ));
    let ready = checks.iter().all(|c| c.ok);
    Ok(Json(Preflight { activity_id: id, ready, checks }))
}

/// The bench scripts' last results, newest first.
async fn benchmarks(State(settings): State<Arc<Settings>>, _: Admin) -> Json<Vec<BenchResult>> {
    Json(crate::benchmarks::latest(&settings.bench_dir))
}
