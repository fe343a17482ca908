//! `kubectl mpo history MODULE`: the tags the plugin set on an override, from its
//! history annotation, with a tag set by other means noticed as such.

use serde::Serialize;

use crate::app::history::{self, Revision};
use crate::app::overrides::Overrides;
use crate::app::{Ctx, Outcome};
use crate::cli::{HistoryArgs, ReportFormat};
use crate::error::Result;
use crate::output::{Printer, Tone, age_of, short_digest};

/// `history -o json|yaml` schema.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HistoryDoc<'a> {
    module: &'a str,
    current_tag: &'a str,
    revisions: &'a [Revision],
}

pub async fn run(ctx: &Ctx, args: HistoryArgs) -> Result<Outcome> {
    let overrides = Overrides::connect(ctx).await?;
    let module = args.module.to_string();
    let mpo = overrides.require(&module).await?;
    let revisions = history::with_current(&mpo);
    let doc = HistoryDoc {
        module: &module,
        current_tag: &mpo.spec.image_tag,
        revisions: &revisions,
    };
    match args.output {
        Some(ReportFormat::Json) => ctx.printer.json(&doc)?,
        Some(ReportFormat::Yaml) => ctx.printer.yaml(&doc)?,
        None => render(&ctx.printer, &revisions),
    }
    Ok(Outcome::Success)
}

fn render(printer: &Printer, revisions: &[Revision]) {
    let rows: Vec<Vec<(String, Tone)>> = revisions
        .iter()
        .rev()
        .enumerate()
        .map(|(index, r)| {
            let current = index == 0;
            vec![
                (r.revision.to_string(), Tone::Plain),
                (
                    if current {
                        format!("{} (current)", r.tag)
                    } else {
                        r.tag.clone()
                    },
                    if current { Tone::Good } else { Tone::Plain },
                ),
                (
                    r.digest
                        .as_deref()
                        .map(short_digest)
                        .unwrap_or_else(|| "-".into()),
                    Tone::Plain,
                ),
                (
                    if r.at.is_empty() {
                        "-".into()
                    } else {
                        age_of(Some(&r.at))
                    },
                    Tone::Plain,
                ),
                (
                    r.by.clone(),
                    if r.by == history::OUTSIDE {
                        Tone::Warn
                    } else {
                        Tone::Plain
                    },
                ),
            ]
        })
        .collect();
    printer.table(&["REVISION", "TAG", "DIGEST", "SET", "BY"], &rows);
}
