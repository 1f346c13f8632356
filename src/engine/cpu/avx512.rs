//! AVX-512 kernels (x86-64 with AVX-512F). [`Avx512`] can only be obtained through
//! [`Avx512::detect`], which checks the CPU at run time, so its safe methods may call the
//! `#[target_feature]` functions.
//!
//! Why a second SIMD path: a core with two 512-bit FMA units does twice the multiply-adds
//! per cycle of AVX2 (measured on the 2-core CI machine, a Xeon with AVX-512: 12
//! independent FMA chains ran at 238-240 GFLOP/s per core in zmm against 125-130 in ymm,
//! `scripts/fma-peak.c`).
//!
//! The convolution tile keeps 6 pixels x 64 outputs (four blocks of 16, one zmm each) in 24
//! of the 32 zmm registers: per input channel it loads the four blocks' 16 weights and
//! issues 24 FMAs, each with one value broadcast from memory. The sums are taken in the
//! same order as the AVX2 and portable kernels (sources, taps, channels), so the three
//! give the same values up to the FMA's single rounding. Channel and output tails use
//! masks, not scalar code. tanh is the AVX2 kernel's Cephes-style tanhf in 16 lanes.

use std::arch::x86_64::*;

use super::kernels::{
    checked_groups, winograd_1d, winograd_2d, winograd_2d_in, winograd_2d_out, ConvSrc, Kernels,
    Patch, Products, Winograd, BLOCK, TILE,
};

const _: () = assert!(TILE == 6, "tile() unrolls exactly 6 pixels");
const _: () = assert!(BLOCK == 16, "a block is one zmm");

/// Blocks of 16 outputs per register tile.
const GROUP: usize = 4;

/// Proof that the CPU has AVX-512F.
#[derive(Debug, Clone, Copy)]
pub struct Avx512(());

impl Avx512 {
    /// `Some` when the CPU running this process supports AVX-512F.
    pub fn detect() -> Option<Avx512> {
        is_x86_feature_detected!("avx512f").then_some(Avx512(()))
    }
}

/// The lanes of a vector of 16 that hold channels `c .. n` (all 16 when n - c >= 16).
fn lanes(c: usize, n: usize) -> __mmask16 {
    let k = n - c;
    if k >= 16 {
        0xffff
    } else {
        (1u16 << k) - 1
    }
}

impl Kernels for Avx512 {
    fn tile(
        self,
        m: usize,
        blocks: usize,
        init: Option<(&[f32], usize)>,
        srcs: &[ConvSrc],
        out: &mut [f32],
        out_stride: usize,
    ) {
        checked_groups(
            m,
            blocks,
            GROUP,
            init,
            srcs,
            out,
            out_stride,
            |init, init_stride, n, srcs, o| {
                macro_rules! dispatch {
                    ($($m:literal),*) => {
                        match (m, n) {
                            $(
                                ($m, 4) => tile::<$m, 4>(init, init_stride, srcs, o, out_stride),
                                ($m, 3) => tile::<$m, 3>(init, init_stride, srcs, o, out_stride),
                                ($m, 2) => tile::<$m, 2>(init, init_stride, srcs, o, out_stride),
                                ($m, _) => tile::<$m, 1>(init, init_stride, srcs, o, out_stride),
                            )*
                            _ => unreachable!("1 <= m <= 6"),
                        }
                    };
                }
                // SAFETY: `self` exists only if AVX-512F was detected; `checked_groups`
                // bounds-checked every offset the kernel reads and writes.
                unsafe { dispatch!(1, 2, 3, 4, 5, 6) }
            },
        );
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
        assert!(
            m == 0 || ((m - 1) * zs + 4 * f <= z.len() && m * f <= c.len() && m * f <= h.len())
        );
        // SAFETY: AVX-512F was detected; the kernel touches z[p*zs .. p*zs + 4f], c and h
        // [p*f .. p*f + f] for p < m (masked at f), all inside the slices by the assertion.
        unsafe { gates(m, z.as_ptr(), zs, f, c.as_mut_ptr(), h.as_mut_ptr(), fresh) };
    }

