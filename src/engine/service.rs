//! Many cameras, one engine: an [`EngineService`] owns one engine on a thread of its own,
//! and every camera's [`Stream`](super::Stream) runs over a [`ServiceEngine`], a client
//! whose states live in that engine.
//!
//! A camera's frame is one request (its slice, the slots it steps, the slot whose head it
//! wants). The service takes every step that is ready, waits at most
//! [`ServiceSettings::batch_wait`] for the cameras that usually step with them (like
//! DeepStream's `nvstreammux`, which pushes a batch when it is full or a timeout passes),
//! and runs them as one [`Engine::step_groups`] call: one launch for all of them on a GPU,
//! whole steps spread over the worker threads on the CPU. Then the heads, in one call, and
//! each camera gets its own result.
//!
//! Why it holds up under faults:
//! - A camera that stalls or reconnects sends nothing, and the service waits only for
//!   cameras that stepped within the last [`EXPECTED_WITHIN`]: a silent one stops being
//!   waited for, and with the CPU's default wait of 0 nothing ever waits.
//! - A camera's states are its own: a client addresses its slots by its own indices, which
//!   the service maps to the engine's, so one camera cannot touch another's state; a gap
//!   resets only that camera's slots. A client dropped (its camera stopped) hands its slots
//!   back, reset, for the next camera.
//! - A request carries everything it needs, and a client has at most one step in flight
//!   (it waits for the answer), so every camera's steps are the ones it would have made on
//!   an engine of its own, in the same order: its outputs are the same.
//! - [`Engine::prepare`] requests are done only when no step is waiting, and dropped when
//!   the camera's frame comes first.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::{check_slice, check_slots, Device, Engine, Slot};
use crate::model::Model;
use crate::{Error, Result};

/// How long after its last step a camera is still waited for: three frames at 30 fps.
/// A camera silent for longer has stalled (or is reconnecting) and is not waited for.
pub const EXPECTED_WITHIN: Duration = Duration::from_millis(100);

/// How a service batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceSettings {
    /// The longest a ready step waits for the other cameras' (from the first step of the
    /// batch). On a GPU a launch costs about the same for 1 or 64 cameras, so waiting a
    /// little pays; on the CPU every step costs its own time, so it does not.
    pub batch_wait: Duration,
}

impl ServiceSettings {
    /// The default for engines on `device`: 1 ms on CUDA, 0 on the CPU.
    pub fn for_device(device: Device) -> ServiceSettings {
        let batch_wait = match device {
            Device::Cuda(_) => Duration::from_millis(1),
            _ => Duration::ZERO,
        };
        ServiceSettings { batch_wait }
    }
}

/// What a service has done, for benchmarks and metrics.
#[derive(Debug, Default)]
pub struct ServiceFigures {
    /// `step_groups` calls.
    pub batches: AtomicU64,
    /// Camera steps in them (the mean batch is `steps / batches`).
    pub steps: AtomicU64,
    /// The largest batch.
    pub largest: AtomicU64,
    /// The engine's multiply-adds so far ([`Engine::macs_done`]).
    pub macs: AtomicU64,
}

/// One engine serving many cameras; see the module documentation.
pub struct EngineService {
    requests: Sender<Request>,
    /// The batch wait in nanoseconds, which can change while it runs.
    batch_wait: Arc<AtomicU64>,
    /// Clients made so far (each client's id).
    clients: AtomicU64,
    model: Arc<Model>,
    name: String,
    figures: Arc<ServiceFigures>,
}

impl EngineService {
    /// Starts a service over `engine` (which should hold no states yet). Its thread ends
    /// once the service and every client are dropped.
    pub fn start(engine: Box<dyn Engine>, settings: ServiceSettings) -> Result<EngineService> {
        let model = Arc::new(engine.model().clone());
        let name = engine.name();
        let figures = Arc::new(ServiceFigures::default());
        let batch_wait = Arc::new(AtomicU64::new(nanos(settings.batch_wait)));
        let (requests, queue) = crossbeam_channel::unbounded();
        let (f, wait) = (figures.clone(), batch_wait.clone());
        std::thread::Builder::new()
            .name(format!("engine {name}"))
            .spawn(move || Serve::new(engine, wait, f).run(queue))
            .map_err(|e| Error::Engine(format!("cannot start the engine service's thread: {e}")))?;
        Ok(EngineService {
            requests,
            batch_wait,
            clients: AtomicU64::new(0),
            model,
            name,
            figures,
        })
    }

