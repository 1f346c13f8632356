//! The network being trained, forward over a chunk of consecutive steps of one continuous
//! state and back: one ConvLSTM layer without bias (Keras 2.3 semantics, DESIGN §1), batch
//! norm with fixed statistics, global max, dense, sigmoid — upbeat-snowflake-91's
//! architecture.
//!
//! Every map lives on the input's grid: the valid 3x3 convolution's output row y, column x
//! is grid position `q = y * width + x`, so both convolutions become plain shifted reads
//! (`q + ky * width + kx`) and one matrix product per tile of rows. The last two columns of
//! each row are off the map; they are computed and thrown away (2/160 of the work). The
//! hidden state is kept zero-padded (`hpad`), its pixel (y, x) at grid position
//! `q + width + 1`, which puts the off-map columns exactly on the padding.
//!
//! Batch norm is a fixed per-channel affine map here (its statistics are not trained: with
//! a global max and a dense layer after it, it only rescales what the dense weights can),
//! so the gradient is that of the model exactly as the engines run it.

use super::real::Real;

/// Sizes of the network: input map, frames per slice, filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub filters: usize,
}

impl Shape {
    pub fn out_height(&self) -> usize {
        self.height - 2
    }
    pub fn out_width(&self) -> usize {
        self.width - 2
    }
    /// Grid rows of one step's maps (output rows x input width).
    fn rows(&self) -> usize {
        self.out_height() * self.width
    }
    fn gates(&self) -> usize {
        4 * self.filters
    }
    /// Rows of the stacked kernel: 9 taps x channels (input), then 9 taps x filters.
    pub fn taps(&self) -> usize {
        9 * (self.channels + self.filters)
    }
    /// Length of one input slice, pixel-major, channels interleaved, plus two zero pixels
    /// that the off-map columns of the last row read.
    pub fn slice_len(&self) -> usize {
        (self.height * self.width + 2) * self.channels
    }
    fn hpad_len(&self) -> usize {
        (self.out_height() + 3) * self.width * self.filters
    }
    /// Trainable parameters: stacked kernel, dense weights, dense bias.
    pub fn param_count(&self) -> usize {
        self.taps() * self.gates() + self.filters + 1
    }
    /// Where the dense weights start in the flat parameter vector.
    pub fn dense_at(&self) -> usize {
        self.taps() * self.gates()
    }
}

/// Batch norm statistics as the head uses them: `(h - mean) * inv_std`.
#[derive(Debug, Clone, PartialEq)]
pub struct Norm<T> {
    pub mean: Vec<T>,
    pub inv_std: Vec<T>,
}

/// One continuous state (h, c), carried from chunk to chunk.
#[derive(Debug, Clone)]
pub struct State<T> {
    hpad: Vec<T>,
    c: Vec<T>,
}

impl<T: Real> State<T> {
    pub fn zero(shape: &Shape) -> Self {
        State {
            hpad: vec![T::ZERO; shape.hpad_len()],
            c: vec![T::ZERO; shape.rows() * shape.filters],
        }
    }

    /// Sets h and c at map pixel (y, x), channel k (tests start from a non-zero state).
    pub fn set(&mut self, shape: &Shape, y: usize, x: usize, k: usize, h: T, c: T) {
        let q = y * shape.width + x;
        self.hpad[(q + shape.width + 1) * shape.filters + k] = h;
        self.c[q * shape.filters + k] = c;
    }
}

/// What the head saw at one step.
#[derive(Debug, Clone, Default)]
struct Head<T> {
    /// Grid position of each channel's maximum.
    argmax: Vec<usize>,
    /// Normalised maxima, the dense layer's input.
    features: Vec<T>,
}

/// Rows per tile: the tile's stacked input (rows x taps) stays in the L2 cache.
const TILE: usize = 192;

/// Runs chunks of one chain forward and back, and accumulates the gradient. Owns every
/// buffer, sized once for `max_steps`; one per thread.
pub struct Worker<T> {
    shape: Shape,
    steps: usize,
    slices: Vec<Vec<T>>,
    /// `hpads[t]`, `cs[t]`: the state before step t (`[0]` is the chunk's start state).
    hpads: Vec<Vec<T>>,
    cs: Vec<Vec<T>>,
    /// Activated gates i, f, g, o per grid row, and tanh(c), of each step.
    acts: Vec<Vec<T>>,
    tanh_c: Vec<Vec<T>>,
    heads: Vec<Head<T>>,
    col: Vec<T>,
    z: Vec<T>,
    dcol: Vec<T>,
    dh: Vec<T>,
    dh_prev: Vec<T>,
    dc: Vec<T>,
    /// Gradient of the loss with respect to the flat parameters, accumulated.
    pub grads: Vec<T>,
}

