//! The simulated tank: synthetic fish video with ground-truth chases, for demos, tests and
//! training data where no real tank can be pointed at (issue 5).
//!
//! - [`tank`]: the dynamics (fish, displays and the chases they lead to, ground truth); no
//!   pixels.
//! - [`render`]: the looks (processed 320x240 white-on-black, raw 1280x720 camera view).
//! - [`record`]: the recorder (H.264 in MKV/MP4 through GStreamer, or a `.npy` stack) and
//!   reading a recording back.
//! - [`calibrate`]: the figures that compare simulated y~ with the real recording's.
//! - [`crate::rng`]: the seeded random numbers everything above draws from.
//!
//! [`SimulatedTank`] ties dynamics and look together for a live source: it renders frame
//! after frame into a caller's buffer, with no encoding and no allocation per frame. It does
//! not pace itself; a live source calls it every 1/30 s.

pub mod calibrate;
pub mod record;
pub mod render;
pub mod tank;

use std::time::Instant;

pub use render::{Look, RAW_TANK_CROP};
pub use tank::{Behaviour, Chase, Fish, Tank};

use crate::{Error, Result};

/// Frames per second of the simulated camera: every source's, as the study's (30 fps).
pub use crate::frame::FPS;

/// Fish in the tank by default: the study filmed six Serpae tetra.
pub const STUDY_FISH: usize = 6;

/// Most fish a tank holds (the dynamics look at every pair each frame).
pub const MAX_FISH: usize = 64;

/// What to simulate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimConfig {
    /// Everything (positions, chases, noise) follows from the seed.
    pub seed: u64,
    /// Number of fish.
    pub fish: usize,
    pub look: Look,
    pub behaviour: Behaviour,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 0,
            fish: STUDY_FISH,
            look: Look::Processed,
            behaviour: Behaviour::default(),
        }
    }
}

/// One rendered frame: 8-bit gray, row-major, `width * height` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub index: usize,
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// A tank and a look: the simulated camera.
#[derive(Debug, Clone)]
pub struct SimulatedTank {
    config: SimConfig,
    tank: Tank,
    renderer: render::Renderer,
}

impl SimulatedTank {
    /// A tank at frame 0. Fails when the number of fish is 0 or above [`MAX_FISH`].
    pub fn new(config: SimConfig) -> Result<SimulatedTank> {
        if config.fish == 0 || config.fish > MAX_FISH {
            return Err(Error::Input(format!(
                "{} fish; expected 1 to {MAX_FISH}",
                config.fish
            )));
        }
        Ok(SimulatedTank {
            config,
            tank: Tank::new(config.seed, config.fish, config.behaviour),
            renderer: render::Renderer::new(config.look, config.seed),
        })
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    pub fn width(&self) -> usize {
        self.config.look.width()
    }

    pub fn height(&self) -> usize {
        self.config.look.height()
    }

    /// Bytes per frame (`width * height`, 8-bit gray).
    pub fn frame_len(&self) -> usize {
        self.width() * self.height()
    }

    pub fn fps(&self) -> u32 {
        FPS
    }

    /// Index of the frame that the next call renders.
    pub fn next_index(&self) -> usize {
        self.tank.frame()
    }

    /// Renders the next frame into `buf` (exactly [`Self::frame_len`] bytes) and advances
    /// the tank by one frame.
    pub fn render_into(&mut self, buf: &mut [u8]) {
        self.renderer.render(&self.tank, buf);
        self.tank.step();
    }

    /// Renders the next frame into a new buffer.
    pub fn next_frame(&mut self) -> Frame {
        let index = self.next_index();
        let mut pixels = vec![0; self.frame_len()];
        self.render_into(&mut pixels);
        Frame {
            index,
            width: self.width(),
            height: self.height(),
            pixels,
        }
    }

    /// Every chase that has started so far, in order of start (one in progress carries its
    /// planned end frame, which may lie beyond the frames rendered).
    pub fn truth(&self) -> &[Chase] {
        self.tank.chases()
    }

    /// The fish as they are in the next frame (for overlays and checks).
    pub fn fish(&self) -> &[Fish] {
        self.tank.fish()
    }
}

/// Renders `frames` frames of `look` (after a short warm-up) and returns frames per
/// second: the cost of a live simulated camera, dynamics included. The issue asks for
/// >= 300 frames/s for the processed look on the project's 2-core machine.
pub fn render_rate(look: Look, frames: usize) -> Result<f64> {
    let mut sim = SimulatedTank::new(SimConfig {
        look,
        seed: 1,
        ..SimConfig::default()
    })?;
    let mut buf = vec![0; sim.frame_len()];
    for _ in 0..frames.min(30) {
        sim.render_into(&mut buf);
    }
    let start = Instant::now();
    for _ in 0..frames {
        sim.render_into(&mut buf);
    }
    std::hint::black_box(&buf);
    Ok(frames as f64 / start.elapsed().as_secs_f64())
}
