//! Winograd's minimal filtering (Lavin and Gray, "Fast Algorithms for Convolutional Neural
//! Networks", 2016) for the convolutions of a state's old h (and, in the same products, the
//! input's): F(2x2, 3x3), a 2x2 tile of outputs from a 4x4 patch in 16 multiplies per
//! channel pair instead of 36 (2.25x fewer), or F(4x4, 3x3), a 4x4 tile from a 6x6 patch in
//! 36 instead of 144 (4x fewer).
//!
//! Per tile and channel the patch `d` becomes `V = Bᵀ d B` (adds, and multiplies by small
//! powers of two and 5 for F(4x4)); per channel pair the 3x3 kernel `g` was made `U = G g
//! Gᵀ` once, at packing (in f64, then rounded). Then for each position ξ of the patch the
//! outputs' `M[ξ] = Σ_c V[ξ][c] U[ξ][c]`: a `[tiles][channels] x [channels][outputs]`
//! product ([`Kernels::products`]). The output transform `Y = Aᵀ M A` gives the tile's
//! outputs. F(2x2)'s transforms are exact in binary (0, ±1, ±1/2), so its rounding is of
//! the order of the direct sum's; F(4x4)'s G has 1/6, 1/12 and 1/24 and its Aᵀ multiplies
//! by up to 8, so its error is larger (the README has both, measured).
//!
//! Both sources of a step (the old h "same", bordered, and the input "valid") read a
//! pixel's 3x3 neighbourhood at the same offsets, so their patches are taken at the same
//! places and their channels share one product (`[h channels | x channels]`).
//!
//! The work is done in chunks of [`TILE`] tiles of one tile row, small enough to stay in the
//! caches between the transforms and the products; each thread keeps its chunks' working
//! memory from one call to the next.

use std::cell::RefCell;
use std::ops::Range;

use super::kernels::{Kernels, Patch, Products, WeightRow, Winograd, BLOCK, TILE};

