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
use crate::output::table::{truncate_keeping_end, truncate_middle};
use crate::output::{Printer, Tone, age_of, short_digest};
use crate::registry::RegistryTarget;

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
) -> Vec<Row> {
    let lookups = sources::lookup_all(world, fallback, items, offline, timeout).await;
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
    // The cluster runs the index's amd64 image or, on controllers that take the tag's
    // own digest, the index itself (docs/deckhouse-real.md §3.1): both are in sync.
    let sync = match (&cluster_digest, &index_digest) {
        (Some(cluster), Some(index)) if cluster == index => SyncState::InSync,
        _ => SyncState::of(cluster_digest.as_deref(), registry_digest.as_deref()),
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
        updated_at: mpo.updated_at().map(str::to_string),
        source: lookup.source,
        cause,
    }
}

/// The width the default table keeps within (the review's 100 columns); MESSAGE, the
/// last column, gets what the others leave, and `-o wide` shows it whole.
const TABLE_WIDTH: usize = 100;
/// MESSAGE never gets narrower than this, even beside very long names.
const MIN_MESSAGE_WIDTH: usize = 24;
/// TAG beyond this is shortened in the default table (tags may be 128 characters).
const TAG_WIDTH: usize = 24;
/// Columns are separated by three spaces.
const GAP: usize = 3;

const HEADERS: [&str; 5] = ["NAME", "TAG", "SYNC", "UPDATED", "MESSAGE"];
/// `-o wide` adds these after the default columns, as kubectl does.
const WIDE_HEADERS: [&str; 3] = ["CLUSTER", "REGISTRY", "SOURCE"];

fn table_row(row: &Row, wide: bool, message_width: usize) -> Vec<(String, Tone)> {
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
            truncate_middle(&crate::output::inline(&row.tag), TAG_WIDTH),
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
        (row.sync.label().to_string(), sync_tone),
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
    }
    cells
}

/// A controller message without its addresses, for the default table: the parts of
/// "Download error: fetch the image digest HOST/PATH:TAG: Not authorized: url https://..."
/// that name a place (a URL, or ending in a repository path) are dropped, so that the
/// reason fits. `-o wide` and the cause lines keep the whole text.
fn summary(message: &str) -> String {
    let kept: Vec<&str> = message
        .split(": ")
        .filter(|part| {
            !part.contains("://")
                && !part
                    .split_whitespace()
                    .last()
                    .is_some_and(|last| last.contains('/'))
        })
        .collect();
    if kept.is_empty() {
        message.to_string()
    } else {
        kept.join(": ")
    }
}

/// What is left of [`TABLE_WIDTH`] for MESSAGE once the columns before it are laid out.
fn message_width(rows: &[Row]) -> usize {
    let widest = |header: &str, cell: &dyn Fn(&Row) -> usize| {
        rows.iter().map(cell).max().unwrap_or(0).max(header.len())
    };
    let name = widest("NAME", &|r| crate::output::inline(&r.name).chars().count());
    let tag = widest("TAG", &|r| {
        crate::output::inline(&r.tag).chars().count().min(TAG_WIDTH)
    });
    let sync = widest("SYNC", &|r| r.sync.label().len());
    let updated = widest("UPDATED", &|r| {
        if r.updated_at.is_some() {
            age_of(r.updated_at.as_deref()).len()
        } else {
            1
        }
    });
    TABLE_WIDTH
        .saturating_sub(name + tag + sync + updated + 4 * GAP)
        .max(MIN_MESSAGE_WIDTH)
}

/// The table, with its header unless rows are appended under an earlier one.
pub fn print_table(printer: &Printer, rows: &[Row], wide: bool, header: bool) {
    let mut headers = HEADERS.to_vec();
    if wide {
        headers.extend(WIDE_HEADERS);
    }
    let width = message_width(rows);
    let cells: Vec<Vec<(String, Tone)>> = rows.iter().map(|r| table_row(r, wide, width)).collect();
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
