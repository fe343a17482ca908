//! Checks of a module image against the cluster, before the controller meets it: the
//! ModuleConfig settings against the image's `openapi/config-values.yaml` (the
//! controller validates values on every new digest and writes `Validation error: …`,
//! docs/deckhouse-real.md §3.11), the `module.yaml` requirements (Deckhouse and
//! Kubernetes versions, required modules: the module manager turns a module off when
//! they fail, §4 `DeckhouseVersionExtender`, `KubernetesVersionExtender`,
//! `ModuleDependencyExtender`) and its `stage` (an experimental module needs
//! `allowExperimentalModules` in the `deckhouse` ModuleConfig, §3.17). Objects in,
//! steps out: no I/O.

use serde::Deserialize;
use serde_json::Value;

use super::checks::{Step, StepId, StepState};

pub const CONFIG_VALUES: &str = "openapi/config-values.yaml";
pub const MODULE_YAML: &str = "module.yaml";

/// The parts of `module.yaml` the checks read.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleDefinition {
    #[serde(default)]
    pub stage: Option<String>,
    #[serde(default)]
    pub requirements: Option<Requirements>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct Requirements {
    #[serde(default)]
    pub deckhouse: Option<String>,
    #[serde(default)]
    pub kubernetes: Option<String>,
    #[serde(default)]
    pub modules: std::collections::BTreeMap<String, String>,
}

/// What the requirement and stage checks need from the cluster.
#[derive(Debug, Default, Clone)]
pub struct ClusterEnv {
    /// `None`: not readable.
    pub deckhouse_version: Option<String>,
    pub kubernetes_version: Option<String>,
    /// Enabled state of the modules named in requirements: `Some(true)` enabled,
    /// `Some(false)` disabled or absent, `None` unknown (ModuleConfigs not readable).
    pub module_enabled: std::collections::BTreeMap<String, Option<bool>>,
    /// `spec.settings.allowExperimentalModules` of the `deckhouse` ModuleConfig
    /// (`None`: not readable).
    pub allow_experimental: Option<bool>,
}

fn step(id: StepId, state: StepState, summary: impl Into<String>) -> Step {
    Step {
        id,
        state,
        summary: summary.into(),
        cause: None,
        fix: Vec::new(),
        controller_message: None,
    }
}

/// Parses `module.yaml`; an unreadable file is a failed step.
pub fn parse_definition(raw: &[u8]) -> Result<ModuleDefinition, Step> {
    let text = String::from_utf8_lossy(raw);
    serde_saphyr::from_str::<ModuleDefinition>(&text).map_err(|err| {
        let mut failed = step(
            StepId::ImageDefinition,
            StepState::Failed,
            format!("{MODULE_YAML} of the image cannot be read"),
        );
        failed.cause = Some(format!("{MODULE_YAML}: {err}"));
        failed.controller_message = Some(format!("Validation error: {err}"));
        failed
    })
}

/// ModuleConfig `spec.settings` against the image's OpenAPI schema (Draft 4 rules, as
/// OpenAPI v3.0 uses). No schema file: passes and says so.
pub fn check_settings(
    module: &str,
    tag: &str,
    schema: Option<&[u8]>,
    settings: Option<&Value>,
) -> Step {
    let Some(raw) = schema else {
        return step(
            StepId::ImageSettings,
            StepState::Passed,
            format!("{module}:{tag} has no {CONFIG_VALUES}: settings not checked"),
        );
    };
    let failed = |summary: String, cause: String, message: String| {
        let mut s = step(StepId::ImageSettings, StepState::Failed, summary);
        s.cause = Some(cause);
        s.controller_message = Some(format!("Validation error: {message}"));
        s
    };
    let text = String::from_utf8_lossy(raw);
    let schema: Value = match serde_saphyr::from_str(&text) {
        Ok(schema) => schema,
        Err(err) => {
            return failed(
                format!("{CONFIG_VALUES} of {module}:{tag} is not valid YAML"),
                format!("{CONFIG_VALUES}: {err}"),
                format!("{CONFIG_VALUES}: {err}"),
            );
        }
    };
    let validator = match jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .build(&schema)
    {
        Ok(validator) => validator,
        Err(err) => {
            return failed(
                format!("{CONFIG_VALUES} of {module}:{tag} is not a valid schema"),
                format!("{CONFIG_VALUES}: {err}"),
                format!("{CONFIG_VALUES}: {err}"),
            );
        }
    };
    let empty = Value::Object(Default::default());
    let settings = settings.unwrap_or(&empty);
    let errors: Vec<(String, String, String)> = validator
        .iter_errors(settings)
        .map(|err| {
            let path = settings_path(&err.instance_path().to_string());
            let rule = err.schema_path().to_string();
            (path, rule, err.to_string())
        })
        .collect();
    let Some((path, rule, message)) = errors.first() else {
        return step(
            StepId::ImageSettings,
            StepState::Passed,
            format!("ModuleConfig {module} settings match the schema of {module}:{tag}"),
        );
    };
    let mut s = failed(
        format!("ModuleConfig {module} settings do not match the schema of {module}:{tag}"),
        format!(
            "{path}: {message} (schema rule {rule} in {CONFIG_VALUES}){}",
            match errors.len() {
                1 => String::new(),
                n => format!("; {} more", n - 1),
            }
        ),
        format!("{path}: {message}"),
    );
    s.fix.push(format!(
        "kubectl edit moduleconfig {module}   # change {path} so that the image's schema accepts it"
    ));
    s
}

