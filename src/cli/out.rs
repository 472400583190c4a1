//! Command output that never panics: `print!` and `eprintln!` panic when the reader of
//! stdout or stderr has gone (`leadroute plan --format csv | head`). Commands write
//! through these helpers instead; a closed stdout becomes [`OutputClosed`], which
//! `main` turns into a quiet exit 0, as Unix tools do. Lines to stderr are best effort.

use std::fmt;
use std::io::Write as _;

/// Standard output was closed by its reader (broken pipe): stop quietly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("standard output was closed")]
pub struct OutputClosed;

/// Whether `err` (or anything in its chain) is [`OutputClosed`] or a broken pipe.
pub fn is_output_closed(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.is::<OutputClosed>()
            || cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes `text` to stdout as is.
pub fn print(text: impl fmt::Display) -> anyhow::Result<()> {
    write_stdout(format_args!("{text}"))
}

/// Writes `text` and a newline to stdout.
pub fn println(text: impl fmt::Display) -> anyhow::Result<()> {
    write_stdout(format_args!("{text}\n"))
}

fn write_stdout(args: fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_fmt(args).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Err(OutputClosed.into()),
        Err(err) => Err(anyhow::Error::new(err).context("writing to standard output")),
    }
}

/// A line on stderr for the person running the command; ignored if stderr is closed.
pub fn note(text: impl fmt::Display) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_pipe_anywhere_in_the_chain_is_output_closed() {
        let err = anyhow::Error::new(OutputClosed).context("printing the plan");
        assert!(is_output_closed(&err));
        let io = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert!(is_output_closed(&anyhow::Error::new(io).context("x")));
        assert!(!is_output_closed(&anyhow::anyhow!("other")));
    }
}
