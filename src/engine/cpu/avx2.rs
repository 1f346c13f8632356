//! AVX2/FMA kernels (x86-64). [`Avx2`] can only be obtained through [`Avx2::detect`],
//! which checks the CPU at run time, so its safe methods may call the
//! `#[target_feature]` functions. Each convolution block keeps a 6-pixel x 16-output tile
//! in 12 ymm registers: per input channel it loads 16 weights (2 registers), broadcasts
//! one value per pixel and issues 12 FMAs. Accuracy: f32 FMAs throughout; tanh is a
//! vectorised Cephes-style tanhf, within 2e-7 of the exact value (see the tests).

use std::arch::x86_64::*;

use super::kernels::{
    checked_groups, gates_scalar, winograd_1d, winograd_2d, winograd_2d_in, winograd_2d_out,
    ConvSrc, Kernels, Patch, Winograd, BLOCK, TILE,
};

const _: () = assert!(TILE == 6, "block() unrolls exactly 6 pixels");

/// Proof that the CPU has AVX2 and FMA.
#[derive(Debug, Clone, Copy)]
pub struct Avx2(());

impl Avx2 {
    /// `Some` when the CPU running this process supports AVX2 and FMA.
    pub fn detect() -> Option<Avx2> {
        (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")).then_some(Avx2(()))
    }
}

impl Kernels for Avx2 {
    fn winograd_in(self, f: Winograd, d: Patch, v: &mut [f32], xi_stride: usize) {
        let (a, ch) = (f.alpha(), d.channels);
        d.check(a);
        assert!((f.xis() - 1) * xi_stride + ch <= v.len());
        // SAFETY: AVX2 and FMA were detected; the patch and `v` hold every offset the
        // kernel reads and writes, by the checks (the channel tail is masked).
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
        // SAFETY: AVX2 and FMA were detected; the offsets read and written are inside the
        // slices by the assertion (the output tail is masked).
        unsafe { winograd_out(f, m.as_ptr(), stride, zs, y.as_mut_ptr(), y_row) };
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
        // One block of 16 outputs at a time: the 6 x 16 register tile.
        checked_groups(
            m,
            blocks,
            1,
            init,
            srcs,
            out,
            out_stride,
            |init, stride, _, srcs, o| {
                // SAFETY: `self` exists only if AVX2 and FMA were detected; `checked_groups`
                // bounds-checked every offset the kernel reads and writes.
                unsafe {
                    match m {
                        6 => block::<6>(init, stride, srcs, o, out_stride),
                        5 => block::<5>(init, stride, srcs, o, out_stride),
                        4 => block::<4>(init, stride, srcs, o, out_stride),
                        3 => block::<3>(init, stride, srcs, o, out_stride),
                        2 => block::<2>(init, stride, srcs, o, out_stride),
                        _ => block::<1>(init, stride, srcs, o, out_stride),
                    }
                }
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
        let vec_f = f / 8 * 8;
        // SAFETY: AVX2 and FMA were detected (see above); the kernel touches z[p*zs ..
        // p*zs + 4f], c[p*f .. p*f + vec_f] and h[p*f .. p*f + vec_f] for p < m, all
        // inside the slices by the assertion.
        unsafe {
            gates(
                m,
                z.as_ptr(),
                zs,
                f,
                vec_f,
                c.as_mut_ptr(),
                h.as_mut_ptr(),
                fresh,
            )
        };
        if vec_f < f {
            for p in 0..m {
                gates_scalar(
                    &z[p * zs..],
                    f,
                    vec_f..f,
                    &mut c[p * f..],
                    &mut h[p * f..],
                    fresh,
                );
            }
        }
    }
}

/// One tile of `M` pixels x 16 outputs (one block); see [`Kernels::tile`].
///
/// # Safety
/// AVX2 and FMA must be available; `init` (when not null), every source and `out` must
/// be valid for the offsets a tile of `M` pixels reads and writes (checked by the caller).
#[target_feature(enable = "avx2,fma")]
unsafe fn block<const M: usize>(
    init: *const f32,
    init_stride: usize,
    srcs: &[ConvSrc],
    out: *mut f32,
    out_stride: usize,
) {
    // Written to compile to the same inner loop in the test profile (opt-level 2 with
    // debug assertions) as in release: the 12 accumulators are named locals, never an
    // array (in the test profile an array stayed in memory, stored after every FMA),
    // pointer arithmetic is `wrapping_add` (in bounds by the caller's checks; no debug
    // check), the channel loop is a `while`, and the pixel loop is unrolled by hand
    // (`p < M` is a constant, so unused pixels vanish).
    let zero = _mm256_setzero_ps();
    let (mut a00, mut a01, mut a10, mut a11, mut a20, mut a21) =
        (zero, zero, zero, zero, zero, zero);
    let (mut a30, mut a31, mut a40, mut a41, mut a50, mut a51) =
        (zero, zero, zero, zero, zero, zero);
    macro_rules! each_pixel {
        ($m:ident) => {
            $m!(0, a00, a01);
            $m!(1, a10, a11);
            $m!(2, a20, a21);
            $m!(3, a30, a31);
            $m!(4, a40, a41);
            $m!(5, a50, a51);
        };
    }
    if !init.is_null() {
        macro_rules! load {
            ($p:literal, $lo:ident, $hi:ident) => {
                if $p < M {
                    let q = init.wrapping_add($p * init_stride);
                    $lo = _mm256_loadu_ps(q);
                    $hi = _mm256_loadu_ps(q.wrapping_add(8));
                }
            };
        }
        each_pixel!(load);
    }
    for s in srcs {
        let cin = s.cin;
        let data = s.data.as_ptr().wrapping_add(s.start);
        // Rows of 16 weights, 64-byte aligned: aligned loads (`_mm256_loadu_ps` copies
        // through memory with a debug check in the test profile; `_mm256_load_ps` does not).
        let mut w = s.weights.as_ptr().cast::<f32>();
        for tap in 0..s.taps {
            // Channel 0 of this tap for pixel 0; pixel p is p * cin further.
            let tap = data.wrapping_add((tap / 3) * s.row_stride + (tap % 3) * cin);
            let mut ci = 0;
            while ci < cin {
                let b0 = _mm256_load_ps(w);
                let b1 = _mm256_load_ps(w.wrapping_add(8));
                w = w.wrapping_add(BLOCK);
                macro_rules! fma {
                    ($p:literal, $lo:ident, $hi:ident) => {
                        if $p < M {
                            // load_ss + broadcastss folds into one vbroadcastss from
                            // memory, with no alignment check in debug builds (`&*ptr`
                            // would have one).
                            let v = _mm256_broadcastss_ps(_mm_load_ss(
                                tap.wrapping_add(cin.wrapping_mul($p).wrapping_add(ci)),
                            ));
                            $lo = _mm256_fmadd_ps(v, b0, $lo);
                            $hi = _mm256_fmadd_ps(v, b1, $hi);
                        }
                    };
                }
                each_pixel!(fma);
                ci += 1;
            }
        }
    }
    macro_rules! store {
        ($p:literal, $lo:ident, $hi:ident) => {
            if $p < M {
                let q = out.wrapping_add($p * out_stride);
                _mm256_storeu_ps(q, $lo);
                _mm256_storeu_ps(q.wrapping_add(8), $hi);
            }
        };
    }
    each_pixel!(store);
}

/// The LSTM update of the first `vec_f` channels (a multiple of 8) of `m` pixels.
///
/// # Safety
/// AVX2 and FMA must be available; `z` valid for `(m-1)*zs + 4f` reads, `c` and `h` for
/// `m*f` values.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
unsafe fn gates(
    m: usize,
    z: *const f32,
    zs: usize,
    f: usize,
    vec_f: usize,
    c: *mut f32,
    h: *mut f32,
    fresh: bool,
) {
    // Two passes, so that each iteration holds one tanh, not a chain of two (g, then
    // tanh(c)): iterations are independent, and the core overlaps their latencies.
    for p in 0..m {
        let zp = z.wrapping_add(p * zs);
        let cp = c.wrapping_add(p * f);
        for j in (0..vec_f).step_by(8) {
            let i = hard_sigmoid(_mm256_loadu_ps(zp.wrapping_add(j)));
            let fg = hard_sigmoid(_mm256_loadu_ps(zp.wrapping_add(f + j)));
            let g = tanh(_mm256_loadu_ps(zp.wrapping_add(2 * f + j)));
            let old = if fresh {
                _mm256_setzero_ps()
            } else {
                _mm256_loadu_ps(cp.wrapping_add(j))
            };
            _mm256_storeu_ps(
                cp.wrapping_add(j),
                _mm256_fmadd_ps(fg, old, _mm256_mul_ps(i, g)),
            );
        }
    }
    for p in 0..m {
        let zp = z.wrapping_add(p * zs);
        let cp = c.wrapping_add(p * f);
        let hp = h.wrapping_add(p * f);
        for j in (0..vec_f).step_by(8) {
            let o = hard_sigmoid(_mm256_loadu_ps(zp.wrapping_add(3 * f + j)));
            let cn = _mm256_loadu_ps(cp.wrapping_add(j));
            _mm256_storeu_ps(hp.wrapping_add(j), _mm256_mul_ps(o, tanh(cn)));
        }
    }
}

/// `clip(0.2 x + 0.5, 0, 1)`, Keras 2.3's hard sigmoid.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn hard_sigmoid(x: __m256) -> __m256 {
    let y = _mm256_fmadd_ps(x, _mm256_set1_ps(0.2), _mm256_set1_ps(0.5));
    _mm256_min_ps(_mm256_max_ps(y, _mm256_setzero_ps()), _mm256_set1_ps(1.0))
}

/// tanh in 8 lanes, as Cephes' tanhf: an odd polynomial for |x| < 0.625, otherwise
/// `1 - 2 / (exp(2|x|) + 1)` with the sign restored. |x| is clamped at 9, where tanh is
/// 1 in f32. Relative error below 2e-7 over the whole range (tested).
#[inline]
#[target_feature(enable = "avx2,fma")]
pub fn tanh(x: __m256) -> __m256 {
    let sign_mask = _mm256_set1_ps(-0.0);
    let ax = _mm256_min_ps(_mm256_andnot_ps(sign_mask, x), _mm256_set1_ps(9.0));
    // Small |x|: x + x^3 P(x^2), Cephes tanhf coefficients.
    let z = _mm256_mul_ps(x, x);
    let mut p = _mm256_set1_ps(-5.704_988_7e-3);
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.063_909e-2));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-5.373_971_6e-2));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(1.333_144_2e-1));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-3.333_328e-1));
    let small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), x, x);
    // Large |x|: 1 - 2 / (e^{2|x|} + 1), then the sign of x.
    let e = exp(_mm256_add_ps(ax, ax));
    let t = _mm256_sub_ps(
        _mm256_set1_ps(1.0),
        _mm256_div_ps(_mm256_set1_ps(2.0), _mm256_add_ps(e, _mm256_set1_ps(1.0))),
    );
    let large = _mm256_or_ps(t, _mm256_and_ps(x, sign_mask));
    let is_small = _mm256_cmp_ps::<_CMP_LT_OQ>(ax, _mm256_set1_ps(0.625));
    _mm256_blendv_ps(large, small, is_small)
}