/// `/a/0/b` → `spec.settings.a[0].b`.
fn settings_path(pointer: &str) -> String {
    let mut path = String::from("spec.settings");
    for part in pointer.split('/').skip(1) {
        let part = part.replace("~1", "/").replace("~0", "~");
        if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            path.push_str(&format!("[{part}]"));
        } else {
            path.push('.');
            path.push_str(&part);
        }
    }
    path
}

/// A version as semver: `v1.78.3`, `1.78` (padded), build and pre-release dropped.
fn version(text: &str) -> Option<semver::Version> {
    let core = text
        .trim()
        .trim_start_matches('v')
        .split(['+', '-'])
        .next()?;
    let mut parts: Vec<u64> = core
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    parts.resize(3, 0);
    Some(semver::Version::new(parts[0], parts[1], parts[2]))
}

/// Whether `version` meets a constraint as `module.yaml` writes them (`>= 1.61`,
/// `>= 1.61, < 1.70`, alternatives with `||`). `None`: the constraint cannot be read.
pub fn satisfies(constraint: &str, version: &semver::Version) -> Option<bool> {
    let mut any = false;
    for alternative in constraint.split("||") {
        let compact: String = alternative
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .replace(",v", ",")
            .replace(">=v", ">=")
            .replace("<=v", "<=")
            .replace(">v", ">")
            .replace("<v", "<")
            .replace("=v", "=");
        let req = semver::VersionReq::parse(&compact).ok()?;
        any |= req.matches(version);
    }
    Some(any)
}

fn version_step(
    id: StepId,
    what: &str,
    constraint: &str,
    have: Option<&str>,
    module: &str,
    tag: &str,
) -> Step {
    let Some(have) = have else {
        let mut s = step(
            id,
            StepState::Unknown,
            format!(
                "{module}:{tag} needs {what} {constraint}: the cluster's {what} version could not be read"
            ),
        );
        s.cause = Some(format!("requirement not checked: {what} version unknown"));
        return s;
    };
    match version(have).and_then(|v| satisfies(constraint, &v)) {
        Some(true) => step(
            id,
            StepState::Passed,
            format!("{module}:{tag} needs {what} {constraint}: the cluster has {have}"),
        ),
        Some(false) => {
            let mut s = step(
                id,
                StepState::Failed,
                format!("{module}:{tag} needs {what} {constraint}: the cluster has {have}"),
            );
            s.cause = Some(format!(
                "module.yaml requirements.{} is {constraint:?}; Deckhouse turns the module off (turned off by {} version)",
                what.to_lowercase(),
                what.to_lowercase()
            ));
            s.fix.push(format!(
                "choose a build whose module.yaml accepts {what} {have}: kubectl mpo registry tags {module}"
            ));
            s
        }
        None => {
            let mut s = step(
                id,
                StepState::Unknown,
                format!(
                    "{module}:{tag} needs {what} {constraint:?}: not a version constraint the plugin reads"
                ),
            );
            s.cause = Some(format!("cannot compare {have} with {constraint:?}"));
            s
        }
    }
}

