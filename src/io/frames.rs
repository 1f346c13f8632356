//! Grayscale frame sequences: a `(T, H, W)` uint8 `.npy` stack or a folder of PNG frames
//! (`00000.png`, `00001.png`, ... in name order), as the study stored its processed video.

use std::fs;
use std::path::{Path, PathBuf};

use crate::io::npy;
use crate::{Error, Result};

/// `count` frames of `height` x `width` uint8 pixels, row-major, frame after frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frames {
    pub count: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<u8>,
}

impl Frames {
    /// The pixels of frame `t`.
    pub fn frame(&self, t: usize) -> &[u8] {
        let n = self.height * self.width;
        &self.data[t * n..(t + 1) * n]
    }

    /// Every frame halved in both axes as the study did ([`crate::frame::halve_to`]:
    /// PIL's NEAREST, `small[y][x] = full[2y+1][2x+1]`).
    pub fn downscale_half(&self) -> Frames {
        let (h, w) = (self.height / 2, self.width / 2);
        let mut data = vec![0; self.count * h * w];
        if h * w > 0 {
            for (t, small) in data.chunks_exact_mut(h * w).enumerate() {
                crate::frame::halve_to(self.frame(t), self.width, small);
            }
        }
        Frames {
            count: self.count,
            height: h,
            width: w,
            data,
        }
    }
}

/// Reads frames from a `.npy` file of shape `(T, H, W)` and dtype uint8, or from a folder
/// of grayscale PNG files.
pub fn read_frames(path: &Path) -> Result<Frames> {
    if path.is_dir() {
        return read_png_dir(path);
    }
    let a = npy::read(path)?;
    let [count, height, width] = match a.shape.as_slice() {
        &[t, h, w] => [t, h, w],
        &[t, h, w, 1] => [t, h, w],
        s => {
            return Err(Error::bad_input(
                path,
                format!("shape {s:?}; expected frames of shape (T, H, W)"),
            ))
        }
    };
    // The file's bytes are the frames: taken, not copied (a day of frames is gigabytes).
    let data = a.into_u8().map_err(|a| {
        Error::bad_input(path, format!("dtype {:?}; expected uint8 frames", a.dtype))
    })?;
    Ok(Frames {
        count,
        height,
        width,
        data,
    })
}

fn read_png_dir(dir: &Path) -> Result<Frames> {
    let entries = fs::read_dir(dir).map_err(|source| Error::Read {
        path: dir.to_owned(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))
        .collect();
    if files.is_empty() {
        return Err(Error::bad_input(
            dir,
            "no .png files; expected a folder of frames 00000.png, 00001.png, ...",
        ));
    }
    files.sort();
    let mut frames = Frames {
        count: 0,
        height: 0,
        width: 0,
        data: Vec::new(),
    };
    for file in &files {
        let (h, w, pixels) = read_png_gray(file)?;
        if frames.count == 0 {
            frames.height = h;
            frames.width = w;
        } else if (h, w) != (frames.height, frames.width) {
            return Err(Error::bad_input(
                file,
                format!(
                    "{w}x{h} pixels; expected {}x{} like {}",
                    frames.width,
                    frames.height,
                    files[0].display()
                ),
            ));
        }
        frames.data.extend_from_slice(&pixels);
        frames.count += 1;
    }
    Ok(frames)
}

/// Decodes one PNG to 8-bit grayscale. Colour is converted with PIL's "L" formula
/// (ITU-R 601-2 luma), which is what the study's `load_img(color_mode='grayscale')` did.
fn read_png_gray(path: &Path) -> Result<(usize, usize, Vec<u8>)> {
    let file = fs::File::open(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let bad = |e: String| Error::bad_input(path, e);
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().map_err(|e| {
        bad(format!(
            "not a readable PNG ({e}); expected a grayscale PNG frame"
        ))
    })?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| bad("PNG too large".into()))?;
    let mut buf = vec![0; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| bad(format!("corrupt PNG ({e}); expected a grayscale PNG frame")))?;
    if info.bit_depth != png::BitDepth::Eight {
        return Err(bad(format!(
            "{:?}-bit PNG; expected 8-bit grayscale",
            info.bit_depth
        )));
    }
    let (w, h) = (info.width as usize, info.height as usize);
    let buf = &buf[..info.buffer_size()];
    let luma = |r: u8, g: u8, b: u8| -> u8 {
        ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
    };
    let pixels = match info.color_type {
        png::ColorType::Grayscale => buf.to_vec(),
        png::ColorType::GrayscaleAlpha => buf.chunks_exact(2).map(|p| p[0]).collect(),
        png::ColorType::Rgb => buf
            .chunks_exact(3)
            .map(|p| luma(p[0], p[1], p[2]))
            .collect(),
        png::ColorType::Rgba => buf
            .chunks_exact(4)
            .map(|p| luma(p[0], p[1], p[2]))
            .collect(),
        png::ColorType::Indexed => return Err(bad("indexed PNG; expected grayscale".into())),
    };
    Ok((h, w, pixels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downscale_takes_odd_pixels() {
        let data: Vec<u8> = (0..16).collect();
        let f = Frames {
            count: 1,
            height: 4,
            width: 4,
            data,
        };
        assert_eq!(f.downscale_half().data, vec![5, 7, 13, 15]);
    }
}
