//! Does the module run? Its health after a deploy, read from the Module and its
//! ModuleConfig as deckhouse-real §4 describes (Deckhouse `config/status.go`): an
//! override's `Ready` only means installed; the module runs when its phase is `Ready`,
//! `IsReady` is True, `properties.version` is the tag, `hooksState` is empty and the
//! ModuleConfig carries no `Error:`. Pure: objects in, verdict out.

use serde::Serialize;

use super::checks::{Step, StepId, StepState};
use super::resources::{Module, ModuleConfig, ModuleSource};

/// The health fields `status -o json` prints under `module`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleHealth {
    pub phase: Option<String>,
    /// `IsReady` is True.
    pub ready: bool,
    /// `IsReady`'s reason (`HookError`, `ModuleError`, `Installing`, a disabling reason).
    pub reason: Option<String>,
    pub message: Option<String>,
    pub hooks_state: Option<String>,
    /// `properties.version`: the tag once Deckhouse started with the new build.
    pub version: Option<String>,
    /// ModuleConfig `status.message` when it starts with `Error:` (bad settings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_error: Option<String>,
}

impl ModuleHealth {
    pub fn of(module: &Module, config: Option<&ModuleConfig>) -> Self {
        let status = module.status.as_ref();
        let is_ready = module.condition("IsReady");
        let nonempty = |text: Option<&String>| text.filter(|t| !t.is_empty()).cloned();
        ModuleHealth {
            phase: nonempty(status.and_then(|s| s.phase.as_ref())),
            ready: is_ready.is_some_and(|c| c.status == "True"),
            reason: nonempty(is_ready.and_then(|c| c.reason.as_ref())),
            message: nonempty(is_ready.and_then(|c| c.message.as_ref())),
            hooks_state: nonempty(status.and_then(|s| s.hooks_state.as_ref())),
            version: nonempty(module.properties.as_ref().and_then(|p| p.version.as_ref())),
            config_error: config
                .and_then(|c| c.status.as_ref())
                .and_then(|s| s.message.clone())
                .filter(|m| m.starts_with("Error:")),
        }
    }

    /// The module is disabled by one of §4's reasons (its `IsReady` reason is one of
    /// the extenders, `Bundle`, `Disabled` or `ModuleConfig`).
    pub fn disabled_reason(&self) -> Option<&str> {
        const DISABLING: [&str; 12] = [
            "Bundle",
            "Disabled",
            "ModuleConfig",
            "DynamicGlobalHookExtender",
            "EnabledScriptExtender",
            "DeckhouseVersionExtender",
            "KubernetesVersionExtender",
            "BootstrappedExtender",
            "ModuleDependencyExtender",
            "EditionAvailableExtender",
            "EditionEnabledExtender",
            "Error",
        ];
        self.reason
            .as_deref()
            .filter(|reason| DISABLING.contains(reason))
    }
}

/// Where a deploy stands, in the order a user sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// The controller has not judged the override yet.
    Checking,
    /// The controller accepted it and fetches the image.
    Downloading,
    /// The override is Ready with the new digest: installed, Deckhouse not restarted.
    Installing,
    /// Deckhouse restarts and starts the module (phase `Installing`/`Reconciling`).
    Restarting,
    Running,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Checking => "checking",
            Stage::Downloading => "downloading",
            Stage::Installing => "installing",
            Stage::Restarting => "restarting",
            Stage::Running => "running",
        }
    }
}

/// The module's answer after a deploy of `tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunVerdict {
    Running,
    /// Not yet: the stage it is in.
    Pending(Stage),
    /// It will not run without a change: what went wrong, in one line.
    Failed(String),
}

/// §4 "Runs", or why not. `restarted`: Deckhouse has started since the deploy (a new
/// deckhouse Pod, or the module seen starting), or no deploy happened; until then the
/// Module still shows the previous build's run.
pub fn judge(health: &ModuleHealth, tag: &str, restarted: bool) -> RunVerdict {
    if !restarted {
        return RunVerdict::Pending(Stage::Installing);
    }
    if let Some(error) = &health.config_error {
        return RunVerdict::Failed(format!("ModuleConfig settings: {error}"));
    }
    let reason = health.reason.as_deref().unwrap_or_default();
    if matches!(reason, "HookError" | "ModuleError") || health.phase.as_deref() == Some("Error") {
        let what = health
            .message
            .clone()
            .or_else(|| health.hooks_state.clone())
            .unwrap_or_else(|| "the module failed".to_string());
        return RunVerdict::Failed(format!(
            "{}: {what}",
            if reason.is_empty() { "Error" } else { reason }
        ));
    }
    if let Some(disabled) = health.disabled_reason() {
        let why = health.message.as_deref().unwrap_or(disabled);
        return RunVerdict::Failed(format!("the module is disabled ({disabled}): {why}"));
    }
    let new_build = health.version.as_deref() == Some(tag);
    if new_build
        && health.ready
        && health.phase.as_deref() == Some("Ready")
        && health.hooks_state.is_none()
    {
        return RunVerdict::Running;
    }
    RunVerdict::Pending(Stage::Restarting)
}

