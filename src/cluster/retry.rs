//! Back-pressure from the API server, handled the way kubectl (client-go) does: a tower
//! service around the kube client's HTTP stack that waits and asks again when the
//! server says "not now", all within one overall bound per request.
//!
//! client-go (`k8s.io/client-go@v0.33.13`): `rest/with_retry.go` `checkWait` waits on
//! 429 and 5xx answers that carry `Retry-After`, for every verb, at most 10 times
//! (`rest/request.go`, `maxRetries: 10`); `rest/request.go` `request()` retries a
//! connection reset or probable EOF only for GET (`k8s.io/apimachinery@v0.33.13`
//! `pkg/util/net/http.go` `IsProbableEOF`, `util.go` `IsConnectionReset`). Here:
//! - 429 Too Many Requests, for every method: the server did not process the request
//!   (API Priority and Fairness rejected it, or the resource's storage is
//!   (re)initializing after a CRD change);
//! - 503 Service Unavailable, for every method: the server answered with a status
//!   instead of carrying the request out;
//! - a connection reset or closed before the answer's headers, only for reads (GET,
//!   HEAD: get, list, watch): a write may have been applied before the connection died.
//!
//! The delay is the answer's `Retry-After` (seconds) when it has one, else a capped
//! exponential back-off (429/503 without `Retry-After` are retried too, unlike
//! client-go). Other 5xx answers are not retried: a 500 or 504 may follow a processed
//! write. A connection that cannot be opened at all (refused, TLS cut) is not retried:
//! that is a server which is not there, and waiting would only delay the error
//! (client-go does not retry "connection refused" either).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use tower::{BoxError, Layer, Service, ServiceExt};

/// How long retries may go on when `--request-timeout` is not set. client-go retries up
/// to 10 times; with the usual `Retry-After: 1` that is about this long.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(30);
/// First back-off delay without `Retry-After`; doubles per attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// A server asking for more than this is not waited for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// As client-go (`maxRetries` 10).
const MAX_RETRIES: u32 = 10;

/// Where retry notes go (stderr at `-v`, never stdout).
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// The retry rules and their overall bound.
#[derive(Clone)]
pub struct RetryPolicy {
    /// The overall time a request may spend, retries and waits included.
    pub budget: Duration,
    pub log: Log,
}

impl RetryPolicy {
    pub fn new(budget: Duration, log: Log) -> Self {
        Self { budget, log }
    }
}

/// What came back from one attempt, as far as the decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer with this status and, if any, a parseable `Retry-After` in seconds.
    Answer(StatusCode, Option<u64>),
    /// The connection was reset or closed before the answer arrived.
    ConnectionLost,
    /// Any other failure (connect refused, TLS, timeout, auth plugin...).
    Failed,
}

/// Why and how long to wait before the next attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub delay: Duration,
    pub reason: String,
}

/// Reads (get, list, watch) may be sent twice; writes may not.
pub fn is_idempotent(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// `Retry-After` as client-go reads it: whole seconds (an HTTP date is ignored).
pub fn parse_retry_after(value: Option<&http::HeaderValue>) -> Option<u64> {
    value?.to_str().ok()?.trim().parse::<u64>().ok()
}

/// The back-off before retry number `retry` (0-based) when the server gave no delay.
pub fn backoff(retry: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(retry.min(16)))
        .min(MAX_BACKOFF)
}

/// Whether to retry after `outcome` of retry number `retry` (0 = the first answer), and
/// how long to wait. Pure, so every status/method combination is unit-tested.
pub fn decide(method: &Method, outcome: Outcome, retry: u32) -> Option<Wait> {
    if retry >= MAX_RETRIES {
        return None;
    }
    match outcome {
        Outcome::Answer(status, retry_after)
            if status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE =>
        {
            let reason = format!(
                "{} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or_default()
            );
            Some(match retry_after {
                Some(seconds) if seconds > 0 => Wait {
                    delay: Duration::from_secs(seconds).min(MAX_RETRY_AFTER),
                    reason: format!("{reason}, Retry-After: {seconds}"),
                },
                _ => Wait {
                    delay: backoff(retry),
                    reason,
                },
            })
        }
        Outcome::ConnectionLost if is_idempotent(method) => Some(Wait {
            delay: backoff(retry),
            reason: "connection reset".into(),
        }),
        _ => None,
    }
}

