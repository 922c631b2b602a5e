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

use crate::activities;
use crate::admin_session::{AdminSessions, SESSION_SECS};
use crate::blacklist::{self, Blacklist, parse_ip_entry};
use crate::blacklist_reach;
use crate::clock::{from_ms, now_ms};
use crate::routes::auth::{ADMIN_COOKIE, Admin, ClientIp};
use crate::routes::error::ApiError;
use crate::routes::extract::{ActivityId, JsonBody, PageQuery, Query};
use crate::state::AppState;
use crate::store::{BlacklistKind, Store};
use crate::telemetry;

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
    State(sessions): State<AdminSessions>,
    ClientIp(client): ClientIp,
    JsonBody(body): JsonBody<LoginRequest>,
) -> Result<Response, ApiError> {
    let (token, claims) = sessions.login(&body.password, client).await?;
    let expires_at = from_ms(claims.exp * 1000);
    let cookie = session_cookie(&token, SESSION_SECS);
    Ok(([(SET_COOKIE, cookie)], Json(AdminSession { token, expires_at })).into_response())
}

/// Ends the session presented (it stays refused until it would have expired),
/// and clears the cookie either way.
async fn logout(State(sessions): State<AdminSessions>, session: Option<Admin>) -> Result<impl IntoResponse, ApiError> {
    if let Some(Admin(claims)) = session {
        sessions.revoke(&claims).await?;
        tracing::info!("admin logged out");
    }
    Ok((StatusCode::NO_CONTENT, [(SET_COOKIE, session_cookie("", 0))]))
}

/// Ends every admin session, on every backend, this one's included.
async fn revoke_all_sessions(State(sessions): State<AdminSessions>, _: Admin) -> Result<impl IntoResponse, ApiError> {
    sessions.revoke_all().await?;
    tracing::warn!("every admin session revoked");
    Ok((StatusCode::NO_CONTENT, [(SET_COOKIE, session_cookie("", 0))]))
}

async fn list_activities(State(store): State<Store>, _: Admin) -> Result<Json<Vec<Activity>>, ApiError> {
    Ok(Json(activities::list(&store).await?))
}

async fn create_activity(
    State(store): State<Store>,
    _: Admin,
    JsonBody(new): JsonBody<NewActivity>,
) -> Result<(StatusCode, Json<Activity>), ApiError> {
    Ok((StatusCode::CREATED, Json(activities::create(&store, &new).await?)))
}

async fn get_activity(
    State(store): State<Store>,
    _: Admin,
    ActivityId(id): ActivityId,
) -> Result<Json<Activity>, ApiError> {
    Ok(Json(activities::get(&store, id).await?))
}

async fn patch_activity(
    State(store): State<Store>,
    _: Admin,
    ActivityId(id): ActivityId,
    JsonBody(patch): JsonBody<ActivityPatch>,
) -> Result<Json<Activity>, ApiError> {
    Ok(Json(activities::update(&store, id, &patch).await?))
}

