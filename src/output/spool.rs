//! An outbox on disk (`spool_dir`): the kept messages a network output has not delivered,
//! so that a restart of burstwatch (a crash, SIGKILL, a reboot) delivers them.
//!
//! Two files in the folder. `outbox.log` is append-only: one record per message, a length
//! and a CRC-32C ahead of it, so a record torn by a crash is recognised and cut off.
//! `outbox.done` says how far the log is delivered: the byte offset up to which every
//! record was acknowledged (or dropped), replaced atomically (written aside, renamed).
//! It is written at most every 50 ms while messages flow, so a crash may deliver a few
//! messages twice (at least once, as MQTT QoS 1 is), never none. Once everything is
//! delivered the log starts again from empty; a long backlog is compacted as it drains.
//!
//! Writes go to the operating system at once (they survive the process being killed);
//! `sync` (at the end of a run, and with each `done` update) makes them survive a power cut.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::outbox::Message;

const LOG: &str = "outbox.log";
const DONE: &str = "outbox.done";

/// How often the delivered offset is written while messages are acknowledged.
const DONE_EVERY: Duration = Duration::from_millis(50);

/// Delivered bytes at the head of the log past which it is compacted.
const COMPACT_AT: u64 = 8 << 20;

/// See the module documentation.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    log: File,
    /// The log's length.
    end: u64,
    /// Everything before this offset is delivered.
    done: u64,
    /// `done` as last written to disk, and when.
    written: (u64, Instant),
}

