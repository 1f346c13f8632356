//! GStreamer pipelines for each kind of source, built from the launch templates in
//! `pipelines/` (embedded at compile time) and kept apart from running them.

use gstreamer as gst;
use gstreamer::prelude::*;

use super::{CaptureSettings, RtspTransport, SourceKind, SourceSpec};
use crate::frame::Crop;

const RTSP: &str = include_str!("../../pipelines/rtsp.pipeline");
const FILE: &str = include_str!("../../pipelines/file.pipeline");
const TAIL: &str = include_str!("../../pipelines/tail.pipeline");
const CLIPS: &str = include_str!("../../pipelines/clips.pipeline");

/// The launch line of a template: its one line that is not a comment.
fn template(t: &str) -> &str {
    t.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or("")
}

/// The full launch line for a source (no credentials in it).
pub fn launch_line(spec: &SourceSpec, settings: &CaptureSettings) -> Option<String> {
    // A file plays at real speed by the pipeline clock unless read fast. A camera is
    // real time by nature: its frames go on as soon as they are decoded (its timestamps
    // are the camera's clock, which would drift from ours over a long run).
    let fast = settings.reads_fast(&spec.kind);
    let sync = match &spec.kind {
        SourceKind::Rtsp { .. } => "false",
        _ if fast => "false",
        _ => "true",
    };
    let tail = template(TAIL).replace("{sync}", sync);
    let tail = match settings.clip_width {
        Some(w) => format!(
            "{} {}",
            tail.replace("{tee}", "tee name=t ! "),
            template(CLIPS)
                .replace("{max_width}", &w.to_string())
                .replace("{leaky}", if fast { "no" } else { "downstream" })
                .replace("{drop}", if fast { "false" } else { "true" })
                .replace(
                    "{throttle}",
                    &settings.clip_rate.map_or(String::new(), |r| {
                        format!("videorate drop-only=true max-rate={r} ! ")
                    })
                )
        ),
        None => tail.replace("{tee}", ""),
    };
    let head = match &spec.kind {
        SourceKind::Rtsp { location, .. } => template(RTSP)
            .replace("{location}", location)
            .replace("{latency_ms}", &settings.rtsp_latency_ms.to_string())
            .replace("{protocols}", lower_transport(settings.rtsp_transport)),
        SourceKind::File { uri, .. } => template(FILE).replace("{uri}", uri),
        SourceKind::Launch(line) => format!("{line} ! {{tail}}"),
        SourceKind::Sim { .. } => return None,
    };
    Some(head.replace("{tail}", &tail))
}

/// rtspsrc's `protocols` for a session's transport (`auto` starts with TCP; the source
/// switches between sessions).
fn lower_transport(t: RtspTransport) -> &'static str {
    match t {
        RtspTransport::Auto | RtspTransport::Tcp => "tcp",
        RtspTransport::Udp => "udp",
    }
}

/// Initialises GStreamer once per process.
pub fn init() -> crate::Result<()> {
    gst::init().map_err(|e| crate::Error::Capture {
        camera: "GStreamer".into(),
        element: None,
        what: format!("cannot initialise it: {e}; expected GStreamer 1.22 and its plugins"),
        after_start: false,
    })
}

/// Builds (does not start) the pipeline of a GStreamer source.
pub fn build(spec: &SourceSpec, settings: &CaptureSettings) -> Result<gst::Pipeline, String> {
    init().map_err(|e| e.to_string())?;
    let line = launch_line(spec, settings).ok_or("the simulator is not a GStreamer source")?;
    let element = gst::parse::launch(&line).map_err(|e| format!("invalid pipeline: {e}"))?;
    let pipeline = element
        .downcast::<gst::Pipeline>()
        .map_err(|_| "the launch line did not make a pipeline".to_string())?;
    if let SourceKind::Rtsp { user, password, .. } = &spec.kind {
        if let Some(src) = pipeline.by_name("src") {
            if let Some(u) = user {
                src.set_property("user-id", u);
            }
            if let Some(p) = password {
                src.set_property("user-pw", p.expose());
            }
        }
    }
    if let Some(crop) = settings.crop {
        install_crop(&pipeline, crop)?;
    }
    Ok(pipeline)
}

