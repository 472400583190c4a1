//! Progress for long syncs: one spinner per object with records, pages and calls when
//! asked for and stderr is a terminal; plain lines on stderr (one per object every
//! [`LINE_EVERY`], and when it is done) when it is not, so cron and CI logs show long
//! work. Not asked for: every call is a no-op.

use std::io::{IsTerminal, Write as _};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use leadroute_crm::ObjectKind;

use super::ObjectReport;

/// How often a progress line is written per object when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(10);

pub(super) struct SyncProgress {
    multi: Option<MultiProgress>,
    lines: bool,
}

pub(super) struct ObjectBar {
    bar: Option<ProgressBar>,
    /// Lines mode: the label and when the last line was written.
    line: Option<(String, Mutex<Instant>)>,
}

impl SyncProgress {
    pub(super) fn new(wanted: bool) -> SyncProgress {
        let terminal = std::io::stderr().is_terminal();
        let multi = (wanted && terminal)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        SyncProgress {
            multi,
            lines: wanted && !terminal,
        }
    }

    pub(super) fn object(&self, object: ObjectKind, full: bool) -> ObjectBar {
        let label = format!(
            "{:<8} {}",
            object.as_str(),
            if full { "full" } else { "incremental" }
        );
        let line = self
            .lines
            .then(|| (label.clone(), Mutex::new(Instant::now())));
        let bar = self.multi.as_ref().map(|multi| {
            let bar = multi.add(ProgressBar::new_spinner());
            let style = ProgressStyle::with_template("{spinner} {prefix} {msg} [{elapsed}]")
                .expect("the progress template is valid");
            bar.set_style(style);
            bar.set_prefix(label);
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        ObjectBar { bar, line }
    }
}

fn message(report: &ObjectReport) -> String {
    format!(
        "{} records, {} pages, {} calls",
        report.received, report.pages, report.calls
    )
}

impl ObjectBar {
    pub(super) fn update(&self, report: &ObjectReport) {
        if let Some(bar) = &self.bar {
            bar.set_message(message(report));
        }
        if let Some((label, last)) = &self.line {
            let mut last = last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.elapsed() >= LINE_EVERY {
                *last = Instant::now();
                // Best effort: a closed stderr must not stop the sync.
                let _ = writeln!(std::io::stderr(), "sync: {label}: {}", message(report));
            }
        }
    }

    pub(super) fn finish(&self, report: &ObjectReport) {
        if let Some(bar) = &self.bar {
            bar.finish_with_message(format!("{} done", message(report)));
        }
        if let Some((label, _)) = &self.line {
            let _ = writeln!(std::io::stderr(), "sync: {label}: {} done", message(report));
        }
    }
}