fn corrupt(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

impl Spool {
    /// Opens (or creates) the spool in `dir`; returns the messages not yet delivered,
    /// each with where it ends in the log.
    pub fn open(dir: &Path) -> std::io::Result<(Spool, Vec<(Message, u64)>)> {
        std::fs::create_dir_all(dir)?;
        let done = match std::fs::read(dir.join(DONE)) {
            Ok(b) if b.len() == 8 => u64::from_le_bytes(b.try_into().expect("8 bytes")),
            Ok(b) => {
                return Err(corrupt(format!(
                    "{} has {} bytes; expected 8",
                    dir.join(DONE).display(),
                    b.len()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let mut log = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(dir.join(LOG))?;
        let len = log.metadata()?.len();
        let done = done.min(len);
        log.seek(SeekFrom::Start(done))?;
        let mut bytes = Vec::new();
        log.read_to_end(&mut bytes)?;
        let mut left = Vec::new();
        let mut at = 0usize;
        while let Some((message, used)) = record(&bytes[at..]) {
            at += used;
            left.push((message, done + at as u64));
        }
        let good = done + at as u64;
        if good < len {
            tracing::warn!(
                "the spool {} ends in {} bytes of a record torn by a crash; they are cut off",
                dir.join(LOG).display(),
                len - good
            );
            log.set_len(good)?;
        }
        let spool = Spool {
            dir: dir.to_owned(),
            log,
            end: good,
            done,
            written: (done, Instant::now()),
        };
        if !left.is_empty() {
            tracing::info!(
                "the spool {} holds {} messages not delivered by an earlier run; they go first",
                dir.display(),
                left.len()
            );
        }
        Ok((spool, left))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends a message; returns where it ends in the log.
    pub fn append(&mut self, m: &Message) -> std::io::Result<u64> {
        let mut body = Vec::with_capacity(5 + m.topic.len() + m.payload.len());
        body.push(m.retain as u8);
        body.extend_from_slice(&(m.topic.len() as u32).to_le_bytes());
        body.extend_from_slice(m.topic.as_bytes());
        body.extend_from_slice(&m.payload);
        let mut rec = Vec::with_capacity(8 + body.len());
        rec.extend_from_slice(&(body.len() as u32).to_le_bytes());
        rec.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        rec.extend_from_slice(&body);
        // One write: a kill between two writes cannot tear a record's header from its body.
        self.log.write_all(&rec)?;
        self.end += rec.len() as u64;
        Ok(self.end)
    }

    /// Every record before `upto` is delivered; `nothing_left` when the outbox is empty.
    /// Returns how many bytes the log moved down by when it was compacted (the caller
    /// shifts its offsets), else 0.
    pub fn settle(&mut self, upto: u64, nothing_left: bool) -> std::io::Result<u64> {
        self.done = self.done.max(upto.min(self.end));
        if nothing_left && self.done == self.end {
            self.log.set_len(0)?;
            let shift = self.end;
            self.end = 0;
            self.done = 0;
            self.write_done()?;
            return Ok(shift);
        }
        if self.done >= COMPACT_AT && self.done * 2 >= self.end {
            return self.compact();
        }
        if self.written.1.elapsed() >= DONE_EVERY {
            self.write_done()?;
        }
        Ok(0)
    }

    /// Moves the undelivered tail of the log to a new log.
    fn compact(&mut self) -> std::io::Result<u64> {
        let mut tail = Vec::with_capacity((self.end - self.done) as usize);
        let mut f = File::open(self.dir.join(LOG))?;
        f.seek(SeekFrom::Start(self.done))?;
        f.read_to_end(&mut tail)?;
        let fresh = self.dir.join(format!("{LOG}.new"));
        let mut w = File::create(&fresh)?;
        w.write_all(&tail)?;
        w.sync_data()?;
        // The new log holds only undelivered records: a crash between the rename and the
        // offset's update would skip the first of them, so the offset goes to 0 first.
        let shift = self.done;
        self.done = 0;
        self.write_done()?;
        std::fs::rename(&fresh, self.dir.join(LOG))?;
        self.log = OpenOptions::new()
            .read(true)
            .append(true)
            .open(self.dir.join(LOG))?;
        self.end = tail.len() as u64;
        Ok(shift)
    }

    fn write_done(&mut self) -> std::io::Result<()> {
        let aside = self.dir.join(format!("{DONE}.new"));
        let mut f = File::create(&aside)?;
        f.write_all(&self.done.to_le_bytes())?;
        self.log.sync_data()?;
        f.sync_data()?;
        std::fs::rename(&aside, self.dir.join(DONE))?;
        self.written = (self.done, Instant::now());
        Ok(())
    }

    /// Puts everything on disk.
    pub fn sync(&mut self) -> std::io::Result<()> {
        if self.written.0 != self.done {
            self.write_done()?;
        }
        self.log.sync_data()
    }
}

/// One record at the head of `b` and its length; `None` at the end or at a torn record.
fn record(b: &[u8]) -> Option<(Message, usize)> {
    let len = u32::from_le_bytes(b.get(0..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(b.get(4..8)?.try_into().ok()?);
    let body = b.get(8..8 + len)?;
    if crc32c::crc32c(body) != crc || body.len() < 5 {
        return None;
    }
    let topic_len = u32::from_le_bytes(body[1..5].try_into().ok()?) as usize;
    let topic = std::str::from_utf8(body.get(5..5 + topic_len)?).ok()?;
    Some((
        Message {
            topic: topic.to_owned(),
            payload: body[5 + topic_len..].to_vec(),
            retain: body[0] != 0,
        },
        8 + len,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: usize) -> Message {
        Message {
            topic: format!("bw/tank-{n}/alert"),
            payload: format!("{{\"n\":{n}}}").into_bytes(),
            retain: n.is_multiple_of(2),
        }
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, left) = Spool::open(dir.path()).unwrap();
        assert!(left.is_empty());
        s.append(&msg(1)).unwrap();
        s.append(&msg(2)).unwrap();
        drop(s);
        // A crash in the middle of a record: half of a third one.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG))
            .unwrap();
        f.write_all(&[40, 0, 0, 0, 1, 2]).unwrap();
        drop(f);
        let (_, left) = Spool::open(dir.path()).unwrap();
        let got: Vec<_> = left.into_iter().map(|(m, _)| m).collect();
        assert_eq!(got, vec![msg(1), msg(2)]);
    }

    #[test]
    fn a_long_backlog_is_compacted_as_it_drains() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path()).unwrap();
        let big = Message {
            topic: "t".into(),
            payload: vec![b'x'; 64 << 10],
            retain: false,
        };
        let ends: Vec<u64> = (0..200).map(|_| s.append(&big).unwrap()).collect();
        let shift = s.settle(ends[149], false).unwrap();
        assert_eq!(shift, ends[149], "compacted: the delivered head is gone");
        let (_, left) = Spool::open(dir.path()).unwrap();
        assert_eq!(left.len(), 50);
        assert_eq!(left[49].1, ends[199] - shift);
    }
}
