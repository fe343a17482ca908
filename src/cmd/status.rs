//! `kubectl mpo status`: every override with the cluster's and the registry's digest.
//! Registry lookups run concurrently, each bounded; one failing registry only marks its
//! own rows.

use std::time::Duration;

use std::collections::BTreeMap;

use futures::StreamExt;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde::Serialize;

use crate::app::diagnose::World;
use crate::app::overrides::{Overrides, name_of};
use crate::app::sources::{self, Lookup};
use crate::app::wait;
use crate::app::{Ctx, Outcome};
use crate::cli::{ListFormat, StatusArgs};
use crate::deckhouse::checks::{SyncState, is_ready};
use crate::deckhouse::health::{ModuleHealth, RunVerdict, in_plain_words, judge};
use crate::deckhouse::resources::ModulePullOverride;
use crate::error::{Error, Result};
use crate::output::table::{truncate_keeping_end, truncate_middle};
use crate::output::{Printer, Tone, age_of, jsonpath, short_digest};
use crate::registry::{DigestMatch, RegistryTarget};

/// One row of `status -o json|yaml` (`items[]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    name: String,
    tag: String,
    message: String,
    ready: bool,
    cluster_digest: Option<String>,
    registry_digest: Option<String>,
    /// Set when the tag is a multi-arch index: the index digest (`crane digest`).
    #[serde(skip_serializing_if = "Option::is_none")]
    index_digest: Option<String>,
    sync: SyncState,
    /// In sync with which digest of the tag: `image`, `amd64Child` (of an index) or
    /// `index` (the index digest itself; docs/deckhouse-real.md §3.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    matched_digest: Option<DigestMatch>,
    updated_at: Option<String>,
    source: Option<String>,
    /// Why the override is not Ready, or why the registry digest is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    cause: Option<String>,
    /// The Module's own health (deckhouse-real §4); `None` without a Module.
    module: Option<ModuleHealth>,
    /// The override's labels (for `-l`, `--show-labels`).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    labels: std::collections::BTreeMap<String, String>,
    /// Which commit runs and which the registry has (`-o wide` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    provenance: Option<crate::app::tags::ProvenancePair>,
}

#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    items: &'a [Row],
}

pub async fn run(ctx: &Ctx, args: StatusArgs) -> Result<Outcome> {
    let view = View::of(&args)?;
    let fallback = sources::fallback(&args.fallback.spec())?;
    let overrides = Overrides::connect(ctx).await?;
    let names_only = args.output == Some(ListFormat::Name) && !args.watch;
    // The Modules, ModuleConfigs and ModuleSources are listed while the overrides are:
    // one round trip to the API server instead of two.
    let listing = async {
        if args.modules.is_empty() {
            Ok((
                overrides.list_selected(args.selector.as_deref()).await?,
                Vec::new(),
            ))
        } else {
            overrides.list_found(&args.modules).await
        }
    };
    let loading = async {
        match names_only {
            true => None,
            false => Some(World::load_all(&overrides.cluster).await),
        }
    };
    let (listed, world) = tokio::join!(listing, loading);
    let (items, missing) = listed?;
    if names_only {
        // Names need no registry.
        for item in &items {
            ctx.printer
                .line(name_of(item.metadata.name.as_deref().unwrap_or_default()));
        }
        return finish(ctx, missing, Outcome::Success);
    }

    let world = world.expect("loaded unless only names are printed")?;
    let fallback = match fallback.filter(|_| !args.offline) {
        Some(fallback) => {
            fallback.announce(ctx);
            Some(fallback.target)
        }
        None => {
            if world.sources.is_none() && !args.offline {
                ctx.printer.note(
                    "note: you may not read ModuleSources, so registry digests are unknown; \
                     pass --registry-repo HOST/PATH (credentials from your docker config.json)",
                );
            }
            None
        }
    };
    let spinner = (!args.offline && !items.is_empty()).then(|| {
        ctx.printer.spinner(format!(
            "asking the registry about {} overrides",
            items.len()
        ))
    });
    let mut rows = rows(
        &world,
        fallback.as_ref(),
        &items,
        args.offline,
        args.registry_timeout,
        args.output == Some(ListFormat::Wide),
        &ctx.printer,
    )
    .await;
    drop(spinner);
    view.sort(&mut rows);

    if args.watch {
        return watch(
            ctx,
            &overrides,
            &args,
            &view,
            &world,
            fallback.as_ref(),
            &items,
            rows,
        )
        .await;
    }
    // Only the rows are printed: the objects they were made from go first (with
    // thousands of overrides, they are most of the memory).
    drop((world, items));
    if rows.is_empty() && missing.is_empty() && view.is_table() {
        ctx.printer.note(format!(
            "No ModulePullOverrides on context {:?}.",
            overrides.cluster.context
        ));
    } else if !rows.is_empty() || !view.is_table() {
        view.print(&ctx.printer, &rows, true)?;
    }
    let looked_up: Vec<&Row> = rows.iter().filter(|r| r.source.is_some()).collect();
    if !args.offline
        && !looked_up.is_empty()
        && looked_up.iter().all(|r| r.registry_digest.is_none())
    {
        for err in missing {
            ctx.printer.error(&err);
        }
        return Err(Error::runtime(format!(
            "no registry lookup succeeded ({} tried); the table shows the cluster side only",
            looked_up.len()
        ))
        .with_hint("the causes are under the table; run with --offline to skip the registry"));
    }
    finish(ctx, missing, Outcome::Success)
}

