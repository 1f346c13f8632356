//! The study's frame rules, in one place: the geometry every source delivers (GRAY8
//! 240x320 at 30 fps), the PIL-nearest halving that makes model-size frames, the model's
//! input slices of consecutive frames, and the crop rectangle a camera may need first.
//! Everything that turns pixels into model input goes through here, so that the live
//! pipeline, `predict`, `train` and the benchmarks cannot drift apart.

use serde::{Deserialize, Serialize};

use crate::model::Model;
use crate::{Error, Result};

/// Width of every frame a source delivers (the study's processed frames).
pub const WIDTH: usize = 320;
/// Height of every frame a source delivers.
pub const HEIGHT: usize = 240;
/// Pixels of one delivered frame.
pub const PIXELS: usize = WIDTH * HEIGHT;
/// Frames per second every source delivers (the study's camera).
pub const FPS: u32 = 30;

/// Halves a frame `width` pixels wide in both axes exactly as PIL's NEAREST resize (which
/// Keras' `load_img(target_size=...)` uses) does for a factor of two:
/// `small[y][x] = full[2y+1][2x+1]` (PIL samples pixel centres). `small` holds the half
/// frame: `width / 2` by half the rows.
pub fn halve_to(full: &[u8], width: usize, small: &mut [u8]) {
    let half = width / 2;
    for (y, out) in small.chunks_exact_mut(half).enumerate() {
        let row = &full[(2 * y + 1) * width..];
        for (x, v) in out.iter_mut().enumerate() {
            *v = row[2 * x + 1];
        }
    }
}

/// A mirror image of the tank (training augmentation: the study found flips essential
/// against overfitting). The default is no flip.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flip {
    pub horizontal: bool,
    pub vertical: bool,
}

/// Writes one model input slice (DESIGN §1): channel `j` of pixel `(y, x)` is
/// `value(frames[j][y][x])` at `out[(y * width + x) * channels + j]`, channel-last, with
/// the frames mirrored as `flip` asks. `frames` are model-size (`height x width`), oldest
/// first. `value` turns a pixel into the model's number: the live engines compute
/// `v as f32 / 255.0` (as the study's `img_to_array(...) / 255.`), the trainer its own
/// precision.
pub fn fill_slice<T: Copy, F: AsRef<[u8]>>(
    frames: &[F],
    height: usize,
    width: usize,
    flip: Flip,
    value: impl Fn(u8) -> T,
    out: &mut [T],
) {
    let channels = frames.len();
    for (j, f) in frames.iter().enumerate() {
        let f = f.as_ref();
        for y in 0..height {
            let sy = if flip.vertical { height - 1 - y } else { y };
            let row = &f[sy * width..(sy + 1) * width];
            for x in 0..width {
                let sx = if flip.horizontal { width - 1 - x } else { x };
                out[(y * width + x) * channels + j] = value(row[sx]);
            }
        }
    }
}

/// Refuses a model that cannot take what sources deliver: every source gives 240x320
/// frames, which the models see halved (120x160).
pub fn check_model_input(model: &Model) -> Result<()> {
    let i = model.input;
    if (2 * i.height, 2 * i.width) == (HEIGHT, WIDTH) {
        return Ok(());
    }
    Err(Error::Model(format!(
        "model {} takes {}x{} frames; sources deliver {WIDTH}x{HEIGHT} frames, which models \
         see halved: expected a model of {}x{} input",
        model.name,
        i.width,
        i.height,
        WIDTH / 2,
        HEIGHT / 2
    )))
}

/// A rectangle of a picture in pixels: the top-left pixel `(x, y)` and the size. As a
/// camera setting it is cut out of the source's picture before scaling to 320x240; the
/// simulator's ground truth records where its tank is with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Crop {
    #[serde(rename = "left")]
    pub x: u32,
    #[serde(rename = "top")]
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Crop {
    /// A rectangle of positive size.
    pub fn new(x: u32, y: u32, width: u32, height: u32) -> Result<Crop> {
        if width == 0 || height == 0 {
            return Err(Error::Input(format!(
                "crop {x},{y},{width},{height}: expected a width and height above 0"
            )));
        }
        Ok(Crop {
            x,
            y,
            width,
            height,
        })
    }

    /// Whether the rectangle lies inside a `width x height` picture.
    pub fn fits(&self, width: u32, height: u32) -> bool {
        self.x.checked_add(self.width).is_some_and(|r| r <= width)
            && self.y.checked_add(self.height).is_some_and(|b| b <= height)
    }
}

impl std::fmt::Display for Crop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{},{},{},{}", self.x, self.y, self.width, self.height)
    }
}

impl std::str::FromStr for Crop {
    type Err = Error;
    /// `x,y,w,h` in pixels.
    fn from_str(s: &str) -> Result<Crop> {
        let bad = || Error::Input(format!("crop {s:?}: expected x,y,w,h in pixels"));
        let v: Vec<u32> = s
            .split(',')
            .map(|p| p.trim().parse::<u32>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| bad())?;
        match v.as_slice() {
            &[x, y, w, h] => Crop::new(x, y, w, h),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halving_takes_odd_pixels() {
        let full: Vec<u8> = (0..16).collect();
        let mut small = [0u8; 4];
        halve_to(&full, 4, &mut small);
        assert_eq!(small, [5, 7, 13, 15]);
        // An odd width loses its last column, as PIL does.
        let full: Vec<u8> = (0..20).collect(); // 5 wide, 4 high
        let mut small = [0u8; 4];
        halve_to(&full, 5, &mut small);
        assert_eq!(small, [6, 8, 16, 18]);
    }

    #[test]
    fn slices_are_channel_last_and_flip() {
        let a = [1u8, 2, 3, 4]; // 2x2
        let b = [5u8, 6, 7, 8];
        let mut out = [0u8; 8];
        fill_slice(&[&a, &b], 2, 2, Flip::default(), |v| v, &mut out);
        assert_eq!(out, [1, 5, 2, 6, 3, 7, 4, 8]);
        let flip = Flip {
            horizontal: true,
            vertical: false,
        };
        fill_slice(&[&a, &b], 2, 2, flip, |v| v, &mut out);
        assert_eq!(out, [2, 6, 1, 5, 4, 8, 3, 7]);
    }

    #[test]
    fn crop_parses() {
        assert_eq!(
            "10,20,300,200".parse::<Crop>().unwrap(),
            Crop {
                x: 10,
                y: 20,
                width: 300,
                height: 200
            }
        );
        assert!("1,2,3".parse::<Crop>().is_err());
        assert!("1,2,0,4".parse::<Crop>().is_err());
        assert!(Crop::new(0, 0, 320, 240).unwrap().fits(320, 240));
        assert!(!Crop::new(1, 0, 320, 240).unwrap().fits(320, 240));
    }
}
