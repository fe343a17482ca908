//! A fake Kubernetes API: kube's `Client` over a scripted tower service, for tests that
//! need an API server's answers but not a cluster. Each request is answered by the first
//! unused step whose matcher accepts it; a request no step takes fails the test.

use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use kube::client::Body;

/// One scripted answer.
pub struct Step {
    /// Accepts a request by its method and path with query (`GET /apis/...?watch=true...`).
    pub accepts: Box<dyn Fn(&str) -> bool + Send>,
    pub answer: Answer,
}

pub enum Answer {
    /// A status code and a body (JSON, or watch events one a line).
    Body(StatusCode, String),
    /// No answer at all: a watch that stays open with nothing to say.
    Never,
}

#[derive(Clone, Default)]
pub struct FakeApi {
    steps: Arc<Mutex<Vec<Option<Step>>>>,
    /// Every request seen, as `METHOD path?query`.
    pub seen: Arc<Mutex<Vec<String>>>,
}

impl FakeApi {
    pub fn new(steps: Vec<Step>) -> Self {
        FakeApi {
            steps: Arc::new(Mutex::new(steps.into_iter().map(Some).collect())),
            seen: Default::default(),
        }
    }

    pub fn client(&self) -> kube::Client {
        let api = self.clone();
        let service = tower::service_fn(move |request: Request<Body>| {
            let api = api.clone();
            async move {
                let line = format!(
                    "{} {}",
                    request.method(),
                    request
                        .uri()
                        .path_and_query()
                        .map(|p| p.as_str())
                        .unwrap_or_default()
                );
                api.seen.lock().expect("seen").push(line.clone());
                let answer = {
                    let mut steps = api.steps.lock().expect("steps");
                    steps
                        .iter_mut()
                        .find(|step| step.as_ref().is_some_and(|s| (s.accepts)(&line)))
                        .and_then(Option::take)
                        .map(|step| step.answer)
                };
                match answer {
                    Some(Answer::Body(status, body)) => Ok::<_, std::convert::Infallible>(
                        Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Body::from(body.into_bytes()))
                            .expect("response"),
                    ),
                    Some(Answer::Never) => std::future::pending().await,
                    None => Ok(Response::builder()
                        .status(StatusCode::INTERNAL_SERVER_ERROR)
                        .body(Body::from(
                            format!("unscripted request: {line}").into_bytes(),
                        ))
                        .expect("response")),
                }
            }
        });
        kube::Client::new(service, "default")
    }
}

/// A step for a request whose line contains every one of `parts`.
pub fn when(parts: &[&str], answer: Answer) -> Step {
    let parts: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
    Step {
        accepts: Box::new(move |line| parts.iter().all(|p| line.contains(p.as_str()))),
        answer,
    }
}

/// A list answer with `items` at `resource_version`.
pub fn list(resource_version: &str, items: &[serde_json::Value]) -> Answer {
    Answer::Body(
        StatusCode::OK,
        serde_json::json!({
            "apiVersion": "deckhouse.io/v1alpha2", "kind": "ModulePullOverrideList",
            "metadata": {"resourceVersion": resource_version},
            "items": items,
        })
        .to_string(),
    )
}

/// A watch answer: the events, one JSON object a line, then the end of the stream.
pub fn events(events: &[serde_json::Value]) -> Answer {
    let mut body = String::new();
    for event in events {
        body.push_str(&event.to_string());
        body.push('\n');
    }
    Answer::Body(StatusCode::OK, body)
}

/// The watch event a server sends when the resourceVersion asked for is no longer kept.
pub fn gone() -> serde_json::Value {
    serde_json::json!({"type": "ERROR", "object": {
        "apiVersion": "v1", "kind": "Status", "status": "Failure",
        "message": "too old resource version", "reason": "Expired", "code": 410,
    }})
}

/// A ModulePullOverride as the API server returns it.
pub fn override_object(name: &str, uid: &str, resource_version: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "deckhouse.io/v1alpha2", "kind": "ModulePullOverride",
        "metadata": {"name": name, "uid": uid, "resourceVersion": resource_version},
        "spec": {"imageTag": "v1", "scanInterval": "15s"},
        "status": {"message": "Ready", "imageDigest": "sha256:aa", "updatedAt": "2026-12-07T10:00:00Z"},
    })
}
