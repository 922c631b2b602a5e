//! Orders: a buyer's own (read, list, pay, cancel), and the admin list and
//! reconciliation.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use seckill_api::{Order, OrderStatus, Page, Reconciliation};
use serde::Deserialize;

use crate::activities;
use crate::db::{Cursor, OrderFilter};
use crate::orders::{OrderError, Orders};
use crate::reconcile::{publish, reconcile};
use crate::routes::auth::{Admin, Buyer, Caller};
use crate::routes::error::ApiError;
use crate::routes::extract::{ActivityId, PageQuery, Query};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/orders/{order_id}", get(get_order))
        .route("/api/orders/{order_id}/pay", post(pay))
        .route("/api/orders/{order_id}/cancel", post(cancel))
        .route("/api/me/orders", get(my_orders))
        .route("/admin/api/orders", get(admin_orders))
        .route("/admin/api/activities/{id}/reconciliation", get(reconciliation))
}

async fn get_order(
    State(orders): State<Orders>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Order>, ApiError> {
    let found = orders.find(&id).await?.ok_or(OrderError::NotFound)?;
    if let Caller::Buyer(user) = &caller
        && found.user_id() != user
    {
        return Err(OrderError::NotYours.into());
    }
    Ok(Json(found.view()))
}

async fn pay(
    State(orders): State<Orders>,
    Buyer(user): Buyer,
    Path(id): Path<String>,
) -> Result<Json<Order>, ApiError> {
    Ok(Json(orders.pay(&user, &id).await?))
}

async fn cancel(
    State(orders): State<Orders>,
    Buyer(user): Buyer,
    Path(id): Path<String>,
) -> Result<Json<Order>, ApiError> {
    Ok(Json(orders.cancel(&user, &id).await?))
}

/// One page of orders matching `filter`.
async fn page(orders: &Orders, filter: OrderFilter, query: &PageQuery) -> Result<Json<Page<Order>>, ApiError> {
    let limit = query.limit()?;
    let after = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(Cursor::decode(c).ok_or_else(|| ApiError::bad_request("cursor: not one this API returned"))?),
    };
    let (items, next) = orders.list(&filter, after.as_ref(), limit).await?;
    Ok(Json(Page { items, next_cursor: next.map(|c| c.encode()) }))
}

async fn my_orders(
    State(orders): State<Orders>,
    Buyer(user): Buyer,
    Query(q): Query<PageQuery>,
) -> Result<Json<Page<Order>>, ApiError> {
    page(&orders, OrderFilter { user_id: Some(user), ..OrderFilter::default() }, &q).await
}

#[derive(Debug, Deserialize)]
struct AdminOrderQuery {
    activity_id: Option<String>,
    status: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn admin_orders(
    State(orders): State<Orders>,
    _: Admin,
    Query(q): Query<AdminOrderQuery>,
) -> Result<Json<Page<Order>>, ApiError> {
    let activity_id = match q.activity_id.as_deref() {
        None | Some("") => None,
        Some(a) => Some(a.parse().map_err(|_| ApiError::bad_request("activity_id: not an activity id"))?),
    };
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(OrderStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request("status: one of queued, pending_payment, paid, cancelled, expired")
        })?),
    };
    let paging = PageQuery { limit: q.limit, cursor: q.cursor };
    page(&orders, OrderFilter { activity_id, status, user_id: None }, &paging).await
}

async fn reconciliation(
    State(orders): State<Orders>,
    _: Admin,
    ActivityId(id): ActivityId,
) -> Result<Json<Reconciliation>, ApiError> {
    let activity = activities::record(&orders.store, id).await?;
    let r = reconcile(&orders, id, activity.total_stock).await?;
    publish(&r);
    Ok(Json(r))
}