async fn delete_activity(
    State(store): State<Store>,
    _: Admin,
    ActivityId(id): ActivityId,
) -> Result<StatusCode, ApiError> {
    activities::delete(&store, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn activity_stats(
    State(store): State<Store>,
    _: Admin,
    ActivityId(id): ActivityId,
) -> Result<Json<ActivityStats>, ApiError> {
    let record = activities::record(&store, id).await?;
    let now = now_ms();
    let counters = store.counters(id, now).await?;
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
    store: &Store,
    kind: BlacklistKind,
    query: &PageQuery,
) -> Result<Json<Page<BlacklistEntry>>, ApiError> {
    let limit = query.limit()?;
    let cursor = match query.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => c.parse().map_err(|_| ApiError::bad_request("cursor: not one this API returned"))?,
    };
    let (next, values) = store.blacklist_page(kind, cursor, limit).await?;
    Ok(Json(Page { items: entries(store, kind, values).await?, next_cursor: next.map(|n| n.to_string()) }))
}

/// Stored entries as the API shows them, with when each reached the edge.
async fn entries(store: &Store, kind: BlacklistKind, values: Vec<String>) -> Result<Vec<BlacklistEntry>, ApiError> {
    let reached = blacklist_reach::reached_at(store, kind, &values).await?;
    Ok(values
        .into_iter()
        .zip(reached)
        .map(|(value, at_ms)| BlacklistEntry { value, reached_edge_at: at_ms.map(from_ms) })
        .collect())
}

async fn entry(store: &Store, kind: BlacklistKind, value: String) -> Result<Json<BlacklistEntry>, ApiError> {
    let mut one = entries(store, kind, vec![value]).await?;
    one.pop().map(Json).ok_or_else(|| ApiError::unavailable("blacklist entry vanished"))
}

async fn list_blacklisted_users(
    State(store): State<Store>,
    _: Admin,
    Query(q): Query<PageQuery>,
) -> Result<Json<Page<BlacklistEntry>>, ApiError> {
    blacklist_page(&store, BlacklistKind::Users, &q).await
}

async fn list_blacklisted_ips(
    State(store): State<Store>,
    _: Admin,
    Query(q): Query<PageQuery>,
) -> Result<Json<Page<BlacklistEntry>>, ApiError> {
    blacklist_page(&store, BlacklistKind::Ips, &q).await
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

async fn get_entry(store: &Store, kind: BlacklistKind, raw: &str) -> Result<Json<BlacklistEntry>, ApiError> {
    let value = canonical(kind, raw)?;
    if store.blacklist_contains(kind, &value).await? {
        entry(store, kind, value).await
    } else {
        Err(ApiError::not_found("blacklist entry"))
    }
}

async fn put_entry(
    store: &Store,
    cache: &Blacklist,
    kind: BlacklistKind,
    raw: &str,
) -> Result<Json<BlacklistEntry>, ApiError> {
    let value = canonical(kind, raw)?;
    blacklist::add(store, kind, &value).await?;
    tracing::info!(?kind, %value, "blacklisted");
    if let Err(e) = cache.refresh(store, true).await {
        tracing::warn!(error = %e, "blacklist reload after change failed; the poller will retry");
    }
    entry(store, kind, value).await
}

async fn delete_entry(
    store: &Store,
    cache: &Blacklist,
    kind: BlacklistKind,
    raw: &str,
) -> Result<StatusCode, ApiError> {
    let value = canonical(kind, raw)?;
    let removed = blacklist::remove(store, kind, &value).await?;
    if let Err(e) = cache.refresh(store, true).await {
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
    State(store): State<Store>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<BlacklistEntry>, ApiError> {
    get_entry(&store, BlacklistKind::Users, &id).await
}
async fn blacklist_user(
    State(store): State<Store>,
    State(cache): State<Blacklist>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<BlacklistEntry>, ApiError> {
    put_entry(&store, &cache, BlacklistKind::Users, &id).await
}
async fn unblacklist_user(
    State(store): State<Store>,
    State(cache): State<Blacklist>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete_entry(&store, &cache, BlacklistKind::Users, &id).await
}
async fn get_blacklisted_ip(
    State(store): State<Store>,
    _: Admin,
    Path(ip): Path<String>,
) -> Result<Json<BlacklistEntry>, ApiError> {
    get_entry(&store, BlacklistKind::Ips, &ip).await
}
async fn blacklist_ip(
    State(store): State<Store>,
    State(cache): State<Blacklist>,
    _: Admin,
    Path(ip): Path<String>,
) -> Result<Json<BlacklistEntry>, ApiError> {
    put_entry(&store, &cache, BlacklistKind::Ips, &ip).await
}
async fn unblacklist_ip(
    State(store): State<Store>,
    State(cache): State<Blacklist>,
    _: Admin,
    Path(ip): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete_entry(&store, &cache, BlacklistKind::Ips, &ip).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_entries_are_stored_canonically() {
        assert_eq!(canonical(BlacklistKind::Ips, "10.0.0.7").unwrap(), "10.0.0.7");
        assert_eq!(canonical(BlacklistKind::Ips, "10.9.9.9/8").unwrap(), "10.0.0.0/8");
        assert!(canonical(BlacklistKind::Ips, "nope").is_err());
        assert!(canonical(BlacklistKind::Users, "bad id").is_err());
    }
}
