//! `kubectl mpo edit MODULE [--tag T] [--scan-interval D] [--rollback=BOOL]`
//!
//! Changes only the fields asked for. The write carries the resourceVersion that was
//! read, so a change made by someone else in between is detected: if it touched other
//! fields the patch is re-applied on top of it; if it touched the same fields the edit
//! stops and says so instead of overwriting it.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::app::diagnose;
use crate::app::history;
use crate::app::overrides::{
    CLIENT_DRY_RUN, Changes, Overrides, Update, dry_run_note, name_of, print_object,
};
use crate::app::sources;
use crate::app::wait::{self, deleted_while_waiting, new_verdict_on};
use crate::app::{Ctx, Outcome};
use crate::cli::{DryRun, EditArgs};
use crate::deckhouse::resources::ModulePullOverride;
use crate::error::{Error, Result};
use crate::output::To;
use crate::validate;

pub async fn run(ctx: &Ctx, args: EditArgs) -> Result<Outcome> {
    let module = args.module.to_string();
    let from_flags = args.tag.is_some() || args.scan_interval.is_some() || args.rollback.is_some();
    let editor = editor_command();
    if !from_flags && editor.is_none() && !ctx.printer.interactive() {
        return Err(
            Error::usage("nothing to change: give --tag, --scan-interval or --rollback").with_hint(
                format!("for example: kubectl mpo edit {module} --tag v1.2.3"),
            ),
        );
    }

    let overrides = Overrides::connect(ctx)
        .await?
        .with_field_manager(&args.field_manager);
    let original = overrides.require(&module).await?;

    let wanted = if from_flags {
        Changes {
            tag: args.tag.clone().map(String::from),
            scan_interval: args.scan_interval.clone().map(|s| s.text),
            rollback: args.rollback,
        }
    } else if let Some(editor) = editor {
        match edit_in_editor(ctx, &editor, &original).await? {
            Some(changes) => changes,
            None => {
                ctx.printer.note("Edit cancelled, no changes made.");
                return Ok(Outcome::Success);
            }
        }
    } else {
        let tag =
            sources::pick_tag(ctx, &overrides, &module, Some(&original.spec.image_tag)).await?;
        Changes {
            tag: Some(tag),
            ..Changes::default()
        }
    };
    let changes = wanted.against(&original.spec);
    if changes.is_empty() {
        ctx.printer.line(format!("{} unchanged", name_of(&module)));
        return Ok(Outcome::Success);
    }
    // The new tag is checked as `create` checks it: a tag the override could not
    // become Ready with is refused unless --force.
    let mut expected_digests = Vec::new();
    let mut history_entry = None;
    if let Some(tag) = &changes.tag {
        let checks = diagnose::preflight(
            ctx,
            &overrides,
            &module,
            tag,
            false,
            true,
            original.spec.source.as_deref(),
        )
        .await?;
        expected_digests.extend(checks.registry_digest.clone());
        expected_digests.extend(checks.registry_index_digest.clone());
        if checks.image_failed && !args.force {
            return Err(Error::condition(format!(
                "the image {module}:{tag} does not fit this cluster (see above); nothing was changed"
            ))
            .with_hint(format!(
                "fix the problem above, or change the tag anyway with: kubectl mpo edit {module} --tag {tag} --force"
            )));
        }
        if !checks.ok {
            if args.force {
                ctx.printer.warn(format!(
                    "changing the tag anyway (--force): with tag {tag} the override will not become Ready until the problem above is fixed"
                ));
            } else {
                return Err(Error::condition(format!(
                    "with tag {tag} the override {module:?} could not become Ready; nothing was changed"
                ))
                .with_hint(format!(
                    "fix the problem above, or change it anyway with: kubectl mpo edit {module} --tag {tag} --force"
                )));
            }
        }
        history_entry = Some((tag.to_string(), checks.registry_digest.clone()));
    }

    if args.dry_run == DryRun::Client {
        let mut preview = original.clone();
        changes.apply_to(&mut preview.spec);
        match args.output {
            Some(format) => print_object(ctx, &preview, overrides.version, format)?,
            None => ctx.printer.yaml(&preview)?,
        }
        ctx.printer.note(CLIENT_DRY_RUN);
        return Ok(Outcome::Success);
    }

    let history_entry = history_entry.map(|(tag, digest)| {
        move |current: &ModulePullOverride| {
            history::record(
                Some(current),
                &tag,
                digest.as_deref(),
                "edit",
                &jiff::Timestamp::now().to_string(),
            )
        }
    });
    let updated = overrides
        .update(
            &ctx.printer,
            &original,
            &Update {
                changes: changes.clone(),
                annotations: Map::new(),
                history: history_entry
                    .as_ref()
                    .map(|entry| entry as &(dyn Fn(&ModulePullOverride) -> String + Sync)),
                dry_run: args.dry_run == DryRun::Server,
                what: "edit",
            },
        )
        .await?;
    let verdict_to = match args.output {
        Some(format) => {
            print_object(ctx, &updated, overrides.version, format)?;
            To::Err
        }
        None => {
            ctx.printer.line(format!(
                "{} edited{}: {}",
                name_of(&module),
                dry_run_note(args.dry_run),
                changes.describe(&original.spec)
            ));
            To::Out
        }
    };
    if let Some(plan) = args.wait.plan().filter(|_| args.dry_run == DryRun::None) {
        let started = tokio::time::Instant::now();
        crate::app::health::announce_checking(ctx, &module, &plan);
        let settled = wait::wait_for(
            ctx,
            &overrides,
            &module,
            plan.timeout,
            "controller verdict on the new spec",
            new_verdict_on(
                &original,
                changes.tag.as_deref().unwrap_or(&original.spec.image_tag),
                expected_digests,
            ),
        )
        .await?
        .ok_or_else(|| deleted_while_waiting(&module))?;
        return wait::report_and_follow(
            ctx,
            &overrides,
            Some(&original),
            &settled,
            verdict_to,
            &plan,
            started,
        )
        .await;
    }
    Ok(Outcome::Success)
}

