//! The fast CPU engine: the ConvLSTM as an implicit-GEMM 3x3 convolution (M = pixels,
//! N = 4F gate outputs, K = 9 x channels) with a register-blocked microkernel, the gate
//! math fused right after each tile, AVX-512 or AVX2/FMA when the CPU has it (detected at
//! run time, [`Simd`]) and portable Rust otherwise, spread over the machine's cores. The
//! convolutions of a state's old h (and the input's with them) run as Winograd's minimal
//! filtering by default (`winograd.rs`, [`ConvAlgo`]).
//!
//! Layout: every map is channel-last. A state's h is stored with a one-pixel zero border,
//! so the recurrent "same" convolution reads it exactly like the input "valid"
//! convolution reads the input, with no branch at the edges. c has no border. Weights are
//! packed once, at construction, into blocks of 16 outputs (`kernels::pack_blocks`).
//!
//! A step never holds two copies of every state: a state's new h goes into a scratch
//! buffer (one per thread), which is then swapped with the state's h (the recurrent
//! convolution reads the old h around each pixel, so it cannot be overwritten in place);
//! c is updated in place, pixel by pixel.
//!
//! Work split: with many states in a batch (exact mode: 30), the first stage's input
//! convolution is computed once into `zx` (rows split over threads), then whole states
//! are handed to threads from a shared queue. With few states (continuous mode: one),
//! the input convolution is fused into each tile (no `zx` round trip through memory) and
//! the rows of each stage are split over threads: the caller's and its persistent helpers
//! (`helpers.rs`).
//!
//! A live stream can have the recurrent convolutions of its next step done ahead, while it
//! waits for the frame ([`Engine::prepare`]): they go into one of `aheads` (`[pixel][zs]`,
//! like `zx`; one per slot, for the many cameras of an engine service), and the step's
//! tiles start from them and add only the input convolution.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use super::{check_slice, check_slots, sigmoid, Engine, Slot};
use crate::model::Model;
use crate::{Error, Result};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod helpers;
pub mod kernels;
mod winograd;

use helpers::Helpers;
pub use kernels::Winograd;
use kernels::{pack_blocks, ConvSrc, Kernels, Portable, WeightRow, BLOCK, TILE};

/// The instruction sets the CPU engine has kernels for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Simd {
    /// Plain Rust, any CPU.
    Portable,
    /// AVX2 and FMA: 8 lanes.
    Avx2,
    /// AVX-512F: 16 lanes, and twice the FMA throughput of AVX2 on cores with two 512-bit
    /// FMA units.
    Avx512,
}

impl Simd {
    /// The instruction sets this CPU runs, the portable one first and the best last.
    pub fn available() -> Vec<Simd> {
        [Simd::Portable, Simd::Avx2, Simd::Avx512]
            .into_iter()
            .filter(|&s| Isa::new(s).is_some())
            .collect()
    }

    /// The best instruction set this CPU runs.
    pub fn best() -> Simd {
        *Simd::available().last().unwrap_or(&Simd::Portable)
    }