    fn winograd_in(self, f: Winograd, d: Patch, v: &mut [f32], xi_stride: usize) {
        let (a, ch) = (f.alpha(), d.channels);
        d.check(a);
        assert!((f.xis() - 1) * xi_stride + ch <= v.len());
        // SAFETY: AVX-512F was detected; the patch and `v` hold every offset the kernel
        // reads and writes, by the checks (the channel tail is masked).
        unsafe {
            winograd_in(
                f,
                d.data.as_ptr().wrapping_add(d.start),
                d.row_stride,
                ch,
                v.as_mut_ptr(),
                xi_stride,
            )
        };
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
        let r = f.r();
        assert!(
            zs == 0
                || ((f.xis() - 1) * stride + zs <= m.len() && (r - 1) * y_row + r * zs <= y.len())
        );
        // SAFETY: AVX-512F was detected; the offsets read and written are inside the
        // slices by the assertion (the output tail is masked).
        unsafe { winograd_out(f, m.as_ptr(), stride, zs, y.as_mut_ptr(), y_row) };
    }

    fn products(self, p: Products, m: &mut [f32]) {
        p.check(m);
        // SAFETY: AVX-512F was detected; `Products::check` bounds every read and write.
        unsafe { products(&p, m.as_mut_ptr()) };
    }

    fn add(self, dst: &mut [f32], src: &[f32]) {
        let n = dst.len().min(src.len());
        // SAFETY: AVX-512F was detected; both slices hold `n` values (the tail is masked).
        unsafe { add_to(dst.as_mut_ptr(), src.as_ptr(), n) };
    }
}

/// Winograd's products of a chunk ([`Kernels::products`]): per position ξ, the register
/// tile of the convolution with one tap.
///
/// # Safety
/// AVX-512F must be available; `p` and `m` as `Products::check` requires.
#[target_feature(enable = "avx512f")]
unsafe fn products(p: &Products, m: *mut f32) {
    match p.tiles {
        6 => products_m::<6>(p, m),
        5 => products_m::<5>(p, m),
        4 => products_m::<4>(p, m),
        3 => products_m::<3>(p, m),
        2 => products_m::<2>(p, m),
        _ => products_m::<1>(p, m),
    }
}

/// [`products`] for chunks of `M` tiles.
///
/// # Safety
/// As [`products`], with `p.tiles == M`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn products_m<const M: usize>(p: &Products, m: *mut f32) {
    let zs = p.blocks * BLOCK;
    for xi in 0..p.xis {
        let src = [ConvSrc {
            data: &p.v[xi * TILE * p.channels..],
            start: 0,
            row_stride: 0,
            cin: p.channels,
            taps: 1,
            weights: &p.u[xi * p.blocks * p.packed..],
            block_stride: p.packed,
        }];
        let out = m.wrapping_add(xi * TILE * zs);
        let mut b = 0;
        while b < p.blocks {
            let src = [src[0].from_block(b)];
            let o = out.wrapping_add(b * BLOCK);
            let null = std::ptr::null();
            match p.blocks - b {
                1 => tile::<M, 1>(null, 0, &src, o, zs),
                2 => tile::<M, 2>(null, 0, &src, o, zs),
                3 => tile::<M, 3>(null, 0, &src, o, zs),
                _ => tile::<M, 4>(null, 0, &src, o, zs),
            }
            b += GROUP;
        }
    }
}

/// `dst[i] += src[i]` for i < n.
///
/// # Safety
/// AVX-512F must be available; both pointers valid for `n` values.
#[target_feature(enable = "avx512f")]
unsafe fn add_to(dst: *mut f32, src: *const f32, n: usize) {
    let mut i = 0;
    while i < n {
        let k = lanes(i, n);
        let (d, s) = (dst.wrapping_add(i), src.wrapping_add(i));
        let sum = _mm512_add_ps(_mm512_maskz_loadu_ps(k, d), _mm512_maskz_loadu_ps(k, s));
        _mm512_mask_storeu_ps(d, k, sum);
        i += 16;
    }
}

