//! Connecting to the cluster the way kubectl does, and turning API failures into
//! errors that say what failed, where, and what to do next.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Api, Client, Config};

use crate::deckhouse::resources::{
    GROUP, Module, ModuleConfig, ModulePullOverride, ModuleRelease, ModuleSource, MpoVersion,
};
use crate::error::{Error, Result};

pub mod decode;
pub mod log;
mod options;
pub mod retry;

pub use options::ConnectOptions;

/// A connected cluster: the client plus what error messages need to say where.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    /// The kubeconfig context in use (or `in-cluster`).
    pub context: String,
    pub server: String,
    pub request_timeout: Option<Duration>,
    /// Deployment `d8-system/deckhouse`, read once per run however many parts ask
    /// (`None` inside: absent or not readable).
    deckhouse: tokio::sync::OnceCell<Option<Deployment>>,
}

impl Cluster {
    /// Loads kubeconfig like kubectl: `--kubeconfig`, else `$KUBECONFIG` (several files,
    /// merged), else `~/.kube/config`, else the in-cluster service account.
    pub async fn connect(global: &ConnectOptions) -> Result<Self> {
        let request_timeout = (!global.request_timeout.is_zero()).then_some(global.request_timeout);
        let options = KubeConfigOptions {
            context: global.context.clone(),
            cluster: global.cluster.clone(),
            user: global.user.clone(),
        };
        let mut exec_layer = None;
        let loaded = match load_kubeconfig(global)? {
            // --server without any kubeconfig: the flags describe the whole connection.
            None if global.server.is_some() => Some(Kubeconfig {
                current_context: Some("flags".into()),
                ..Kubeconfig::default()
            }),
            loaded => loaded,
        };
        let (mut config, context) = match loaded {
            Some(mut kubeconfig) => {
                check_names(&kubeconfig, &options)?;
                apply_flags(&mut kubeconfig, &options, global)?;
                let context = options
                    .context
                    .clone()
                    .or_else(|| kubeconfig.current_context.clone())
                    .unwrap_or_default();
                // OIDC refresh with write-back and exec plugin checks (src/auth).
                let paths = crate::auth::kubeconfig_paths(global.kubeconfig.as_deref());
                exec_layer =
                    crate::auth::prepare(&mut kubeconfig, &paths, &options, request_timeout)
                        .await?;
                let config = Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|err| kubeconfig_error(err, &context))?;
                (config, context)
            }
            None => {
                let config = Config::incluster().map_err(|_| {
                    Error::runtime("no kubeconfig found and not running inside a cluster")
                        .with_hint("pass --kubeconfig, set KUBECONFIG, or create ~/.kube/config")
                })?;
                (config, "in-cluster".to_string())
            }
        };
        if let Some(timeout) = request_timeout {
            config.read_timeout = Some(timeout);
            config.write_timeout = Some(timeout);
            config.connect_timeout = Some(timeout.min(Duration::from_secs(10)));
        }
        config.default_retry = false;
        let server = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string();
        let printer = crate::output::Printer::new(global.no_color, global.verbose);
        let policy = retry::RetryPolicy::new(
            request_timeout.unwrap_or(retry::DEFAULT_BUDGET),
            std::sync::Arc::new(move |line: &str| printer.debug(1, line)),
        );
        // Retries inside, credentials outside: a retried request is sent with the
        // token the credential layer holds at that moment.
        let log_printer = crate::output::Printer::new(global.no_color, global.verbose);
        let request_log = log::LogLayer::new(
            global.verbose,
            &server,
            std::sync::Arc::new(move |line: &str| log_printer.debug(log::REQUESTS, line)),
        );
        let client = ClientBuilder::try_from(config)
            .map(|builder| {
                let builder = builder
                    .with_layer(&retry::RetryLayer::new(policy))
                    .with_layer(&request_log);
                match &exec_layer {
                    Some(layer) => builder.with_layer(layer).build(),
                    None => builder.build(),
                }
            })
            .map_err(|err| {
                Error::runtime(format!(
                    "cannot set up a client for {server} (context {context:?}): {}",
                    short_cause(&err)
                ))
                .with_hint("check the certificate and user entries of the kubeconfig")
            })?;
        Ok(Self {
            client,
            context,
            server,
            request_timeout,
            deckhouse: Default::default(),
        })
    }

    pub fn mpo_api(&self, version: MpoVersion) -> Api<ModulePullOverride> {
        Api::all_with(self.client.clone(), &version)
    }

    /// The `deckhouse` Deployment in `d8-system` (Deckhouse's version and edition), read
    /// at most once per run; concurrent callers share the one request.
    pub async fn deckhouse_deployment(&self) -> Option<Deployment> {
        self.deckhouse
            .get_or_init(|| async {
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), "d8-system");
                api.get_opt("deckhouse").await.ok().flatten()
            })
            .await
            .clone()
    }

    pub fn modules(&self) -> Api<Module> {
        Api::all(self.client.clone())
    }

    pub fn module_sources(&self) -> Api<ModuleSource> {
        Api::all(self.client.clone())
    }

    pub fn module_configs(&self) -> Api<ModuleConfig> {
        Api::all(self.client.clone())
    }

    pub fn module_releases(&self) -> Api<ModuleRelease> {
        Api::all(self.client.clone())
    }

    /// Which ModulePullOverride version the cluster serves: v1alpha2 when available,
    /// else v1alpha1; an error when the Deckhouse CRDs are not installed.
    pub async fn mpo_version(&self) -> Result<MpoVersion> {
        let (v2, v1) = tokio::join!(
            self.serves_mpo(MpoVersion::V1alpha2),
            self.serves_mpo(MpoVersion::V1alpha1)
        );
        if v2? {
            return Ok(MpoVersion::V1alpha2);
        }
        if v1? {
            return Ok(MpoVersion::V1alpha1);
        }
        Err(Error::runtime(format!(
            "the cluster {} (context {:?}) does not serve modulepulloverrides.{GROUP}",
            self.server, self.context
        ))
        .with_hint("this does not look like a Deckhouse cluster; check --context"))
    }

    async fn serves_mpo(&self, version: MpoVersion) -> Result<bool> {
        match self
            .client
            .list_api_group_resources(&version.api_version())
            .await
        {
            Ok(list) => Ok(list
                .resources
                .iter()
                .any(|r| r.name == "modulepulloverrides")),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            Err(err) => {
                Err(self.api_error(err, "discover", &format!("{GROUP}/{}", version.as_str())))
            }
        }
    }

    /// The API server and context, for messages.
    pub fn place(&self) -> String {
        format!("{} (context {:?})", self.server, self.context)
    }

    /// Maps a failed API call to our error: `verb` and `resource` name what was tried.
    pub fn api_error(&self, err: kube::Error, verb: &str, resource: &str) -> Error {
        let place = self.place();
        match err {
            kube::Error::Api(status) => match status.code {
                401 => Error::runtime(format!("the API server {place} rejected the credentials (401 Unauthorized)"))
                    .with_hint("the token or certificate has expired or is wrong: log in again and retry"),
                // API discovery is a GET on a path, not a resource verb.
                403 if verb == "discover" => Error::runtime(format!(
                    "forbidden: your credentials may not read the API's discovery document /apis/{resource} on {place}: {}",
                    forbidden_reason(&status.message)
                ))
                .with_hint(format!(
                    "ask a cluster admin for RBAC that allows 'get' on the path /apis/{resource}; check with: kubectl auth can-i get /apis/{resource}"
                )),
                403 => Error::runtime(format!(
                    "forbidden: you may not {verb} {resource} on {place}: {}",
                    forbidden_reason(&status.message)
                ))
                .with_hint(format!(
                    "ask a cluster admin for RBAC that allows '{verb}' on {resource}; check with: kubectl auth can-i {verb} {resource}"
                )),
                404 => Error::runtime(format!("{resource} not found on {place}")),
                // Still refused after the retries of the whole request timeout.
                429 | 503 => Error::runtime(format!(
                    "the API server {place} is too busy to {verb} {resource}: {} ({})",
                    status.message, status.code
                ))
                .with_hint("it refused every retry within --request-timeout (30s when unset); try again later or raise --request-timeout; -v shows each retry"),
                409 => Error::runtime(format!("conflict while trying to {verb} {resource}: {}", status.message))
                    .with_hint("the object changed meanwhile; run the command again"),
                422 | 400 => Error::usage(format!("the API server refused to {verb} {resource}: {}", status.message)),
                code => Error::runtime(format!(
                    "the API server {place} failed to {verb} {resource}: {} ({code})",
                    status.message
                )),
            },
            // The server answered, but with data of another shape than expected: never a
            // connectivity problem.
            kube::Error::SerdeError(err) => Error::runtime(format!(
                "cannot read the answer of the API server {place} to {verb} {resource}: {}",
                decode_message(&err)
            ))
            .with_hint(format!(
                "kubectl-mpo needs that field to be of the type named; see the object with: kubectl get {resource} -o yaml"
            )),
            other if crate::auth::describe_auth_error(&other).is_some() => Error::runtime(format!(
                "cannot authenticate to the API server {place}: {}",
                short_cause(&other)
            ))
            .with_hint("check the user's credential plugin or log in again"),
            other if self.request_timeout.is_some()
                && ["deadline has elapsed", "timed out"]
                    .iter()
                    .any(|text| short_cause(&other).contains(text)) => Error::runtime(format!(
                "the API server {place} did not answer within {} (--request-timeout)",
                self.request_timeout.map(|t| format!("{t:?}")).unwrap_or_else(|| "the time limit".into())
            ))
            .with_hint("raise --request-timeout (e.g. 30s), or check that the cluster is not overloaded"),
            other => Error::runtime(format!("cannot reach the API server {place}: {}", short_cause(&other)))
                .with_hint("check that the cluster is running and reachable, and that --context is right")
                .with_source(other),
        }
    }
}