    /// `BURSTWATCH_SIMD=portable|avx2|avx512`; the best this CPU runs when unset.
    pub fn from_env() -> Result<Simd> {
        let simd = match std::env::var("BURSTWATCH_SIMD").as_deref() {
            Err(_) => return Ok(Simd::best()),
            Ok("portable") => Simd::Portable,
            Ok("avx2") => Simd::Avx2,
            Ok("avx512") => Simd::Avx512,
            Ok(other) => {
                return Err(Error::Input(format!(
                    "BURSTWATCH_SIMD={other:?}; expected portable, avx2 or avx512"
                )))
            }
        };
        Isa::new(simd).map(|_| simd).ok_or_else(|| {
            Error::Input(format!(
                "BURSTWATCH_SIMD={}: this CPU does not have it; expected one of {}",
                simd.name(),
                Simd::available()
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    /// As `BURSTWATCH_SIMD` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Simd::Portable => "portable",
            Simd::Avx2 => "avx2",
            Simd::Avx512 => "avx512",
        }
    }
}

/// The kernels the engine runs on, chosen once at construction: a proof that the CPU has
/// the instruction set.
#[derive(Debug, Clone, Copy)]
enum Isa {
    Portable(Portable),
    #[cfg(target_arch = "x86_64")]
    Avx2(avx2::Avx2),
    #[cfg(target_arch = "x86_64")]
    Avx512(avx512::Avx512),
}

impl Isa {
    /// The kernels of `simd`, when this CPU runs them.
    fn new(simd: Simd) -> Option<Isa> {
        match simd {
            Simd::Portable => Some(Isa::Portable(Portable)),
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => avx2::Avx2::detect().map(Isa::Avx2),
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => avx512::Avx512::detect().map(Isa::Avx512),
            #[cfg(not(target_arch = "x86_64"))]
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Isa::Portable(_) => "portable",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2(_) => "avx2-fma",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512(_) => "avx512",
        }
    }
}

/// Runs `$body` with `$k` bound to the engine's kernels, monomorphised per instruction set.
macro_rules! with_kernels {
    ($isa:expr, $k:ident => $body:expr) => {
        match $isa {
            Isa::Portable($k) => $body,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2($k) => $body,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512($k) => $body,
        }
    };
}

/// One stage, ready to run: shapes, packed weights, and what follows each step.
#[derive(Debug)]
struct StagePlan {
    filters: usize,
    cin: usize,
    /// Input map (the stage's valid convolution trims one pixel per side).
    in_h: usize,
    in_w: usize,
    /// State map.
    h: usize,
    w: usize,
    /// Pre-activation values per pixel: 4F rounded up to whole blocks of 16.
    zs: usize,
    blocks: usize,
    /// `[block][9][cin]` and `[block][9][filters]` rows of 16 weights.
    kernel: Vec<WeightRow>,
    recurrent: Vec<WeightRow>,
    /// Both kernels transformed for Winograd's convolution, `[ξ][block][filters + cin]`,
    /// and its tile; `None`: the convolutions of the old h are direct.
    winograd: Option<(Winograd, Vec<WeightRow>)>,
    pool: bool,
    /// BatchNorm as `x * scale + shift` per channel.
    norm: Option<(Vec<f32>, Vec<f32>)>,
}

impl StagePlan {
    /// The input convolution of `x` for the tile at row `y`, column `x0` of the output
    /// map, every output block.
    fn input_src<'a>(&'a self, x: &'a [f32], y: usize, x0: usize) -> ConvSrc<'a> {
        ConvSrc {
            data: x,
            start: (y * self.in_w + x0) * self.cin,
            row_stride: self.in_w * self.cin,
            cin: self.cin,
            taps: 9,
            weights: &self.kernel,
            block_stride: 9 * self.cin,
        }
    }

    /// The same for the recurrent convolution of the bordered h.
    fn recurrent_src<'a>(&'a self, h: &'a [f32], y: usize, x0: usize) -> ConvSrc<'a> {
        ConvSrc {
            data: h,
            start: (y * (self.w + 2) + x0) * self.filters,
            row_stride: self.h_row(),
            cin: self.filters,
            taps: 9,
            weights: &self.recurrent,
            block_stride: 9 * self.filters,
        }
    }

    /// What a Winograd convolution of the bordered h (and of the input `x`, when given)
    /// reads.
    fn winograd_sources<'a>(
        &'a self,
        h: &'a [f32],
        x: Option<&'a [f32]>,
    ) -> Option<winograd::Sources<'a>> {
        let (f, u) = self.winograd.as_ref()?;
        Some(winograd::Sources {
            f: *f,
            h: winograd::Map {
                data: h,
                rows: self.h + 2,
                cols: self.w + 2,
                channels: self.filters,
            },
            x: x.map(|data| winograd::Map {
                data,
                rows: self.in_h,
                cols: self.in_w,
                channels: self.cin,
            }),
            u,
            blocks: self.blocks,
            w: self.w,
            packed: self.filters + self.cin,
        })
    }

    /// Rows a job of this stage's map starts at a multiple of: a Winograd tile's side.
    fn row_unit(&self) -> usize {
        self.winograd.as_ref().map_or(1, |(f, _)| f.r())
    }

    /// Values per row of the bordered h.
    fn h_row(&self) -> usize {
        (self.w + 2) * self.filters
    }

    fn h_len(&self) -> usize {
        (self.h + 2) * self.h_row()
    }

    fn c_len(&self) -> usize {
        self.h * self.w * self.filters
    }

    /// Map after the optional pool.
    fn out_map(&self) -> (usize, usize) {
        if self.pool {
            (self.h / 2, self.w / 2)
        } else {
            (self.h, self.w)
        }
    }
}

/// h (bordered) and c of one stage of one slot.
#[derive(Debug)]
struct StageState {
    h: Vec<f32>,
    c: Vec<f32>,
}

/// Everything one slot holds.
#[derive(Debug)]
struct SlotState {
    stages: Vec<StageState>,
    /// h = c = 0 in every stage, whatever the buffers hold: the next step skips the
    /// recurrent convolutions and takes c as zero.
    zero: bool,
}

/// Most slots with a step prepared at once: one per camera sharing the engine (each camera
/// prepares the slot its next frame steps). Past it the oldest preparation is dropped,
/// which costs only speed: 4.8 MB each for the default model.
const MAX_PREPARED: usize = 64;

/// The recurrent convolutions of one slot's next step, computed before its slice arrives.
#[derive(Debug, Default)]
struct Ahead {
    /// The slot they were computed from; `None` when the entry is free (nothing prepared,
    /// or it went stale: the slot stepped, was reset or overwritten).
    slot: Option<Slot>,
    /// When it was prepared (the engine's count of preparations): the oldest goes first.
    made: u64,
    /// Per stage, `[pixel][zs]` over the stage's map.
    z: Vec<Vec<f32>>,
}

/// Every slot's prepared next step ([`Engine::prepare`]): one per slot, so that many
/// cameras sharing the engine each keep theirs.
#[derive(Debug, Default)]
struct Aheads {
    entries: Vec<Ahead>,
    made: u64,
}

impl Aheads {
    fn find(&self, slot: Slot) -> Option<usize> {
        self.entries.iter().position(|a| a.slot == Some(slot))
    }

    /// The entry a step of `slots` can use: one prepared for that slot, the step being of
    /// it alone. Any step of a prepared slot makes its preparation stale, so it is freed
    /// either way (its values stay readable until the entry is prepared again).
    fn take(&mut self, slots: &[Slot]) -> Option<usize> {
        let usable = match slots {
            [one] => self.find(*one),
            _ => None,
        };
        for &s in slots {
            self.forget(s);
        }
        usable
    }

    /// Forgets `slot`'s preparation, if it has one (its state changed).
    fn forget(&mut self, slot: Slot) {
        if let Some(i) = self.find(slot) {
            self.entries[i].slot = None;
        }
    }