/// The plain words for a Module phase and `IsReady` reason (§4).
pub fn in_plain_words(health: &ModuleHealth) -> String {
    let phase = health.phase.as_deref().unwrap_or("unknown");
    let base = match phase {
        "Ready" if health.ready => "runs: Deckhouse reports it Ready".to_string(),
        "Ready" => "phase Ready, but IsReady is not True".to_string(),
        "Installing" => "Deckhouse is starting it after a download (phase Installing)".to_string(),
        "Reconciling" => "Deckhouse is starting it (phase Reconciling)".to_string(),
        "Error" => "it failed (phase Error)".to_string(),
        "Downloaded" => "downloaded but not enabled (phase Downloaded)".to_string(),
        "Available" => "known from a source, not enabled (phase Available)".to_string(),
        "Conflict" => "several sources offer it, none chosen (phase Conflict)".to_string(),
        other => format!("phase {other}"),
    };
    match (health.reason.as_deref(), health.message.as_deref()) {
        (Some("HookError"), Some(message)) => format!("{base}: a hook failed: {message}"),
        (Some("ModuleError"), Some(message)) => format!("{base}: the module failed: {message}"),
        (Some(reason), Some(message)) if !health.ready => format!("{base}: {message} ({reason})"),
        _ => base,
    }
}

fn step(
    id: StepId,
    state: StepState,
    summary: String,
    cause: Option<String>,
    fix: Vec<String>,
) -> Step {
    Step {
        id,
        state,
        summary,
        cause,
        fix,
        controller_message: None,
    }
}