impl<T: Real> Worker<T> {
    pub fn new(shape: Shape, max_steps: usize) -> Self {
        let (rows, f, g) = (shape.rows(), shape.filters, shape.gates());
        Worker {
            shape,
            steps: 0,
            slices: vec![vec![T::ZERO; shape.slice_len()]; max_steps],
            hpads: vec![vec![T::ZERO; shape.hpad_len()]; max_steps + 1],
            cs: vec![vec![T::ZERO; rows * f]; max_steps + 1],
            acts: vec![vec![T::ZERO; rows * g]; max_steps],
            tanh_c: vec![vec![T::ZERO; rows * f]; max_steps],
            heads: vec![Head::default(); max_steps],
            col: vec![T::ZERO; TILE * shape.taps()],
            z: vec![T::ZERO; TILE * g],
            dcol: vec![T::ZERO; TILE * 9 * f],
            dh: vec![T::ZERO; shape.hpad_len()],
            dh_prev: vec![T::ZERO; shape.hpad_len()],
            dc: vec![T::ZERO; rows * f],
            grads: vec![T::ZERO; shape.param_count()],
        }
    }

    pub fn max_steps(&self) -> usize {
        self.slices.len()
    }

    /// Zeroes the accumulated gradient.
    pub fn clear(&mut self) {
        self.grads.iter_mut().for_each(|g| *g = T::ZERO);
    }

    /// Runs `steps` steps from `state`, the input of step t written by `fill(t, slice)`
    /// (pixel-major, channels interleaved; the two padding pixels at the end are zeroed
    /// here). Leaves `state` at the state after the last step and returns each step's
    /// logit. Keeps what [`Worker::backward`] needs.
    pub fn forward(
        &mut self,
        params: &[T],
        norm: &Norm<T>,
        state: &mut State<T>,
        steps: usize,
        mut fill: impl FnMut(usize, &mut [T]),
    ) -> Vec<T> {
        assert!(
            steps <= self.max_steps(),
            "chunk longer than the worker's buffers"
        );
        self.steps = steps;
        self.hpads[0].copy_from_slice(&state.hpad);
        self.cs[0].copy_from_slice(&state.c);
        let mut logits = Vec::with_capacity(steps);
        for t in 0..steps {
            let s = &mut self.slices[t];
            let n = s.len();
            fill(t, &mut s[..n - 2 * self.shape.channels]);
            s[n - 2 * self.shape.channels..].fill(T::ZERO);
            logits.push(self.step_forward(t, params, norm));
        }
        state.hpad.copy_from_slice(&self.hpads[steps]);
        state.c.copy_from_slice(&self.cs[steps]);
        logits
    }

