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
    let pixels = c.picture()?;
    let size = (frame::WIDTH as u32, frame::HEIGHT as u32);
    match snapshot::encode_png(&pixels, size, png::ColorType::Grayscale) {
        Ok(bytes) => Some((bytes, "model input")),
        Err(e) => {
            tracing::warn!(camera = %c.name, "cannot encode the page's picture: {e}");
            None
        }
    }
}
