//! Reading and writing ModulePullOverrides: one handle for the served version, the
//! field manager on every write, and the object printers (`-o json|yaml|name`).

use kube::Resource;
use kube::api::{Patch, PatchParams, PostParams};

use super::Ctx;
use crate::cluster::{Cluster, decode};
use crate::deckhouse::resources::{ModulePullOverride, MpoSpec, MpoVersion};
use crate::error::{Error, Result};
use crate::names::ModuleName;
use crate::output::ObjectFormat;
use serde_json::{Map, Value, json};

/// The resource, for messages and RBAC hints (`kubectl auth can-i VERB RESOURCE`).
pub const RESOURCE: &str = "modulepulloverrides.deckhouse.io";
/// Field manager recorded on every write, so `kubectl get --show-managed-fields`
/// tells which fields this tool owns.
pub const FIELD_MANAGER: &str = "kubectl-mpo";

/// `modulepulloverride.deckhouse.io/NAME`, as kubectl's name printer writes an object
/// (lower-case singular kind, group, name).
pub fn name_of(name: &str) -> String {
    format!("modulepulloverride.deckhouse.io/{name}")
}

/// `--dry-run`: send nothing (`client`), or let the API server check the write
/// without keeping it (`server`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DryRun {
    #[default]
    None,
    Client,
    Server,
}

/// What a dry run adds to a message.
pub fn dry_run_note(dry_run: DryRun) -> &'static str {
    match dry_run {
        DryRun::None => "",
        DryRun::Client => " (dry run)",
        DryRun::Server => " (server dry run)",
    }
}

/// Said on stderr after a client-side dry run.
pub const CLIENT_DRY_RUN: &str = "(dry run: nothing was sent to the cluster)";

/// The cluster, the served MPO version, and an API handle for it.
pub struct Overrides {
    pub cluster: Cluster,
    pub version: MpoVersion,
    pub api: kube::Api<ModulePullOverride>,
    /// Recorded on every write (`--field-manager`; default [`FIELD_MANAGER`]).
    pub field_manager: String,
}

impl Overrides {
    pub async fn connect(ctx: &Ctx) -> Result<Self> {
        let cluster = ctx.cluster().await?;
        let version = cluster.mpo_version().await?;
        ctx.printer.debug(
            1,
            format!("using {} on {}", version.api_version(), cluster.place()),
        );
        let api = cluster.mpo_api(version);
        Ok(Self {
            cluster,
            version,
            api,
            field_manager: FIELD_MANAGER.to_string(),
        })
    }

    /// Writes record `manager` as their field manager (`--field-manager`).
    pub fn with_field_manager(mut self, manager: &str) -> Self {
        self.field_manager = manager.to_string();
        self
    }

    /// The override, or `None` when it does not exist.
    pub async fn get(&self, name: &str) -> Result<Option<ModulePullOverride>> {
        decode::get_opt(&self.api, name)
            .await
            .map_err(|err| self.cluster.api_error(err, "get", RESOURCE))
    }

    /// The override, or an error that says how to create it.
    pub async fn require(&self, name: &str) -> Result<ModulePullOverride> {
        match self.get(name).await? {
            Some(found) => Ok(found),
            None => Err(self.missing(name).await),
        }
    }

    /// NotFound for `name`, with "did you mean" when another override's name is close.
    pub async fn missing(&self, name: &str) -> Error {
        let names: Vec<String> = decode::list(&self.api, &Default::default())
            .await
            .map(|list| {
                list.items
                    .into_iter()
                    .filter_map(|o| o.metadata.name)
                    .collect()
            })
            .unwrap_or_default();
        let err = self.not_found(name);
        match crate::deckhouse::checks::closest(name, &names) {
            Some(guess) => err.with_hint(format!(
                "did you mean {guess}? see it with: kubectl mpo status {guess}"
            )),
            None => err.with_hint("list the overrides with: kubectl mpo status"),
        }
    }

    /// NotFound as kubectl reports it (exit 1), with where it was looked up.
    pub fn not_found(&self, name: &str) -> Error {
        not_found_on(name, &self.cluster.place())
    }

