//! What connecting needs to know, as plain values: the command line builds it
//! (`cli::GlobalArgs::connect_options`), the cluster layer never sees clap's types.

use std::path::PathBuf;
use std::time::Duration;

/// kubectl's connection settings: which kubeconfig, context, cluster and user, the
/// flags that override their entries, the per-request timeout and how much to log.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--kubeconfig`: this file only; else `$KUBECONFIG`, else `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub cluster: Option<String>,
    pub user: Option<String>,
    /// Zero means no limit.
    pub request_timeout: Duration,
    pub no_color: bool,
    /// kubectl's verbosity: request lines from 6, headers from 8.
    pub verbose: u8,
    pub server: Option<String>,
    pub token: Option<String>,
    pub as_user: Option<String>,
    pub as_group: Vec<String>,
    pub certificate_authority: Option<PathBuf>,
    pub insecure_skip_tls_verify: Option<bool>,
}
