//! The REST API under `/api/v1/`, answering with Fabric CA's envelope bytes,
//! statuses and codes.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::Value;

use crate::api::{ApiError, CaService};

/// `{"result":<json>\n,"errors":[],"messages":[],"success":true}` — the `\n` is Go's
/// `json.Encoder`.
pub fn envelope(outcome: &Result<Value, ApiError>) -> (StatusCode, Vec<u8>) {
    match outcome {
        Ok(result) => {
            let body = format!("{{\"result\":{}\n,\"errors\":[],\"messages\":[],\"success\":true}}", result);
            (StatusCode::OK, body.into_bytes())
        }
        Err(e) => {
            let error = serde_json::json!({"code": e.code, "message": e.message});
            let body =
                format!("{{\"result\":\"\",\"errors\":[{error}\n],\"messages\":[],\"success\":false}}");
            (StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), body.into_bytes())
        }
    }
}

fn respond(outcome: Result<Value, ApiError>, success: StatusCode) -> Response {
    if let Err(e) = &outcome {
        tracing::info!(code = e.code, "request refused: {}", e.detail);
    }
    let (status, body) = envelope(&outcome);
    let status = if outcome.is_ok() { success } else { status };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("static response parts")
}

/// `?ca=<name>`: empty or this CA.
fn check_ca(service: &CaService, uri: &axum::http::Uri) -> Result<(), ApiError> {
    let name = uri
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("ca="))
        .unwrap_or("");
    if name.is_empty() || name == service.config.name {
        Ok(())
    } else {
        Err(ApiError::new(404, 19, format!("CA '{name}' does not exist")))
    }
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
}

/// One request as the handlers need it: method, request URI, headers, raw body.
pub struct Call {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for Call {
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let (method, uri, headers) = (parts.method.clone(), parts.uri.clone(), parts.headers.clone());
        let body = Bytes::from_request(axum::extract::Request::from_parts(parts, body), state)
            .await
            .map_err(axum::response::IntoResponse::into_response)?;
        Ok(Self { method, uri, headers, body })
    }
}

impl Call {
    fn is_post(&self) -> bool {
        self.method == Method::POST
    }

    /// Runs `op` for the caller of a token-authenticated request.
    fn with_token(
        &self,
        service: &CaService,
        op: impl FnOnce(&crate::registry::IdentityRecord, &[u8]) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        check_ca(service, &self.uri)?;
        let request_uri =
            self.uri.path_and_query().map_or_else(|| self.uri.path().to_owned(), |pq| pq.as_str().to_owned());
        let caller = service.authenticate_token(
            authorization(&self.headers),
            self.method.as_str(),
            &request_uri,
            &self.body,
        )?;
        op(&caller, &self.body)
    }
}

/// Requests doing blocking work at once; the rest wait for a turn.
pub const MAX_BLOCKING_REQUESTS: usize = 8;

/// The router's state: the service, and the turns for blocking work.
#[derive(Clone)]
struct Served {
    service: Arc<CaService>,
    turns: Arc<tokio::sync::Semaphore>,
}

impl Served {
    /// Runs `work` on the blocking pool, [`MAX_BLOCKING_REQUESTS`] at a time: password
    /// hashing (PBKDF2) and the registry's synced writes would otherwise hold the
    /// runtime's workers, and with them TLS handshakes and every other request.
    async fn run(&self, work: impl FnOnce(&CaService) -> Response + Send + 'static) -> Response {
        let failed = || respond(Err(ApiError::internal("the request's worker failed")), StatusCode::OK);
        let Ok(_turn) = self.turns.clone().acquire_owned().await else { return failed() };
        let service = self.service.clone();
        tokio::task::spawn_blocking(move || work(&service)).await.unwrap_or_else(|_| failed())
    }
}

type Shared = State<Served>;

async fn cainfo(State(served): Shared, call: Call) -> Response {
    if call.method == Method::HEAD {
        return Response::builder().status(StatusCode::OK).body(Body::empty()).expect("static response");
    }
    let service = &served.service;
    respond(check_ca(service, &call.uri).map(|()| service.cainfo()), StatusCode::OK)
}

async fn enroll(State(served): Shared, call: Call) -> Response {
    served
        .run(move |service| {
            let outcome = check_ca(service, &call.uri)
                .and_then(|()| service.authenticate_basic(authorization(&call.headers)))
                .and_then(|id| service.enroll(&id, &call.body));
            respond(outcome, StatusCode::CREATED)
        })
        .await
}

