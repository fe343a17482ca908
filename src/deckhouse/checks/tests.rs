//! The checks on literal objects.

use super::*;

#[test]
fn a_renew_key_nothing_removes_is_reported() {
    let mut mpo = ModulePullOverride::default();
    mpo.metadata.annotations = Some(
        [(
            crate::deckhouse::resources::RENEW_ANNOTATION.to_string(),
            "true".to_string(),
        )]
        .into(),
    );
    mpo.status = Some(crate::deckhouse::resources::MpoStatus {
        message: Some("Ready".into()),
        image_digest: Some("sha256:a".into()),
        ..Default::default()
    });
    let step = stale_renew_key("echo", &mpo, "B").expect("gen B never removes it");
    assert_eq!(step.state, StepState::Warning);
    assert!(step.cause.as_deref().unwrap().contains("gen B"));
    assert!(step.fix[0].ends_with("modules.deckhouse.io/renew-"));
    assert!(stale_renew_key("echo", &mpo, "C or D").is_some());
    // Not Ready on a cluster that may be gen D: it may still be redeploying.
    mpo.status.as_mut().unwrap().message = Some("Download error: x".into());
    assert!(stale_renew_key("echo", &mpo, "C or D").is_none());
    assert!(stale_renew_key("echo", &mpo, "A").is_some());
    mpo.metadata.annotations = None;
    assert!(stale_renew_key("echo", &mpo, "A").is_none());
}

#[test]
fn ready_behind_an_old_build_is_a_failing_deploy() {
    let mut mpo = ModulePullOverride::default();
    mpo.metadata.name = Some("echo".into());
    mpo.spec = crate::deckhouse::resources::MpoSpec {
        image_tag: "main".into(),
        scan_interval: Some("1m".into()),
        ..Default::default()
    };
    mpo.status = Some(crate::deckhouse::resources::MpoStatus {
        message: Some("Ready".into()),
        image_digest: Some("sha256:old".into()),
        ..Default::default()
    });
    let now: jiff::Timestamp = "2026-11-25T12:00:00Z".parse().expect("time");
    let old_build = Some("2026-11-25T11:55:00Z");
    let fresh_build = Some("2026-11-25T11:59:30Z");
    let step = failing_deploy("echo", &mpo, SyncState::Behind, old_build, now)
        .expect("5 minutes behind a 1m scan");
    assert_eq!(step.state, StepState::Warning);
    assert!(step.summary.contains("built 5m ago"), "{}", step.summary);
    assert!(step.fix[0].starts_with("kubectl mpo logs echo"));
    // Within a scan and a minute, in sync, unknown build time, or not Ready: no verdict.
    assert!(failing_deploy("echo", &mpo, SyncState::Behind, fresh_build, now).is_none());
    assert!(failing_deploy("echo", &mpo, SyncState::InSync, old_build, now).is_none());
    assert!(failing_deploy("echo", &mpo, SyncState::Behind, None, now).is_none());
    let epoch = Some("1970-01-01T00:00:01Z");
    assert!(failing_deploy("echo", &mpo, SyncState::Behind, epoch, now).is_none());
    mpo.status.as_mut().expect("status").message = Some("Download error: x".into());
    assert!(failing_deploy("echo", &mpo, SyncState::Behind, old_build, now).is_none());
}
use crate::deckhouse::resources::SourceRegistry as RegistrySpec;
use crate::deckhouse::resources::{
    EditionAccess, ModuleAccessibility, ModuleCondition, ModuleConfigSpec, ModuleProperties,
    ModuleSourceSpec, ModuleStatus, MpoSpec, MpoStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    }
}

fn module(name: &str, source: &str, available: &[&str], enabled: Option<&str>) -> Module {
    Module {
        metadata: meta(name),
        properties: Some(ModuleProperties {
            source: Some(source.into()),
            available_sources: available.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }),
        status: Some(ModuleStatus {
            conditions: enabled
                .map(|status| ModuleCondition {
                    type_: "EnabledByModuleConfig".into(),
                    status: status.into(),
                    reason: None,
                    message: Some("turned off by module config".into()),
                    last_transition_time: None,
                })
                .into_iter()
                .collect(),
            ..Default::default()
        }),
    }
}

fn config(name: &str, enabled: bool) -> ModuleConfig {
    ModuleConfig::new(
        name,
        ModuleConfigSpec {
            enabled: Some(enabled),
            ..Default::default()
        },
    )
}

fn source(name: &str) -> ModuleSource {
    ModuleSource::new(
        name,
        ModuleSourceSpec {
            registry: RegistrySpec {
                repo: "reg.io/modules".into(),
                ..Default::default()
            },
            ..Default::default()
        },
    )
}

