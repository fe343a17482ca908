//! `kubectl mpo delete MODULE... | --all [--rollback] [--yes] [--wait] [--dry-run] [-o name]`

use kube::api::{DeleteParams, ListParams};
use serde_json::json;

use crate::app::overrides::{CLIENT_DRY_RUN, Overrides, RESOURCE, dry_run_note, name_of};
use crate::app::wait;
use crate::app::{Ctx, Outcome};
use crate::cli::{DeleteArgs, DryRun, NameFormat};
use crate::deckhouse::resources::ModulePullOverride;
use crate::error::{Error, Result};
use crate::output::{To, Tone};
use kube::runtime::wait::conditions;

pub async fn run(ctx: &Ctx, args: DeleteArgs) -> Result<Outcome> {
    let overrides = Overrides::connect(ctx).await?;
    let (targets, missing) = if args.all {
        (overrides.list(&[]).await?, Vec::new())
    } else {
        let mut names = args.modules.clone();
        names.dedup();
        overrides.list_found(&names).await?
    };
    // Missing names are reported after the others were handled, as kubectl does; with
    // --ignore-not-found they are not errors.
    let missing = if args.ignore_not_found {
        Vec::new()
    } else {
        missing
    };
    if targets.is_empty() && args.all {
        ctx.printer.note(format!(
            "No ModulePullOverrides on context {:?}; nothing to delete.",
            overrides.cluster.context
        ));
    }

    let mut plans = Vec::with_capacity(targets.len());
    for current in targets {
        let name = current.metadata.name.clone().unwrap_or_default();
        let last_release = last_deployed_release(&overrides, &name).await;
        let rollback = args.rollback || current.spec.rollback.unwrap_or(false);
        ctx.printer
            .note(consequence(&current, rollback, last_release.as_deref()));
        plans.push((name, current));
    }

    if !args.yes && args.dry_run == DryRun::None && !plans.is_empty() {
        let names: Vec<&str> = plans.iter().map(|(name, _)| name.as_str()).collect();
        let listed = names.join(" ");
        let question = match names.as_slice() {
            [one] => format!("Delete modulepulloverride {one}?"),
            many => format!("Delete {} modulepulloverrides ({listed})?", many.len()),
        };
        let refusal = || {
            Error::usage(format!("refusing to delete {listed} without confirmation")).with_hint(
                format!(
                    "pass --yes: kubectl mpo delete {} --yes",
                    if args.all { "--all" } else { listed.as_str() }
                ),
            )
        };
        if !ctx.printer.ask(&question, refusal)? {
            ctx.printer.note("nothing was deleted");
            return Ok(Outcome::Success);
        }
    }

    for (name, current) in &plans {
        if args.dry_run != DryRun::Client {
            delete_one(
                &overrides,
                name,
                current,
                args.rollback,
                args.dry_run == DryRun::Server,
            )
            .await?;
        }
        match args.output {
            Some(NameFormat::Name) => ctx.printer.line(name_of(name)),
            None => ctx.printer.line(format!(
                "{} deleted{}",
                name_of(name),
                dry_run_note(args.dry_run)
            )),
        }
    }
    if args.dry_run == DryRun::Client && !plans.is_empty() {
        ctx.printer.note(CLIENT_DRY_RUN);
    }
    if args.wait.wait && args.dry_run == DryRun::None {
        for (name, current) in &plans {
            // Gone, or gone and made again under the same name (another uid), as
            // kubectl wait --for=delete counts it.
            let uid = current.metadata.uid.clone().unwrap_or_default();
            wait::wait_for(
                ctx,
                &overrides,
                name,
                args.wait.timeout,
                "finalizer removal",
                conditions::is_deleted(&uid),
            )
            .await?;
            let to = if args.output.is_some() {
                To::Err
            } else {
                To::Out
            };
            ctx.printer.line_to(
                to,
                format!(
                    "{} the controller removed its finalizer; {name} is gone",
                    ctx.printer.paint("done:", Tone::Good),
                ),
            );
        }
    }
    match report_missing(ctx, missing) {
        Some(last) => Err(last),
        None => Ok(Outcome::Success),
    }
}

/// Prints every NotFound error but the last, which is returned to end the command
/// (exit 1), as `kubectl get a b c` reports each missing name.
pub fn report_missing(ctx: &Ctx, mut missing: Vec<Error>) -> Option<Error> {
    let last = missing.pop()?;
    for err in &missing {
        ctx.printer.error(err);
    }
    Some(last)
}

/// Sets `spec.rollback` first when asked (the controller reads it when it handles the
/// deletion), then deletes; an override already gone counts as deleted.
async fn delete_one(
    overrides: &Overrides,
    name: &str,
    current: &ModulePullOverride,
    rollback: bool,
    dry_run: bool,
) -> Result<()> {
    if rollback && current.spec.rollback != Some(true) {
        overrides
            .merge_patch(
                name,
                &json!({ "spec": { "rollback": true } }),
                dry_run,
                "patch",
            )
            .await?;
    }
    let params = DeleteParams {
        dry_run,
        ..DeleteParams::default()
    };
    match overrides.api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(overrides.cluster.api_error(err, "delete", RESOURCE)),
    }
}

/// What deleting does to the running build, in the user's terms.
fn consequence(current: &ModulePullOverride, rollback: bool, last_release: Option<&str>) -> String {
    let name = current.metadata.name.as_deref().unwrap_or_default();
    let tag = &current.spec.image_tag;
    if rollback {
        match last_release {
            Some(version) => format!(
                "Deleting {name} uninstalls the dev build ({tag}) and brings back the last deployed release {version}."
            ),
            None => format!(
                "Deleting {name} uninstalls the dev build ({tag}); no deployed ModuleRelease was found to return to, so the module waits for its update policy."
            ),
        }
    } else if let Some(digest) = current.image_digest() {
        // What runs is the deployed digest; the tag in the spec may never have run
        // (a tag the controller refused leaves the earlier build running).
        let what = if crate::deckhouse::checks::is_ready(current) {
            format!(
                "the dev build ({tag}, {})",
                crate::output::short_digest(digest)
            )
        } else {
            format!(
                "the dev build it last deployed ({}; tag {tag} was not deployed)",
                crate::output::short_digest(digest)
            )
        };
        format!(
            "Deleting {name} keeps {what} running until a ModuleRelease from the module's update policy replaces it (use --rollback to return to the last release now)."
        )
    } else {
        format!(
            "Deleting {name} changes nothing that runs: no build of this override was deployed (tag {tag} never ran)."
        )
    }
}

/// The version of the module's last Deployed ModuleRelease, if it can be read.
async fn last_deployed_release(overrides: &Overrides, module: &str) -> Option<String> {
    let list = overrides
        .cluster
        .module_releases()
        .list(&ListParams::default().labels(&format!("module={module}")))
        .await
        .ok()?;
    list.items
        .into_iter()
        .filter(|r| r.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Deployed"))
        .map(|r| r.spec.version)
        .next_back()
}
