//! `kubectl mpo undo MODULE [--to-revision N] [--wait]`: sets a tag from the override's
//! history back, after the same image checks as `edit --tag`, and warns when that tag
//! now points to another digest than the one recorded.

use crate::app::diagnose;
use crate::app::history;
use crate::app::overrides::{Changes, Overrides, Update, name_of};
use crate::app::wait::{self, deleted_while_waiting, new_verdict_since};
use crate::app::{Ctx, Outcome};
use crate::cli::UndoArgs;
use crate::deckhouse::resources::ModulePullOverride;
use crate::error::{Error, Result};
use crate::output::{To, short_digest};

pub async fn run(ctx: &Ctx, args: UndoArgs) -> Result<Outcome> {
    let overrides = Overrides::connect(ctx).await?;
    let module = args.module.to_string();
    let original = overrides.require(&module).await?;
    let revisions = history::with_current(&original);
    let current = revisions.last().map(|r| r.revision).unwrap_or_default();
    let target = match args.to_revision {
        Some(wanted) => revisions.iter().find(|r| r.revision == wanted),
        None => revisions
            .iter()
            .rev()
            .find(|r| r.tag != original.spec.image_tag),
    };
    let Some(target) = target.cloned() else {
        let what = match args.to_revision {
            Some(n) => format!("revision {n} is not in the history of {module}"),
            None => format!("{module} has no earlier tag in its history"),
        };
        return Err(Error::usage(what).with_hint(format!(
            "see the revisions with: kubectl mpo history {module}"
        )));
    };
    if target.revision == current || target.tag == original.spec.image_tag {
        ctx.printer.line(format!(
            "{} unchanged: revision {} is the current tag {}",
            name_of(&module),
            target.revision,
            target.tag
        ));
        return Ok(Outcome::Success);
    }
    let tag = target.tag.clone();
    let checks = diagnose::preflight(
        ctx,
        &overrides,
        &module,
        &tag,
        false,
        true,
        original.spec.source.as_deref(),
    )
    .await?;
    if checks.image_failed && !args.force {
        return Err(Error::condition(format!(
            "the image {module}:{tag} does not fit this cluster (see above); nothing was changed"
        ))
        .with_hint(format!(
            "fix the problem above, or set it back anyway with: kubectl mpo undo {module} --to-revision {revision} --force",
            revision = target.revision
        )));
    }
    match (&target.digest, &checks.registry_digest) {
        (Some(recorded), Some(now)) if recorded != now => ctx.printer.warn(format!(
            "tag {tag} now points to {}, not {} as recorded in revision {}: a different build will run",
            short_digest(now),
            short_digest(recorded),
            target.revision
        )),
        _ => {}
    }
    // The controller writes the status meanwhile: the write is made again on top, while
    // the tag itself is unchanged; a tag someone else changed stops the undo.
    let digest = checks.registry_digest.clone();
    let history_entry = |current: &ModulePullOverride| {
        history::record(
            Some(current),
            &tag,
            digest.as_deref(),
            "undo",
            &jiff::Timestamp::now().to_string(),
        )
    };
    overrides
        .update(
            &ctx.printer,
            &original,
            &Update {
                changes: Changes {
                    tag: Some(tag.clone()),
                    ..Changes::default()
                },
                annotations: serde_json::Map::new(),
                history: Some(&history_entry),
                dry_run: false,
                what: "undo",
            },
        )
        .await?;
    ctx.printer.line(format!(
        "{} set back to revision {}: imageTag {} -> {tag}",
        name_of(&module),
        target.revision,
        original.spec.image_tag
    ));
    if args.wait.wait {
        let settled = wait::wait_for(
            ctx,
            &overrides,
            &module,
            args.wait.timeout,
            "controller verdict on the restored tag",
            new_verdict_since(&original),
        )
        .await?
        .ok_or_else(|| deleted_while_waiting(&module))?;
        return wait::report_verdict(ctx, &overrides, &module, &settled, To::Out).await;
    }
    Ok(Outcome::Success)
}
