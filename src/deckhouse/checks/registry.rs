//! Step 7: the registry's answer for the tag, through a ModuleSource or `--registry-repo`.

use super::*;

/// Step 7: the registry answer for `<repo>/<name>:<tag>`, as a step with its fix.
pub fn registry_step(
    name: &str,
    tag: &str,
    source: &ModuleSource,
    image: &str,
    result: &Result<ResolvedDigest, RegistryError>,
) -> Step {
    let source_name = source.metadata.name.as_deref().unwrap_or_default();
    let host = source
        .spec
        .registry
        .repo
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let error = match result {
        Ok(resolved) => {
            let mut summary = format!("{image} resolves to {}", resolved.digest);
            if let Some(index) = &resolved.index_digest {
                summary.push_str(&format!(" (linux/amd64 of index {index})"));
            }
            return Step::passed(StepId::Registry, summary);
        }
        Err(error) => error,
    };
    let step = Step::failed(
        StepId::Registry,
        format!("{image}: {}", error.message),
        MSG_DOWNLOAD_ERROR,
    );
    let docker_cfg_fix = format!(
        "kubectl patch modulesource {source_name} --type=merge -p \"{{\\\"spec\\\":{{\\\"registry\\\":{{\\\"dockerCfg\\\":\\\"$(printf '{{\"auths\":{{\"{host}\":{{\"auth\":\"%s\"}}}}}}' \"$(printf '%s:%s' USER PASSWORD | base64 -w0)\" | base64 -w0)\\\"}}}}}}\""
    );
    match error.kind {
        RegistryErrorKind::Credentials => step
            .because(format!(
                "ModuleSource {source_name}'s dockerCfg has no usable entry for {host} (the entry's key must equal the repo host, port included)"
            ))
            .fix(docker_cfg_fix),
        RegistryErrorKind::Unauthorized => step
            .because(format!("the registry rejected ModuleSource {source_name}'s credentials for {host}"))
            .fix(docker_cfg_fix)
            .fix(format!("kubectl mpo registry tags {name} --source {source_name}    # check the new credentials")),
        RegistryErrorKind::Tls => step
            .because(format!(
                "the registry's TLS certificate is not trusted: ModuleSource {source_name} needs spec.registry.ca with the registry's CA"
            ))
            .fix(format!(
                "kubectl patch modulesource {source_name} --type=merge -p \"$(jq -n --rawfile ca ca.crt '{{spec:{{registry:{{ca:$ca}}}}}}')\""
            )),
        RegistryErrorKind::NotFound => step
            .because(format!("tag {tag} does not exist in {}/{name}", source.spec.registry.repo))
            .fix(format!("kubectl mpo registry tags {name}    # the tags that exist"))
            .fix(format!("kubectl mpo edit {name} --tag TAG")),
        RegistryErrorKind::Unreachable | RegistryErrorKind::Timeout => step
            .because(format!("the registry {host} cannot be reached from here (the cluster may still reach it)"))
            .fix(format!("curl -sI https://{host}/v2/    # check the network path")),
        RegistryErrorKind::Malformed => {
            step.because("the registry answered, but not with a usable image")
        }
        RegistryErrorKind::Limit => step.because(
            "the image is larger than the caps on image reads allow (see the flag named above)",
        ),
        RegistryErrorKind::Config => step
            .because(format!(
                "ModuleSource {source_name}'s repo {:?} does not make a valid image reference; the registry was not asked",
                source.spec.registry.repo
            ))
            .fix(format!("kubectl get modulesource {source_name} -o jsonpath='{{.spec.registry.repo}}'    # host[:port]/path, lower case")),
        RegistryErrorKind::Other => step.because("the registry answered with an error"),
    }
}

/// The registry check through `--registry-repo` with the user's own docker config.json
/// (for users who may not read ModuleSources). Only a missing tag predicts the
/// controller's `Download error`: any other failure is about the user's access, and the
/// cluster pulls with the ModuleSource's credentials.
pub fn registry_step_via_flag(
    name: &str,
    tag: &str,
    repo: &str,
    image: &str,
    result: &Result<ResolvedDigest, RegistryError>,
) -> Step {
    let error = match result {
        Ok(resolved) => {
            let mut summary = format!(
                "{image} resolves to {} (via --registry-repo)",
                resolved.digest
            );
            if let Some(index) = &resolved.index_digest {
                summary.push_str(&format!(" (linux/amd64 of index {index})"));
            }
            return Step::passed(StepId::Registry, summary);
        }
        Err(error) => error,
    };
    let summary = format!("{image}: {}", error.message);
    let host = repo
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    let host = host.split('/').next().unwrap_or_default();
    let yours = |cause: String| {
        Step::unknown(StepId::Registry, summary.clone()).because(format!(
            "{cause}; this is your access through --registry-repo, the cluster pulls with the ModuleSource's credentials"
        ))
    };
    match error.kind {
        RegistryErrorKind::NotFound => Step::failed(StepId::Registry, summary, MSG_DOWNLOAD_ERROR)
            .because(format!("tag {tag} does not exist in {repo}/{name}"))
            .fix(format!("kubectl mpo registry tags {name} --registry-repo {repo}    # the tags that exist"))
            .fix(format!("kubectl mpo edit {name} --tag TAG")),
        RegistryErrorKind::Credentials => {
            yours(format!("your docker config.json has no usable entry for {host}"))
                .fix(format!("docker login {host}    # or pass --registry-config PATH"))
        }
        RegistryErrorKind::Unauthorized => {
            yours(format!("the registry refused your credentials for {host}"))
                .fix(format!("docker login {host}    # or pass --registry-config PATH"))
        }
        RegistryErrorKind::Tls => yours(format!("the TLS certificate of {host} is not trusted here"))
            .fix("pass --registry-ca PATH with the registry's CA (PEM)"),
        RegistryErrorKind::Unreachable | RegistryErrorKind::Timeout => {
            yours(format!("the registry {host} cannot be reached from here"))
        }
        RegistryErrorKind::Config => Step::unknown(StepId::Registry, summary)
            .because(format!("--registry-repo {repo:?} does not make a valid image reference; the registry was not asked")),
        RegistryErrorKind::Malformed | RegistryErrorKind::Limit | RegistryErrorKind::Other => {
            yours("the registry answered with an error".to_string())
        }
    }
}
