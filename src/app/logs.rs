//! The deckhouse controller's log, filtered to one module: the Pods labelled
//! `app=deckhouse` in `d8-system`, read through the API's `pods/log` (the docs' advice
//! is `kubectl -n d8-system logs -l app=deckhouse`). Deckhouse logs JSON lines with
//! `level`, `time`, `msg`, `module`, `hook`, `binding`, `queue` (deckhouse-real §4);
//! hook lines may carry only the hook's name, which starts with the module's. Lines
//! that are not JSON are kept: they cannot be attributed, and dropping them would hide
//! what Deckhouse printed outside its logger.

use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use serde::Serialize;
use serde_json::Value;

use crate::cluster::Cluster;
use crate::error::{Error, Result};

pub const NAMESPACE: &str = "d8-system";
pub const SELECTOR: &str = "app=deckhouse";
pub const CONTAINER: &str = "deckhouse";
/// For messages and the `kubectl auth can-i` hint.
pub const LOG_RESOURCE: &str = "pods --subresource=log -n d8-system";

/// Severity, most severe first; `--level info` shows info, warn and error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

impl Level {
    fn parse(text: &str) -> Option<Level> {
        match text.to_ascii_lowercase().as_str() {
            "error" | "fatal" | "panic" | "critical" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" | "trace" => Some(Level::Debug),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

/// One log line as the plugin prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// The line's own `time`, else the time the kubelet recorded.
    pub time: String,
    /// `None` for a line that is not JSON.
    pub level: Option<Level>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// `msg`, with `error` appended when the line has one; the whole line when not JSON.
    pub message: String,
    /// False for a line that is not JSON.
    pub json: bool,
    pub pod: String,
}

/// Parses one line of `pods/log?timestamps=true` (`<RFC 3339 time> <text>`).
pub fn parse_line(line: &str, pod: &str) -> Entry {
    let (stamp, text) = match line.split_once(' ') {
        Some((stamp, text)) if stamp.parse::<jiff::Timestamp>().is_ok() => (stamp, text),
        _ => ("", line),
    };
    let field = |object: &Value, key: &str| {
        object
            .get(key)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    match serde_json::from_str::<Value>(text) {
        Ok(object) if object.is_object() => {
            let mut message = field(&object, "msg").unwrap_or_default();
            if let Some(error) = field(&object, "error").or_else(|| field(&object, "err")) {
                message = format!("{message}: {error}");
            }
            Entry {
                time: field(&object, "time").unwrap_or_else(|| stamp.to_string()),
                level: field(&object, "level").and_then(|l| Level::parse(&l)),
                module: field(&object, "module"),
                hook: field(&object, "hook"),
                binding: field(&object, "binding"),
                queue: field(&object, "queue"),
                message,
                json: true,
                pod: pod.to_string(),
            }
        }
        _ => Entry {
            time: stamp.to_string(),
            level: None,
            module: None,
            hook: None,
            binding: None,
            queue: None,
            message: text.to_string(),
            json: false,
            pod: pod.to_string(),
        },
    }
}

/// What `logs` shows.
#[derive(Debug, Clone)]
pub struct Filter {
    pub module: String,
    pub level: Level,
    pub since: Option<jiff::Timestamp>,
}

impl Filter {
    /// The module's lines (its `module` field, or a hook of it: `<module>/hooks/...`)
    /// at `level` or more severe, and every line that is not JSON.
    pub fn keeps(&self, entry: &Entry) -> bool {
        if let Some(since) = self.since
            && let Ok(at) = entry.time.parse::<jiff::Timestamp>()
            && at < since
        {
            return false;
        }
        if !entry.json {
            return true;
        }
        let prefix = format!("{}/", self.module);
        let ours = entry.module.as_deref() == Some(self.module.as_str())
            || entry
                .hook
                .as_deref()
                .is_some_and(|h| h.starts_with(&prefix));
        ours && entry.level.unwrap_or(Level::Info) <= self.level
    }
}

/// The newest running deckhouse Pod (Deckhouse's leader writes module runs).
pub async fn current_pod(cluster: &Cluster) -> Result<Option<String>> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let list = pods
        .list(&ListParams::default().labels(SELECTOR))
        .await
        .map_err(|err| cluster.api_error(err, "list", "pods -n d8-system"))?;
    let mut running: Vec<&Pod> = list
        .items
        .iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .filter(|pod| pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .collect();
    running.sort_by_key(|pod| pod.metadata.creation_timestamp.clone().map(|t| t.0));
    Ok(running.last().and_then(|pod| pod.metadata.name.clone()))
}

fn params(follow: bool) -> LogParams {
    LogParams {
        container: Some(CONTAINER.into()),
        follow,
        timestamps: true,
        ..LogParams::default()
    }
}

/// The whole log of `pod` so far, as lines.
pub async fn read(cluster: &Cluster, pod: &str) -> Result<Vec<String>> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let text = pods
        .logs(pod, &params(false))
        .await
        .map_err(|err| cluster.api_error(err, "get", LOG_RESOURCE))?;
    Ok(text.lines().map(str::to_string).collect())
}

/// Streams `pod`'s log from its start, skipping the first `skip` lines (already
/// shown), calling `each` per line; returns when the container's log ends (the Pod
/// was replaced).
pub async fn follow(
    cluster: &Cluster,
    pod: &str,
    skip: usize,
    mut each: impl FnMut(&str),
) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let stream = pods
        .log_stream(pod, &params(true))
        .await
        .map_err(|err| cluster.api_error(err, "get", LOG_RESOURCE))?;
    let mut lines = stream.lines().skip(skip);
    while let Some(line) = lines.next().await {
        match line {
            Ok(line) => each(&line),
            Err(err) => {
                return Err(Error::runtime(format!(
                    "the log stream of pod {NAMESPACE}/{pod} broke: {err}"
                )));
            }
        }
    }
    Ok(())
}

/// Waits for a deckhouse Pod other than `previous` to run (Deckhouse restarts after a
/// deploy with a new Pod).
pub async fn next_pod(cluster: &Cluster, previous: &str) -> Result<String> {
    loop {
        if let Some(pod) = current_pod(cluster).await?
            && pod != previous
        {
            return Ok(pod);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The last `count` error lines of the module, for a failed wait. Empty when the log
/// cannot be read (no RBAC for pods/log, no deckhouse Pod): the verdict stands alone.
/// When Deckhouse restarted since the failure, the new Pod logs the retried failure
/// within seconds: a few looks, bounded.
pub async fn last_errors(cluster: &Cluster, module: &str, count: usize) -> Vec<Entry> {
    for _ in 0..10 {
        let errors = last_errors_once(cluster, module, count).await;
        if !errors.is_empty() {
            return errors;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Vec::new()
}

async fn last_errors_once(cluster: &Cluster, module: &str, count: usize) -> Vec<Entry> {
    let Ok(Some(pod)) = current_pod(cluster).await else {
        return Vec::new();
    };
    let Ok(lines) = read(cluster, &pod).await else {
        return Vec::new();
    };
    let filter = Filter {
        module: module.to_string(),
        level: Level::Error,
        since: None,
    };
    let mut errors: Vec<Entry> = lines
        .iter()
        .map(|line| parse_line(line, &pod))
        .filter(|entry| entry.json && filter.keeps(entry))
        .collect();
    let start = errors.len().saturating_sub(count);
    errors.drain(..start);
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_plain_lines_and_hooks() {
        let entry = parse_line(
            r#"2026-01-01T00:00:01.5Z {"level":"error","msg":"Hook failed","hook":"echo/hooks/a.sh","binding":"OnStartup","queue":"main","time":"2026-01-01T00:00:01Z","error":"boom"}"#,
            "deckhouse-abc",
        );
        assert_eq!(entry.level, Some(Level::Error));
        assert_eq!(entry.hook.as_deref(), Some("echo/hooks/a.sh"));
        assert_eq!(entry.message, "Hook failed: boom");
        assert_eq!(entry.time, "2026-01-01T00:00:01Z");
        let plain = parse_line(
            "2026-01-01T00:00:01Z I1125 leaderelection.go:257] acquired",
            "p",
        );
        assert!(!plain.json);
        assert_eq!(plain.message, "I1125 leaderelection.go:257] acquired");

        let filter = Filter {
            module: "echo".into(),
            level: Level::Info,
            since: None,
        };
        assert!(filter.keeps(&entry), "a hook of echo");
        assert!(filter.keeps(&plain), "lines that are not JSON are kept");
        let other = parse_line(r#"{"level":"info","msg":"x","module":"echo-two"}"#, "p");
        assert!(!filter.keeps(&other), "another module with the same prefix");
        let debug = parse_line(r#"{"level":"debug","msg":"x","module":"echo"}"#, "p");
        assert!(!filter.keeps(&debug));
        let errors = Filter {
            level: Level::Error,
            ..filter
        };
        assert!(!errors.keeps(&parse_line(
            r#"{"level":"info","msg":"x","module":"echo"}"#,
            "p"
        )));
    }
}
