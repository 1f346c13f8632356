//! The looks: how a tank state becomes an 8-bit gray frame.
//!
//! - [`Look::Processed`]: 320x240, white fish on black, like the study's processed frames
//!   (`../shared/data/seed/sample-frames/`): slender bodies with brighter heads, faint static
//!   specks and wall dots, a bright rim at the top, and a sprinkle of faint flickering pixels
//!   (the real frames have ~2000 pixels of value 1-20 that change from frame to frame).
//! - [`Look::Raw`]: 1280x720, what a camera above the tank sees: a white tank floor with
//!   dark fish, dark wall dots, uneven lighting, a darker room around the tank and sensor
//!   noise. The tank fills [`RAW_TANK_CROP`]: cropping that rectangle and scaling it to
//!   320x240 puts the fish where the processed look has them, so the live source's `--crop`
//!   and `--preprocess bgsub|invert` have something real to do.
//!
//! Speed matters (a live simulated camera must cost little): static content is drawn once
//! into a background, each frame starts as a copy of it, and each fish is drawn as
//! anti-aliased tapered segments inside its own bounding box. Nothing here moves a fish.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::tank::{Fish, Tank, SPINE_JOINTS, TANK_BOUNDS};
use crate::frame::Crop;
use crate::rng::Rng;

/// Size of the processed look: the study's frames are 240x320.
pub const PROCESSED_WIDTH: usize = crate::frame::WIDTH;
pub const PROCESSED_HEIGHT: usize = crate::frame::HEIGHT;
/// Size of the raw look: a 720p camera.
pub const RAW_WIDTH: usize = 1280;
pub const RAW_HEIGHT: usize = 720;

/// The rectangle of the raw look that shows what the processed look shows: crop it and
/// scale it by 0.4 to 320x240 (videocrop left=240 right=240 top=60 bottom=60).
pub const RAW_TANK_CROP: Crop = Crop {
    x: 240,
    y: 60,
    width: 800,
    height: 600,
};

/// Raw-look pixels per processed-look pixel (800 / 320).
const RAW_SCALE: f64 = RAW_TANK_CROP.width as f64 / PROCESSED_WIDTH as f64;

/// How the simulated tank looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Look {
    /// White fish on black, 320x240, as the study's processed frames.
    Processed,
    /// A camera's view: white tank, dark fish, 1280x720.
    Raw,
}

impl Look {
    pub fn width(self) -> usize {
        match self {
            Look::Processed => PROCESSED_WIDTH,
            Look::Raw => RAW_WIDTH,
        }
    }

    pub fn height(self) -> usize {
        match self {
            Look::Processed => PROCESSED_HEIGHT,
            Look::Raw => RAW_HEIGHT,
        }
    }

    /// The rectangle that holds the tank: the whole frame for the processed look.
    pub fn tank_crop(self) -> Crop {
        match self {
            Look::Processed => Crop {
                x: 0,
                y: 0,
                width: PROCESSED_WIDTH as u32,
                height: PROCESSED_HEIGHT as u32,
            },
            Look::Raw => RAW_TANK_CROP,
        }
    }
}

impl fmt::Display for Look {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Look::Processed => "processed",
            Look::Raw => "raw",
        })
    }
}

impl FromStr for Look {
    type Err = String;
    fn from_str(s: &str) -> Result<Look, String> {
        match s {
            "processed" => Ok(Look::Processed),
            "raw" => Ok(Look::Raw),
            _ => Err(format!("unknown look {s:?}; expected processed or raw")),
        }
    }
}

/// Streams of the seed's random numbers for each look's static scene and per-frame noise
/// (the dynamics use stream 1).
const SCENE_STREAM: u64 = 2;
const NOISE_STREAM: u64 = 3;

/// Flickering faint pixels per processed frame. The real frames have ~2000 pixels of value
/// 1-20 of which ~75 % change between frames, adding ~0.0002 to y~ (sample frames 1-9);
/// they set the floor of the y~ distribution.
const FLICKER_PIXELS: usize = 900;

/// Sensor noise of the raw look: standard deviation in gray levels.
const RAW_NOISE_SIGMA: f64 = 1.5;

/// Turns tank states into frames of one look, reusing its buffers.
#[derive(Debug, Clone)]
pub struct Renderer {
    look: Look,
    background: Vec<u8>,
    /// Raw look: a table of sensor noise, read from a random offset each frame.
    noise: Vec<i8>,
    rng: Rng,
}

/// Body profile from snout to tail tip at the spine joints: radius (processed px) and
/// brightness (0-255 at full brightness). Matches the sample frames: ~4-5 px wide, heads
/// ~170-200, bodies ~110-140, tails fading to ~60.
const RADIUS: [f64; SPINE_JOINTS] = [1.7, 2.5, 2.1, 1.4, 0.7];
const GLOW: [f64; SPINE_JOINTS] = [200.0, 185.0, 140.0, 105.0, 60.0];
/// Raw look: how much of the floor's light each part of a fish blocks.
const SHADE: [f64; SPINE_JOINTS] = [0.8, 0.8, 0.7, 0.55, 0.3];