fn verdict_message(facts: &ClusterFacts<'_>) -> Option<String> {
    predicted_message(&cluster_checks(facts).steps)
}

fn facts<'a>(
    name: &'a str,
    module: Option<&'a Module>,
    config: Option<&'a ModuleConfig>,
    sources: Option<&'a [ModuleSource]>,
) -> ClusterFacts<'a> {
    ClusterFacts {
        name,
        module,
        config,
        sources,
        module_names: &[],
        deckhouse: &UNKNOWN_ENV,
        judge: Judge::Module,
    }
}

/// Neither edition, bundle nor Deckhouse version readable.
static UNKNOWN_ENV: DeckhouseEnv = DeckhouseEnv {
    edition: None,
    bundle: None,
    dkp_minor: None,
    allow_experimental: None,
};

#[test]
fn every_controller_message_in_order() {
    let sources = [source("test")];
    assert_eq!(
        verdict_message(&facts("x", None, None, Some(&sources))).as_deref(),
        Some(MSG_NOT_FOUND)
    );

    let embedded = module("ingress-nginx", "Embedded", &[], None);
    assert_eq!(
        verdict_message(&facts(
            "ingress-nginx",
            Some(&embedded),
            None,
            Some(&sources)
        ))
        .as_deref(),
        Some(MSG_EMBEDDED)
    );

    let disabled = module("d", "test", &["test"], Some("False"));
    let off = config("d", false);
    let verdict = cluster_checks(&facts("d", Some(&disabled), Some(&off), Some(&sources)));
    assert_eq!(
        predicted_message(&verdict.steps).as_deref(),
        Some(MSG_DISABLED)
    );
    assert!(verdict.steps.last().unwrap().fix[0].contains("\"enabled\":true"));

    let two = module("t", "", &["a", "b"], Some("True"));
    let on = config("t", true);
    let verdict = cluster_checks(&facts("t", Some(&two), Some(&on), Some(&sources)));
    assert_eq!(
        predicted_message(&verdict.steps).as_deref(),
        Some(MSG_NO_SOURCE)
    );
    assert!(verdict.steps.last().unwrap().fix[0].contains("\"source\":\"a\""));

    let lost = module("l", "gone", &["gone"], Some("True"));
    assert_eq!(
        verdict_message(&facts("l", Some(&lost), None, Some(&sources))).as_deref(),
        Some(MSG_SOURCE_NOT_FOUND)
    );

    let good = module("echo", "test", &["test"], Some("True"));
    let verdict = cluster_checks(&facts("echo", Some(&good), None, Some(&sources)));
    assert!(verdict.steps.iter().all(|s| s.state != StepState::Failed));
    assert_eq!(
        verdict.source.and_then(|s| s.metadata.name.as_deref()),
        Some("test")
    );
}

#[test]
fn bundle_default_is_a_warning_and_missing_properties_unknown() {
    let mut bundled = module("b", "test", &["test"], None);
    if let Some(p) = bundled.properties.as_mut() {
        p.accessibility = Some(ModuleAccessibility {
            editions: [(
                "_default".to_string(),
                EditionAccess {
                    available: None,
                    enabled_in_bundles: vec!["Default".into()],
                },
            )]
            .into_iter()
            .collect(),
        });
    }
    let sources = [source("test")];
    let verdict = cluster_checks(&facts("b", Some(&bundled), None, Some(&sources)));
    assert_eq!(verdict.steps[2].state, StepState::Warning);
    assert!(verdict.steps.iter().all(|s| s.state != StepState::Failed));

    // The cluster's own edition and bundle decide (§3.6), and Deckhouse before
    // 1.77 does not follow bundle defaults at all.
    let mut per_edition = module("e", "test", &["test"], None);
    if let Some(p) = per_edition.properties.as_mut() {
        let entry = |bundles: &[&str]| EditionAccess {
            available: None,
            enabled_in_bundles: bundles.iter().map(|b| b.to_string()).collect(),
        };
        p.accessibility = Some(ModuleAccessibility {
            editions: [
                ("_default".to_string(), entry(&["Default"])),
                ("ce".to_string(), entry(&["Minimal"])),
            ]
            .into_iter()
            .collect(),
        });
    }
    let env = |edition: Option<&str>, bundle: &str, minor: Option<u32>| DeckhouseEnv {
        edition: edition.map(Into::into),
        bundle: Some(bundle.into()),
        dkp_minor: minor,
        allow_experimental: Some(false),
    };
    let step = |env: &DeckhouseEnv| {
        let properties = per_edition.properties.as_ref().unwrap();
        match check_enabled("e", &per_edition, properties, None, env) {
            Ok((step, ())) => (step.state, step.summary),
            Err(step) => (step.state, step.cause.unwrap_or_default()),
        }
    };
    let (state, text) = step(&env(Some("ce"), "Default", Some(78)));
    assert_eq!(state, StepState::Failed, "{text}");
    assert!(text.contains("the Default bundle of edition ce"), "{text}");
    let (state, text) = step(&env(Some("ce"), "Minimal", Some(78)));
    assert_eq!(state, StepState::Passed, "{text}");
    assert_eq!(
        step(&env(Some("ee"), "Default", Some(78))).0,
        StepState::Passed
    );
    let (state, text) = step(&env(Some("ee"), "Default", Some(76)));
    assert_eq!(state, StepState::Failed, "{text}");
    assert!(text.contains("Deckhouse 1.76"), "{text}");
    assert_eq!(step(&env(None, "Default", None)).0, StepState::Warning);

    let not_bundled = module("n", "test", &["test"], None);
    assert_eq!(
        verdict_message(&facts("n", Some(&not_bundled), None, Some(&sources))).as_deref(),
        Some(MSG_DISABLED)
    );

    let bare = Module {
        metadata: meta("v2"),
        properties: None,
        status: None,
    };
    let verdict = cluster_checks(&facts("v2", Some(&bare), None, Some(&sources)));
    assert_eq!(verdict.steps.last().unwrap().state, StepState::Unknown);
    assert_eq!(predicted_message(&verdict.steps), None);
}

