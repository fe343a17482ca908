//! `kubectl mpo diff MODULE [--content]`: the digest the cluster deployed against the one
//! the controller would resolve now; with `--content`, what changed between the images.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::app::images::{APP_IMAGES, app_images};
use crate::app::overrides::Overrides;
use crate::app::sources::{self, REGISTRY_TIMEOUT, registry_error};
use crate::app::{Ctx, Outcome};
use crate::cli::{DiffArgs, ReportFormat};
use crate::error::{Error, Result};
use crate::output::{Printer, To, Tone};
use crate::registry::{
    DigestMatch, ImageLimits, ImageTree, ReadPlan, RegistryError, RegistryErrorKind,
    RegistryTarget, SourceRegistry, human_bytes,
};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChangedFile {
    path: String,
    /// Unified diff for text files; absent for binary files.
    #[serde(skip_serializing_if = "Option::is_none")]
    diff: Option<String>,
    /// Why no diff is shown for a file that may be text (over a size cap).
    #[serde(skip_serializing_if = "Option::is_none")]
    not_shown: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ImageChange {
    name: String,
    from: Option<String>,
    to: Option<String>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct ContentDiff {
    added: Vec<String>,
    removed: Vec<String>,
    changed: Vec<ChangedFile>,
    images: Vec<ImageChange>,
}

/// `diff -o json|yaml` schema.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    module: String,
    tag: String,
    image: String,
    cluster_digest: Option<String>,
    registry_digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    index_digest: Option<String>,
    same: bool,
    /// When `same`: which digest of the tag the cluster runs (`image`, `amd64Child`,
    /// `index`; docs/deckhouse-real.md §3.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    matched_digest: Option<DigestMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<ContentDiff>,
    /// Which commit runs and which the registry has (OCI annotations or labels).
    #[serde(skip_serializing_if = "Option::is_none")]
    provenance: Option<crate::app::tags::ProvenancePair>,
}

pub async fn run(ctx: &Ctx, args: DiffArgs) -> Result<Outcome> {
    let fallback = sources::fallback(&args.fallback.spec())?;
    let limits = ImageLimits::from(&args.limits);
    let name: &str = &args.module;
    let overrides = Overrides::connect(ctx).await?;
    let mpo = overrides.require(name).await?;
    let tag = mpo.spec.image_tag.clone();
    let source =
        sources::choose_target(ctx, &overrides.cluster, Some(name), None, fallback.as_ref())
            .await?;
    let client = sources::client_for(&source, REGISTRY_TIMEOUT)?;
    let image = client.image_name(name, &tag);
    let spinner = ctx.printer.spinner(format!("resolving {image}"));
    let resolved = client.module_digest(name, &tag).await;
    drop(spinner);
    sources::print_notices(&ctx.printer, &client);
    let resolved = resolved.map_err(|err| registry_error(&source, Some(name), err))?;
    let cluster_digest = mpo.image_digest().map(str::to_string);
    // The index's amd64 image or the index itself, as controllers differ (§3.1).
    let matched_digest = cluster_digest
        .as_deref()
        .and_then(|cluster| resolved.matches(cluster));
    let same = matched_digest.is_some();

    let content = match (&cluster_digest, args.content && !same) {
        (Some(deployed), true) => {
            let spinner = ctx.printer.spinner("pulling both images");
            // First pass: sizes and digests only; second pass: the content of the changed
            // files that will be shown, so memory follows what is shown, not the images.
            let mut plan = ReadPlan {
                keep: [APP_IMAGES.to_string()].into(),
                digests: true,
            };
            let mut trees = pull_both(&client, name, deployed, &resolved.digest, &limits, &plan)
                .await
                .map_err(|err| err.for_source(&source, name));
            if let Ok((old, new)) = &trees {
                let shown = diff_candidates(old, new, limits.max_file_bytes);
                if !shown.is_empty() {
                    plan.keep.extend(shown);
                    trees = pull_both(&client, name, deployed, &resolved.digest, &limits, &plan)
                        .await
                        .map_err(|err| err.for_source(&source, name));
                }
            }
            drop(spinner);
            let (old, new) = trees?;
            Some(compare(&old, &new, &limits)?)
        }
        _ => None,
    };
    let provenance =
        Some(crate::app::tags::provenance(&client, name, &tag, cluster_digest.as_deref()).await)
            .filter(|p| !p.is_empty());
    let report = Report {
        provenance,
        module: name.to_string(),
        tag,
        image,
        cluster_digest,
        registry_digest: resolved.digest,
        index_digest: resolved.index_digest,
        same,
        matched_digest,
        content,
    };
    match args.output {
        Some(ReportFormat::Json) => ctx.printer.json(&report)?,
        Some(ReportFormat::Yaml) => ctx.printer.yaml(&report)?,
        None => print_report(&ctx.printer, &report, args.content),
    }
    Ok(if report.same {
        Outcome::Success
    } else {
        Outcome::ConditionFailed
    })
}

/// Which side of the diff failed to read.
enum PullError {
    Deployed(RegistryError),
    Registry(RegistryError),
}

impl PullError {
    fn for_source(self, source: &RegistryTarget, module: &str) -> Error {
        match self {
            PullError::Deployed(err) if err.kind == RegistryErrorKind::NotFound => registry_error(
                source,
                Some(module),
                err,
            )
            .with_hint(
                "the deployed image may have been deleted from the registry (garbage collection)",
            ),
            PullError::Deployed(err) | PullError::Registry(err) => {
                registry_error(source, Some(module), err)
            }
        }
    }
}

async fn pull_both(
    client: &SourceRegistry,
    name: &str,
    deployed: &str,
    current: &str,
    limits: &ImageLimits,
    plan: &ReadPlan,
) -> std::result::Result<(ImageTree, ImageTree), PullError> {
    let (old, new) = tokio::join!(
        client.image_tree(name, deployed, limits, plan),
        client.image_tree(name, current, limits, plan)
    );
    Ok((
        old.map_err(PullError::Deployed)?,
        new.map_err(PullError::Registry)?,
    ))
}

/// Text diffs are kept to this much content in memory, both images together.
const DIFF_CONTENT_BUDGET: u64 = 64 << 20;

/// The changed files whose content is read for a unified diff: both sides within the
/// one-file cap, in path order, until the budget is spent.
fn diff_candidates(old: &ImageTree, new: &ImageTree, max_file_bytes: u64) -> Vec<String> {
    let mut spent = 0u64;
    let mut shown = Vec::new();
    for (path, after) in &new.files {
        let Some(before) = old.files.get(path) else {
            continue;
        };
        if before.digest == after.digest
            || before.size > max_file_bytes
            || after.size > max_file_bytes
        {
            continue;
        }
        spent += before.size + after.size;
        if spent > DIFF_CONTENT_BUDGET {
            break;
        }
        shown.push(path.clone());
    }
    shown
}

fn is_text(content: &[u8]) -> bool {
    !content.contains(&0) && std::str::from_utf8(content).is_ok()
}

fn compare(old: &ImageTree, new: &ImageTree, limits: &ImageLimits) -> Result<ContentDiff> {
    let mut diff = ContentDiff::default();
    for (path, after) in &new.files {
        match old.files.get(path) {
            None => diff.added.push(path.clone()),
            Some(before_file) if before_file.digest != after.digest => {
                let (Some(before), Some(content)) =
                    (before_file.content.as_deref(), after.content.as_deref())
                else {
                    let largest = before_file.size.max(after.size);
                    let not_shown = if largest > limits.max_file_bytes {
                        format!(
                            "{largest} bytes, over the {} limit for one file (--max-file-size)",
                            human_bytes(limits.max_file_bytes)
                        )
                    } else {
                        format!(
                            "over the {} of changed content shown in one diff",
                            human_bytes(DIFF_CONTENT_BUDGET)
                        )
                    };
                    diff.changed.push(ChangedFile {
                        path: path.clone(),
                        diff: None,
                        not_shown: Some(not_shown),
                    });
                    continue;
                };
                let text = (is_text(before) && is_text(content)).then(|| {
                    similar::TextDiff::from_lines(
                        String::from_utf8_lossy(before).as_ref(),
                        String::from_utf8_lossy(content).as_ref(),
                    )
                    .unified_diff()
                    .context_radius(3)
                    .header(&format!("cluster/{path}"), &format!("registry/{path}"))
                    .to_string()
                });
                diff.changed.push(ChangedFile {
                    path: path.clone(),
                    diff: text,
                    not_shown: None,
                });
            }
            Some(_) => {}
        }
    }
    diff.removed = old
        .files
        .keys()
        .filter(|p| !new.files.contains_key(*p))
        .cloned()
        .collect();
    let before: BTreeMap<String, String> = app_images(old)?.into_iter().collect();
    let after: BTreeMap<String, String> = app_images(new)?.into_iter().collect();
    let names: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for name in names {
        let (from, to) = (before.get(name), after.get(name));
        if from != to {
            diff.images.push(ImageChange {
                name: name.clone(),
                from: from.cloned(),
                to: to.cloned(),
            });
        }
    }
    Ok(diff)
}

fn print_report(p: &Printer, report: &Report, content_requested: bool) {
    p.line(format!("image:    {}", report.image));
    p.line(format!(
        "cluster:  {}",
        report.cluster_digest.as_deref().map_or_else(
            || "<nothing deployed yet>".to_string(),
            |d| p.digest_on(To::Out, d)
        )
    ));
    p.line(format!(
        "registry: {}",
        p.digest_on(To::Out, &report.registry_digest)
    ));
    if let Some(provenance) = &report.provenance {
        for line in provenance.lines() {
            p.line(line);
        }
    }
    if let Some(index) = &report.index_digest {
        p.line(p.paint(
            &format!("          (the tag is a multi-arch index {}; controllers deploy its linux/amd64 image or the index itself, both compared here)", p.digest_on(To::Out, index)),
            Tone::Dim,
        ));
    }
    if report.same {
        let which = match report.matched_digest {
            Some(m @ (DigestMatch::Index | DigestMatch::Amd64Child)) => {
                format!(" ({})", m.describe())
            }
            _ => String::new(),
        };
        p.line(p.paint(
            &format!("in sync: the cluster runs the registry's current build{which}"),
            Tone::Good,
        ));
        return;
    }
    if report.cluster_digest.is_none() {
        // Nothing of this override runs (blocked, or not processed yet): file contents
        // would compare against nothing.
        p.line(p.paint(
            "different: the cluster runs no build of this override yet",
            Tone::Warn,
        ));
        p.line(p.paint(
            &format!(
                "(see why nothing is deployed: kubectl mpo explain {})",
                report.module
            ),
            Tone::Dim,
        ));
        return;
    }
    p.line(p.paint(
        "different: the registry has a build the cluster does not run",
        Tone::Warn,
    ));
    let Some(content) = &report.content else {
        if !content_requested {
            p.line(p.paint(
                &format!(
                    "(see what changed: kubectl mpo diff {} --content)",
                    report.module
                ),
                Tone::Dim,
            ));
        }
        return;
    };
    p.line("");
    for path in &content.added {
        p.line(p.paint(&format!("added:    {path}"), Tone::Good));
    }
    for path in &content.removed {
        p.line(p.paint(&format!("removed:  {path}"), Tone::Bad));
    }
    for file in &content.changed {
        p.line(p.paint(&format!("changed:  {}", file.path), Tone::Warn));
    }
    for image in &content.images {
        p.line(format!(
            "app image {}: {} -> {}",
            image.name,
            image
                .from
                .as_deref()
                .map_or_else(|| "<none>".to_string(), |d| p.digest_on(To::Out, d)),
            image
                .to
                .as_deref()
                .map_or_else(|| "<none>".to_string(), |d| p.digest_on(To::Out, d))
        ));
    }
    for file in &content.changed {
        match &file.diff {
            Some(text) => {
                p.line("");
                for line in text.lines() {
                    let tone = if line.starts_with('+') && !line.starts_with("+++") {
                        Tone::Good
                    } else if line.starts_with('-') && !line.starts_with("---") {
                        Tone::Bad
                    } else {
                        Tone::Plain
                    };
                    p.line(p.paint(line, tone));
                }
            }
            None => match &file.not_shown {
                Some(reason) => p.line(format!(
                    "Files cluster/{0} and registry/{0} differ (not shown: {reason})",
                    file.path
                )),
                None => p.line(format!(
                    "Binary files cluster/{0} and registry/{0} differ",
                    file.path
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            builder
                .append_data(&mut header, path, content.as_bytes())
                .expect("tar");
        }
        builder.into_inner().expect("tar")
    }

    fn tree(files: &[(&str, &str)], limits: &ImageLimits, plan: &ReadPlan) -> ImageTree {
        let mut tree = ImageTree::new("sha256:x".into());
        tree.apply_layer(&tar_of(files), "", limits, plan)
            .expect("layer");
        tree
    }

    #[test]
    fn only_changed_files_within_the_cap_are_read_and_diffed() {
        let limits = ImageLimits {
            max_file_bytes: 1024,
            ..ImageLimits::default()
        };
        let (big_before, big_after) = ("a\n".repeat(1000), "b\n".repeat(1000));
        let before = [
            ("a.txt", "1\n"),
            ("big.txt", big_before.as_str()),
            ("same.txt", "s\n"),
        ];
        let after = [
            ("a.txt", "2\n"),
            ("big.txt", big_after.as_str()),
            ("same.txt", "s\n"),
            ("new.txt", "n\n"),
        ];
        let first = ReadPlan {
            keep: [APP_IMAGES.to_string()].into(),
            digests: true,
        };
        let (old, new) = (
            tree(&before, &limits, &first),
            tree(&after, &limits, &first),
        );
        // Pass one keeps no content; pass two only what will be shown.
        assert_eq!(old.content("a.txt"), None);
        let shown = diff_candidates(&old, &new, limits.max_file_bytes);
        assert_eq!(shown, ["a.txt"]);
        let second = ReadPlan {
            keep: shown.into_iter().collect(),
            digests: true,
        };
        let (old, new) = (
            tree(&before, &limits, &second),
            tree(&after, &limits, &second),
        );
        assert_eq!(new.content("big.txt"), None);
        let diff = compare(&old, &new, &limits).expect("compare");
        assert_eq!(diff.added, ["new.txt"]);
        assert!(diff.removed.is_empty());
        let changed: Vec<&str> = diff.changed.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(changed, ["a.txt", "big.txt"]);
        assert!(
            diff.changed[0]
                .diff
                .as_deref()
                .is_some_and(|d| d.contains("-1\n+2")),
            "{:?}",
            diff.changed[0].diff
        );
        assert_eq!(diff.changed[1].diff, None);
        assert!(
            diff.changed[1]
                .not_shown
                .as_deref()
                .is_some_and(|why| why.contains("--max-file-size") && why.contains("2000 bytes")),
            "{:?}",
            diff.changed[1].not_shown
        );
    }

    #[test]
    fn the_diff_report() {
        let report = Report {
            provenance: None,
            module: "echo".into(),
            tag: "pr1".into(),
            image: "reg.io/modules/echo:pr1".into(),
            cluster_digest: Some(format!("sha256:{}", "a".repeat(64))),
            registry_digest: format!("sha256:{}", "b".repeat(64)),
            index_digest: None,
            same: false,
            matched_digest: None,
            content: Some(ContentDiff {
                added: vec!["templates/new.yaml".into()],
                removed: vec!["old.txt".into()],
                changed: vec![ChangedFile {
                    path: "values.yaml".into(),
                    diff: Some("--- cluster/values.yaml\n+++ registry/values.yaml\n@@ -1 +1 @@\n-replicas: 1\n+replicas: 2\n".into()),
                    not_shown: None,
                }],
                images: vec![ImageChange {
                    name: "echo".into(),
                    from: Some("sha256:aa".into()),
                    to: Some("sha256:bb".into()),
                }],
            }),
        };
        let (printer, out, _) = Printer::capture(false, 0);
        print_report(&printer, &report, true);
        insta::assert_snapshot!(out.text());
    }
}
