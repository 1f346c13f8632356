//! Engines run the ConvLSTM: the [`Engine`] trait (one batched step), the plain scalar
//! [`reference`](mod@reference) engine, the fast [`cpu`] engine, the [`cuda`] engine, and
//! the exact / continuous streaming schedules over any engine ([`stream`]), and the
//! [`service`] that runs many cameras' streams on one engine, batching their steps.
//! [`device`] picks the CPU or CUDA engine for `--device auto|cpu|cuda[:N]`.
//!
//! The primitive is **one batched step**: B states advance by one input slice that they
//! all share, so the first stage's input convolution `conv3x3_valid(x, K)` is computed once
//! per slice and reused by every state. A state that is known to be zero (a window's first
//! step, right after [`Engine::reset`]) skips its recurrent convolution. States live inside
//! the engine and are addressed by [`Slot`] index, so that a device engine (CUDA) can keep
//! them resident in device memory; callers never hold a state's memory.
//!
//! Engines are chosen in one place, [`new_engine`]; nothing outside this module needs to
//! know which engines exist or which instruction sets the machine has.

use std::ops::Range;
use std::sync::Arc;

use crate::model::Model;
use crate::{Error, Result};

pub mod bench;
pub mod cpu;
pub mod cuda;
pub mod device;
pub mod reference;
pub mod service;
pub mod stream;

pub use device::{new_engine_on, Device, EngineFactory};
pub use service::{EngineService, ServiceEngine, ServiceSettings};
pub use stream::{Mode, Stream};

/// Index of one recurrent state held by an engine: h and c of every stage of the model.
pub type Slot = usize;

/// Runs a model one batched step at a time over states it holds.
///
/// A *slice* is one time step of the model input: `height x width x channels` f32 values
/// in channel-last order (`[y][x][channel]`), already scaled to [0, 1].
pub trait Engine: Send {
    /// A short name for logs and reports ("reference", "cpu-avx2-fma", ...).
    fn name(&self) -> String;

    /// The model this engine runs.
    fn model(&self) -> &Model;

    /// Adds `n` state slots, each zero (as after [`Engine::reset`]); returns their ids.
    fn alloc_states(&mut self, n: usize) -> Result<Range<Slot>>;

    /// Number of slots allocated so far.
    fn slots(&self) -> usize;

    /// Sets a slot's state to zero (h = c = 0 in every stage), as at the start of a window.
    /// Its next step skips the recurrent convolutions.
    fn reset(&mut self, slot: Slot);

    /// One batched step: every slot in `slots` (distinct) advances by `slice`, which they
    /// share. After it, each slot holds the state after that step.
    fn step(&mut self, slice: &[f32], slots: &[Slot]) -> Result<()>;

    /// Several batched steps, one per distinct slice (e.g. one per camera, all in the same
    /// phase): each group's slots advance by its slice; slots are distinct across groups.
    /// The same as one [`Engine::step`] per group, which is what this default does; a
    /// device engine overrides it to run all groups in the same launches.
    fn step_groups(&mut self, groups: &[(&[f32], &[Slot])]) -> Result<()> {
        let all: Vec<Slot> = groups.iter().flat_map(|(_, s)| s.iter().copied()).collect();
        check_slots(&all, self.slots())?;
        for (slice, slots) in groups {
            self.step(slice, slots)?;
        }
        Ok(())
    }

    /// One frame of a stream: [`Engine::step`] of `slots` by `slice`, then, when `out`
    /// (one of them) has seen a whole window, its [`Engine::head`]. What this default
    /// does; a client of an engine shared by many cameras ([`service`]) asks for both at
    /// once, so that its head does not wait behind other cameras' steps.
    fn step_and_head(
        &mut self,
        slice: &[f32],
        slots: &[Slot],
        out: Option<Slot>,
    ) -> Result<Option<f32>> {
        self.step(slice, slots)?;
        match out {
            Some(slot) => Ok(self.head(&[slot])?.first().copied()),
            None => Ok(None),
        }
    }

    /// Does ahead of time the part of `slot`'s next step that does not depend on its
    /// slice: the recurrent convolutions of its current h (80 % of the work for the study's
    /// models). A live stream calls it in the idle time between frames, so that when the
    /// frame arrives its step has only the input convolutions and the gate math left.
    ///
    /// The next [`Engine::step`] of that slot alone uses it; anything else that changes
    /// the slot (a batched step, reset, write_state) discards it, and preparing another
    /// slot replaces it. Results are the same either way, up to float rounding order.
    /// Engines without it (this default) do nothing.
    fn prepare(&mut self, slot: Slot) -> Result<()> {
        check_slots(&[slot], self.slots())
    }