impl Renderer {
    pub fn new(look: Look, seed: u64) -> Renderer {
        let mut scene = Rng::new(seed, SCENE_STREAM);
        let (background, noise) = match look {
            Look::Processed => (processed_background(&mut scene), Vec::new()),
            Look::Raw => (raw_background(&mut scene), raw_noise_table(&mut scene)),
        };
        Renderer {
            look,
            background,
            noise,
            rng: Rng::new(seed, NOISE_STREAM),
        }
    }

    pub fn look(&self) -> Look {
        self.look
    }

    /// Draws the tank's current state into `out` (width x height bytes, row-major).
    pub fn render(&mut self, tank: &Tank, out: &mut [u8]) {
        let (w, h) = (self.look.width(), self.look.height());
        let display_fins = tank.behaviour.display_fins;
        assert_eq!(
            out.len(),
            w * h,
            "render: buffer of {} bytes for a {w}x{h} frame",
            out.len()
        );
        match self.look {
            Look::Processed => {
                out.copy_from_slice(&self.background);
                self.flicker(out);
                for fish in tank.fish() {
                    let body = Body::of(fish, display_fins, 1.0, [0.0, 0.0], GLOW);
                    body.draw(out, w, h, |old, cov, glow| {
                        let v = (cov * glow * fish.brightness) as u8;
                        old.max(v)
                    });
                }
            }
            Look::Raw => {
                let offset = self.rng.below(self.noise.len() - out.len());
                let noise = &self.noise[offset..offset + out.len()];
                for ((o, &b), &n) in out.iter_mut().zip(&self.background).zip(noise) {
                    *o = (b as i16 + n as i16).clamp(0, 255) as u8;
                }
                let origin = [RAW_TANK_CROP.x as f64, RAW_TANK_CROP.y as f64];
                for fish in tank.fish() {
                    let body = Body::of(fish, display_fins, RAW_SCALE, origin, SHADE);
                    body.draw(out, w, h, |old, cov, shade| {
                        (old as f64 * (1.0 - cov * shade)) as u8
                    });
                }
            }
        }
    }

    /// Faint pixels that flicker from frame to frame, mostly 1-3 (geometric tail), half of
    /// them in the glare band under the rim as in the real frames.
    fn flicker(&mut self, out: &mut [u8]) {
        let (w, h) = (PROCESSED_WIDTH, PROCESSED_HEIGHT);
        for k in 0..FLICKER_PIXELS {
            let bits = self.rng.next_u64();
            let x = ((bits & 0xffff) as usize * w) >> 16;
            let y = if k % 2 == 0 {
                28 + ((((bits >> 16) & 0xffff) as usize * 60) >> 16)
            } else {
                (((bits >> 16) & 0xffff) as usize * h) >> 16
            };
            // Geometric value: each further level with probability 1/2 (top bits).
            let v = 1 + ((bits >> 32) as u32).leading_ones().min(12) as u8;
            let p = &mut out[y * w + x];
            *p = (*p).max(v);
        }
    }
}

/// A fish ready to draw: segments between spine joints, scaled and shifted into a frame.
struct Body {
    joints: [[f64; 2]; SPINE_JOINTS],
    radius: [f64; SPINE_JOINTS],
    /// Brightness (processed look) or shade (raw look) at each joint.
    tone: [f64; SPINE_JOINTS],
}

impl Body {
    /// `display_fins`: how much wider fully spread fins make the front half of the body
    /// ([`super::tank::Behaviour::display_fins`]); `fish.fins` says how far they are spread.
    fn of(
        fish: &Fish,
        display_fins: f64,
        scale: f64,
        origin: [f64; 2],
        tone: [f64; SPINE_JOINTS],
    ) -> Body {
        // The tail undulates: a travelling wave sideways to the body, growing toward the tail.
        let amp = fish.tail_amplitude;
        let mut joints = fish.spine;
        for (k, pair) in fish.spine.windows(2).enumerate() {
            let (a, b) = (pair[0], pair[1]);
            let d = [b[0] - a[0], b[1] - a[1]];
            let n = d[0].hypot(d[1]).max(1e-9);
            let normal = [-d[1] / n, d[0] / n];
            let k = k + 1;
            let along = k as f64 / (SPINE_JOINTS - 1) as f64;
            let side = amp * along * along * (fish.tail_phase - 1.2 * k as f64).sin();
            joints[k] = [b[0] + side * normal[0], b[1] + side * normal[1]];
        }
        for j in &mut joints {
            *j = [origin[0] + scale * j[0], origin[1] + scale * j[1]];
        }
        let size = fish.length / 26.0;
        // Spread pectoral and dorsal fins widen the body behind the head, seen from above.
        let widen = 1.0 + display_fins * fish.fins;
        let mut radius = RADIUS.map(|r| r * scale * size);
        radius[1] *= widen;
        radius[2] *= widen;
        Body {
            joints,
            radius,
            tone,
        }
    }

