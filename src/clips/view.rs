//! The latest picture of a camera's source, for the web page: the clips branch's picture
//! (the whole source, before the crop), kept a few times a second. A camera with the page
//! but without clips has the branch for this alone, its frame rate cut to
//! [`VIEW_FPS`] in the pipeline.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::frame::ClipFrame;
use super::SourceSize;

/// Pictures a second the page is given (it refreshes at a few Hz).
pub const VIEW_FPS: u32 = 5;
/// The widest picture the page is given.
pub const VIEW_WIDTH: u32 = 640;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct SourceView {
    latest: Mutex<Option<(Arc<ClipFrame>, Instant)>>,
    /// The source's size, in which crops are given.
    pub(super) source_size: SourceSize,
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

    /// The latest picture and the source's size (the picture's own while unknown).
    pub fn latest(&self) -> Option<(Arc<ClipFrame>, (u32, u32))> {
        let latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        let (frame, _) = latest.as_ref()?;
        Some((frame.clone(), self.source_size.or_of(Some(frame))))
    }
}