    /// The entry to prepare `slot` into: a free one, a new one, or the oldest.
    fn entry_for(&mut self, slot: Slot) -> usize {
        self.made += 1;
        let i = match self.entries.iter().position(|a| a.slot.is_none()) {
            Some(i) => i,
            None if self.entries.len() < MAX_PREPARED => {
                self.entries.push(Ahead::default());
                self.entries.len() - 1
            }
            None => (0..self.entries.len())
                .min_by_key(|&i| self.entries[i].made)
                .unwrap_or(0),
        };
        let e = &mut self.entries[i];
        e.slot = Some(slot);
        e.made = self.made;
        i
    }
}

/// Per-thread working memory.
#[derive(Debug)]
struct Scratch {
    /// Per stage: where the new h is written (bordered, border zero), then swapped in.
    h_next: Vec<Vec<f32>>,
    /// Per stage after the first: its input, the previous stage's pooled, normed h.
    stage_in: Vec<Vec<f32>>,
}

impl Scratch {
    fn new(plans: &[StagePlan]) -> Scratch {
        Scratch {
            h_next: plans.iter().map(|p| vec![0.0; p.h_len()]).collect(),
            stage_in: plans
                .iter()
                .map(|p| vec![0.0; p.in_h * p.in_w * p.cin])
                .collect(),
        }
    }
}

/// A model's weights packed for the CPU engine, once, and shared by every engine made
/// from it (one copy in memory however many cameras run the model; each engine has its
/// own states and working memory).
#[derive(Debug, Clone)]
pub struct PackedModel {
    model: Arc<Model>,
    plans: Arc<[StagePlan]>,
}

/// How the engine computes the convolutions of a state's old h (and with them the
/// input's): all give the same results within float rounding (`tests/engine_equivalence.rs`
/// holds each to the scalar reference engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvAlgo {
    /// Direct 3x3: 9 multiply-adds per tap and channel pair.
    Direct,
    /// Winograd's minimal filtering (`winograd.rs`): F(2x2, 3x3), 2.25x fewer multiplies,
    /// F(3x3, 3x3), 3.24x fewer, or F(4x4, 3x3), 4x fewer.
    Winograd(Winograd),
}

impl ConvAlgo {
    /// Every convolution the engine has.
    pub const ALL: [ConvAlgo; 4] = [
        ConvAlgo::Direct,
        ConvAlgo::Winograd(Winograd::F2x2),
        ConvAlgo::Winograd(Winograd::F3x3),
        ConvAlgo::Winograd(Winograd::F4x4),
    ];

    /// What runs when nothing is asked for: Winograd F(3x3, 3x3), the largest tile whose
    /// rounding stays within the engines' bound (1e-5 on a state value; F(3x3) measured
    /// 4-5e-6 against float64, F(4x4) 0.8-1.9e-5; `tests/engine_equivalence.rs`, README
    /// "Numerics").
    pub const DEFAULT: ConvAlgo = ConvAlgo::Winograd(Winograd::F3x3);

    /// `BURSTWATCH_CONV=direct|winograd2x2|winograd3x3|winograd4x4` (`winograd`: the
    /// default); [`ConvAlgo::DEFAULT`] when unset.
    pub fn from_env() -> Result<ConvAlgo> {
        match std::env::var("BURSTWATCH_CONV").as_deref() {
            Err(_) | Ok("winograd") => Ok(ConvAlgo::DEFAULT),
            Ok(name) => ConvAlgo::ALL
                .into_iter()
                .find(|c| c.name() == name)
                .ok_or_else(|| {
                    Error::Input(format!(
                        "BURSTWATCH_CONV={name:?}; expected direct, winograd2x2, winograd3x3, \
                         winograd4x4 or winograd"
                    ))
                }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ConvAlgo::Direct => "direct",
            ConvAlgo::Winograd(Winograd::F2x2) => "winograd2x2",
            ConvAlgo::Winograd(Winograd::F3x3) => "winograd3x3",
            ConvAlgo::Winograd(Winograd::F4x4) => "winograd4x4",
        }
    }
}

impl PackedModel {
    /// Validates `model` and packs its weights into blocks of 16 outputs, for the
    /// convolution `BURSTWATCH_CONV` asks for ([`ConvAlgo::from_env`]).
    pub fn new(model: impl Into<Arc<Model>>) -> Result<PackedModel> {
        Self::with_conv(model, ConvAlgo::from_env()?)
    }

    /// The same, for the convolution `conv`.
    pub fn with_conv(model: impl Into<Arc<Model>>, conv: ConvAlgo) -> Result<PackedModel> {
        let model = model.into();
        model.check()?;
        let mut plans = Vec::with_capacity(model.stages.len());
        let (mut in_h, mut in_w) = (model.input.height, model.input.width);
        for s in &model.stages {
            let f = s.lstm.filters;
            let cin = s.lstm.in_channels;
            let blocks = (4 * f).div_ceil(BLOCK);
            let plan = StagePlan {
                filters: f,
                cin,
                in_h,
                in_w,
                h: in_h - 2,
                w: in_w - 2,
                zs: blocks * BLOCK,
                blocks,
                kernel: pack_blocks(&s.lstm.kernel, cin, 4 * f),
                recurrent: pack_blocks(&s.lstm.recurrent, f, 4 * f),
                winograd: match conv {
                    ConvAlgo::Direct => None,
                    ConvAlgo::Winograd(w) => Some((
                        w,
                        winograd::pack(w, &s.lstm.recurrent, f, &s.lstm.kernel, cin, 4 * f),
                    )),
                },
                pool: s.pool,
                norm: s.norm.as_ref().map(|n| n.scale_shift()),
            };
            (in_h, in_w) = plan.out_map();
            plans.push(plan);
        }
        Ok(PackedModel {
            model,
            plans: plans.into(),
        })
    }

    pub fn model(&self) -> &Model {
        &self.model
    }
}

/// The fast CPU engine; see the module documentation.
#[derive(Debug)]
pub struct CpuEngine {
    model: Arc<Model>,
    isa: Isa,
    threads: usize,
    /// Shapes and packed weights, shared with every engine of the same [`PackedModel`].
    plans: Arc<[StagePlan]>,
    states: Vec<SlotState>,
    scratch: Vec<Scratch>,
    /// One per group of the largest batch of single-slot groups so far
    /// ([`Engine::step_groups`]: each group's step is spread over every thread).
    group_scratch: Vec<Scratch>,
    /// The first stage's input pre-activations `[pixel][zs]`, shared by a batch.
    zx: Vec<f32>,
    /// The threads besides the caller's (none with one thread).
    helpers: Option<Helpers>,
    /// Slots' next steps, partly done ahead ([`Engine::prepare`]).
    aheads: Aheads,
    macs: u64,
}

impl CpuEngine {
    /// An engine on every available core, with the instruction set `BURSTWATCH_SIMD` asks
    /// for (by default the best this CPU has).
    pub fn new(model: impl Into<Arc<Model>>) -> Result<Self> {
        Self::with_threads(model, default_threads())
    }

