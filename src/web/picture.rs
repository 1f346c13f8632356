//! A camera's latest picture as the page shows it: the source's own picture with the
//! crop drawn (a GStreamer source: its view, see [`crate::clips::view`]), else what the
//! model sees (the simulator's, or until the view has a picture): GRAY8 320x240. PNG,
//! encoded on the web thread.

use crate::clips::snapshot;
use crate::frame;
use crate::live::CameraBoard;

/// The picture as PNG bytes with its caption, or `None` before the first frame.
pub fn png(c: &CameraBoard) -> Option<(Vec<u8>, &'static str)> {
    if let Some((f, source)) = c.view.as_ref().and_then(|v| v.latest()) {
        match snapshot::picture_png(&f, source, c.crop) {
            Ok(bytes) => return Some((bytes, "source")),
            Err(e) => tracing::warn!(camera = %c.name, "cannot draw the page's picture: {e}"),
        }
    }
    let p = c.picture()?;
    let mut bytes = Vec::with_capacity(64 << 10);
    let mut enc = png::Encoder::new(&mut bytes, frame::WIDTH as u32, frame::HEIGHT as u32);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    let written = enc
        .write_header()
        .and_then(|mut w| w.write_image_data(&p.pixels));
    match written {
        Ok(()) => Some((bytes, "model input")),
        Err(e) => {
            tracing::warn!(camera = %c.name, "cannot encode the page's picture: {e}");
            None
        }
    }
}
