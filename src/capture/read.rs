//! Reading a whole recorded source frame by frame, as fast as it decodes: what `speed` and
//! `predict` use to turn any video into y~ and scores. Same pipelines as `run`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use super::gst_source::{self, SourceEvent};
use super::ring::{frame_ring, Overflow};
use super::{pipeline, CaptureSettings, SourceKind, SourceSpec, FRAME_HEIGHT, FRAME_WIDTH};
use crate::{Error, Result};

/// Calls `on_frame` with every 240x320 GRAY8 frame of a recorded source, in order, and
/// returns how many there were. Live sources (RTSP) are refused: they never end.
pub fn for_each_frame(
    spec: &SourceSpec,
    settings: &CaptureSettings,
    mut on_frame: impl FnMut(&[u8]),
) -> Result<u64> {
    if matches!(spec.kind, SourceKind::Rtsp { .. } | SourceKind::Sim { .. }) {
        return Err(Error::Invalid(format!(
            "--source {}: a live source never ends; expected a file or a gst: launch line",
            spec.name
        )));
    }
    pipeline::init().map_err(Error::Invalid)?;
    let settings = CaptureSettings {
        fast: true,
        ..settings.clone()
    };
    let (writer, mut reader) = frame_ring(
        settings.ring_slots,
        FRAME_WIDTH * FRAME_HEIGHT,
        Overflow::Wait,
    );
    let (tx, rx) = crossbeam_channel::unbounded();
    let stop = Arc::new(AtomicBool::new(false));
    let capture = gst_source::spawn(spec.clone(), settings, writer, tx, stop);
    let mut count = 0u64;
    let mut end = None;
    loop {
        if let Some(slot) = reader.pop(Duration::from_millis(20)) {
            on_frame(&slot.pixels);
            count += 1;
            reader.recycle(slot);
            continue;
        }
        while let Ok(ev) = rx.try_recv() {
            match ev {
                SourceEvent::Ended => end = Some(Ok(())),
                SourceEvent::Failed(e) => end = Some(Err(e)),
                _ => {}
            }
        }
        if let Some(r) = &end {
            if reader.pending() == 0 {
                let _ = capture.join();
                return match r {
                    Ok(()) => Ok(count),
                    Err(e) => Err(Error::Invalid(format!("{}: {e}", spec.name))),
                };
            }
        }
    }
}
