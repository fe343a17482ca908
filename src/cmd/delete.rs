//! `kubectl mpo delete MODULE [--rollback] [--yes] [--wait]`

use kube::api::{DeleteParams, ListParams};
use serde_json::json;

use crate::app::overrides::{Overrides, RESOURCE, name_of};
use crate::app::wait::{self, is_gone};
use crate::app::{Ctx, Outcome};
use crate::cli::DeleteArgs;
use crate::deckhouse::resources::ModulePullOverride;
use crate::error::{Error, Result};
use crate::output::Tone;

pub async fn run(ctx: &Ctx, args: DeleteArgs) -> Result<Outcome> {
    let timeout = args.wait.timeout;
    let overrides = Overrides::connect(ctx).await?;
    let (current, last_release) = tokio::join!(
        overrides.require(&args.module),
        last_deployed_release(&overrides, &args.module)
    );
    let current = current?;
    let rollback = args.rollback || current.spec.rollback.unwrap_or(false);

    ctx.printer
        .note(consequence(&current, rollback, last_release.as_deref()));
    if !args.yes {
        if !ctx.printer.interactive() {
            return Err(Error::usage(format!(
                "refusing to delete {:?} without confirmation",
                args.module
            ))
            .with_hint(format!(
                "pass --yes: kubectl mpo delete {} --yes",
                args.module
            )));
        }
        if !crate::output::confirm(&format!("Delete modulepulloverride {}?", args.module))? {
            ctx.printer.note("nothing was deleted");
            return Ok(Outcome::Success);
        }
    }

    if args.rollback && current.spec.rollback != Some(true) {
        // The controller reads spec.rollback when it handles the deletion, so it must
        // be set before the delete request.
        overrides
            .merge_patch(
                &args.module,
                &json!({ "spec": { "rollback": true } }),
                false,
                "patch",
            )
            .await?;
    }
    let params = DeleteParams::default();
    match overrides.api.delete(&args.module, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(err) => return Err(overrides.cluster.api_error(err, "delete", RESOURCE)),
    }
    ctx.printer
        .line(format!("{} deleted", name_of(&args.module)));
    if args.wait.wait {
        wait::wait_for(
            ctx,
            &overrides,
            &args.module,
            timeout,
            "finalizer removal",
            is_gone,
        )
        .await?;
        ctx.printer.line(format!(
            "{} the controller removed its finalizer; {} is gone",
            ctx.printer.paint("done:", Tone::Good),
            args.module
        ));
    }
    Ok(Outcome::Success)
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
    } else {
        format!(
            "Deleting {name} keeps the dev build ({tag}) running until a ModuleRelease from the module's update policy replaces it (use --rollback to return to the last release now)."
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