    fn step_forward(&mut self, t: usize, params: &[T], norm: &Norm<T>) -> T {
        let sh = self.shape;
        let (wp, f, g, taps) = (sh.width, sh.filters, sh.gates(), sh.taps());
        let out_w = sh.out_width();
        let rows = sh.rows();
        let kernel = &params[..taps * g];
        let (before, after) = self.hpads.split_at_mut(t + 1);
        let (h_prev, h_next) = (&before[t], &mut after[0]);
        let (cb, ca) = self.cs.split_at_mut(t + 1);
        let (c_prev, c_next) = (&cb[t], &mut ca[0]);
        let acts = &mut self.acts[t];
        let tanh_c = &mut self.tanh_c[t];
        let x = &self.slices[t];
        let mut best = vec![T::ZERO; f];
        let mut argmax = vec![usize::MAX; f];
        for q0 in (0..rows).step_by(TILE) {
            let n = TILE.min(rows - q0);
            stack_inputs(&sh, x, h_prev, q0, n, &mut self.col);
            // SAFETY: col is n x taps, kernel taps x g, z n x g, all row-major and in bounds.
            unsafe {
                T::gemm(
                    n,
                    taps,
                    g,
                    self.col.as_ptr(),
                    (taps as isize, 1),
                    kernel.as_ptr(),
                    (g as isize, 1),
                    T::ZERO,
                    self.z.as_mut_ptr(),
                    (g as isize, 1),
                );
            }
            for r in 0..n {
                let q = q0 + r;
                let h_row = &mut h_next[(q + wp + 1) * f..(q + wp + 2) * f];
                let a = &mut acts[q * g..(q + 1) * g];
                let cn = &mut c_next[q * f..(q + 1) * f];
                let tc = &mut tanh_c[q * f..(q + 1) * f];
                if q % wp >= out_w {
                    // Off the map: h lands on the padding, which stays zero.
                    h_row.fill(T::ZERO);
                    a.fill(T::ZERO);
                    cn.fill(T::ZERO);
                    tc.fill(T::ZERO);
                    continue;
                }
                let z = &self.z[r * g..(r + 1) * g];
                let cp = &c_prev[q * f..(q + 1) * f];
                // Re-sliced to exactly f so that the loop runs without bounds checks and
                // vectorises.
                let (zi, rest) = z.split_at(f);
                let (zf, rest) = rest.split_at(f);
                let (zg, zo) = rest.split_at(f);
                let (ai, rest) = a.split_at_mut(f);
                let (af, rest) = rest.split_at_mut(f);
                let (ag, ao) = rest.split_at_mut(f);
                let (zo, ao, cp, cn, tc) =
                    (&zo[..f], &mut ao[..f], &cp[..f], &mut cn[..f], &mut tc[..f]);
                let (zi, zf, zg, ai, af, ag) = (
                    &zi[..f],
                    &zf[..f],
                    &zg[..f],
                    &mut ai[..f],
                    &mut af[..f],
                    &mut ag[..f],
                );
                let h_row = &mut h_row[..f];
                for k in 0..f {
                    let i = zi[k].hard_sigmoid();
                    let fg = zf[k].hard_sigmoid();
                    let gg = zg[k].tanh();
                    let o = zo[k].hard_sigmoid();
                    let c = fg * cp[k] + i * gg;
                    let th = c.tanh();
                    ai[k] = i;
                    af[k] = fg;
                    ag[k] = gg;
                    ao[k] = o;
                    cn[k] = c;
                    tc[k] = th;
                    h_row[k] = o * th;
                }
                for k in 0..f {
                    if argmax[k] == usize::MAX || h_row[k] > best[k] {
                        best[k] = h_row[k];
                        argmax[k] = q;
                    }
                }
            }
        }
        let dense = &params[sh.dense_at()..sh.dense_at() + f];
        let mut logit = params[sh.dense_at() + f];
        let features: Vec<T> = (0..f)
            .map(|k| (best[k] - norm.mean[k]) * norm.inv_std[k])
            .collect();
        for k in 0..f {
            logit += dense[k] * features[k];
        }
        self.heads[t] = Head { argmax, features };
        logit
    }