#[test]
fn unreadable_sources_are_unknown_not_failed() {
    let good = module("echo", "test", &["test"], Some("True"));
    let verdict = cluster_checks(&facts("echo", Some(&good), None, None));
    assert!(verdict.steps.iter().all(|s| s.state != StepState::Failed));
    assert_eq!(verdict.steps.last().unwrap().state, StepState::Unknown);
}

#[test]
fn did_you_mean() {
    let names = vec!["echo".to_string(), "hello-world".to_string()];
    let f = ClusterFacts {
        name: "ecoh",
        module: None,
        config: None,
        sources: None,
        module_names: &names,
        deckhouse: &UNKNOWN_ENV,
        judge: Judge::Module,
    };
    assert!(cluster_checks(&f).steps[0].fix[0].contains("did you mean echo"));
}

#[test]
fn staleness_and_sync() {
    let mut mpo = ModulePullOverride {
        api_version: None,
        kind: None,
        metadata: meta("echo"),
        spec: MpoSpec {
            image_tag: "v1".into(),
            ..Default::default()
        },
        status: None,
    };
    mpo.status = Some(MpoStatus {
        message: Some(MSG_DISABLED.into()),
        ..Default::default()
    });
    assert!(staleness(&mpo, Some(MSG_READY)).unwrap().contains("60 s"));
    assert!(staleness(&mpo, Some(MSG_DISABLED)).is_none());
    mpo.status = Some(MpoStatus {
        message: Some("Download error: 401".into()),
        ..Default::default()
    });
    assert!(staleness(&mpo, Some(MSG_DOWNLOAD_ERROR)).is_none());
    assert_eq!(SyncState::of(Some("a"), Some("a")), SyncState::InSync);
    assert_eq!(SyncState::of(Some("a"), Some("b")), SyncState::Behind);
    assert_eq!(SyncState::of(None, Some("b")), SyncState::Unknown);
}

#[test]
fn each_check_alone_on_literal_objects() {
    let module = module("echo", "test", &["test"], Some("True"));
    let properties = module.properties.as_ref().unwrap();
    assert!(check_not_embedded("echo", properties).is_ok());
    let embedded = self::module("ingress-nginx", "Embedded", &[], Some("True"));
    let step =
        check_not_embedded("ingress-nginx", embedded.properties.as_ref().unwrap()).unwrap_err();
    assert_eq!(step.controller_message.as_deref(), Some(MSG_EMBEDDED));
    let (step, active) = check_active_source("echo", properties, None).unwrap();
    assert_eq!((step.state, active), (StepState::Passed, "test"));
    let sources = [source("test")];
    assert!(check_source_exists("echo", "test", Some(&sources)).is_ok());
    let gone = check_source_exists("echo", "lost", Some(&sources)).unwrap_err();
    assert_eq!(
        gone.controller_message.as_deref(),
        Some(MSG_SOURCE_NOT_FOUND)
    );
    let unreadable = check_source_exists("echo", "test", None).unwrap_err();
    assert_eq!(unreadable.state, StepState::Unknown);
}