/// A token-authenticated route, run off the runtime: `op` on the caller and the body,
/// answered with `success` when it succeeds.
async fn token_route(
    served: Served,
    call: Call,
    success: StatusCode,
    op: impl FnOnce(&CaService, &crate::registry::IdentityRecord, &[u8]) -> Result<Value, ApiError>
    + Send
    + 'static,
) -> Response {
    served
        .run(move |service| respond(call.with_token(service, |c, body| op(service, c, body)), success))
        .await
}

async fn reenroll(State(served): Shared, call: Call) -> Response {
    token_route(served, call, StatusCode::CREATED, |service, c, body| service.reenroll(c, body)).await
}

async fn register(State(served): Shared, call: Call) -> Response {
    served
        .run(move |service| {
            let outcome = call.with_token(service, |c, body| service.register(c, body));
            let id = serde_json::from_slice::<Value>(&call.body)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned));
            let mut response = respond(outcome, StatusCode::CREATED);
            if response.status() == StatusCode::CREATED
                && let Some(id) = id
                && let Ok(location) = format!("/api/v1/identities/{id}").parse()
            {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        })
        .await
}

async fn revoke(State(served): Shared, call: Call) -> Response {
    token_route(served, call, StatusCode::OK, |service, c, body| service.revoke(c, body)).await
}

async fn gencrl(State(served): Shared, call: Call) -> Response {
    token_route(served, call, StatusCode::OK, |service, c, _| service.gencrl(c)).await
}

async fn identities(State(served): Shared, call: Call) -> Response {
    served
        .run(move |service| {
            let post = call.is_post();
            let outcome = call.with_token(service, |c, body| {
                if post { service.register(c, body) } else { service.identities(c) }
            });
            respond(outcome, if post { StatusCode::CREATED } else { StatusCode::OK })
        })
        .await
}

async fn identity(State(served): Shared, Path(id): Path<String>, call: Call) -> Response {
    served
        .run(move |service| {
            let method = call.method.clone();
            let force = call
                .uri
                .query()
                .into_iter()
                .flat_map(|q| q.split('&'))
                .any(|kv| kv.strip_prefix("force=").and_then(crate::authority::parse_bool) == Some(true));
            let outcome = call.with_token(service, |c, body| match method {
                Method::DELETE => service.remove_identity(c, &id, force),
                Method::PUT => service.modify_identity(c, &id, body),
                _ => service.identity_info(c, &id),
            });
            respond(outcome, StatusCode::OK)
        })
        .await
}

async fn affiliations(State(served): Shared, call: Call) -> Response {
    served
        .run(move |service| {
            let post = call.is_post();
            let outcome = call.with_token(service, |c, body| {
                if post { service.add_affiliation(c, body) } else { Ok(service.affiliations()) }
            });
            respond(outcome, if post { StatusCode::CREATED } else { StatusCode::OK })
        })
        .await
}

async fn affiliation(State(served): Shared, Path(name): Path<String>, call: Call) -> Response {
    token_route(served, call, StatusCode::OK, move |service, c, _| service.remove_affiliation(c, &name)).await
}

async fn not_allowed(method: Method) -> Response {
    let body =
        serde_json::json!({"code": 1, "message": format!("Method {method} is not allowed")}).to_string();
    Response::builder()
        .status(StatusCode::METHOD_NOT_ALLOWED)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("static response")
}

async fn not_found() -> Response {
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from("404 page not found\n"))
        .expect("static response")
}

/// The `/api/v1` router over `service`.
pub fn router(service: Arc<CaService>) -> Router {
    Router::new()
        .route("/api/v1/cainfo", get(cainfo).post(cainfo).head(cainfo))
        .route("/api/v1/enroll", post(enroll))
        .route("/api/v1/reenroll", post(reenroll))
        .route("/api/v1/register", post(register))
        .route("/api/v1/revoke", post(revoke))
        .route("/api/v1/gencrl", post(gencrl))
        .route("/api/v1/identities", get(identities).post(identities))
        .route("/api/v1/identities/{id}", get(identity).put(identity).delete(identity))
        .route("/api/v1/affiliations", get(affiliations).post(affiliations))
        .route("/api/v1/affiliations/{name}", axum::routing::delete(affiliation))
        .method_not_allowed_fallback(not_allowed)
        .fallback(not_found)
        .with_state(Served { service, turns: Arc::new(tokio::sync::Semaphore::new(MAX_BLOCKING_REQUESTS)) })
}
