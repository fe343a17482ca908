//! `kubectl mpo create MODULE --tag TAG`

use crate::app::diagnose;
use crate::app::history;
use crate::app::overrides::{self, CLIENT_DRY_RUN, Overrides, dry_run_note, name_of, print_object};
use crate::app::sources;
use crate::app::wait::{self, deleted_while_waiting, has_verdict};
use crate::app::{Ctx, Outcome};
use crate::cli::{CreateArgs, DryRun};
use crate::deckhouse::resources::{ModulePullOverride, MpoSpec, MpoVersion};
use crate::error::{Error, Result};
use crate::output::To;

pub async fn run(ctx: &Ctx, args: CreateArgs) -> Result<Outcome> {
    let module = args.module.to_string();
    if args.tag.is_none() && !ctx.printer.interactive() {
        return Err(
            Error::usage("--tag is required when not on a terminal").with_hint(format!(
                "list the module's tags with: kubectl mpo registry tags {module}"
            )),
        );
    }

    let overrides = Overrides::connect(ctx)
        .await?
        .with_field_manager(&args.field_manager);
    if overrides.get(&module).await?.is_some() {
        return Err(overrides::already_exists(&module));
    }

    let tag = match &args.tag {
        Some(tag) => tag.to_string(),
        None => sources::pick_tag(ctx, &overrides, &module, None).await?,
    };

    let checks = diagnose::preflight(
        ctx,
        &overrides,
        &module,
        &tag,
        true,
        !args.skip_image_checks,
        args.source.as_deref(),
    )
    .await?;
    if !checks.ok {
        if args.force {
            ctx.printer.warn("creating anyway (--force): the override will not become Ready until the problem above is fixed");
        } else {
            return Err(Error::condition(format!("the override {module:?} could not become Ready; nothing was created"))
                .with_hint(format!("fix the problem above, or create it anyway with: kubectl mpo create {module} --tag {tag} --force")));
        }
    }

    let source = match overrides.version {
        MpoVersion::V1alpha1 => Some(
            match args
                .source
                .clone()
                .map(String::from)
                .or(checks.source.clone())
            {
                Some(source) => source,
                None => {
                    return Err(Error::usage("this cluster serves ModulePullOverride v1alpha1 only, which needs the ModuleSource name")
                    .with_hint(format!("pass --source NAME (kubectl get modulesources) to kubectl mpo create {module}")));
                }
            },
        ),
        MpoVersion::V1alpha2 => {
            if args.source.is_some() {
                ctx.printer.warn("--source is ignored: this cluster serves ModulePullOverride v1alpha2, where the Module chooses its source");
            }
            None
        }
    };
    let object = ModulePullOverride {
        api_version: Some(overrides.version.api_version()),
        kind: Some("ModulePullOverride".into()),
        metadata: kube::api::ObjectMeta {
            name: Some(module.clone()),
            annotations: Some(
                [(
                    history::HISTORY_ANNOTATION.to_string(),
                    history::record(
                        None,
                        &tag,
                        checks.registry_digest.as_deref(),
                        "create",
                        &jiff::Timestamp::now().to_string(),
                    ),
                )]
                .into(),
            ),
            ..Default::default()
        },
        spec: MpoSpec {
            image_tag: tag.clone(),
            // Sent explicitly: one CRD generation marks both required without defaults.
            scan_interval: Some(args.scan_interval.text.clone()),
            rollback: Some(args.rollback),
            source,
        },
        status: None,
    };

    if args.dry_run == DryRun::Client {
        match args.output {
            Some(format) => print_object(ctx, &object, overrides.version, format)?,
            None => ctx.printer.yaml(&object)?,
        }
        ctx.printer.note(CLIENT_DRY_RUN);
        return Ok(Outcome::Success);
    }

    let created = overrides
        .create(&object, args.dry_run == DryRun::Server)
        .await?;
    let verdict_to = match args.output {
        Some(format) => {
            print_object(ctx, &created, overrides.version, format)?;
            To::Err
        }
        None => {
            let digest = checks
                .registry_digest
                .as_deref()
                .map(|d| format!(", registry digest {}", ctx.printer.digest_on(To::Out, d)))
                .unwrap_or_default();
            ctx.printer.line(format!(
                "{} created{}: tag {tag}{digest}",
                name_of(&module),
                dry_run_note(args.dry_run)
            ));
            To::Out
        }
    };
    if let Some(plan) = args.wait.plan().filter(|_| args.dry_run == DryRun::None) {
        let started = tokio::time::Instant::now();
        crate::app::health::announce_checking(ctx, &module, &plan);
        let settled = wait::wait_for(
            ctx,
            &overrides,
            &module,
            plan.timeout,
            "controller verdict",
            has_verdict,
        )
        .await?
        .ok_or_else(|| deleted_while_waiting(&module))?;
        // With --force the failing checks are above already; they are not repeated.
        return wait::report_and_follow_after_checks(
            ctx, &overrides, None, &settled, verdict_to, &plan, started, !checks.ok,
        )
        .await;
    }
    Ok(Outcome::Success)
}
