//! `kubectl mpo diff MODULE [--content]`: the digest the cluster deployed against the one
//! the controller would resolve now; with `--content`, what changed between the images.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::app::overrides::Overrides;
use crate::app::sources::{self, REGISTRY_TIMEOUT, registry_error};
use crate::app::{Ctx, Outcome};
use crate::cli::{DiffArgs, ReportFormat};
use crate::deckhouse::layout;
use crate::error::{Error, Result};
use crate::output::{Printer, Tone};
use crate::registry::ImageTree;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChangedFile {
    path: String,
    /// Unified diff for text files; absent for binary files.
    #[serde(skip_serializing_if = "Option::is_none")]
    diff: Option<String>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<ContentDiff>,
}

pub async fn run(ctx: &Ctx, args: DiffArgs) -> Result<Outcome> {
    let fallback = sources::fallback(&args.fallback)?;
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
    let resolved = resolved.map_err(|err| registry_error(&source, Some(name), err))?;
    let cluster_digest = mpo.image_digest().map(str::to_string);
    let same = cluster_digest.as_deref() == Some(resolved.digest.as_str());

    let content = match (&cluster_digest, args.content && !same) {
        (Some(deployed), true) => {
            let spinner = ctx.printer.spinner("pulling both images");
            let (old, new) = tokio::join!(
                client.image_tree(name, deployed),
                client.image_tree(name, &resolved.digest)
            );
            drop(spinner);
            let old = old.map_err(|err| {
                registry_error(&source, Some(name), err).with_hint(
                    "the deployed image may have been deleted from the registry (garbage collection)",
                )
            })?;
            let new = new.map_err(|err| registry_error(&source, Some(name), err))?;
            Some(compare(&old, &new)?)
        }
        _ => None,
    };
    let report = Report {
        module: name.to_string(),
        tag,
        image,
        cluster_digest,
        registry_digest: resolved.digest,
        index_digest: resolved.index_digest,
        same,
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

fn is_text(content: &[u8]) -> bool {
    !content.contains(&0) && std::str::from_utf8(content).is_ok()
}

fn compare(old: &ImageTree, new: &ImageTree) -> Result<ContentDiff> {
    let mut diff = ContentDiff::default();
    for (path, content) in &new.files {
        match old.files.get(path) {
            None => diff.added.push(path.clone()),
            Some(before) if before != content => {
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

/// `images_digests.json` of an image, when it has one.
fn app_images(tree: &ImageTree) -> Result<Vec<(String, String)>> {
    match tree.files.get("images_digests.json") {
        Some(raw) => layout::app_images(raw).map_err(Error::runtime),
        None => Ok(Vec::new()),
    }
}

fn print_report(p: &Printer, report: &Report, content_requested: bool) {
    p.line(format!("image:    {}", report.image));
    p.line(format!(
        "cluster:  {}",
        report
            .cluster_digest
            .as_deref()
            .unwrap_or("<nothing deployed yet>")
    ));
    p.line(format!("registry: {}", report.registry_digest));
    if let Some(index) = &report.index_digest {
        p.line(p.paint(
            &format!("          (the tag is a multi-arch index {index}; the controller deploys its linux/amd64 image, compared here)"),
            Tone::Dim,
        ));
    }
    if report.same {
        p.line(p.paint(
            "in sync: the cluster runs the registry's current build",
            Tone::Good,
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
            image.from.as_deref().unwrap_or("<none>"),
            image.to.as_deref().unwrap_or("<none>")
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
            None => p.line(format!(
                "Binary files cluster/{0} and registry/{0} differ",
                file.path
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diff_report() {
        let report = Report {
            module: "echo".into(),
            tag: "pr1".into(),
            image: "reg.io/modules/echo:pr1".into(),
            cluster_digest: Some(format!("sha256:{}", "a".repeat(64))),
            registry_digest: format!("sha256:{}", "b".repeat(64)),
            index_digest: None,
            same: false,
            content: Some(ContentDiff {
                added: vec!["templates/new.yaml".into()],
                removed: vec!["old.txt".into()],
                changed: vec![ChangedFile {
                    path: "values.yaml".into(),
                    diff: Some("--- cluster/values.yaml\n+++ registry/values.yaml\n@@ -1 +1 @@\n-replicas: 1\n+replicas: 2\n".into()),
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