    /// An engine on `threads` threads (at least 1).
    ///
    /// See [`default_threads`] for the count [`CpuEngine::new`] uses.
    pub fn with_threads(model: impl Into<Arc<Model>>, threads: usize) -> Result<Self> {
        Self::with_packed(&PackedModel::new(model)?, threads)
    }

    /// An engine on `threads` threads over weights packed once for several engines.
    pub fn with_packed(packed: &PackedModel, threads: usize) -> Result<Self> {
        Self::build(packed, threads, Simd::from_env()?)
    }

    /// An engine on `threads` threads computing the convolutions of the old h with `conv`,
    /// with the kernels of `simd` (an error when this CPU does not have it).
    pub fn with_conv(
        model: impl Into<Arc<Model>>,
        threads: usize,
        conv: ConvAlgo,
        simd: Simd,
    ) -> Result<Self> {
        Self::build(&PackedModel::with_conv(model, conv)?, threads, simd)
    }

    fn build(packed: &PackedModel, threads: usize, simd: Simd) -> Result<Self> {
        let isa = Isa::new(simd)
            .ok_or_else(|| Error::Engine(format!("this CPU does not have {}", simd.name())))?;
        let threads = threads.max(1);
        let plans = packed.plans.clone();
        let scratch = (0..threads).map(|_| Scratch::new(&plans)).collect();
        Ok(CpuEngine {
            model: packed.model.clone(),
            isa,
            threads,
            plans,
            states: Vec::new(),
            scratch,
            group_scratch: Vec::new(),
            zx: Vec::new(),
            helpers: (threads > 1)
                .then(|| Helpers::new(threads - 1))
                .transpose()?,
            aheads: Aheads::default(),
            macs: 0,
        })
    }

    /// Whether two engines share one copy of the packed weights.
    pub fn shares_weights_with(&self, other: &CpuEngine) -> bool {
        Arc::ptr_eq(&self.plans, &other.plans)
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The convolution of the old h this engine computes.
    pub fn conv(&self) -> ConvAlgo {
        match self.plans.first().and_then(|p| p.winograd.as_ref()) {
            Some((f, _)) => ConvAlgo::Winograd(*f),
            None => ConvAlgo::Direct,
        }
    }
}

/// Splits `0..n` into `parts` contiguous ranges of nearly equal length.
fn split_range(n: usize, parts: usize) -> Vec<Range<usize>> {
    (0..parts)
        .map(|t| t * n / parts..(t + 1) * n / parts)
        .collect()
}

/// Rows per job when a map is split over threads: small enough that a thread whose core
/// is busy with another process simply takes fewer jobs (the machine is shared), large
/// enough that a job is much longer than taking it from the queue.
const ROWS_PER_JOB: usize = 4;

/// Row ranges of an `n`-row map for `threads` threads, each starting at a multiple of
/// `unit` rows (a Winograd tile's side: a job that started inside a tile would compute
/// rows it does not keep).
fn row_jobs(n: usize, threads: usize, unit: usize) -> Vec<Range<usize>> {
    let units = n.div_ceil(unit);
    let parts = if threads == 1 {
        1
    } else {
        let per_job = (ROWS_PER_JOB / unit).max(1);
        units.div_ceil(per_job).max(threads).min(units)
    };
    split_range(units, parts)
        .into_iter()
        .map(|r| r.start * unit..(r.end * unit).min(n))
        .collect()
}

/// Runs `work(worker, job)` for every job, on one thread per worker (the calling thread
/// is one of them, the engine's helpers the others), each taking the next job from a
/// shared queue.
fn parallel<W: Send, J: Send>(
    helpers: Option<&Helpers>,
    workers: &mut [W],
    jobs: Vec<J>,
    work: impl Fn(&mut W, J) + Sync,
) {
    let Some(helpers) = helpers.filter(|_| workers.len() > 1 && jobs.len() > 1) else {
        for j in jobs {
            work(&mut workers[0], j);
        }
        return;
    };
    let queue = Mutex::new(jobs.into_iter());
    let next = || queue.lock().unwrap_or_else(|e| e.into_inner()).next();
    let run = |w: &mut W| {
        while let Some(j) = next() {
            work(w, j);
        }
    };
    let run = &run;
    helpers.scope(|sc| {
        let (mine, others) = workers.split_first_mut().expect("at least one worker");
        for w in others {
            sc.spawn(move |_| run(w));
        }
        run(mine);
    });
}

/// Splits `buf` into consecutive chunks of `rows[i].len() * row_len` values.
fn split_rows<'a>(
    mut buf: &'a mut [f32],
    rows: &[Range<usize>],
    row_len: usize,
) -> Vec<&'a mut [f32]> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let (head, tail) = buf.split_at_mut(r.len() * row_len);
        out.push(head);
        buf = tail;
    }
    out
}

/// What one stage's step reads.
#[derive(Clone, Copy)]
struct StageInput<'a> {
    plan: &'a StagePlan,
    /// Pre-activations computed before the step (`[pixel][zs]`): a batch's shared input
    /// convolution, or the recurrent convolution prepared ahead. The tiles add the rest.
    pre: Option<&'a [f32]>,
    /// The stage's input map `[y][x][cin]` to convolve, or `None` when `pre` holds its
    /// convolution.
    x: Option<&'a [f32]>,
    /// The old h (bordered) to convolve, or `None` for a zero state or when `pre` holds
    /// its convolution.
    h_old: Option<&'a [f32]>,
    /// The state is zero: c starts at zero.
    fresh: bool,
}