/// Gen A (§3.3): spec.source and the registry decide; the module's own state is
/// only a warning.
#[test]
fn gen_a_judges_by_spec_source_and_warns_about_the_module() {
    let sources = [source("test"), source("other")];
    let disabled = module("echo", "other", &["other"], Some("False"));
    let off = config("echo", false);
    let mut f = facts("echo", Some(&disabled), Some(&off), Some(&sources));
    f.judge = Judge::SpecSource(Some("test"));
    let verdict = cluster_checks(&f);
    assert!(verdict.steps.iter().all(|s| s.state != StepState::Failed));
    let enabled = verdict
        .steps
        .iter()
        .find(|s| s.id == StepId::Enabled)
        .unwrap();
    assert_eq!(enabled.state, StepState::Warning);
    assert!(enabled.cause.as_deref().unwrap().contains("deploys anyway"));
    assert_eq!(
        verdict.source.and_then(|s| s.metadata.name.as_deref()),
        Some("test")
    );
    assert_eq!(
        predicted_message(&verdict.steps).as_deref(),
        Some(MSG_READY)
    );

    f.judge = Judge::SpecSource(Some("gone"));
    assert_eq!(
        verdict_message(&f).as_deref(),
        Some("ModuleSource \"gone\" not found")
    );
    // Before the override exists, create names the module's active source.
    f.judge = Judge::SpecSource(None);
    assert_eq!(
        cluster_checks(&f)
            .source
            .and_then(|s| s.metadata.name.as_deref()),
        Some("other")
    );
    // A missing Module does not stop gen A either.
    let mut missing = facts("ghost", None, None, Some(&sources));
    missing.judge = Judge::SpecSource(Some("test"));
    assert_eq!(verdict_message(&missing).as_deref(), Some(MSG_READY));
}

#[test]
fn enabling_an_experimental_module_first_allows_experimental_modules() {
    let mut module = module("exp", "test", &["test"], Some("False"));
    if let Some(p) = module.properties.as_mut() {
        p.stage = Some("Experimental".into());
    }
    let off = config("exp", false);
    let env = |allow: Option<bool>| DeckhouseEnv {
        allow_experimental: allow,
        ..DeckhouseEnv::default()
    };
    let properties = module.properties.as_ref().unwrap();
    for allow in [None, Some(false)] {
        let step = check_enabled("exp", &module, properties, Some(&off), &env(allow)).unwrap_err();
        assert!(
            step.fix[0].starts_with(ALLOW_EXPERIMENTAL_FIX),
            "{:?}",
            step.fix
        );
        assert!(step.fix[1].contains("\"enabled\":true"), "{:?}", step.fix);
    }
    let step = check_enabled("exp", &module, properties, Some(&off), &env(Some(true))).unwrap_err();
    assert!(step.fix[0].contains("\"enabled\":true"), "{:?}", step.fix);
}

#[test]
fn a_module_config_without_enabled_is_disabled_with_the_fix() {
    let module = module("echo", "test", &["test"], Some("False"));
    let mut config = config("echo", true);
    config.spec.enabled = None;
    let step = check_enabled(
        "echo",
        &module,
        module.properties.as_ref().unwrap(),
        Some(&config),
        &UNKNOWN_ENV,
    )
    .unwrap_err();
    assert_eq!(step.controller_message.as_deref(), Some(MSG_DISABLED));
    assert!(step.fix[0].contains("\"enabled\":true"), "{:?}", step.fix);
}

#[test]
fn the_override_step_names_what_the_controller_reports() {
    let mut mpo = ModulePullOverride {
        metadata: meta("echo"),
        spec: MpoSpec {
            image_tag: "pr1".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    mpo.status = Some(MpoStatus {
        message: Some("Validation error: bad values".into()),
        ..Default::default()
    });
    let step = override_step("echo", &mpo, SyncState::Unknown, None, None);
    assert_eq!(step.state, StepState::Failed);
    assert!(step.fix[0].starts_with("kubectl mpo registry files echo:pr1"));
    mpo.status = Some(MpoStatus {
        message: Some("Ready".into()),
        image_digest: Some("sha256:a".into()),
        ..Default::default()
    });
    let behind = override_step("echo", &mpo, SyncState::Behind, Some("sha256:b"), None);
    assert_eq!(behind.state, StepState::Warning);
    assert!(behind.summary.contains("sha256:b"));
}

#[test]
fn gen_a_success_is_an_empty_message_with_a_digest() {
    let mut mpo = ModulePullOverride {
        status: Some(MpoStatus {
            message: Some(String::new()),
            image_digest: Some("sha256:a".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(is_ready(&mpo));
    mpo.status = Some(MpoStatus {
        message: Some(String::new()),
        ..Default::default()
    });
    assert!(!is_ready(&mpo));
}