    /// The model's output for each slot: the last stage's current h through its pool and
    /// norm, the global max over the map, the dense layer and the sigmoid.
    fn head(&mut self, slots: &[Slot]) -> Result<Vec<f32>>;

    /// Multiply-adds of the convolutions this engine has computed so far (work actually
    /// done: a shared input convolution counts once, a skipped one not at all), for
    /// reporting GFLOP/s.
    fn macs_done(&self) -> u64;

    /// Copies out stage `stage`'s `(h, c)` of a slot, channel-last `[y][x][filter]` over
    /// that stage's map. For tests and cross-checks, not for the hot path.
    fn read_state(&self, slot: Slot, stage: usize) -> Result<(Vec<f32>, Vec<f32>)>;

    /// Overwrites stage `stage`'s `(h, c)` of a slot (layout as [`Engine::read_state`]).
    /// The slot counts as non-zero afterwards even if the values are zero, so its next step
    /// computes the recurrent convolutions: tests use that to check the zero-state skip.
    fn write_state(&mut self, slot: Slot, stage: usize, h: &[f32], c: &[f32]) -> Result<()>;
}

/// Which engine to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// Plain scalar loops, for tests and as the benchmark's baseline.
    Reference,
    /// The fast CPU engine (AVX-512 or AVX2/FMA when the CPU has it, portable code
    /// otherwise).
    Cpu,
    /// The CUDA engine on device N (an error where CUDA is not usable).
    Cuda(usize),
}

impl std::str::FromStr for EngineKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "reference" => Ok(EngineKind::Reference),
            "cpu" => Ok(EngineKind::Cpu),
            _ => match s.parse::<Device>() {
                Ok(Device::Cuda(n)) => Ok(EngineKind::Cuda(n)),
                _ => Err(Error::Input(format!(
                    "engine {s:?}; expected reference, cpu, cuda or cuda:N"
                ))),
            },
        }
    }
}

/// Builds an engine for `model`: the one place where engines are chosen. The CPU engine
/// uses every available core; see [`cpu::CpuEngine::with_threads`] to choose.
pub fn new_engine(model: impl Into<Arc<Model>>, kind: EngineKind) -> Result<Box<dyn Engine>> {
    let model = model.into();
    model.check()?;
    match kind {
        EngineKind::Reference => Ok(Box::new(reference::ReferenceEngine::new(
            Arc::unwrap_or_clone(model),
        )?)),
        EngineKind::Cpu => Ok(Box::new(cpu::CpuEngine::new(model)?)),
        EngineKind::Cuda(ordinal) => Ok(Box::new(cuda::CudaEngine::new(
            Arc::unwrap_or_clone(model),
            ordinal,
        )?)),
    }
}

/// Keras 2.3's `hard_sigmoid`: `clip(0.2 x + 0.5, 0, 1)` (DESIGN §1).
#[inline]
pub fn hard_sigmoid(x: f32) -> f32 {
    (0.2 * x + 0.5).clamp(0.0, 1.0)
}

/// The logistic function of the dense layer's output, computed in f64 so that it adds no
/// error of its own.
#[inline]
pub fn sigmoid(x: f64) -> f32 {
    (1.0 / (1.0 + (-x).exp())) as f32
}

/// Checks that `slice` is one time step of `model`'s input.
pub(crate) fn check_slice(model: &Model, slice: &[f32]) -> Result<()> {
    let inp = model.input;
    if slice.len() != inp.height * inp.width * inp.channels {
        return Err(Error::Engine(format!(
            "slice of {} values; expected {}x{}x{}",
            slice.len(),
            inp.height,
            inp.width,
            inp.channels
        )));
    }
    Ok(())
}

/// Checks a batch of slots: each allocated, none twice.
pub(crate) fn check_slots(slots: &[Slot], allocated: usize) -> Result<()> {
    for (k, &s) in slots.iter().enumerate() {
        if s >= allocated {
            return Err(Error::Engine(format!(
                "slot {s} is not allocated (the engine holds {allocated})"
            )));
        }
        if slots[..k].contains(&s) {
            return Err(Error::Engine(format!("slot {s} appears twice in one step")));
        }
    }
    Ok(())
}