/// Ends with the NotFound errors of names that do not exist, after the others were
/// shown (as `kubectl get a b`).
fn finish(ctx: &Ctx, mut missing: Vec<Error>, outcome: Outcome) -> Result<Outcome> {
    let Some(last) = missing.pop() else {
        return Ok(outcome);
    };
    for err in &missing {
        ctx.printer.error(err);
    }
    Err(last)
}

/// How the rows are shown: the flags `-o`, `--no-headers`, `--show-labels`,
/// `--sort-by`, checked before any request.
struct View {
    format: Option<ListFormat>,
    headers: bool,
    labels: bool,
    sort_by: Option<jsonpath::Template>,
    template: Option<jsonpath::Template>,
    columns: Option<Vec<(String, jsonpath::Template)>>,
}

impl View {
    fn of(args: &StatusArgs) -> Result<Self> {
        let bad = |flag: &str, err: String| {
            Error::usage(format!("{flag}: {err}"))
                .with_hint("see the fields with: kubectl mpo status -o json")
        };
        let template = match &args.output {
            Some(ListFormat::JsonPath(text)) => {
                Some(jsonpath::Template::parse(text).map_err(|e| bad("-o jsonpath", e))?)
            }
            _ => None,
        };
        let columns = match &args.output {
            Some(ListFormat::CustomColumns(spec)) => {
                Some(jsonpath::custom_columns(spec).map_err(|e| bad("-o custom-columns", e))?)
            }
            _ => None,
        };
        let sort_by = args
            .sort_by
            .as_deref()
            .map(|text| jsonpath::Template::expression(text).map_err(|e| bad("--sort-by", e)))
            .transpose()?;
        Ok(View {
            format: args.output.clone(),
            headers: !args.no_headers,
            labels: args.show_labels,
            sort_by,
            template,
            columns,
        })
    }

    fn is_table(&self) -> bool {
        matches!(self.format, None | Some(ListFormat::Wide))
    }

    fn sort(&self, rows: &mut [Row]) {
        let Some(sort_by) = &self.sort_by else {
            return;
        };
        let keyed: Vec<(Option<serde_json::Value>, Row)> = rows
            .iter()
            .map(|row| {
                let value = serde_json::to_value(row).unwrap_or_default();
                let key = sort_by
                    .values(&value)
                    .ok()
                    .and_then(|v| v.first().map(|v| (*v).clone()));
                (key, row.clone())
            })
            .collect();
        let mut keyed = keyed;
        keyed.sort_by(|(a, _), (b, _)| jsonpath::compare(a.as_ref(), b.as_ref()));
        for (slot, (_, row)) in rows.iter_mut().zip(keyed) {
            *slot = row;
        }
    }

