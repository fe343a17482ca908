//! A kubelet-compatible container log endpoint. No kubelet runs in the sandbox, but the
//! deckhouse Pod's log must reach users through the real kube-apiserver: the apiserver
//! proxies `pods/log` to `https://<node InternalIP>:<kubeletEndpoint.Port>/containerLogs/
//! <namespace>/<pod>/<container>` with its kubelet client certificate
//! (`--kubelet-client-certificate`), and the query `follow`, `sinceSeconds`, `sinceTime`,
//! `tailLines`, `timestamps`, `limitBytes` (kubernetes `pkg/kubelet/server/server.go`,
//! `getContainerLogs`). This server answers that request from the files the simulator
//! writes (`podlog.rs`): one line per entry, `<RFC 3339 time> <text>`, as the CRI log
//! format keeps them, and a `.terminated` marker when the container is gone.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(clap::Args)]
pub struct Args {
    /// 127.0.0.1:PORT
    #[arg(long)]
    pub listen: String,
    /// Serving certificate and key (SAN 127.0.0.1).
    #[arg(long)]
    pub cert: PathBuf,
    #[arg(long)]
    pub key: PathBuf,
    /// CA that signed the apiserver's kubelet client certificate; clients without a
    /// certificate from it are refused, as the kubelet's `--client-ca-file` does.
    #[arg(long)]
    pub client_ca: PathBuf,
    /// Directory of container logs: `<namespace>/<pod>/<container>.log`.
    #[arg(long)]
    pub dir: PathBuf,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    crate::install_crypto();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&args.cert)
        .context("serving certificate")?
        .collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&args.key).context("serving key")?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(&args.client_ca).context("client CA")? {
        roots.add(ca?)?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build()?;
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listen on {}", args.listen))?;
    println!("kubelet log endpoint on {}", args.listen);
    let dir = Arc::new(args.dir);
    loop {
        let (tcp, _) = listener.accept().await?;
        let (acceptor, dir) = (acceptor.clone(), dir.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |request| {
                let dir = dir.clone();
                async move { Ok::<_, Infallible>(handle(&dir, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

/// The query of a containerLogs request (`k8s.io/api/core/v1.PodLogOptions`).
#[derive(Debug, Default, PartialEq)]
pub struct LogQuery {
    pub follow: bool,
    pub timestamps: bool,
    pub tail_lines: Option<usize>,
    pub since: Option<jiff::Timestamp>,
    pub limit_bytes: Option<usize>,
}

impl LogQuery {
    pub fn parse(query: &str, now: jiff::Timestamp) -> Result<Self, String> {
        let mut parsed = LogQuery::default();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = value.replace("%3A", ":").replace("%2B", "+");
            let flag = || value.is_empty() || value == "true" || value == "1";
            match key {
                "follow" => parsed.follow = flag(),
                "timestamps" => parsed.timestamps = flag(),
                "tailLines" => {
                    parsed.tail_lines = Some(
                        value
                            .parse()
                            .map_err(|_| format!("bad tailLines {value:?}"))?,
                    )
                }
                "limitBytes" => {
                    parsed.limit_bytes = Some(
                        value
                            .parse()
                            .map_err(|_| format!("bad limitBytes {value:?}"))?,
                    )
                }
                "sinceSeconds" => {
                    let seconds: i64 = value
                        .parse()
                        .map_err(|_| format!("bad sinceSeconds {value:?}"))?;
                    parsed.since = Some(now - jiff::SignedDuration::from_secs(seconds));
                }
                "sinceTime" => {
                    parsed.since = Some(
                        value
                            .parse()
                            .map_err(|_| format!("bad sinceTime {value:?}"))?,
                    )
                }
                _ => {}
            }
        }
        Ok(parsed)
    }

    /// Whether a stored line (`<time> <text>`) is shown, and how.
    fn render(&self, stored: &str) -> Option<String> {
        let (time, text) = stored.split_once(' ').unwrap_or(("", stored));
        if let Some(since) = self.since {
            let at: jiff::Timestamp = time.parse().ok()?;
            if at < since {
                return None;
            }
        }
        Some(if self.timestamps {
            format!("{time} {text}\n")
        } else {
            format!("{text}\n")
        })
    }
}

async fn handle(dir: &Path, request: Request<hyper::body::Incoming>) -> Response<Body> {
    let path = request.uri().path().to_string();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ["containerLogs", namespace, pod, container] = parts.as_slice() else {
        return reply(StatusCode::NOT_FOUND, format!("404 page not found: {path}"));
    };
    let query = match LogQuery::parse(
        request.uri().query().unwrap_or_default(),
        jiff::Timestamp::now(),
    ) {
        Ok(query) => query,
        Err(why) => return reply(StatusCode::BAD_REQUEST, why),
    };
    let safe = |part: &str| !part.is_empty() && !part.contains("..") && !part.contains('/');
    if ![namespace, pod, container].iter().all(|part| safe(part)) {
        return reply(StatusCode::BAD_REQUEST, "bad path".into());
    }
    let file = dir
        .join(namespace)
        .join(pod)
        .join(format!("{container}.log"));
    let Ok(text) = tokio::fs::read_to_string(&file).await else {
        return reply(
            StatusCode::NOT_FOUND,
            format!("container \"{container}\" in pod \"{pod}\" is not available"),
        );
    };
    let complete: Vec<&str> = match text.rfind('\n') {
        Some(end) => text[..end].lines().collect(),
        None => Vec::new(),
    };
    let start = query
        .tail_lines
        .map_or(0, |tail| complete.len().saturating_sub(tail));
    let mut first = String::new();
    for line in &complete[start..] {
        if let Some(shown) = query.render(line) {
            first.push_str(&shown);
        }
    }
    let offset = text.rfind('\n').map_or(0, |end| end + 1);
    if let Some(limit) = query.limit_bytes {
        first.truncate(limit.min(first.len()));
    }
    if !query.follow {
        return Response::new(Body::from(first));
    }
    let terminated = file.with_extension("terminated");
    let stream = futures::stream::unfold(
        (Some(first), offset, file, terminated, query),
        |(pending, mut offset, file, terminated, query)| async move {
            if let Some(chunk) = pending {
                return Some((
                    Ok::<_, Infallible>(chunk),
                    (None, offset, file, terminated, query),
                ));
            }
            loop {
                let done = tokio::fs::try_exists(&terminated).await.unwrap_or(true);
                let text = tokio::fs::read_to_string(&file).await.unwrap_or_default();
                if let Some(end) = text.rfind('\n').filter(|end| *end + 1 > offset) {
                    let chunk: String = text[offset..end + 1]
                        .lines()
                        .filter_map(|line| query.render(line))
                        .collect();
                    offset = end + 1;
                    if !chunk.is_empty() {
                        return Some((Ok(chunk), (None, offset, file, terminated, query)));
                    }
                }
                if done {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        },
    );
    Response::new(Body::from_stream(stream))
}

fn reply(status: StatusCode, text: String) -> Response<Body> {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        let now: jiff::Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let query = LogQuery::parse("follow=true&tailLines=5&sinceSeconds=60", now).unwrap();
        assert!(query.follow);
        assert_eq!(query.tail_lines, Some(5));
        assert_eq!(query.since, Some("2026-01-01T00:09:00Z".parse().unwrap()));
        assert_eq!(query.render("2026-01-01T00:08:00Z old"), None);
        assert_eq!(
            query.render("2026-01-01T00:09:30Z new").as_deref(),
            Some("new\n")
        );
        let stamped = LogQuery::parse("timestamps=true", now).unwrap();
        assert_eq!(
            stamped.render("2026-01-01T00:09:30Z new").as_deref(),
            Some("2026-01-01T00:09:30Z new\n")
        );
        assert!(LogQuery::parse("tailLines=x", now).is_err());
    }
}
