//! The operators' API under `/admin/api`: login, activities, stats, blacklist
//! (each entry with when it reached the edge).

use axum::extract::{Path, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use seckill_api::{
    Activity, ActivityPatch, ActivityStats, ActivityStatus, AdminSession, BlacklistEntry, LoginRequest, NewActivity,
    Page, valid_user_id,
};

use crate::admin_session::SESSION_SECS;
use crate::app::AppState;
use crate::auth::{ADMIN_COOKIE, Admin, ClientIp};
use crate::blacklist::{self, parse_ip_entry};
use crate::blacklist_reach;
use crate::clock::{from_ms, now_ms, to_ms};
use crate::error::ApiError;
use crate::extract::{ActivityId, JsonBody, PageQuery, Query};
use crate::routes::{activity_list, activity_view};
use crate::store::{BlacklistKind, DeleteOutcome, NewActivityRecord};
use crate::telemetry;

/// Largest stock one activity may hold (keeps every count exact in Lua's doubles).
pub const MAX_STOCK: i64 = 1_000_000_000_000;
/// Largest per-user limit, which bounds one purchase's quantity.
pub const MAX_LIMIT_PER_USER: i64 = 1_000_000;
/// Largest unit price (10 million in the currency's main unit). With the
/// quantity bounded by `MAX_LIMIT_PER_USER`, `price × quantity` stays below
/// 2^53, so the purchase script's Lua doubles and SQL's BIGINT hold it exactly.
pub const MAX_PRICE_CENTS: i64 = 1_000_000_000;
const _: () = assert!(MAX_PRICE_CENTS.checked_mul(MAX_LIMIT_PER_USER).unwrap() < 1 << 53);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/api/login", post(login))
        .route("/admin/api/logout", post(logout))
        .route("/admin/api/sessions/revoke", post(revoke_all_sessions))
        .route("/admin/api/activities", get(list_activities).post(create_activity))
        .route("/admin/api/activities/{id}", get(get_activity).patch(patch_activity).delete(delete_activity))
        .route("/admin/api/activities/{id}/stats", get(activity_stats))
        .route("/admin/api/blacklist/users", get(list_blacklisted_users))
        .route(
            "/admin/api/blacklist/users/{user_id}",
            get(get_blacklisted_user).put(blacklist_user).delete(unblacklist_user),
        )
        .route("/admin/api/blacklist/ips", get(list_blacklisted_ips))
        .route("/admin/api/blacklist/ips/{ip}", get(get_blacklisted_ip).put(blacklist_ip).delete(unblacklist_ip))
}

fn session_cookie(token: &str, max_age: i64) -> HeaderValue {
    let cookie = format!("{ADMIN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/admin; Max-Age={max_age}");
    HeaderValue::from_str(&cookie).expect("session tokens are header-safe")
}

async fn login(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    JsonBody(body): JsonBody<LoginRequest>,
) -> Result<Response, ApiError> {
    let (token, claims) = state.admin.login(&body.password, client).await?;
    let expires_at = from_ms(claims.exp * 1000);
    let cookie = session_cookie(&token, SESSION_SECS);
    Ok(([(SET_COOKIE, cookie)], Json(AdminSession { token, expires_at })).into_response())
}

/// Ends the session presented (it stays refused until it would have expired),
/// and clears the cookie either way.
async fn logout(State(state): State<AppState>, session: Option<Admin>) -> Result<impl IntoResponse, ApiError> {
    if let Some(Admin(claims)) = session {
        state.admin.revoke(&claims).await?;
        tracing::info!("admin logged out");
    }
    Ok((StatusCode::NO_CONTENT, [(SET_COOKIE, session_cookie("", 0))]))
}

/// Ends every admin session, on every backend, this one's included.
async fn revoke_all_sessions(State(state): State<AppState>, _: Admin) -> Result<impl IntoResponse, ApiError> {
    state.admin.revoke_all().await?;
    tracing::warn!("every admin session revoked");
    Ok((StatusCode::NO_CONTENT, [(SET_COOKIE, session_cookie("", 0))]))
}

async fn list_activities(State(state): State<AppState>, _: Admin) -> Result<Json<Vec<Activity>>, ApiError> {
    activity_list(&state.store).await.map(Json)
}