    /// Prints the rows; `header` is false for rows appended under an earlier table.
    fn print(&self, printer: &Printer, rows: &[Row], header: bool) -> Result<()> {
        match &self.format {
            Some(ListFormat::Json) => printer.json(&document(rows)),
            Some(ListFormat::Yaml) => printer.yaml(&document(rows)),
            Some(ListFormat::Name) => {
                for row in rows {
                    printer.line(name_of(&row.name));
                }
                Ok(())
            }
            Some(ListFormat::JsonPath(_)) => {
                let value = serde_json::to_value(document(rows))
                    .map_err(|err| Error::runtime(format!("cannot render JSON: {err}")))?;
                let text = self
                    .template
                    .as_ref()
                    .map(|t| t.render(&value))
                    .transpose()
                    .map_err(|err| Error::usage(format!("-o jsonpath: {err}")))?
                    .unwrap_or_default();
                // As kubectl: no newline added; control characters from the cluster
                // are escaped, the template's own newlines kept.
                let safe = crate::output::sanitize(&text, crate::output::Layout::Block);
                printer.raw(safe.as_bytes());
                Ok(())
            }
            Some(ListFormat::CustomColumns(_)) => {
                let columns = self.columns.as_deref().unwrap_or_default();
                let headers: Vec<&str> = columns.iter().map(|(h, _)| h.as_str()).collect();
                let mut cells = Vec::with_capacity(rows.len());
                for row in rows {
                    let value = serde_json::to_value(row).unwrap_or_default();
                    let mut line = Vec::with_capacity(columns.len());
                    for (_, template) in columns {
                        let found = template
                            .values(&value)
                            .map_err(|err| Error::usage(format!("-o custom-columns: {err}")))?;
                        let text = if found.is_empty() {
                            "<none>".to_string()
                        } else {
                            found
                                .into_iter()
                                .map(jsonpath::text_of)
                                .collect::<Vec<_>>()
                                .join(",")
                        };
                        line.push((text, Tone::Plain));
                    }
                    cells.push(line);
                }
                if header && self.headers {
                    printer.table(&headers, &cells);
                } else {
                    printer.table_rows(&headers, &cells);
                }
                Ok(())
            }
            None | Some(ListFormat::Wide) => {
                let wide = self.format == Some(ListFormat::Wide);
                print_table(printer, rows, wide, self.labels, header && self.headers);
                if header {
                    print_causes(printer, rows);
                }
                Ok(())
            }
        }
    }
}

fn document(rows: &[Row]) -> Document<'_> {
    Document {
        api_version: "kubectl-mpo/v1",
        kind: "StatusList",
        items: rows,
    }
}

async fn rows(
    world: &World,
    fallback: Option<&RegistryTarget>,
    items: &[ModulePullOverride],
    offline: bool,
    timeout: Duration,
    provenance: bool,
    printer: &Printer,
) -> Vec<Row> {
    let lookups = sources::lookup_all(
        world,
        fallback,
        items,
        offline,
        timeout,
        provenance,
        Some(printer),
    )
    .await;
    items
        .iter()
        .zip(lookups)
        .map(|(mpo, lookup)| {
            let name = mpo.metadata.name.as_deref().unwrap_or_default();
            let health = world
                .modules
                .get(name)
                .map(|module| ModuleHealth::of(module, world.configs.get(name)));
            make_row(mpo, lookup, health)
        })
        .collect()
}

