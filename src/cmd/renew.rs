//! `kubectl mpo renew MODULE... | --all [--wait]`
//!
//! Sets both renew annotations (deckhouse-facts §3): `modules.deckhouse.io/renew: "true"`
//! forces a redeploy on controllers since PR #22716, and a fresh value of the bare
//! `renew` annotation is an annotation change, which is what wakes older controllers.

use std::time::Duration;

use futures::future::join_all;
use serde_json::json;

use super::shared::{self, Overrides, Seen};
use super::{Ctx, Outcome, status};
use crate::cli::RenewArgs;
use crate::deckhouse::resources::{LEGACY_RENEW_ANNOTATION, ModulePullOverride, RENEW_ANNOTATION};
use crate::error::{Error, Kind, Result};
use crate::output::Tone;
use crate::validate;

/// How long to wait for a visible reaction before concluding that an older controller
/// re-checked an unchanged digest (which it does without writing anything).
const QUIET_RECHECK_GRACE: Duration = Duration::from_secs(20);

pub async fn run(ctx: &Ctx, args: RenewArgs) -> Result<Outcome> {
    for module in &args.modules {
        validate::module_name(module)?;
    }
    let timeout = validate::duration_flag("timeout", &args.wait.timeout, false)?;
    let overrides = Overrides::connect(ctx).await?;
    let targets: Vec<ModulePullOverride> = if args.all {
        let list = overrides
            .api
            .list(&Default::default())
            .await
            .map_err(|err| overrides.cluster.api_error(err, "list", shared::RESOURCE))?;
        if list.items.is_empty() {
            ctx.printer.note("no modulepulloverrides to renew");
            return Ok(Outcome::Success);
        }
        list.items
    } else {
        let found = join_all(args.modules.iter().map(|m| overrides.require(m))).await;
        found.into_iter().collect::<Result<_>>()?
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
    // With --wait, what the registry holds now tells a re-check of an unchanged digest
    // from a deploy still to come; asked while the patches are sent.
    let lookups = async {
        if args.wait.wait {
            status::registry_digests(&overrides, &targets).await
        } else {
            vec![None; targets.len()]
        }
    };
    let (renewed, expected) = tokio::join!(patches, lookups);
    for result in &renewed {
        match result {
            Ok(name) => ctx
                .printer
                .line(format!("modulepulloverride/{name} renew requested")),
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
    let old_status = before.status.clone().unwrap_or_default();
    let new_image_expected = expected
        .as_deref()
        .is_some_and(|digest| Some(digest) != old_status.image_digest.as_deref());
    let reacted = |seen: Seen<'_>| match seen {
        Seen::Present(object) => {
            let status = object.status.clone().unwrap_or_default();
            let changed = if new_image_expected {
                // Only the new image, or a new problem, is the answer.
                status.image_digest != old_status.image_digest
                    || (status.message != old_status.message && !shared::is_ready(object))
            } else {
                status.updated_at != old_status.updated_at
                    || status.image_digest != old_status.image_digest
                    || status.message != old_status.message
            };
            // The renew annotation is removed once a forced redeploy has finished.
            let consumed = !object
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(RENEW_ANNOTATION));
            (changed || (consumed && !new_image_expected)).then(|| Some(object.clone()))
        }
        Seen::Gone => Some(None),
    };
    let first_wait = timeout.min(QUIET_RECHECK_GRACE);
    let settled = match shared::wait_for(
        ctx,
        overrides,
        &name,
        first_wait,
        "controller re-check",
        reacted,
    )
    .await
    {
        Ok(found) => found,
        Err(err) if err.kind == Kind::Condition => {
            // No visible reaction: an older controller re-checks an unchanged digest
            // without writing status. If it is Ready, that is the answer.
            let current = overrides.require(&name).await?;
            if !new_image_expected
                && shared::is_ready(&current)
                && current.image_digest() == old_status.image_digest.as_deref()
            {
                Some(current)
            } else if timeout > first_wait {
                shared::wait_for(
                    ctx,
                    overrides,
                    &name,
                    timeout - first_wait,
                    "controller re-check",
                    reacted,
                )
                .await?
            } else {
                return Err(err);
            }
        }
        Err(err) => return Err(err),
    };
    let Some(after) = settled else {
        return Err(Error::condition(format!(
            "modulepulloverride {name:?} was deleted while waiting"
        )));
    };
    if !shared::is_ready(&after) {
        return super::create::report_verdict(ctx, overrides, &name, &after).await;
    }
    let old = old_status.image_digest.as_deref().unwrap_or("<none>");
    let new = after.image_digest().unwrap_or("<none>");
    if old == new {
        ctx.printer.line(format!(
            "{name}: {new} ({})",
            ctx.printer.paint("unchanged", Tone::Dim)
        ));
    } else {
        ctx.printer.line(format!(
            "{name}: {old} -> {} ",
            ctx.printer.paint(new, Tone::Good)
        ));
    }
    Ok(Outcome::Success)
}
