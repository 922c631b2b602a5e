//! The token step's proof of work: the switch (`GET|PUT /admin/api/anti-bot`)
//! and a buyer's challenge (`GET /api/activities/{id}/challenge`).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use seckill_api::{AntiBot as AntiBotSetting, TokenChallenge};

use crate::anti_bot::AntiBot;
use crate::clock::now_ms;
use crate::routes::auth::{Admin, Buyer};
use crate::routes::error::ApiError;
use crate::routes::extract::{ActivityId, JsonBody};
use crate::state::AppState;
use crate::store::Store;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/api/anti-bot", get(setting).put(switch))
        .route("/api/activities/{id}/challenge", get(challenge))
}

async fn setting(State(anti_bot): State<AntiBot>, _: Admin) -> Json<AntiBotSetting> {
    Json(AntiBotSetting { pow_bits: anti_bot.bits() })
}

async fn switch(
    State(anti_bot): State<AntiBot>,
    State(store): State<Store>,
    _: Admin,
    JsonBody(setting): JsonBody<AntiBotSetting>,
) -> Result<Json<AntiBotSetting>, ApiError> {
    anti_bot.set(&store, setting.pow_bits).await?;
    Ok(Json(AntiBotSetting { pow_bits: anti_bot.bits() }))
}

/// The challenge is the buyer's own: it binds the activity and the user.
async fn challenge(
    State(anti_bot): State<AntiBot>,
    State(store): State<Store>,
    Buyer(user): Buyer,
    ActivityId(id): ActivityId,
) -> Result<Json<TokenChallenge>, ApiError> {
    if !store.activity_exists(id).await? {
        return Err(ApiError::not_found("activity"));
    }
    Ok(Json(anti_bot.challenge(id, &user, now_ms())))
}