    /// The named overrides in the order given, or all of them (by name) when `names`
    /// is empty.
    pub async fn list(&self, names: &[ModuleName]) -> Result<Vec<ModulePullOverride>> {
        if names.is_empty() {
            return self.list_selected(None).await;
        }
        let (found, mut missing) = self.list_found(names).await?;
        match missing.is_empty() {
            true => Ok(found),
            false => Err(missing.remove(0)),
        }
    }

    /// All overrides (by name), or those matching a label selector.
    pub async fn list_selected(&self, selector: Option<&str>) -> Result<Vec<ModulePullOverride>> {
        {
            let mut params = kube::api::ListParams::default();
            if let Some(selector) = selector {
                params = params.labels(selector);
            }
            let mut items = decode::list(&self.api, &params)
                .await
                .map(|list| list.items)
                .map_err(|err| self.cluster.api_error(err, "list", RESOURCE))?;
            items.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
            Ok(items)
        }
    }

    /// The named overrides that exist, in the order given, and a NotFound error for
    /// each one that does not (as `kubectl get a b` prints what it found, then the
    /// errors).
    pub async fn list_found(
        &self,
        names: &[ModuleName],
    ) -> Result<(Vec<ModulePullOverride>, Vec<Error>)> {
        let mut found = Vec::with_capacity(names.len());
        let mut missing = Vec::new();
        for name in names {
            match self.get(name).await? {
                Some(object) => found.push(object),
                None => missing.push(self.missing(name).await),
            }
        }
        Ok((found, missing))
    }

    /// Creates `object`; an existing one is an error that points to `edit`.
    pub async fn create(
        &self,
        object: &ModulePullOverride,
        dry_run: bool,
    ) -> Result<ModulePullOverride> {
        let name = object.metadata.name.clone().unwrap_or_default();
        let params = PostParams {
            dry_run,
            field_manager: Some(self.field_manager.clone()),
        };
        self.api
            .create(&params, object)
            .await
            .map_err(|err| match err {
                kube::Error::Api(status) if status.code == 409 => already_exists(&name),
                other => self.cluster.api_error(other, "create", RESOURCE),
            })
    }

    /// The one way an existing override is changed (`edit`, `undo`, `renew`): a merge
    /// patch of the spec fields and annotations of `update`, guarded by the
    /// resourceVersion it was made on. When someone else wrote meanwhile (409), the
    /// override is read again: a change to a spec field this write sets stops it,
    /// naming the fields, with nothing applied; any other change (the controller's
    /// status, another field) gets the write again on top, its history entry made anew
    /// from the current object so that no revision is lost.
    pub async fn update(
        &self,
        printer: &crate::output::Printer,
        original: &ModulePullOverride,
        update: &Update<'_>,
    ) -> Result<ModulePullOverride> {
        let name = original.metadata.name.clone().unwrap_or_default();
        let mut current = original.clone();
        for _ in 0..MAX_CONFLICT_RETRIES {
            let mut annotations = update.annotations.clone();
            if let Some(history) = update.history {
                annotations.insert(
                    super::history::HISTORY_ANNOTATION.into(),
                    history(&current).into(),
                );
            }
            let mut patch = serde_json::json!({
                "metadata": { "resourceVersion": current.metadata.resource_version },
            });
            if !annotations.is_empty() {
                patch["metadata"]["annotations"] = annotations.into();
            }
            let spec = update.changes.spec_patch();
            if !spec.is_empty() {
                patch["spec"] = spec.into();
            }
            if let Some(updated) = self
                .guarded_merge_patch(&name, &patch, update.dry_run, "patch")
                .await?
            {
                return Ok(updated);
            }
            let now = self.require(&name).await?;
            let collisions = update.changes.collisions(&original.spec, &now.spec);
            if !collisions.is_empty() {
                return Err(Error::runtime(format!(
                    "modulepulloverride {name:?} was changed by someone else meanwhile: {}; your {} was not applied",
                    collisions.join(", "),
                    update.what
                ))
                .with_hint(format!(
                    "look at it now (kubectl mpo history {name}, kubectl get mpo {name} -o yaml) and run the {} again",
                    update.what
                )));
            }
            printer.debug(
                1,
                format!(
                    "{name} changed meanwhile in other fields; writing the {} again on top",
                    update.what
                ),
            );
            current = now;
        }
        Err(Error::runtime(format!(
            "modulepulloverride {name:?} keeps changing; gave up after {MAX_CONFLICT_RETRIES} attempts"
        ))
        .with_hint("something else is writing this override continuously; find it with: kubectl get mpo -o yaml --show-managed-fields"))
    }