impl<'a> StageInput<'a> {
    /// Stage `i` of a step: its input `x`, the state's old h unless `fresh`, and what was
    /// computed before the step (`zx`: the first stage's input convolution, shared by a
    /// batch; `ahead`: every stage's recurrent convolution, prepared).
    fn new(
        plan: &'a StagePlan,
        i: usize,
        x: &'a [f32],
        h: &'a [f32],
        fresh: bool,
        zx: Option<&'a [f32]>,
        ahead: Option<&'a [Vec<f32>]>,
    ) -> Self {
        let h_old = (!fresh).then_some(h);
        let (pre, x, h_old) = match (ahead, zx.filter(|_| i == 0)) {
            (Some(a), _) => (Some(&a[i][..]), Some(x), None),
            (None, Some(zx)) => (Some(zx), None, h_old),
            (None, None) => (None, Some(x), h_old),
        };
        StageInput {
            plan,
            pre,
            x,
            h_old,
            fresh,
        }
    }
}

/// Rows `rows` of one stage's step: the new h into `h_new` (the bordered rows
/// `rows.start + 1 ..`, whole width) and c updated in place (`c` holds those rows).
///
/// Loop order: per tile, all blocks (every gate of its pixels), then the gate math while
/// the pre-activations are in L1. (Sweeping one block across a whole row first, to keep
/// its weights in L1, measured 5-10 % slower for both study models.)
fn stage_rows<K: Kernels>(
    k: K,
    s: StageInput,
    rows: Range<usize>,
    h_new: &mut [f32],
    c: &mut [f32],
) {
    let p = s.plan;
    let (w, f, zs) = (p.w, p.filters, p.zs);
    let fresh = s.fresh;
    let h_row = p.h_row();
    // With an old h to convolve, Winograd's convolution when the engine has it: of the
    // old h and the input together, what was computed before (`pre`) added, then the gates.
    if let Some(src) = s.h_old.and_then(|h| p.winograd_sources(h, s.x)) {
        let start = rows.start;
        winograd::rows(k, src, rows, |y, x0, n, z| {
            if let Some(pre) = s.pre {
                k.add(z, &pre[(y * w + x0) * zs..][..n * zs]);
            }
            let i = y - start;
            let h_out = &mut h_new[i * h_row..(i + 1) * h_row];
            let c_row = &mut c[i * w * f..(i + 1) * w * f];
            k.gates(
                n,
                z,
                zs,
                f,
                &mut c_row[x0 * f..],
                &mut h_out[(x0 + 1) * f..],
                fresh,
            );
        });
        return;
    }
    let mut z = vec![0.0f32; TILE * zs];
    for (i, y) in rows.enumerate() {
        let h_out = &mut h_new[i * h_row..(i + 1) * h_row];
        let c_row = &mut c[i * w * f..(i + 1) * w * f];
        for x0 in (0..w).step_by(TILE) {
            let m = TILE.min(w - x0);
            let mut srcs = [ConvSrc::NONE; 2];
            let mut n = 0;
            if let Some(x) = s.x {
                srcs[n] = p.input_src(x, y, x0);
                n += 1;
            }
            if let Some(h) = s.h_old {
                srcs[n] = p.recurrent_src(h, y, x0);
                n += 1;
            }
            let init = s.pre.map(|pre| (&pre[(y * w + x0) * zs..], zs));
            k.tile(m, p.blocks, init, &srcs[..n], &mut z, zs);
            k.gates(
                m,
                &z,
                zs,
                f,
                &mut c_row[x0 * f..],
                &mut h_out[(x0 + 1) * f..],
                fresh,
            );
        }
    }
}

/// Rows `rows` of one of a stage's convolutions into `out` (`[pixel][zs]`): of the input
/// map `x` (`Conv::Input`) or of the bordered h (`Conv::Recurrent`).
fn conv_rows<K: Kernels>(
    k: K,
    p: &StagePlan,
    conv: Conv,
    data: &[f32],
    rows: Range<usize>,
    out: &mut [f32],
) {
    let (w, zs) = (p.w, p.zs);
    if let (Conv::Recurrent, Some(src)) = (conv, p.winograd_sources(data, None)) {
        let start = rows.start;
        winograd::rows(k, src, rows, |y, x0, n, z| {
            out[((y - start) * w + x0) * zs..][..n * zs].copy_from_slice(z);
        });
        return;
    }
    for (i, y) in rows.enumerate() {
        let row = &mut out[i * w * zs..(i + 1) * w * zs];
        for x0 in (0..w).step_by(TILE) {
            let m = TILE.min(w - x0);
            let src = match conv {
                Conv::Input => p.input_src(data, y, x0),
                Conv::Recurrent => p.recurrent_src(data, y, x0),
            };
            k.tile(m, p.blocks, None, &[src], &mut row[x0 * zs..], zs);
        }
    }
}

/// One of a stage's convolutions over its whole map into `out` (resized to `[pixel][zs]`),
/// the rows split over `threads` threads.
#[allow(clippy::too_many_arguments)]
fn conv_map<K: Kernels>(
    k: K,
    p: &StagePlan,
    conv: Conv,
    data: &[f32],
    out: &mut Vec<f32>,
    threads: usize,
    helpers: Option<&Helpers>,
) {
    out.resize(p.h * p.w * p.zs, 0.0);
    let rows = row_jobs(p.h, threads, p.row_unit());
    let parts = split_rows(out, &rows, p.w * p.zs);
    let jobs: Vec<_> = rows.into_iter().zip(parts).collect();
    parallel(helpers, &mut vec![(); threads], jobs, |_, (r, out)| {
        conv_rows(k, p, conv, data, r, out)
    });
}