    /// Calls `blend(old, coverage, tone)` for every pixel the body touches, where coverage
    /// (0-1) is the anti-aliased overlap with the nearest segment and tone the
    /// interpolated brightness or shade there.
    fn draw(&self, out: &mut [u8], w: usize, h: usize, blend: impl Fn(u8, f64, f64) -> u8) {
        let tone = &self.tone;
        let rmax = self.radius.iter().fold(0.0f64, |m, &r| m.max(r)) + 1.0;
        let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for j in &self.joints {
            x0 = x0.min(j[0]);
            y0 = y0.min(j[1]);
            x1 = x1.max(j[0]);
            y1 = y1.max(j[1]);
        }
        let clip = |v: f64, n: usize| (v.max(0.0) as usize).min(n);
        let (px0, px1) = (
            clip((x0 - rmax).floor(), w),
            clip((x1 + rmax).ceil() + 1.0, w),
        );
        let (py0, py1) = (
            clip((y0 - rmax).floor(), h),
            clip((y1 + rmax).ceil() + 1.0, h),
        );
        struct Seg {
            a: [f64; 2],
            ab: [f64; 2],
            inv_len2: f64,
            r0: f64,
            dr: f64,
            t0: f64,
            dt: f64,
        }
        let segs: [Seg; SPINE_JOINTS - 1] = std::array::from_fn(|k| {
            let (a, b) = (self.joints[k], self.joints[k + 1]);
            let ab = [b[0] - a[0], b[1] - a[1]];
            Seg {
                a,
                ab,
                inv_len2: 1.0 / (ab[0] * ab[0] + ab[1] * ab[1]).max(1e-9),
                r0: self.radius[k],
                dr: self.radius[k + 1] - self.radius[k],
                t0: tone[k],
                dt: tone[k + 1] - tone[k],
            }
        });
        for py in py0..py1 {
            let cy = py as f64 + 0.5;
            let row = &mut out[py * w + px0..py * w + px1];
            for (px, pixel) in (px0..).zip(row.iter_mut()) {
                let cx = px as f64 + 0.5;
                let mut best_cov = 0.0;
                let mut best_tone = 0.0;
                for s in &segs {
                    let (dx, dy) = (cx - s.a[0], cy - s.a[1]);
                    let u = ((dx * s.ab[0] + dy * s.ab[1]) * s.inv_len2).clamp(0.0, 1.0);
                    let (ex, ey) = (dx - u * s.ab[0], dy - u * s.ab[1]);
                    let r = s.r0 + u * s.dr;
                    // Coverage ramps over one pixel across the edge (anti-aliasing).
                    let cov = (r + 0.5 - (ex * ex + ey * ey).sqrt()).clamp(0.0, 1.0);
                    let t = s.t0 + u * s.dt;
                    if cov * t > best_cov * best_tone {
                        best_cov = cov;
                        best_tone = t;
                    }
                }
                if best_cov > 0.0 {
                    *pixel = blend(*pixel, best_cov, best_tone);
                }
            }
        }
    }
}

/// The processed look's static content: wall dots along the side walls, a faint rim at the
/// top with brighter streaks at the corners, and a few faint specks (sample frames).
fn processed_background(rng: &mut Rng) -> Vec<u8> {
    let (w, h) = (PROCESSED_WIDTH, PROCESSED_HEIGHT);
    let mut bg = vec![0u8; w * h];
    let put = |bg: &mut [u8], x: usize, y: usize, v: u8| {
        if x < w && y < h {
            bg[y * w + x] = bg[y * w + x].max(v);
        }
    };
    // Wall dots: two columns, one dot every ~30 px.
    for x in [15, 308] {
        for k in 0..7 {
            let y = 64 + 30 * k + rng.below(3);
            let v = rng.range(25.0, 60.0) as u8;
            put(&mut bg, x, y, v);
            put(&mut bg, x + 1, y, v / 2);
            put(&mut bg, x, y + 1, v / 2);
        }
    }
    // The rim: a faint line under the water surface, streaky near the corners.
    let rim_y = TANK_BOUNDS.top as usize - 4;
    for x in 16..304 {
        let corner = !(80..=245).contains(&x);
        let v = if corner {
            rng.range(10.0, 45.0)
        } else {
            rng.range(0.0, 6.0)
        };
        put(&mut bg, x, rim_y, v as u8);
        if corner && rng.chance(0.5) {
            put(&mut bg, x, rim_y + 1 + rng.below(3), (v / 2.0) as u8);
        }
    }
    // Specks: dust on the glass, a few pixels each.
    for _ in 0..40 {
        let (x, y) = (rng.below(w), rng.below(h));
        let v = rng.range(8.0, 40.0) as u8;
        put(&mut bg, x, y, v);
        if rng.chance(0.3) {
            put(&mut bg, x + 1, y, v / 2);
        }
    }
    bg
}

