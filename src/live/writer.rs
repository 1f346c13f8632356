//! The one writer of stdout: JSON Lines, one event per line, flushed at once so that any
//! subscriber sees an alert the moment it is decided. A reader that closes the pipe ends
//! the run quietly.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Receiver;

use crate::alert::Event;

/// Writes every event until all senders are gone. A closed stdout sets `stop` and
/// returns `Ok` (it is how a subscriber says it has seen enough).
pub fn write_events(
    events: Receiver<Event>,
    mut out: impl Write,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let mut line = Vec::with_capacity(512);
    for mut event in events {
        line.clear();
        event.stamp_latency(Instant::now());
        serde_json::to_writer(&mut line, &event).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let written = out.write_all(&line).and_then(|()| out.flush());
        match written {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                tracing::debug!("stdout closed; stopping");
                stop.store(true, Ordering::Relaxed);
                return Ok(());
            }
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
    }
    Ok(())
}
