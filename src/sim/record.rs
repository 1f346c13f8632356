//! The recorder: simulated video to a file, with its ground truth beside it.
//!
//! - `.mkv` / `.mp4`: H.264 through GStreamer
//!   (`appsrc ! videoconvert ! x264enc ! h264parse ! matroskamux|mp4mux ! filesink`), with
//!   encoder settings chosen so that the decoded file's y~ stays within 5 % (mean relative
//!   error) of the rendered frames' y~ (issue 5; see [`EncoderSettings::for_look`]).
//! - `.npy`: the rendered frames as a uint8 `(T, H, W)` stack, streamed to disk.
//!
//! `NAME.truth.json` goes beside `NAME.EXT`: seed, fps, frame count, look, frame size, the
//! tank's rectangle in the frame, and every chase with the display before it.
//! [`decode_gray`] reads a recording back as 8-bit gray frames (for checks). The pipeline
//! always returns to Null, and GStreamer errors become one-line errors that name the
//! element.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Look, SimConfig, SimulatedTank, FPS};
use crate::frame::Crop;
use crate::io::{npy, Frames};
use crate::{Error, Result};

/// What a recording is written as, from the output's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Matroska,
    Mp4,
    /// Uncompressed frames, `(T, H, W)` uint8.
    Npy,
}

impl Container {
    /// The container for `path`'s extension (`.mkv`, `.mp4`, `.npy`, any case).
    pub fn for_path(path: &Path) -> Result<Container> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            Some("mkv") => Ok(Container::Matroska),
            Some("mp4") => Ok(Container::Mp4),
            Some("npy") => Ok(Container::Npy),
            other => Err(Error::bad_input(
                path,
                format!(
                    "unknown extension {}; expected .mkv or .mp4 (H.264) or .npy (frames)",
                    other.map_or("(none)".to_string(), |e| format!(".{e}"))
                ),
            )),
        }
    }

    fn muxer(self) -> &'static str {
        match self {
            Container::Matroska => "matroskamux",
            Container::Mp4 => "mp4mux",
            Container::Npy => unreachable!("npy is written without GStreamer"),
        }
    }
}

/// x264 settings of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EncoderSettings {
    /// Constant quantizer (x264enc `pass=quant`, 0-50); 0 is lossless.
    pub quantizer: u32,
    /// x264enc `speed-preset`.
    pub speed_preset: &'static str,
    /// Longest distance between key frames, frames (x264enc `key-int-max`).
    pub key_int_max: u32,
}

impl EncoderSettings {
    /// Settings that keep the decoded file's y~ within 5 % mean relative error of the
    /// rendered frames' y~ (issue 5), measured by `tests/sim.rs`:
    /// - processed look: quantizer 0, lossless (High 4:4:4 Predictive profile, 4:2:0
    ///   chroma): y~ is exact. The faint flickering pixels carry ~15 % of y~ and any
    ///   quantizer above 0 smooths them (measured on seed 3, 20 s: quantizer 2 -2.5 %,
    ///   4 -4.5 %, 8 -6.7 %). 320x240 mostly-black frames stay small (~5 MB/min).
    /// - raw look: y~ of the full 720p frame is mostly sensor noise, which an encoder
    ///   removes first (quantizer 8 -6 %, 18 -21 %, 23 -93 %); quantizer 4 keeps it
    ///   within ~4 %, at ~8 MB/s because noise does not compress. `--quantizer 18`
    ///   gives files a third the size, denoised as a real camera's encoder would.
    pub fn for_look(look: Look) -> EncoderSettings {
        match look {
            Look::Processed => EncoderSettings {
                quantizer: 0,
                speed_preset: "veryfast",
                key_int_max: 2 * FPS,
            },
            Look::Raw => EncoderSettings {
                quantizer: 4,
                speed_preset: "veryfast",
                key_int_max: 2 * FPS,
            },
        }
    }
}

/// A chase in the truth file; `end_frame` is clipped to the last frame recorded, and
/// `complete` says whether the chase ended within the recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthChase {
    pub chaser: usize,
    pub target: usize,
    /// First frame of the display that led to the chase (before `start_frame`).
    pub display_frame: usize,
    pub start_frame: usize,
    pub end_frame: usize,
    pub complete: bool,
}