/// Checks a new activity, naming the first field that is wrong.
fn validate(new: &NewActivity) -> Result<(), ApiError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::bad_request("name: 1 to 200 characters"));
    }
    if !(0..=MAX_PRICE_CENTS).contains(&new.price_cents) {
        return Err(ApiError::bad_request(format!("price_cents: must be between 0 and {MAX_PRICE_CENTS}")));
    }
    if !(0..=MAX_STOCK).contains(&new.total_stock) {
        return Err(ApiError::bad_request(format!("total_stock: must be between 0 and {MAX_STOCK}")));
    }
    if !(1..=MAX_LIMIT_PER_USER).contains(&new.limit_per_user) {
        return Err(ApiError::bad_request(format!("limit_per_user: must be between 1 and {MAX_LIMIT_PER_USER}")));
    }
    if new.ends_at <= new.starts_at {
        return Err(ApiError::bad_request("ends_at: must be after starts_at"));
    }
    Ok(())
}

async fn create_activity(
    State(state): State<AppState>,
    _: Admin,
    JsonBody(new): JsonBody<NewActivity>,
) -> Result<(StatusCode, Json<Activity>), ApiError> {
    validate(&new)?;
    let record = NewActivityRecord {
        name: new.name.trim().to_owned(),
        price_cents: new.price_cents,
        total_stock: new.total_stock,
        limit_per_user: new.limit_per_user,
        starts_at_ms: to_ms(new.starts_at),
        ends_at_ms: to_ms(new.ends_at),
    };
    let id = state.store.create_activity(&record).await?;
    let created = state.store.activity(id).await?.ok_or_else(|| ApiError::unavailable("activity vanished"))?;
    telemetry::record_stock(id, created.remaining, created.sold);
    tracing::info!(id, name = %created.name, stock = created.total_stock, "activity created and stock warmed");
    Ok((StatusCode::CREATED, Json(activity_view(created, now_ms()))))
}

async fn get_activity(
    State(state): State<AppState>,
    _: Admin,
    ActivityId(id): ActivityId,
) -> Result<Json<Activity>, ApiError> {
    let record = state.store.activity(id).await?.ok_or_else(|| ApiError::not_found("activity"))?;
    Ok(Json(activity_view(record, now_ms())))
}

/// Changes an activity: the merged result is validated like a new one, and
/// a new total stock may not go below what is already sold.
async fn patch_activity(
    State(state): State<AppState>,
    _: Admin,
    ActivityId(id): ActivityId,
    JsonBody(patch): JsonBody<ActivityPatch>,
) -> Result<Json<Activity>, ApiError> {
    let current = state.store.activity(id).await?.ok_or_else(|| ApiError::not_found("activity"))?;
    let merged = NewActivity {
        name: patch.name.clone().unwrap_or_else(|| current.name.clone()),
        price_cents: patch.price_cents.unwrap_or(current.price_cents),
        total_stock: patch.total_stock.unwrap_or(current.total_stock),
        limit_per_user: patch.limit_per_user.unwrap_or(current.limit_per_user),
        starts_at: patch.starts_at.unwrap_or_else(|| from_ms(current.starts_at_ms)),
        ends_at: patch.ends_at.unwrap_or_else(|| from_ms(current.ends_at_ms)),
    };
    validate(&merged)?;
    if let Some(total) = patch.total_stock
        && let Err(sold) = state.store.set_total_stock(id, total).await?
    {
        return Err(ApiError::bad_request(format!("total_stock: {sold} are already sold; the total cannot be lower")));
    }
    let mut fields = Vec::new();
    if patch.name.is_some() {
        fields.push(("name", merged.name.trim().to_owned()));
    }
    if patch.price_cents.is_some() {
        fields.push(("price_cents", merged.price_cents.to_string()));
    }
    if patch.limit_per_user.is_some() {
        fields.push(("limit_per_user", merged.limit_per_user.to_string()));
    }
    if patch.starts_at.is_some() {
        fields.push(("starts_at_ms", to_ms(merged.starts_at).to_string()));
    }
    if patch.ends_at.is_some() {
        fields.push(("ends_at_ms", to_ms(merged.ends_at).to_string()));
    }
    state.store.update_activity(id, fields).await?;
    let updated = state.store.activity(id).await?.ok_or_else(|| ApiError::not_found("activity"))?;
    telemetry::record_stock(id, updated.remaining, updated.sold);
    tracing::info!(id, ?patch, "activity changed");
    Ok(Json(activity_view(updated, now_ms())))
}

