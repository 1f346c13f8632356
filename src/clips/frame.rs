//! A frame as clips keep it: the source's own picture (colour, its resolution capped by
//! `max_width`) in I420, laid out as GStreamer lays out I420 of that size by default, so
//! that it goes into an encoder as it is.

use gstreamer_video as gst_video;

/// One picture of the pre-roll, with the stream time that joins it to the scored frame.
#[derive(Debug)]
pub struct ClipFrame {
    /// Connection session (as the frame ring's): a new one is a new stream.
    pub session: u32,
    /// Stream time in nanoseconds: the same as the scored frame's (both branches of the
    /// pipeline split after the frame rate is fixed).
    pub pts_ns: u64,
    pub info: gst_video::VideoInfo,
    /// I420 in `info`'s layout (`info.size()` bytes).
    pub data: Vec<u8>,
}

impl ClipFrame {
    /// An I420 frame of `width` x `height` whose planes are copied row by row from
    /// `plane(index)` = (bytes, stride) (any strides).
    pub fn copy_i420<'a>(
        session: u32,
        pts_ns: u64,
        width: u32,
        height: u32,
        plane: impl Fn(usize) -> (&'a [u8], usize),
    ) -> Option<ClipFrame> {
        let info = i420_info(width, height)?;
        let mut data = vec![0u8; info.size()];
        for p in 0..3 {
            let (src, src_stride) = plane(p);
            let (w, h) = plane_size(&info, p);
            let (offset, stride) = (info.offset()[p], info.stride()[p] as usize);
            for row in 0..h {
                let from = &src.get(row * src_stride..row * src_stride + w)?;
                let to = offset + row * stride;
                data[to..to + w].copy_from_slice(from);
            }
        }
        Some(ClipFrame {
            session,
            pts_ns,
            info,
            data,
        })
    }

    /// A gray frame (the simulator's): its luma, with neutral chroma.
    pub fn from_gray(
        session: u32,
        pts_ns: u64,
        width: u32,
        height: u32,
        gray: &[u8],
    ) -> Option<ClipFrame> {
        let neutral = vec![128u8; width.div_ceil(2) as usize];
        ClipFrame::copy_i420(session, pts_ns, width, height, |p| match p {
            0 => (gray, width as usize),
            _ => (neutral.as_slice(), 0),
        })
    }

    pub fn width(&self) -> u32 {
        self.info.width()
    }

    pub fn height(&self) -> u32 {
        self.info.height()
    }

    /// The colour (R, G, B) of pixel (x, y), BT.601 limited range as cameras send it.
    pub fn rgb(&self, x: u32, y: u32) -> (u8, u8, u8) {
        Planes::of(self).rgb(x as usize, y as usize)
    }

    /// The picture scaled (nearest pixel) to `width` x `height`, as packed RGB into `out`.
    pub fn scaled_rgb(&self, width: u32, height: u32, out: &mut [u8]) {
        let planes = Planes::of(self);
        let (fw, fh) = (self.width() as usize, self.height() as usize);
        let (w, h) = (width as usize, height as usize);
        let xs: Vec<usize> = (0..w).map(|x| x * fw / w).collect();
        for (y, row) in out.chunks_exact_mut(w * 3).take(h).enumerate() {
            let sy = y * fh / h;
            for (px, &sx) in row.chunks_exact_mut(3).zip(&xs) {
                let (r, g, b) = planes.rgb(sx, sy);
                px.copy_from_slice(&[r, g, b]);
            }
        }
    }
}

/// The three planes' offsets and strides, read once (a pixel at a time is hot).
struct Planes<'a> {
    data: &'a [u8],
    offset: [usize; 3],
    stride: [usize; 3],
}

impl<'a> Planes<'a> {
    fn of(f: &'a ClipFrame) -> Planes<'a> {
        let (o, s) = (f.info.offset(), f.info.stride());
        Planes {
            data: &f.data,
            offset: [o[0], o[1], o[2]],
            stride: [s[0] as usize, s[1] as usize, s[2] as usize],
        }
    }

    /// BT.601 video range in integers (the usual 8-bit fixed point; a float round per
    /// channel made a 640x480 snapshot's picture cost 6 ms).
    fn rgb(&self, x: usize, y: usize) -> (u8, u8, u8) {
        let at = |p: usize, x: usize, y: usize| {
            i32::from(self.data[self.offset[p] + y * self.stride[p] + x])
        };
        let c = 298 * (at(0, x, y) - 16) + 128;
        let (d, e) = (at(1, x / 2, y / 2) - 128, at(2, x / 2, y / 2) - 128);
        let clip = |v: i32| (v >> 8).clamp(0, 255) as u8;
        (
            clip(c + 409 * e),
            clip(c - 100 * d - 208 * e),
            clip(c + 516 * d),
        )
    }
}

/// GStreamer's default layout of I420 at this size; `None` for an empty picture.
pub fn i420_info(width: u32, height: u32) -> Option<gst_video::VideoInfo> {
    gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, width, height)
        .fps(gstreamer::Fraction::new(crate::frame::FPS as i32, 1))
        .build()
        .ok()
        .filter(|_| width > 0 && height > 0)
}

/// Width and height in bytes of plane `p` of I420.
fn plane_size(info: &gst_video::VideoInfo, p: usize) -> (usize, usize) {
    let (w, h) = (info.width() as usize, info.height() as usize);
    match p {
        0 => (w, h),
        _ => (w.div_ceil(2), h.div_ceil(2)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gray_frames_keep_their_gray() {
        gstreamer::init().unwrap();
        let gray: Vec<u8> = (0..320 * 240).map(|i| (i % 256) as u8).collect();
        let f = ClipFrame::from_gray(1, 0, 320, 240, &gray).unwrap();
        assert_eq!(f.data.len(), f.info.size());
        assert_eq!(f.rgb(0, 0), (0, 0, 0));
        // Video range: 235 is white.
        let (r, g, b) = f.rgb(235, 0);
        assert!(r == g && g == b && r == 255, "{r} {g} {b}");
        // An odd size has chroma planes rounded up, rows padded to four bytes.
        let odd = ClipFrame::from_gray(1, 0, 5, 3, &[50; 15]).unwrap();
        assert_eq!(odd.data.len(), odd.info.size());
        assert_eq!(odd.rgb(4, 2).0, odd.rgb(0, 0).0);
    }
}
