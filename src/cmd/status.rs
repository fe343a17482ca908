//! `kubectl mpo status`: every override with the cluster's and the registry's digest.
//! Registry lookups run concurrently, each bounded; one failing registry only marks its
//! own rows.

use std::time::Duration;

use futures::TryStreamExt;
use kube::runtime::watcher;
use serde::Serialize;

use crate::app::diagnose::World;
use crate::app::overrides::{Overrides, name_of};
use crate::app::sources::{self, Lookup};
use crate::app::wait;
use crate::app::{Ctx, Outcome};
use crate::cli::{ListFormat, StatusArgs};
use crate::deckhouse::checks::{SyncState, is_ready};
use crate::deckhouse::resources::ModulePullOverride;
use crate::error::{Error, Result};
use crate::output::table::truncate_middle;
use crate::output::{Printer, Tone, age_of, short_digest};
use crate::registry::{DigestMatch, RegistryTarget};

/// One row of `status -o json|yaml` (`items[]`).
#[derive(Debug, Clone, Serialize)]
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
}

#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    items: &'a [Row],
}

pub async fn run(ctx: &Ctx, args: StatusArgs) -> Result<Outcome> {
    if args.watch && matches!(args.output, Some(ListFormat::Json | ListFormat::Yaml)) {
        return Err(Error::usage(
            "--watch prints table rows; use it without -o json|yaml",
        ));
    }
    let fallback = sources::fallback(&args.fallback)?;
    let overrides = Overrides::connect(ctx).await?;
    let items = overrides.list(&args.modules).await?;
    if args.output == Some(ListFormat::Name) {
        // Names need no registry.
        for item in &items {
            ctx.printer
                .line(name_of(item.metadata.name.as_deref().unwrap_or_default()));
        }
        return Ok(Outcome::Success);
    }

    let world = World::load_all(&overrides.cluster).await?;
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
    let rows = rows(
        &world,
        fallback.as_ref(),
        &items,
        args.offline,
        args.registry_timeout,
        &ctx.printer,
    )
    .await;
    drop(spinner);

    let wide = args.output == Some(ListFormat::Wide);
    match args.output {
        Some(ListFormat::Json) => ctx.printer.json(&document(&rows))?,
        Some(ListFormat::Yaml) => ctx.printer.yaml(&document(&rows))?,
        _ if rows.is_empty() && !args.watch => ctx.printer.note(format!(
            "No ModulePullOverrides on context {:?}.",
            overrides.cluster.context
        )),
        _ => {
            print_table(&ctx.printer, &rows, wide, true);
            print_causes(&ctx.printer, &rows);
        }
    }
    if args.watch {
        watch(ctx, &overrides, &args, &world, fallback.as_ref()).await?;
    }
    let looked_up: Vec<&Row> = rows.iter().filter(|r| r.source.is_some()).collect();
    if !args.offline
        && !looked_up.is_empty()
        && looked_up.iter().all(|r| r.registry_digest.is_none())
    {
        return Err(Error::runtime(format!(
            "no registry lookup succeeded ({} tried); the table shows the cluster side only",
            looked_up.len()
        ))
        .with_hint("the causes are under the table; run with --offline to skip the registry"));
    }
    Ok(Outcome::Success)
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
    printer: &Printer,
) -> Vec<Row> {
    let lookups =
        sources::lookup_all(world, fallback, items, offline, timeout, Some(printer)).await;
    items
        .iter()
        .zip(lookups)
        .map(|(mpo, lookup)| make_row(mpo, lookup))
        .collect()
}

/// A row from an override and its lookup; the cause says what blocks it, else why the
/// registry digest is unknown.
fn make_row(mpo: &ModulePullOverride, lookup: Lookup) -> Row {
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
        Some(Err(err)) => (None, None, Some(err.message)),
        None => (None, None, None),
    };
    let message = mpo.message().unwrap_or_default().to_string();
    let cause = if ready {
        registry_error.map(|e| format!("registry: {e}"))
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
    }
}

/// The MESSAGE column's width in the default table; `-o wide` shows it whole.
const MESSAGE_WIDTH: usize = 40;

fn table_row(row: &Row, wide: bool) -> Vec<(String, Tone)> {
    let message_tone = if row.ready { Tone::Good } else { Tone::Bad };
    let sync_tone = match row.sync {
        SyncState::InSync => Tone::Good,
        SyncState::Behind => Tone::Warn,
        SyncState::Unknown => Tone::Dim,
    };
    let digest = |d: &Option<String>| d.as_deref().map(short_digest).unwrap_or_else(|| "-".into());
    let message = if row.message.is_empty() {
        "<none>".to_string()
    } else if wide {
        row.message.clone()
    } else {
        // Escaped first, so that the width counts what the terminal shows.
        truncate_middle(&crate::output::inline(&row.message), MESSAGE_WIDTH)
    };
    let mut cells = vec![
        (row.name.clone(), Tone::Bold),
        (row.tag.clone(), Tone::Plain),
        (message, message_tone),
        (digest(&row.cluster_digest), Tone::Plain),
        (digest(&row.registry_digest), Tone::Plain),
        (sync_label(row), sync_tone),
        (
            if row.updated_at.is_some() {
                age_of(row.updated_at.as_deref())
            } else {
                "-".into()
            },
            Tone::Dim,
        ),
    ];
    if wide {
        cells.push((
            row.source.clone().unwrap_or_else(|| "-".into()),
            Tone::Plain,
        ));
    }
    cells
}

