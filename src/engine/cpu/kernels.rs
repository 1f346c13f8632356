//! The CPU engine's inner kernels, behind one trait so that the loops around them are
//! written once: [`Kernels::block`], a register tile of the implicit-GEMM 3x3 convolution
//! (up to [`TILE`] pixels of one row x 16 outputs; with one tap, the element-wise products
//! of Winograd's convolution), [`Kernels::gates`], the LSTM cell update of a tile's
//! pixels, and Winograd's input and output transforms ([`Kernels::winograd_in`],
//! [`Kernels::winograd_out`]). [`Portable`] is plain Rust for any CPU; the AVX2/FMA
//! implementation lives in `avx2.rs` and is only constructed after run-time detection.
//!
//! Layouts (all channel-last): a convolution source is a map `[y][x][cin]` read at
//! `data[start + ky * row_stride + (kx + p) * cin + ci]` for pixel p of the tile and tap
//! (ky, kx), so the same code serves the valid input convolution (unpadded input) and the
//! same recurrent convolution (h stored with a zero border). Weights are pre-packed per
//! block of 16 outputs as `[ky][kx][ci][16]` (see [`pack_blocks`]).

/// Pixels per register tile: 6 pixels x 16 outputs is 12 AVX accumulators, which with two
/// weight registers and one broadcast fills the 16 ymm registers without spilling.
pub const TILE: usize = 6;

/// Outputs per block: two 8-lane vectors.
pub const BLOCK: usize = 16;

/// The 16 weights of one input channel for one block of outputs: one 64-byte cache line,
/// aligned so that the SIMD kernel loads it with aligned loads.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[repr(C, align(64))]
pub struct WeightRow(pub [f32; BLOCK]);

/// One source of a convolution tile: a channel-last map and the packed weights of the
/// output block being computed.
///
/// With `taps == 1` it is a plain product of `[pixel][cin]` by `[cin][16]` (the element-wise
/// stage of a Winograd convolution, `winograd.rs`): the same register tile serves both.
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
    /// This block's weights, `[taps][cin]` rows of 16.
    pub weights: &'a [WeightRow],
}

impl ConvSrc<'_> {
    /// Panics unless every value a tile of `m` pixels reads lies inside the slices; the
    /// SIMD kernel relies on it.
    pub fn check(&self, m: usize) {
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
            self.weights.len() >= self.taps * self.cin,
            "packed weights too short"
        );
    }
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

/// The two kernels of the engine.
pub trait Kernels: Copy + Send + Sync {
    /// For pixels `p < m` (m <= TILE) and outputs `j < 16`:
    /// `out[p * out_stride + j] = init[p * init_stride + j] (or 0) + sum over srcs of the
    /// 3x3 convolution of that source at pixel p`.
    fn block(
        self,
        m: usize,
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

    /// Winograd's input transform: [`winograd_in_scalar`] over channels `0..ch`.
    fn winograd_in(self, d: &[&[f32]; 16], ch: usize, v: &mut [f32], xi_stride: usize);

    /// Winograd's output transform: [`winograd_out_scalar`] over outputs `0..zs`.
    fn winograd_out(self, m: &[f32], stride: usize, zs: usize, top: &mut [f32], bottom: &mut [f32]);
}

/// `V = Bᵀ d B` of Winograd F(2x2, 3x3) for channels `0..ch` of a 4x4 patch `d` (16
/// pixels, row by row): `v[ξ * xi_stride + c]`. Scalar; the SIMD kernels' reference and
/// tail.
pub fn winograd_in_scalar(
    d: &[&[f32]; 16],
    ch: std::ops::Range<usize>,
    v: &mut [f32],
    xi_stride: usize,
) {
    // Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], on the rows then on the columns.
    let mut t = [[0.0f32; 4]; 4];
    for c in ch {
        for j in 0..4 {
            let (d0, d1, d2, d3) = (d[j][c], d[4 + j][c], d[8 + j][c], d[12 + j][c]);
            t[0][j] = d0 - d2;
            t[1][j] = d1 + d2;
            t[2][j] = d2 - d1;
            t[3][j] = d1 - d3;
        }
        for (i, r) in t.iter().enumerate() {
            let row = [r[0] - r[2], r[1] + r[2], r[2] - r[1], r[1] - r[3]];
            for (j, &val) in row.iter().enumerate() {
                v[(4 * i + j) * xi_stride + c] = val;
            }
        }
    }
}

/// `Y = Aᵀ M A` of Winograd F(2x2, 3x3) for outputs `o` in `range` of one tile: `m[ξ *
/// stride + o]` to the tile's top row (`top[o]`, `top[zs + o]`) and bottom row. Scalar.
pub fn winograd_out_scalar(
    m: &[f32],
    stride: usize,
    zs: usize,
    range: std::ops::Range<usize>,
    top: &mut [f32],
    bottom: &mut [f32],
) {
    // Aᵀ = [1 1 1 0; 0 1 -1 -1].
    for o in range {
        let mm = |xi: usize| m[xi * stride + o];
        let r0: [f32; 4] = std::array::from_fn(|j| mm(j) + mm(4 + j) + mm(8 + j));
        let r1: [f32; 4] = std::array::from_fn(|j| mm(4 + j) - mm(8 + j) - mm(12 + j));
        top[o] = r0[0] + r0[1] + r0[2];
        top[zs + o] = r0[1] - r0[2] - r0[3];
        bottom[o] = r1[0] + r1[1] + r1[2];
        bottom[zs + o] = r1[1] - r1[2] - r1[3];
    }
}

/// Plain Rust kernels for CPUs without AVX2/FMA (and to test the SIMD ones against).
#[derive(Debug, Clone, Copy, Default)]
pub struct Portable;

impl Kernels for Portable {
    fn winograd_in(self, d: &[&[f32]; 16], ch: usize, v: &mut [f32], xi_stride: usize) {
        winograd_in_scalar(d, 0..ch, v, xi_stride)
    }

    fn winograd_out(
        self,
        m: &[f32],
        stride: usize,
        zs: usize,
        top: &mut [f32],
        bottom: &mut [f32],
    ) {
        winograd_out_scalar(m, stride, zs, 0..zs, top, bottom)
    }

    fn block(
        self,
        m: usize,
        init: Option<(&[f32], usize)>,
        srcs: &[ConvSrc],
        out: &mut [f32],
        out_stride: usize,
    ) {
        let mut acc = [[0.0f32; BLOCK]; TILE];
        if let Some((init, stride)) = init {
            for (p, a) in acc.iter_mut().enumerate().take(m) {
                a.copy_from_slice(&init[p * stride..][..BLOCK]);
            }
        }
        for s in srcs {
            for tap in 0..s.taps {
                let (ky, kx) = (tap / 3, tap % 3);
                {
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
        }
        for (p, a) in acc.iter().enumerate().take(m) {
            out[p * out_stride..][..BLOCK].copy_from_slice(a);
        }
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
