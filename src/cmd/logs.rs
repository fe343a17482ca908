//! `kubectl mpo logs MODULE [-f] [--since D] [--tail N] [--level L] [-o json]`
//!
//! The deckhouse controller's log lines about one module (`app::logs`), printed as
//! `time level hook message`; `-f` keeps following when Deckhouse restarts with a new
//! Pod, as it does after every deploy (deckhouse-real §4).

use crate::app::logs::{self, Entry, Filter, Level};
use crate::app::{Ctx, Outcome};
use crate::cli::{LogsArgs, LogsFormat};
use crate::error::{Error, Kind, Result};
use crate::output::{Printer, Tone, inline};

pub async fn run(ctx: &Ctx, args: LogsArgs) -> Result<Outcome> {
    let cluster = ctx.cluster().await?;
    let module = args.module.to_string();
    let filter = Filter {
        module: module.clone(),
        level: args.level,
        since: args
            .since
            .and_then(|since| jiff::SignedDuration::try_from(since).ok())
            .map(|since| jiff::Timestamp::now() - since),
    };
    let Some(mut pod) = logs::current_pod(&cluster).await? else {
        return Err(Error::runtime(format!(
            "no running deckhouse Pod ({} in {}) on {}",
            logs::SELECTOR,
            logs::NAMESPACE,
            cluster.place()
        ))
        .with_hint("check it with: kubectl -n d8-system get pods -l app=deckhouse"));
    };
    let lines = logs::read(&cluster, &pod).await?;
    let mut shown: Vec<Entry> = lines
        .iter()
        .map(|line| logs::parse_line(line, &pod))
        .filter(|entry| filter.keeps(entry))
        .collect();
    if let Some(tail) = args.tail {
        let start = shown.len().saturating_sub(tail);
        shown.drain(..start);
    }
    for entry in &shown {
        print(&ctx.printer, entry, args.output)?;
    }
    if !args.follow {
        return Ok(Outcome::Success);
    }
    let mut skip = lines.len();
    loop {
        let printer = &ctx.printer;
        let output = args.output;
        let current = pod.clone();
        let streamed = logs::follow(&cluster, &pod, skip, |line| {
            let entry = logs::parse_line(line, &current);
            if filter.keeps(&entry) {
                let _ = print(printer, &entry, output);
            }
        });
        tokio::select! {
            result = streamed => result?,
            _ = tokio::signal::ctrl_c() => return Err(Error::new(Kind::Interrupted, "interrupted")),
        }
        // The container's log ended: Deckhouse restarted. Follow the new Pod from its start.
        ctx.printer.debug(
            1,
            format!("deckhouse pod {pod} ended; waiting for the next one"),
        );
        pod = tokio::select! {
            next = logs::next_pod(&cluster, &pod) => next?,
            _ = tokio::signal::ctrl_c() => return Err(Error::new(Kind::Interrupted, "interrupted")),
        };
        skip = 0;
    }
}

/// One entry: `time level hook message` (the module when the line names no hook),
/// errors highlighted; a line that is not JSON is printed as it came.
fn print(printer: &Printer, entry: &Entry, output: Option<LogsFormat>) -> Result<()> {
    if output == Some(LogsFormat::Json) {
        let line = serde_json::to_string(entry)
            .map_err(|err| Error::runtime(format!("cannot encode a log line: {err}")))?;
        printer.line(line);
        return Ok(());
    }
    printer.line(render(printer, entry));
    Ok(())
}

pub fn render(printer: &Printer, entry: &Entry) -> String {
    let message = inline(&entry.message);
    if !entry.json {
        return format!("{} {message}", inline(&entry.time));
    }
    let level = entry.level.map_or("-", Level::as_str);
    let source = entry
        .hook
        .as_deref()
        .or(entry.module.as_deref())
        .unwrap_or("-");
    let text = format!(
        "{} {level:<5} {} {message}",
        inline(&entry.time),
        inline(source)
    );
    match entry.level {
        Some(Level::Error) => printer.paint(&text, Tone::Bad),
        Some(Level::Warn) => printer.paint(&text, Tone::Warn),
        _ => text,
    }
}
