//! Progress reporting for long writer runs: a trait the writer calls, a silent
//! implementation, and an indicatif bar for the CLI.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use leadroute_crm::ApiUsage;

/// Where a run stands, sent after every batch.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressUpdate {
    /// Changes with a final outcome (including those finished before a resume).
    pub done: u64,
    pub total: u64,
    /// Changes finished per second in this session.
    pub rate_per_sec: f64,
    pub eta: Option<Duration>,
    /// API headroom as the connector last saw it.
    pub usage: ApiUsage,
}

impl ProgressUpdate {
    /// "window 150/190, day 990000/1000000" or "" when the CRM reported nothing.
    pub fn headroom(&self) -> String {
        let mut parts = Vec::new();
        if let (Some(left), Some(max)) = (self.usage.window_remaining, self.usage.window_max) {
            parts.push(format!("window {left}/{max}"));
        }
        if let (Some(left), Some(max)) = (self.usage.daily_remaining, self.usage.daily_max) {
            parts.push(format!("day {left}/{max}"));
        }
        parts.join(", ")
    }
}

/// Receives progress from the writer. Implementations must be cheap: they are called
/// between batches on the writer's task.
pub trait Progress: Send + Sync {
    fn start(&self, total: u64, done: u64);
    fn update(&self, update: &ProgressUpdate);
    /// Something worth telling a person (waiting on a rate limit, breaker open).
    fn note(&self, message: &str);
    fn finish(&self);
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _total: u64, _done: u64) {}
    fn update(&self, _update: &ProgressUpdate) {}
    fn note(&self, _message: &str) {}
    fn finish(&self) {}
}

/// A terminal progress bar: done / total, rate, ETA, API headroom.
#[derive(Debug)]
pub struct BarProgress {
    bar: ProgressBar,
}

impl BarProgress {
    /// A bar on stderr; hidden when stderr is not a terminal.
    pub fn new() -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{bar:40} {pos}/{len} changes  {per_sec}  eta {eta}  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        BarProgress { bar }
    }
}

impl Default for BarProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for BarProgress {
    fn start(&self, total: u64, done: u64) {
        self.bar.set_length(total);
        self.bar.set_position(done);
        self.bar.reset_eta();
    }

    fn update(&self, update: &ProgressUpdate) {
        self.bar.set_length(update.total);
        self.bar.set_position(update.done);
        let headroom = update.headroom();
        if !headroom.is_empty() {
            self.bar.set_message(format!("API {headroom}"));
        }
    }

    fn note(&self, message: &str) {
        self.bar.println(message);
    }

    fn finish(&self) {
        self.bar.finish();
    }
}