/// The requirements of `module.yaml` against the cluster.
pub fn check_requirements(
    module: &str,
    tag: &str,
    definition: &ModuleDefinition,
    env: &ClusterEnv,
) -> Vec<Step> {
    let Some(requirements) = &definition.requirements else {
        return vec![step(
            StepId::ImageRequirements,
            StepState::Passed,
            format!("{module}:{tag} states no requirements in {MODULE_YAML}"),
        )];
    };
    let mut steps = Vec::new();
    if let Some(constraint) = &requirements.deckhouse {
        steps.push(version_step(
            StepId::ImageRequirements,
            "Deckhouse",
            constraint,
            env.deckhouse_version.as_deref(),
            module,
            tag,
        ));
    }
    if let Some(constraint) = &requirements.kubernetes {
        steps.push(version_step(
            StepId::ImageRequirements,
            "Kubernetes",
            constraint,
            env.kubernetes_version.as_deref(),
            module,
            tag,
        ));
    }
    for (required, constraint) in &requirements.modules {
        match env.module_enabled.get(required).copied().flatten() {
            Some(true) => steps.push(step(
                StepId::ImageRequirements,
                StepState::Passed,
                format!("{module}:{tag} needs module {required} {constraint}: enabled"),
            )),
            Some(false) => {
                let mut s = step(
                    StepId::ImageRequirements,
                    StepState::Failed,
                    format!("{module}:{tag} needs module {required} {constraint}: not enabled"),
                );
                s.cause = Some(format!(
                    "module.yaml requirements.modules.{required}; Deckhouse turns {module} off (turned off because of unmet module dependencies)"
                ));
                s.fix.push(format!(
                    "kubectl patch moduleconfig {required} --type merge -p '{{\"spec\":{{\"enabled\":true}}}}'"
                ));
                steps.push(s);
            }
            None => {
                let mut s = step(
                    StepId::ImageRequirements,
                    StepState::Unknown,
                    format!(
                        "{module}:{tag} needs module {required} {constraint}: its ModuleConfig could not be read"
                    ),
                );
                s.cause = Some("requirement not checked".into());
                steps.push(s);
            }
        }
    }
    if steps.is_empty() {
        steps.push(step(
            StepId::ImageRequirements,
            StepState::Passed,
            format!("{module}:{tag} states no requirements in {MODULE_YAML}"),
        ));
    }
    steps
}

/// An experimental module runs only with `allowExperimentalModules: true` in the
/// `deckhouse` ModuleConfig (docs/deckhouse-real.md §3.17).
pub fn check_stage(
    module: &str,
    tag: &str,
    definition: &ModuleDefinition,
    env: &ClusterEnv,
) -> Step {
    let stage = definition.stage.as_deref().unwrap_or("");
    if !stage.eq_ignore_ascii_case("experimental") {
        let shown = if stage.is_empty() { "no stage" } else { stage };
        return step(
            StepId::ImageStage,
            StepState::Passed,
            format!("{module}:{tag} is {shown}: no allowance needed"),
        );
    }
    match env.allow_experimental {
        Some(true) => step(
            StepId::ImageStage,
            StepState::Passed,
            format!("{module}:{tag} is Experimental: allowed by the deckhouse ModuleConfig"),
        ),
        allowed => {
            let mut s = step(
                StepId::ImageStage,
                if allowed.is_none() {
                    StepState::Unknown
                } else {
                    StepState::Failed
                },
                format!(
                    "{module}:{tag} is Experimental: the deckhouse ModuleConfig does not allow experimental modules"
                ),
            );
            s.cause = Some(format!(
                "the '{module}' module is experimental, set param in 'deckhouse' ModuleConfig - spec.settings.allowExperimentalModules: true to allow it"
            ));
            s.fix
                .push(crate::deckhouse::checks::ALLOW_EXPERIMENTAL_FIX.into());
            s
        }
    }
}

/// All image checks from the two files (either may be absent).
pub fn image_steps(
    module: &str,
    tag: &str,
    definition_raw: Option<&[u8]>,
    schema_raw: Option<&[u8]>,
    settings: Option<&Value>,
    env: &ClusterEnv,
) -> Vec<Step> {
    let mut steps = vec![check_settings(module, tag, schema_raw, settings)];
    match definition_raw.map(parse_definition) {
        None => steps.push(step(
            StepId::ImageDefinition,
            StepState::Passed,
            format!("{module}:{tag} has no {MODULE_YAML}: requirements and stage not checked"),
        )),
        Some(Err(failed)) => steps.push(failed),
        Some(Ok(definition)) => {
            steps.extend(check_requirements(module, tag, &definition, env));
            steps.push(check_stage(module, tag, &definition, env));
        }
    }
    steps
}