/// Whether a transport error means an established connection was reset or closed
/// before the answer (client-go's `IsProbableEOF`/`IsConnectionReset`), as opposed to a
/// connection that could not be opened at all.
pub fn is_connection_lost(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(err) = current {
        if let Some(client) = err.downcast_ref::<hyper_util::client::legacy::Error>()
            && client.is_connect()
        {
            return false;
        }
        if let Some(hyper) = err.downcast_ref::<hyper::Error>()
            && (hyper.is_incomplete_message() || hyper.is_canceled() || hyper.is_closed())
        {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
            );
        }
        current = err.source();
    }
    false
}

/// A copy of `request` for another attempt; `None` when its body is a stream that can
/// be sent only once (kube's own requests always carry bytes).
fn clone_request(request: &Request<Body>) -> Option<Request<Body>> {
    let body = request.body().try_clone()?;
    let mut copy = Request::new(body);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    Some(copy)
}

/// The layer for [`kube::client::ClientBuilder::with_layer`]: buffers the (not
/// cloneable) inner stack so each attempt can be sent through it.
#[derive(Clone)]
pub struct RetryLayer {
    policy: Arc<RetryPolicy>,
}

impl RetryLayer {
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            policy: Arc::new(policy),
        }
    }
}

impl<S> Layer<S> for RetryLayer
where
    S: Service<Request<Body>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + Sync,
    S::Response: Send + 'static,
{
    type Service = Retry<tower::buffer::Buffer<Request<Body>, S::Future>>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry {
            inner: tower::buffer::Buffer::new(inner, 1024),
            policy: self.policy.clone(),
        }
    }
}

/// The retrying service: each call is one logical request, sent as often as the policy
/// allows within its budget.
#[derive(Clone)]
pub struct Retry<S> {
    inner: S,
    policy: Arc<RetryPolicy>,
}

#[cfg(test)]
impl<S> Retry<S> {
    /// Around a service that is already cheap to clone.
    pub fn new(inner: S, policy: RetryPolicy) -> Self {
        Self {
            inner,
            policy: Arc::new(policy),
        }
    }
}

impl<S, B> Service<Request<Body>> for Retry<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError> + Send,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Each attempt waits for the inner service's readiness itself.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        let policy = self.policy.clone();
        Box::pin(send_with_retries(inner, policy, request))
    }
}