/// Which of a stage's two convolutions.
#[derive(Clone, Copy)]
enum Conv {
    Input,
    Recurrent,
}

/// A stage's output for the next stage, `norm(pool(h))`, from its bordered h.
fn stage_output(p: &StagePlan, h: &[f32], out: &mut [f32]) {
    let f = p.filters;
    let (oh, ow) = p.out_map();
    let row = p.h_row();
    // Interior pixel (y, x) of the bordered h.
    let at = |y: usize, x: usize| &h[(y + 1) * row + (x + 1) * f..][..f];
    for y in 0..oh {
        for x in 0..ow {
            let o = &mut out[(y * ow + x) * f..][..f];
            if p.pool {
                let (a, b, c, d) = (
                    at(2 * y, 2 * x),
                    at(2 * y, 2 * x + 1),
                    at(2 * y + 1, 2 * x),
                    at(2 * y + 1, 2 * x + 1),
                );
                for k in 0..f {
                    o[k] = a[k].max(b[k]).max(c[k]).max(d[k]);
                }
            } else {
                o.copy_from_slice(at(y, x));
            }
            if let Some((scale, shift)) = &p.norm {
                for k in 0..f {
                    o[k] = o[k] * scale[k] + shift[k];
                }
            }
        }
    }
}

/// Advances one slot through every stage, the rows of each stage split over `threads`
/// threads (the caller and its helpers). `zx` is the first stage's input convolution when
/// a batch shares it; `ahead` every stage's recurrent convolution when it was prepared.
#[allow(clippy::too_many_arguments)]
fn advance_state<K: Kernels>(
    k: K,
    plans: &[StagePlan],
    slice: &[f32],
    zx: Option<&[f32]>,
    ahead: Option<&[Vec<f32>]>,
    st: &mut SlotState,
    scratch: &mut Scratch,
    threads: usize,
    helpers: Option<&Helpers>,
) {
    let fresh = st.zero;
    for (i, p) in plans.iter().enumerate() {
        let Scratch { h_next, stage_in } = &mut *scratch;
        let x = if i == 0 { slice } else { &stage_in[i][..] };
        let stage = &mut st.stages[i];
        let s = StageInput::new(p, i, x, &stage.h, fresh, zx, ahead);
        let row = p.h_row();
        let rows = row_jobs(p.h, threads, p.row_unit());
        let h_parts = split_rows(&mut h_next[i][row..(p.h + 1) * row], &rows, row);
        let c_parts = split_rows(&mut stage.c, &rows, p.w * p.filters);
        let jobs: Vec<_> = rows.into_iter().zip(h_parts).zip(c_parts).collect();
        parallel(helpers, &mut vec![(); threads], jobs, |_, ((r, h), c)| {
            stage_rows(k, s, r, h, c)
        });
        std::mem::swap(&mut stage.h, &mut h_next[i]);
        if i + 1 < plans.len() {
            stage_output(p, &stage.h, &mut stage_in[i + 1]);
        }
    }
    st.zero = false;
}

impl CpuEngine {
    /// One step of `slots`; `prepared`: the entry of `aheads` holding the slot's recurrent
    /// convolutions.
    fn run_step<K: Kernels>(
        &mut self,
        k: K,
        slice: &[f32],
        slots: &[Slot],
        prepared: Option<usize>,
    ) {
        let CpuEngine {
            plans,
            states,
            scratch,
            zx,
            threads,
            helpers,
            aheads,
            ..
        } = self;
        let threads = *threads;
        let helpers = helpers.as_ref();
        let ahead = prepared.map(|i| &aheads.entries[i].z[..]);
        let first = &plans[0];
        // Disjoint &mut to the batch's states (slots are distinct, checked by the caller).
        let mut all: Vec<Option<&mut SlotState>> = states.iter_mut().map(Some).collect();
        let batch: Vec<&mut SlotState> = slots.iter().filter_map(|&s| all[s].take()).collect();
        // The shared input convolution pays off once two states use it; for one state it
        // is fused into the tiles instead.
        let shared = batch.len() > 1;
        if shared {
            conv_map(k, first, Conv::Input, slice, zx, threads, helpers);
        }
        let zx = shared.then_some(&zx[..]);
        let plans = &plans[..];
        if threads == 1 || batch.len() >= 2 * threads {
            // Whole states per thread, each with its own scratch, from a shared queue.
            // (`ahead` is only ever set for a batch of one.)
            parallel(helpers, scratch, batch, |scratch, st| {
                advance_state(k, plans, slice, zx, ahead, st, scratch, 1, None)
            });
        } else {
            for st in batch {
                advance_state(
                    k,
                    plans,
                    slice,
                    zx,
                    ahead,
                    st,
                    &mut scratch[0],
                    threads,
                    helpers,
                );
            }
        }
    }

