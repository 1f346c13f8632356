//! The CUDA engine: the ConvLSTM step as custom kernels (`kernels/*.cu`), compiled at run
//! time by NVRTC for the device's architecture, with every state resident on the device.
//!
//! One batched step costs one launch per kernel, whatever the batch: the first stage's
//! input convolution once per slice (`input_conv_f32`, shared by every window of the
//! phase), then per stage one fused launch for all states (`lstm_step_f32`: recurrent
//! "same" convolution, input term, gates, c/h update; a zero state skips its recurrent
//! convolution), with `pool_norm_f32` between the stages of the two-stage model. The
//! windows that finish go through `head_f32`. [`KernelEngine::step_groups`] advances
//! states of several slices at once (several cameras in the same phase) in those same
//! launches.
//!
//! The host logic ([`KernelEngine`]) is written once over a [`Backend`]: [`CudaBackend`]
//! (cudarc, the driver and NVRTC loaded at run time, so the crate builds and runs without
//! CUDA), or [`EmuBackend`], the same kernel source compiled as C++ and run on the CPU, which
//! is how the kernels and this module are tested on machines without a GPU
//! (`tests/cuda_emulation.rs`). Nothing here is behind a `cfg`: without libcuda,
//! [`CudaEngine::new`] returns an error that says so.
//!
//! Device layouts are documented in `kernels/common.cuh`: maps are planar (`[F][h][w]`),
//! h is double-buffered per slot (a step reads one buffer and writes the other), and the
//! 3x3 weights are packed in groups of 4 filters x 4 gates ([`pack_weights`]).

use std::ops::Range;

use super::{check_slots, Engine, Slot};
use crate::model::Model;
use crate::{Error, Result};

mod device;
mod emu;

pub use device::{
    compile_kernels, cuda_probe, nvrtc_version, Arch, CudaBackend, KernelImage, KernelImages,
};
pub use emu::EmuBackend;

/// The CUDA engine: [`KernelEngine`] on a CUDA device.
pub type CudaEngine = KernelEngine<CudaBackend>;

/// The CUDA engine's kernels run on the CPU through their C++ emulation (for checks).
pub type EmulatedEngine = KernelEngine<EmuBackend>;

/// Shared definitions, prepended to every kernel file before compiling it.
pub const KERNEL_COMMON: &str = include_str!("../../kernels/common.cuh");

/// The kernel files, `(name, source)`, one per family of operations.
pub const KERNEL_FILES: [(&str, &str); 2] = [
    ("conv_lstm.cu", include_str!("../../kernels/conv_lstm.cu")),
    ("head.cu", include_str!("../../kernels/head.cu")),
];

/// What a compiler is given for kernel file `body`: the common header, then the file
/// (whose own `#include "common.cuh"` is then skipped by its include guard).
pub fn kernel_source(body: &str) -> String {
    format!("{KERNEL_COMMON}\n{body}")
}

/// The kernels' entry points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    InputConv,
    LstmStep,
    PoolNorm,
    Head,
}

impl Kernel {
    pub const ALL: [Kernel; 4] = [
        Kernel::InputConv,
        Kernel::LstmStep,
        Kernel::PoolNorm,
        Kernel::Head,
    ];

    /// The `extern "C"` name, `<op>_f32`.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::InputConv => "input_conv_f32",
            Kernel::LstmStep => "lstm_step_f32",
            Kernel::PoolNorm => "pool_norm_f32",
            Kernel::Head => "head_f32",
        }
    }

    /// The file in [`KERNEL_FILES`] that defines it.
    pub fn file(self) -> &'static str {
        match self {
            Kernel::InputConv | Kernel::LstmStep => "conv_lstm.cu",
            Kernel::PoolNorm | Kernel::Head => "head.cu",
        }
    }
}