/// `$KUBE_EDITOR`, else `$EDITOR`, as kubectl picks them.
fn editor_command() -> Option<String> {
    ["KUBE_EDITOR", "EDITOR"]
        .into_iter()
        .filter_map(|var| std::env::var(var).ok())
        .find(|value| !value.trim().is_empty())
}

/// The part of the spec a user may edit, as written to the editor's file.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EditableSpec {
    image_tag: String,
    scan_interval: String,
    rollback: bool,
}

/// Opens the editor on the spec; `None` when the user changed nothing.
///
/// The buffer holds only the three editable spec fields (never a secret), in a file
/// created 0600 inside a fresh 0700 directory, both removed on every way out: success,
/// error, the editor failing, and Ctrl-C. While the editor runs, SIGINT, SIGTERM and
/// SIGHUP are caught instead of ending this process, as `git` does: the editor decides
/// what Ctrl-C means, and this process removes the buffer before it exits.
async fn edit_in_editor(
    ctx: &Ctx,
    editor: &str,
    original: &ModulePullOverride,
) -> Result<Option<Changes>> {
    let name = original.metadata.name.clone().unwrap_or_default();
    let editable = EditableSpec {
        image_tag: original.spec.image_tag.clone(),
        scan_interval: original
            .spec
            .scan_interval
            .clone()
            .unwrap_or_else(|| "15s".into()),
        rollback: original.spec.rollback.unwrap_or(false),
    };
    let body = serde_saphyr::to_string(&editable)
        .map_err(|err| Error::runtime(format!("cannot render the spec: {err}")))?;
    let text = format!(
        "# Edit the spec of ModulePullOverride {name:?}. Lines starting with '#' are ignored;\n\
         # an unchanged file cancels the edit. Fields: imageTag, scanInterval (h/m/s), rollback.\n{body}"
    );
    let buffer = EditBuffer::create(&name, &text)?;
    let path = buffer.path();
    // As `kubectl edit`: an invalid save reopens the editor on the user's own text with
    // the error on top; saving it again unchanged gives up.
    let mut shown = text.clone();
    loop {
        let edited = run_editor(editor, path).await;
        let edited = match edited {
            Ok(edited) => edited,
            Err(err) => {
                drop(buffer);
                return Err(err);
            }
        };
        if edited == text {
            return Ok(None);
        }
        let problem = match parse_edited(&edited) {
            Ok(spec) => {
                ctx.printer.debug(
                    1,
                    format!(
                        "editor returned imageTag={} scanInterval={} rollback={}",
                        spec.image_tag, spec.scan_interval, spec.rollback
                    ),
                );
                let changes = Changes {
                    tag: Some(spec.image_tag),
                    scan_interval: Some(spec.scan_interval),
                    rollback: Some(spec.rollback),
                }
                .against(&original.spec);
                return Ok((!changes.is_empty()).then_some(changes));
            }
            Err(problem) => problem,
        };
        if edited == shown {
            return Err(Error::usage(format!(
                "Edit cancelled, no valid changes were saved: {problem}"
            ))
            .with_hint(format!(
                "nothing was changed; run the edit again: kubectl mpo edit {name}"
            )));
        }
        ctx.printer.note(format!(
            "error: {problem}; reopening the editor on your text"
        ));
        shown = reopened(&edited, &problem);
        buffer.rewrite(&shown)?;
    }
}