    /// A JSON merge patch; `dry_run` asks the API server to validate without persisting.
    pub async fn merge_patch(
        &self,
        name: &str,
        patch: &serde_json::Value,
        dry_run: bool,
        verb: &str,
    ) -> Result<ModulePullOverride> {
        match self.guarded_merge_patch(name, patch, dry_run, verb).await? {
            Some(updated) => Ok(updated),
            None => Err(Error::runtime(format!(
                "modulepulloverride {name:?} changed while it was being written"
            ))
            .with_hint("run the command again")),
        }
    }

    /// Like [`Self::merge_patch`], but a patch carrying `metadata.resourceVersion` that
    /// lost a race returns `None` (409 Conflict) so the caller can re-read and decide.
    pub async fn guarded_merge_patch(
        &self,
        name: &str,
        patch: &serde_json::Value,
        dry_run: bool,
        verb: &str,
    ) -> Result<Option<ModulePullOverride>> {
        let params = PatchParams {
            field_manager: Some(self.field_manager.clone()),
            dry_run,
            ..PatchParams::default()
        };
        match self.api.patch(name, &params, &Patch::Merge(patch)).await {
            Ok(updated) => Ok(Some(updated)),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
            Err(err) => Err(self.cluster.api_error(err, verb, RESOURCE)),
        }
    }
}

/// How often [`Overrides::update`] writes again over someone else's change.
const MAX_CONFLICT_RETRIES: usize = 5;

/// One change to an existing override, for [`Overrides::update`].
pub struct Update<'a> {
    pub changes: Changes,
    /// Annotations to set (`null` removes one).
    pub annotations: serde_json::Map<String, serde_json::Value>,
    /// The history annotation's new value, made from the object the write lands on.
    pub history: Option<&'a (dyn Fn(&ModulePullOverride) -> String + Sync)>,
    pub dry_run: bool,
    /// The command's word for the change (`edit`, `undo`, `renew`), for messages.
    pub what: &'static str,
}

/// The spec fields a write sets; `None` leaves a field alone.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Changes {
    pub tag: Option<String>,
    pub scan_interval: Option<String>,
    pub rollback: Option<bool>,
}

