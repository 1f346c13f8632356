//! The pre-roll and the clips being gathered: plain data, no threads. Every frame of the
//! clip branch goes in; a clip opened at an alert takes the pre-roll's frames from
//! `pre_s` before the alert on, then every frame up to its end, and comes out complete.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use super::frame::ClipFrame;

/// How much of the past the pre-roll keeps beyond `pre_s`: the camera thread may score a
/// frame up to a ring's worth (about a second) after the clip branch delivered it.
const LAG_NS: u64 = 2_000_000_000;

/// A clip to gather: which frames, and where it goes.
#[derive(Debug, Clone)]
pub struct ClipPlan {
    /// The alert's id.
    pub id: String,
    /// The finished file.
    pub path: PathBuf,
    pub session: u32,
    /// Stream times of its first and last frames (inclusive), nanoseconds.
    pub start_ns: u64,
    pub end_ns: u64,
}

/// A clip with its frames, in order.
#[derive(Debug)]
pub struct Clip {
    pub plan: ClipPlan,
    pub frames: Vec<Arc<ClipFrame>>,
}

/// The pre-roll and the open clips of one camera.
#[derive(Debug)]
pub struct Collector {
    pre_ns: u64,
    preroll: VecDeque<Arc<ClipFrame>>,
    open: Vec<Clip>,
}

impl Collector {
    pub fn new(pre_ns: u64) -> Collector {
        Collector {
            pre_ns,
            preroll: VecDeque::new(),
            open: Vec::new(),
        }
    }

    /// Takes the next frame of the branch; returns the clips it completed (a frame past
    /// their end, or the first frame of a new session, which no clip spans).
    pub fn push(&mut self, frame: Arc<ClipFrame>) -> Vec<Clip> {
        let mut done = Vec::new();
        let mut k = 0;
        while k < self.open.len() {
            let c = &mut self.open[k];
            if c.plan.session != frame.session || frame.pts_ns > c.plan.end_ns {
                done.push(self.open.remove(k));
                continue;
            }
            if frame.pts_ns >= c.plan.start_ns {
                c.frames.push(frame.clone());
            }
            k += 1;
        }
        if self
            .preroll
            .back()
            .is_some_and(|f| f.session != frame.session)
        {
            self.preroll.clear();
        }
        let keep_from = frame.pts_ns.saturating_sub(self.pre_ns + LAG_NS);
        self.preroll.push_back(frame);
        while self.preroll.front().is_some_and(|f| f.pts_ns < keep_from) {
            self.preroll.pop_front();
        }
        done
    }

    /// Opens a clip: it starts with what the pre-roll holds of it.
    pub fn open(&mut self, plan: ClipPlan) {
        let frames = self
            .preroll
            .iter()
            .filter(|f| {
                f.session == plan.session && (plan.start_ns..=plan.end_ns).contains(&f.pts_ns)
            })
            .cloned()
            .collect();
        self.open.push(Clip { plan, frames });
    }

    /// The frame of stream time `pts_ns` (or the first after it) of `session`, once the
    /// branch has delivered it.
    pub fn frame_at(&self, session: u32, pts_ns: u64) -> Option<Arc<ClipFrame>> {
        self.preroll
            .iter()
            .find(|f| f.session == session && f.pts_ns >= pts_ns)
            .cloned()
    }

    /// The newest frame, whatever its time.
    pub fn newest(&self) -> Option<Arc<ClipFrame>> {
        self.preroll.back().cloned()
    }

    /// Clips still gathering.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Ends every open clip with the frames it has (the source is over).
    pub fn close_all(&mut self) -> Vec<Clip> {
        std::mem::take(&mut self.open)
    }

    /// Frames held by the pre-roll.
    pub fn preroll_len(&self) -> usize {
        self.preroll.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME_NS: u64 = 1_000_000_000 / 30;

    fn frame(session: u32, n: u64) -> Arc<ClipFrame> {
        gstreamer::init().unwrap();
        Arc::new(ClipFrame::from_gray(session, n * FRAME_NS, 4, 4, &[0; 16]).unwrap())
    }

    fn plan(id: &str, alert: u64, pre: u64, post: u64) -> ClipPlan {
        ClipPlan {
            id: id.into(),
            path: PathBuf::from(format!("{id}.mp4")),
            session: 1,
            start_ns: (alert - pre) * FRAME_NS,
            end_ns: (alert + post) * FRAME_NS,
        }
    }

    #[test]
    fn a_clip_takes_its_pre_roll_then_the_frames_up_to_its_end() {
        let mut c = Collector::new(10 * FRAME_NS);
        for n in 0..100 {
            assert!(c.push(frame(1, n)).is_empty());
        }
        // The pre-roll keeps pre_s and the lag behind the newest frame.
        assert_eq!(c.preroll_len(), 10 + 60 + 1);
        c.open(plan("a", 99, 10, 5));
        c.open(plan("b", 102, 10, 5));
        let mut done = Vec::new();
        for n in 100..120 {
            done.extend(c.push(frame(1, n)));
        }
        assert_eq!(done.len(), 2);
        let pts: Vec<u64> = done[0].frames.iter().map(|f| f.pts_ns / FRAME_NS).collect();
        assert_eq!(pts, (89..=104).collect::<Vec<_>>());
        assert_eq!(done[1].frames.len(), 16);
        assert_eq!(done[1].frames[0].pts_ns, 92 * FRAME_NS);
        assert_eq!(
            c.frame_at(1, 110 * FRAME_NS).unwrap().pts_ns,
            110 * FRAME_NS
        );
        assert!(c.frame_at(2, 0).is_none());
    }

    #[test]
    fn a_new_session_closes_what_is_open() {
        let mut c = Collector::new(10 * FRAME_NS);
        for n in 0..20 {
            c.push(frame(1, n));
        }
        c.open(plan("a", 19, 10, 30));
        assert_eq!(c.open_count(), 1);
        let done = c.push(frame(2, 0));
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].frames.len(), 11);
        assert_eq!(c.preroll_len(), 1);
        c.open(plan("b", 10, 10, 5));
        assert_eq!(c.close_all().len(), 1);
    }
}