/// Runs the editor on `path` and reads back what it saved. While it runs, SIGINT,
/// SIGTERM and SIGHUP are caught (see [`CaughtSignals`]).
async fn run_editor(editor: &str, path: &std::path::Path) -> Result<String> {
    let signals = CaughtSignals::install()?;
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("kubectl-mpo-editor")
        .arg(path)
        .status()
        .await
        .map_err(|err| Error::runtime(format!("cannot start the editor {editor:?}: {err}")))?;
    if signals.interrupted(&status) {
        return Err(Error::interrupted(
            "edit interrupted; nothing was changed (the edit buffer was removed)",
        ));
    }
    if !status.success() {
        let how = match status.code() {
            Some(code) => format!("exited with status {code}"),
            None => "was killed".to_string(),
        };
        return Err(Error::runtime(format!(
            "the editor {editor:?} {how}; nothing was changed"
        )));
    }
    std::fs::read_to_string(path)
        .map_err(|err| Error::runtime(format!("cannot read back {}: {err}", path.display())))
}

/// The spec in the saved text, or what is wrong with it in one line. Comment lines are
/// blanked, not removed, so that a YAML error's line is the editor's line.
fn parse_edited(edited: &str) -> std::result::Result<EditableSpec, String> {
    let uncommented: String = edited
        .lines()
        .map(|l| {
            if l.trim_start().starts_with('#') {
                ""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let parsed: BTreeMap<String, Value> = serde_saphyr::from_str(&uncommented).map_err(|err| {
        let text = err.to_string();
        let first = text.lines().next().unwrap_or_default();
        format!(
            "the edited spec is not valid YAML: {}",
            first.trim_start_matches("error: ")
        )
    })?;
    let spec: EditableSpec = serde_json::from_value(Value::Object(parsed.into_iter().collect()))
        .map_err(|err| {
            format!("the edited spec is invalid: {err} (keep the fields imageTag, scanInterval and rollback)")
        })?;
    let shown = |err: Error| match err.hint {
        Some(hint) => format!("{} ({hint})", err.message),
        None => err.message,
    };
    validate::image_tag(&spec.image_tag).map_err(shown)?;
    validate::scan_interval(&spec.scan_interval).map_err(shown)?;
    Ok(spec)
}

/// The text the editor is reopened on: the header and the error as comments, then the
/// user's text without its earlier comment lines.
fn reopened(edited: &str, problem: &str) -> String {
    let body: Vec<&str> = edited
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    format!(
        "# Edit the spec again: the saved text was not applied. Lines starting with '#' are\n\
         # ignored; saving it unchanged cancels the edit.\n\
         # error: {}\n#\n{}\n",
        crate::output::inline(problem),
        body.join("\n")
    )
}

/// The editor's file: `<tmp>/kubectl-mpo-edit-XXXXXX/<name>.yaml`, the directory 0700
/// and the file 0600 from their creation (no window where another user could open
/// them). Dropping it removes both (the `TempDir` removes its whole tree).
struct EditBuffer {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl EditBuffer {
    fn create(name: &str, text: &str) -> Result<Self> {
        use std::io::Write;
        let failed = |what: &str, err: std::io::Error| {
            Error::runtime(format!("cannot create the edit buffer ({what}): {err}"))
                .with_hint("check that $TMPDIR exists and is writable")
        };
        let dir = tempfile::Builder::new()
            .prefix("kubectl-mpo-edit-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()
            .map_err(|err| failed("directory", err))?;
        // The name is a validated module name: no '/' or '..'.
        let path = dir.path().join(format!("{name}.yaml"));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(|err| failed("file", err))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|err| failed("file", err))?;
        Ok(EditBuffer { _dir: dir, path })
    }

    fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Replaces the file's text (the file keeps its mode).
    fn rewrite(&self, text: &str) -> Result<()> {
        std::fs::write(&self.path, text)
            .map_err(|err| Error::runtime(format!("cannot rewrite the edit buffer: {err}")))
    }
}

/// SIGINT, SIGTERM and SIGHUP caught for as long as the editor runs.
struct CaughtSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl CaughtSignals {
    fn install() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let catch = |kind: SignalKind| {
            signal(kind).map_err(|err| {
                Error::runtime(format!("cannot catch signals while the editor runs: {err}"))
            })
        };
        Ok(CaughtSignals {
            interrupt: catch(SignalKind::interrupt())?,
            terminate: catch(SignalKind::terminate())?,
            hangup: catch(SignalKind::hangup())?,
        })
    }

    /// Whether the edit was interrupted: the editor failed, and it died of a signal or
    /// one of the caught signals arrived while it ran. (An editor that shrugged off
    /// Ctrl-C and saved keeps its edit.) Afterwards a Ctrl-C ends the process as it
    /// would have without the catching: tokio cannot hand SIGINT back.
    fn interrupted(mut self, status: &std::process::ExitStatus) -> bool {
        use futures::FutureExt;
        use std::os::unix::process::ExitStatusExt;
        let pending = |signal: &mut tokio::signal::unix::Signal| {
            signal.recv().now_or_never().flatten().is_some()
        };
        let caught =
            pending(&mut self.interrupt) | pending(&mut self.terminate) | pending(&mut self.hangup);
        let mut interrupt = self.interrupt;
        tokio::spawn(async move {
            if interrupt.recv().await.is_some() {
                std::process::exit(130);
            }
        });
        !status.success() && (status.signal().is_some() || caught)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deckhouse::resources::MpoSpec;
    use serde_json::json;

    fn spec(tag: &str, interval: &str, rollback: bool) -> MpoSpec {
        MpoSpec {
            image_tag: tag.into(),
            scan_interval: Some(interval.into()),
            rollback: Some(rollback),
            source: None,
        }
    }

    #[test]
    fn only_real_changes_are_kept() {
        let wanted = Changes {
            tag: Some("a".into()),
            scan_interval: Some("15s".into()),
            rollback: Some(true),
        };
        let changes = wanted.against(&spec("a", "15s", false));
        assert_eq!(
            changes,
            Changes {
                tag: None,
                scan_interval: None,
                rollback: Some(true)
            }
        );
        assert_eq!(
            Value::Object(changes.spec_patch()),
            json!({"rollback": true})
        );
    }

    #[test]
    fn collisions_only_on_fields_we_set() {
        let changes = Changes {
            tag: Some("new".into()),
            ..Changes::default()
        };
        assert!(
            changes
                .collisions(&spec("a", "15s", false), &spec("a", "30s", true))
                .is_empty()
        );
        assert_eq!(
            changes
                .collisions(&spec("a", "15s", false), &spec("b", "15s", false))
                .len(),
            1
        );
    }
}