    /// Back-propagates `dlogits` (the loss's derivative with respect to each step's logit
    /// of the last forward chunk; zero where a step has no label) through the chunk and
    /// adds the parameter gradient to `grads`. The chunk's start state is a constant
    /// (truncated back-propagation through time).
    pub fn backward(&mut self, params: &[T], norm: &Norm<T>, dlogits: &[T]) {
        let sh = self.shape;
        let (wp, f, g, taps) = (sh.width, sh.filters, sh.gates(), sh.taps());
        let out_w = sh.out_width();
        let rows = sh.rows();
        let in_taps = 9 * sh.channels;
        assert_eq!(dlogits.len(), self.steps);
        let at = sh.dense_at();
        self.dh.fill(T::ZERO);
        self.dc.fill(T::ZERO);
        for t in (0..self.steps).rev() {
            let dl = dlogits[t];
            if dl != T::ZERO {
                let head = &self.heads[t];
                for k in 0..f {
                    self.grads[at + k] += dl * head.features[k];
                    self.dh[(head.argmax[k] + wp + 1) * f + k] +=
                        dl * params[at + k] * norm.inv_std[k];
                }
                self.grads[at + f] += dl;
            }
            self.dh_prev.fill(T::ZERO);
            let acts = &self.acts[t];
            let tanh_c = &self.tanh_c[t];
            let c_prev = &self.cs[t];
            for q0 in (0..rows).step_by(TILE) {
                let n = TILE.min(rows - q0);
                // The gates' gradient for this tile, dz (n x g); dc becomes dc of step t-1.
                for r in 0..n {
                    let q = q0 + r;
                    let dz = &mut self.z[r * g..(r + 1) * g];
                    let dc = &mut self.dc[q * f..(q + 1) * f];
                    if q % wp >= out_w {
                        dz.fill(T::ZERO);
                        dc.fill(T::ZERO);
                        continue;
                    }
                    let a = &acts[q * g..(q + 1) * g];
                    let (ai, rest) = a.split_at(f);
                    let (af, rest) = rest.split_at(f);
                    let (ag, ao) = rest.split_at(f);
                    let (ai, af, ag, ao) = (&ai[..f], &af[..f], &ag[..f], &ao[..f]);
                    let (dzi, rest) = dz.split_at_mut(f);
                    let (dzf, rest) = rest.split_at_mut(f);
                    let (dzg, dzo) = rest.split_at_mut(f);
                    let (dzi, dzf, dzg, dzo) =
                        (&mut dzi[..f], &mut dzf[..f], &mut dzg[..f], &mut dzo[..f]);
                    let tc = &tanh_c[q * f..(q + 1) * f];
                    let cp = &c_prev[q * f..(q + 1) * f];
                    let dh = &self.dh[(q + wp + 1) * f..(q + wp + 2) * f];
                    let (tc, cp, dh, dc) = (&tc[..f], &cp[..f], &dh[..f], &mut dc[..f]);
                    for k in 0..f {
                        let (i, fg, gg, o) = (ai[k], af[k], ag[k], ao[k]);
                        let th = tc[k];
                        let d_c = dh[k] * o * (T::ONE - th * th) + dc[k];
                        dzi[k] = d_c * gg * T::hard_sigmoid_slope(i);
                        dzf[k] = d_c * cp[k] * T::hard_sigmoid_slope(fg);
                        dzg[k] = d_c * i * (T::ONE - gg * gg);
                        dzo[k] = dh[k] * th * T::hard_sigmoid_slope(o);
                        dc[k] = d_c * fg;
                    }
                }
                stack_inputs(&sh, &self.slices[t], &self.hpads[t], q0, n, &mut self.col);
                // dW (taps x g) += col^T dz.
                // SAFETY: col is n x taps (read transposed), z n x g, grads' first taps x g
                // values the stacked kernel; all in bounds, grads distinct from both.
                unsafe {
                    T::gemm(
                        taps,
                        n,
                        g,
                        self.col.as_ptr(),
                        (1, taps as isize),
                        self.z.as_ptr(),
                        (g as isize, 1),
                        T::ONE,
                        self.grads.as_mut_ptr(),
                        (g as isize, 1),
                    );
                }
                if t == 0 {
                    continue;
                }
                // d(stacked h) (n x 9f) = dz U^T, then added back onto the taps' pixels.
                // SAFETY: z n x g; the recurrent kernel is rows in_taps.. of the stacked
                // kernel (9f x g, read transposed); dcol n x 9f.
                unsafe {
                    T::gemm(
                        n,
                        g,
                        9 * f,
                        self.z.as_ptr(),
                        (g as isize, 1),
                        params[in_taps * g..].as_ptr(),
                        (1, g as isize),
                        T::ZERO,
                        self.dcol.as_mut_ptr(),
                        (9 * f as isize, 1),
                    );
                }
                for r in 0..n {
                    let q = q0 + r;
                    let d = &self.dcol[r * 9 * f..(r + 1) * 9 * f];
                    for ky in 0..3 {
                        let at = (q + ky * wp) * f;
                        let dst = &mut self.dh_prev[at..at + 3 * f];
                        for (o, &v) in dst.iter_mut().zip(&d[3 * ky * f..3 * (ky + 1) * f]) {
                            *o += v;
                        }
                    }
                }
            }
            std::mem::swap(&mut self.dh, &mut self.dh_prev);
        }
    }
}

/// Stacks, for grid rows `q0 .. q0 + n`, the 3x3 neighbourhoods of the input slice and of
/// the previous hidden state into `col` (n x taps, tap-major within each part), the
/// left-hand side of the convolutions as one matrix product.
fn stack_inputs<T: Real>(sh: &Shape, x: &[T], hpad: &[T], q0: usize, n: usize, col: &mut [T]) {
    let (c, f, w, taps) = (sh.channels, sh.filters, sh.width, sh.taps());
    for r in 0..n {
        let q = q0 + r;
        let row = &mut col[r * taps..(r + 1) * taps];
        let (xin, hin) = row.split_at_mut(9 * c);
        // The three taps of a kernel row are neighbours on the grid: one copy each.
        for ky in 0..3 {
            let at = q + ky * w;
            xin[3 * ky * c..3 * (ky + 1) * c].copy_from_slice(&x[at * c..(at + 3) * c]);
            hin[3 * ky * f..3 * (ky + 1) * f].copy_from_slice(&hpad[at * f..(at + 3) * f]);
        }
    }
}
