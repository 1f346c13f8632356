//! The frame ring between a capture callback and its inference thread (as cpal does it):
//! a bounded single-producer single-consumer ring of pre-allocated frame slots.
//!
//! Two `ringbuf` rings carry the same slots: `full` from producer to consumer, `free` back.
//! The producer never allocates. When no free slot is left it either drops the frame and
//! counts it ([`Overflow::Drop`], for live sources: the real-time side never blocks and
//! never hides a loss) or waits for one ([`Overflow::Wait`], for a file read as fast as
//! possible, where every frame must be processed).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::{Duration, Instant};

use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

/// One frame in flight: GRAY8 pixels plus where and when it came from.
#[derive(Debug)]
pub struct FrameSlot {
    /// `width * height` GRAY8 pixels, rows packed.
    pub pixels: Box<[u8]>,
    /// Frame index in the source's current session, from its timestamp (30 fps).
    pub index: u64,
    /// Stream time of the frame in nanoseconds (its presentation timestamp).
    pub pts_ns: u64,
    /// When the frame reached the appsink (for end-to-end latency).
    pub arrival: Instant,
    /// Connection session of the source; a new session means the stream restarted.
    pub session: u32,
    /// The source's picture within its session: a new one means its size changed (a
    /// camera reconfigured), so this frame does not follow the last one.
    pub picture: u32,
    /// An RTSP camera's session: the lower transport its stream comes over (TCP or UDP).
    pub transport: Option<super::RtspTransport>,
}

/// What the producer does when the consumer has no free slot left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Drop the frame and count it (live sources).
    Drop,
    /// Wait for a free slot (files read as fast as possible).
    Wait,
}

/// State both halves see.
#[derive(Debug, Default)]
struct Shared {
    dropped: AtomicU64,
    closed: AtomicBool,
    consumer: Mutex<Option<Thread>>,
    producer: Mutex<Option<Thread>>,
}

/// Unparks the thread registered in `waiter`, if any.
fn wake(waiter: &Mutex<Option<Thread>>) {
    if let Some(t) = waiter.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        t.unpark();
    }
}

/// Registers the calling thread in `waiter`, to be woken by the other side.
fn register(waiter: &Mutex<Option<Thread>>) {
    *waiter.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::thread::current());
}

/// The capture side of the ring.
pub struct RingWriter {
    full: HeapProd<FrameSlot>,
    free: HeapCons<FrameSlot>,
    shared: Arc<Shared>,
    overflow: Overflow,
}

/// The inference side of the ring.
pub struct RingReader {
    full: HeapCons<FrameSlot>,
    free: HeapProd<FrameSlot>,
    shared: Arc<Shared>,
}

/// A ring of `slots` frames of `frame_len` bytes each, all allocated now.
pub fn frame_ring(slots: usize, frame_len: usize, overflow: Overflow) -> (RingWriter, RingReader) {
    let (full_tx, full_rx) = HeapRb::<FrameSlot>::new(slots).split();
    let (mut free_tx, free_rx) = HeapRb::<FrameSlot>::new(slots).split();
    let now = Instant::now();
    for _ in 0..slots {
        let slot = FrameSlot {
            pixels: vec![0; frame_len].into_boxed_slice(),
            index: 0,
            pts_ns: 0,
            arrival: now,
            session: 0,
            picture: 0,
            transport: None,
        };
        if free_tx.try_push(slot).is_err() {
            unreachable!("the free ring holds every slot");
        }
    }
    let shared = Arc::new(Shared::default());
    (
        RingWriter {
            full: full_tx,
            free: free_rx,
            shared: shared.clone(),
            overflow,
        },
        RingReader {
            full: full_rx,
            free: free_tx,
            shared,
        },
    )
}

impl RingWriter {
    /// Fills a free slot with `fill` and hands it to the consumer. Returns false when the
    /// frame was dropped (no free slot under [`Overflow::Drop`], or the reader is gone).
    pub fn write(&mut self, fill: impl FnOnce(&mut FrameSlot)) -> bool {
        let slot = loop {
            if let Some(slot) = self.free.try_pop() {
                break Some(slot);
            }
            if self.shared.closed.load(Ordering::Acquire) {
                break None;
            }
            match self.overflow {
                Overflow::Drop => break None,
                Overflow::Wait => {
                    register(&self.shared.producer);
                    std::thread::park_timeout(Duration::from_millis(5));
                }
            }
        };
        let Some(mut slot) = slot else {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        fill(&mut slot);
        if self.full.try_push(slot).is_err() {
            unreachable!("a slot taken from the free ring always fits the full ring");
        }
        wake(&self.shared.consumer);
        true
    }

    /// Frames dropped so far because the consumer fell behind.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl RingReader {
    /// The next frame, waiting up to `timeout`. Give the slot back with [`Self::recycle`].
    pub fn pop(&mut self, timeout: Duration) -> Option<FrameSlot> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(slot) = self.full.try_pop() {
                return Some(slot);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            register(&self.shared.consumer);
            // Re-check after registering, so an unpark between the check and the park is
            // not lost (park returns at once if the token is set).
            if let Some(slot) = self.full.try_pop() {
                return Some(slot);
            }
            std::thread::park_timeout(deadline - now);
        }
    }

    /// Returns a slot to the producer.
    pub fn recycle(&mut self, slot: FrameSlot) {
        if self.free.try_push(slot).is_err() {
            unreachable!("the free ring has room for every slot");
        }
        wake(&self.shared.producer);
    }

    /// Frames waiting in the ring.
    pub fn pending(&self) -> usize {
        self.full.occupied_len()
    }

    /// Frames the producer dropped so far.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for RingReader {
    /// A producer waiting for a slot must not wait forever once nobody reads.
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        wake(&self.shared.producer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_and_counts_when_full() {
        let (mut w, mut r) = frame_ring(2, 4, Overflow::Drop);
        for i in 0..3 {
            w.write(|s| s.index = i);
        }
        assert_eq!(w.dropped(), 1);
        let a = r.pop(Duration::ZERO).unwrap();
        assert_eq!(a.index, 0);
        r.recycle(a);
        assert!(w.write(|s| s.index = 9));
        assert_eq!(r.pop(Duration::ZERO).unwrap().index, 1);
        assert_eq!(r.pop(Duration::ZERO).unwrap().index, 9);
        assert!(r.pop(Duration::from_millis(1)).is_none());
    }

    #[test]
    fn waiting_producer_loses_nothing() {
        let (mut w, mut r) = frame_ring(3, 16, Overflow::Wait);
        let producer = std::thread::spawn(move || {
            for i in 0..1000 {
                assert!(w.write(|s| {
                    s.index = i;
                    s.pixels[0] = i as u8;
                }));
            }
            w.dropped()
        });
        for i in 0..1000 {
            let s = r.pop(Duration::from_secs(5)).expect("frame arrives");
            assert_eq!((s.index, s.pixels[0]), (i, i as u8));
            r.recycle(s);
        }
        assert_eq!(producer.join().unwrap(), 0);
    }
}