/// The `NAME.truth.json` written beside a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    pub seed: u64,
    pub fps: u32,
    pub frames: usize,
    pub look: Look,
    pub width: usize,
    pub height: usize,
    pub fish: usize,
    /// Where the tank is in the frame: crop this and scale it to 320x240 to get the
    /// processed look's geometry.
    pub tank_crop: Crop,
    pub chases: Vec<TruthChase>,
}

impl Truth {
    /// The truth of the first `frames` frames `sim` rendered: the chases that started in
    /// them, each cut at the last frame.
    pub fn of(sim: &SimulatedTank, frames: usize) -> Truth {
        let config = sim.config();
        Truth {
            seed: config.seed,
            fps: FPS,
            frames,
            look: config.look,
            width: sim.width(),
            height: sim.height(),
            fish: config.fish,
            tank_crop: config.look.tank_crop(),
            chases: sim
                .truth()
                .iter()
                .filter(|c| c.start_frame < frames)
                .map(|c| TruthChase {
                    chaser: c.chaser,
                    target: c.target,
                    display_frame: c.display_frame,
                    start_frame: c.start_frame,
                    end_frame: c.end_frame.min(frames - 1),
                    complete: c.end_frame < frames,
                })
                .collect(),
        }
    }
}

/// What [`record`] wrote.
#[derive(Debug, Clone)]
pub struct Recording {
    pub path: PathBuf,
    pub truth_path: PathBuf,
    pub truth: Truth,
    /// `None` for `.npy`.
    pub encoder: Option<EncoderSettings>,
}

/// `tank.mkv` -> `tank.truth.json`.
pub fn truth_path(out: &Path) -> PathBuf {
    out.with_extension("truth.json")
}

/// Records `frames` frames of `config` to `out` (container from the extension) and its
/// truth beside it; `.mkv`/`.mp4` are encoded with `settings` (usually
/// [`EncoderSettings::for_look`]). `progress` is called with the number of frames done
/// after each one.
pub fn record(
    config: SimConfig,
    frames: usize,
    out: &Path,
    settings: EncoderSettings,
    progress: &mut dyn FnMut(usize),
) -> Result<Recording> {
    let container = Container::for_path(out)?;
    if frames == 0 {
        return Err(Error::Input("nothing to record: 0 frames".into()));
    }
    let mut sim = SimulatedTank::new(config)?;
    let truth_path = truth_path(out);
    // Fail on an unwritable place before any work, with the OS's reason.
    let create = |p: &Path| {
        File::create(p).map_err(|source| Error::Write {
            path: p.to_owned(),
            source,
        })
    };
    let file = create(out)?;
    create(&truth_path)?;
    let written = match container {
        Container::Npy => write_npy(&mut sim, frames, file, out, progress).map(|()| None),
        _ => {
            drop(file);
            encode(&mut sim, frames, out, container, settings, progress).map(|()| Some(settings))
        }
    };
    // A failed recording leaves nothing behind that could pass for one.
    let encoder = written.inspect_err(|_| {
        let _ = std::fs::remove_file(out);
        let _ = std::fs::remove_file(&truth_path);
    })?;
    let truth = Truth::of(&sim, frames);
    let json = serde_json::to_string_pretty(&truth).expect("the truth serialises");
    std::fs::write(&truth_path, json + "\n").map_err(|source| Error::Write {
        path: truth_path.clone(),
        source,
    })?;
    Ok(Recording {
        path: out.to_owned(),
        truth_path,
        truth,
        encoder,
    })
}

fn write_npy(
    sim: &mut SimulatedTank,
    frames: usize,
    file: File,
    out: &Path,
    progress: &mut dyn FnMut(usize),
) -> Result<()> {
    let werr = |source| Error::Write {
        path: out.to_owned(),
        source,
    };
    let mut w = BufWriter::new(file);
    w.write_all(&npy::header::<u8>(&[frames, sim.height(), sim.width()]))
        .map_err(werr)?;
    let mut buf = vec![0; sim.frame_len()];
    for t in 0..frames {
        sim.render_into(&mut buf);
        w.write_all(&buf).map_err(werr)?;
        progress(t + 1);
    }
    w.flush().map_err(werr)
}

