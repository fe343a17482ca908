//! `kubectl mpo renew MODULE... | --all [--check-only] [--yes] [--wait]`
//!
//! Sets the renew annotations (docs/deckhouse-facts.md §3, docs/deckhouse-real.md §3.2):
//! a fresh value of the bare `renew` annotation is an annotation change, which wakes
//! every controller for a re-check; `modules.deckhouse.io/renew: "true"` forces a
//! redeploy and a Deckhouse restart on gen D, so it is set only where the generation
//! may be D (with a warning for unchanged images, and a question, or `--yes`, for
//! several), never with `--check-only`, and removed on gen A and B, which never remove
//! it themselves.

use std::time::Duration;

use futures::future::join_all;
use serde_json::json;

use crate::app::diagnose;
use crate::app::history;
use crate::app::overrides::{Changes, Overrides, Update, name_of};
use crate::app::report::print_steps;
use crate::app::sources::registry_digests;
use crate::app::wait::{self, deleted_while_waiting, renew_reacted};
use crate::app::{Ctx, Outcome};
use crate::cli::RenewArgs;
use crate::deckhouse::checks::{StepState, is_ready};
use crate::deckhouse::resources::{LEGACY_RENEW_ANNOTATION, ModulePullOverride, RENEW_ANNOTATION};
use crate::error::{Error, Kind, Result};
use crate::output::{To, Tone};

/// How long to wait for a visible reaction before concluding that an older controller
/// re-checked an unchanged digest (which it does without writing anything).
const QUIET_RECHECK_GRACE: Duration = Duration::from_secs(20);

