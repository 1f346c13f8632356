//! Real video files for the tests, made with GStreamer encoders.

use std::path::Path;

use gstreamer as gst;
use gstreamer::prelude::*;

/// Runs a launch line to its end (EOS), panicking on a pipeline error.
pub fn run_to_eos(line: &str) {
    gst::init().unwrap();
    let p = gst::parse::launch(line).unwrap_or_else(|e| panic!("{line}: {e}"));
    p.set_state(gst::State::Playing).unwrap();
    let bus = p.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(120),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("the encoder finishes");
    if let gst::MessageView::Error(e) = msg.view() {
        panic!("{line}: {}", e.error());
    }
    p.set_state(gst::State::Null).unwrap();
}

/// An H.264 Matroska file of `frames` frames of a moving test pattern.
pub fn h264_mkv(path: &Path, frames: u32, fps: u32, width: u32, height: u32, format: &str) {
    run_to_eos(&format!(
        "videotestsrc num-buffers={frames} pattern=ball motion=sweep background-color=0xff000000 \
         ! video/x-raw,format={format},width={width},height={height},framerate={fps}/1 \
         ! videoconvert ! x264enc speed-preset=ultrafast key-int-max=30 ! h264parse \
         ! matroskamux ! filesink location={}",
        path.display()
    ));
}

/// Runs ffmpeg (the setup script installs it) with `args`, quietly, overwriting its
/// output: files made by another muxer and other encoders than ours.
pub fn ffmpeg(args: &[&str]) {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg runs (scripts/setup-debian.sh installs it)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// ffmpeg's `testsrc2` (a moving, coloured test card) of `size` at `rate` for `seconds`,
/// encoded with `args` (inputs may be added there too) into `out`.
pub fn ffmpeg_card(size: &str, rate: u32, seconds: u32, args: &[&str], out: &Path) {
    let card = format!("testsrc2=size={size}:rate={rate}:duration={seconds}");
    let mut all = vec!["-f", "lavfi", "-i", &card];
    all.extend_from_slice(args);
    all.push(out.to_str().expect("test paths are UTF-8"));
    ffmpeg(&all);
}
