//! The latest picture of a camera's source, for the web page: the clips branch's picture
//! (the whole source, before the crop), kept a few times a second. A camera with the page
//! but without clips has the branch for this alone, its frame rate cut to
//! [`VIEW_FPS`] in the pipeline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::frame::ClipFrame;

/// Pictures a second the page is given (it refreshes at a few Hz).
pub const VIEW_FPS: u32 = 5;
/// The widest picture the page is given.
pub const VIEW_WIDTH: u32 = 640;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct SourceView {
    latest: Mutex<Option<(Arc<ClipFrame>, Instant)>>,
    /// The source's size (`width << 32 | height`), in which crops are given.
    source_size: AtomicU64,
}

impl SourceView {
    /// Whether a new picture is wanted now (none yet, or the last is old).
    pub fn wants(&self) -> bool {
        let every = Duration::from_secs(1) / VIEW_FPS;
        let latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        latest.as_ref().is_none_or(|(_, at)| at.elapsed() >= every)
    }

    pub(super) fn offer(&self, frame: &Arc<ClipFrame>) {
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        *latest = Some((frame.clone(), Instant::now()));
    }

    pub(super) fn set_source_size(&self, width: u32, height: u32) {
        self.source_size.store(
            u64::from(width) << 32 | u64::from(height),
            Ordering::Relaxed,
        );
    }

    /// The latest picture and the source's size, once both are known.
    pub fn latest(&self) -> Option<(Arc<ClipFrame>, (u32, u32))> {
        let size = self.source_size.load(Ordering::Relaxed);
        let (w, h) = ((size >> 32) as u32, size as u32);
        let latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        let (frame, _) = latest.as_ref()?;
        let source = if w == 0 || h == 0 {
            (frame.width(), frame.height())
        } else {
            (w, h)
        };
        Some((frame.clone(), source))
    }
}