/// A row from an override and its lookup; the cause says what blocks it, else why the
/// registry digest is unknown.
fn make_row(mpo: &ModulePullOverride, lookup: Lookup, module: Option<ModuleHealth>) -> Row {
    let ready = is_ready(mpo);
    let cluster_digest = mpo.image_digest().map(str::to_string);
    // The cluster runs the tag's image, the index's amd64 image or, on controllers that
    // take the tag's own digest, the index itself (docs/deckhouse-real.md §3.1): all
    // are in sync, and the row says which.
    let matched_digest = match (&lookup.result, &cluster_digest) {
        (Some(Ok(resolved)), Some(cluster)) => resolved.matches(cluster),
        _ => None,
    };
    let (registry_digest, index_digest, registry_error) = match lookup.result {
        Some(Ok(resolved)) => (Some(resolved.digest), resolved.index_digest, None),
        // A tag that no longer exists: say what the controller will do about it.
        Some(Err(err)) if err.kind == crate::registry::RegistryErrorKind::NotFound => (
            None,
            None,
            Some(crate::deckhouse::image_checks::missing_tag_text(
                mpo.metadata.name.as_deref().unwrap_or_default(),
                &mpo.spec.image_tag,
                mpo.image_digest(),
                mpo.spec.scan_interval.as_deref().unwrap_or("15s"),
            )),
        ),
        Some(Err(err)) => (None, None, Some(err.message)),
        None => (None, None, None),
    };
    let message = mpo.message().unwrap_or_default().to_string();
    let cause = if ready {
        module_cause(&mpo.spec.image_tag, module.as_ref())
            .or(registry_error.map(|e| format!("registry: {e}")))
    } else {
        lookup
            .cluster_cause
            .or(registry_error.map(|e| format!("registry: {e}")))
            .or_else(|| (!message.is_empty()).then(|| message.clone()))
            .or_else(|| Some("no status yet: the controller has not processed it".into()))
    };
    let sync = match matched_digest {
        Some(_) => SyncState::InSync,
        None => SyncState::of(cluster_digest.as_deref(), registry_digest.as_deref()),
    };
    Row {
        name: mpo.metadata.name.clone().unwrap_or_default(),
        tag: mpo.spec.image_tag.clone(),
        sync,
        message,
        ready,
        cluster_digest,
        registry_digest,
        index_digest,
        matched_digest,
        updated_at: mpo.updated_at().map(str::to_string),
        source: lookup.source,
        cause,
        module,
        labels: mpo.metadata.labels.clone().unwrap_or_default(),
        provenance: lookup.provenance,
    }
}

/// For an override Ready (installed) whose module does not run: what the module says.
fn module_cause(tag: &str, module: Option<&ModuleHealth>) -> Option<String> {
    let health = module?;
    if judge(health, tag, true) == RunVerdict::Running {
        return None;
    }
    let mut cause = format!(
        "Ready, but the module does not run: {}",
        in_plain_words(health)
    );
    if health.version.as_deref() != Some(tag) {
        cause.push_str(&format!(
            "; it runs version {}, not {tag}",
            health.version.as_deref().unwrap_or("<none>")
        ));
    }
    if let Some(error) = &health.config_error {
        cause.push_str(&format!("; ModuleConfig: {error}"));
    }
    Some(cause)
}

/// The width the default table keeps within (100 columns); MESSAGE, the last column,
/// gets what the others leave, and `-o wide` shows it whole.
const TABLE_WIDTH: usize = 100;
/// MESSAGE never gets narrower than this, even beside very long names.
const MIN_MESSAGE_WIDTH: usize = 14;
/// MESSAGE is given up to this much before TAG is shortened for it.
const MESSAGE_WANTED: usize = 32;
/// TAG is shortened to no less than this when the row is crowded.
const MIN_TAG_WIDTH: usize = 8;
/// TAG beyond this is shortened in the default table (tags may be 128 characters).
const TAG_WIDTH: usize = 24;
/// Columns are separated by three spaces.
const GAP: usize = 3;

fn table_row(
    row: &Row,
    wide: bool,
    (tag_width, message_width): (usize, usize),
) -> Vec<(String, Tone)> {
    let message_tone = if row.ready { Tone::Good } else { Tone::Bad };
    let sync_tone = match row.sync {
        SyncState::InSync => Tone::Good,
        SyncState::Behind => Tone::Warn,
        SyncState::Unknown => Tone::Dim,
    };
    let digest = |d: &Option<String>| d.as_deref().map(short_digest).unwrap_or_else(|| "-".into());
    // Escaped first, so that the widths count what the terminal shows.
    let (tag, message) = if wide {
        (row.tag.clone(), row.message.clone())
    } else {
        (
            truncate_middle(&crate::output::inline(&row.tag), tag_width),
            truncate_keeping_end(
                &crate::output::inline(&summary(&row.message)),
                message_width,
            ),
        )
    };
    let message = if row.message.is_empty() {
        "<none>".to_string()
    } else {
        message
    };
    let mut cells = vec![
        (row.name.clone(), Tone::Bold),
        (tag, Tone::Plain),
        (sync_label(row, wide), sync_tone),
        module_cell(row),
        (
            if row.updated_at.is_some() {
                age_of(row.updated_at.as_deref())
            } else {
                "-".into()
            },
            Tone::Dim,
        ),
        (message, message_tone),
    ];
    if wide {
        cells.push((digest(&row.cluster_digest), Tone::Plain));
        cells.push((digest(&row.registry_digest), Tone::Plain));
        cells.push((
            row.source.clone().unwrap_or_else(|| "-".into()),
            Tone::Plain,
        ));
        let revision = |p: Option<&crate::app::tags::Provenance>| {
            p.and_then(|p| p.revision.as_deref())
                .map(|r| r.chars().take(12).collect::<String>())
                .unwrap_or_else(|| "-".into())
        };
        cells.push((
            match row.provenance.as_ref() {
                Some(pair) => format!(
                    "{} -> {}",
                    revision(pair.cluster.as_ref()),
                    revision(pair.registry.as_ref())
                ),
                None => "-".into(),
            },
            Tone::Plain,
        ));
    }
    cells
}

