//! Requests to the API server at kubectl's verbosity levels, on stderr: `-v=6` one line
//! per request (method, URL, status, time), `-v=7` also the request headers, `-v=8`
//! also the response headers. Credentials are never shown: `Authorization`,
//! `Proxy-Authorization` and cookies are printed as `<redacted>`, and URLs lose any
//! user-info. (kubectl prints the same at 6-8; it shows bodies at 8-9, which may hold
//! secrets, so they are never printed here.)

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderMap, Request, Response};
use kube::client::Body;
use tower::{BoxError, Layer, Service};

pub use crate::output::verbosity::{REQUEST_HEADERS, REQUESTS};
pub const RESPONSE_HEADERS: u8 = 8;

pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

#[derive(Clone)]
pub struct LogLayer {
    level: u8,
    server: String,
    log: Log,
}

impl LogLayer {
    /// `server` is prefixed to the request paths (the client adds it further in).
    pub fn new(level: u8, server: &str, log: Log) -> Self {
        Self {
            level,
            server: server.trim_end_matches('/').to_string(),
            log,
        }
    }
}

impl<S> Layer<S> for LogLayer {
    type Service = Logged<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Logged {
            inner,
            level: self.level,
            server: self.server.clone(),
            log: self.log.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Logged<S> {
    inner: S,
    level: u8,
    server: String,
    log: Log,
}

/// Header lines with credentials redacted.
pub fn headers(map: &HeaderMap) -> Vec<String> {
    map.iter()
        .map(|(name, value)| {
            let secret = matches!(
                name.as_str(),
                "authorization" | "proxy-authorization" | "cookie" | "set-cookie"
            );
            let value = if secret {
                "<redacted>".to_string()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            format!("    {name}: {value}")
        })
        .collect()
}

/// The URL without user-info (`https://user:pass@host` never appears).
fn shown_uri(uri: &http::Uri) -> String {
    let mut text = uri.to_string();
    if let Some(authority) = uri.authority()
        && let Some((_, host)) = authority.as_str().rsplit_once('@')
    {
        text = text.replacen(authority.as_str(), host, 1);
    }
    text
}

impl<S, B> Service<Request<Body>> for Logged<S>
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let level = self.level;
        if level < REQUESTS {
            let future = self.inner.call(request);
            return Box::pin(async move { future.await.map_err(Into::into) });
        }
        let log = self.log.clone();
        let uri = match request.uri().authority() {
            Some(_) => shown_uri(request.uri()),
            None => format!("{}{}", self.server, request.uri()),
        };
        let line = format!("{} {uri}", request.method());
        if level >= REQUEST_HEADERS {
            log(&format!("request: {line}"));
            for header in headers(request.headers()) {
                log(&header);
            }
        }
        let start = Instant::now();
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await.map_err(Into::into);
            let millis = start.elapsed().as_millis();
            match &result {
                Ok(response) => {
                    let status = response.status();
                    log(&format!(
                        "{line} {} {} in {millis} ms",
                        status.as_u16(),
                        status.canonical_reason().unwrap_or_default()
                    ));
                    if level >= RESPONSE_HEADERS {
                        for header in headers(response.headers()) {
                            log(&header);
                        }
                    }
                }
                Err(err) => log(&format!(
                    "{line} failed after {millis} ms: {}",
                    crate::cluster::short_cause(err.as_ref())
                )),
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted() {
        let mut map = HeaderMap::new();
        map.insert("authorization", "Bearer s3cr3t".parse().expect("value"));
        map.insert("accept", "application/json".parse().expect("value"));
        let lines = headers(&map).join("\n");
        assert!(!lines.contains("s3cr3t"), "{lines}");
        assert!(lines.contains("authorization: <redacted>"), "{lines}");
        assert!(lines.contains("accept: application/json"), "{lines}");
        let uri: http::Uri = "https://user:pw@example.com:6443/api?x=1"
            .parse()
            .expect("uri");
        assert_eq!(shown_uri(&uri), "https://example.com:6443/api?x=1");
    }
}