/// Deletes an activity that has sold nothing; one with sales is ended instead
/// (PATCH its `ends_at`), so its orders keep their activity. The check and the
/// delete are one script: a purchase cannot land between them.
async fn delete_activity(
    State(state): State<AppState>,
    _: Admin,
    ActivityId(id): ActivityId,
) -> Result<StatusCode, ApiError> {
    match state.store.delete_activity(id).await? {
        DeleteOutcome::Deleted => {
            tracing::info!(id, "activity deleted");
            Ok(StatusCode::NO_CONTENT)
        }
        DeleteOutcome::NotFound => Err(ApiError::not_found("activity")),
        DeleteOutcome::Sold(sold) => Err(ApiError::bad_request(format!(
            "activity {id} has sold {sold}; end it (PATCH ends_at) instead of deleting it"
        ))),
        DeleteOutcome::OrdersWaiting(n) => Err(ApiError::bad_request(format!(
            "activity {id} has {n} order events not yet written or dead-lettered; settle them first"
        ))),
    }
}

async fn activity_stats(
    State(state): State<AppState>,
    _: Admin,
    ActivityId(id): ActivityId,
) -> Result<Json<ActivityStats>, ApiError> {
    let record = state.store.activity(id).await?.ok_or_else(|| ApiError::not_found("activity"))?;
    let now = now_ms();
    let counters = state.store.counters(id, now).await?;
    telemetry::record_stock(id, counters.remaining, counters.sold);
    Ok(Json(ActivityStats {
        activity_id: id,
        status: ActivityStatus::at(
            from_ms(now),
            from_ms(record.starts_at_ms),
            from_ms(record.ends_at_ms),
            counters.remaining,
        ),
        total_stock: record.total_stock,
        remaining: counters.remaining,
        sold: counters.sold,
        invariant_ok: counters.remaining + counters.sold == record.total_stock,
        live_tokens: counters.live_tokens,
        stream_length: counters.stream_length,
    }))
}

async fn blacklist_page(
    state: &AppState,
    kind: BlacklistKind,
    query: &PageQuery,
) -> Result<Json<Page<BlacklistEntry>>, ApiError> {
    let limit = query.limit()?;
    let cursor = match query.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => c.parse().map_err(|_| ApiError::bad_request("cursor: not one this API returned"))?,
    };
    let (next, values) = state.store.blacklist_page(kind, cursor, limit).await?;
    Ok(Json(Page { items: entries(state, kind, values).await?, next_cursor: next.map(|n| n.to_string()) }))
}

/// Stored entries as the API shows them, with when each reached the edge.
async fn entries(state: &AppState, kind: BlacklistKind, values: Vec<String>) -> Result<Vec<BlacklistEntry>, ApiError> {
    let reached = blacklist_reach::reached_at(&state.store, kind, &values).await?;
    Ok(values
        .into_iter()
        .zip(reached)
        .map(|(value, at_ms)| BlacklistEntry { value, reached_edge_at: at_ms.map(from_ms) })
        .collect())
}

async fn entry(state: &AppState, kind: BlacklistKind, value: String) -> Result<Json<BlacklistEntry>, ApiError> {
    let mut one = entries(state, kind, vec![value]).await?;
    one.pop().map(Json).ok_or_else(|| ApiError::unavailable("blacklist entry vanished"))
}

async fn list_blacklisted_users(
    State(state): State<AppState>,
    _: Admin,
    Query(q): Query<PageQuery>,
) -> Result<Json<Page<BlacklistEntry>>, ApiError> {
    blacklist_page(&state, BlacklistKind::Users, &q).await
}

async fn list_blacklisted_ips(
    State(state): State<AppState>,
    _: Admin,
    Query(q): Query<PageQuery>,
) -> Result<Json<Page<BlacklistEntry>>, ApiError> {
    blacklist_page(&state, BlacklistKind::Ips, &q).await
}

/// A blacklist entry in its stored form, or `bad_request`.
fn canonical(kind: BlacklistKind, raw: &str) -> Result<String, ApiError> {
    match kind {
        BlacklistKind::Users if valid_user_id(raw) => Ok(raw.to_owned()),
        BlacklistKind::Users => Err(ApiError::bad_request("user id: 1-64 characters of [A-Za-z0-9_-]")),
        BlacklistKind::Ips => parse_ip_entry(raw)
            .map(|net| if net.prefix_len() == net.max_prefix_len() { net.addr().to_string() } else { net.to_string() })
            .ok_or_else(|| ApiError::bad_request("ip: an IPv4/IPv6 address or CIDR range (percent-encode the /)")),
    }
}