// Tile geometry and limits, as in kernels/common.cuh.
const TILE_H: usize = 8;
const TILE_W: usize = 32;
const HALO: usize = (TILE_H + 2) * (TILE_W + 2);
const PIXEL_GROUPS: u32 = 64;
const GROUPS_PER_BLOCK: usize = 4;
const HEAD_THREADS: u32 = 256;
const MAX_FILTERS: usize = 64;
/// Dynamic shared memory per block that needs no opt-in on any architecture.
const SMEM_BUDGET: usize = 48 * 1024;
/// Largest grid y (batch entries in one launch).
const MAX_ENTRIES: usize = 65_535;
/// Descriptor flags (kernels/common.cuh).
const FLAG_ZERO: i32 = 1;
const FLAG_IN_H1: i32 = 2;

/// A kernel's parameter block: passed by value, mirrored field for field by the struct of
/// the same name in `kernels/common.cuh` (sizes are asserted on both sides).
///
/// # Safety
/// Implementors must be `#[repr(C)]` plain data matching their C++ definition.
pub unsafe trait LaunchParams:
    Copy + Send + Sync + cudarc::driver::DeviceRepr + 'static
{
}

/// `input_conv_f32`'s parameters (device addresses as u64).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct InputConvParams {
    pub x: u64,
    pub weights: u64,
    pub zx: u64,
    pub in_h: i32,
    pub in_w: i32,
    pub cin: i32,
    pub filters: i32,
    pub out_h: i32,
    pub out_w: i32,
    pub chunk: i32,
    pub pad: i32,
}

/// `lstm_step_f32`'s parameters.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct StepParams {
    pub zx: u64,
    pub x: u64,
    pub kernel: u64,
    pub recurrent: u64,
    pub h0: u64,
    pub h1: u64,
    pub c: u64,
    pub batch: u64,
    pub entries: i32,
    pub h: i32,
    pub w: i32,
    pub filters: i32,
    pub cin: i32,
    pub chunk_x: i32,
    pub chunk_h: i32,
    pub pad: i32,
}

/// `pool_norm_f32`'s parameters.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolNormParams {
    pub h0: u64,
    pub h1: u64,
    pub batch: u64,
    pub scale: u64,
    pub shift: u64,
    pub out: u64,
    pub entries: i32,
    pub h: i32,
    pub w: i32,
    pub filters: i32,
    pub pool: i32,
    pub out_h: i32,
    pub out_w: i32,
    pub pad: i32,
}

/// `head_f32`'s parameters.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct HeadParams {
    pub h0: u64,
    pub h1: u64,
    pub batch: u64,
    pub scale: u64,
    pub shift: u64,
    pub dense: u64,
    pub out: u64,
    pub entries: i32,
    pub h: i32,
    pub w: i32,
    pub filters: i32,
    pub pool: i32,
    pub pad: i32,
    pub bias: f32,
    pub pad2: f32,
}

const _: () = assert!(std::mem::size_of::<InputConvParams>() == 56);
const _: () = assert!(std::mem::size_of::<StepParams>() == 96);
const _: () = assert!(std::mem::size_of::<PoolNormParams>() == 80);
const _: () = assert!(std::mem::size_of::<HeadParams>() == 88);

macro_rules! launch_params {
    ($($t:ty),*) => {$(
        // SAFETY: #[repr(C)] plain data (u64, i32, f32), no padding the C++ side lacks.
        unsafe impl cudarc::driver::DeviceRepr for $t {}
        unsafe impl LaunchParams for $t {}
    )*};
}
launch_params!(InputConvParams, StepParams, PoolNormParams, HeadParams);