/// The picture size a pad probe's event announces, when it is a caps event that says it.
pub(crate) fn caps_size(info: &gst::PadProbeInfo) -> Option<(u32, u32)> {
    let Some(gst::PadProbeData::Event(ev)) = &info.data else {
        return None;
    };
    let gst::EventView::Caps(c) = ev.view() else {
        return None;
    };
    let s = c.caps().structure(0)?;
    match (s.get::<i32>("width"), s.get::<i32>("height")) {
        (Ok(w), Ok(h)) => Some((w as u32, h as u32)),
        _ => None,
    }
}

/// Sets the `crop` element's margins from the rectangle once the source size is known
/// (videocrop takes margins, the user gives a rectangle). A rectangle outside the picture
/// stops the pipeline with an error that says so.
fn install_crop(pipeline: &gst::Pipeline, crop: Crop) -> Result<(), String> {
    let element = pipeline
        .by_name("crop")
        .ok_or("the pipeline has no crop element")?;
    let pad = element
        .static_pad("sink")
        .ok_or("videocrop has no sink pad")?;
    let weak = element.downgrade();
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        let Some((w, h)) = caps_size(info) else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(element) = weak.upgrade() else {
            return gst::PadProbeReturn::Ok;
        };
        if !crop.fits(w, h) {
            gst::element_error!(
                element,
                gst::StreamError::Format,
                ("crop {crop} does not fit the {w}x{h} picture; expected a rectangle inside it")
            );
            return gst::PadProbeReturn::Drop;
        }
        element.set_property("left", crop.x as i32);
        element.set_property("top", crop.y as i32);
        element.set_property("right", (w - crop.x - crop.width) as i32);
        element.set_property("bottom", (h - crop.y - crop.height) as i32);
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_lines_end_in_the_shared_tail() {
        let s = SourceSpec::parse("rtsp://u:p@127.0.0.1:8554/x").unwrap();
        let line = launch_line(&s, &CaptureSettings::default()).unwrap();
        assert!(line.starts_with("rtspsrc name=src location=\"rtsp://127.0.0.1:8554/x\""));
        assert!(!line.contains("u:p"));
        assert!(line.ends_with("enable-last-sample=false"));
        assert!(line.contains("sync=false") && line.contains("buffer-mode=none"));
        let file = SourceSpec::parse(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
        assert!(launch_line(&file, &CaptureSettings::default())
            .unwrap()
            .contains("sync=true"));
        let clips = CaptureSettings {
            clip_width: Some(640),
            ..Default::default()
        };
        let line = launch_line(&file, &clips).unwrap();
        assert!(line.contains("tee name=t ! videoconvert") && line.contains("width=[16,640]"));
        assert!(!line.contains('{') && !line.contains("max-rate"));
        // Played at real speed, a clips branch that falls behind loses its own frames;
        // read fast, it slows the file down instead.
        assert!(line.contains("leaky=downstream") && line.contains("max-buffers=30 drop=true"));
        let fast_clips = CaptureSettings {
            fast: true,
            ..clips.clone()
        };
        let line = launch_line(&file, &fast_clips).unwrap();
        assert!(line.contains("leaky=no") && line.contains("max-buffers=30 drop=false"));
        let view = CaptureSettings {
            clip_rate: Some(5),
            ..clips
        };
        let line = launch_line(&file, &view).unwrap();
        assert!(
            line.contains("max-size-time=0 ! videorate drop-only=true max-rate=5 ! videoconvert")
        );
        let g = SourceSpec::parse("gst:videotestsrc").unwrap();
        let fast = CaptureSettings {
            fast: true,
            ..Default::default()
        };
        assert!(launch_line(&g, &fast).unwrap().contains("sync=false"));
    }
}