/// One tile of `M` pixels x `NB` blocks of 16 outputs; see [`Kernels::tile`].
///
/// # Safety
/// AVX-512F must be available; `init` (when not null), every source and `out` must be
/// valid for the offsets a tile of `M` pixels and `NB` blocks reads and writes (checked by
/// the caller).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn tile<const M: usize, const NB: usize>(
    init: *const f32,
    init_stride: usize,
    srcs: &[ConvSrc],
    out: *mut f32,
    out_stride: usize,
) {
    // As in the AVX2 kernel: named accumulators, `wrapping_add`, a `while` over channels
    // and the pixel and block loops unrolled by hand, so that the test profile compiles
    // the same register-resident inner loop as release.
    let zero = _mm512_setzero_ps();
    let (mut a00, mut a01, mut a02, mut a03) = (zero, zero, zero, zero);
    let (mut a10, mut a11, mut a12, mut a13) = (zero, zero, zero, zero);
    let (mut a20, mut a21, mut a22, mut a23) = (zero, zero, zero, zero);
    let (mut a30, mut a31, mut a32, mut a33) = (zero, zero, zero, zero);
    let (mut a40, mut a41, mut a42, mut a43) = (zero, zero, zero, zero);
    let (mut a50, mut a51, mut a52, mut a53) = (zero, zero, zero, zero);
    macro_rules! each {
        ($m:ident) => {
            $m!(0, 0, a00);
            $m!(0, 1, a01);
            $m!(0, 2, a02);
            $m!(0, 3, a03);
            $m!(1, 0, a10);
            $m!(1, 1, a11);
            $m!(1, 2, a12);
            $m!(1, 3, a13);
            $m!(2, 0, a20);
            $m!(2, 1, a21);
            $m!(2, 2, a22);
            $m!(2, 3, a23);
            $m!(3, 0, a30);
            $m!(3, 1, a31);
            $m!(3, 2, a32);
            $m!(3, 3, a33);
            $m!(4, 0, a40);
            $m!(4, 1, a41);
            $m!(4, 2, a42);
            $m!(4, 3, a43);
            $m!(5, 0, a50);
            $m!(5, 1, a51);
            $m!(5, 2, a52);
            $m!(5, 3, a53);
        };
    }
    if !init.is_null() {
        macro_rules! load {
            ($p:literal, $b:literal, $a:ident) => {
                if $p < M && $b < NB {
                    $a = _mm512_loadu_ps(init.wrapping_add($p * init_stride + $b * BLOCK));
                }
            };
        }
        each!(load);
    }
    for s in srcs {
        let cin = s.cin;
        let data = s.data.as_ptr().wrapping_add(s.start);
        // Rows of 16 weights, 64-byte aligned; block b's rows `block_stride` rows further.
        let mut w = s.weights.as_ptr().cast::<f32>();
        let bs = s.block_stride * BLOCK;
        for tap in 0..s.taps {
            // Channel 0 of this tap for pixel 0; pixel p is p * cin further.
            let tap = data.wrapping_add((tap / 3) * s.row_stride + (tap % 3) * cin);
            let mut ci = 0;
            while ci < cin {
                let zero = _mm512_setzero_ps();
                let w0 = if NB > 0 { _mm512_load_ps(w) } else { zero };
                let w1 = if NB > 1 {
                    _mm512_load_ps(w.wrapping_add(bs))
                } else {
                    zero
                };
                let w2 = if NB > 2 {
                    _mm512_load_ps(w.wrapping_add(2 * bs))
                } else {
                    zero
                };
                let w3 = if NB > 3 {
                    _mm512_load_ps(w.wrapping_add(3 * bs))
                } else {
                    zero
                };
                w = w.wrapping_add(BLOCK);
                macro_rules! fma {
                    ($p:literal, $lo:ident, $b1:ident, $b2:ident, $b3:ident) => {
                        if $p < M {
                            let v = _mm512_broadcastss_ps(_mm_load_ss(
                                tap.wrapping_add(cin.wrapping_mul($p).wrapping_add(ci)),
                            ));
                            $lo = _mm512_fmadd_ps(v, w0, $lo);
                            if NB > 1 {
                                $b1 = _mm512_fmadd_ps(v, w1, $b1);
                            }
                            if NB > 2 {
                                $b2 = _mm512_fmadd_ps(v, w2, $b2);
                            }
                            if NB > 3 {
                                $b3 = _mm512_fmadd_ps(v, w3, $b3);
                            }
                        }
                    };
                }
                fma!(0, a00, a01, a02, a03);
                fma!(1, a10, a11, a12, a13);
                fma!(2, a20, a21, a22, a23);
                fma!(3, a30, a31, a32, a33);
                fma!(4, a40, a41, a42, a43);
                fma!(5, a50, a51, a52, a53);
                ci += 1;
            }
        }
    }
    macro_rules! store {
        ($p:literal, $b:literal, $a:ident) => {
            if $p < M && $b < NB {
                _mm512_storeu_ps(out.wrapping_add($p * out_stride + $b * BLOCK), $a);
            }
        };
    }
    each!(store);
}