pub async fn run(ctx: &Ctx, args: RenewArgs) -> Result<Outcome> {
    let timeout = args.wait.timeout;
    let follow = args.wait.wait_for == crate::cli::WaitFor::Module;
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
    // The registry's digest now says whether the controller will deploy a new image
    // (then the image is checked first, as create and edit do) or only re-check the
    // one it runs; with --wait it also says what to wait for.
    let (expected, controller) = tokio::join!(
        registry_digests(&overrides, &targets),
        crate::app::generation::detect(&overrides.cluster)
    );
    // --check-only never sets the modern key; it still removes a stale one on A and B.
    let may_be_d = modern_key_forces_redeploy(&controller.generation);
    let forces_redeploy = may_be_d && !args.check_only;
    let mut refused = vec![false; targets.len()];
    for (index, (target, expected)) in targets.iter().zip(&expected).enumerate() {
        let Some(expected) = expected else { continue };
        if Some(expected.as_str()) == target.image_digest() {
            continue;
        }
        let name = target.metadata.name.clone().unwrap_or_default();
        let checks = diagnose::preflight(
            ctx,
            &overrides,
            &name,
            &target.spec.image_tag,
            false,
            true,
            target.spec.source.as_deref(),
        )
        .await?;
        if checks.image_failed && !args.force {
            ctx.printer.error(
                &Error::condition(format!(
                    "the new image of {name}:{} does not fit this cluster (see above); not renewed",
                    target.spec.image_tag
                ))
                .with_hint(format!(
                    "fix the problem above, or renew anyway with: kubectl mpo renew {name} --force"
                )),
            );
            refused[index] = true;
        }
    }
    // docs/deckhouse-real.md §3.2: where the controller may be gen D, the modern key
    // redeploys even an unchanged image and restarts Deckhouse, one override at a time.
    let unchanged = targets
        .iter()
        .zip(&expected)
        .zip(&refused)
        .filter(|((target, expected), refused)| {
            !**refused
                && expected
                    .as_deref()
                    .is_none_or(|e| Some(e) == target.image_digest())
        })
        .count();
    if forces_redeploy && unchanged > 0 {
        ctx.printer.warn(format!(
            "controller generation {}: on gen D (Deckhouse with PR #22716) renewing {unchanged} override(s) whose image did not change redeploys each and restarts Deckhouse each time, one after the other",
            controller.generation
        ));
        // Several restarts in a row are asked for, as deletions are.
        if unchanged > 1 && !args.yes {
            let again = if args.all {
                "--all".to_string()
            } else {
                targets
                    .iter()
                    .filter_map(|t| t.metadata.name.as_deref())
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let question = format!(
                "Redeploy {unchanged} overrides whose image did not change (a Deckhouse restart each on gen D)?"
            );
            let refusal = || {
                Error::usage(format!(
                    "refusing to redeploy {unchanged} unchanged overrides without confirmation"
                ))
                .with_hint(format!(
                    "pass --yes to redeploy them (kubectl mpo renew {again} --yes), or only re-check: kubectl mpo renew {again} --check-only"
                ))
            };
            if !ctx.printer.ask(&question, refusal)? {
                ctx.printer.note(format!(
                    "nothing was renewed; to only re-check: kubectl mpo renew {again} --check-only"
                ));
                return Ok(Outcome::Success);
            }
        }
    }
    let patches = join_all(
        targets
            .iter()
            .zip(&expected)
            .zip(&refused)
            .filter(|(_, refused)| !**refused)
            .map(|((target, expected), _)| {
                let stamp = stamp.clone();
                let overrides = &overrides;
                async move {
                    let name = target.metadata.name.clone().unwrap_or_default();
                    let history_entry = |current: &ModulePullOverride| {
                        history::record(
                            Some(current),
                            &current.spec.image_tag,
                            expected.as_deref(),
                            "renew",
                            &stamp,
                        )
                    };
                    // On gen A and B the modern key does nothing and is never removed:
                    // left there, it would force a redeploy after an upgrade to gen D.
                    let mut annotations = serde_json::Map::new();
                    annotations.insert(LEGACY_RENEW_ANNOTATION.into(), json!(stamp));
                    // A re-check only leaves the modern key as it is where it may work.
                    if !may_be_d || forces_redeploy {
                        annotations.insert(
                            RENEW_ANNOTATION.into(),
                            json!(forces_redeploy.then_some("true")),
                        );
                    }
                    overrides
                        .update(
                            &ctx.printer,
                            target,
                            &Update {
                                changes: Changes::default(),
                                annotations,
                                history: Some(&history_entry),
                                dry_run: false,
                                what: "renew",
                            },
                        )
                        .await
                        .map(|_| name)
                }
            }),
    );
    let renewed = patches.await;
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
    if refused.iter().any(|r| *r) && renewed.is_empty() {
        return Ok(Outcome::ConditionFailed);
    }
    if !args.wait.wait {
        return Ok(if refused.iter().any(|r| *r) {
            Outcome::ConditionFailed
        } else {
            Outcome::Success
        });
    }
    let (targets, expected): (Vec<_>, Vec<_>) = targets
        .into_iter()
        .zip(expected)
        .zip(&refused)
        .filter(|(_, refused)| !**refused)
        .map(|(pair, _)| pair)
        .unzip();

    let results =
        join_all(targets.iter().zip(expected).map(|(before, expected)| {
            wait_one(ctx, &overrides, before, expected, timeout, follow)
        }))
        .await;
    let mut outcome = Outcome::Success;
    for result in results {
        match result {
            Ok(Outcome::Success) => {}
            Ok(Outcome::ConditionFailed) => outcome = Outcome::ConditionFailed,
            Ok(Outcome::Interrupted) => return Ok(Outcome::Interrupted),
            Err(err) if err.kind == Kind::Condition => {
                ctx.printer.error(&err);
                outcome = Outcome::ConditionFailed;
            }
            Err(err) => return Err(err),
        }
    }
    if refused.iter().any(|r| *r) {
        outcome = Outcome::ConditionFailed;
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
    follow: bool,
) -> Result<Outcome> {
    let started = tokio::time::Instant::now();
    let name = before.metadata.name.clone().unwrap_or_default();
    // A blocked override (module disabled, embedded, missing, no source) gets no
    // re-check the wait could see: say why at once instead of waiting out --timeout.
    if let Ok(diagnosis) = diagnose::diagnose(
        &overrides.cluster,
        &name,
        diagnose::Request::offline(crate::deckhouse::checks::Judge::of(before)),
    )
    .await
        && diagnosis.blocked()
    {
        let problems = diagnosis.problems();
        print_steps(&ctx.printer, &problems, To::Err);
        let cause = problems
            .iter()
            .find(|s| s.state == StepState::Failed)
            .map(|s| s.summary.clone())
            .unwrap_or_default();
        return Err(Error::condition(format!(
            "{name} is blocked ({cause}); not waiting for a re-check"
        ))
        .with_hint(format!(
            "fix what is shown above, then renew again; the full report: kubectl mpo explain {name}"
        )));
    }
    if follow {
        crate::app::health::show_checking(ctx, &name);
    }
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
    if follow {
        return crate::app::health::follow_module(
            ctx,
            &overrides.cluster,
            &after,
            wait::deployed_since(Some(before), &after),
            timeout.saturating_sub(started.elapsed()),
            To::Out,
        )
        .await;
    }
    Ok(Outcome::Success)
}

/// Whether the modern renew key may force a redeploy here: not on gen A or B (detected
/// for certain), possibly on any other (docs/deckhouse-real.md §1, §3.2).
fn modern_key_forces_redeploy(generation: &str) -> bool {
    !matches!(generation, "A" | "B")
}

#[cfg(test)]
mod tests {
    use super::modern_key_forces_redeploy;

    #[test]
    fn the_modern_key_is_left_out_only_where_it_cannot_redeploy() {
        assert!(!modern_key_forces_redeploy("A"));
        assert!(!modern_key_forces_redeploy("B"));
        for maybe_d in ["C or D", "B, C or D", "unknown"] {
            assert!(modern_key_forces_redeploy(maybe_d), "{maybe_d}");
        }
    }
}