    /// A new client with no states yet: an engine for one camera's stream.
    pub fn client(&self) -> ServiceEngine {
        let (reply, answers) = crossbeam_channel::bounded(1);
        ServiceEngine {
            id: self.clients.fetch_add(1, Ordering::Relaxed),
            requests: self.requests.clone(),
            reply,
            answers,
            model: self.model.clone(),
            name: self.name.clone(),
            figures: self.figures.clone(),
            slots: Vec::new(),
            slice: Vec::new(),
        }
    }

    /// The engine's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn figures(&self) -> Arc<ServiceFigures> {
        self.figures.clone()
    }

    /// Changes how long a ready step waits for the others' from the next batch on.
    pub fn set_batch_wait(&self, wait: Duration) {
        self.batch_wait.store(nanos(wait), Ordering::Relaxed);
    }
}

/// A client of an [`EngineService`]: an [`Engine`] whose slots are its own indices into
/// the service's engine. Every call waits for its answer, except [`Engine::reset`] and
/// [`Engine::prepare`], which are queued in order with the client's other requests.
/// [`Engine::macs_done`] counts the whole shared engine's work.
pub struct ServiceEngine {
    id: Client,
    requests: Sender<Request>,
    /// Where the service answers this client (one answer at a time).
    reply: Sender<Answer>,
    answers: Receiver<Answer>,
    model: Arc<Model>,
    name: String,
    figures: Arc<ServiceFigures>,
    /// The engine's slot of each of this client's slots.
    slots: Vec<Slot>,
    /// The slice buffer, lent to the service with each step and given back.
    slice: Vec<f32>,
}

/// A client's id, unique in its service.
type Client = u64;

/// What a client asks.
enum Request {
    Alloc {
        n: usize,
        reply: Sender<Answer>,
    },
    /// A dropped client's slots, free for the next.
    Release(Client, Vec<Slot>),
    Reset(Slot),
    Prepare(Slot),
    Step {
        client: Client,
        slice: Vec<f32>,
        slots: Vec<Slot>,
        out: Option<Slot>,
        reply: Sender<Answer>,
    },
    Head {
        slots: Vec<Slot>,
        reply: Sender<Answer>,
    },
    Read {
        slot: Slot,
        stage: usize,
        reply: Sender<Answer>,
    },
    Write {
        slot: Slot,
        stage: usize,
        h: Vec<f32>,
        c: Vec<f32>,
        reply: Sender<Answer>,
    },
}

/// What the service answers.
enum Answer {
    Slots(Result<Vec<Slot>>),
    /// The slice buffer back, and the head when one was asked for.
    Stepped(Vec<f32>, Result<Option<f32>>),
    Heads(Result<Vec<f32>>),
    State(Result<(Vec<f32>, Vec<f32>)>),
    Done(Result<()>),
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// An engine failure as each camera of the batch gets it.
fn shared_error(e: &Error) -> Error {
    match e {
        Error::Cuda(what) => Error::Cuda(what.clone()),
        other => Error::Engine(other.to_string()),
    }
}

fn stopped() -> Error {
    Error::Engine("the engine service has stopped".into())
}

impl ServiceEngine {
    fn ask(&self, request: Request) -> Result<Answer> {
        self.requests.send(request).map_err(|_| stopped())?;
        self.answers.recv().map_err(|_| stopped())
    }

    /// The engine's slots of `slots` (this client's), checked.
    fn engine_slots(&self, slots: &[Slot]) -> Result<Vec<Slot>> {
        check_slots(slots, self.slots.len())?;
        Ok(slots.iter().map(|&s| self.slots[s]).collect())
    }

    fn engine_slot(&self, slot: Slot) -> Result<Slot> {
        Ok(self.engine_slots(&[slot])?[0])
    }
}

impl Engine for ServiceEngine {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn model(&self) -> &Model {
        &self.model
    }

    fn alloc_states(&mut self, n: usize) -> Result<Range<Slot>> {
        let reply = self.reply.clone();
        match self.ask(Request::Alloc { n, reply })? {
            Answer::Slots(got) => {
                let start = self.slots.len();
                self.slots.extend(got?);
                Ok(start..self.slots.len())
            }
            _ => Err(stopped()),
        }
    }

    fn slots(&self) -> usize {
        self.slots.len()
    }

