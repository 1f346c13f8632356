//! Adam, as Keras 2.3 applies it (the study's optimiser): bias correction folded into the
//! step size, epsilon 1e-7 outside the square root.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub epsilon: f64,
    /// Updates made so far.
    pub t: u64,
    m: Vec<f64>,
    v: Vec<f64>,
}

impl Adam {
    /// The study's settings at learning rate `lr`: betas 0.9 / 0.999.
    pub fn new(params: usize, lr: f64) -> Adam {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-7,
            t: 0,
            m: vec![0.0; params],
            v: vec![0.0; params],
        }
    }

    /// One update of `params` along `grads`.
    pub fn step(&mut self, params: &mut [f32], grads: &[f64]) {
        assert_eq!(params.len(), self.m.len());
        assert_eq!(grads.len(), self.m.len());
        self.t += 1;
        let t = self.t as i32;
        let lr = self.lr * (1.0 - self.beta2.powi(t)).sqrt() / (1.0 - self.beta1.powi(t));
        for i in 0..params.len() {
            let g = grads[i];
            self.m[i] = self.beta1 * self.m[i] + (1.0 - self.beta1) * g;
            self.v[i] = self.beta2 * self.v[i] + (1.0 - self.beta2) * g * g;
            params[i] -= (lr * self.m[i] / (self.v[i].sqrt() + self.epsilon)) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_moves_each_parameter_by_lr() {
        // With bias correction the first step is lr * g / (|g| + eps) ~ lr * sign(g).
        let mut p = vec![1.0f32, 1.0, 1.0];
        let mut adam = Adam::new(3, 0.01);
        adam.step(&mut p, &[2.0, -0.5, 0.0]);
        assert!((p[0] - 0.99).abs() < 1e-6);
        assert!((p[1] - 1.01).abs() < 1e-6);
        assert_eq!(p[2], 1.0);
    }

    #[test]
    fn minimises_a_quadratic() {
        let mut p = vec![3.0f32, -2.0];
        let mut adam = Adam::new(2, 0.05);
        for _ in 0..2000 {
            let g: Vec<f64> = p.iter().map(|&x| 2.0 * x as f64).collect();
            adam.step(&mut p, &g);
        }
        assert!(p.iter().all(|x| x.abs() < 1e-2), "{p:?}");
    }
}
