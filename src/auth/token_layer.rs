//! The `Authorization` header for logins whose token expires while a command runs (a
//! `--wait` or `--watch` outlives DKP's 10-minute id-tokens): the token is cached until
//! its expiry and then fetched again before the next request, as client-go's exec
//! authenticator and oidc auth provider do: an exec plugin runs again, an oidc login is
//! refreshed and written back to its kubeconfig.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::config::ExecConfig;

use super::exec::{Credential, run_plugin};
use super::oidc;

/// A token this close to its expiry is fetched again (kubectl's oidc margin).
const EXPIRY_MARGIN: jiff::SignedDuration = jiff::SignedDuration::from_secs(10);

enum Login {
    Exec {
        exec: Box<ExecConfig>,
        user: String,
    },
    Oidc {
        file: PathBuf,
        user: String,
        timeout: Option<Duration>,
    },
}

struct TokenSource {
    login: Login,
    cached: Mutex<(String, Option<jiff::Timestamp>)>,
}

/// Whether a token expiring at `expires` must be fetched again at `now`.
fn expired(expires: Option<jiff::Timestamp>, now: jiff::Timestamp) -> bool {
    expires.is_some_and(|expires| now + EXPIRY_MARGIN >= expires)
}

impl TokenSource {
    fn header(&self) -> Result<http::HeaderValue, CredentialError> {
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if expired(cached.1, jiff::Timestamp::now()) {
            *cached = self.fetch()?;
        }
        let mut value = http::HeaderValue::try_from(format!("Bearer {}", cached.0))
            .map_err(|_| CredentialError("the credential is not a valid header value".into()))?;
        value.set_sensitive(true);
        Ok(value)
    }

    fn fetch(&self) -> Result<(String, Option<jiff::Timestamp>), CredentialError> {
        match &self.login {
            Login::Exec { exec, user } => match run_plugin(exec, user).map_err(CredentialError)? {
                Credential::Token { token, expires } => Ok((token, expires)),
                Credential::Certificate { .. } => Err(CredentialError(format!(
                    "the exec credential plugin of user {user:?} switched from a token to a client certificate"
                ))),
            },
            Login::Oidc {
                file,
                user,
                timeout,
            } => {
                let handle = tokio::runtime::Handle::try_current()
                    .ok()
                    .filter(|handle| {
                        handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
                    })
                    .ok_or_else(|| {
                        CredentialError("the oidc login expired during the command".into())
                    })?;
                let token = handle
                    .block_on(oidc::fresh_id_token(file, user, *timeout))
                    .map_err(|err| {
                        CredentialError(match err.hint {
                            Some(hint) => format!("{} ({hint})", err.message),
                            None => err.message,
                        })
                    })?;
                let expires =
                    oidc::jwt_expiry(&token).and_then(|exp| jiff::Timestamp::from_second(exp).ok());
                Ok((token, expires))
            }
        }
    }
}

/// A credential that could not be fetched again while the command was running.
#[derive(Debug)]
pub struct CredentialError(pub String);

impl std::fmt::Display for CredentialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CredentialError {}

/// Adds the login's token to every request, fetching it again when it expires.
#[derive(Clone)]
pub struct TokenLayer(Arc<TokenSource>);

impl TokenLayer {
    pub fn exec(
        exec: ExecConfig,
        user: &str,
        token: String,
        expires: Option<jiff::Timestamp>,
    ) -> Self {
        Self::new(
            Login::Exec {
                exec: Box::new(exec),
                user: user.to_string(),
            },
            token,
            expires,
        )
    }

    pub fn oidc(file: PathBuf, user: &str, timeout: Option<Duration>, id_token: String) -> Self {
        let expires =
            oidc::jwt_expiry(&id_token).and_then(|exp| jiff::Timestamp::from_second(exp).ok());
        Self::new(
            Login::Oidc {
                file,
                user: user.to_string(),
                timeout,
            },
            id_token,
            expires,
        )
    }

    fn new(login: Login, token: String, expires: Option<jiff::Timestamp>) -> Self {
        Self(Arc::new(TokenSource {
            login,
            cached: Mutex::new((token, expires)),
        }))
    }
}

impl<S> tower::Layer<S> for TokenLayer {
    type Service = TokenService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TokenService {
            inner,
            source: self.0.clone(),
        }
    }
}

pub struct TokenService<S> {
    inner: S,
    source: Arc<TokenSource>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> tower::Service<http::Request<B>> for TokenService<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // Fetching a token blocks (a plugin run, a refresh): tell the runtime, so that
        // other tasks move on meanwhile.
        let multi_thread = tokio::runtime::Handle::try_current().is_ok_and(|handle| {
            handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        });
        let header = if multi_thread {
            tokio::task::block_in_place(|| self.source.header())
        } else {
            self.source.header()
        };
        match header {
            Ok(value) => {
                request
                    .headers_mut()
                    .insert(http::header::AUTHORIZATION, value);
                let future = self.inner.call(request);
                Box::pin(async move { future.await.map_err(Into::into) })
            }
            Err(err) => Box::pin(async move { Err(Box::new(err) as BoxError) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_fetched_again_shortly_before_they_expire() {
        let now = jiff::Timestamp::from_second(1_000_000).expect("timestamp");
        let at = |second: i64| Some(jiff::Timestamp::from_second(second).expect("timestamp"));
        assert!(!expired(None, now), "no expiry: kept for the command");
        assert!(!expired(at(1_000_011), now));
        assert!(expired(at(1_000_010), now));
        assert!(expired(at(999_000), now));
    }

    #[test]
    fn the_layer_sets_the_cached_token_without_fetching() {
        use tower::{Layer, Service};
        let layer = TokenLayer::exec(
            serde_json::from_value(serde_json::json!({"command": "/nonexistent/plugin"}))
                .expect("exec"),
            "dev",
            "cached-token".into(),
            Some(jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600)),
        );
        let mut service = layer.layer(tower::service_fn(|request: http::Request<()>| async move {
            Ok::<_, std::convert::Infallible>(
                request
                    .headers()
                    .get(http::header::AUTHORIZATION)
                    .map(|value| value.to_str().unwrap_or_default().to_string()),
            )
        }));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let header = runtime
            .block_on(service.call(http::Request::new(())))
            .expect("call");
        assert_eq!(header.as_deref(), Some("Bearer cached-token"));

        // Expired: the plugin runs again, and its failure is the request's error.
        let expired_layer = TokenLayer::exec(
            serde_json::from_value(
                serde_json::json!({"command": "/nonexistent/plugin", "interactiveMode": "Never"}),
            )
            .expect("exec"),
            "dev",
            "old-token".into(),
            Some(jiff::Timestamp::now()),
        );
        let mut service = expired_layer.layer(tower::service_fn(|_: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(())
        }));
        let err = runtime
            .block_on(service.call(http::Request::new(())))
            .expect_err("plugin missing");
        assert!(err.to_string().contains("/nonexistent/plugin"), "{err}");
        assert!(!err.to_string().contains("old-token"), "{err}");
    }
}