/// e^x for 0 <= x <= 18 (the range tanh needs), as Cephes' expf: x = n ln2 + r with
/// |r| <= ln2/2, a degree-6 polynomial for e^r, and 2^n from the exponent bits.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp(x: __m256) -> __m256 {
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    // ln2 split in two (Cephes C1, C2) so that n * C1 is exact.
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
    let mut y = _mm256_set1_ps(1.987_569_1e-4);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.398_199_9e-3));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.333_452e-3));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.166_579_6e-2));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.666_666_5e-1));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(0.5));
    y = _mm256_fmadd_ps(
        y,
        _mm256_mul_ps(r, r),
        _mm256_add_ps(r, _mm256_set1_ps(1.0)),
    );
    let pow2 = _mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(n),
        _mm256_set1_epi32(127),
    ));
    _mm256_mul_ps(y, _mm256_castsi256_ps(pow2))
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn add(a: __m256, b: __m256) -> __m256 {
    _mm256_add_ps(a, b)
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn sub(a: __m256, b: __m256) -> __m256 {
    _mm256_sub_ps(a, b)
}

/// `a + k b`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn mul_add(a: __m256, k: f32, b: __m256) -> __m256 {
    _mm256_fmadd_ps(_mm256_set1_ps(k), b, a)
}

winograd_1d!(__m256, target_feature(enable = "avx2,fma"));