/// Where kernels run and buffers live: a CUDA device, or the CPU emulation.
/// Buffers hold f32 (the batch descriptor's i32 travel as their bit patterns).
pub trait Backend: Send {
    type Buf: Send;
    /// A short description for [`Engine::name`].
    fn describe(&self) -> String;
    /// A zeroed buffer of `len` values.
    fn alloc(&self, len: usize) -> Result<Self::Buf>;
    fn upload(&self, buf: &mut Self::Buf, offset: usize, data: &[f32]) -> Result<()>;
    fn download(&self, buf: &Self::Buf, offset: usize, len: usize) -> Result<Vec<f32>>;
    /// Copies the first `len` values of `src` to `dst`.
    fn copy(&self, src: &Self::Buf, dst: &mut Self::Buf, len: usize) -> Result<()>;
    /// The address kernels use for the buffer.
    fn addr(&self, buf: &Self::Buf) -> u64;
    /// Launches `kernel` on a grid of blocks of `threads` threads with `smem` bytes of
    /// dynamic shared memory. Launches run in order.
    fn launch<P: LaunchParams>(
        &self,
        kernel: Kernel,
        grid: [u32; 3],
        threads: u32,
        smem: u32,
        params: &P,
    ) -> Result<()>;
}

/// A buffer that grows (never shrinks) to the length a step needs.
struct Growable<B: Backend> {
    buf: B::Buf,
    len: usize,
}

impl<B: Backend> Growable<B> {
    fn new(backend: &B, len: usize) -> Result<Self> {
        Ok(Growable {
            buf: backend.alloc(len)?,
            len,
        })
    }

    /// Makes room for `len` values, keeping the first `keep`.
    fn ensure(&mut self, backend: &B, len: usize, keep: usize) -> Result<()> {
        if len > self.len {
            let len = len.max(self.len + self.len / 2);
            let mut buf = backend.alloc(len)?;
            if keep > 0 {
                backend.copy(&self.buf, &mut buf, keep)?;
            }
            self.buf = buf;
            self.len = len;
        }
        Ok(())
    }
}

/// One stage on the device: shapes, launch geometry, packed weights, and every slot's
/// state.
struct StagePlan<B: Backend> {
    filters: usize,
    cin: usize,
    /// Input map (this stage's valid convolution trims one pixel per side).
    in_h: usize,
    in_w: usize,
    /// State map.
    h: usize,
    w: usize,
    pool: bool,
    /// Map after the optional pool.
    out_h: usize,
    out_w: usize,
    /// Blocks along z (filter groups / 4) and threads per block.
    z_blocks: u32,
    threads: u32,
    /// Channels per shared-memory chunk: input (first stage: the slice) and recurrent.
    chunk_x: usize,
    chunk_h: usize,
    smem: u32,
    kernel: B::Buf,
    recurrent: B::Buf,
    norm: Option<(B::Buf, B::Buf)>,
    /// `[slot][F][h][w]`; h twice.
    h0: Growable<B>,
    h1: Growable<B>,
    c: Growable<B>,
    /// Stages after the first: their per-entry input `[entry][cin][in_h][in_w]`.
    input: Growable<B>,
}

impl<B: Backend> StagePlan<B> {
    fn state_len(&self) -> usize {
        self.filters * self.h * self.w
    }

    fn tiles(&self) -> u32 {
        (self.h.div_ceil(TILE_H) * self.w.div_ceil(TILE_W)) as u32
    }
}

/// Packs an HWIO 3x3 kernel (`[3][3][cin][4F]`, gates i, f, g, o) for the kernels:
/// `[tap][cin][ceil(F/4)][gate][4 filters]`, zero past F (see `kernels/common.cuh`).
pub fn pack_weights(hwio: &[f32], cin: usize, filters: usize) -> Vec<f32> {
    let groups = filters.div_ceil(4);
    let mut out = vec![0.0; 9 * cin * groups * 16];
    for tap in 0..9 {
        for ci in 0..cin {
            let src = &hwio[(tap * cin + ci) * 4 * filters..][..4 * filters];
            for gate in 0..4 {
                for k in 0..filters {
                    out[((tap * cin + ci) * groups + k / 4) * 16 + gate * 4 + k % 4] =
                        src[gate * filters + k];
                }
            }
        }
    }
    out
}

