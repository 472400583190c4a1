//! Progress bars for long syncs: one spinner per object with records, pages and calls.
//! Drawn only when asked for and stderr is a terminal; otherwise every call is a no-op.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use leadroute_crm::ObjectKind;

use super::ObjectReport;

pub(super) struct SyncProgress {
    multi: Option<MultiProgress>,
}

pub(super) struct ObjectBar {
    bar: Option<ProgressBar>,
}

impl SyncProgress {
    pub(super) fn new(wanted: bool) -> SyncProgress {
        let multi = (wanted && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        SyncProgress { multi }
    }

    pub(super) fn object(&self, object: ObjectKind, full: bool) -> ObjectBar {
        let label = format!(
            "{:<8} {}",
            object.as_str(),
            if full { "full" } else { "incremental" }
        );
        let bar = self.multi.as_ref().map(|multi| {
            let bar = multi.add(ProgressBar::new_spinner());
            let style = ProgressStyle::with_template("{spinner} {prefix} {msg} [{elapsed}]")
                .expect("the progress template is valid");
            bar.set_style(style);
            bar.set_prefix(label);
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        ObjectBar { bar }
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
    }

    pub(super) fn finish(&self, report: &ObjectReport) {
        if let Some(bar) = &self.bar {
            bar.finish_with_message(format!("{} done", message(report)));
        }
    }
}
