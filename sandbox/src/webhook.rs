//! The ModuleConfig validating admission webhook (docs/deckhouse-real.md §3.17), served
//! over HTTPS on 127.0.0.1 with the sandbox's server certificate and registered with the
//! API server by a ValidatingWebhookConfiguration (sandbox/scripts/up.sh). It rejects
//! what Deckhouse's `validation` package rejects, with its texts:
//! - deleting a ModuleConfig while a ModulePullOverride of that name exists;
//! - `spec.source: Embedded`;
//! - enabling an `Experimental` module without `allowExperimentalModules` in the
//!   `deckhouse` ModuleConfig;
//! - disabling a module whose `disableOptions.confirmation` is set, without the
//!   `modules.deckhouse.io/allow-disabling=true` annotation;
//! - a `spec.source` that is not one of the module's `availableSources`;
//! - an `updatePolicy` naming no ModuleUpdatePolicy.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State as AxumState;
use axum::response::Json;
use axum::routing::post;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use kube::api::{Api, DynamicObject};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};

use crate::seed::deckhouse_api;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    pub listen: SocketAddr,
    #[arg(long)]
    pub cert: PathBuf,
    #[arg(long)]
    pub key: PathBuf,
    /// The sandbox's state.json (the webhook reads Modules and overrides as admin).
    #[arg(long)]
    pub state: PathBuf,
}

pub const ALLOW_DISABLING: &str = "modules.deckhouse.io/allow-disabling";

struct Apis {
    mpo: Option<Api<DynamicObject>>,
    module: Api<DynamicObject>,
    config: Api<DynamicObject>,
    policy: Api<DynamicObject>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    crate::install_crypto();
    let dir = args.state.parent().context("state path has no directory")?;
    let state = crate::State::load(dir)?;
    let client = crate::client(&state).await?;
    let mut mpo = None;
    for version in ["v1alpha2", "v1alpha1"] {
        if let Ok(list) = client
            .list_api_group_resources(&format!("deckhouse.io/{version}"))
            .await
            && list
                .resources
                .iter()
                .any(|r| r.name == "modulepulloverrides")
        {
            mpo = Some(deckhouse_api(
                &client,
                version,
                "ModulePullOverride",
                "modulepulloverrides",
            ));
            break;
        }
    }
    let apis = Arc::new(Apis {
        mpo,
        module: deckhouse_api(&client, "v1alpha1", "Module", "modules"),
        config: deckhouse_api(&client, "v1alpha1", "ModuleConfig", "moduleconfigs"),
        policy: deckhouse_api(
            &client,
            "v1alpha2",
            "ModuleUpdatePolicy",
            "moduleupdatepolicies",
        ),
    });

    let certs = CertificateDer::pem_file_iter(&args.cert)
        .context("reading the certificate")?
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&args.key).context("reading the key")?;
    let tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let router = axum::Router::new()
        .route("/validate-moduleconfig", post(review))
        .with_state(apis);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("webhook listening on https://{}", args.listen);
    loop {
        let (stream, _) = listener.accept().await?;
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service = TowerToHyperService::new(router);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

async fn review(AxumState(apis): AxumState<Arc<Apis>>, Json(body): Json<Value>) -> Json<Value> {
    let request = &body["request"];
    let uid = request["uid"].clone();
    let verdict = match check(&apis, request).await {
        Ok(None) => json!({"uid": uid, "allowed": true}),
        Ok(Some(reason)) => {
            json!({"uid": uid, "allowed": false, "status": {"code": 403, "message": reason}})
        }
        Err(error) => {
            eprintln!("webhook: {error:#}");
            json!({"uid": uid, "allowed": true})
        }
    };
    Json(json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": verdict,
    }))
}

fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `Ok(Some(reason))` to reject.
async fn check(apis: &Apis, request: &Value) -> anyhow::Result<Option<String>> {
    let name = text(request, "/name").to_string();
    let operation = text(request, "/operation");
    if operation == "DELETE" {
        if let Some(mpo) = &apis.mpo
            && mpo.get_opt(&name).await?.is_some()
        {
            return Ok(Some(
                "delete the ModulePullOverride before deleting the module config".into(),
            ));
        }
        return Ok(None);
    }
    let config = &request["object"];
    let source = text(config, "/spec/source");
    if source == "Embedded" {
        return Ok(Some("'Embedded' is a forbidden source".into()));
    }
    let module = apis.module.get_opt(&name).await?;
    let enabled = config.pointer("/spec/enabled").and_then(Value::as_bool);
    let was_enabled = request
        .pointer("/oldObject/spec/enabled")
        .and_then(Value::as_bool);
    if let Some(module) = &module {
        let properties = &module.data["properties"];
        if enabled == Some(true)
            && was_enabled != Some(true)
            && text(properties, "/stage") == "Experimental"
            && !experimental_allowed(apis).await?
        {
            return Ok(Some(format!(
                "the '{name}' module is experimental, set param in 'deckhouse' ModuleConfig - spec.settings.allowExperimentalModules: true to allow it"
            )));
        }
        let allow_disabling = text(
            config,
            "/metadata/annotations/modules.deckhouse.io~1allow-disabling",
        );
        if enabled == Some(false)
            && properties
                .pointer("/disableOptions/confirmation")
                .and_then(Value::as_bool)
                == Some(true)
            && allow_disabling != "true"
        {
            let mut reason = text(properties, "/disableOptions/message")
                .trim()
                .to_string();
            if reason.is_empty() {
                reason = "Disabling this module needs a confirmation".into();
            }
            if !reason.ends_with('.') {
                reason.push('.');
            }
            return Ok(Some(format!(
                "{reason} Please annotate ModuleConfig with `{ALLOW_DISABLING}=true` if you're sure that you want to disable the module."
            )));
        }
        if !source.is_empty() {
            let available: Vec<&str> = properties
                .get("availableSources")
                .and_then(Value::as_array)
                .map(|list| list.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if !available.contains(&source) {
                return Ok(Some(format!(
                    "the '{source}' module source is an unavailable source for the '{name}' module, available sources: [{}]",
                    available.join(" ")
                )));
            }
        }
    }
    let policy = text(config, "/spec/updatePolicy");
    if !policy.is_empty() && apis.policy.get_opt(policy).await?.is_none() {
        return Ok(Some(format!("the '{policy}' module policy does not exist")));
    }
    Ok(None)
}

async fn experimental_allowed(apis: &Apis) -> anyhow::Result<bool> {
    Ok(apis
        .config
        .get_opt("deckhouse")
        .await?
        .and_then(|config| {
            config
                .data
                .pointer("/spec/settings/allowExperimentalModules")
                .and_then(Value::as_bool)
        })
        .unwrap_or(false))
}