/// A controller message without its addresses, for the default table: the parts of
/// "Download error: fetch the image digest HOST/PATH:TAG: Not authorized: url https://..."
/// that name a place (a URL, or ending in a repository path) are dropped, so that the
/// reason fits. `-o wide` and the cause lines keep the whole text.
fn summary(message: &str) -> String {
    let kept: Vec<String> = message
        .split(": ")
        .filter(|part| {
            !part.contains("://")
                && !part
                    .split_whitespace()
                    .last()
                    .is_some_and(|last| last.contains('/'))
        })
        .map(|part| registry_error_body(part).unwrap_or_else(|| part.to_string()))
        .collect();
    if kept.is_empty() {
        message.to_string()
    } else {
        kept.join(": ")
    }
}

/// A registry's JSON error body (`{"errors":[{"code":…,"message":"manifest unknown"}]}`,
/// as ggcr quotes it in the controller's message) as its messages.
fn registry_error_body(part: &str) -> Option<String> {
    let body: serde_json::Value = serde_json::from_str(part.trim()).ok()?;
    let messages: Vec<&str> = body
        .get("errors")?
        .as_array()?
        .iter()
        .filter_map(|e| e.get("message").and_then(|m| m.as_str()))
        .collect();
    (!messages.is_empty()).then(|| messages.join("; "))
}

/// The widths of TAG and MESSAGE in the default table: the other columns take what
/// their rows need, and TAG and MESSAGE share what is left of [`TABLE_WIDTH`] (TAG
/// shrinks first, down to [`MIN_TAG_WIDTH`], so that MESSAGE keeps its reason).
fn layout(rows: &[Row]) -> (usize, usize) {
    let widest = |header: &str, cell: &dyn Fn(&Row) -> usize| {
        rows.iter().map(cell).max().unwrap_or(0).max(header.len())
    };
    let name = widest("NAME", &|r| crate::output::inline(&r.name).chars().count());
    let tag = widest("TAG", &|r| {
        crate::output::inline(&r.tag).chars().count().min(TAG_WIDTH)
    });
    let sync = widest("SYNC", &|r| sync_label(r, false).chars().count());
    let message = rows
        .iter()
        .map(|r| crate::output::inline(&summary(&r.message)).chars().count())
        .max()
        .unwrap_or(0)
        .min(MESSAGE_WANTED);
    let module = widest("MODULE", &|r| module_cell(r).0.chars().count());
    let updated = widest("UPDATED", &|r| {
        if r.updated_at.is_some() {
            age_of(r.updated_at.as_deref()).len()
        } else {
            1
        }
    });
    let left = TABLE_WIDTH.saturating_sub(name + sync + module + updated + 5 * GAP);
    let tag = tag
        .min(left.saturating_sub(message.max(MIN_MESSAGE_WIDTH)))
        .max(MIN_TAG_WIDTH);
    (tag, left.saturating_sub(tag).max(MIN_MESSAGE_WIDTH))
}