/// The lanes of a vector of 8 that hold channels `c .. n`, as a mask for `maskload`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn lanes(c: usize, n: usize) -> __m256i {
    let k = (n - c).min(8) as i32;
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(k),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// Winograd's input transform (see `kernels::winograd_in_scalar`), 8 channels at a time:
/// patch pixel (i, j) channel c at `d[i * row_stride + j * ch + c]`.
///
/// # Safety
/// AVX2 and FMA must be available; `d` valid for the patch's reads, `v` for writes at
/// `ξ * xi_stride + c`, c < ch.
#[target_feature(enable = "avx2,fma")]
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
            _mm256_maskload_ps(d.wrapping_add((q / a) * row_stride + (q % a) * ch + c), k)
        };
        let store = |xi: usize, val: __m256| {
            _mm256_maskstore_ps(v.wrapping_add(xi * xi_stride + c), k, val)
        };
        winograd_2d_in!(f, _mm256_setzero_ps(), load, store);
        c += 8;
    }
}

/// Winograd's output transform (see `kernels::winograd_out_scalar`), 8 outputs at a time.
///
/// # Safety
/// AVX2 and FMA must be available; `m` valid for reads at `ξ * stride + o`, `y` for writes
/// at `i * y_row + j * zs + o`, o < zs.
#[target_feature(enable = "avx2,fma")]
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
        let load_m = |xi: usize| _mm256_maskload_ps(m.wrapping_add(xi * stride + o), k);
        let store_y = |i: usize, j: usize, val: __m256| {
            _mm256_maskstore_ps(y.wrapping_add(i * y_row + j * zs + o), k, val)
        };
        winograd_2d_out!(f, _mm256_setzero_ps(), load_m, store_y);
        o += 8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tanh_is_accurate() {
        if Avx2::detect().is_none() {
            return;
        }
        super::super::kernels::check_tanh(|v: [f32; 8]| {
            let mut out = [0.0f32; 8];
            // SAFETY: AVX2 was detected above; both arrays hold 8 values.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), tanh(_mm256_loadu_ps(v.as_ptr()))) };
            out
        });
    }
}