/// The LSTM update of `m` pixels, 16 channels at a time (the last ones masked).
///
/// # Safety
/// AVX-512F must be available; `z` valid for `(m-1)*zs + 4f` reads, `c` and `h` for
/// `m*f` values.
#[target_feature(enable = "avx512f")]
unsafe fn gates(
    m: usize,
    z: *const f32,
    zs: usize,
    f: usize,
    c: *mut f32,
    h: *mut f32,
    fresh: bool,
) {
    // Two passes, as in the AVX2 kernel, so that each iteration holds one tanh.
    for p in 0..m {
        let zp = z.wrapping_add(p * zs);
        let cp = c.wrapping_add(p * f);
        for j in (0..f).step_by(16) {
            let k = lanes(j, f);
            let ld = |q: *const f32| _mm512_maskz_loadu_ps(k, q);
            let i = hard_sigmoid(ld(zp.wrapping_add(j)));
            let fg = hard_sigmoid(ld(zp.wrapping_add(f + j)));
            let g = tanh(ld(zp.wrapping_add(2 * f + j)));
            let old = if fresh {
                _mm512_setzero_ps()
            } else {
                ld(cp.wrapping_add(j))
            };
            let cn = _mm512_fmadd_ps(fg, old, _mm512_mul_ps(i, g));
            _mm512_mask_storeu_ps(cp.wrapping_add(j), k, cn);
        }
    }
    for p in 0..m {
        let zp = z.wrapping_add(p * zs);
        let cp = c.wrapping_add(p * f);
        let hp = h.wrapping_add(p * f);
        for j in (0..f).step_by(16) {
            let k = lanes(j, f);
            let o = hard_sigmoid(_mm512_maskz_loadu_ps(k, zp.wrapping_add(3 * f + j)));
            let cn = _mm512_maskz_loadu_ps(k, cp.wrapping_add(j));
            _mm512_mask_storeu_ps(hp.wrapping_add(j), k, _mm512_mul_ps(o, tanh(cn)));
        }
    }
}

/// `clip(0.2 x + 0.5, 0, 1)`, Keras 2.3's hard sigmoid.
#[inline]
#[target_feature(enable = "avx512f")]
fn hard_sigmoid(x: __m512) -> __m512 {
    let y = _mm512_fmadd_ps(x, _mm512_set1_ps(0.2), _mm512_set1_ps(0.5));
    _mm512_min_ps(_mm512_max_ps(y, _mm512_setzero_ps()), _mm512_set1_ps(1.0))
}

/// tanh in 16 lanes: the AVX2 kernel's (`avx2::tanh`), an odd polynomial for |x| < 0.625,
/// otherwise `1 - 2 / (exp(2|x|) + 1)` with the sign restored; |x| clamped at 9.
#[inline]
#[target_feature(enable = "avx512f")]
pub fn tanh(x: __m512) -> __m512 {
    let ax = _mm512_min_ps(_mm512_abs_ps(x), _mm512_set1_ps(9.0));
    let z = _mm512_mul_ps(x, x);
    let mut p = _mm512_set1_ps(-5.704_988_7e-3);
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(2.063_909e-2));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-5.373_971_6e-2));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(1.333_144_2e-1));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-3.333_328e-1));
    let small = _mm512_fmadd_ps(_mm512_mul_ps(p, z), x, x);
    let e = exp(_mm512_add_ps(ax, ax));
    let t = _mm512_sub_ps(
        _mm512_set1_ps(1.0),
        _mm512_div_ps(_mm512_set1_ps(2.0), _mm512_add_ps(e, _mm512_set1_ps(1.0))),
    );
    // The sign of x onto t (t >= 0): integer ops, as float and/or need AVX-512DQ.
    let sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(i32::MIN));
    let large = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), sign));
    let is_small = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(ax, _mm512_set1_ps(0.625));
    _mm512_mask_blend_ps(is_small, large, small)
}