/// Channels per shared-memory chunk for a convolution over `channels` input channels by a
/// block of `groups` filter groups, as even as the budget allows; and the bytes per
/// channel.
fn chunking(channels: usize, groups: usize) -> (usize, usize) {
    let per_channel = (HALO + 9 * groups * 16) * 4;
    let most = (SMEM_BUDGET / per_channel).max(1);
    let chunks = channels.div_ceil(most);
    (channels.div_ceil(chunks), per_channel)
}

/// Channel-last `[pixel][F]` to planar `[F][pixel]` (the kernels' layout).
fn to_planar(v: &[f32], f: usize) -> Vec<f32> {
    transpose(v, v.len() / f, f)
}

/// Planar `[F][pixel]` back to channel-last `[pixel][F]`.
fn to_channel_last(v: &[f32], f: usize) -> Vec<f32> {
    transpose(v, f, v.len() / f)
}

/// The transpose of a row-major `rows x cols` matrix.
fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for (r, row) in v.chunks_exact(cols).enumerate() {
        for (c, &x) in row.iter().enumerate() {
            out[c * rows + r] = x;
        }
    }
    out
}

/// The engine over any [`Backend`]; see the module documentation.
pub struct KernelEngine<B: Backend> {
    model: Model,
    backend: B,
    stages: Vec<StagePlan<B>>,
    /// Slices of one step, `[group][H][W][C]`, and their input pre-activations
    /// `[group][4F][h][w]`.
    slices: Growable<B>,
    zx: Growable<B>,
    /// Batch descriptor `[slot][flags][group]` (i32 bit patterns).
    batch: Growable<B>,
    out: Growable<B>,
    dense: B::Buf,
    /// Per slot: h = c = 0 whatever the buffers hold; current h in h1 (else h0).
    zero: Vec<bool>,
    in_h1: Vec<bool>,
    macs: u64,
    desc: Vec<f32>,
}

impl CudaEngine {
    /// The CUDA engine on device `ordinal`: probes for the driver, the device and NVRTC,
    /// compiles the kernels for the device's architecture (once per process), uploads the
    /// weights. Fails with a one-line reason where CUDA is not usable (never panics).
    pub fn new(model: Model, ordinal: usize) -> Result<Self> {
        model.check()?;
        check_supported(&model)?;
        let backend = CudaBackend::new(ordinal)
            .map_err(|e| Error::Cuda(format!("cannot use CUDA device {ordinal}: {e}")))?;
        KernelEngine::with_backend(model, backend)
    }
}

impl EmulatedEngine {
    /// The engine with the kernels' C++ emulation (a shared library built from
    /// `kernels/emu/emulator.cpp`) as its device.
    pub fn emulated(model: Model, library: &std::path::Path) -> Result<Self> {
        KernelEngine::with_backend(model, EmuBackend::load(library)?)
    }
}

/// The limits of the kernels (see `kernels/common.cuh`).
fn check_supported(model: &Model) -> Result<()> {
    for (k, s) in model.stages.iter().enumerate() {
        if s.lstm.filters > MAX_FILTERS {
            return Err(Error::Engine(format!(
                "model {}: stage {k} has {} filters; the CUDA kernels take at most {MAX_FILTERS}",
                model.name, s.lstm.filters
            )));
        }
    }
    Ok(())
}

