//! The CPU engine's inner kernels, behind one trait so that the loops around them are
//! written once: [`Kernels::tile`], a tile of the implicit-GEMM 3x3 convolution (up to
//! [`TILE`] pixels of one row x every output block of a stage; with one tap, the
//! element-wise products of Winograd's convolution), [`Kernels::gates`], the LSTM cell
//! update of a tile's pixels, and Winograd's input and output transforms
//! ([`Kernels::winograd_in`], [`Kernels::winograd_out`]). [`Portable`] is plain Rust for any
//! CPU; the AVX2/FMA and AVX-512 implementations live in `avx2.rs` and `avx512.rs` and are
//! only constructed after run-time detection.
//!
//! Layouts (all channel-last): a convolution source is a map `[y][x][cin]` read at
//! `data[start + ky * row_stride + (kx + p) * cin + ci]` for pixel p of the tile and tap
//! (ky, kx), so the same code serves the valid input convolution (unpadded input) and the
//! same recurrent convolution (h stored with a zero border). Weights are pre-packed per
//! block of 16 outputs as `[block][ky][kx][ci][16]` (see [`pack_blocks`]).

/// Pixels per tile: 6 pixels x 16 outputs is 12 AVX accumulators, which with two weight
/// registers and one broadcast fills the 16 ymm registers without spilling; 6 pixels x 64
/// outputs is 24 of AVX-512's 32 zmm registers.
pub const TILE: usize = 6;

/// Outputs per block: two 8-lane vectors.
pub const BLOCK: usize = 16;

/// The 16 weights of one input channel for one block of outputs: one 64-byte cache line,
/// aligned so that the SIMD kernel loads it with aligned loads.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[repr(C, align(64))]
pub struct WeightRow(pub [f32; BLOCK]);

/// One source of a convolution tile: a channel-last map and the packed weights of the
/// output blocks being computed.
///
/// With `taps == 1` it is a plain product of `[pixel][cin]` by `[cin][16]` per block (the
/// element-wise stage of a Winograd convolution, `winograd.rs`): the same tile serves both.
#[derive(Debug, Clone, Copy)]
pub struct ConvSrc<'a> {
    pub data: &'a [f32],
    /// Index in `data` of tap (0, 0), channel 0 of the tile's first pixel.
    pub start: usize,
    /// Values per map row.
    pub row_stride: usize,
    /// Channels per pixel (also the distance between neighbouring pixels).
    pub cin: usize,
    /// 9 (a 3x3 convolution) or 1 (a product).
    pub taps: usize,
    /// The first block's weights, `[taps][cin]` rows of 16; block b's start `b *
    /// block_stride` rows further.
    pub weights: &'a [WeightRow],
    pub block_stride: usize,
}

impl ConvSrc<'_> {
    /// No source (a placeholder in arrays of sources).
    pub const NONE: ConvSrc<'static> = ConvSrc {
        data: &[],
        start: 0,
        row_stride: 0,
        cin: 0,
        taps: 9,
        weights: &[],
        block_stride: 0,
    };

    /// Panics unless every value a tile of `m` pixels and `blocks` blocks reads lies
    /// inside the slices; the SIMD kernels rely on it.
    pub fn check(&self, m: usize, blocks: usize) {
        assert!(self.taps == 9 || self.taps == 1, "a tile of 9 or 1 taps");
        let last = match self.taps {
            9 => self.start + 2 * self.row_stride + (m + 1) * self.cin + self.cin,
            _ => self.start + m * self.cin,
        };
        assert!(
            last <= self.data.len(),
            "convolution source read out of bounds"
        );
        assert!(
            blocks >= 1
                && self.block_stride >= self.taps * self.cin
                && self.weights.len() >= (blocks - 1) * self.block_stride + self.taps * self.cin,
            "packed weights too short"
        );
    }

    /// The same source from block `b` on.
    pub fn from_block(&self, b: usize) -> Self {
        ConvSrc {
            weights: &self.weights[b * self.block_stride..],
            ..*self
        }
    }
}

/// Most sources a tile adds up (the input's convolution and the old h's).
pub const MAX_SRCS: usize = 2;

