//! `kubectl mpo delete MODULE [--rollback] [--yes] [--wait]`

use kube::api::{DeleteParams, ListParams};
use serde_json::json;

use super::shared::{self, Overrides, Seen};
use super::{Ctx, Outcome};
use crate::cli::DeleteArgs;
use crate::deckhouse::resources::{ModulePullOverride, ModuleRelease};
use crate::error::{Error, Result};
use crate::output::Tone;
use crate::validate;

pub async fn run(ctx: &Ctx, args: DeleteArgs) -> Result<Outcome> {
    validate::module_name(&args.module)?;
    let timeout = validate::duration_flag("timeout", &args.wait.timeout, false)?;
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
        Err(err) => return Err(overrides.cluster.api_error(err, "delete", shared::RESOURCE)),
    }
    ctx.printer
        .line(format!("modulepulloverride/{} deleted", args.module));
    if args.wait.wait {
        shared::wait_for(
            ctx,
            &overrides,
            &args.module,
            timeout,
            "finalizer removal",
            |seen| match seen {
                Seen::Gone => Some(()),
                Seen::Present(_) => None,
            },
        )
        .await?;
        ctx.printer.line(format!(
            "{} the controller released {}",
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
    let api: kube::Api<ModuleRelease> = kube::Api::all(overrides.cluster.client.clone());
    let list = api
        .list(&ListParams::default().labels(&format!("module={module}")))
        .await
        .ok()?;
    list.items
        .into_iter()
        .filter(|r| r.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Deployed"))
        .map(|r| r.spec.version)
        .next_back()
}