impl<B: Backend> KernelEngine<B> {
    /// The engine on `backend`: packs and uploads the weights. No state slots yet.
    pub fn with_backend(model: Model, backend: B) -> Result<Self> {
        model.check()?;
        check_supported(&model)?;
        let mut stages = Vec::with_capacity(model.stages.len());
        let (mut in_h, mut in_w) = (model.input.height, model.input.width);
        for s in &model.stages {
            let (f, cin) = (s.lstm.filters, s.lstm.in_channels);
            let groups = f.div_ceil(4);
            let in_block = groups.min(GROUPS_PER_BLOCK);
            let (chunk_x, per_channel) = chunking(cin, in_block);
            let (chunk_h, _) = chunking(f, in_block);
            let (h, w) = (in_h - 2, in_w - 2);
            let (out_h, out_w) = if s.pool { (h / 2, w / 2) } else { (h, w) };
            let upload = |v: &[f32]| -> Result<B::Buf> {
                let mut b = backend.alloc(v.len())?;
                backend.upload(&mut b, 0, v)?;
                Ok(b)
            };
            let norm = match &s.norm {
                Some(n) => {
                    let (scale, shift) = n.scale_shift();
                    Some((upload(&scale)?, upload(&shift)?))
                }
                None => None,
            };
            stages.push(StagePlan {
                filters: f,
                cin,
                in_h,
                in_w,
                h,
                w,
                pool: s.pool,
                out_h,
                out_w,
                z_blocks: groups.div_ceil(GROUPS_PER_BLOCK) as u32,
                threads: PIXEL_GROUPS * in_block as u32,
                chunk_x,
                chunk_h,
                smem: (chunk_x.max(chunk_h) * per_channel) as u32,
                kernel: upload(&pack_weights(&s.lstm.kernel, cin, f))?,
                recurrent: upload(&pack_weights(&s.lstm.recurrent, f, f))?,
                norm,
                h0: Growable::new(&backend, 0)?,
                h1: Growable::new(&backend, 0)?,
                c: Growable::new(&backend, 0)?,
                input: Growable::new(&backend, 0)?,
            });
            (in_h, in_w) = (out_h, out_w);
        }
        let dense = {
            let mut b = backend.alloc(model.head.weights.len())?;
            backend.upload(&mut b, 0, &model.head.weights)?;
            b
        };
        Ok(KernelEngine {
            slices: Growable::new(&backend, 0)?,
            zx: Growable::new(&backend, 0)?,
            batch: Growable::new(&backend, 0)?,
            out: Growable::new(&backend, 0)?,
            dense,
            model,
            backend,
            stages,
            zero: Vec::new(),
            in_h1: Vec::new(),
            macs: 0,
            desc: Vec::new(),
        })
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    fn slice_len(&self) -> usize {
        let i = self.model.input;
        i.height * i.width * i.channels
    }

    fn check_slice(&self, slice: &[f32]) -> Result<()> {
        super::check_slice(&self.model, slice)
    }

    /// Writes the batch descriptor for `entries` (slot, group) and uploads it.
    fn upload_batch(&mut self, entries: &[(Slot, usize)]) -> Result<()> {
        let n = entries.len();
        self.desc.clear();
        let bits = |v: i32| f32::from_bits(v as u32);
        self.desc
            .extend(entries.iter().map(|&(s, _)| bits(s as i32)));
        self.desc.extend(entries.iter().map(|&(s, _)| {
            bits(
                if self.zero[s] { FLAG_ZERO } else { 0 }
                    | if self.in_h1[s] { FLAG_IN_H1 } else { 0 },
            )
        }));
        self.desc
            .extend(entries.iter().map(|&(_, g)| bits(g as i32)));
        self.batch.ensure(&self.backend, 3 * n, 0)?;
        self.backend.upload(&mut self.batch.buf, 0, &self.desc)
    }

    /// Launches the first stage's input convolution of the uploaded slices into `zx`.
    fn launch_input_conv(&mut self, groups: usize) -> Result<()> {
        let p = &self.stages[0];
        let params = InputConvParams {
            x: self.backend.addr(&self.slices.buf),
            weights: self.backend.addr(&p.kernel),
            zx: self.backend.addr(&self.zx.buf),
            in_h: p.in_h as i32,
            in_w: p.in_w as i32,
            cin: p.cin as i32,
            filters: p.filters as i32,
            out_h: p.h as i32,
            out_w: p.w as i32,
            chunk: p.chunk_x as i32,
            pad: 0,
        };
        self.backend.launch(
            Kernel::InputConv,
            [p.tiles(), groups as u32, p.z_blocks],
            p.threads,
            p.smem,
            &params,
        )
    }

    /// Several batched steps in one set of launches: each group's slots advance by that
    /// group's slice (e.g. one group per camera, all in the same phase). Slots must be
    /// distinct across all groups. `step(slice, slots)` is the one-group case.
    pub fn step_groups(&mut self, groups: &[(&[f32], &[Slot])]) -> Result<()> {
        let all: Vec<Slot> = groups.iter().flat_map(|(_, s)| s.iter().copied()).collect();
        check_slots(&all, self.zero.len())?;
        for (slice, _) in groups {
            self.check_slice(slice)?;
        }
        // Groups without slots need no input convolution.
        let used: Vec<&(&[f32], &[Slot])> = groups.iter().filter(|(_, s)| !s.is_empty()).collect();
        let entries: Vec<(Slot, usize)> = used
            .iter()
            .enumerate()
            .flat_map(|(g, (_, slots))| slots.iter().map(move |&s| (s, g)))
            .collect();
        let n = entries.len();
        if n == 0 {
            return Ok(());
        }
        if n > MAX_ENTRIES || used.len() > MAX_ENTRIES {
            return Err(Error::Engine(format!(
                "{n} states in one step; the CUDA engine takes at most {MAX_ENTRIES}"
            )));
        }
        let slice_len = self.slice_len();
        let (f0, map0) = (self.stages[0].filters, self.stages[0].h * self.stages[0].w);
        self.slices
            .ensure(&self.backend, used.len() * slice_len, 0)?;
        for (g, (slice, _)) in used.iter().enumerate() {
            self.backend
                .upload(&mut self.slices.buf, g * slice_len, slice)?;
        }
        self.zx
            .ensure(&self.backend, used.len() * 4 * f0 * map0, 0)?;
        for k in 1..self.stages.len() {
            let s = &mut self.stages[k];
            let len = n * s.cin * s.in_h * s.in_w;
            s.input.ensure(&self.backend, len, 0)?;
        }
        self.upload_batch(&entries)?;
        self.launch_input_conv(used.len())?;
        let be = &self.backend;
        let batch = be.addr(&self.batch.buf);
        for k in 0..self.stages.len() {
            let p = &self.stages[k];
            let params = StepParams {
                zx: if k == 0 { be.addr(&self.zx.buf) } else { 0 },
                x: if k == 0 { 0 } else { be.addr(&p.input.buf) },
                kernel: be.addr(&p.kernel),
                recurrent: be.addr(&p.recurrent),
                h0: be.addr(&p.h0.buf),
                h1: be.addr(&p.h1.buf),
                c: be.addr(&p.c.buf),
                batch,
                entries: n as i32,
                h: p.h as i32,
                w: p.w as i32,
                filters: p.filters as i32,
                cin: p.cin as i32,
                chunk_x: p.chunk_x as i32,
                chunk_h: p.chunk_h as i32,
                pad: 0,
            };
            be.launch(
                Kernel::LstmStep,
                [p.tiles(), n as u32, p.z_blocks],
                p.threads,
                p.smem,
                &params,
            )?;
            if let Some(next) = self.stages.get(k + 1) {
                let (scale, shift) = p
                    .norm
                    .as_ref()
                    .map_or((0, 0), |(a, b)| (be.addr(a), be.addr(b)));
                let params = PoolNormParams {
                    h0: be.addr(&p.h0.buf),
                    h1: be.addr(&p.h1.buf),
                    batch,
                    scale,
                    shift,
                    out: be.addr(&next.input.buf),
                    entries: n as i32,
                    h: p.h as i32,
                    w: p.w as i32,
                    filters: p.filters as i32,
                    pool: p.pool as i32,
                    out_h: p.out_h as i32,
                    out_w: p.out_w as i32,
                    pad: 0,
                };
                let blocks = (p.filters * p.out_h * p.out_w).div_ceil(256) as u32;
                be.launch(Kernel::PoolNorm, [blocks, n as u32, 1], 256, 0, &params)?;
            }
        }
        // Work done: the first input convolution once per slice, later stages' input
        // convolutions per state, recurrent convolutions for the states that were not zero.
        let nonzero = entries.iter().filter(|&&(s, _)| !self.zero[s]).count() as u64;
        for k in 0..self.stages.len() {
            let (input, recurrent) = self.model.stage_macs(k);
            let inputs = if k == 0 { used.len() } else { n } as u64;
            self.macs += input * inputs + recurrent * nonzero;
        }
        for &(s, _) in &entries {
            self.zero[s] = false;
            self.in_h1[s] = !self.in_h1[s];
        }
        Ok(())
    }

    /// The first stage's input pre-activations `conv3x3_valid(slice, K)` as the kernels
    /// compute them, channel-last `[y][x][4F]` (for checks against the CPU engines).
    pub fn input_preactivations(&mut self, slice: &[f32]) -> Result<Vec<f32>> {
        self.check_slice(slice)?;
        let p = &self.stages[0];
        let len = 4 * p.filters * p.h * p.w;
        self.slices.ensure(&self.backend, slice.len(), 0)?;
        self.backend.upload(&mut self.slices.buf, 0, slice)?;
        self.zx.ensure(&self.backend, len, 0)?;
        self.launch_input_conv(1)?;
        let zx = self.backend.download(&self.zx.buf, 0, len)?;
        Ok(to_channel_last(&zx, 4 * self.stages[0].filters))
    }

    fn check_state(&self, slot: Slot, stage: usize) -> Result<()> {
        if slot >= self.zero.len() || stage >= self.stages.len() {
            return Err(Error::Engine(format!(
                "no state for slot {slot} stage {stage}"
            )));
        }
        Ok(())
    }
}

impl<B: Backend> Engine for KernelEngine<B> {
    fn name(&self) -> String {
        self.backend.describe()
    }