/// The module names `module.yaml` requires (to know which ModuleConfigs to read).
pub fn required_modules(definition_raw: Option<&[u8]>) -> Vec<String> {
    definition_raw
        .and_then(|raw| parse_definition(raw).ok())
        .and_then(|d| d.requirements)
        .map(|r| r.modules.into_keys().collect())
        .unwrap_or_default()
}

/// What the controller does about an override whose tag the registry no longer has
/// (CI cleanup): its next digest lookup fails, it writes `Download error: …`, keeps
/// `imageDigest` and requeues after `scanInterval` (docs/deckhouse-real.md §3.0 step 7).
pub fn missing_tag_text(
    name: &str,
    tag: &str,
    deployed: Option<&str>,
    scan_interval: &str,
) -> String {
    let keeps = match deployed {
        Some(digest) => {
            format!("keeps imageDigest {digest}, so the module keeps running that build")
        }
        None => "has nothing deployed to fall back to".to_string(),
    };
    format!(
        "tag {tag} no longer exists in the registry (deleted, e.g. by CI cleanup): at its next scan (every {scan_interval}) the controller writes \"Download error: …\", {keeps}, and retries every {scan_interval}; set a tag that exists with kubectl mpo edit {name} --tag TAG or kubectl mpo undo {name}"
    )
}

/// `missing_tag_text` as an `explain` step.
pub fn missing_tag_step(
    name: &str,
    tag: &str,
    deployed: Option<&str>,
    scan_interval: &str,
) -> Step {
    let mut s = step(
        StepId::MissingTag,
        StepState::Failed,
        format!("the override's tag {tag} is gone from the registry"),
    );
    s.cause = Some(missing_tag_text(name, tag, deployed, scan_interval));
    s.controller_message = Some("Download error".into());
    s.fix.push(format!(
        "kubectl mpo registry tags {name}    # the tags that exist"
    ));
    s.fix
        .push(format!("kubectl mpo undo {name}    # the previous tag"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SCHEMA: &[u8] = b"type: object\nadditionalProperties: false\nproperties:\n  replicas:\n    type: integer\n    minimum: 1\n";

    #[test]
    fn settings_that_break_the_schema_name_the_path_and_rule() {
        let settings = json!({"replicas": "three"});
        let s = check_settings("echo", "pr1", Some(SCHEMA), Some(&settings));
        assert_eq!(s.state, StepState::Failed);
        let cause = s.cause.unwrap_or_default();
        assert!(cause.starts_with("spec.settings.replicas: "), "{cause}");
        assert!(cause.contains("/properties/replicas/type"), "{cause}");
        assert!(
            s.controller_message
                .unwrap_or_default()
                .starts_with("Validation error: spec.settings.replicas")
        );
    }

    #[test]
    fn matching_settings_and_no_schema_pass() {
        let settings = json!({"replicas": 2});
        assert_eq!(
            check_settings("echo", "t", Some(SCHEMA), Some(&settings)).state,
            StepState::Passed
        );
        let none = check_settings("echo", "t", None, Some(&settings));
        assert_eq!(none.state, StepState::Passed);
        assert!(none.summary.contains("settings not checked"));
    }

    #[test]
    fn constraints_as_module_yaml_writes_them() {
        let v = version("v1.33.2").unwrap_or(semver::Version::new(0, 0, 0));
        assert_eq!(satisfies(">= 1.27", &v), Some(true));
        assert_eq!(satisfies(">= 1.27, < 1.30", &v), Some(false));
        assert_eq!(satisfies("< 1.20 || >= 1.33", &v), Some(true));
        assert_eq!(satisfies("nonsense", &v), None);
    }

    #[test]
    fn requirements_and_stage() {
        let definition = parse_definition(
            b"stage: Experimental\nrequirements:\n  kubernetes: '>= 99.0'\n  modules:\n    cert-manager: '>= 0.0.0'\n",
        )
        .unwrap_or_default();
        let env = ClusterEnv {
            kubernetes_version: Some("v1.33.1".into()),
            module_enabled: [("cert-manager".to_string(), Some(false))].into(),
            allow_experimental: Some(false),
            ..Default::default()
        };
        let steps = check_requirements("echo", "t", &definition, &env);
        assert_eq!(steps.len(), 2);
        assert!(steps.iter().all(|s| s.state == StepState::Failed));
        assert_eq!(
            check_stage("echo", "t", &definition, &env).state,
            StepState::Failed
        );
        let allowed = ClusterEnv {
            allow_experimental: Some(true),
            ..env
        };
        assert_eq!(
            check_stage("echo", "t", &definition, &allowed).state,
            StepState::Passed
        );
    }
}