/// SYNC: for a multi-arch tag, which of its digests the cluster runs.
fn sync_label(row: &Row) -> String {
    match row.matched_digest {
        Some(DigestMatch::Index) => "in sync (index)".to_string(),
        Some(DigestMatch::Amd64Child) => "in sync (amd64)".to_string(),
        _ => row.sync.label().to_string(),
    }
}

const HEADERS: [&str; 7] = [
    "NAME", "TAG", "MESSAGE", "CLUSTER", "REGISTRY", "SYNC", "UPDATED",
];

/// The table, with its header unless rows are appended under an earlier one.
pub fn print_table(printer: &Printer, rows: &[Row], wide: bool, header: bool) {
    let mut headers = HEADERS.to_vec();
    if wide {
        headers.push("SOURCE");
    }
    let cells: Vec<Vec<(String, Tone)>> = rows.iter().map(|r| table_row(r, wide)).collect();
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
        .filter(|r| r.cause.is_some() && (!r.ready || r.registry_digest.is_none()))
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

/// How long `--watch` rides out a failing watch before it gives up on the API server.
const WATCH_FAILURE_GRACE: Duration = Duration::from_secs(10);

/// Prints a row each time an override changes, like `kubectl get -w`.
async fn watch(
    ctx: &Ctx,
    overrides: &Overrides,
    args: &StatusArgs,
    world: &World,
    fallback: Option<&RegistryTarget>,
) -> Result<()> {
    let names: Vec<String> = args.modules.iter().map(|m| m.to_string()).collect();
    let stream = watcher(
        overrides.api.clone(),
        wait::watch_config(&overrides.cluster),
    );
    let mut stream = std::pin::pin!(stream);
    let mut seen_initial = false;
    let mut failing_since: Option<tokio::time::Instant> = None;
    loop {
        let event = tokio::select! {
            event = stream.try_next() => event,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let event = match event {
            Ok(event) => {
                failing_since = None;
                event
            }
            Err(err) => {
                if let Some(error) = wait::final_watch_error(&overrides.cluster, &err) {
                    return Err(error);
                }
                // A dropped connection or an API server restart: the watcher resumes
                // from its last resourceVersion on the next poll; a server that stays
                // away ends the watch.
                ctx.printer
                    .debug(1, format!("watch of overrides restarted: {err}"));
                let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() >= WATCH_FAILURE_GRACE {
                    return Err(Error::runtime(format!(
                        "lost the API server {} while watching overrides: {err}",
                        overrides.cluster.place()
                    ))
                    .with_source(err));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let changed = match event {
            Some(watcher::Event::InitDone) => {
                seen_initial = true;
                continue;
            }
            Some(watcher::Event::Apply(object)) if seen_initial => object,
            Some(watcher::Event::Delete(object)) if seen_initial => {
                let name = object.metadata.name.unwrap_or_default();
                if names.is_empty() || names.contains(&name) {
                    ctx.printer.line(format!(
                        "{}   (deleted)",
                        ctx.printer.paint(&name, Tone::Bold)
                    ));
                }
                continue;
            }
            Some(_) => continue,
            None => return Ok(()),
        };
        let name = changed.metadata.name.clone().unwrap_or_default();
        if !names.is_empty() && !names.contains(&name) {
            continue;
        }
        let rows = rows(
            world,
            fallback,
            std::slice::from_ref(&changed),
            args.offline,
            args.registry_timeout,
            &ctx.printer,
        )
        .await;
        print_table(
            &ctx.printer,
            &rows,
            args.output == Some(ListFormat::Wide),
            false,
        );
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
        }
    }

    fn rendered(rows: &[Row], wide: bool) -> String {
        let (printer, out, _) = Printer::capture(false, 0);
        print_table(&printer, rows, wide, true);
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
    fn sync_says_which_digest_of_a_multi_arch_tag_the_cluster_runs() {
        let current = format!("sha256:{}", "a".repeat(64));
        let mut by_index = row("echo", "Ready", true, Some(&current), None);
        by_index.matched_digest = Some(DigestMatch::Index);
        let mut by_child = row("hello", "Ready", true, Some(&current), None);
        by_child.matched_digest = Some(DigestMatch::Amd64Child);
        let plain = row("plain", "Ready", true, Some(&current), None);
        let text = rendered(&[by_index, by_child, plain], false);
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
