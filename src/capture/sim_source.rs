//! The simulated tank as a live source: the processed look rendered straight into the frame
//! ring at 30 fps, no encoding. Frames are paced by absolute deadlines from the start (the
//! simulator has no pipeline clock), so the rate does not drift. Like real cameras, which
//! are not synchronised, each tank starts at a phase of its own within the frame period
//! (from its seed), so that many tanks' frames do not all arrive in the same instant.
//! `fast` renders as fast as the frames are scored instead (blocking on a full ring).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::gst_source::{spawn_source, SourceEvent, SourceFailure};
use super::ring::RingWriter;
use super::Stall;
use crate::clips::frame::ClipFrame;
use crate::clips::ClipFeed;
use crate::frame::{FPS, HEIGHT, WIDTH};
use crate::rng::SplitMix;
use crate::sim::{Look, SimConfig, SimulatedTank};

/// Which tank, and how fast it goes.
#[derive(Debug, Clone, Copy)]
pub struct SimPace {
    pub seed: u64,
    /// As fast as the frames are taken, not at 30 fps.
    pub fast: bool,
    /// Frames not delivered for a while (the tank lives on; the camera sees a gap).
    pub stall: Option<Stall>,
}

/// When the tank of `seed` delivers its first frame, after its start: a phase within the
/// frame period, the same for a seed every run.
pub fn phase(seed: u64) -> Duration {
    let period = Duration::from_secs(1) / FPS;
    let u = SplitMix(seed ^ 0x5eed_f5e7).next_u64() % 1000;
    period * u as u32 / 1000
}

/// Starts camera `camera`'s simulated tank on a thread of its own; it runs until `stop`.
/// With `clips`, every frame also goes there (its own picture: gray, 320x240).
pub fn spawn(
    camera: &str,
    pace: SimPace,
    mut writer: RingWriter,
    events: Sender<SourceEvent>,
    stop: Arc<AtomicBool>,
    clips: Option<ClipFeed>,
) -> std::io::Result<JoinHandle<()>> {
    spawn_source(format!("sim {camera}"), events, move |events| {
        let SimPace { seed, fast, stall } = pace;
        let config = SimConfig {
            seed,
            look: Look::Processed,
            ..SimConfig::default()
        };
        let mut tank = match SimulatedTank::new(config) {
            Ok(t) => t,
            Err(e) => {
                let _ = events.send(SourceEvent::Failed(SourceFailure {
                    what: e.to_string(),
                    element: None,
                    after_start: false,
                }));
                return;
            }
        };
        debug_assert_eq!((tank.width(), tank.height()), (WIDTH, HEIGHT));
        let _ = events.send(SourceEvent::Connected { session: 1 });
        let mut spare = vec![0u8; tank.frame_len()];
        let period = Duration::from_secs(1) / FPS;
        let start = Instant::now() + phase(seed);
        for index in 0u64.. {
            let due = start + period * index as u32;
            while let Some(wait) = due.checked_duration_since(Instant::now()).filter(|_| !fast) {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(wait.min(Duration::from_millis(50)));
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let arrival = Instant::now();
            let pts_ns = index * period.as_nanos() as u64;
            if stall.is_some_and(|s| (s.at..s.at + s.lasting).contains(&(period * index as u32))) {
                tank.render_into(&mut spare);
                continue;
            }
            let mut clip = None;
            let written = writer.write(|slot| {
                tank.render_into(&mut slot.pixels);
                slot.index = index;
                slot.pts_ns = pts_ns;
                slot.arrival = arrival;
                slot.session = 1;
                if clips.as_ref().is_some_and(ClipFeed::wants) {
                    clip =
                        ClipFrame::from_gray(1, pts_ns, WIDTH as u32, HEIGHT as u32, &slot.pixels);
                }
            });
            if !written {
                // The frame is lost to a full ring, but the tank still lives on.
                tank.render_into(&mut spare);
                if clips.as_ref().is_some_and(ClipFeed::wants) {
                    clip = ClipFrame::from_gray(1, pts_ns, WIDTH as u32, HEIGHT as u32, &spare);
                }
            }
            if let (Some(feed), Some(f)) = (&clips, clip) {
                feed.push(f);
            }
        }
        let _ = events.send(SourceEvent::Ended);
    })
}