/// `explain`'s steps after the controller's: the module's own health (§4), its
/// ModuleConfig's settings error, and the ModuleSource's errors for it (§3.16), each
/// with what to do next.
pub fn health_steps(
    name: &str,
    tag: &str,
    health: Option<&ModuleHealth>,
    source: Option<&ModuleSource>,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let logs = format!("kubectl mpo logs {name} --level error");
    if let Some(health) = health {
        let words = in_plain_words(health);
        steps.push(match judge(health, tag, true) {
            RunVerdict::Running => step(
                StepId::ModuleHealth,
                StepState::Passed,
                format!("module {name} runs {tag}: {words} (its log: kubectl mpo logs {name})"),
                None,
                Vec::new(),
            ),
            RunVerdict::Failed(why) => {
                let fix = match health.reason.as_deref() {
                    Some("HookError") => vec![
                        format!("read the hook's error: {logs}"),
                        "fix the hook, push a new build, then: kubectl mpo renew {name} --check-only --wait"
                            .replace("{name}", name),
                    ],
                    _ if health.config_error.is_some() => vec![
                        format!("fix the settings: kubectl edit moduleconfig {name}"),
                        format!("or compare them with the image's schema: kubectl mpo registry cat {name}:{tag} openapi/config-values.yaml"),
                    ],
                    _ => vec![format!("read the module's errors: {logs}")],
                };
                step(
                    StepId::ModuleHealth,
                    StepState::Failed,
                    format!("module {name} does not run: {words}"),
                    Some(why),
                    fix,
                )
            }
            RunVerdict::Pending(_) => {
                let version = health.version.as_deref().unwrap_or("<none>");
                step(
                    StepId::ModuleHealth,
                    StepState::Warning,
                    format!("module {name} is not running {tag} yet: {words} (version {version})"),
                    Some("Deckhouse restarts after a deploy and then starts the module; this takes a while".into()),
                    vec![format!("wait for it: kubectl mpo renew {name} --check-only --wait"), format!("watch its log: kubectl mpo logs {name} -f")],
                )
            }
        });
        if let Some(hooks) = &health.hooks_state {
            steps.push(step(
                StepId::ModuleHooks,
                StepState::Failed,
                format!("hook errors: {hooks}"),
                Some("a hook of the module failed; Deckhouse retries it".into()),
                vec![logs.clone()],
            ));
        }
        if let Some(error) = &health.config_error {
            steps.push(step(
                StepId::ModuleSettings,
                StepState::Failed,
                format!("ModuleConfig {name} settings are invalid: {error}"),
                Some("the settings do not match the image's openapi/config-values.yaml".into()),
                vec![format!("kubectl edit moduleconfig {name}")],
            ));
        }
    }
    if let Some(source) = source {
        let source_name = source.metadata.name.as_deref().unwrap_or_default();
        let status = source.status.as_ref();
        let listed = status.and_then(|s| s.modules.iter().find(|m| m.name == name));
        let error = listed
            .and_then(|m| m.error.clone().or_else(|| m.pull_error.clone()))
            .filter(|e| !e.is_empty());
        let sync = status
            .and_then(|s| s.sync_time.clone())
            .unwrap_or_else(|| "never".into());
        let timing = format!("last sync {sync}, rescans every 3 minutes");
        // The source's error is about its own pull of the module's releases, which an
        // override bypasses (docs/deckhouse-real.md §3.16): it matters once the override
        // is deleted and the module returns to its release channel.
        match error {
            Some(error) => steps.push(step(
                StepId::SourceErrors,
                StepState::Warning,
                format!(
                    "ModuleSource {source_name} reports an error for {name}: {error} ({timing})"
                ),
                Some(format!(
                    "{}the source could not fetch the module's release; the override does not need it, but the module falls back to its release channel when the override is deleted",
                    status
                        .and_then(|s| s.message.as_deref())
                        .filter(|m| !m.is_empty())
                        .map(|m| format!("{m}: "))
                        .unwrap_or_default()
                )),
                vec![format!("kubectl get modulesource {source_name} -o yaml")],
            )),
            None => steps.push(step(
                StepId::SourceErrors,
                StepState::Passed,
                format!("ModuleSource {source_name} reports no error for {name} ({timing})"),
                None,
                Vec::new(),
            )),
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(
        phase: &str,
        ready: bool,
        reason: &str,
        message: &str,
        version: &str,
    ) -> ModuleHealth {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        ModuleHealth {
            phase: some(phase),
            ready,
            reason: some(reason),
            message: some(message),
            hooks_state: None,
            version: some(version),
            config_error: None,
        }
    }

    #[test]
    fn runs_only_with_everything_section_4_names() {
        assert_eq!(
            judge(&health("Ready", true, "", "", "pr1"), "pr1", true),
            RunVerdict::Running
        );
        assert_eq!(
            judge(&health("Ready", true, "", "", "pr1"), "pr1", false),
            RunVerdict::Pending(Stage::Installing),
            "before the restart the Module shows the previous run"
        );
        assert_eq!(
            judge(&health("Ready", true, "", "", "v1.0.0"), "pr1", true),
            RunVerdict::Pending(Stage::Restarting),
            "the old build still runs"
        );
        assert_eq!(
            judge(
                &health("Installing", false, "Installing", "installing", "pr1"),
                "pr1",
                true
            ),
            RunVerdict::Pending(Stage::Restarting)
        );
        let mut hooks = health("Ready", true, "", "", "pr1");
        hooks.hooks_state = Some("x: failed".into());
        assert_ne!(judge(&hooks, "pr1", true), RunVerdict::Running);
    }

    #[test]
    fn errors_end_the_wait() {
        let failed = judge(
            &health("Error", false, "HookError", "hooks/a: boom", "pr1"),
            "pr1",
            true,
        );
        assert_eq!(
            failed,
            RunVerdict::Failed("HookError: hooks/a: boom".into())
        );
        let disabled = judge(
            &health(
                "Downloaded",
                false,
                "ModuleConfig",
                "turned off by module config",
                "",
            ),
            "pr1",
            true,
        );
        assert!(
            matches!(disabled, RunVerdict::Failed(text) if text.contains("turned off by module config"))
        );
        let mut settings = health("Ready", true, "", "", "pr1");
        settings.config_error = Some("Error: echo.replicas must be of type integer".into());
        assert!(
            matches!(judge(&settings, "pr1", true), RunVerdict::Failed(text) if text.contains("replicas"))
        );
    }
}