    fn reset(&mut self, slot: Slot) {
        if let Some(&s) = self.slots.get(slot) {
            let _ = self.requests.send(Request::Reset(s));
        }
    }

    fn step(&mut self, slice: &[f32], slots: &[Slot]) -> Result<()> {
        self.step_and_head(slice, slots, None).map(|_| ())
    }

    fn step_and_head(
        &mut self,
        slice: &[f32],
        slots: &[Slot],
        out: Option<Slot>,
    ) -> Result<Option<f32>> {
        check_slice(&self.model, slice)?;
        if out.is_some_and(|o| !slots.contains(&o)) {
            return Err(Error::Engine(
                "a head asked of a slot that does not step; expected one of the step's".into(),
            ));
        }
        let engine_slots = self.engine_slots(slots)?;
        let out = out.map(|o| self.slots[o]);
        let mut buf = std::mem::take(&mut self.slice);
        buf.clear();
        buf.extend_from_slice(slice);
        let reply = self.reply.clone();
        let request = Request::Step {
            client: self.id,
            slice: buf,
            slots: engine_slots,
            out,
            reply,
        };
        match self.ask(request)? {
            Answer::Stepped(buf, result) => {
                self.slice = buf;
                result
            }
            _ => Err(stopped()),
        }
    }

    fn prepare(&mut self, slot: Slot) -> Result<()> {
        let s = self.engine_slot(slot)?;
        self.requests
            .send(Request::Prepare(s))
            .map_err(|_| stopped())
    }

    fn head(&mut self, slots: &[Slot]) -> Result<Vec<f32>> {
        let slots = self.engine_slots(slots)?;
        let reply = self.reply.clone();
        match self.ask(Request::Head { slots, reply })? {
            Answer::Heads(h) => h,
            _ => Err(stopped()),
        }
    }

    fn macs_done(&self) -> u64 {
        self.figures.macs.load(Ordering::Relaxed)
    }

    fn read_state(&self, slot: Slot, stage: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let slot = self.engine_slot(slot)?;
        let reply = self.reply.clone();
        match self.ask(Request::Read { slot, stage, reply })? {
            Answer::State(s) => s,
            _ => Err(stopped()),
        }
    }

    fn write_state(&mut self, slot: Slot, stage: usize, h: &[f32], c: &[f32]) -> Result<()> {
        let slot = self.engine_slot(slot)?;
        let (h, c) = (h.to_vec(), c.to_vec());
        let reply = self.reply.clone();
        match self.ask(Request::Write {
            slot,
            stage,
            h,
            c,
            reply,
        })? {
            Answer::Done(r) => r,
            _ => Err(stopped()),
        }
    }
}

impl Drop for ServiceEngine {
    fn drop(&mut self) {
        if !self.slots.is_empty() {
            let _ = self
                .requests
                .send(Request::Release(self.id, std::mem::take(&mut self.slots)));
        }
    }
}

/// A step waiting for its batch.
struct Pending {
    client: Client,
    slice: Vec<f32>,
    slots: Vec<Slot>,
    out: Option<Slot>,
    reply: Sender<Answer>,
}

/// The service's thread: the engine, the steps waiting, the preparations asked for.
struct Serve {
    engine: Box<dyn Engine>,
    /// [`ServiceSettings::batch_wait`] in nanoseconds, as it is now.
    batch_wait: Arc<AtomicU64>,
    figures: Arc<ServiceFigures>,
    /// Slots of dropped clients, reset, for the next.
    free: Vec<Slot>,
    pending: Vec<Pending>,
    /// When the oldest pending step arrived.
    since: Option<Instant>,
    /// Preparations asked for, oldest first (at most one per slot).
    prepares: VecDeque<Slot>,
    /// When each client last asked for a step: who is waited for.
    last_step: Vec<(Client, Instant)>,
}

impl Serve {
    fn new(
        engine: Box<dyn Engine>,
        batch_wait: Arc<AtomicU64>,
        figures: Arc<ServiceFigures>,
    ) -> Self {
        Serve {
            engine,
            batch_wait,
            figures,
            free: Vec::new(),
            pending: Vec::new(),
            since: None,
            prepares: VecDeque::new(),
            last_step: Vec::new(),
        }
    }

