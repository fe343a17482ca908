//! A Docker registry token service (the "Bearer" flow Harbor, GitLab and Docker Hub use):
//! checks HTTP Basic credentials and issues RS256 JWTs that docker-registry verifies
//! against the certificate in its `rootcertbundle` (sent in the `x5c` header).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    pub listen: SocketAddr,
    #[arg(long)]
    pub key: PathBuf,
    #[arg(long)]
    pub cert: PathBuf,
    #[arg(long)]
    pub issuer: String,
    #[arg(long)]
    pub service: String,
    #[arg(long)]
    pub user: String,
    #[arg(long)]
    pub password_file: PathBuf,
    /// A second user (same password) whose token requests for several repositories
    /// are granted only the first one, as token services with a per-request scope
    /// limit do: clients must ask again for the rest.
    #[arg(long)]
    pub partial_user: Option<String>,
}

struct Issuer {
    /// The scopes of each token request, in order (bounded), for tests that check how
    /// clients batch them: `GET /requests`.
    requests: std::sync::Mutex<Vec<Vec<String>>>,
    key: EncodingKey,
    cert_der_b64: String,
    issuer: String,
    service: String,
    user: String,
    partial_user: Option<String>,
    password: String,
}

#[derive(Serialize)]
struct Access {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    actions: Vec<String>,
}

#[derive(Serialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: i64,
    nbf: i64,
    iat: i64,
    jti: String,
    access: Vec<Access>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let key_pem =
        std::fs::read(&args.key).with_context(|| format!("reading {}", args.key.display()))?;
    let cert_pem = std::fs::read_to_string(&args.cert)
        .with_context(|| format!("reading {}", args.cert.display()))?;
    // The body of a PEM block is the base64 of the DER certificate, which is what x5c holds.
    let cert_der_b64: String = cert_pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let password = std::fs::read_to_string(&args.password_file)?
        .trim()
        .to_string();
    let issuer = Arc::new(Issuer {
        requests: Default::default(),
        key: EncodingKey::from_rsa_pem(&key_pem).context("token signing key")?,
        cert_der_b64,
        issuer: args.issuer,
        service: args.service,
        user: args.user,
        partial_user: args.partial_user,
        password,
    });
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/token", get(token))
        .route("/requests", get(requests))
        .with_state(issuer);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!("token service listening on {}", args.listen);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn requests(State(issuer): State<Arc<Issuer>>) -> Response {
    let seen = issuer
        .requests
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    Json(seen).into_response()
}

fn basic_user(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

async fn token(
    State(issuer): State<Arc<Issuer>>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    // `scope` may be repeated (Docker's token spec): the token grants all of them.
    let service = query
        .iter()
        .find(|(key, _)| key == "service")
        .map(|(_, v)| v);
    let scopes: Vec<&str> = query
        .iter()
        .filter(|(key, _)| key == "scope")
        .map(|(_, value)| value.as_str())
        .collect();
    if let Ok(mut seen) = issuer.requests.lock()
        && seen.len() < 100_000
    {
        seen.push(scopes.iter().map(|s| s.to_string()).collect());
    }
    let known = |user: &str| user == issuer.user || issuer.partial_user.as_deref() == Some(user);
    let subject = match basic_user(&headers) {
        Some((user, password)) if known(&user) && password == issuer.password => user,
        Some(_) => {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"errors": [{"code": "UNAUTHORIZED", "message": "invalid username or password"}]})),
            )
                .into_response();
        }
        None => String::new(),
    };
    if service.is_some_and(|service| *service != issuer.service) {
        return (StatusCode::BAD_REQUEST, "unknown service").into_response();
    }
    // Authenticated users get what they ask for; anonymous requests get no access, so the
    // registry answers 401 as a private registry does.
    let mut access: Vec<Access> = if subject.is_empty() {
        Vec::new()
    } else {
        scopes.iter().flat_map(|scope| parse_scope(scope)).collect()
    };
    if issuer.partial_user.as_deref() == Some(subject.as_str()) {
        access.truncate(1);
    }
    let now = jiff::Timestamp::now().as_second();
    let claims = Claims {
        iss: issuer.issuer.clone(),
        sub: subject,
        aud: issuer.service.clone(),
        exp: now + 300,
        nbf: now - 10,
        iat: now,
        jti: format!("{now}-{}", std::process::id()),
        access,
    };
    let mut header = Header::new(Algorithm::RS256);
    header.x5c = Some(vec![issuer.cert_der_b64.clone()]);
    match jsonwebtoken::encode(&header, &claims, &issuer.key) {
        Ok(token) => Json(json!({
            "token": token,
            "access_token": token,
            "expires_in": 300,
            "issued_at": jiff::Timestamp::now().to_string(),
        }))
        .into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

/// `repository:deckhouse/modules/echo:pull,push` (several scopes separated by spaces).
fn parse_scope(scope: &str) -> Vec<Access> {
    scope
        .split(' ')
        .filter_map(|item| {
            let (kind, rest) = item.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            Some(Access {
                kind: kind.to_string(),
                name: name.to_string(),
                actions: actions.split(',').map(str::to_string).collect(),
            })
        })
        .collect()
}