/// Runs `tile(first, n, srcs)` for the groups of at most `group` consecutive blocks of
/// `0..blocks`, with `srcs` moved to the group's first block: how a kernel whose register
/// tile holds `group` blocks covers a stage.
pub fn block_groups(
    srcs: &[ConvSrc],
    blocks: usize,
    group: usize,
    mut tile: impl FnMut(usize, usize, &[ConvSrc]),
) {
    assert!(srcs.len() <= MAX_SRCS, "at most {MAX_SRCS} sources");
    let mut first = 0;
    while first < blocks {
        let n = group.min(blocks - first);
        let moved: [ConvSrc; MAX_SRCS] =
            std::array::from_fn(|i| srcs.get(i).map_or(ConvSrc::NONE, |s| s.from_block(first)));
        tile(first, n, &moved[..srcs.len()]);
        first += n;
    }
}

/// A tile's output pointers for a SIMD kernel, per group of at most `group` blocks: panics
/// unless every value a tile of `m` pixels and `blocks` blocks reads (`init`, every
/// source) and writes (`out`) lies inside its slice, then runs `tile(init, init_stride, n,
/// srcs, out)` for each group with `init` (null when there is none) and `out` at the
/// group's first block and `srcs` moved to it. The SIMD kernels rely on these checks.
#[allow(clippy::too_many_arguments)]
pub fn checked_groups(
    m: usize,
    blocks: usize,
    group: usize,
    init: Option<(&[f32], usize)>,
    srcs: &[ConvSrc],
    out: &mut [f32],
    out_stride: usize,
    mut tile: impl FnMut(*const f32, usize, usize, &[ConvSrc], *mut f32),
) {
    assert!((1..=TILE).contains(&m) && blocks >= 1);
    for s in srcs {
        s.check(m, blocks);
    }
    let (init_ptr, init_stride) = match init {
        Some((v, stride)) => {
            assert!((m - 1) * stride + blocks * BLOCK <= v.len());
            (v.as_ptr(), stride)
        }
        None => (std::ptr::null(), 0),
    };
    assert!((m - 1) * out_stride + blocks * BLOCK <= out.len());
    let out = out.as_mut_ptr();
    block_groups(srcs, blocks, group, |b, n, srcs| {
        let init = if init_ptr.is_null() {
            init_ptr
        } else {
            init_ptr.wrapping_add(b * BLOCK)
        };
        tile(init, init_stride, n, srcs, out.wrapping_add(b * BLOCK));
    });
}

/// Packs an HWIO kernel `[3][3][cin][cout]` into blocks of 16 outputs,
/// `[block][ky][kx][ci]` rows of 16, zero-filling outputs past `cout`.
pub fn pack_blocks(kernel: &[f32], cin: usize, cout: usize) -> Vec<WeightRow> {
    let blocks = cout.div_ceil(BLOCK);
    let mut out = vec![WeightRow::default(); blocks * 9 * cin];
    for b in 0..blocks {
        for tap in 0..9 {
            for ci in 0..cin {
                let row = &mut out[(b * 9 + tap) * cin + ci].0;
                for (j, w) in row.iter_mut().enumerate() {
                    let o = b * BLOCK + j;
                    if o < cout {
                        *w = kernel[(tap * cin + ci) * cout + o];
                    }
                }
            }
        }
    }
    out
}

/// The kernels of the engine.
pub trait Kernels: Copy + Send + Sync {
    /// For pixels `p < m` (m <= TILE), blocks `b < blocks` and outputs `j < 16`:
    /// `out[p * out_stride + 16 b + j] = init[p * init_stride + 16 b + j] (or 0) + sum
    /// over srcs of that source's convolution (block b's weights) at pixel p`.
    fn tile(
        self,
        m: usize,
        blocks: usize,
        init: Option<(&[f32], usize)>,
        srcs: &[ConvSrc],
        out: &mut [f32],
        out_stride: usize,
    );

    /// The LSTM update of `m` pixels from their pre-activations `z[p * zs ..]` (`[i | f | g
    /// | o]`, f each): `c = f*c + i*g` (c taken as zero when `fresh`), `h = o * tanh(c)`,
    /// with `c[p * f ..]` updated in place and `h[p * f ..]` written.
    #[allow(clippy::too_many_arguments)]
    fn gates(
        self,
        m: usize,
        z: &[f32],
        zs: usize,
        f: usize,
        c: &mut [f32],
        h: &mut [f32],
        fresh: bool,
    );

    /// Winograd's input transform `V = Bᵀ d B` of the `f.alpha()`-square patch `d`, every
    /// channel: `v[ξ * xi_stride + c]`.
    fn winograd_in(self, f: Winograd, d: Patch, v: &mut [f32], xi_stride: usize);

