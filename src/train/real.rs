//! The float type the trainer is written over: f32 for training, f64 for the gradient
//! check against finite differences (issue 7). The same code runs in both; only `tanh`
//! and the matrix products differ.

use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

/// A float the trainer computes in.
pub trait Real:
    Copy
    + Debug
    + Default
    + PartialOrd
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
{
    const ZERO: Self;
    const ONE: Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    /// tanh: a rational approximation for f32 (within 2e-7 of the exact value, and
    /// vectorisable, where libm's call is not), the exact function for f64.
    fn tanh(self) -> Self;
    /// `C = alpha * A B + beta * C` over strided matrices (rows x columns, strides in
    /// elements): A is m x k, B is k x n, C is m x n.
    ///
    /// # Safety
    /// Every element the strides address must lie inside the slices' allocations, and C
    /// must not alias A or B.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const Self,
        a_strides: (isize, isize),
        b: *const Self,
        b_strides: (isize, isize),
        beta: Self,
        c: *mut Self,
        c_strides: (isize, isize),
    );

    /// Hard sigmoid, `clip(0.2 x + 0.5, 0, 1)` (Keras 2.3).
    #[inline(always)]
    fn hard_sigmoid(self) -> Self {
        let v = Self::from_f64(0.2) * self + Self::from_f64(0.5);
        if v < Self::ZERO {
            Self::ZERO
        } else if v > Self::ONE {
            Self::ONE
        } else {
            v
        }
    }

    /// Derivative of the hard sigmoid from its value: 0.2 inside, 0 where clipped.
    #[inline(always)]
    fn hard_sigmoid_slope(value: Self) -> Self {
        if value > Self::ZERO && value < Self::ONE {
            Self::from_f64(0.2)
        } else {
            Self::ZERO
        }
    }

    fn max(self, other: Self) -> Self {
        if other > self {
            other
        } else {
            self
        }
    }
}

impl Real for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    #[inline(always)]
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn tanh(self) -> f32 {
        tanh_f32(self)
    }
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const f32,
        (rsa, csa): (isize, isize),
        b: *const f32,
        (rsb, csb): (isize, isize),
        beta: f32,
        c: *mut f32,
        (rsc, csc): (isize, isize),
    ) {
        // SAFETY: forwarded from the caller's contract.
        unsafe { matrixmultiply::sgemm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
    }
}

impl Real for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    #[inline(always)]
    fn from_f64(v: f64) -> f64 {
        v
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn tanh(self) -> f64 {
        f64::tanh(self)
    }
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const f64,
        (rsa, csa): (isize, isize),
        b: *const f64,
        (rsb, csb): (isize, isize),
        beta: f64,
        c: *mut f64,
        (rsc, csc): (isize, isize),
    ) {
        // SAFETY: forwarded from the caller's contract.
        unsafe { matrixmultiply::dgemm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
    }
}

/// tanh as the odd rational function x P(x^2) / Q(x^2) on [-7.9, 7.9] (the approximation
/// Eigen uses for float), saturating beyond. Branch-free, so loops over it vectorise.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    const A1: f32 = 4.893_524_6e-3;
    const A3: f32 = 6.372_619_3e-4;
    const A5: f32 = 1.485_722_4e-5;
    const A7: f32 = 5.122_297e-8;
    const A9: f32 = -8.604_672e-11;
    const A11: f32 = 2.000_188e-13;
    const A13: f32 = -2.760_768_5e-16;
    const B0: f32 = 4.893_525e-3;
    const B2: f32 = 2.268_434_6e-3;
    const B4: f32 = 1.185_347_1e-4;
    const B6: f32 = 1.198_258_4e-6;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let p = (((((A13 * x2 + A11) * x2 + A9) * x2 + A7) * x2 + A5) * x2 + A3) * x2 + A1;
    let q = ((B6 * x2 + B4) * x2 + B2) * x2 + B0;
    x * p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_tanh_is_within_a_few_ulp() {
        let mut worst = 0.0f64;
        let mut x = -12.0f64;
        while x < 12.0 {
            let got = tanh_f32(x as f32) as f64;
            worst = worst.max((got - x.tanh()).abs());
            x += 1e-3;
        }
        assert!(worst < 5e-7, "max |tanh_f32 - tanh| = {worst:e}");
        assert_eq!(tanh_f32(0.0), 0.0);
        assert_eq!(tanh_f32(-3.0), -tanh_f32(3.0));
    }

    #[test]
    fn gemm_matches_loops_with_strides() {
        // A 3x2 (row-major), B^T given as 4x2 so B = 2x4 read with swapped strides.
        let a = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0];
        let bt = [1.0f64, 0.5, -1.0, 2.0, 0.0, 1.0, 3.0, -2.0];
        let mut c = [1.0f64; 12];
        unsafe {
            f64::gemm(
                3,
                2,
                4,
                a.as_ptr(),
                (2, 1),
                bt.as_ptr(),
                (1, 2),
                1.0,
                c.as_mut_ptr(),
                (4, 1),
            );
        }
        for i in 0..3 {
            for j in 0..4 {
                let want = 1.0 + a[i * 2] * bt[j * 2] + a[i * 2 + 1] * bt[j * 2 + 1];
                assert_eq!(c[i * 4 + j], want);
            }
        }
    }
}