/// e^x for 0 <= x <= 18, as the AVX2 kernel's (`avx2::exp`).
#[inline]
#[target_feature(enable = "avx512f")]
fn exp(x: __m512) -> __m512 {
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
    let mut y = _mm512_set1_ps(1.987_569_1e-4);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.398_199_9e-3));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.333_452e-3));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.166_579_6e-2));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.666_666_5e-1));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(0.5));
    y = _mm512_fmadd_ps(
        y,
        _mm512_mul_ps(r, r),
        _mm512_add_ps(r, _mm512_set1_ps(1.0)),
    );
    let pow2 = _mm512_slli_epi32::<23>(_mm512_add_epi32(
        _mm512_cvtps_epi32(n),
        _mm512_set1_epi32(127),
    ));
    _mm512_mul_ps(y, _mm512_castsi512_ps(pow2))
}

#[inline]
#[target_feature(enable = "avx512f")]
fn add(a: __m512, b: __m512) -> __m512 {
    _mm512_add_ps(a, b)
}

#[inline]
#[target_feature(enable = "avx512f")]
fn sub(a: __m512, b: __m512) -> __m512 {
    _mm512_sub_ps(a, b)
}

/// `a + k b`.
#[inline]
#[target_feature(enable = "avx512f")]
fn mul_add(a: __m512, k: f32, b: __m512) -> __m512 {
    _mm512_fmadd_ps(_mm512_set1_ps(k), b, a)
}

winograd_1d!(__m512, target_feature(enable = "avx512f"));

/// Winograd's input transform (see `kernels::winograd_in_scalar`), 16 channels at a time:
/// patch pixel (i, j) channel c at `d[i * row_stride + j * ch + c]`.
///
/// # Safety
/// AVX-512F must be available; `d` valid for the patch's reads, `v` for writes at
/// `ξ * xi_stride + c`, c < ch.
#[target_feature(enable = "avx512f")]
unsafe fn winograd_in(
    f: Winograd,
    d: *const f32,
    row_stride: usize,
    ch: usize,
    v: *mut f32,
    xi_stride: usize,
) {
    let a = f.alpha();
    let mut c = 0;
    while c < ch {
        let k = lanes(c, ch);
        let load = |q: usize| {
            _mm512_maskz_loadu_ps(k, d.wrapping_add((q / a) * row_stride + (q % a) * ch + c))
        };
        let store = |xi: usize, val: __m512| {
            _mm512_mask_storeu_ps(v.wrapping_add(xi * xi_stride + c), k, val)
        };
        winograd_2d_in!(f, _mm512_setzero_ps(), load, store);
        c += 16;
    }
}

/// Winograd's output transform (see `kernels::winograd_out_scalar`), 16 outputs at a time.
///
/// # Safety
/// AVX-512F must be available; `m` valid for reads at `ξ * stride + o`, `y` for writes at
/// `i * y_row + j * zs + o`, o < zs.
#[target_feature(enable = "avx512f")]
unsafe fn winograd_out(
    f: Winograd,
    m: *const f32,
    stride: usize,
    zs: usize,
    y: *mut f32,
    y_row: usize,
) {
    let mut o = 0;
    while o < zs {
        let k = lanes(o, zs);
        let load_m = |xi: usize| _mm512_maskz_loadu_ps(k, m.wrapping_add(xi * stride + o));
        let store_y = |i: usize, j: usize, val: __m512| {
            _mm512_mask_storeu_ps(y.wrapping_add(i * y_row + j * zs + o), k, val)
        };
        winograd_2d_out!(f, _mm512_setzero_ps(), load_m, store_y);
        o += 16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tanh_is_accurate() {
        if Avx512::detect().is_none() {
            return;
        }
        super::super::kernels::check_tanh(|v: [f32; 16]| {
            let mut out = [0.0f32; 16];
            // SAFETY: AVX-512F was detected above; both arrays hold 16 values.
            unsafe { _mm512_storeu_ps(out.as_mut_ptr(), tanh(_mm512_loadu_ps(v.as_ptr()))) };
            out
        });
    }
}
