//! Where log lines go: stdout, through a writer that drops a line it cannot write. A log reader
//! that dies (a closed pipe, a supervisor gone) must cost pgsplit its log lines and nothing
//! else: tracing-subscriber reports a failed write with `eprintln!`, which panics on a closed
//! stderr in whichever task was logging (a client's, the listener's, the signal handler's) and
//! left pgsplit listening while it served no one and ignored SIGTERM.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use tracing_subscriber::fmt::MakeWriter;

/// Log lines dropped since the process started. One per process, unlike the per-instance
/// metrics: a process has one log output (the global subscriber), however many instances it runs.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Log lines dropped because the output refused them: `pgsplit_log_write_errors_total`.
pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// The log output for tracing-subscriber: stdout, each line written whole or dropped.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogOutput;

impl<'a> MakeWriter<'a> for LogOutput {
    type Writer = DropOnError<io::Stdout>;

    fn make_writer(&'a self) -> Self::Writer {
        DropOnError(io::stdout())
    }
}

/// A writer that never fails: what its inner writer refuses is dropped and counted, and the
/// first drop is reported once on stderr, which may still be read (a supervisor's error log).
#[derive(Debug)]
pub struct DropOnError<W>(pub W);

impl<W: Write> Write for DropOnError<W> {
    /// The subscriber writes each line with one call: one refused call is one line dropped.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Err(e) = self.0.write_all(buf) {
            dropped(&e);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // A failed flush loses what the next write would lose too; that write counts it.
        let _ = self.0.flush();
        Ok(())
    }
}

/// Counts a dropped line; says so on stderr the first time. `writeln!` returns a failure where
/// `eprintln!` would panic, and a write to a closed pipe fails with EPIPE rather than killing the
/// process, as Rust ignores SIGPIPE.
fn dropped(e: &io::Error) {
    if DROPPED.fetch_add(1, Ordering::Relaxed) == 0 {
        let _ = writeln!(
            io::stderr(),
            "pgsplit: cannot write log lines ({e}); dropping them, counted in pgsplit_log_write_errors_total"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose reader is gone.
    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }

        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
    }

    #[test]
    fn a_refused_line_is_dropped_and_counted() {
        let before = dropped_lines();
        let mut out = DropOnError(ClosedPipe);
        assert_eq!(out.write(b"a line\n").unwrap(), 7);
        out.write_all(b"another line\n").unwrap();
        out.flush().unwrap();
        assert_eq!(dropped_lines() - before, 2);
    }

    #[test]
    fn a_written_line_is_not_counted() {
        let mut out = DropOnError(Vec::new());
        out.write_all(b"a line\n").unwrap();
        assert_eq!(out.0, b"a line\n");
    }
}