    /// Groups of one slot each, each with its own slice (many cameras in continuous mode):
    /// stage by stage, the rows of every group's step in one queue for all threads, so
    /// that the threads stay busy to the end of the batch however many groups there are
    /// (whole steps per thread left one idle through the last step of an odd batch).
    /// `prepared[g]` as in [`CpuEngine::run_step`]. Per pixel, the same arithmetic as a step
    /// of its own.
    fn run_singles<K: Kernels>(
        &mut self,
        k: K,
        groups: &[(&[f32], &[Slot])],
        prepared: &[Option<usize>],
    ) {
        while self.group_scratch.len() < groups.len() {
            self.group_scratch.push(Scratch::new(&self.plans));
        }
        let CpuEngine {
            plans,
            states,
            group_scratch,
            threads,
            helpers,
            aheads,
            ..
        } = self;
        let threads = *threads;
        let mut all: Vec<Option<&mut SlotState>> = states.iter_mut().map(Some).collect();
        let mut members = Vec::with_capacity(groups.len());
        for (((slice, slots), p), scratch) in
            groups.iter().zip(prepared).zip(group_scratch.iter_mut())
        {
            if let Some(st) = all[slots[0]].take() {
                let ahead = p.map(|i| &aheads.entries[i].z[..]);
                members.push((*slice, st, scratch, ahead));
            }
        }
        for (i, p) in plans.iter().enumerate() {
            let row = p.h_row();
            let mut jobs = Vec::new();
            for (slice, st, scratch, ahead) in members.iter_mut() {
                let Scratch { h_next, stage_in } = &mut **scratch;
                let x = if i == 0 { *slice } else { &stage_in[i][..] };
                let fresh = st.zero;
                let StageState { h, c } = &mut st.stages[i];
                let s = StageInput::new(p, i, x, h, fresh, None, *ahead);
                let rows = row_jobs(p.h, threads, p.row_unit());
                let h_parts = split_rows(&mut h_next[i][row..(p.h + 1) * row], &rows, row);
                let c_parts = split_rows(c, &rows, p.w * p.filters);
                for ((r, h), c) in rows.into_iter().zip(h_parts).zip(c_parts) {
                    jobs.push((s, r, h, c));
                }
            }
            parallel(
                helpers.as_ref(),
                &mut vec![(); threads],
                jobs,
                |_, (s, r, h, c)| stage_rows(k, s, r, h, c),
            );
            for (_, st, scratch, _) in members.iter_mut() {
                let stage = &mut st.stages[i];
                std::mem::swap(&mut stage.h, &mut scratch.h_next[i]);
                if i + 1 < plans.len() {
                    stage_output(p, &stage.h, &mut scratch.stage_in[i + 1]);
                }
            }
        }
        for (_, st, _, _) in members {
            st.zero = false;
        }
    }

    /// Every stage's recurrent convolution of `slot`'s current h into entry `entry` of
    /// `aheads`.
    fn run_prepare<K: Kernels>(&mut self, k: K, slot: Slot, entry: usize) {
        let CpuEngine {
            plans,
            states,
            threads,
            helpers,
            aheads,
            ..
        } = self;
        let z = &mut aheads.entries[entry].z;
        z.resize_with(plans.len(), Vec::new);
        for (i, p) in plans.iter().enumerate() {
            let h = &states[slot].stages[i].h;
            conv_map(
                k,
                p,
                Conv::Recurrent,
                h,
                &mut z[i],
                *threads,
                helpers.as_ref(),
            );
        }
    }

    /// Counts the work of a step of `slots` and takes the preparation it can use.
    ///
    /// Work done: the first input convolution once when shared (more than one slot),
    /// recurrent convolutions only for slots that are not zero and were not prepared
    /// (`prepare` counted those).
    fn begin_step(&mut self, slots: &[Slot]) -> Option<usize> {
        let zero = slots.iter().filter(|&&s| self.states[s].zero).count() as u64;
        let n = slots.len() as u64;
        let prepared = self.aheads.take(slots);
        for k in 0..self.plans.len() {
            let (input, recurrent) = self.model.stage_macs(k);
            let inputs = if k == 0 && n > 1 { 1 } else { n };
            self.macs += input * inputs + recurrent * (n - zero - u64::from(prepared.is_some()));
        }
        prepared
    }

    fn state(&self, slot: Slot, stage: usize) -> Result<(&SlotState, &StagePlan)> {
        match (self.states.get(slot), self.plans.get(stage)) {
            (Some(s), Some(p)) => Ok((s, p)),
            _ => Err(Error::Engine(format!(
                "no state for slot {slot} stage {stage}"
            ))),
        }
    }
}

impl Engine for CpuEngine {
    fn name(&self) -> String {
        // "cpu-avx512-x2" with the direct convolution, "cpu-avx512-winograd3x3-x2" with
        // Winograd's F(3x3, 3x3).
        let conv = match self.conv() {
            ConvAlgo::Direct => String::new(),
            c => format!("-{}", c.name()),
        };
        format!("cpu-{}{conv}-x{}", self.isa.name(), self.threads)
    }

    fn model(&self) -> &Model {
        &self.model
    }

    fn alloc_states(&mut self, n: usize) -> Result<Range<Slot>> {
        let start = self.states.len();
        for _ in 0..n {
            let stages = self
                .plans
                .iter()
                .map(|p| StageState {
                    h: vec![0.0; p.h_len()],
                    c: vec![0.0; p.c_len()],
                })
                .collect();
            self.states.push(SlotState { stages, zero: true });
        }
        Ok(start..self.states.len())
    }

    fn slots(&self) -> usize {
        self.states.len()
    }

    fn reset(&mut self, slot: Slot) {
        self.states[slot].zero = true;
        self.aheads.forget(slot);
    }

    fn prepare(&mut self, slot: Slot) -> Result<()> {
        check_slots(&[slot], self.states.len())?;
        if self.aheads.find(slot).is_some() {
            return Ok(());
        }
        // A zero state's step has no recurrent convolution to do.
        if self.states[slot].zero {
            return Ok(());
        }
        for k in 0..self.plans.len() {
            self.macs += self.model.stage_macs(k).1;
        }
        let entry = self.aheads.entry_for(slot);
        with_kernels!(self.isa, k => self.run_prepare(k, slot, entry));
        Ok(())
    }

    fn step(&mut self, slice: &[f32], slots: &[Slot]) -> Result<()> {
        check_slots(slots, self.states.len())?;
        check_slice(&self.model, slice)?;
        let prepared = self.begin_step(slots);
        with_kernels!(self.isa, k => self.run_step(k, slice, slots, prepared));
        Ok(())
    }

