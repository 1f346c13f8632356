//! The simulated tank as a live source: the processed look rendered straight into the frame
//! ring at 30 fps, no encoding. Frames are paced by absolute deadlines from the start (the
//! simulator has no pipeline clock), so the rate does not drift.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::gst_source::SourceEvent;
use super::ring::RingWriter;
use super::{FPS, FRAME_HEIGHT, FRAME_WIDTH};
use crate::sim::{Look, SimConfig, SimulatedTank};

/// Starts the simulated camera's thread; it runs until `stop`.
pub fn spawn(
    seed: u64,
    mut writer: RingWriter,
    events: Sender<SourceEvent>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(format!("sim:{seed}"))
        .spawn(move || {
            let config = SimConfig {
                seed,
                look: Look::Processed,
                ..SimConfig::default()
            };
            let mut tank = match SimulatedTank::new(config) {
                Ok(t) => t,
                Err(e) => {
                    let _ = events.send(SourceEvent::Failed(e.to_string()));
                    return;
                }
            };
            debug_assert_eq!((tank.width(), tank.height()), (FRAME_WIDTH, FRAME_HEIGHT));
            let _ = events.send(SourceEvent::Connected { session: 1 });
            let mut spare = vec![0u8; tank.frame_len()];
            let period = Duration::from_secs(1) / FPS;
            let start = Instant::now();
            for index in 0u64.. {
                let due = start + period * index as u32;
                while let Some(wait) = due.checked_duration_since(Instant::now()) {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(wait.min(Duration::from_millis(50)));
                }
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let arrival = Instant::now();
                let written = writer.write(|slot| {
                    tank.render_into(&mut slot.pixels);
                    slot.index = index;
                    slot.pts_ns = index * period.as_nanos() as u64;
                    slot.arrival = arrival;
                    slot.session = 1;
                });
                if !written {
                    // The frame is lost to a full ring, but the tank still lives on.
                    tank.render_into(&mut spare);
                }
            }
            let _ = events.send(SourceEvent::Ended);
        })
        .expect("spawning the simulator thread")
}