/// SYNC: for a multi-arch tag, which of its digests the cluster runs (`-o wide`; the
/// default table keeps to 100 columns).
fn sync_label(row: &Row, wide: bool) -> String {
    if !wide {
        return row.sync.label().to_string();
    }
    match row.matched_digest {
        Some(DigestMatch::Index) => "in sync (index)".to_string(),
        Some(DigestMatch::Amd64Child) => "in sync (amd64)".to_string(),
        _ => row.sync.label().to_string(),
    }
}

const HEADERS: [&str; 6] = ["NAME", "TAG", "SYNC", "MODULE", "UPDATED", "MESSAGE"];
/// `-o wide` adds these after the default columns, as kubectl does.
const WIDE_HEADERS: [&str; 4] = [
    "CLUSTER",
    "REGISTRY",
    "SOURCE",
    "COMMIT (CLUSTER -> REGISTRY)",
];

/// The MODULE column: the Module's phase, good only when it runs the override's tag.
fn module_cell(row: &Row) -> (String, Tone) {
    let Some(health) = &row.module else {
        return ("-".into(), Tone::Dim);
    };
    let phase = health.phase.clone().unwrap_or_else(|| "-".into());
    let tone = match judge(health, &row.tag, true) {
        RunVerdict::Running => Tone::Good,
        RunVerdict::Failed(_) => Tone::Bad,
        RunVerdict::Pending(_) => Tone::Warn,
    };
    (phase, tone)
}

/// The table, with its header unless rows are appended under an earlier one.
pub fn print_table(printer: &Printer, rows: &[Row], wide: bool, labels: bool, header: bool) {
    let mut headers = HEADERS.to_vec();
    if wide {
        headers.extend(WIDE_HEADERS);
    }
    if labels {
        headers.push("LABELS");
    }
    let width = layout(rows);
    let cells: Vec<Vec<(String, Tone)>> = rows
        .iter()
        .map(|r| {
            let mut cells = table_row(r, wide, width);
            if labels {
                let text = if r.labels.is_empty() {
                    "<none>".to_string()
                } else {
                    r.labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                };
                cells.push((text, Tone::Plain));
            }
            cells
        })
        .collect();
    if header {
        printer.table(&headers, &cells);
    } else {
        printer.table_rows(&headers, &cells);
    }
}

/// One line per row that is blocked or has no registry digest, under the table.
pub fn print_causes(printer: &Printer, rows: &[Row]) {
    let with_causes: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            r.cause.is_some()
                && (!r.ready
                    || r.registry_digest.is_none()
                    || module_cause(&r.tag, r.module.as_ref()).is_some())
        })
        .collect();
    let Some(first) = with_causes.first() else {
        return;
    };
    printer.line("");
    for row in &with_causes {
        let cause = row.cause.as_deref().unwrap_or_default();
        printer.line(format!(
            "{}: {}",
            printer.paint(&row.name, Tone::Bold),
            crate::output::inline(cause)
        ));
    }
    printer.line(printer.paint(
        &format!(
            "(kubectl mpo explain {} shows the checks and the fix)",
            first.name
        ),
        Tone::Dim,
    ));
}

