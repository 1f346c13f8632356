//! What a network output still has to deliver: an ordered, bounded queue whose messages
//! leave only when the other side acknowledged them. The MQTT sink and webhooks keep their
//! backlog here while a broker or a receiver is away, and deliver it, in order, once it is
//! back.
//!
//! Two kinds of message: *kept* ones (alerts, outcomes, status, gaps, stats, the start
//! line), which stay until acknowledged, and *passing* ones (predictions), sent once when
//! there is a connection and the first to go when the queue is full. With a spool folder
//! the kept messages are also on disk ([`super::spool`]), so that a restart of burstwatch
//! delivers what the other side never acknowledged.

use std::collections::VecDeque;
use std::path::Path;

use super::spool::Spool;

/// One message to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Where it goes (an MQTT topic; a webhook's URL is its sink's own).
    pub topic: String,
    /// Exactly the JSON Lines object, without its newline.
    pub payload: Vec<u8>,
    /// An MQTT retained message (a camera's last status, the start line).
    pub retain: bool,
}

/// A queued message and where it stands.
#[derive(Debug)]
struct Entry {
    seq: u64,
    message: Message,
    acked: bool,
    /// Where the message ends in the spool file (0 without a spool).
    spool_end: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Outbox {
    /// Kept messages not yet acknowledged, oldest first.
    kept: VecDeque<Entry>,
    /// How many of `kept` (from the front) were handed to the connection.
    handed: usize,
    /// Passing messages not yet sent.
    passing: VecDeque<Entry>,
    capacity: usize,
    next_seq: u64,
    /// Messages dropped because the queue was full: (passing, kept).
    dropped: (u64, u64),
    spool: Option<Spool>,
}

/// What became of a message given to [`Outbox::push`]: it is queued, always.
#[derive(Debug)]
pub struct Pushed {
    /// Older messages dropped to make room (0 or 1).
    pub dropped: usize,
    /// The spool could not be written: the message waits in memory only.
    pub spool_error: Option<std::io::Error>,
}

/// What [`Outbox::next_to_send`] hands out to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub seq: u64,
    pub message: Message,
    /// Whether it must be acknowledged ([`Outbox::ack`]) before it leaves the queue.
    pub kept: bool,
}

impl Outbox {
    /// An empty queue of at most `capacity` messages, in memory.
    pub fn new(capacity: usize) -> Outbox {
        Outbox {
            kept: VecDeque::new(),
            handed: 0,
            passing: VecDeque::new(),
            capacity: capacity.max(1),
            next_seq: 0,
            dropped: (0, 0),
            spool: None,
        }
    }

    /// A queue whose kept messages are also in `dir`; what an earlier run left there
    /// unacknowledged comes first.
    pub fn spooled(capacity: usize, dir: &Path) -> std::io::Result<Outbox> {
        let (spool, left) = Spool::open(dir)?;
        let mut outbox = Outbox::new(capacity);
        for (message, spool_end) in left {
            let seq = outbox.take_seq();
            outbox.kept.push_back(Entry {
                seq,
                message,
                acked: false,
                spool_end,
            });
        }
        outbox.spool = Some(spool);
        while outbox.len() > outbox.capacity {
            outbox.drop_one();
        }
        Ok(outbox)
    }

    fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Messages waiting (kept ones not acknowledged, passing ones not sent).
    pub fn len(&self) -> usize {
        self.kept.len() + self.passing.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Kept messages not yet acknowledged.
    pub fn unacknowledged(&self) -> usize {
        self.kept.iter().filter(|e| !e.acked).count()
    }

    /// How many messages it holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Messages dropped so far because the queue was full: (passing, kept).
    pub fn dropped(&self) -> (u64, u64) {
        self.dropped
    }

    /// Queues a message. When the queue is full the oldest passing message goes, else
    /// the oldest kept one. A spool that cannot be written leaves the message in memory
    /// only, and says so.
    pub fn push(&mut self, message: Message, kept: bool) -> Pushed {
        let mut spool_error = None;
        let mut spool_end = 0;
        if kept {
            if let Some(spool) = &mut self.spool {
                match spool.append(&message) {
                    Ok(end) => spool_end = end,
                    Err(e) => spool_error = Some(e),
                }
            }
        }
        let seq = self.take_seq();
        let entry = Entry {
            seq,
            message,
            acked: false,
            spool_end,
        };
        if kept {
            self.kept.push_back(entry);
        } else {
            self.passing.push_back(entry);
        }
        let mut dropped = 0;
        while self.len() > self.capacity {
            self.drop_one();
            dropped += 1;
        }
        Pushed {
            dropped,
            spool_error,
        }
    }

    fn drop_one(&mut self) {
        if self.passing.pop_front().is_some() {
            self.dropped.0 += 1;
            return;
        }
        if let Some(e) = self.kept.pop_front() {
            self.handed = self.handed.saturating_sub(1);
            if !e.acked {
                self.dropped.1 += 1;
            }
            self.settle_spool(e.spool_end);
        }
    }

    /// The next message to send, oldest first. Kept messages handed out stay queued
    /// until [`Outbox::ack`].
    pub fn next_to_send(&mut self) -> Option<Outgoing> {
        // Skip kept messages acknowledged out of order (they leave with the front).
        while self.handed < self.kept.len() && self.kept[self.handed].acked {
            self.handed += 1;
        }
        let kept_next = self.kept.get(self.handed).map(|e| e.seq);
        let passing_next = self.passing.front().map(|e| e.seq);
        let take_kept = match (kept_next, passing_next) {
            (Some(k), Some(p)) => k < p,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        if take_kept {
            let e = &self.kept[self.handed];
            self.handed += 1;
            Some(Outgoing {
                seq: e.seq,
                message: e.message.clone(),
                kept: true,
            })
        } else {
            let e = self.passing.pop_front()?;
            Some(Outgoing {
                seq: e.seq,
                message: e.message,
                kept: false,
            })
        }
    }

    /// The other side acknowledged kept message `seq`: it leaves the queue once every
    /// message before it has too.
    pub fn ack(&mut self, seq: u64) {
        if let Ok(i) = self.kept.binary_search_by_key(&seq, |e| e.seq) {
            self.kept[i].acked = true;
        }
        let mut settled = None;
        while self.kept.front().is_some_and(|e| e.acked) {
            let e = self.kept.pop_front().expect("a front");
            self.handed = self.handed.saturating_sub(1);
            settled = Some(settled.unwrap_or(0).max(e.spool_end));
        }
        if let Some(end) = settled {
            self.settle_spool(end);
        }
    }

    /// The connection is gone: every kept message not acknowledged is sent again.
    pub fn rewind(&mut self) {
        self.handed = 0;
    }

    /// Everything before `end` in the spool is delivered (or dropped).
    fn settle_spool(&mut self, end: u64) {
        let Some(spool) = &mut self.spool else {
            return;
        };
        if end == 0 {
            return;
        }
        match spool.settle(end, self.kept.is_empty()) {
            Ok(0) => {}
            Ok(shift) => {
                for e in &mut self.kept {
                    e.spool_end = e.spool_end.saturating_sub(shift);
                }
            }
            Err(e) => tracing::warn!(
                "the spool at {} cannot record a delivery: {e}",
                spool.dir().display()
            ),
        }
    }

    /// Writes what the spool holds to disk (at the end of a run).
    pub fn sync(&mut self) -> std::io::Result<()> {
        match &mut self.spool {
            Some(s) => s.sync(),
            None => Ok(()),
        }
    }

    /// The spool folder, if any.
    pub fn spool_dir(&self) -> Option<&Path> {
        self.spool.as_ref().map(Spool::dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: u32) -> Message {
        Message {
            topic: format!("t/{n}"),
            payload: n.to_string().into_bytes(),
            retain: false,
        }
    }

    fn topics(out: &mut Outbox) -> Vec<String> {
        std::iter::from_fn(|| out.next_to_send())
            .map(|o| o.message.topic)
            .collect()
    }

    #[test]
    fn kept_messages_stay_until_acknowledged_and_are_sent_again_after_a_rewind() {
        let mut out = Outbox::new(10);
        for n in 0..3 {
            assert!(out.push(msg(n), true).spool_error.is_none());
        }
        let sent: Vec<_> = std::iter::from_fn(|| out.next_to_send()).collect();
        assert_eq!(sent.len(), 3);
        assert!(
            out.next_to_send().is_none(),
            "each is handed out once per connection"
        );
        // Acknowledged out of order: the middle one stays until the first is too.
        out.ack(sent[1].seq);
        assert_eq!(out.len(), 3);
        out.rewind();
        assert_eq!(topics(&mut out), ["t/0", "t/2"]);
        out.ack(sent[0].seq);
        assert_eq!(out.len(), 1);
        out.ack(sent[2].seq);
        assert!(out.is_empty());
    }

    #[test]
    fn a_full_queue_drops_passing_messages_first_then_the_oldest_kept() {
        let mut out = Outbox::new(3);
        assert_eq!(out.push(msg(0), true).dropped, 0);
        assert_eq!(out.push(msg(1), false).dropped, 0);
        assert_eq!(out.push(msg(2), true).dropped, 0);
        assert_eq!(out.push(msg(3), true).dropped, 1);
        assert_eq!(out.dropped(), (1, 0));
        assert_eq!(out.push(msg(4), true).dropped, 1);
        assert_eq!(out.dropped(), (1, 1));
        assert_eq!(topics(&mut out), ["t/2", "t/3", "t/4"]);
    }

    #[test]
    fn passing_messages_keep_their_place_in_the_order() {
        let mut out = Outbox::new(10);
        assert_eq!(out.push(msg(0), false).dropped, 0);
        assert_eq!(out.push(msg(1), true).dropped, 0);
        assert_eq!(out.push(msg(2), false).dropped, 0);
        // Passing and kept messages leave in the order they came.
        assert_eq!(topics(&mut out), ["t/0", "t/1", "t/2"]);
        assert_eq!(out.len(), 1, "the kept one waits for its acknowledgement");
    }

    #[test]
    fn a_spool_gives_back_what_was_not_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut out = Outbox::spooled(100, dir.path()).unwrap();
            for n in 0..5 {
                assert!(out.push(msg(n), true).spool_error.is_none());
            }
            assert!(out.push(msg(99), false).spool_error.is_none());
            let first = out.next_to_send().unwrap();
            let second = out.next_to_send().unwrap();
            out.ack(first.seq);
            // The delivered offset is written at most every 50 ms: a crash within them
            // delivers again (at least once), after them not.
            std::thread::sleep(std::time::Duration::from_millis(60));
            out.ack(second.seq);
            // Dropped without a goodbye, as by SIGKILL.
        }
        let mut out = Outbox::spooled(100, dir.path()).unwrap();
        assert_eq!(topics(&mut out), ["t/2", "t/3", "t/4"]);
        out.rewind();
        let all: Vec<_> = std::iter::from_fn(|| out.next_to_send()).collect();
        for o in &all {
            out.ack(o.seq);
        }
        assert!(out.is_empty());
        drop(out);
        let mut out = Outbox::spooled(100, dir.path()).unwrap();
        assert!(out.next_to_send().is_none(), "everything was delivered");
        assert!(out.push(msg(7), true).spool_error.is_none());
        drop(out);
        let mut out = Outbox::spooled(100, dir.path()).unwrap();
        assert_eq!(topics(&mut out), ["t/7"]);
    }
}
