//! The step list of a diagnosis (`explain`, preflight, a failed `--wait`): one line per
//! check with its mark, then the cause and the fixes under each check that did not pass.

use crate::deckhouse::checks::{Step, StepState};
use crate::output::{Printer, To, Tone, inline};

fn mark(printer: &Printer, state: StepState) -> String {
    match state {
        StepState::Passed => printer.paint("✓", Tone::Good),
        StepState::Warning => printer.paint("!", Tone::Warn),
        StepState::Failed => printer.paint("✗", Tone::Bad),
        StepState::Unknown => printer.paint("?", Tone::Dim),
    }
}

/// Prints `steps` on the stream `to`; causes and fixes line up under one label column.
pub fn print_steps(printer: &Printer, steps: &[Step], to: To) {
    for step in steps {
        printer.line_to(
            to,
            format!("  {} {}", mark(printer, step.state), step.summary),
        );
        if let Some(cause) = &step.cause {
            printer.line_to(to, format!("      cause: {cause}"));
        }
        for (index, fix) in step.fix.iter().enumerate() {
            let label = if index == 0 { "fix:   " } else { "       " };
            for (line_index, line) in fix.lines().enumerate() {
                let prefix = if line_index == 0 { label } else { "       " };
                printer.line_to(to, format!("      {prefix}{}", inline(line)));
            }
        }
    }
}