    /// Winograd's output transform `Y = Aᵀ M A` of one tile, outputs `0..zs`: from
    /// `m[ξ * stride + o]` to the tile's `f.r()`-square of pixels, pixel (i, j) at
    /// `y[i * y_row + j * zs ..]`.
    fn winograd_out(
        self,
        f: Winograd,
        m: &[f32],
        stride: usize,
        zs: usize,
        y: &mut [f32],
        y_row: usize,
    );

    /// Winograd's element-wise stage of a chunk of tiles (see [`Products`]).
    fn products(self, p: Products, m: &mut [f32]) {
        let zs = p.blocks * BLOCK;
        for xi in 0..p.xis {
            let src = ConvSrc {
                data: &p.v[xi * TILE * p.channels..][..p.tiles * p.channels],
                start: 0,
                row_stride: 0,
                cin: p.channels,
                taps: 1,
                weights: &p.u[xi * p.blocks * p.packed..][..p.blocks * p.packed],
                block_stride: p.packed,
            };
            self.tile(
                p.tiles,
                p.blocks,
                None,
                &[src],
                &mut m[xi * TILE * zs..],
                zs,
            );
        }
    }

    /// `dst[i] += src[i]`.
    fn add(self, dst: &mut [f32], src: &[f32]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d += s;
        }
    }
}

/// Winograd's minimal filtering for a 3x3 kernel (`winograd.rs`): F(2x2, 3x3), a 2x2 tile
/// of outputs from a 4x4 patch, F(3x3, 3x3), 3x3 from 5x5, or F(4x4, 3x3), 4x4 from 6x6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Winograd {
    F2x2,
    F3x3,
    F4x4,
}

impl Winograd {
    /// Outputs per side of a tile.
    pub const fn r(self) -> usize {
        match self {
            Winograd::F2x2 => 2,
            Winograd::F3x3 => 3,
            Winograd::F4x4 => 4,
        }
    }

    /// Patch side: `r + 2`.
    pub const fn alpha(self) -> usize {
        self.r() + 2
    }

    /// Positions ξ of a transformed patch: `alpha²`.
    pub const fn xis(self) -> usize {
        self.alpha() * self.alpha()
    }

    /// G, `alpha x 3`, of `U = G g Gᵀ` (the kernel's transform, done once at packing).
    pub fn g(self) -> &'static [[f64; 3]] {
        match self {
            Winograd::F2x2 => &[
                [1.0, 0.0, 0.0],
                [0.5, 0.5, 0.5],
                [0.5, -0.5, 0.5],
                [0.0, 0.0, 1.0],
            ],
            Winograd::F3x3 => &[
                [2.0, 0.0, 0.0],
                [1.0, 1.0, 1.0],
                [-1.0 / 3.0, 1.0 / 3.0, -1.0 / 3.0],
                [-8.0 / 3.0, -4.0 / 3.0, -2.0 / 3.0],
                [0.0, 0.0, 1.0],
            ],
            Winograd::F4x4 => &[
                [1.0 / 4.0, 0.0, 0.0],
                [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
                [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
                [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
                [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
                [0.0, 0.0, 1.0],
            ],
        }
    }
}

/// A square patch of a channel-last map: pixel (i, j), channel c at `data[start + i *
/// row_stride + j * channels + c]`.
#[derive(Debug, Clone, Copy)]
pub struct Patch<'a> {
    pub data: &'a [f32],
    pub start: usize,
    pub row_stride: usize,
    pub channels: usize,
}

impl Patch<'_> {
    /// Panics unless the `alpha`-square patch lies inside `data`; the SIMD kernels rely on it.
    pub fn check(&self, alpha: usize) {
        let end = self.start + (alpha - 1) * self.row_stride + alpha * self.channels;
        assert!(
            self.channels > 0 && end <= self.data.len(),
            "patch read out of bounds"
        );
    }
}

/// Winograd's element-wise stage of a chunk of `tiles` tiles: for each position ξ, tile t,
/// output o of the `blocks` blocks of 16: `m[ξ * TILE * zs + t * zs + o] = Σ_c v[ξ * TILE *
/// channels + t * channels + c] u[(ξ * blocks + o / 16) * packed + c][o % 16]`, zs = 16
/// blocks: a `[tiles][channels] x [channels][zs]` product per ξ.
#[derive(Debug, Clone, Copy)]
pub struct Products<'a> {
    pub xis: usize,
    pub tiles: usize,
    pub channels: usize,
    /// The transformed patches, `[ξ][TILE][channels]`.
    pub v: &'a [f32],
    /// The transformed kernels, `[ξ][block][packed]` rows of 16 (`packed >= channels`).
    pub u: &'a [WeightRow],
    pub packed: usize,
    pub blocks: usize,
}