    fn run(mut self, queue: Receiver<Request>) {
        loop {
            if self.pending.is_empty() && self.prepares.is_empty() {
                match queue.recv() {
                    Ok(r) => self.take(r),
                    // The service and every client are gone.
                    Err(_) => return,
                }
            }
            while let Ok(r) = queue.try_recv() {
                self.take(r);
            }
            if let Some(since) = self.since {
                let wait = Duration::from_nanos(self.batch_wait.load(Ordering::Relaxed));
                let deadline = since + wait;
                while let Some(until) = self.waiting_until(deadline) {
                    match queue.recv_deadline(until) {
                        Ok(r) => self.take(r),
                        // A camera that stopped being expected: look again.
                        Err(RecvTimeoutError::Timeout) if until < deadline => {}
                        Err(_) => break,
                    }
                }
                self.run_batch();
            } else if let Some(slot) = self.prepares.pop_front() {
                // Idle: a camera's next step, partly done before its frame arrives. It
                // costs more CPU in all (on the CPU the pre-activations go through memory
                // instead of staying in the cache: 4 cameras took 67 % of two cores with
                // preparations, 58 % without) but it takes most of the step off the
                // frame's path: the same 4 cameras had p50 4.2 / p99 12-17 ms with them,
                // 8.3 / 16-32 ms without, and 6 cameras p99 59-84 ms against 63-251 ms
                // (`bench --live --cameras N`, 10 s runs). A failure here shows again in
                // that step, which reports it.
                let _ = self.engine.prepare(slot);
                self.figures
                    .macs
                    .store(self.engine.macs_done(), Ordering::Relaxed);
            }
        }
    }

    /// Until when to wait for the cameras that stepped recently and have no step
    /// waiting: the batch's `deadline`, or earlier, when the first of them stops being
    /// expected (it has stalled). `None`: every camera expected is in, or the deadline
    /// has passed.
    fn waiting_until(&mut self, deadline: Instant) -> Option<Instant> {
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        self.last_step
            .retain(|(_, at)| now.duration_since(*at) < EXPECTED_WITHIN);
        let pending = &self.pending;
        self.last_step
            .iter()
            .filter(|(client, _)| !pending.iter().any(|p| p.client == *client))
            .map(|(_, at)| (*at + EXPECTED_WITHIN).min(deadline))
            .min()
    }

    /// Takes one request: steps and preparations are queued, the rest done at once (they
    /// touch only the asking client's slots, and it waits for them).
    fn take(&mut self, request: Request) {
        match request {
            Request::Alloc { n, reply } => {
                let _ = reply.send(Answer::Slots(self.alloc(n)));
            }
            Request::Release(client, slots) => {
                for &s in &slots {
                    self.reset(s);
                }
                self.last_step.retain(|(c, _)| *c != client);
                self.free.extend(slots);
            }
            Request::Reset(slot) => self.reset(slot),
            Request::Prepare(slot) => {
                if !self.prepares.contains(&slot) {
                    self.prepares.push_back(slot);
                }
            }
            Request::Step {
                client,
                slice,
                slots,
                out,
                reply,
            } => {
                // The camera's frame came: whatever it asked to prepare is its next step
                // or stale.
                self.prepares.retain(|p| !slots.contains(p));
                let now = Instant::now();
                match self.last_step.iter_mut().find(|(c, _)| *c == client) {
                    Some(seen) => seen.1 = now,
                    None => self.last_step.push((client, now)),
                }
                self.since.get_or_insert(now);
                self.pending.push(Pending {
                    client,
                    slice,
                    slots,
                    out,
                    reply,
                });
            }
            Request::Head { slots, reply } => {
                let _ = reply.send(Answer::Heads(self.engine.head(&slots)));
            }
            Request::Read { slot, stage, reply } => {
                let _ = reply.send(Answer::State(self.engine.read_state(slot, stage)));
            }
            Request::Write {
                slot,
                stage,
                h,
                c,
                reply,
            } => {
                let _ = reply.send(Answer::Done(self.engine.write_state(slot, stage, &h, &c)));
            }
        }
    }

    /// Zeroes `slot`; what was asked to prepare for it is stale.
    fn reset(&mut self, slot: Slot) {
        self.engine.reset(slot);
        self.prepares.retain(|&p| p != slot);
    }

    /// `n` slots, zero: released ones first (reset when released), then new ones.
    fn alloc(&mut self, n: usize) -> Result<Vec<Slot>> {
        let reused = n.min(self.free.len());
        let mut slots: Vec<Slot> = self.free.drain(self.free.len() - reused..).collect();
        match self.engine.alloc_states(n - reused) {
            Ok(more) => {
                slots.extend(more);
                Ok(slots)
            }
            Err(e) => {
                self.free.extend(slots);
                Err(e)
            }
        }
    }