async fn send_with_retries<S, B>(
    mut inner: S,
    policy: Arc<RetryPolicy>,
    request: Request<Body>,
) -> Result<Response<B>, BoxError>
where
    S: Service<Request<Body>, Response = Response<B>> + Send,
    S::Error: Into<BoxError> + Send,
{
    let deadline = tokio::time::Instant::now() + policy.budget;
    let method = request.method().clone();
    let target = request.uri().path().to_string();
    let template = clone_request(&request);
    let mut next = Some(request);
    let mut retry = 0u32;
    loop {
        let Some(attempt) = next
            .take()
            .or_else(|| template.as_ref().and_then(clone_request))
        else {
            return Err("a request body that cannot be sent twice".into());
        };
        let service = match inner.ready().await {
            Ok(service) => service,
            Err(err) => return Err(err.into()),
        };
        let result = service.call(attempt).await.map_err(Into::into);
        let outcome = match &result {
            Ok(response) => Outcome::Answer(
                response.status(),
                parse_retry_after(response.headers().get(http::header::RETRY_AFTER)),
            ),
            Err(err) if is_connection_lost(&**err) => Outcome::ConnectionLost,
            Err(_) => Outcome::Failed,
        };
        let Some(wait) = decide(&method, outcome, retry) else {
            return result;
        };
        if template.is_none() {
            return result;
        }
        let now = tokio::time::Instant::now();
        if now + wait.delay > deadline {
            (policy.log)(&format!(
                "{method} {target}: {} and no time left to retry within {}s",
                wait.reason,
                policy.budget.as_secs()
            ));
            return result;
        }
        retry += 1;
        (policy.log)(&format!(
            "{method} {target}: {}; retry {retry} in {}ms",
            wait.reason,
            wait.delay.as_millis()
        ));
        // The refused answer's body is dropped unread: it is a Status, not data.
        drop(result);
        tokio::time::sleep(wait.delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn answer(code: u16, retry_after: Option<u64>) -> Outcome {
        Outcome::Answer(StatusCode::from_u16(code).unwrap(), retry_after)
    }

    #[test]
    fn statuses_and_methods_that_are_retried() {
        let reads = [Method::GET, Method::HEAD];
        let writes = [Method::POST, Method::PUT, Method::PATCH, Method::DELETE];
        for method in reads.iter().chain(&writes) {
            // The server did not process it: safe for every method.
            assert!(
                decide(method, answer(429, Some(1)), 0).is_some(),
                "{method}"
            );
            assert!(decide(method, answer(429, None), 0).is_some(), "{method}");
            assert!(
                decide(method, answer(503, Some(2)), 0).is_some(),
                "{method}"
            );
            assert!(decide(method, answer(503, None), 0).is_some(), "{method}");
            // Answers that are final, or that may follow a processed request.
            for code in [200, 201, 400, 401, 403, 404, 409, 422, 500, 502, 504] {
                assert!(
                    decide(method, answer(code, Some(1)), 0).is_none(),
                    "{method} {code}"
                );
            }
            assert!(decide(method, Outcome::Failed, 0).is_none(), "{method}");
        }
        for method in &reads {
            assert!(decide(method, Outcome::ConnectionLost, 0).is_some());
        }
        for method in &writes {
            // It may have been applied before the connection died.
            assert!(
                decide(method, Outcome::ConnectionLost, 0).is_none(),
                "{method}"
            );
        }
    }

    #[test]
    fn retry_after_is_the_delay_and_backoff_is_capped() {
        let wait = decide(&Method::GET, answer(429, Some(3)), 0).unwrap();
        assert_eq!(wait.delay, Duration::from_secs(3));
        assert!(wait.reason.contains("429") && wait.reason.contains("Retry-After: 3"));
        // A zero or missing Retry-After falls back to the back-off.
        let wait = decide(&Method::GET, answer(503, Some(0)), 2).unwrap();
        assert_eq!(wait.delay, backoff(2));
        // An absurd Retry-After is capped.
        let wait = decide(&Method::GET, answer(429, Some(86_400)), 0).unwrap();
        assert_eq!(wait.delay, MAX_RETRY_AFTER);
        assert_eq!(backoff(0), Duration::from_millis(200));
        assert_eq!(backoff(1), Duration::from_millis(400));
        assert_eq!(backoff(3), Duration::from_millis(1600));
        assert_eq!(backoff(4), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
        // Retries stop after client-go's maximum.
        assert!(decide(&Method::GET, answer(429, Some(1)), MAX_RETRIES).is_none());
    }

    #[test]
    fn retry_after_parsing() {
        let header = |text: &str| http::HeaderValue::from_str(text).unwrap();
        assert_eq!(parse_retry_after(Some(&header("1"))), Some(1));
        assert_eq!(parse_retry_after(Some(&header(" 12 "))), Some(12));
        assert_eq!(parse_retry_after(Some(&header("-1"))), None);
        assert_eq!(parse_retry_after(Some(&header("1.5"))), None);
        assert_eq!(
            parse_retry_after(Some(&header("Wed, 21 Oct 2015 07:28:00 GMT"))),
            None
        );
        assert_eq!(parse_retry_after(None), None);
    }

    #[test]
    fn connection_errors_are_told_apart() {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        assert!(is_connection_lost(&reset));
        let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "eof");
        assert!(is_connection_lost(&eof));
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(!is_connection_lost(&refused));
        // Found through a wrapper's source chain too.
        let wrapped = kube::Error::Service(Box::new(reset));
        assert!(is_connection_lost(&wrapped));
    }

    /// One scripted step: an answer (status, Retry-After) or a transport error.
    type Step = Result<(u16, Option<&'static str>), std::io::ErrorKind>;

    /// A fake API server: answers from `script` in order, then 200; counts calls.
    #[derive(Clone)]
    struct Scripted {
        script: Arc<Mutex<Vec<Step>>>,
        calls: Arc<AtomicU32>,
    }

    impl Scripted {
        fn new(script: Vec<Step>) -> Self {
            Self {
                script: Arc::new(Mutex::new(script)),
                calls: Arc::new(AtomicU32::new(0)),
            }
        }
    }

    impl Service<Request<Body>> for Scripted {
        type Response = Response<String>;
        type Error = BoxError;
        type Future = Pin<Box<dyn Future<Output = Result<Response<String>, BoxError>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _request: Request<Body>) -> Self::Future {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let next = {
                let mut script = self.script.lock().unwrap();
                if script.is_empty() {
                    Ok((200, None))
                } else {
                    script.remove(0)
                }
            };
            Box::pin(async move {
                match next {
                    Ok((code, retry_after)) => {
                        let mut response = Response::builder().status(code);
                        if let Some(value) = retry_after {
                            response = response.header("Retry-After", value);
                        }
                        Ok(response.body(format!("answer {code}")).unwrap())
                    }
                    Err(kind) => Err(Box::new(std::io::Error::new(kind, "scripted")) as BoxError),
                }
            })
        }
    }

    fn recorder() -> (Log, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        (
            Arc::new(move |line: &str| sink.lock().unwrap().push(line.to_string())),
            lines,
        )
    }

    fn request(method: Method) -> Request<Body> {
        let mut request = Request::new(Body::from(b"{}".to_vec()));
        *request.method_mut() = method;
        *request.uri_mut() = "/apis/deckhouse.io/v1alpha2/modulepulloverrides"
            .parse()
            .unwrap();
        request
    }

    async fn send(
        server: &Scripted,
        method: Method,
        budget: Duration,
    ) -> (Result<Response<String>, BoxError>, Vec<String>, Duration) {
        let (log, lines) = recorder();
        let mut service = Retry::new(server.clone(), RetryPolicy::new(budget, log));
        let started = std::time::Instant::now();
        let result = service.call(request(method)).await;
        let lines = lines.lock().unwrap().clone();
        (result, lines, started.elapsed())
    }

    #[tokio::test]
    async fn a_429_with_retry_after_is_waited_for_and_logged() {
        let server = Scripted::new(vec![Ok((429, Some("1")))]);
        let (result, lines, elapsed) = send(&server, Method::GET, DEFAULT_BUDGET).await;
        assert_eq!(result.unwrap().status(), 200);
        assert_eq!(server.calls.load(Ordering::SeqCst), 2);
        assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("429") && lines[0].contains("Retry-After: 1"));
        assert!(lines[0].contains("/apis/deckhouse.io/v1alpha2/modulepulloverrides"));
    }

    #[tokio::test]
    async fn writes_are_retried_on_429_and_503_but_not_after_a_reset() {
        let server = Scripted::new(vec![Ok((429, None)), Ok((503, None))]);
        let (result, _, _) = send(&server, Method::PATCH, DEFAULT_BUDGET).await;
        assert_eq!(result.unwrap().status(), 200);
        assert_eq!(server.calls.load(Ordering::SeqCst), 3);

        let server = Scripted::new(vec![Err(std::io::ErrorKind::ConnectionReset)]);
        let (result, lines, _) = send(&server, Method::POST, DEFAULT_BUDGET).await;
        assert!(result.is_err());
        assert_eq!(server.calls.load(Ordering::SeqCst), 1, "sent once");
        assert!(lines.is_empty());
    }

    #[tokio::test]
    async fn reads_are_retried_after_a_reset_but_not_after_a_refusal() {
        let server = Scripted::new(vec![
            Err(std::io::ErrorKind::ConnectionReset),
            Err(std::io::ErrorKind::UnexpectedEof),
        ]);
        let (result, lines, _) = send(&server, Method::GET, DEFAULT_BUDGET).await;
        assert_eq!(result.unwrap().status(), 200);
        assert_eq!(lines.len(), 2);

        let server = Scripted::new(vec![Err(std::io::ErrorKind::ConnectionRefused)]);
        let (result, _, _) = send(&server, Method::GET, DEFAULT_BUDGET).await;
        assert!(result.is_err());
        assert_eq!(server.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_overall_bound_is_kept() {
        // The server keeps refusing; with 1.5 s the second wait no longer fits.
        let server = Scripted::new(vec![Ok((429, Some("1"))); 20]);
        let (result, lines, elapsed) =
            send(&server, Method::GET, Duration::from_millis(1500)).await;
        assert_eq!(result.unwrap().status(), 429, "the last answer is returned");
        assert_eq!(server.calls.load(Ordering::SeqCst), 2);
        assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
        assert!(lines.last().unwrap().contains("no time left"), "{lines:?}");
    }

    #[tokio::test]
    async fn final_answers_are_returned_at_once() {
        let server = Scripted::new(vec![Ok((403, None))]);
        let (result, lines, _) = send(&server, Method::GET, DEFAULT_BUDGET).await;
        assert_eq!(result.unwrap().status(), 403);
        assert_eq!(server.calls.load(Ordering::SeqCst), 1);
        assert!(lines.is_empty());
    }

    /// A tiny HTTP server on 127.0.0.1: each connection gets the next of `answers`
    /// (`None`: the connection is closed after the request is read, as a restarting
    /// server does); returns its URL and the number of requests it saw.
    fn tiny_server(answers: Vec<Option<&'static str>>) -> (String, Arc<AtomicU32>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(AtomicU32::new(0));
        let counter = seen.clone();
        std::thread::spawn(move || {
            let mut answers = answers.into_iter();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer);
                counter.fetch_add(1, Ordering::SeqCst);
                match answers.next().flatten() {
                    Some(answer) => {
                        let _ = stream.write_all(answer.as_bytes());
                    }
                    None => drop(stream),
                }
            }
        });
        (url, seen)
    }

    const OK: &str = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: 21\r\n\r\n{\"gitVersion\":\"v1.33\"}";
    const BUSY: &str = "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}";

    fn kube_client(url: &str) -> (kube::Client, Arc<Mutex<Vec<String>>>) {
        let mut config = kube::Config::new(url.parse().unwrap());
        // As Cluster::connect: kube's own retry would hide the answers from this one.
        config.default_retry = false;
        let (log, lines) = recorder();
        let client = kube::client::ClientBuilder::try_from(config)
            .unwrap()
            .with_layer(&RetryLayer::new(RetryPolicy::new(DEFAULT_BUDGET, log)))
            .build();
        (client, lines)
    }

    fn get_version() -> Request<Vec<u8>> {
        Request::get("/version").body(Vec::new()).unwrap()
    }

    #[tokio::test]
    async fn the_kube_client_stack_retries_a_real_429() {
        let (url, seen) = tiny_server(vec![Some(BUSY), Some(OK)]);
        let (client, lines) = kube_client(&url);
        let text = client.request_text(get_version()).await.unwrap();
        assert!(text.contains("v1.33"));
        assert_eq!(seen.load(Ordering::SeqCst), 2);
        let lines = lines.lock().unwrap().clone();
        assert!(
            lines.iter().any(|l| l.contains("GET /version: 429")),
            "{lines:?}"
        );
    }

    #[tokio::test]
    async fn the_kube_client_stack_retries_a_read_on_a_dropped_connection_only() {
        let (url, seen) = tiny_server(vec![None, Some(OK)]);
        let (client, lines) = kube_client(&url);
        client.request_text(get_version()).await.unwrap();
        assert_eq!(seen.load(Ordering::SeqCst), 2);
        assert!(lines.lock().unwrap()[0].contains("connection reset"));

        let (url, seen) = tiny_server(vec![None, Some(OK)]);
        let (client, _) = kube_client(&url);
        let create = Request::post("/api/v1/namespaces")
            .body(b"{}".to_vec())
            .unwrap();
        assert!(client.request_text(create).await.is_err());
        assert_eq!(
            seen.load(Ordering::SeqCst),
            1,
            "a write is never sent twice"
        );
    }
}
