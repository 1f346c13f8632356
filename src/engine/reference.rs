//! The plain scalar reference engine: DESIGN §1 written as straightforward loops in f32,
//! with no layout tricks, no zero-state skip (a reset writes zeros and the next step
//! computes with them) and no threads. It is the oracle the fast engines are tested
//! against, and the "plain scalar reference" the benchmark measures the speed-up over.
//! It is far too slow for streaming; do not optimise it.

use std::ops::Range;

use super::{check_slice, check_slots, hard_sigmoid, sigmoid, Engine, Slot};
use crate::model::{Model, Stage};
use crate::{Error, Result};

/// h and c of one stage, `[y][x][filter]`.
#[derive(Debug, Clone)]
struct StageState {
    h: Vec<f32>,
    c: Vec<f32>,
}

/// The reference engine; see the module documentation.
#[derive(Debug)]
pub struct ReferenceEngine {
    model: Model,
    /// Map size of each stage's state.
    maps: Vec<(usize, usize)>,
    states: Vec<Vec<StageState>>,
    macs: u64,
}

impl ReferenceEngine {
    pub fn new(model: Model) -> Result<Self> {
        model.check()?;
        let maps = model.stage_maps();
        Ok(ReferenceEngine {
            model,
            maps,
            states: Vec::new(),
            macs: 0,
        })
    }

    fn zero_state(&self) -> Vec<StageState> {
        self.model
            .stages
            .iter()
            .zip(&self.maps)
            .map(|(s, &(h, w))| StageState {
                h: vec![0.0; h * w * s.lstm.filters],
                c: vec![0.0; h * w * s.lstm.filters],
            })
            .collect()
    }
}

/// `out[y][x][o] = sum over ky, kx, i of x[y+ky][x+kx][i] * k[ky][kx][i][o]`: a 3x3 valid
/// convolution of an `h x w x cin` map, HWIO kernel with `cout` outputs.
pub fn conv3x3_valid(
    x: &[f32],
    h: usize,
    w: usize,
    cin: usize,
    k: &[f32],
    cout: usize,
) -> Vec<f32> {
    let (oh, ow) = (h - 2, w - 2);
    let mut out = vec![0.0f32; oh * ow * cout];
    for y in 0..oh {
        for xx in 0..ow {
            let o = &mut out[(y * ow + xx) * cout..][..cout];
            for ky in 0..3 {
                for kx in 0..3 {
                    for i in 0..cin {
                        let v = x[((y + ky) * w + xx + kx) * cin + i];
                        let kr = &k[((ky * 3 + kx) * cin + i) * cout..][..cout];
                        for (acc, &kv) in o.iter_mut().zip(kr) {
                            *acc += v * kv;
                        }
                    }
                }
            }
        }
    }
    out
}

/// Adds the 3x3 "same" convolution (zero padding) of an `h x w x cin` map to `out`.
pub fn add_conv3x3_same(
    out: &mut [f32],
    x: &[f32],
    h: usize,
    w: usize,
    cin: usize,
    k: &[f32],
    cout: usize,
) {
    for y in 0..h {
        for xx in 0..w {
            let o = &mut out[(y * w + xx) * cout..][..cout];
            for ky in 0..3 {
                for kx in 0..3 {
                    let (sy, sx) = (y + ky, xx + kx);
                    // Source pixel (sy - 1, sx - 1); outside the map it is zero.
                    if sy == 0 || sx == 0 || sy > h || sx > w {
                        continue;
                    }
                    for i in 0..cin {
                        let v = x[((sy - 1) * w + sx - 1) * cin + i];
                        let kr = &k[((ky * 3 + kx) * cin + i) * cout..][..cout];
                        for (acc, &kv) in o.iter_mut().zip(kr) {
                            *acc += v * kv;
                        }
                    }
                }
            }
        }
    }
}

/// The ConvLSTM cell update from the pre-activations `z` (`[pixel][i | f | g | o]`).
fn lstm_update(z: &[f32], h: &mut [f32], c: &mut [f32], f: usize) {
    for (p, zp) in z.chunks_exact(4 * f).enumerate() {
        for k in 0..f {
            let i = hard_sigmoid(zp[k]);
            let fg = hard_sigmoid(zp[f + k]);
            let g = zp[2 * f + k].tanh();
            let o = hard_sigmoid(zp[3 * f + k]);
            let cn = fg * c[p * f + k] + i * g;
            c[p * f + k] = cn;
            h[p * f + k] = o * cn.tanh();
        }
    }
}