    /// Runs every pending step as one batch, then their heads, and answers each camera.
    fn run_batch(&mut self) {
        self.since = None;
        let batch = std::mem::take(&mut self.pending);
        if batch.is_empty() {
            return;
        }
        let groups: Vec<(&[f32], &[Slot])> =
            batch.iter().map(|p| (&p.slice[..], &p.slots[..])).collect();
        let stepped = self.engine.step_groups(&groups);
        let outs: Vec<Slot> = batch.iter().filter_map(|p| p.out).collect();
        let heads = match &stepped {
            Ok(()) if !outs.is_empty() => self.engine.head(&outs),
            Ok(()) => Ok(Vec::new()),
            Err(e) => Err(shared_error(e)),
        };
        let f = &self.figures;
        f.batches.fetch_add(1, Ordering::Relaxed);
        f.steps.fetch_add(batch.len() as u64, Ordering::Relaxed);
        f.largest.fetch_max(batch.len() as u64, Ordering::Relaxed);
        f.macs.store(self.engine.macs_done(), Ordering::Relaxed);
        // The heads come in the batch's order of the steps that asked for one.
        let mut each = heads.as_ref().map(|h| h.iter().copied());
        for p in batch {
            let result = match &mut each {
                Err(e) => Err(shared_error(e)),
                Ok(h) => Ok(p.out.and_then(|_| h.next())),
            };
            let _ = p.reply.send(Answer::Stepped(p.slice, result));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cpu::CpuEngine;
    use crate::engine::{Mode, Stream};
    use crate::model::{InputShape, StageSpec};
    use crate::rng::SplitMix;

    /// A small model, so that a test runs hundreds of frames in a moment: 4 slices of 4
    /// frames of 10x14, one stage (two with `stages = 2`, the first pooled).
    fn small(stages: usize) -> Model {
        let input = InputShape {
            slices: 4,
            height: 10,
            width: 14,
            channels: 4,
        };
        let specs = [
            StageSpec {
                filters: 8,
                pool: stages > 1,
                norm: true,
            },
            StageSpec {
                filters: 4,
                pool: false,
                norm: false,
            },
        ];
        Model::random("small", input, &specs[..stages], 5)
    }

    fn frames(model: &Model, n: usize, seed: u64) -> Vec<Vec<u8>> {
        let mut rng = SplitMix(seed);
        let len = model.input.height * model.input.width;
        (0..n)
            .map(|_| (0..len).map(|_| (rng.next_u64() >> 56) as u8).collect())
            .collect()
    }

    /// Every frame's output through a stream, with a gap (reset) at frame 40 and the next
    /// step prepared after every other frame.
    fn outputs(mut stream: Stream, frames: &[Vec<u8>]) -> Vec<Option<f32>> {
        let mut out = Vec::new();
        for (t, f) in frames.iter().enumerate() {
            if t == 40 {
                stream.reset();
            }
            out.push(stream.push_frame(f).unwrap());
            if t % 2 == 0 {
                stream.prepare().unwrap();
            }
        }
        out
    }

    #[test]
    fn every_camera_gets_what_an_engine_of_its_own_gives() {
        for (stages, mode) in [
            (1, Mode::Continuous),
            (2, Mode::Continuous),
            (1, Mode::Exact),
        ] {
            let model = small(stages);
            let service = EngineService::start(
                Box::new(CpuEngine::with_threads(model.clone(), 2).unwrap()),
                ServiceSettings {
                    batch_wait: Duration::from_millis(2),
                },
            )
            .unwrap();
            let cameras: Vec<Vec<Vec<u8>>> = (0..4).map(|c| frames(&model, 90, c)).collect();
            let alone: Vec<Vec<Option<f32>>> = cameras
                .iter()
                .map(|f| {
                    let engine = CpuEngine::with_threads(model.clone(), 2).unwrap();
                    outputs(Stream::new(Box::new(engine), mode).unwrap(), f)
                })
                .collect();
            let shared: Vec<Vec<Option<f32>>> = std::thread::scope(|s| {
                let runs: Vec<_> = cameras
                    .iter()
                    .map(|f| {
                        let stream = Stream::new(Box::new(service.client()), mode).unwrap();
                        s.spawn(move || outputs(stream, f))
                    })
                    .collect();
                runs.into_iter().map(|r| r.join().unwrap()).collect()
            });
            for (c, (a, b)) in alone.iter().zip(&shared).enumerate() {
                assert_eq!(a.iter().filter(|p| p.is_some()).count(), 90 - 2 * 15);
                for (t, (x, y)) in a.iter().zip(b).enumerate() {
                    let close = match (x, y) {
                        (Some(x), Some(y)) => (x - y).abs() <= 1e-6,
                        (None, None) => true,
                        _ => false,
                    };
                    assert!(
                        close,
                        "{mode} {stages} stage(s), camera {c} frame {t}: {x:?} vs {y:?}"
                    );
                }
            }
            let f = service.figures();
            assert!(
                f.largest.load(Ordering::Relaxed) >= 2,
                "cameras stepping together are batched ({} steps in {} batches)",
                f.steps.load(Ordering::Relaxed),
                f.batches.load(Ordering::Relaxed)
            );
        }
    }

    #[test]
    fn a_cameras_slots_are_its_own_and_come_back_zero_to_the_next() {
        let model = small(1);
        let service = EngineService::start(
            Box::new(CpuEngine::with_threads(model.clone(), 1).unwrap()),
            ServiceSettings::for_device(Device::Cpu),
        )
        .unwrap();
        let mut a = service.client();
        let mut b = service.client();
        assert_eq!(a.alloc_states(2).unwrap(), 0..2);
        assert_eq!(b.alloc_states(1).unwrap(), 0..1);
        let n = 8 * 8 * 12;
        a.write_state(1, 0, &vec![0.5; n], &vec![0.25; n]).unwrap();
        assert!(b.read_state(0, 0).unwrap().0.iter().all(|&v| v == 0.0));
        assert!(b.read_state(1, 0).is_err(), "b has one slot");
        let slice = vec![0.5; 10 * 14 * 4];
        assert!(b.step(&slice, &[1]).is_err());
        assert!(b.step(&slice[1..], &[0]).is_err(), "a short slice");
        assert!(b.step_and_head(&slice, &[0], Some(1)).is_err());
        drop(a);
        let mut c = service.client();
        assert_eq!(c.alloc_states(2).unwrap(), 0..2);
        for slot in 0..2 {
            let (h, cc) = c.read_state(slot, 0).unwrap();
            assert!(
                h.iter().chain(&cc).all(|&v| v == 0.0),
                "slot {slot} is zero"
            );
        }
        assert!(c.step_and_head(&slice, &[0, 1], Some(1)).unwrap().is_some());
    }

    #[test]
    fn a_camera_that_stops_stepping_is_not_waited_for() {
        let model = small(1);
        let wait = Duration::from_millis(400);
        let service = EngineService::start(
            Box::new(CpuEngine::with_threads(model.clone(), 1).unwrap()),
            ServiceSettings { batch_wait: wait },
        )
        .unwrap();
        let slice = vec![0.5; 10 * 14 * 4];
        let step = |e: &mut ServiceEngine| {
            let t0 = Instant::now();
            e.step(&slice, &[0]).unwrap();
            t0.elapsed()
        };
        let (mut a, mut b) = (service.client(), service.client());
        a.alloc_states(1).unwrap();
        b.alloc_states(1).unwrap();
        // Both step together (a barrier before each step, so that neither runs ahead and
        // ends before the other starts): each batch is taken as soon as both are in.
        let together = std::sync::Barrier::new(2);
        let in_step = |e: &mut ServiceEngine| {
            together.wait();
            step(e)
        };
        std::thread::scope(|s| {
            let other = s.spawn(|| (0..5).map(|_| in_step(&mut b)).max());
            let mine = (0..5).map(|_| in_step(&mut a)).max().unwrap();
            let theirs = other.join().unwrap().unwrap();
            // The first step of each waits for the other's first; then they go in step.
            assert!(mine < wait && theirs < wait, "{mine:?} {theirs:?}");
        });
        // b stalls: a's next step waits at most until b stops being expected, and the
        // ones after that not at all.
        let first = step(&mut a);
        assert!(
            first <= EXPECTED_WITHIN + Duration::from_millis(50),
            "{first:?}"
        );
        let later = (0..5).map(|_| step(&mut a)).max().unwrap();
        assert!(later < Duration::from_millis(50), "{later:?}");
        assert!(service.figures().largest.load(Ordering::Relaxed) == 2);
    }
}