/// The Debian package that ships a GStreamer element, for the "missing element" error.
fn package_of(element: &str) -> &'static str {
    match element {
        "x264enc" => "gstreamer1.0-plugins-ugly",
        "h264parse" => "gstreamer1.0-plugins-bad",
        "matroskamux" | "mp4mux" | "qtdemux" | "matroskademux" => "gstreamer1.0-plugins-good",
        "avdec_h264" => "gstreamer1.0-libav",
        _ => "gstreamer1.0-plugins-base",
    }
}

fn init() -> Result<()> {
    crate::capture::pipeline::init()
}

fn make(path: &Path, name: &str) -> Result<gst::Element> {
    gst::ElementFactory::make(name).build().map_err(|_| {
        Error::bad_input(
            path,
            format!(
                "GStreamer element {name} is missing; install {}",
                package_of(name)
            ),
        )
    })
}

/// A pipeline that goes back to Null however its run ends.
struct Running(gst::Pipeline);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

/// The first error message on the pipeline's bus, as "element: message (debug)".
fn bus_error(pipeline: &gst::Pipeline, wait: Option<gst::ClockTime>) -> Option<String> {
    let bus = pipeline.bus()?;
    let msg = bus.timed_pop_filtered(wait, &[gst::MessageType::Error])?;
    match msg.view() {
        gst::MessageView::Error(e) => Some(format!(
            "{}: {}{}",
            e.src()
                .map_or_else(|| "pipeline".into(), |s| s.path_string().to_string()),
            e.error(),
            e.debug()
                .map_or_else(String::new, |d| format!(" ({d})"))
                .replace('\n', " ")
        )),
        _ => None,
    }
}

fn encode(
    sim: &mut SimulatedTank,
    frames: usize,
    out: &Path,
    container: Container,
    settings: EncoderSettings,
    progress: &mut dyn FnMut(usize),
) -> Result<()> {
    init()?;
    let fail = |what: String| Error::bad_input(out, format!("cannot record: {what}"));
    let (w, h) = (sim.width(), sim.height());
    // GStreamer rows of GRAY8 are padded to 4 bytes; both looks have widths that need none.
    assert_eq!(w % 4, 0, "frame width must be a multiple of 4");
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Gray8, w as u32, h as u32)
        .fps(gst::Fraction::new(FPS as i32, 1))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let caps = info.to_caps().map_err(|e| fail(e.to_string()))?;
    let src = gst_app::AppSrc::builder()
        .caps(&caps)
        .format(gst::Format::Time)
        .block(true)
        // A few frames of queue: rendering waits for the encoder instead of filling memory.
        .max_bytes(8 * sim.frame_len() as u64)
        .build();
    let convert = make(out, "videoconvert")?;
    // 4:2:0, the chroma every H.264 decoder plays; the gray picture is all in luma.
    let i420 = gst::ElementFactory::make("capsfilter")
        .property(
            "caps",
            gst_video::VideoCapsBuilder::new()
                .format(gst_video::VideoFormat::I420)
                .build(),
        )
        .build()
        .map_err(|_| fail("capsfilter is missing".into()))?;
    let x264 = make(out, "x264enc")?;
    x264.set_property_from_str("pass", "quant");
    x264.set_property("quantizer", settings.quantizer);
    x264.set_property_from_str("speed-preset", settings.speed_preset);
    x264.set_property("key-int-max", settings.key_int_max);
    let parse = make(out, "h264parse")?;
    let mux = make(out, container.muxer())?;
    let sink = make(out, "filesink")?;
    sink.set_property("location", out.to_string_lossy().as_ref());

    let pipeline = gst::Pipeline::new();
    let elements = [
        src.upcast_ref(),
        &convert,
        &i420,
        &x264,
        &parse,
        &mux,
        &sink,
    ];
    pipeline
        .add_many(elements)
        .map_err(|e| fail(e.to_string()))?;
    gst::Element::link_many(elements).map_err(|e| fail(format!("cannot link: {e}")))?;
    let running = Running(pipeline);
    running
        .0
        .set_state(gst::State::Playing)
        .map_err(|_| fail(bus_error(&running.0, None).unwrap_or("cannot start".into())))?;

    let frame_ns = |t: usize| t as u64 * 1_000_000_000 / FPS as u64;
    for t in 0..frames {
        let mut buffer =
            gst::Buffer::with_size(sim.frame_len()).map_err(|e| fail(e.to_string()))?;
        {
            let b = buffer.get_mut().expect("a new buffer is writable");
            b.set_pts(gst::ClockTime::from_nseconds(frame_ns(t)));
            b.set_duration(gst::ClockTime::from_nseconds(frame_ns(t + 1) - frame_ns(t)));
            let mut map = b.map_writable().map_err(|e| fail(e.to_string()))?;
            sim.render_into(map.as_mut_slice());
        }
        if src.push_buffer(buffer).is_err() {
            let why = bus_error(&running.0, Some(gst::ClockTime::from_seconds(1)));
            return Err(fail(why.unwrap_or_else(|| "the pipeline stopped".into())));
        }
        progress(t + 1);
    }
    src.end_of_stream()
        .map_err(|e| fail(format!("end of stream refused: {e}")))?;
    let bus = running.0.bus().expect("a pipeline has a bus");
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::NONE,
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => Ok(()),
        Some(gst::MessageView::Error(e)) => Err(fail(format!(
            "{}: {}",
            e.src()
                .map_or_else(|| "pipeline".into(), |s| s.path_string().to_string()),
            e.error()
        ))),
        _ => Err(fail("the pipeline ended without end of stream".into())),
    }
}