async fn get_entry(state: &AppState, kind: BlacklistKind, raw: &str) -> Result<Json<BlacklistEntry>, ApiError> {
    let value = canonical(kind, raw)?;
    if state.store.blacklist_contains(kind, &value).await? {
        entry(state, kind, value).await
    } else {
        Err(ApiError::not_found("blacklist entry"))
    }
}

async fn put_entry(state: &AppState, kind: BlacklistKind, raw: &str) -> Result<Json<BlacklistEntry>, ApiError> {
    let value = canonical(kind, raw)?;
    blacklist::add(&state.store, kind, &value).await?;
    tracing::info!(?kind, %value, "blacklisted");
    if let Err(e) = state.blacklist.refresh(&state.store, true).await {
        tracing::warn!(error = %e, "blacklist reload after change failed; the poller will retry");
    }
    entry(state, kind, value).await
}

async fn delete_entry(state: &AppState, kind: BlacklistKind, raw: &str) -> Result<StatusCode, ApiError> {
    let value = canonical(kind, raw)?;
    let removed = blacklist::remove(&state.store, kind, &value).await?;
    if let Err(e) = state.blacklist.refresh(&state.store, true).await {
        tracing::warn!(error = %e, "blacklist reload after change failed; the poller will retry");
    }
    if removed {
        tracing::info!(?kind, %value, "removed from the blacklist");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("blacklist entry"))
    }
}

async fn get_blacklisted_user(
    State(s): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<BlacklistEntry>, ApiError> {
    get_entry(&s, BlacklistKind::Users, &id).await
}
async fn blacklist_user(
    State(s): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<BlacklistEntry>, ApiError> {
    put_entry(&s, BlacklistKind::Users, &id).await
}
async fn unblacklist_user(State(s): State<AppState>, _: Admin, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    delete_entry(&s, BlacklistKind::Users, &id).await
}
async fn get_blacklisted_ip(
    State(s): State<AppState>,
    _: Admin,
    Path(ip): Path<String>,
) -> Result<Json<BlacklistEntry>, ApiError> {
    get_entry(&s, BlacklistKind::Ips, &ip).await
}
async fn blacklist_ip(
    State(s): State<AppState>,
    _: Admin,
    Path(ip): Path<String>,
) -> Result<Json<BlacklistEntry>, ApiError> {
    put_entry(&s, BlacklistKind::Ips, &ip).await
}
async fn unblacklist_ip(State(s): State<AppState>, _: Admin, Path(ip): Path<String>) -> Result<StatusCode, ApiError> {
    delete_entry(&s, BlacklistKind::Ips, &ip).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn new_activity() -> NewActivity {
        NewActivity {
            name: "phone".into(),
            price_cents: 100,
            total_stock: 10,
            limit_per_user: 1,
            starts_at: datetime!(2026-11-11 00:00 UTC),
            ends_at: datetime!(2026-11-12 00:00 UTC),
        }
    }

    #[test]
    fn validation_names_the_field() {
        assert!(validate(&new_activity()).is_ok());
        type Spoil = fn(&mut NewActivity);
        let cases: [(Spoil, &str); 7] = [
            (|a| a.total_stock = -1, "total_stock"),
            (|a| a.limit_per_user = 0, "limit_per_user"),
            (|a| a.ends_at = a.starts_at, "ends_at"),
            (|a| a.name = "  ".into(), "name"),
            (|a| a.price_cents = -5, "price_cents"),
            (|a| a.price_cents = MAX_PRICE_CENTS + 1, "price_cents"),
            (|a| a.limit_per_user = MAX_LIMIT_PER_USER + 1, "limit_per_user"),
        ];
        for (spoil, field) in cases {
            let mut a = new_activity();
            spoil(&mut a);
            let err = validate(&a).unwrap_err();
            assert!(err.message.starts_with(field), "{}", err.message);
        }
    }

    #[test]
    fn ip_entries_are_stored_canonically() {
        assert_eq!(canonical(BlacklistKind::Ips, "10.0.0.7").unwrap(), "10.0.0.7");
        assert_eq!(canonical(BlacklistKind::Ips, "10.9.9.9/8").unwrap(), "10.0.0.0/8");
        assert!(canonical(BlacklistKind::Ips, "nope").is_err());
        assert!(canonical(BlacklistKind::Users, "bad id").is_err());
    }
}
