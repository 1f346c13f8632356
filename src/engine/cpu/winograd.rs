//! Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for
//! Convolutional Neural Networks", 2016) for the convolutions of a state's old h (and, in
//! the same products, the input's): a 2x2 tile of outputs from a 4x4 patch of the source
//! in 16 multiplies per channel pair instead of 36, 2.25x fewer.
//!
//! Per tile and channel the 4x4 patch `d` becomes `V = Bᵀ d B` (adds only); per channel
//! pair the 3x3 kernel `g` was made `U = G g Gᵀ` once, at packing. Then for each of the 16
//! positions ξ the outputs' `M[ξ] = Σ_c V[ξ][c] U[ξ][c]`, a `[tiles][channels] x
//! [channels][outputs]` product that runs on the same register tile as the direct
//! convolution (`ConvSrc` with one tap). The output transform `Y = Aᵀ M A` (adds only)
//! gives the 2x2 outputs. The transforms' entries are 0, ±1 and ±1/2, exact in binary, so
//! the rounding is of the same order as the direct sum's.
//!
//! Both sources of a step (the old h "same", bordered, and the input "valid") read a
//! pixel's 3x3 neighbourhood at the same offsets, so their patches are taken at the same
//! places and their channels share one product (`[h channels | x channels]`).
//!
//! The work is done in chunks of [`TILE`] tiles (two rows of 12 pixels), small enough to
//! stay in the L1 cache between the transforms and the products.

use std::ops::Range;

use super::kernels::{ConvSrc, Kernels, WeightRow, BLOCK, TILE};

/// Positions of a tile's transform: 4x4.
const XI: usize = 16;

/// The transformed kernels of one stage, `[ξ][block][h channels | x channels]` rows of 16
/// outputs, zero past the stage's outputs: `U = G g Gᵀ` per channel pair.
pub fn pack(
    recurrent: &[f32],
    filters: usize,
    kernel: &[f32],
    cin: usize,
    cout: usize,
) -> Vec<WeightRow> {
    let blocks = cout.div_ceil(BLOCK);
    let k = filters + cin;
    let mut out = vec![WeightRow::default(); XI * blocks * k];
    const G: [[f64; 3]; 4] = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];
    // HWIO: tap (ky, kx), input channel ci, output o at [(tap * channels + ci) * cout + o].
    let sources = [(recurrent, filters, 0), (kernel, cin, filters)];
    for (w, channels, offset) in sources {
        for ci in 0..channels {
            for o in 0..cout {
                let g =
                    |ky: usize, kx: usize| f64::from(w[((ky * 3 + kx) * channels + ci) * cout + o]);
                // G g Gᵀ: (4x3)(3x3)(3x4).
                for a in 0..4 {
                    for b in 0..4 {
                        let mut u = 0.0;
                        for (ky, &ga) in G[a].iter().enumerate() {
                            for (kx, &gb) in G[b].iter().enumerate() {
                                u += ga * g(ky, kx) * gb;
                            }
                        }
                        let (blk, j) = (o / BLOCK, o % BLOCK);
                        out[((a * 4 + b) * blocks + blk) * k + offset + ci].0[j] = u as f32;
                    }
                }
            }
        }
    }
    out
}

/// A channel-last map a patch is read from: `[rows][cols][channels]`.
#[derive(Clone, Copy)]
pub struct Map<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub channels: usize,
}

impl<'a> Map<'a> {
    /// The 4x4 patch at (y, x): zeros where it runs past the map (only outputs past the
    /// map's edge use those, and they are dropped).
    fn patch(&self, y: usize, x: usize, zero: &'a [f32]) -> [&'a [f32]; XI] {
        let (data, ch) = (self.data, self.channels);
        std::array::from_fn(|q| {
            let (py, px) = (y + q / 4, x + q % 4);
            if py < self.rows && px < self.cols {
                &data[(py * self.cols + px) * ch..][..ch]
            } else {
                &zero[..ch]
            }
        })
    }
}

/// What one stage's Winograd convolution reads.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    /// The old h, with its one-pixel zero border.
    pub h: Map<'a>,
    /// The stage's input, when its convolution is done here too.
    pub x: Option<Map<'a>>,
    /// The transformed kernels ([`pack`]).
    pub u: &'a [WeightRow],
    /// Output blocks of 16 (values per output pixel: `blocks * 16`).
    pub blocks: usize,
    /// Output map width.
    pub w: usize,
    /// The channels `u` was packed with (h's then the input's).
    pub packed: usize,
}

/// The outputs of rows `rows` of the output map, in chunks: `emit(y, x0, n, z)` gets row y's
/// pixels `x0 .. x0 + n` as `z[pixel][zs]` (sums of both sources' convolutions, nothing
/// else added; its own to change).
pub fn rows<K: Kernels>(
    k: K,
    s: Sources,
    rows: Range<usize>,
    mut emit: impl FnMut(usize, usize, usize, &mut [f32]),
) {
    let (fh, fx) = (s.h.channels, s.x.map_or(0, |x| x.channels));
    let kk = fh + fx;
    let zs = s.blocks * BLOCK;
    let tiles = s.w.div_ceil(2);
    // A chunk's working memory: `[ξ][tile][channel]`, `[ξ][tile][output]`, and its two
    // rows of outputs `[row][pixel][output]`.
    let mut v = vec![0.0f32; XI * TILE * kk];
    let mut m = vec![0.0f32; XI * TILE * zs];
    let mut z = vec![0.0f32; 2 * 2 * TILE * zs];
    let zero = vec![0.0f32; kk];
    let mut y = rows.start;
    while y < rows.end {
        let two = (rows.end - y).min(2);
        for t0 in (0..tiles).step_by(TILE) {
            let mt = TILE.min(tiles - t0);
            for ti in 0..mt {
                let x0 = 2 * (t0 + ti);
                let at = ti * kk;
                k.winograd_in(&s.h.patch(y, x0, &zero), fh, &mut v[at..], TILE * kk);
                if let Some(x) = &s.x {
                    k.winograd_in(&x.patch(y, x0, &zero), fx, &mut v[at + fh..], TILE * kk);
                }
            }
            for xi in 0..XI {
                let data = &v[xi * TILE * kk..(xi + 1) * TILE * kk];
                for b in 0..s.blocks {
                    let weights = &s.u[(xi * s.blocks + b) * s.packed..][..kk];
                    let src = ConvSrc {
                        data,
                        start: 0,
                        row_stride: 0,
                        cin: kk,
                        taps: 1,
                        weights,
                    };
                    k.block(mt, None, &[src], &mut m[xi * TILE * zs + b * BLOCK..], zs);
                }
            }
            let px = (2 * mt).min(s.w - 2 * t0);
            let (top, bottom) = z.split_at_mut(2 * TILE * zs);
            for ti in 0..mt {
                let (t, b) = (&mut top[2 * ti * zs..], &mut bottom[2 * ti * zs..]);
                k.winograd_out(&m[ti * zs..], TILE * zs, zs, t, b);
            }
            for r in 0..two {
                emit(y + r, 2 * t0, px, &mut z[r * 2 * TILE * zs..][..px * zs]);
            }
        }
        y += 2;
    }
}
