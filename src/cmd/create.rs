//! `kubectl mpo create MODULE --tag TAG`

use std::time::Duration;

use kube::api::PostParams;

use super::shared::{self, FIELD_MANAGER, Overrides, RESOURCE, Seen};
use super::{Ctx, Outcome, preflight};
use crate::cli::{CreateArgs, DryRun};
use crate::deckhouse::resources::{ModulePullOverride, MpoSpec, MpoVersion};
use crate::error::{Error, Result};
use crate::output::Tone;
use crate::validate;

pub async fn run(ctx: &Ctx, args: CreateArgs) -> Result<Outcome> {
    // Everything the user typed is checked before the first request.
    validate::module_name(&args.module)?;
    if let Some(tag) = &args.tag {
        validate::image_tag(tag)?;
    }
    validate::scan_interval(&args.scan_interval)?;
    if let Some(source) = &args.source {
        validate::module_name(source).map_err(|err| err.context("--source"))?;
    }
    let timeout = validate::duration_flag("timeout", &args.wait.timeout, false)?;
    if args.tag.is_none() && !ctx.printer.interactive() {
        return Err(
            Error::usage("--tag is required when not on a terminal").with_hint(format!(
                "list the module's tags with: kubectl mpo registry tags {}",
                args.module
            )),
        );
    }

    let overrides = Overrides::connect(ctx).await?;
    if overrides.get(&args.module).await?.is_some() {
        return Err(Error::usage(format!("modulepulloverride {:?} already exists", args.module)).with_hint(format!(
            "change it with: kubectl mpo edit {} --tag TAG (or delete it first: kubectl mpo delete {})",
            args.module, args.module
        )));
    }

    let tag = match &args.tag {
        Some(tag) => tag.clone(),
        None => preflight::pick_tag(ctx, &overrides, &args.module).await?,
    };

    let checks = preflight::run(ctx, &overrides, &args.module, &tag).await?;
    if !checks.ok {
        if args.force {
            ctx.printer.warn("creating anyway (--force): the override will not become Ready until the problem above is fixed");
        } else {
            return Err(Error::condition(format!("the override {:?} could not become Ready; nothing was created", args.module))
                .with_hint(format!("fix the problem above, or create it anyway with: kubectl mpo create {} --tag {tag} --force", args.module)));
        }
    }

    let source = match overrides.version {
        MpoVersion::V1alpha1 => Some(match args.source.clone().or(checks.source.clone()) {
            Some(source) => source,
            None => {
                return Err(Error::usage("this cluster serves ModulePullOverride v1alpha1 only, which needs the ModuleSource name")
                    .with_hint(format!("pass --source NAME (kubectl get modulesources) to kubectl mpo create {}", args.module)));
            }
        }),
        MpoVersion::V1alpha2 => None,
    };
    let object = ModulePullOverride {
        api_version: Some(overrides.version.api_version()),
        kind: Some("ModulePullOverride".into()),
        metadata: kube::api::ObjectMeta {
            name: Some(args.module.clone()),
            ..Default::default()
        },
        spec: MpoSpec {
            image_tag: tag.clone(),
            // Sent explicitly: one CRD generation marks both required without defaults.
            scan_interval: Some(args.scan_interval.clone()),
            rollback: Some(args.rollback),
            source,
        },
        status: None,
    };

    if args.dry_run == DryRun::Client {
        if !shared::print_object(ctx, &object, overrides.version, args.output)? {
            ctx.printer.yaml(&object)?;
        }
        ctx.printer
            .note("(dry run: nothing was sent to the cluster)");
        return Ok(Outcome::Success);
    }

    let params = PostParams {
        dry_run: args.dry_run == DryRun::Server,
        field_manager: Some(FIELD_MANAGER.into()),
    };
    let created = overrides
        .api
        .create(&params, &object)
        .await
        .map_err(|err| match err {
            kube::Error::Api(status) if status.code == 409 => Error::usage(format!(
                "modulepulloverride {:?} already exists",
                args.module
            ))
            .with_hint(format!(
                "change it with: kubectl mpo edit {} --tag TAG",
                args.module
            )),
            other => overrides.cluster.api_error(other, "create", RESOURCE),
        })?;

    let dry = if args.dry_run == DryRun::Server {
        " (server dry run)"
    } else {
        ""
    };
    if !shared::print_object(ctx, &created, overrides.version, args.output)? {
        let digest = checks
            .registry_digest
            .as_deref()
            .map(|d| format!(", registry digest {d}"))
            .unwrap_or_default();
        ctx.printer.line(format!(
            "modulepulloverride/{} created{dry}: tag {tag}{digest}",
            args.module
        ));
    }
    if args.wait.wait && args.dry_run == DryRun::None {
        return wait_until_settled(ctx, &overrides, &args.module, timeout).await;
    }
    Ok(Outcome::Success)
}

/// Waits for the controller's first verdict on a new override: Ready (exit 0) or a
/// conflict message (exit 1, explained).
pub async fn wait_until_settled(
    ctx: &Ctx,
    overrides: &Overrides,
    name: &str,
    timeout: Duration,
) -> Result<Outcome> {
    let settled = shared::wait_for(
        ctx,
        overrides,
        name,
        timeout,
        "controller verdict",
        |seen| match seen {
            Seen::Present(object) => object
                .message()
                .filter(|m| !m.is_empty())
                .map(|_| Some(object.clone())),
            Seen::Gone => Some(None),
        },
    )
    .await?;
    let Some(object) = settled else {
        return Err(Error::condition(format!(
            "modulepulloverride {name:?} was deleted while waiting"
        )));
    };
    report_verdict(ctx, overrides, name, &object).await
}

/// Prints Ready with the digest, or the conflict with its explanation.
pub async fn report_verdict(
    ctx: &Ctx,
    overrides: &Overrides,
    name: &str,
    object: &ModulePullOverride,
) -> Result<Outcome> {
    let message = object.message().unwrap_or_default();
    if shared::is_ready(object) {
        let digest = object.image_digest().unwrap_or("<none>");
        ctx.printer.line(format!(
            "{} {name} runs {}@{digest}",
            ctx.printer.paint("Ready:", Tone::Good),
            object.spec.image_tag
        ));
        return Ok(Outcome::Success);
    }
    ctx.printer.line(format!(
        "{} {name}: {message}",
        ctx.printer.paint("Conflict:", Tone::Bad)
    ));
    preflight::explain_after_conflict(ctx, overrides, name).await;
    Ok(Outcome::ConditionFailed)
}