/// What a stage passes on: `norm(pool(h))`, with the map size after the pool.
pub fn stage_output(stage: &Stage, h: &[f32], map: (usize, usize)) -> (Vec<f32>, (usize, usize)) {
    let f = stage.lstm.filters;
    let (mh, mw) = map;
    let (mut out, mut size) = (h.to_vec(), map);
    if stage.pool {
        let (ph, pw) = (mh / 2, mw / 2);
        out = vec![0.0; ph * pw * f];
        for y in 0..ph {
            for x in 0..pw {
                for k in 0..f {
                    let at = |yy: usize, xx: usize| h[(yy * mw + xx) * f + k];
                    let m = at(2 * y, 2 * x)
                        .max(at(2 * y, 2 * x + 1))
                        .max(at(2 * y + 1, 2 * x))
                        .max(at(2 * y + 1, 2 * x + 1));
                    out[(y * pw + x) * f + k] = m;
                }
            }
        }
        size = (ph, pw);
    }
    if let Some(n) = &stage.norm {
        let (scale, shift) = n.scale_shift();
        for px in out.chunks_exact_mut(f) {
            for k in 0..f {
                px[k] = px[k] * scale[k] + shift[k];
            }
        }
    }
    (out, size)
}

impl Engine for ReferenceEngine {
    fn name(&self) -> String {
        "reference".into()
    }

    fn model(&self) -> &Model {
        &self.model
    }

    fn alloc_states(&mut self, n: usize) -> Result<Range<Slot>> {
        let start = self.states.len();
        for _ in 0..n {
            let s = self.zero_state();
            self.states.push(s);
        }
        Ok(start..self.states.len())
    }

    fn slots(&self) -> usize {
        self.states.len()
    }

    fn reset(&mut self, slot: Slot) {
        for st in &mut self.states[slot] {
            st.h.fill(0.0);
            st.c.fill(0.0);
        }
    }

    fn step(&mut self, slice: &[f32], slots: &[Slot]) -> Result<()> {
        check_slots(slots, self.states.len())?;
        check_slice(&self.model, slice)?;
        let inp = self.model.input;
        let first = &self.model.stages[0].lstm;
        // The first stage's input convolution, shared by every slot of the batch.
        let zx = conv3x3_valid(
            slice,
            inp.height,
            inp.width,
            inp.channels,
            &first.kernel,
            4 * first.filters,
        );
        for &slot in slots {
            let mut input: Vec<f32> = Vec::new();
            let mut in_map = (inp.height, inp.width);
            for (k, stage) in self.model.stages.iter().enumerate() {
                let l = &stage.lstm;
                let f = l.filters;
                let (mh, mw) = self.maps[k];
                let mut z = if k == 0 {
                    zx.clone()
                } else {
                    conv3x3_valid(&input, in_map.0, in_map.1, l.in_channels, &l.kernel, 4 * f)
                };
                let st = &mut self.states[slot][k];
                add_conv3x3_same(&mut z, &st.h, mh, mw, f, &l.recurrent, 4 * f);
                lstm_update(&z, &mut st.h, &mut st.c, f);
                if k + 1 < self.model.stages.len() {
                    (input, in_map) = stage_output(stage, &st.h, (mh, mw));
                }
            }
        }
        Ok(())
    }

    fn head(&mut self, slots: &[Slot]) -> Result<Vec<f32>> {
        check_slots(slots, self.states.len())?;
        let last = self.model.stages.len() - 1;
        let stage = &self.model.stages[last];
        let f = stage.lstm.filters;
        Ok(slots
            .iter()
            .map(|&slot| {
                let (out, _) = stage_output(stage, &self.states[slot][last].h, self.maps[last]);
                let mut max = vec![f32::NEG_INFINITY; f];
                for px in out.chunks_exact(f) {
                    for k in 0..f {
                        max[k] = max[k].max(px[k]);
                    }
                }
                sigmoid(self.model.head.logit(max))
            })
            .collect())
    }

    fn macs_done(&self) -> u64 {
        self.macs
    }

    fn read_state(&self, slot: Slot, stage: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let st = self
            .states
            .get(slot)
            .and_then(|s| s.get(stage))
            .ok_or_else(|| Error::Engine(format!("no state for slot {slot} stage {stage}")))?;
        Ok((st.h.clone(), st.c.clone()))
    }

    fn write_state(&mut self, slot: Slot, stage: usize, h: &[f32], c: &[f32]) -> Result<()> {
        let st = self
            .states
            .get_mut(slot)
            .and_then(|s| s.get_mut(stage))
            .ok_or_else(|| Error::Engine(format!("no state for slot {slot} stage {stage}")))?;
        if h.len() != st.h.len() || c.len() != st.c.len() {
            return Err(Error::Engine(format!(
                "state of {} / {} values; expected {}",
                h.len(),
                c.len(),
                st.h.len()
            )));
        }
        st.h.copy_from_slice(h);
        st.c.copy_from_slice(c);
        Ok(())
    }
}