/// The transformed kernels of one stage, `[ξ][block][h channels | x channels]` rows of 16
/// outputs, zero past the stage's outputs: `U = G g Gᵀ` per channel pair.
pub fn pack(
    f: Winograd,
    recurrent: &[f32],
    filters: usize,
    kernel: &[f32],
    cin: usize,
    cout: usize,
) -> Vec<WeightRow> {
    let blocks = cout.div_ceil(BLOCK);
    let k = filters + cin;
    let (alpha, g_mat) = (f.alpha(), f.g());
    let mut out = vec![WeightRow::default(); f.xis() * blocks * k];
    // HWIO: tap (ky, kx), input channel ci, output o at [(tap * channels + ci) * cout + o].
    let sources = [(recurrent, filters, 0), (kernel, cin, filters)];
    for (w, channels, offset) in sources {
        for ci in 0..channels {
            for o in 0..cout {
                let g =
                    |ky: usize, kx: usize| f64::from(w[((ky * 3 + kx) * channels + ci) * cout + o]);
                // G g Gᵀ: (α x 3)(3 x 3)(3 x α).
                for a in 0..alpha {
                    for b in 0..alpha {
                        let mut u = 0.0;
                        for (ky, &ga) in g_mat[a].iter().enumerate() {
                            for (kx, &gb) in g_mat[b].iter().enumerate() {
                                u += ga * g(ky, kx) * gb;
                            }
                        }
                        let (blk, j) = (o / BLOCK, o % BLOCK);
                        out[((a * alpha + b) * blocks + blk) * k + offset + ci].0[j] = u as f32;
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

impl Map<'_> {
    /// The `alpha`-square patch at (y, x): read in place when it lies inside the map,
    /// otherwise copied into `edge` with zeros past the map (only outputs past the map's
    /// edge use those, and they are dropped).
    fn patch<'b>(&'b self, alpha: usize, y: usize, x: usize, edge: &'b mut [f32]) -> Patch<'b> {
        let ch = self.channels;
        if y + alpha <= self.rows && x + alpha <= self.cols {
            return Patch {
                data: self.data,
                start: (y * self.cols + x) * ch,
                row_stride: self.cols * ch,
                channels: ch,
            };
        }
        let edge = &mut edge[..alpha * alpha * ch];
        for i in 0..alpha {
            for j in 0..alpha {
                let dst = &mut edge[(i * alpha + j) * ch..][..ch];
                let (py, px) = (y + i, x + j);
                if py < self.rows && px < self.cols {
                    dst.copy_from_slice(&self.data[(py * self.cols + px) * ch..][..ch]);
                } else {
                    dst.fill(0.0);
                }
            }
        }
        Patch {
            data: edge,
            start: 0,
            row_stride: alpha * ch,
            channels: ch,
        }
    }
}

/// What one stage's Winograd convolution reads.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    pub f: Winograd,
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

/// A thread's working memory for its chunks: the transformed patches `[ξ][tile][channel]`,
/// the products `[ξ][tile][output]`, the chunk's outputs `[row][pixel][output]`, and a patch
/// copied from a map's edge.
#[derive(Default)]
struct Work {
    v: Vec<f32>,
    m: Vec<f32>,
    z: Vec<f32>,
    edge: Vec<f32>,
}

thread_local! {
    /// Kept from one call to the next: allocating and zeroing it per call of [`rows`] (one
    /// per job of a few rows) would cost as much as a tenth of the job.
    static WORK: RefCell<Work> = RefCell::default();
}

/// The outputs of rows `rows` of the output map (`rows.start` a multiple of the tile's
/// side), in chunks: `emit(y, x0, n, z)` gets row y's pixels `x0 .. x0 + n` as
/// `z[pixel][zs]` (sums of both sources' convolutions, nothing else added; its own to
/// change).
pub fn rows<K: Kernels>(
    k: K,
    s: Sources,
    rows: Range<usize>,
    mut emit: impl FnMut(usize, usize, usize, &mut [f32]),
) {
    let f = s.f;
    let (r, alpha, xis) = (f.r(), f.alpha(), f.xis());
    let (fh, fx) = (s.h.channels, s.x.map_or(0, |x| x.channels));
    let kk = fh + fx;
    let zs = s.blocks * BLOCK;
    let tiles = s.w.div_ceil(r);
    let z_row = r * TILE * zs;
    WORK.with(|work| {
        let mut work = work.borrow_mut();
        let Work { v, m, z, edge } = &mut *work;
        v.resize(xis * TILE * kk, 0.0);
        m.resize(xis * TILE * zs, 0.0);
        z.resize(r * z_row, 0.0);
        edge.resize(alpha * alpha * fh.max(fx), 0.0);
        let mut y = rows.start;
        while y < rows.end {
            let n_rows = (rows.end - y).min(r);
            for t0 in (0..tiles).step_by(TILE) {
                let mt = TILE.min(tiles - t0);
                for ti in 0..mt {
                    let x0 = r * (t0 + ti);
                    let at = ti * kk;
                    k.winograd_in(f, s.h.patch(alpha, y, x0, edge), &mut v[at..], TILE * kk);
                    if let Some(x) = &s.x {
                        let d = x.patch(alpha, y, x0, edge);
                        k.winograd_in(f, d, &mut v[at + fh..], TILE * kk);
                    }
                }
                let products = Products {
                    xis,
                    tiles: mt,
                    channels: kk,
                    v,
                    u: s.u,
                    packed: s.packed,
                    blocks: s.blocks,
                };
                k.products(products, m);
                for ti in 0..mt {
                    k.winograd_out(
                        f,
                        &m[ti * zs..],
                        TILE * zs,
                        zs,
                        &mut z[ti * r * zs..],
                        z_row,
                    );
                }
                let px = (r * mt).min(s.w - r * t0);
                for i in 0..n_rows {
                    emit(y + i, r * t0, px, &mut z[i * z_row..][..px * zs]);
                }
            }
            y += r;
        }
    });
}