impl Products<'_> {
    /// Panics unless every value the products read and write lies inside the slices.
    pub fn check(&self, m: &[f32]) {
        let zs = self.blocks * BLOCK;
        assert!(
            (1..=TILE).contains(&self.tiles)
                && self.blocks >= 1
                && self.channels <= self.packed
                && self.v.len()
                    >= (self.xis - 1) * TILE * self.channels + self.tiles * self.channels
                && self.u.len() >= self.xis * self.blocks * self.packed
                && m.len() >= (self.xis - 1) * TILE * zs + self.tiles * zs,
            "Winograd products out of bounds"
        );
    }
}

/// Winograd's 1-D transforms, written once for any lane type (f32, __m256, __m512): the
/// module that expands it defines `add(a, b)`, `sub(a, b)` and `mul_add(a, k, b) = a + k b`
/// for `$v`, and `$attr` (its target features) is put on each function. The matrices are
/// Lavin and Gray's; their entries (0, ±1, ±2, ±4, ±5, ±8) are exact in binary.
macro_rules! winograd_1d {
    ($v:ty $(, $attr:meta)?) => {
        /// Bᵀ d of F(2, 3): Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
        #[inline]
        $(#[$attr])?
        fn bt2(d: [$v; 4]) -> [$v; 4] {
            [sub(d[0], d[2]), add(d[1], d[2]), sub(d[2], d[1]), sub(d[1], d[3])]
        }

        /// Aᵀ m of F(2, 3): Aᵀ = [1 1 1 0; 0 1 -1 -1].
        #[inline]
        $(#[$attr])?
        fn at2(m: [$v; 4]) -> [$v; 2] {
            [add(add(m[0], m[1]), m[2]), sub(sub(m[1], m[2]), m[3])]
        }

        /// Bᵀ d of F(3, 3) at the points 0, 1, -1, 1/2 and ∞: Bᵀ = [1/2 -1 -1/2 1 0;
        /// 0 -1/2 1/2 1 0; 0 1/2 -3/2 1 0; 0 -1 0 1 0; 0 1/2 -1 -1/2 1].
        #[inline]
        $(#[$attr])?
        fn bt3(d: [$v; 5]) -> [$v; 5] {
            let s31 = sub(d[3], d[1]);
            [
                mul_add(s31, 0.5, sub(d[0], d[2])),
                mul_add(d[3], 0.5, sub(d[2], d[1])),
                mul_add(sub(d[3], d[2]), 0.5, sub(d[1], d[2])),
                s31,
                mul_add(sub(d[4], d[2]), 0.5, sub(d[1], d[3])),
            ]
        }

        /// Aᵀ m of F(3, 3): Aᵀ = [1 1 1 1 0; 0 1 -1 1/2 0; 0 1 1 1/4 1].
        #[inline]
        $(#[$attr])?
        fn at3(m: [$v; 5]) -> [$v; 3] {
            [
                add(add(m[0], m[1]), add(m[2], m[3])),
                mul_add(sub(m[1], m[2]), 0.5, m[3]),
                add(mul_add(add(m[1], m[2]), 0.25, m[3]), m[4]),
            ]
        }

        /// Bᵀ d of F(4, 3): Bᵀ = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
        /// 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1].
        #[inline]
        $(#[$attr])?
        fn bt4(d: [$v; 6]) -> [$v; 6] {
            let (s42, s31) = (sub(d[4], d[2]), sub(d[3], d[1]));
            [
                mul_add(mul_add(d[4], 4.0, d[0]), -5.0, d[2]),
                mul_add(add(d[3], d[4]), -4.0, add(d[1], d[2])),
                mul_add(sub(d[4], d[3]), 4.0, sub(d[1], d[2])),
                mul_add(s42, 2.0, s31),
                mul_add(s42, -2.0, s31),
                mul_add(mul_add(d[5], 4.0, d[1]), -5.0, d[3]),
            ]
        }

        /// Aᵀ m of F(4, 3): Aᵀ = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1].
        #[inline]
        $(#[$attr])?
        fn at4(m: [$v; 6]) -> [$v; 4] {
            let (p12, d12) = (add(m[1], m[2]), sub(m[1], m[2]));
            let (p34, d34) = (add(m[3], m[4]), sub(m[3], m[4]));
            [
                add(add(m[0], p12), p34),
                mul_add(d12, 2.0, d34),
                mul_add(p12, 4.0, p34),
                add(mul_add(d12, 8.0, d34), m[5]),
            ]
        }
    };
}
pub(crate) use winograd_1d;

/// The 2-D transforms, written once for any lane type over the 1-D ones ([`winograd_1d`]):
/// `load(q)` reads pixel q's lanes of the patch (q = i * alpha + j), `store(ξ, v)` writes
/// position ξ; `load_m(ξ)` reads M's position ξ, `store_y(i, j, v)` writes output pixel
/// (i, j). Each expands to a block of code, so that it runs under its caller's target
/// features: the 1-D transform on every column, then on every row.
macro_rules! winograd_2d_in {
    ($f:expr, $zero:expr, $load:expr, $store:expr) => {{
        match $f {
            Winograd::F2x2 => winograd_2d!(4, 4, bt2, $zero, $load, |i, j, v| $store(4 * i + j, v)),
            Winograd::F3x3 => winograd_2d!(5, 5, bt3, $zero, $load, |i, j, v| $store(5 * i + j, v)),
            Winograd::F4x4 => winograd_2d!(6, 6, bt4, $zero, $load, |i, j, v| $store(6 * i + j, v)),
        }
    }};
}
pub(crate) use winograd_2d_in;

/// See [`winograd_2d_in`].
macro_rules! winograd_2d_out {
    ($f:expr, $zero:expr, $load_m:expr, $store_y:expr) => {{
        match $f {
            Winograd::F2x2 => winograd_2d!(4, 2, at2, $zero, $load_m, $store_y),
            Winograd::F3x3 => winograd_2d!(5, 3, at3, $zero, $load_m, $store_y),
            Winograd::F4x4 => winograd_2d!(6, 4, at4, $zero, $load_m, $store_y),
        }
    }};
}
pub(crate) use winograd_2d_out;

/// `T = Xᵀ d X` for an `$a`-square `d` read by `$load(q)` (q = i * $a + j) and a 1-D
/// transform `$t` from `$a` to `$b` values; `$store(i, j, v)` gets the `$b`-square result.
macro_rules! winograd_2d {
    ($a:literal, $b:literal, $t:ident, $zero:expr, $load:expr, $store:expr) => {{
        let mut cols = [[$zero; $a]; $b];
        for j in 0..$a {
            let col = $t(std::array::from_fn(|i| $load($a * i + j)));
            for i in 0..$b {
                cols[i][j] = col[i];
            }
        }
        for (i, row) in cols.into_iter().enumerate() {
            for (j, v) in $t(row).into_iter().enumerate() {
                $store(i, j, v);
            }
        }
    }};
}
pub(crate) use winograd_2d;

fn add(a: f32, b: f32) -> f32 {
    a + b
}

fn sub(a: f32, b: f32) -> f32 {
    a - b
}

/// `a + k b`, rounded twice as the SIMD kernels' FMA rounds once: the portable kernels are
/// a reference within rounding, not bit for bit.
fn mul_add(a: f32, k: f32, b: f32) -> f32 {
    a + k * b
}

winograd_1d!(f32);

/// Winograd's input transform in scalar code, channels `range` (the portable kernel, and
/// the reference of the SIMD ones).
pub fn winograd_in_scalar(
    f: Winograd,
    d: Patch,
    range: std::ops::Range<usize>,
    v: &mut [f32],
    xi_stride: usize,
) {
    let a = f.alpha();
    for c in range {
        let px = |q: usize| d.data[d.start + (q / a) * d.row_stride + (q % a) * d.channels + c];
        winograd_2d_in!(f, 0.0f32, px, |xi: usize, val: f32| v[xi * xi_stride + c] =
            val);
    }
}

/// Winograd's output transform in scalar code, outputs `range`.
pub fn winograd_out_scalar(
    f: Winograd,
    m: &[f32],
    stride: usize,
    zs: usize,
    range: std::ops::Range<usize>,
    y: &mut [f32],
    y_row: usize,
) {
    for o in range {
        let mm = |xi: usize| m[xi * stride + o];
        winograd_2d_out!(f, 0.0f32, mm, |i: usize, j: usize, val: f32| y
            [i * y_row + j * zs + o] =
            val);
    }
}

/// Plain Rust kernels for CPUs without AVX2/FMA (and to test the SIMD ones against).
#[derive(Debug, Clone, Copy, Default)]
pub struct Portable;

impl Kernels for Portable {
    fn winograd_in(self, f: Winograd, d: Patch, v: &mut [f32], xi_stride: usize) {
        winograd_in_scalar(f, d, 0..d.channels, v, xi_stride)
    }

    fn winograd_out(
        self,
        f: Winograd,
        m: &[f32],
        stride: usize,
        zs: usize,
        y: &mut [f32],
        y_row: usize,
    ) {
        winograd_out_scalar(f, m, stride, zs, 0..zs, y, y_row)
    }

    fn tile(
        self,
        m: usize,
        blocks: usize,
        init: Option<(&[f32], usize)>,
        srcs: &[ConvSrc],
        out: &mut [f32],
        out_stride: usize,
    ) {
        block_groups(srcs, blocks, 1, |b, _, srcs| {
            let mut acc = [[0.0f32; BLOCK]; TILE];
            if let Some((init, stride)) = init {
                for (p, a) in acc.iter_mut().enumerate().take(m) {
                    a.copy_from_slice(&init[p * stride + b * BLOCK..][..BLOCK]);
                }
            }
            for s in srcs {
                for tap in 0..s.taps {
                    let (ky, kx) = (tap / 3, tap % 3);
                    let base = s.start + ky * s.row_stride + kx * s.cin;
                    for ci in 0..s.cin {
                        let w = &s.weights[tap * s.cin + ci].0;
                        for (p, a) in acc.iter_mut().enumerate().take(m) {
                            let v = s.data[base + p * s.cin + ci];
                            for (aj, &wj) in a.iter_mut().zip(w) {
                                *aj += v * wj;
                            }
                        }
                    }
                }
            }
            for (p, a) in acc.iter().enumerate().take(m) {
                out[p * out_stride + b * BLOCK..][..BLOCK].copy_from_slice(a);
            }
        });
    }

    fn gates(
        self,
        m: usize,
        z: &[f32],
        zs: usize,
        f: usize,
        c: &mut [f32],
        h: &mut [f32],
        fresh: bool,
    ) {
        for p in 0..m {
            gates_scalar(
                &z[p * zs..],
                f,
                0..f,
                &mut c[p * f..],
                &mut h[p * f..],
                fresh,
            );
        }
    }
}

/// The LSTM update of channels `range` of one pixel, in scalar code (also the tail of the
/// SIMD version when f is not a multiple of 8).
pub fn gates_scalar(
    z: &[f32],
    f: usize,
    range: std::ops::Range<usize>,
    c: &mut [f32],
    h: &mut [f32],
    fresh: bool,
) {
    use crate::engine::hard_sigmoid;
    for k in range {
        let i = hard_sigmoid(z[k]);
        let fg = hard_sigmoid(z[f + k]);
        let g = z[2 * f + k].tanh();
        let o = hard_sigmoid(z[3 * f + k]);
        let old = if fresh { 0.0 } else { c[k] };
        let cn = fg * old + i * g;
        c[k] = cn;
        h[k] = o * cn.tanh();
    }
}

/// Checks a SIMD tanh of `N` lanes (`tanh_n`) against float64 over [-12, 12] in steps of
/// 1/4096 and tiny and special values: within 2e-7 relative and 1.2e-7 absolute.
#[cfg(test)]
pub fn check_tanh<const N: usize>(tanh_n: impl Fn([f32; N]) -> [f32; N]) {
    let mut batch: Vec<f32> = (0..=24 * 4096).map(|i| -12.0 + i as f32 / 4096.0).collect();
    batch.extend([
        0.0, -0.0, 1e-30, -1e-20, 1e-8, 3e-4, 0.6249, 0.625, 0.6251, 9.0, 9.5, 40.0, -1e6,
    ]);
    while !batch.len().is_multiple_of(N) {
        batch.push(0.5);
    }
    let (mut worst_rel, mut worst_abs) = (0.0f64, 0.0f64);
    for ch in batch.chunks_exact(N) {
        let got = tanh_n(ch.try_into().unwrap());
        for (&x, &g) in ch.iter().zip(&got) {
            let want = f64::from(x).tanh();
            let abs = (f64::from(g) - want).abs();
            worst_abs = worst_abs.max(abs);
            if want != 0.0 {
                worst_rel = worst_rel.max(abs / want.abs());
            }
        }
    }
    assert!(worst_rel < 2e-7, "relative error {worst_rel:e}");
    assert!(worst_abs < 1.2e-7, "absolute error {worst_abs:e}");
}
