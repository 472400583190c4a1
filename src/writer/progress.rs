//! Progress reporting for long writer runs: a trait the writer calls, a silent
//! implementation, and an indicatif bar for the CLI.

use std::io::{IsTerminal as _, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use leadroute_crm::ApiUsage;
use std::sync::{Mutex, MutexGuard, PoisonError};

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

/// Progress for the CLI: a bar (done / total, rate, ETA, API headroom) when stderr is
/// a terminal; otherwise plain lines, at most one per [`LINE_EVERY`] plus start, notes
/// and finish, so cron and CI logs show long work.
pub struct BarProgress {
    mode: Mode,
}

enum Mode {
    Bar(ProgressBar),
    Lines(Lines),
}

/// How often a progress line is written when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(10);

struct Lines {
    sink: Mutex<Box<dyn Write + Send>>,
    every: Duration,
    last: Mutex<Option<Instant>>,
}

/// A poisoned lock only means a writer panicked mid-line: keep going.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Lines {
    fn line(&self, text: &str) {
        // Best effort: a closed stderr must not stop (or panic) the run.
        let _ = writeln!(lock(&self.sink), "{text}");
    }
}

impl std::fmt::Debug for BarProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.mode {
            Mode::Bar(_) => "bar",
            Mode::Lines(_) => "lines",
        };
        f.debug_struct("BarProgress").field("mode", &mode).finish()
    }
}

impl BarProgress {
    /// A bar on stderr when it is a terminal, else progress lines on stderr.
    pub fn new() -> Self {
        if !std::io::stderr().is_terminal() {
            return BarProgress::lines(Box::new(std::io::stderr()), LINE_EVERY);
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{bar:40} {pos}/{len} changes  {per_sec}  eta {eta}  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        BarProgress {
            mode: Mode::Bar(bar),
        }
    }

    /// Plain progress lines to `sink`, at most one update per `every`.
    pub fn lines(sink: Box<dyn Write + Send>, every: Duration) -> Self {
        BarProgress {
            mode: Mode::Lines(Lines {
                sink: Mutex::new(sink),
                every,
                last: Mutex::new(None),
            }),
        }
    }
}

impl Default for BarProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for BarProgress {
    fn start(&self, total: u64, done: u64) {
        match &self.mode {
            Mode::Bar(bar) => {
                bar.set_length(total);
                bar.set_position(done);
                bar.reset_eta();
            }
            Mode::Lines(lines) => {
                *lock(&lines.last) = Some(Instant::now());
                lines.line(&format!("progress: {done}/{total} changes, starting"));
            }
        }
    }

    fn update(&self, update: &ProgressUpdate) {
        match &self.mode {
            Mode::Bar(bar) => {
                bar.set_length(update.total);
                bar.set_position(update.done);
                let headroom = update.headroom();
                if !headroom.is_empty() {
                    bar.set_message(format!("API {headroom}"));
                }
            }
            Mode::Lines(lines) => {
                {
                    let mut last = lock(&lines.last);
                    if last.is_some_and(|at| at.elapsed() < lines.every) {
                        return;
                    }
                    *last = Some(Instant::now());
                }
                let mut text = format!(
                    "progress: {}/{} changes, {:.1}/s",
                    update.done, update.total, update.rate_per_sec
                );
                if let Some(eta) = update.eta {
                    text.push_str(&format!(", eta {} s", eta.as_secs()));
                }
                let headroom = update.headroom();
                if !headroom.is_empty() {
                    text.push_str(&format!(", API {headroom}"));
                }
                lines.line(&text);
            }
        }
    }

    fn note(&self, message: &str) {
        match &self.mode {
            Mode::Bar(bar) => bar.println(message),
            Mode::Lines(lines) => lines.line(message),
        }
    }

    fn finish(&self) {
        match &self.mode {
            Mode::Bar(bar) => bar.finish(),
            Mode::Lines(lines) => lines.line("progress: finished"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A sink the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn update(done: u64) -> ProgressUpdate {
        ProgressUpdate {
            done,
            total: 10,
            rate_per_sec: 2.0,
            eta: Some(Duration::from_secs(4)),
            usage: ApiUsage::default(),
        }
    }

    #[test]
    fn off_a_terminal_progress_is_plain_lines_at_a_bounded_rate() {
        let sink = Shared::default();
        let progress = BarProgress::lines(Box::new(sink.clone()), Duration::from_secs(3600));
        progress.start(10, 0);
        progress.update(&update(2));
        progress.note("waiting 5 s on the rate limit");
        progress.finish();
        let every = Shared::default();
        let chatty = BarProgress::lines(Box::new(every.clone()), Duration::ZERO);
        chatty.start(10, 0);
        chatty.update(&update(2));
        chatty.update(&update(6));
        let text = String::from_utf8(lock(&sink.0).clone()).unwrap();
        assert_eq!(
            text,
            "progress: 0/10 changes, starting\nwaiting 5 s on the rate limit\nprogress: finished\n"
        );
        let text = String::from_utf8(lock(&every.0).clone()).unwrap();
        assert!(
            text.contains("progress: 6/10 changes, 2.0/s, eta 4 s\n"),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'), "no terminal escapes: {text:?}");
    }
}