    fn model(&self) -> &Model {
        &self.model
    }

    fn alloc_states(&mut self, n: usize) -> Result<Range<Slot>> {
        let start = self.zero.len();
        let total = start + n;
        for s in &mut self.stages {
            let (keep, len) = (start * s.state_len(), total * s.state_len());
            s.h0.ensure(&self.backend, len, keep)?;
            s.h1.ensure(&self.backend, len, keep)?;
            s.c.ensure(&self.backend, len, keep)?;
        }
        self.zero.resize(total, true);
        self.in_h1.resize(total, false);
        Ok(start..total)
    }

    fn slots(&self) -> usize {
        self.zero.len()
    }

    fn reset(&mut self, slot: Slot) {
        self.zero[slot] = true;
    }

    fn step(&mut self, slice: &[f32], slots: &[Slot]) -> Result<()> {
        self.step_groups(&[(slice, slots)])
    }

    fn step_groups(&mut self, groups: &[(&[f32], &[Slot])]) -> Result<()> {
        KernelEngine::step_groups(self, groups)
    }

    fn head(&mut self, slots: &[Slot]) -> Result<Vec<f32>> {
        check_slots(slots, self.zero.len())?;
        let n = slots.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        if n > MAX_ENTRIES {
            return Err(Error::Engine(format!(
                "{n} heads at once; the CUDA engine takes at most {MAX_ENTRIES}"
            )));
        }
        let entries: Vec<(Slot, usize)> = slots.iter().map(|&s| (s, 0)).collect();
        self.upload_batch(&entries)?;
        self.out.ensure(&self.backend, n, 0)?;
        let be = &self.backend;
        let p = self.stages.last().expect("a model has stages");
        let (scale, shift) = p
            .norm
            .as_ref()
            .map_or((0, 0), |(a, b)| (be.addr(a), be.addr(b)));
        let params = HeadParams {
            h0: be.addr(&p.h0.buf),
            h1: be.addr(&p.h1.buf),
            batch: be.addr(&self.batch.buf),
            scale,
            shift,
            dense: be.addr(&self.dense),
            out: be.addr(&self.out.buf),
            entries: n as i32,
            h: p.h as i32,
            w: p.w as i32,
            filters: p.filters as i32,
            pool: p.pool as i32,
            pad: 0,
            bias: self.model.head.bias,
            pad2: 0.0,
        };
        be.launch(Kernel::Head, [n as u32, 1, 1], HEAD_THREADS, 0, &params)?;
        be.download(&self.out.buf, 0, n)
    }