    /// Many cameras' continuous-mode steps (one slot each) share every thread, stage by
    /// stage, with one barrier per stage for all of them instead of one per step each
    /// ([`CpuEngine::run_singles`]). Anything else is one [`Engine::step`] per group, each
    /// split over the threads.
    fn step_groups(&mut self, groups: &[(&[f32], &[Slot])]) -> Result<()> {
        let all: Vec<Slot> = groups.iter().flat_map(|(_, s)| s.iter().copied()).collect();
        check_slots(&all, self.states.len())?;
        for (slice, _) in groups {
            check_slice(&self.model, slice)?;
        }
        let singles = groups.len() >= 2 && groups.iter().all(|(_, s)| s.len() == 1);
        if !singles {
            for (slice, slots) in groups {
                self.step(slice, slots)?;
            }
            return Ok(());
        }
        let prepared: Vec<Option<usize>> = groups.iter().map(|(_, s)| self.begin_step(s)).collect();
        with_kernels!(self.isa, k => self.run_singles(k, groups, &prepared));
        Ok(())
    }

    fn head(&mut self, slots: &[Slot]) -> Result<Vec<f32>> {
        check_slots(slots, self.states.len())?;
        let last = self.plans.len() - 1;
        let p = &self.plans[last];
        let f = p.filters;
        let (oh, ow) = p.out_map();
        // The pool covers rows/columns 0 .. 2*oh (2*ow); the max over it of the pooled map
        // is the max over that region. BatchNorm is monotone per channel, so the max of
        // the normed map is the norm of the max (scale > 0) or of the min (scale < 0).
        let (ry, rx) = if p.pool { (2 * oh, 2 * ow) } else { (oh, ow) };
        let row = p.h_row();
        let need_min = p
            .norm
            .as_ref()
            .is_some_and(|(scale, _)| scale.iter().any(|&s| s < 0.0));
        Ok(slots
            .iter()
            .map(|&slot| {
                let st = &self.states[slot];
                let (mut max, mut min) = (vec![0.0f32; f], vec![0.0f32; f]);
                if !st.zero {
                    max.fill(f32::NEG_INFINITY);
                    min.fill(f32::INFINITY);
                    let h = &st.stages[last].h;
                    for y in 0..ry {
                        let row = &h[(y + 1) * row + f..][..rx * f];
                        for px in row.chunks_exact(f) {
                            // Written as comparisons so that they vectorise (f32::max
                            // has NaN rules that keep it scalar); h has no NaN.
                            for (m, &v) in max.iter_mut().zip(px) {
                                *m = if v > *m { v } else { *m };
                            }
                            if need_min {
                                for (m, &v) in min.iter_mut().zip(px) {
                                    *m = if v < *m { v } else { *m };
                                }
                            }
                        }
                    }
                }
                let feature = |k: usize| match &p.norm {
                    Some((scale, shift)) => {
                        let v = if scale[k] >= 0.0 { max[k] } else { min[k] };
                        v * scale[k] + shift[k]
                    }
                    None => max[k],
                };
                sigmoid(self.model.head.logit((0..f).map(feature)))
            })
            .collect())
    }

    fn macs_done(&self) -> u64 {
        self.macs
    }

    fn read_state(&self, slot: Slot, stage: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let (st, p) = self.state(slot, stage)?;
        let n = p.c_len();
        if st.zero {
            return Ok((vec![0.0; n], vec![0.0; n]));
        }
        let s = &st.stages[stage];
        let f = p.filters;
        let mut h = Vec::with_capacity(n);
        for y in 0..p.h {
            h.extend_from_slice(&s.h[(y + 1) * p.h_row() + f..][..p.w * f]);
        }
        Ok((h, s.c.clone()))
    }

    fn write_state(&mut self, slot: Slot, stage: usize, h: &[f32], c: &[f32]) -> Result<()> {
        let n = self.state(slot, stage)?.1.c_len();
        if h.len() != n || c.len() != n {
            return Err(Error::Engine(format!(
                "state of {} / {} values; expected {n}",
                h.len(),
                c.len()
            )));
        }
        self.aheads.forget(slot);
        let st = &mut self.states[slot];
        if st.zero {
            // Make the zero that the flag stood for real in every stage.
            for s in &mut st.stages {
                s.h.fill(0.0);
                s.c.fill(0.0);
            }
            st.zero = false;
        }
        let p = &self.plans[stage];
        let s = &mut st.stages[stage];
        let (f, w) = (p.filters, p.w);
        for y in 0..p.h {
            s.h[(y + 1) * p.h_row() + f..][..w * f].copy_from_slice(&h[y * w * f..(y + 1) * w * f]);
        }
        s.c.copy_from_slice(c);
        Ok(())
    }
}

/// Threads of an engine made by [`CpuEngine::new`]: `BURSTWATCH_THREADS` when set (e.g. 1
/// per engine when many cameras share few cores), otherwise every available core.
pub fn default_threads() -> usize {
    std::env::var("BURSTWATCH_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;

    #[test]
    fn engines_of_one_packed_model_share_its_weights_and_keep_their_own_states() {
        let model = Model::random_study("upbeat-snowflake-91", 3).expect("a study model");
        let packed = PackedModel::new(model.clone()).unwrap();
        let mut a = CpuEngine::with_packed(&packed, 1).unwrap();
        let mut b = CpuEngine::with_packed(&packed, 1).unwrap();
        assert!(a.shares_weights_with(&b));
        assert!(!a.shares_weights_with(&CpuEngine::with_threads(model, 1).unwrap()));
        // A step of one engine leaves the other's state alone.
        let inp = a.model().input;
        let slice = vec![0.5f32; inp.height * inp.width * inp.channels];
        let (sa, sb) = (
            a.alloc_states(1).unwrap().start,
            b.alloc_states(1).unwrap().start,
        );
        a.step(&slice, &[sa]).unwrap();
        assert!(a.read_state(sa, 0).unwrap().0.iter().any(|&v| v != 0.0));
        assert!(b.read_state(sb, 0).unwrap().0.iter().all(|&v| v == 0.0));
    }
}
