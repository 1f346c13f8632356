//! Reading a whole recorded source frame by frame, as fast as it decodes: what `speed`,
//! `predict`, `eval --video` and `train` use to turn any video into y~ and scores. Same
//! pipelines as a live run, so they all see the frames a camera would.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use super::gst_source::{self, SourceEvent};
use super::preprocess::{Preprocess, Preprocessor};
use super::ring::{frame_ring, Overflow};
use super::{pipeline, CaptureSettings, SourceKind, SourceSpec};
use crate::frame::{self, Crop};
use crate::{Error, Result};

/// Calls `on_frame` with every 240x320 GRAY8 frame of a recorded source, in order, and
/// returns how many there were. Live sources (RTSP, the simulator) are refused: they never
/// end.
pub fn for_each_frame(
    spec: &SourceSpec,
    settings: &CaptureSettings,
    mut on_frame: impl FnMut(&[u8]),
) -> Result<u64> {
    if matches!(spec.kind, SourceKind::Rtsp { .. } | SourceKind::Sim { .. }) {
        return Err(Error::Input(format!(
            "source {}: a live source never ends; expected a file or a gst: launch line",
            spec.display
        )));
    }
    pipeline::init()?;
    let settings = CaptureSettings {
        fast: true,
        ..settings.clone()
    };
    let (writer, mut reader) = frame_ring(settings.ring_slots, frame::PIXELS, Overflow::Wait);
    let (tx, rx) = crossbeam_channel::unbounded();
    let stop = Arc::new(AtomicBool::new(false));
    let capture = gst_source::spawn(
        spec.display.clone(),
        spec.clone(),
        settings,
        writer,
        tx,
        stop,
        None,
    )
    .map_err(|e| Error::Capture {
        camera: spec.display.clone(),
        element: None,
        what: format!("cannot start its capture thread: {e}"),
        after_start: false,
    })?;
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
                SourceEvent::Failed(f) => end = Some(Err(f)),
                _ => {}
            }
        }
        if reader.pending() == 0 {
            if let Some(r) = end.take() {
                let _ = capture.join();
                return r.map(|()| count).map_err(|f| f.into_error(&spec.display));
            }
        }
    }
}

/// Decodes a recorded source (a file path or URI, or a `gst:` launch line) as a live run
/// sees it: 30 fps, GRAY8 320x240, the optional crop, then the preprocessing. Calls
/// `on_frame` with every frame in order, as fast as it decodes; returns the frame count.
pub fn decode_source(
    source: &str,
    crop: Option<Crop>,
    preprocess: Preprocess,
    mut on_frame: impl FnMut(&[u8]),
) -> Result<u64> {
    let spec = SourceSpec::parse(source)?;
    let settings = CaptureSettings {
        crop,
        ..CaptureSettings::default()
    };
    let mut pre = Preprocessor::new(preprocess);
    let mut frame = vec![0u8; frame::PIXELS];
    for_each_frame(&spec, &settings, |pixels| {
        frame.copy_from_slice(pixels);
        pre.apply(&mut frame);
        on_frame(&frame);
    })
}