/// `--watch`: on a terminal the table is redrawn in place as overrides change; off a
/// terminal each changed row is appended (as `kubectl get -w`), an unchanged row is not
/// repeated; with `-o json|yaml` each changed row is printed as its own object. Ctrl-C
/// ends it with exit 130.
///
/// The overrides are mirrored by kube-runtime's reflector: after every change, and
/// after a re-list (a watch that fell behind, an API server restart), the mirror is
/// compared with what was shown, so a change or a deletion made while the watch was
/// away is shown too.
#[allow(clippy::too_many_arguments)]
async fn watch(
    ctx: &Ctx,
    overrides: &Overrides,
    args: &StatusArgs,
    view: &View,
    world: &World,
    fallback: Option<&RegistryTarget>,
    items: &[ModulePullOverride],
    initial: Vec<Row>,
) -> Result<Outcome> {
    let names: Vec<String> = args.modules.iter().map(|m| m.to_string()).collect();
    let wanted = |name: &str| names.is_empty() || names.iter().any(|n| n == name);
    let objects = matches!(view.format, Some(ListFormat::Json | ListFormat::Yaml));
    let redraw = !objects && ctx.printer.stdout_is_terminal();
    let print_object = |row: &Row| -> Result<()> {
        match view.format {
            Some(ListFormat::Yaml) => {
                ctx.printer.raw(b"---\n");
                ctx.printer.yaml(row)
            }
            _ => ctx.printer.json(row),
        }
    };
    let mut shown: BTreeMap<String, Row> = initial
        .iter()
        .map(|row| (row.name.clone(), row.clone()))
        .collect();
    // The resourceVersion each shown row was made from.
    let mut versions: BTreeMap<String, String> = items
        .iter()
        .filter_map(|o| {
            Some((
                o.metadata.name.clone()?,
                o.metadata.resource_version.clone()?,
            ))
        })
        .collect();
    let draw_all = |shown: &BTreeMap<String, Row>| -> Result<()> {
        let mut rows: Vec<Row> = shown.values().cloned().collect();
        view.sort(&mut rows);
        // Home and clear, then the whole table: a redraw, not appended rows.
        ctx.printer.raw(b"\x1b[H\x1b[2J");
        view.print(&ctx.printer, &rows, true)
    };
    if objects {
        for row in &initial {
            print_object(row)?;
        }
    } else if redraw {
        draw_all(&shown)?;
    } else {
        view.print(&ctx.printer, &initial, true)?;
    }

    let mut config = wait::watch_config(&overrides.cluster);
    if let Some(selector) = &args.selector {
        config = config.labels(selector);
    }
    let writer = reflector::store::Writer::new(overrides.version);
    let mirror = writer.as_reader();
    let stream = watcher(overrides.api.clone(), config)
        .backoff(wait::RideOut::new(wait::WATCH_FAILURE_GRACE))
        .reflect(writer);
    let mut stream = std::pin::pin!(stream);
    let mut last_failure = None;
    loop {
        let event = tokio::select! {
            event = stream.next() => event,
            _ = tokio::signal::ctrl_c() => return Ok(Outcome::Interrupted),
        };
        match event {
            // The mirror holds a whole list only once it is read to the end.
            Some(Ok(watcher::Event::Init | watcher::Event::InitApply(_))) => continue,
            Some(Ok(_)) => last_failure = None,
            // A dropped connection or an API server restart: the watcher resumes (or
            // lists again) after the backoff.
            Some(Err(err)) => {
                last_failure = Some(wait::ride_out(ctx, &overrides.cluster, "overrides", err)?);
                continue;
            }
            None => {
                return Err(wait::lost_api_server(
                    &overrides.cluster,
                    "watching overrides",
                    last_failure,
                ));
            }
        }
        let now: Vec<std::sync::Arc<ModulePullOverride>> = mirror
            .state()
            .into_iter()
            .filter(|o| wanted(o.metadata.name.as_deref().unwrap_or_default()))
            .collect();
        let gone: Vec<String> = versions
            .keys()
            .filter(|name| !now.iter().any(|o| o.metadata.name.as_deref() == Some(name)))
            .cloned()
            .collect();
        for name in gone {
            versions.remove(&name);
            if shown.remove(&name).is_none() {
                continue;
            }
            if redraw {
                draw_all(&shown)?;
            } else if !objects {
                ctx.printer.line(format!(
                    "{}   (deleted)",
                    ctx.printer.paint(&name, Tone::Bold)
                ));
            }
        }
        let changed: Vec<ModulePullOverride> = now
            .iter()
            .filter(|o| {
                let name = o.metadata.name.as_deref().unwrap_or_default();
                versions.get(name) != o.metadata.resource_version.as_ref()
            })
            .map(|o| ModulePullOverride::clone(o))
            .collect();
        if changed.is_empty() {
            continue;
        }
        for object in &changed {
            if let (Some(name), Some(version)) =
                (&object.metadata.name, &object.metadata.resource_version)
            {
                versions.insert(name.clone(), version.clone());
            }
        }
        let mut fresh = rows(
            world,
            fallback,
            &changed,
            args.offline,
            args.registry_timeout,
            args.output == Some(ListFormat::Wide),
            &ctx.printer,
        )
        .await;
        view.sort(&mut fresh);
        let fresh: Vec<Row> = fresh
            .into_iter()
            // Only metadata changed (an annotation): the row reads the same.
            .filter(|row| shown.get(&row.name) != Some(row))
            .collect();
        if fresh.is_empty() {
            continue;
        }
        for row in &fresh {
            shown.insert(row.name.clone(), row.clone());
        }
        if objects {
            for row in &fresh {
                print_object(row)?;
            }
        } else if redraw {
            draw_all(&shown)?;
        } else {
            view.print(&ctx.printer, &fresh, false)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        name: &str,
        message: &str,
        ready: bool,
        registry: Option<&str>,
        cause: Option<&str>,
    ) -> Row {
        Row {
            name: name.into(),
            tag: "main-patch-03354".into(),
            message: message.into(),
            ready,
            cluster_digest: Some(format!("sha256:{}", "a".repeat(64))),
            registry_digest: registry.map(str::to_string),
            index_digest: None,
            sync: SyncState::of(Some(&format!("sha256:{}", "a".repeat(64))), registry),
            matched_digest: None,
            updated_at: None,
            source: Some("test".into()),
            cause: cause.map(str::to_string),
            module: None,
            labels: Default::default(),
            provenance: None,
        }
    }

    fn rendered(rows: &[Row], wide: bool) -> String {
        let (printer, out, _) = Printer::capture(false, 0);
        print_table(&printer, rows, wide, false, true);
        print_causes(&printer, rows);
        out.text()
    }

    #[test]
    fn the_status_table() {
        let current = format!("sha256:{}", "a".repeat(64));
        let newer = format!("sha256:{}", "b".repeat(64));
        let rows = [
            row("echo", "Ready", true, Some(&current), None),
            row("hello-world", "Ready", true, Some(&newer), None),
            row(
                "lost-source",
                "Download error: fetch the image digest 127.0.0.1:5000/modules/lost-source:v1: manifest unknown",
                false,
                None,
                Some("Module lost-source points at ModuleSource gone, which is gone"),
            ),
        ];
        insta::assert_snapshot!(rendered(&rows, false));
        insta::assert_snapshot!("the_status_table_wide", rendered(&rows, true));
    }

    #[test]
    fn a_summary_drops_addresses_and_keeps_the_reason() {
        assert_eq!(
            summary(
                "Download error: fetch the image digest 127.0.0.1:5000/m/x:main: Not authorized: url https://127.0.0.1:5000/v2/m/x/manifests/main"
            ),
            "Download error: Not authorized"
        );
        assert_eq!(
            summary("Download error: \"h/m\" credentials not found in the dockerCfg"),
            "Download error: \"h/m\" credentials not found in the dockerCfg"
        );
        assert_eq!(summary("Ready"), "Ready");
        assert_eq!(
            summary(
                r#"Download error: get manifest: 127.0.0.1:5000/m/x:t: GET https://127.0.0.1:5000/v2/m/x/manifests/t: unexpected status code 404: {"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"t"}}]}"#
            ),
            "Download error: get manifest: unexpected status code 404: manifest unknown"
        );
    }

    #[test]
    fn sync_says_which_digest_of_a_multi_arch_tag_the_cluster_runs() {
        let current = format!("sha256:{}", "a".repeat(64));
        let mut by_index = row("echo", "Ready", true, Some(&current), None);
        by_index.matched_digest = Some(DigestMatch::Index);
        let mut by_child = row("hello", "Ready", true, Some(&current), None);
        by_child.matched_digest = Some(DigestMatch::Amd64Child);
        let plain = row("plain", "Ready", true, Some(&current), None);
        let text = rendered(&[by_index, by_child, plain], true);
        assert!(text.contains("in sync (index)"), "{text}");
        assert!(text.contains("in sync (amd64)"), "{text}");
        assert_eq!(text.matches("in sync").count(), 3, "{text}");
    }

    #[test]
    fn hostile_messages_are_escaped_in_rows_and_causes() {
        let rows = [row(
            "ghost",
            "The module not found\u{1b}]0;title\u{7}\u{1b}[2J\u{1b}[31mRED",
            false,
            None,
            Some("evil\u{1b}[31m cause\r\n"),
        )];
        let text = rendered(&rows, true);
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}') && !text.contains('\r'),
            "{text:?}"
        );
        assert!(text.contains("\\x1b]0;title\\x07"), "{text}");
    }
}