/// Decodes a video file to 8-bit gray frames (`filesrc ! decodebin ! videoconvert !
/// appsink`), every frame, as fast as it decodes.
pub fn decode_gray(path: &Path) -> Result<Frames> {
    init()?;
    if !path.is_file() {
        return Err(Error::Read {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let fail = |what: String| Error::bad_input(path, format!("cannot decode: {what}"));
    let pipeline = gst::parse::launch(
        "filesrc name=src ! decodebin ! videoconvert ! video/x-raw,format=GRAY8 ! \
         appsink name=sink sync=false max-buffers=16",
    )
    .map_err(|e| fail(e.to_string()))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| fail("not a pipeline".into()))?;
    let running = Running(pipeline);
    let by_name = |n: &str| running.0.by_name(n).expect("named in the description");
    by_name("src").set_property("location", path.to_string_lossy().as_ref());
    let sink = by_name("sink")
        .downcast::<gst_app::AppSink>()
        .expect("appsink is an AppSink");
    running
        .0
        .set_state(gst::State::Playing)
        .map_err(|_| fail(bus_error(&running.0, None).unwrap_or("cannot start".into())))?;
    let mut frames = Frames {
        count: 0,
        height: 0,
        width: 0,
        data: Vec::new(),
    };
    // Decoding a local file never pauses for long; a pipeline silent this long is stuck.
    let stall = std::time::Duration::from_secs(20);
    let mut last_sample = std::time::Instant::now();
    loop {
        let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(200)) else {
            if sink.is_eos() {
                break;
            }
            if let Some(e) = bus_error(&running.0, Some(gst::ClockTime::ZERO)) {
                return Err(fail(e));
            }
            if last_sample.elapsed() > stall {
                return Err(fail(format!("no frame for {} s", stall.as_secs())));
            }
            continue;
        };
        last_sample = std::time::Instant::now();
        let (buffer, caps) = match (sample.buffer(), sample.caps()) {
            (Some(b), Some(c)) => (b, c),
            _ => return Err(fail("a sample without buffer or caps".into())),
        };
        let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| fail(e.to_string()))?;
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
            .map_err(|e| fail(e.to_string()))?;
        let (w, h) = (info.width() as usize, info.height() as usize);
        if frames.count == 0 {
            (frames.width, frames.height) = (w, h);
        } else if (w, h) != (frames.width, frames.height) {
            return Err(fail(format!("frame size changed to {w}x{h}")));
        }
        let stride = frame.plane_stride()[0] as usize;
        let plane = frame.plane_data(0).map_err(|e| fail(e.to_string()))?;
        for row in plane.chunks(stride).take(h) {
            frames.data.extend_from_slice(&row[..w]);
        }
        frames.count += 1;
    }
    Ok(frames)
}
