//! What the admin dashboard reads beyond plain records: the live event
//! stream and an activity's recent series, the production checklist and an
//! activity's pre-flight.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use seckill_api::{ActivitySeries, ChecklistItem, ChecklistTick, Preflight, PreflightCheck};

use crate::app::AppState;
use crate::auth::Admin;
use crate::checklist;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::extract::{ActivityId, JsonBody};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/api/events", get(events))
        .route("/admin/api/checklist", get(get_checklist).put(tick))
        .route("/admin/api/activities/{id}/preflight", get(preflight))
        .route("/admin/api/activities/{id}/series", get(series))
}

async fn events(State(state): State<AppState>, _: Admin) -> impl axum::response::IntoResponse {
    crate::live::events(state)
}

/// The recent past of the activity's purchases and refusals, per second.
async fn series(
    State(state): State<AppState>,
    _: Admin,
    ActivityId(id): ActivityId,
) -> Result<Json<ActivitySeries>, ApiError> {
    state.store.activity(id).await?.ok_or_else(|| ApiError::not_found("activity"))?;
    Ok(Json(state.live.series(id, now_ms())))
}

async fn get_checklist(State(state): State<AppState>, _: Admin) -> Result<Json<Vec<ChecklistItem>>, ApiError> {
    checklist::checklist(&state).await.map(Json)
}

async fn tick(
    State(state): State<AppState>,
    _: Admin,
    JsonBody(tick): JsonBody<ChecklistTick>,
) -> Result<Json<Vec<ChecklistItem>>, ApiError> {
    if !checklist::is_manual(&state, &tick.id).await {
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
    state.orders.db.tick(&tick.id, tick.ticked, tick.note.trim()).await?;
    tracing::info!(item = %tick.id, ticked = tick.ticked, "checklist item ticked");
    checklist::checklist(&state).await.map(Json)
}

fn check(id: &str, zh: &str, en: &str, ok: bool, detail: String) -> PreflightCheck {
    PreflightCheck { id: id.into(), title_zh: zh.into(), title_en: en.into(), ok, detail }
}

/// Is the activity ready to go live? Every check says why not.
async fn preflight(
    State(state): State<AppState>,
    _: Admin,
    ActivityId(id): ActivityId,
) -> Result<Json<Preflight>, ApiError> {
    let activity = state.store.activity(id).await?.ok_or_else(|| ApiError::not_found("activity"))?;
    let mut checks = Vec::new();
    let warm = activity.remaining + activity.sold == activity.total_stock;
    checks.push(check(
        "stock_warmed",
        "库存已预热",
        "Stock warmed",
        warm,
        format!("remaining {} + sold {} vs total {}", activity.remaining, activity.sold, activity.total_stock),
    ));
    let loaded = state.store.scripts_loaded().await.unwrap_or(false);
    if !loaded {
        // Loading is cheap and harmless: do it, then report what Redis says.
        let _ = state.store.load_scripts().await;
    }
    let loaded = state.store.scripts_loaded().await.unwrap_or(false);
    checks.push(check(
        "scripts_loaded",
        "Lua 脚本已加载",
        "Scripts loaded",
        loaded,
        if loaded { "SCRIPT EXISTS: yes".into() } else { "redis does not hold the scripts".into() },
    ));
    let (consumers, lag) = checklist::backlog(&state).await.unwrap_or((0, -1));
    checks.push(check(
        "workers_consuming",
        "订单消费者在线",
        "Order workers consuming",
        consumers > 0 && lag >= 0,
        format!("consumers active in the last 10 s: {consumers}, orders waiting: {lag}"),
    ));
    let db = state.orders.db.ping().await;
    checks.push(check(
        "db_reachable",
        "订单库可访问",
        "Order DB reachable",
        db.is_ok(),
        db.map(|()| "SELECT 1 answered".to_owned()).unwrap_or_else(|e| e.to_string()),
    ));
    let (synced, detail) = checklist::edge_synced(&state).await.unwrap_or((false, "state unavailable".into()));
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