impl Changes {
    /// Drops the fields that already have the wanted value.
    pub fn against(&self, spec: &MpoSpec) -> Changes {
        Changes {
            tag: self.tag.clone().filter(|t| *t != spec.image_tag),
            scan_interval: self
                .scan_interval
                .clone()
                .filter(|s| Some(s) != spec.scan_interval.as_ref()),
            rollback: self.rollback.filter(|r| Some(*r) != spec.rollback),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tag.is_none() && self.scan_interval.is_none() && self.rollback.is_none()
    }

    pub fn apply_to(&self, spec: &mut MpoSpec) {
        if let Some(tag) = &self.tag {
            spec.image_tag = tag.clone();
        }
        if let Some(interval) = &self.scan_interval {
            spec.scan_interval = Some(interval.clone());
        }
        if let Some(rollback) = self.rollback {
            spec.rollback = Some(rollback);
        }
    }

    pub fn spec_patch(&self) -> Map<String, Value> {
        let mut spec = Map::new();
        if let Some(tag) = &self.tag {
            spec.insert("imageTag".into(), json!(tag));
        }
        if let Some(interval) = &self.scan_interval {
            spec.insert("scanInterval".into(), json!(interval));
        }
        if let Some(rollback) = self.rollback {
            spec.insert("rollback".into(), json!(rollback));
        }
        spec
    }

    /// The fields this edit sets that `theirs` changed away from `base`.
    pub fn collisions(&self, base: &MpoSpec, theirs: &MpoSpec) -> Vec<String> {
        let mut out = Vec::new();
        if self.tag.is_some() && base.image_tag != theirs.image_tag {
            out.push(format!(
                "spec.imageTag ({} -> {})",
                base.image_tag, theirs.image_tag
            ));
        }
        if self.scan_interval.is_some() && base.scan_interval != theirs.scan_interval {
            out.push(format!(
                "spec.scanInterval ({} -> {})",
                base.scan_interval.as_deref().unwrap_or("<unset>"),
                theirs.scan_interval.as_deref().unwrap_or("<unset>")
            ));
        }
        if self.rollback.is_some() && base.rollback != theirs.rollback {
            out.push(format!(
                "spec.rollback ({:?} -> {:?})",
                base.rollback, theirs.rollback
            ));
        }
        out
    }

    pub fn describe(&self, before: &MpoSpec) -> String {
        let mut parts = Vec::new();
        if let Some(tag) = &self.tag {
            parts.push(format!("imageTag {} -> {tag}", before.image_tag));
        }
        if let Some(interval) = &self.scan_interval {
            parts.push(format!(
                "scanInterval {} -> {interval}",
                before.scan_interval.as_deref().unwrap_or("<unset>")
            ));
        }
        if let Some(rollback) = self.rollback {
            parts.push(format!(
                "rollback {} -> {rollback}",
                before.rollback.unwrap_or(false)
            ));
        }
        parts.join(", ")
    }
}

/// `Error from server (NotFound): modulepulloverrides.deckhouse.io "NAME" not found`.
pub fn not_found_on(name: &str, place: &str) -> Error {
    Error::from_server(
        "NotFound",
        format!("{RESOURCE} {name:?} not found on {place}"),
    )
}

pub fn already_exists(name: &str) -> Error {
    Error::from_server("AlreadyExists", format!("{RESOURCE} {name:?} already exists")).with_hint(format!(
        "change it with: kubectl mpo edit {name} --tag TAG (or delete it first: kubectl mpo delete {name})"
    ))
}

/// Prints an override as `-o json|yaml|name`, with its apiVersion and kind.
pub fn print_object(
    ctx: &Ctx,
    object: &ModulePullOverride,
    version: MpoVersion,
    format: ObjectFormat,
) -> Result<()> {
    let mut object = object.clone();
    object.api_version = Some(version.api_version());
    object.kind = Some(ModulePullOverride::kind(&version).into_owned());
    match format {
        ObjectFormat::Json => ctx.printer.json(&object),
        ObjectFormat::Yaml => ctx.printer.yaml(&object),
        ObjectFormat::Name => {
            ctx.printer
                .line(name_of(object.metadata.name.as_deref().unwrap_or_default()));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deckhouse::resources::MpoSpec;
    use crate::output::Printer;

    fn printed(format: ObjectFormat) -> String {
        let (printer, out, _) = Printer::capture(false, 0);
        let ctx = Ctx {
            connect: Default::default(),
            printer,
        };
        let object = ModulePullOverride {
            metadata: kube::api::ObjectMeta {
                name: Some("echo".into()),
                ..Default::default()
            },
            spec: MpoSpec {
                image_tag: "pr1".into(),
                scan_interval: Some("15s".into()),
                rollback: Some(false),
                source: None,
            },
            ..Default::default()
        };
        print_object(&ctx, &object, MpoVersion::V1alpha2, format).expect("printed");
        out.text()
    }

    #[test]
    fn objects_print_as_kubectl_prints_them() {
        insta::assert_snapshot!(printed(ObjectFormat::Name), @"modulepulloverride.deckhouse.io/echo");
        insta::assert_snapshot!(printed(ObjectFormat::Json));
    }
}
