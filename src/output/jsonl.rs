//! JSON Lines: one event per line, flushed at once so that a subscriber sees an alert the
//! moment it is decided. stdout's sink; any `Write` will do (a file, a pipe, a buffer).

use std::io::Write;

use super::{Event, EventSink, SinkError};

/// Writes every event as one line of JSON to `W`.
pub struct JsonLines<W> {
    name: String,
    out: W,
    line: Vec<u8>,
    ends_run: bool,
}

impl JsonLines<std::io::Stdout> {
    /// The process's stdout. A reader that closes it ends the run (as `| head` means).
    pub fn stdout() -> Self {
        JsonLines {
            name: "stdout".into(),
            out: std::io::stdout(),
            line: Vec::with_capacity(512),
            ends_run: true,
        }
    }
}

impl<W: Write + Send> JsonLines<W> {
    /// Lines to `out`, named `name` in logs; its reader leaving does not end the run.
    pub fn new(name: impl Into<String>, out: W) -> Self {
        JsonLines {
            name: name.into(),
            out,
            line: Vec::with_capacity(512),
            ends_run: false,
        }
    }
}

/// A write error as the sink reports it: a closed pipe means the reader is gone.
fn sink_error(e: std::io::Error) -> SinkError {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        SinkError::Closed
    } else {
        SinkError::Failed(format!("cannot write: {e}"))
    }
}

impl<W: Write + Send> EventSink for JsonLines<W> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn write(&mut self, event: &Event) -> Result<(), SinkError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, event)
            .map_err(|e| SinkError::Failed(format!("cannot encode an event: {e}")))?;
        self.line.push(b'\n');
        self.out.write_all(&self.line).map_err(sink_error)?;
        self.out.flush().map_err(sink_error)
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(sink_error)
    }

    fn ends_run_when_closed(&self) -> bool {
        self.ends_run
    }
}