    fn macs_done(&self) -> u64 {
        self.macs
    }

    fn read_state(&self, slot: Slot, stage: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        self.check_state(slot, stage)?;
        let p = &self.stages[stage];
        let n = p.state_len();
        if self.zero[slot] {
            return Ok((vec![0.0; n], vec![0.0; n]));
        }
        let h = if self.in_h1[slot] {
            &p.h1.buf
        } else {
            &p.h0.buf
        };
        let h = self.backend.download(h, slot * n, n)?;
        let c = self.backend.download(&p.c.buf, slot * n, n)?;
        Ok((
            to_channel_last(&h, p.filters),
            to_channel_last(&c, p.filters),
        ))
    }

    fn write_state(&mut self, slot: Slot, stage: usize, h: &[f32], c: &[f32]) -> Result<()> {
        self.check_state(slot, stage)?;
        let n = self.stages[stage].state_len();
        if h.len() != n || c.len() != n {
            return Err(Error::Engine(format!(
                "state of {} / {} values; expected {n}",
                h.len(),
                c.len()
            )));
        }
        let cur_h1 = self.in_h1[slot];
        if self.zero[slot] {
            // Make the zero that the flag stood for real in every stage.
            for s in &mut self.stages {
                let len = s.state_len();
                let zeros = vec![0.0; len];
                let hb = if cur_h1 { &mut s.h1.buf } else { &mut s.h0.buf };
                self.backend.upload(hb, slot * len, &zeros)?;
                self.backend.upload(&mut s.c.buf, slot * len, &zeros)?;
            }
            self.zero[slot] = false;
        }
        let s = &mut self.stages[stage];
        let f = s.filters;
        let hb = if cur_h1 { &mut s.h1.buf } else { &mut s.h0.buf };
        self.backend.upload(hb, slot * n, &to_planar(h, f))?;
        self.backend
            .upload(&mut s.c.buf, slot * n, &to_planar(c, f))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_puts_each_weight_where_the_kernels_read_it() {
        let (cin, f) = (3, 5);
        let hwio: Vec<f32> = (0..9 * cin * 4 * f).map(|v| v as f32 + 1.0).collect();
        let packed = pack_weights(&hwio, cin, f);
        let groups = 2;
        for tap in 0..9 {
            for ci in 0..cin {
                for gate in 0..4 {
                    for k in 0..8 {
                        let v = packed[((tap * cin + ci) * groups + k / 4) * 16 + gate * 4 + k % 4];
                        let want = if k < f {
                            hwio[(tap * cin + ci) * 4 * f + gate * f + k]
                        } else {
                            0.0
                        };
                        assert_eq!(v, want);
                    }
                }
            }
        }
    }

    #[test]
    fn chunks_fit_the_shared_memory_budget_and_are_even() {
        for groups in 1..=4 {
            for channels in 1..=64 {
                let (chunk, per) = chunking(channels, groups);
                assert!(
                    chunk * per <= SMEM_BUDGET,
                    "{channels} channels, {groups} groups"
                );
                let chunks = channels.div_ceil(chunk);
                assert!(
                    chunk * chunks - channels < chunks,
                    "{channels}: chunks of {chunk}"
                );
            }
        }
        assert_eq!(chunking(16, 4).0, 8);
        assert_eq!(chunking(4, 4).0, 4);
    }

    #[test]
    fn planar_round_trip() {
        let v: Vec<f32> = (0..5 * 3).map(|x| x as f32).collect();
        let p = to_planar(&v, 3);
        assert_eq!(p[0..5], [0.0, 3.0, 6.0, 9.0, 12.0]);
        assert_eq!(to_channel_last(&p, 3), v);
    }
}
