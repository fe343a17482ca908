//! `mpo-sandbox registry-front`: plain HTTP in front of the sandbox's plain-HTTP
//! docker-registry, for the registry behaviours distribution itself never shows but
//! registries behind proxies, CDNs and rate limiters do. Every request is forwarded to
//! the registry's `modules` repository tree; the first path component after `/v2/`
//! chooses what the front adds (`<front>/<mode>/<module>` is a ModuleSource repo):
//!
//! - `digest-lie`: manifest answers carry a wrong `Docker-Content-Digest` header (as a
//!   proxy that rewrites manifests would send); docs/deckhouse-real.md §3.9 says
//!   Deckhouse hashes the body and ignores it.
//! - `busy-429`, `busy-503`: the first manifest request of each path opens a window of
//!   [`BUSY_SECONDS`]; every manifest request inside it answers 429 (rate limited) or 503
//!   with `Retry-After: <seconds left>`; afterwards requests pass.
//! - `busy-long`: as `busy-429` with a window of [`LONG_BUSY_SECONDS`].
//! - `modules`: passed through unchanged.
//!
//! A mode's own tag list (the catalog of the source repo `<front>/<mode>`) is empty.
//!
//! `GET /requests` lists the manifest requests seen (mode, path, answer status), newest
//! last, for tests that check when a client came back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Json, Response};

/// How long a `busy-*` path refuses manifest requests after the first one.
pub const BUSY_SECONDS: u64 = 4;
/// How long a `busy-long` path refuses them.
pub const LONG_BUSY_SECONDS: u64 = 600;
/// What the `digest-lie` path sends as `Docker-Content-Digest` (sha256 of "wrong").
pub const WRONG_DIGEST: &str =
    "sha256:8810ad581e59f2bc3928b261707a71308f7e139eb04820366dc4d5c18d980225";

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    pub listen: SocketAddr,
    /// The plain-HTTP registry, `http://127.0.0.1:PORT`.
    #[arg(long)]
    pub upstream: String,
}

#[derive(Clone, serde::Serialize)]
struct Seen {
    mode: String,
    path: String,
    status: u16,
    /// Milliseconds since the front started.
    at_ms: u128,
}

struct Front {
    upstream: String,
    http: reqwest::Client,
    started: Instant,
    /// When each busy path's window opened.
    busy_since: Mutex<HashMap<String, Instant>>,
    seen: Mutex<Vec<Seen>>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    crate::install_crypto();
    let front = Arc::new(Front {
        upstream: args.upstream.trim_end_matches('/').to_string(),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
        started: Instant::now(),
        busy_since: Mutex::new(HashMap::new()),
        seen: Mutex::new(Vec::new()),
    });
    let app = axum::Router::new()
        .route("/requests", axum::routing::get(requests))
        .fallback(forward)
        .with_state(front);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!("registry front listening on {}", args.listen);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn requests(State(front): State<Arc<Front>>) -> Json<Vec<Seen>> {
    Json(front.seen.lock().map(|s| s.clone()).unwrap_or_default())
}

fn busy_window(mode: &str) -> Option<(u64, StatusCode)> {
    match mode {
        "busy-429" => Some((BUSY_SECONDS, StatusCode::TOO_MANY_REQUESTS)),
        "busy-503" => Some((BUSY_SECONDS, StatusCode::SERVICE_UNAVAILABLE)),
        "busy-long" => Some((LONG_BUSY_SECONDS, StatusCode::TOO_MANY_REQUESTS)),
        _ => None,
    }
}

async fn forward(State(front): State<Arc<Front>>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    // `/v2/<mode>/<rest>` → `/v2/modules/<rest>`; `/v2/` itself passes as it is.
    let (mode, upstream_path) = match path.strip_prefix("/v2/").and_then(|p| p.split_once('/')) {
        Some((mode, rest)) => (mode.to_string(), format!("/v2/modules/{rest}")),
        None => (String::new(), path.clone()),
    };
    // A mode's own tag list (`<front>/<mode>` as a ModuleSource repo: its module
    // catalog, docs/deckhouse-real.md §3.14) is empty: forwarded, it would be the
    // `plain` source's catalog, and a source listing plain's modules makes them all a
    // Conflict (§3.15).
    if !mode.is_empty() && mode != "modules" && path == format!("/v2/{mode}/tags/list") {
        return Json(serde_json::json!({"name": mode, "tags": []})).into_response();
    }
    let manifest = upstream_path.contains("/manifests/");
    if manifest && let Some((seconds, status)) = busy_window(&mode) {
        let opened = {
            let mut since = match front.busy_since.lock() {
                Ok(since) => since,
                Err(poisoned) => poisoned.into_inner(),
            };
            *since.entry(path.clone()).or_insert_with(Instant::now)
        };
        let window = Duration::from_secs(seconds);
        let elapsed = opened.elapsed();
        if elapsed < window {
            let left = (window - elapsed).as_millis().div_ceil(1000).max(1);
            front.record(&mode, &path, status.as_u16());
            let mut response = (
                status,
                [("content-type", "application/json")],
                r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#,
            )
                .into_response();
            if let Ok(value) = HeaderValue::from_str(&left.to_string()) {
                response.headers_mut().insert("retry-after", value);
            }
            return response;
        }
    }
    let method = request.method().clone();
    let headers = request.headers().clone();
    let body = match axum::body::to_bytes(request.into_body(), 64 << 20).await {
        Ok(body) => body,
        Err(err) => return (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    };
    let mut outgoing = front
        .http
        .request(method, format!("{}{upstream_path}{query}", front.upstream));
    for (name, value) in &headers {
        if name != "host" {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = match outgoing.body(body).send().await {
        Ok(answer) => answer,
        Err(err) => return (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    };
    let status = answer.status();
    let mut response_headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap_or_default();
    if manifest {
        front.record(&mode, &path, status.as_u16());
        if mode == "digest-lie" && status.is_success() {
            response_headers.insert(
                "docker-content-digest",
                HeaderValue::from_static(WRONG_DIGEST),
            );
        }
    }
    // Locations of uploads and the catalog name the upstream tree; the front is read-only
    // in practice (the sandbox pushes to the registry directly).
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in &response_headers {
        if name != "transfer-encoding" && name != "connection" {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    response
}

impl Front {
    fn record(&self, mode: &str, path: &str, status: u16) {
        if let Ok(mut seen) = self.seen.lock() {
            if seen.len() > 10_000 {
                seen.drain(..5_000);
            }
            seen.push(Seen {
                mode: mode.to_string(),
                path: path.to_string(),
                status,
                at_ms: self.started.elapsed().as_millis(),
            });
        }
    }
}
