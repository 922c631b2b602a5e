//! Calls to the admin API with `fetch` (same origin, the session cookie goes
//! along). Any 401 outside the login ends the session ("session expired").

use seckill_api::{AdminSession, LoginRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, Request, RequestCredentials, RequestInit, Response};

use crate::model::ApiError;

const LOGIN: &str = "/admin/api/login";

fn js_error(e: JsValue) -> ApiError {
    ApiError::network(
        e.as_string()
            .or_else(|| js_sys::JSON::stringify(&e).ok().and_then(|s| s.as_string()))
            .unwrap_or_else(|| "network error".into()),
    )
}

/// Sends one request; `Ok` carries the body of a 2xx answer.
async fn call(method: &str, path: &str, body: Option<String>) -> Result<String, ApiError> {
    let init = RequestInit::new();
    init.set_method(method);
    init.set_credentials(RequestCredentials::SameOrigin);
    let headers = Headers::new().map_err(js_error)?;
    headers.set("accept", "application/json").map_err(js_error)?;
    if let Some(body) = &body {
        headers.set("content-type", "application/json").map_err(js_error)?;
        init.set_body(&JsValue::from_str(body));
    }
    init.set_headers(&headers);
    let request = Request::new_with_str_and_init(path, &init).map_err(js_error)?;
    let answer = JsFuture::from(leptos::prelude::window().fetch_with_request(&request))
        .await
        .map_err(|_| ApiError::network("the server cannot be reached"))?;
    let response: Response = answer.dyn_into().map_err(js_error)?;
    let status = response.status();
    let text =
        JsFuture::from(response.text().map_err(js_error)?).await.map_err(js_error)?.as_string().unwrap_or_default();
    if (200..300).contains(&status) {
        return Ok(text);
    }
    let error = ApiError::from_response(status, &text);
    if error.is_unauthorized() && path != LOGIN {
        super::state::logged_out(true);
    }
    Err(error)
}

fn decode<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(|e| ApiError::decode(e.to_string()))
}

fn encode<B: Serialize>(body: &B) -> Result<String, ApiError> {
    serde_json::to_string(body).map_err(|e| ApiError::decode(e.to_string()))
}

/// `GET path`, decoding the JSON answer (the future owns the path, so it can outlive the caller).
pub fn get<T: DeserializeOwned + 'static>(
    path: impl Into<String>,
) -> impl Future<Output = Result<T, ApiError>> + 'static {
    let path = path.into();
    async move { decode(&call("GET", &path, None).await?) }
}

/// `method` without a body, decoding the JSON answer.
pub async fn bare<T: DeserializeOwned>(method: &str, path: &str) -> Result<T, ApiError> {
    decode(&call(method, path, None).await?)
}

/// `method` with a JSON body, decoding the JSON answer.
pub async fn send<B: Serialize, T: DeserializeOwned>(method: &str, path: &str, body: &B) -> Result<T, ApiError> {
    decode(&call(method, path, Some(encode(body)?)).await?)
}

/// `method` (optionally with a JSON body), ignoring the answer's body.
pub async fn send_only(method: &str, path: &str, body: Option<&serde_json::Value>) -> Result<(), ApiError> {
    let body = body.map(encode).transpose()?;
    call(method, path, body).await.map(drop)
}

pub async fn login(password: &str) -> Result<AdminSession, ApiError> {
    send("POST", LOGIN, &LoginRequest { password: password.to_owned() }).await
}

pub async fn logout() -> Result<(), ApiError> {
    send_only("POST", "/admin/api/logout", None).await
}