/// The raw look's static scene: a dim room, the tank's dark frame, a white floor lit
/// unevenly (a lamp off to the upper left, darker corners) and dark dots on the walls.
fn raw_background(rng: &mut Rng) -> Vec<u8> {
    let (w, h) = (RAW_WIDTH, RAW_HEIGHT);
    let c = RAW_TANK_CROP;
    let to_raw = |x: f64, y: f64| (c.x as f64 + RAW_SCALE * x, c.y as f64 + RAW_SCALE * y);
    let (wl, wt) = to_raw(TANK_BOUNDS.left - 6.0, TANK_BOUNDS.top - 6.0);
    let (wr, wb) = to_raw(TANK_BOUNDS.right + 6.0, TANK_BOUNDS.bottom + 6.0);
    let (fl, ft) = (c.x as f64 + 10.0, c.y as f64 + 10.0);
    let (fr, fb) = (
        (c.x + c.width) as f64 - 10.0,
        (c.y + c.height) as f64 - 10.0,
    );
    let mut bg = vec![0u8; w * h];
    for y in 0..h {
        for x in 0..w {
            let (xf, yf) = (x as f64, y as f64);
            let v = if xf >= wl && xf < wr && yf >= wt && yf < wb {
                // The floor: bright, brighter toward the lamp, falling off to the corners.
                let (nx, ny) = ((xf - wl) / (wr - wl) - 0.5, (yf - wt) / (wb - wt) - 0.5);
                let vignette = 1.0 - 0.35 * (nx * nx + ny * ny);
                let lamp = 1.0 - 0.12 * (nx + ny);
                205.0 * vignette * lamp
            } else if xf >= fl && xf < fr && yf >= ft && yf < fb {
                // The tank's frame and walls seen from above.
                70.0 + 20.0 * ((xf - fl) / (fr - fl))
            } else {
                // The room: a dim bench, lit from the upper left.
                45.0 + 25.0 * (1.0 - yf / h as f64) + 10.0 * (1.0 - xf / w as f64)
            };
            bg[y * w + x] = v.clamp(0.0, 255.0) as u8;
        }
    }
    // Dark dots on the side walls (where the processed look has its bright ones).
    for xp in [15.0, 308.0] {
        for k in 0..7 {
            let (cx, cy) = to_raw(xp, 64.0 + 30.0 * k as f64 + rng.range(0.0, 3.0));
            let r = rng.range(2.5, 4.0);
            for y in (cy - r) as usize..=(cy + r) as usize {
                for x in (cx - r) as usize..=(cx + r) as usize {
                    if (x as f64 - cx).hypot(y as f64 - cy) <= r {
                        bg[y * w + x] = (bg[y * w + x] as f64 * 0.45) as u8;
                    }
                }
            }
        }
    }
    bg
}

/// Sensor noise: a table somewhat larger than a frame, read at a new offset every frame.
fn raw_noise_table(rng: &mut Rng) -> Vec<i8> {
    (0..RAW_WIDTH * RAW_HEIGHT + 65_536)
        .map(|_| {
            (RAW_NOISE_SIGMA * rng.normal())
                .round()
                .clamp(-127.0, 127.0) as i8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::tank::Behaviour;

    /// Pixels a fish lights in the processed look.
    fn lit(fish: &Fish, display_fins: f64) -> usize {
        let mut out = vec![0u8; PROCESSED_WIDTH * PROCESSED_HEIGHT];
        Body::of(fish, display_fins, 1.0, [0.0, 0.0], GLOW).draw(
            &mut out,
            PROCESSED_WIDTH,
            PROCESSED_HEIGHT,
            |old, cov, glow| old.max((cov * glow) as u8),
        );
        out.iter().filter(|&&v| v > 40).count()
    }

    #[test]
    fn spread_fins_widen_the_body() {
        let tank = Tank::new(1, 1, Behaviour::default());
        let mut fish = tank.fish()[0].clone();
        let folded = lit(&fish, 1.0);
        fish.fins = 1.0;
        let spread = lit(&fish, 1.0);
        // Fins spread to double width over the front half: about a third more body.
        assert!(
            spread as f64 > 1.25 * folded as f64,
            "{folded} px folded, {spread} spread"
        );
        assert_eq!(lit(&fish, 0.0), folded, "display_fins 0 draws no fins");
    }
}