/// The API server's 403 text without its own `… is forbidden: ` lead-in (the error
/// already starts with "forbidden: you may not …"), keeping who was refused what:
/// `modulepulloverrides.deckhouse.io "echo" is forbidden: User "readonly" cannot patch …`
/// becomes `User "readonly" cannot patch …`.
fn forbidden_reason(message: &str) -> &str {
    match message.split_once("forbidden: ") {
        Some((_, reason)) if !reason.trim().is_empty() => reason,
        _ => message,
    }
}

/// A serde error's text without serde_json's "at line 1 column 912" (useless for a
/// one-line JSON answer), and in plain words.
fn decode_message(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let position = |tail: &str| {
        tail.split_once(" column ").is_some_and(|(line, column)| {
            [line, column]
                .iter()
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
    };
    let text = match text.rsplit_once(" at line ") {
        Some((head, tail)) if position(tail) => head.to_string(),
        _ => text,
    };
    decode::plain_problem(&text)
}

fn load_kubeconfig(global: &ConnectOptions) -> Result<Option<Kubeconfig>> {
    if let Some(path) = &global.kubeconfig {
        return Kubeconfig::read_from(path)
            .map(Some)
            .map_err(|err| kubeconfig_error(err, &path.display().to_string()));
    }
    if std::env::var_os("KUBECONFIG").is_some_and(|value| !value.is_empty()) {
        // As kubectl: files of the list that do not exist are skipped; the others are
        // merged in order (the first to set a value wins).
        let paths = crate::auth::kubeconfig_paths(global.kubeconfig.as_deref());
        let mut merged: Option<Kubeconfig> = None;
        for path in paths.iter().filter(|path| path.exists()) {
            let next = Kubeconfig::read_from(path)
                .map_err(|err| kubeconfig_error(err, &path.display().to_string()))?;
            merged = Some(match merged {
                None => next,
                Some(config) => config
                    .merge(next)
                    .map_err(|err| kubeconfig_error(err, &path.display().to_string()))?,
            });
        }
        if merged.is_none() && global.server.is_none() {
            let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            return Err(Error::runtime(format!(
                "none of the kubeconfig files in KUBECONFIG exists: {}",
                list.join(", ")
            ))
            .with_hint("check KUBECONFIG, or pass --kubeconfig PATH"));
        }
        return Ok(merged);
    }
    let Some(home) = std::env::var_os("HOME") else {
        return Ok(None);
    };
    let default = std::path::Path::new(&home).join(".kube/config");
    if !default.exists() {
        return Ok(None);
    }
    Kubeconfig::read_from(&default)
        .map(Some)
        .map_err(|err| kubeconfig_error(err, &default.display().to_string()))
}

/// The parser's message on one line, keeping its "line N column M".
fn parse_problem(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

/// `--context`, `--cluster` and `--user` must name entries of the kubeconfig, as in
/// kubectl (an unknown `--user` must not fall through to an anonymous request).
fn check_names(kubeconfig: &Kubeconfig, options: &KubeConfigOptions) -> Result<()> {
    let check = |kind: &str, plural: &str, wanted: &Option<String>, names: Vec<&String>| {
        let Some(wanted) = wanted else {
            return Ok(());
        };
        if names.contains(&wanted) {
            return Ok(());
        }
        let list = if names.is_empty() {
            format!("the kubeconfig has no {plural}")
        } else {
            let names: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
            format!("{plural} in the kubeconfig: {}", names.join(", "))
        };
        // Exit 1, as kubectl: the name is not in the kubeconfig.
        Err(
            Error::condition(format!("{kind} {wanted:?} not found; {list}")).with_hint(format!(
                "list them with: kubectl config view -o jsonpath='{{.{plural}[*].name}}'"
            )),
        )
    };
    check(
        "context",
        "contexts",
        &options.context,
        kubeconfig.contexts.iter().map(|c| &c.name).collect(),
    )?;
    check(
        "cluster",
        "clusters",
        &options.cluster,
        kubeconfig.clusters.iter().map(|c| &c.name).collect(),
    )?;
    check(
        "user",
        "users",
        &options.user,
        kubeconfig.auth_infos.iter().map(|u| &u.name).collect(),
    )
}

/// kubectl's connection flags (`--server`, `--token`, `--as`, `--as-group`,
/// `--certificate-authority`, `--insecure-skip-tls-verify`) override the cluster and
/// user entries the connection will use, as kubectl's flags override the merged
/// kubeconfig.
fn apply_flags(
    kubeconfig: &mut Kubeconfig,
    options: &KubeConfigOptions,
    global: &ConnectOptions,
) -> Result<()> {
    use kube::config::{AuthInfo, Context, NamedAuthInfo, NamedCluster, NamedContext};
    let any = global.server.is_some()
        || global.token.is_some()
        || global.as_user.is_some()
        || !global.as_group.is_empty()
        || global.certificate_authority.is_some()
        || global.insecure_skip_tls_verify.is_some();
    if !any {
        return Ok(());
    }
    let context_name = options
        .context
        .clone()
        .or_else(|| kubeconfig.current_context.clone())
        .unwrap_or_else(|| "flags".into());
    if !kubeconfig.contexts.iter().any(|c| c.name == context_name) {
        kubeconfig.contexts.push(NamedContext {
            name: context_name.clone(),
            context: Some(Context {
                cluster: "flags".into(),
                user: Some("flags".into()),
                ..Context::default()
            }),
            ..NamedContext::default()
        });
        kubeconfig.current_context = Some(context_name.clone());
    }
    let context = kubeconfig
        .contexts
        .iter_mut()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_mut())
        .ok_or_else(|| Error::runtime(format!("context {context_name:?} has no settings")))?;
    let cluster_name = options
        .cluster
        .clone()
        .unwrap_or_else(|| context.cluster.clone());
    let user_name = match options.user.clone().or_else(|| context.user.clone()) {
        Some(user) => user,
        None => {
            context.user = Some("flags".into());
            "flags".into()
        }
    };
    if !kubeconfig.clusters.iter().any(|c| c.name == cluster_name) {
        kubeconfig.clusters.push(NamedCluster {
            name: cluster_name.clone(),
            cluster: Some(kube::config::Cluster::default()),
            ..NamedCluster::default()
        });
    }
    if !kubeconfig.auth_infos.iter().any(|u| u.name == user_name) {
        kubeconfig.auth_infos.push(NamedAuthInfo {
            name: user_name.clone(),
            auth_info: Some(AuthInfo::default()),
            ..NamedAuthInfo::default()
        });
    }
    let cluster = kubeconfig
        .clusters
        .iter_mut()
        .find(|c| c.name == cluster_name)
        .expect("added above")
        .cluster
        .get_or_insert_with(Default::default);
    if let Some(server) = &global.server {
        cluster.server = Some(server.clone());
    }
    if let Some(path) = &global.certificate_authority {
        if !path.is_file() {
            return Err(Error::usage(format!(
                "--certificate-authority {}: no such file",
                path.display()
            )));
        }
        cluster.certificate_authority = Some(path.display().to_string());
        cluster.certificate_authority_data = None;
    }
    if let Some(insecure) = global.insecure_skip_tls_verify {
        cluster.insecure_skip_tls_verify = Some(insecure);
        if insecure {
            cluster.certificate_authority = None;
            cluster.certificate_authority_data = None;
        }
    }
    let user = kubeconfig
        .auth_infos
        .iter_mut()
        .find(|u| u.name == user_name)
        .expect("added above")
        .auth_info
        .get_or_insert_with(Default::default);
    if let Some(token) = &global.token {
        // The token replaces the user's other credentials (no plugin is run).
        *user = AuthInfo {
            token: Some(token.clone().into()),
            impersonate: user.impersonate.clone(),
            impersonate_groups: user.impersonate_groups.clone(),
            ..AuthInfo::default()
        };
    }
    if let Some(as_user) = &global.as_user {
        user.impersonate = Some(as_user.clone());
    }
    if !global.as_group.is_empty() {
        user.impersonate_groups = Some(global.as_group.clone());
    }
    Ok(())
}

fn kubeconfig_error(err: KubeconfigError, place: &str) -> Error {
    let (message, hint) = match &err {
        KubeconfigError::LoadContext(name) => (
            format!("context {name:?} not found in the kubeconfig"),
            "list contexts with: kubectl config get-contexts",
        ),
        KubeconfigError::LoadClusterOfContext(name) => (
            format!("cluster {name:?} not found in the kubeconfig"),
            "check the context's cluster entry: kubectl config view",
        ),
        KubeconfigError::CurrentContextNotSet => (
            "the kubeconfig has no current-context".to_string(),
            "pass --context or run: kubectl config use-context NAME",
        ),
        KubeconfigError::ReadConfig(io, path) => (
            format!(
                "cannot read kubeconfig {}: {}",
                path.display(),
                if path.is_dir() {
                    "it is a directory".to_string()
                } else {
                    short_cause(io)
                }
            ),
            "check the path given by --kubeconfig or KUBECONFIG",
        ),
        KubeconfigError::Parse(cause) => (
            format!(
                "the kubeconfig {place} is not a valid kubeconfig: {}",
                parse_problem(&cause.to_string())
            ),
            "repair the file or point --kubeconfig at another one",
        ),
        KubeconfigError::KindMismatch | KubeconfigError::ApiVersionMismatch => (
            format!("the kubeconfig {place} is not a kubeconfig (kind: Config, apiVersion: v1)"),
            "repair the file or point --kubeconfig at another one",
        ),
        KubeconfigError::MissingClusterUrl | KubeconfigError::ParseClusterUrl(_) => (
            format!("the kubeconfig {place} has no valid cluster server URL"),
            "set clusters[].cluster.server to https://HOST:PORT",
        ),
        KubeconfigError::LoadCertificateAuthority(_) | KubeconfigError::ParseCertificates(_) => (
            format!("the kubeconfig {place} has an unreadable certificate-authority"),
            "check clusters[].cluster.certificate-authority(-data)",
        ),
        KubeconfigError::LoadClientCertificate(_) | KubeconfigError::LoadClientKey(_) => (
            format!("the kubeconfig {place} has an unreadable client certificate or key"),
            "check users[].user.client-certificate(-data) and client-key(-data)",
        ),
        _ => (
            format!("invalid kubeconfig {place}: {}", short_cause(&err)),
            "check the kubeconfig with: kubectl config view",
        ),
    };
    // A context or cluster name that is not in the kubeconfig is exit 1, as kubectl.
    let kind = match &err {
        KubeconfigError::LoadContext(_) | KubeconfigError::LoadClusterOfContext(_) => {
            crate::error::Kind::Condition
        }
        _ => crate::error::Kind::Runtime,
    };
    Error::new(kind, message).with_hint(hint).with_source(err)
}

pub use crate::auth::short_cause;

#[cfg(test)]
mod decode_errors {
    use super::*;

    #[test]
    fn a_refusal_says_forbidden_once() {
        assert_eq!(
            forbidden_reason(
                r#"modulepulloverrides.deckhouse.io "echo" is forbidden: User "readonly" cannot patch resource "modulepulloverrides" in API group "deckhouse.io" at the cluster scope"#
            ),
            r#"User "readonly" cannot patch resource "modulepulloverrides" in API group "deckhouse.io" at the cluster scope"#
        );
        assert_eq!(
            forbidden_reason(r#"forbidden: User "system:anonymous" cannot get path "/apis""#),
            r#"User "system:anonymous" cannot get path "/apis""#
        );
        assert_eq!(forbidden_reason("denied by policy"), "denied by policy");
        assert_eq!(forbidden_reason("x is forbidden: "), "x is forbidden: ");
    }

    #[test]
    fn a_decode_failure_is_never_a_connectivity_failure() {
        let cluster_error = |err: kube::Error| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let client = runtime.block_on(async {
                let config = Config::new("http://127.0.0.1:9".parse().expect("url"));
                Client::try_from(config).expect("client")
            });
            let cluster = Cluster {
                client,
                context: "sandbox".into(),
                server: "http://127.0.0.1:9".into(),
                request_timeout: None,
                deckhouse: Default::default(),
            };
            cluster.api_error(err, "list", "moduleconfigs.deckhouse.io")
        };
        let strict = serde_json::from_str::<Option<i64>>("1.5").expect_err("not an integer");
        let err = cluster_error(kube::Error::SerdeError(strict));
        assert_eq!(err.kind, crate::error::Kind::Runtime);
        assert!(!err.message.contains("cannot reach"), "{}", err.message);
        assert!(
            err.message
                .ends_with("to list moduleconfigs.deckhouse.io: expected an integer, got 1.5"),
            "{}",
            err.message
        );
        assert!(!err.hint.unwrap_or_default().contains("reachable"));
        // A failure pinpointed by the decode module keeps its words.
        let named = <serde_json::Error as serde::de::Error>::custom(
            "ModuleConfig disabled-module: spec.version: expected an integer, got 1.5",
        );
        let err = cluster_error(kube::Error::SerdeError(named));
        assert!(
            err.message.ends_with(
                ": ModuleConfig disabled-module: spec.version: expected an integer, got 1.5"
            ),
            "{}",
            err.message
        );
    }
}

/// Hostile kubeconfig content: every field value ends in a client or a clear error,
/// never a panic, and the token never appears in the error.
#[cfg(test)]
mod hostile_kubeconfig {
    use super::*;
    use proptest::prelude::*;

    fn connect(text: &[u8]) -> std::result::Result<(), Error> {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "kubectl-mpo-hostile-{}-{n}.kubeconfig",
            std::process::id()
        ));
        std::fs::write(&path, text).expect("write kubeconfig");
        let global = ConnectOptions {
            kubeconfig: Some(path.clone()),
            ..ConnectOptions::default()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let result = runtime.block_on(Cluster::connect(&global)).map(|_| ());
        let _ = std::fs::remove_file(path);
        result
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn field_values_never_panic_or_leak_the_token(
            server in prop_oneof![any::<String>(), "https?://[a-z0-9.:\\[\\]]{0,30}(/[a-z]{0,5})?"],
            ca in proptest::option::of(any::<String>()),
            cert in proptest::option::of(any::<String>()),
            key in proptest::option::of(any::<String>()),
            proxy in proptest::option::of(any::<String>()),
            insecure in any::<bool>(),
            token in "[A-Za-z0-9]{24}",
            context in any::<String>(),
        ) {
            let mut cluster = serde_json::json!({
                "server": server,
                "insecure-skip-tls-verify": insecure,
            });
            if let Some(ca) = ca {
                cluster["certificate-authority-data"] = ca.into();
            }
            if let Some(proxy) = proxy {
                cluster["proxy-url"] = proxy.into();
            }
            let mut user = serde_json::json!({"token": token});
            if let Some(cert) = cert {
                user["client-certificate-data"] = cert.into();
            }
            if let Some(key) = key {
                user["client-key-data"] = key.into();
            }
            let kubeconfig = serde_json::json!({
                "apiVersion": "v1", "kind": "Config", "current-context": context,
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
            });
            if let Err(err) = connect(kubeconfig.to_string().as_bytes()) {
                let text = format!("{} {}", err.message, err.hint.unwrap_or_default());
                prop_assert!(!text.contains(&token), "token in: {}", text);
            }
        }

        #[test]
        fn garbage_files_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = connect(&bytes);
        }
    }
}
