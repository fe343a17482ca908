//! `kubectl mpo renew MODULE... | --all [--wait]`
//!
//! Sets both renew annotations (docs/deckhouse-facts.md §3): `modules.deckhouse.io/renew: "true"`
//! forces a redeploy on controllers since PR #22716, and a fresh value of the bare
//! `renew` annotation is an annotation change, which is what wakes older controllers.

use std::time::Duration;

use futures::future::join_all;
use serde_json::json;

use crate::app::overrides::{Overrides, name_of};
use crate::app::sources::registry_digests;
use crate::app::wait::{self, deleted_while_waiting, renew_reacted};
use crate::app::{Ctx, Outcome};
use crate::cli::RenewArgs;
use crate::deckhouse::checks::is_ready;
use crate::deckhouse::resources::{LEGACY_RENEW_ANNOTATION, ModulePullOverride, RENEW_ANNOTATION};
use crate::error::{Error, Kind, Result};
use crate::output::{To, Tone};

/// How long to wait for a visible reaction before concluding that an older controller
/// re-checked an unchanged digest (which it does without writing anything).
const QUIET_RECHECK_GRACE: Duration = Duration::from_secs(20);

pub async fn run(ctx: &Ctx, args: RenewArgs) -> Result<Outcome> {
    let timeout = args.wait.timeout;
    let overrides = Overrides::connect(ctx).await?;
    let targets: Vec<ModulePullOverride> = if args.all {
        let all = overrides.list(&[]).await?;
        if all.is_empty() {
            ctx.printer.note("no modulepulloverrides to renew");
            return Ok(Outcome::Success);
        }
        all
    } else {
        overrides.list(&args.modules).await?
    };

    let stamp = jiff::Timestamp::now().to_string();
    let patch = json!({ "metadata": { "annotations": {
        RENEW_ANNOTATION: "true",
        LEGACY_RENEW_ANNOTATION: stamp,
    }}});
    let patches = join_all(targets.iter().map(|target| async {
        let name = target.metadata.name.clone().unwrap_or_default();
        overrides
            .merge_patch(&name, &patch, false, "patch")
            .await
            .map(|_| name)
    }));
    // With --wait, the registry's digest now says whether the controller must deploy
    // a new image (wait for it) or only re-check the one it runs; asked while the
    // patches are sent.
    let lookups = async {
        if args.wait.wait {
            registry_digests(&overrides, &targets).await
        } else {
            vec![None; targets.len()]
        }
    };
    let (renewed, expected) = tokio::join!(patches, lookups);
    for result in &renewed {
        match result {
            Ok(name) => ctx
                .printer
                .line(format!("{} renew requested", name_of(name))),
            Err(err) => ctx.printer.error(err),
        }
    }
    if let Some(Err(err)) = renewed.iter().find(|r| r.is_err()) {
        return Err(Error::new(
            err.kind,
            "not every override could be renewed (see above)",
        ));
    }
    if !args.wait.wait {
        return Ok(Outcome::Success);
    }

    let results = join_all(
        targets
            .iter()
            .zip(expected)
            .map(|(before, expected)| wait_one(ctx, &overrides, before, expected, timeout)),
    )
    .await;
    let mut outcome = Outcome::Success;
    for result in results {
        match result {
            Ok(Outcome::Success) => {}
            Ok(Outcome::ConditionFailed) => outcome = Outcome::ConditionFailed,
            Err(err) if err.kind == Kind::Condition => {
                ctx.printer.error(&err);
                outcome = Outcome::ConditionFailed;
            }
            Err(err) => return Err(err),
        }
    }
    Ok(outcome)
}

/// Waits for one override's controller reaction and reports old and new digest.
/// `expected`: the registry digest now; when it differs from the deployed one, the
/// controller must deploy it, so the wait does not settle for "unchanged".
async fn wait_one(
    ctx: &Ctx,
    overrides: &Overrides,
    before: &ModulePullOverride,
    expected: Option<String>,
    timeout: Duration,
) -> Result<Outcome> {
    let name = before.metadata.name.clone().unwrap_or_default();
    let old_digest = before.image_digest().map(str::to_string);
    let new_image_expected = expected
        .as_deref()
        .is_some_and(|digest| Some(digest) != old_digest.as_deref());
    let first_wait = timeout.min(QUIET_RECHECK_GRACE);
    let waiting_for = "controller re-check";
    let settled = match wait::wait_for(
        ctx,
        overrides,
        &name,
        first_wait,
        waiting_for,
        renew_reacted(before, new_image_expected),
    )
    .await
    {
        Ok(found) => found,
        Err(err) if err.kind == Kind::Condition => {
            // No visible reaction: an older controller re-checks an unchanged digest
            // without writing status. If it is Ready, that is the answer.
            let current = overrides.require(&name).await?;
            if !new_image_expected
                && is_ready(&current)
                && current.image_digest() == old_digest.as_deref()
            {
                Some(current)
            } else if timeout > first_wait {
                wait::wait_for(
                    ctx,
                    overrides,
                    &name,
                    timeout - first_wait,
                    waiting_for,
                    renew_reacted(before, new_image_expected),
                )
                .await?
            } else {
                return Err(err);
            }
        }
        Err(err) => return Err(err),
    };
    let after = settled.ok_or_else(|| deleted_while_waiting(&name))?;
    if !is_ready(&after) {
        return wait::report_verdict(ctx, overrides, &name, &after, To::Out).await;
    }
    let old = old_digest.as_deref().map_or_else(
        || "<none>".to_string(),
        |d| ctx.printer.digest_on(To::Out, d),
    );
    let new = after.image_digest().map_or_else(
        || "<none>".to_string(),
        |d| ctx.printer.digest_on(To::Out, d),
    );
    if old == new {
        ctx.printer.line(format!(
            "{name}: {new} ({})",
            ctx.printer.paint("unchanged", Tone::Dim)
        ));
    } else {
        ctx.printer.line(format!(
            "{name}: {old} -> {}",
            ctx.printer.paint(&new, Tone::Good)
        ));
    }
    Ok(Outcome::Success)
}
