//! The training loop: epochs of chains cut into chunks, one Adam update per chunk of a
//! batch of chains, validation through the product's own continuous engine after every
//! epoch, the best-validation model kept, and a state file to resume from.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::adam::Adam;
use super::data::{epoch_chains, Chain, Clip};
use super::net::{Norm, State, Worker};
use super::Net;
use crate::engine::{new_engine, stream::predict_frames, EngineKind, Mode};
use crate::eval::{evaluation_range, Roc, Summary};
use crate::model::{weights, AlertThresholds};
use crate::rng::SplitMix;
use crate::{Error, Result};

/// How to train. [`TrainConfig::default`] is what `burstwatch train` uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Chains per update.
    pub batch: usize,
    /// Steps per chunk: the truncation of back-propagation through time (the study's
    /// window: 30 slices).
    pub chunk: usize,
    /// Frames per stretch of video that one chain runs over.
    pub segment: usize,
    /// Phases run per stretch and epoch (of 4).
    pub phases: usize,
    pub threads: usize,
    pub seed: u64,
    /// Stop after the epoch that would otherwise end past this many minutes.
    pub max_minutes: Option<f64>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 20,
            lr: 2e-3,
            batch: 2,
            chunk: 15,
            segment: 2400,
            phases: 1,
            threads: crate::engine::cpu::default_threads(),
            seed: 1,
            max_minutes: None,
        }
    }
}

/// The figures of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    pub epoch: usize,
    pub updates: usize,
    /// Mean class-weighted cross-entropy over the epoch's labelled steps.
    pub train_loss: f64,
    pub val_loss: f64,
    /// ROC-AUC on the validation clip of the model, the baseline and their mean.
    pub val_auc: f64,
    pub baseline_auc: f64,
    pub fused_auc: f64,
    /// The model's and the fused score's Youden-optimal thresholds on the validation clip.
    pub val_threshold: Option<f64>,
    pub fused_threshold: Option<f64>,
    pub seconds: f64,
    /// Whether this epoch's model is the best so far (and was saved).
    pub best: bool,
}

/// What the caller hears while training runs (the CLI draws a progress bar from it).
#[derive(Debug)]
pub enum Progress<'a> {
    EpochStart {
        epoch: usize,
        epochs: usize,
        updates: usize,
    },
    Update {
        loss: f64,
    },
    EpochEnd(&'a EpochReport),
}

/// A model's figures on a validation clip.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Validation {
    pub loss: f64,
    pub model: Summary,
    pub baseline: Summary,
    pub fused: Summary,
}

/// Class weights (negative, positive) from the positive rate r: (r, 1 - r), so both
/// classes weigh the same in total (the study's 0.133 / 0.866).
pub fn class_weights(clips: &[Clip]) -> (f64, f64) {
    let (mut pos, mut n) = (0.0, 0.0);
    for c in clips {
        let labelled = (0..c.len()).filter(|&t| c.labelled(t)).count() as f64;
        pos += c.positive_rate() * labelled;
        n += labelled;
    }
    let r = if n > 0.0 { pos / n } else { 0.5 };
    (r, 1.0 - r)
}

/// Class-weighted binary cross-entropy of a logit, and its derivative.
fn weighted_bce(logit: f64, label: bool, weights: (f64, f64)) -> (f64, f64) {
    let softplus = |x: f64| x.max(0.0) + (-x.abs()).exp().ln_1p();
    let p = 1.0 / (1.0 + (-logit).exp());
    if label {
        (weights.1 * softplus(-logit), weights.1 * (p - 1.0))
    } else {
        (weights.0 * softplus(logit), weights.0 * p)
    }
}

/// Runs `net` as `run` does (CPU engine, continuous mode) over `clip` and scores it as
/// `eval` does: the evaluation range, ROC of the model, the baseline and their mean; the
/// loss over the labelled frames.
pub fn validate(net: &Net, clip: &Clip, weights: (f64, f64)) -> Result<Validation> {
    let engine = new_engine(net.to_model(), EngineKind::Cpu)?;
    let frames = (0..clip.len()).map(|t| clip.frame(t));
    let p = predict_frames(engine, Mode::Continuous, frames)?;
    let range = evaluation_range(clip.len());
    let (mut loss, mut n) = (0.0, 0.0f64);
    for t in range.clone().filter(|&t| clip.labelled(t)) {
        let pt = (p[t] as f64).clamp(1e-7, 1.0 - 1e-7);
        let logit = (pt / (1.0 - pt)).ln();
        loss += weighted_bce(logit, clip.labels[t], weights).0;
        n += 1.0;
    }
    let labels = &clip.labels[range.clone()];
    let model: Vec<f64> = p[range.clone()].iter().map(|&v| v as f64).collect();
    let base = clip.baseline()[range].to_vec();
    let fused: Vec<f64> = model
        .iter()
        .zip(&base)
        .map(|(a, b)| (a + b) / 2.0)
        .collect();
    let summary = |scores: &[f64]| -> Result<Summary> {
        Roc::new(labels, scores)
            .map(|r| Summary::new(&r))
            .map_err(|e| Error::Input(format!("validation clip {}: {e}", clip.name)))
    };
    Ok(Validation {
        loss: loss / n.max(1.0),
        model: summary(&model)?,
        baseline: summary(&base)?,
        fused: summary(&fused)?,
    })
}

/// What is saved after every epoch to resume from.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Checkpoint {
    format: String,
    /// The arguments that shaped the run; a resume must match them.
    fingerprint: String,
    epoch: usize,
    rng: u64,
    params: Vec<f32>,
    adam: Adam,
    best_loss: Option<f64>,
    history: Vec<EpochReport>,
}

/// Epochs without a better validation loss before the learning rate is halved.
const PATIENCE: usize = 2;

const CHECKPOINT_FORMAT: &str = "burstwatch-train-state-1";

/// A training run: the network, the optimiser and where everything is written.
pub struct Trainer {
    pub net: Net,
    pub config: TrainConfig,
    /// The best model goes here (safetensors), the state to resume from beside it.
    pub out: PathBuf,
    adam: Adam,
    rng: SplitMix,
    epoch: usize,
    best_loss: Option<f64>,
    pub history: Vec<EpochReport>,
    fingerprint: String,
    /// How the model was made (data, settings), stored in the saved model.
    pub provenance: String,
}

impl Trainer {
    /// A run writing its best model to `out`. `fingerprint` names everything that shapes
    /// the run (data, initial model, config); with `resume`, a state file left by an
    /// interrupted run with the same fingerprint is picked up.
    pub fn new(
        net: Net,
        config: TrainConfig,
        out: &Path,
        fingerprint: String,
        resume: bool,
    ) -> Result<Trainer> {
        let adam = Adam::new(net.params.len(), config.lr);
        let mut t = Trainer {
            rng: SplitMix(config.seed),
            net,
            config,
            out: out.to_owned(),
            adam,
            epoch: 0,
            best_loss: None,
            history: Vec::new(),
            provenance: fingerprint.clone(),
            fingerprint,
        };
        let state = t.state_path();
        if resume && state.exists() {
            let text = std::fs::read_to_string(&state).map_err(|source| Error::Read {
                path: state.clone(),
                source,
            })?;
            let c: Checkpoint = serde_json::from_str(&text).map_err(|e| {
                Error::bad_input(
                    &state,
                    format!("{e}; expected a training state written by burstwatch train"),
                )
            })?;
            if c.format != CHECKPOINT_FORMAT || c.params.len() != t.net.params.len() {
                return Err(Error::bad_input(
                    &state,
                    "not a training state of this model; expected one to resume from (delete it, or start afresh without resuming)",
                ));
            }
            if c.fingerprint != t.fingerprint {
                return Err(Error::bad_input(
                    &state,
                    "left by a run with other data, model or settings; expected the same arguments to resume, or a fresh start",
                ));
            }
            tracing::info!(
                "resuming from {} after epoch {} of {}",
                state.display(),
                c.epoch,
                t.config.epochs
            );
            t.epoch = c.epoch;
            t.rng = SplitMix(c.rng);
            t.net.params = c.params;
            t.adam = c.adam;
            t.best_loss = c.best_loss;
            t.history = c.history;
        }
        Ok(t)
    }

    /// `<out>.train-state.json`: parameters, optimiser and history after the last epoch.
    pub fn state_path(&self) -> PathBuf {
        let mut s = self.out.clone().into_os_string();
        s.push(".train-state.json");
        PathBuf::from(s)
    }

    /// Makes the starting model (fine-tuning) the one to beat: it is saved to `out` as
    /// epoch 0, so an epoch is kept only if it lowers the validation loss `v` below the
    /// initial model's. Does nothing on a resumed run.
    pub fn start_from(&mut self, v: &Validation) -> Result<()> {
        if self.epoch > 0 || self.best_loss.is_some() {
            return Ok(());
        }
        self.best_loss = Some(v.loss);
        self.save_model(v)
    }

    /// Writes the current network to `out` with the thresholds that alerts on its scores
    /// should use (Youden's on the validation clip, as the study chose its own) and how it
    /// was made.
    fn save_model(&self, v: &Validation) -> Result<()> {
        let mut model = self.net.to_model();
        model.thresholds = match (v.model.r_j, v.fused.r_j) {
            (Some(m), Some(f)) if m > 0.0 && m < 1.0 && f > 0.0 && f < 1.0 => {
                // Three decimals, as the study's thresholds are quoted.
                let r = |x: f64| (x * 1000.0).round() / 1000.0;
                Some(AlertThresholds {
                    model: r(m),
                    fused: r(f),
                })
            }
            _ => None,
        };
        model.trained = Some(format!(
            "{}; epoch {} of {}: validation loss {:.4}, ROC-AUC {:.4} (baseline {:.4})",
            self.provenance, self.epoch, self.config.epochs, v.loss, v.model.auc, v.baseline.auc
        ));
        weights::save(&model, &self.out)
    }

    /// Epochs finished (including those before a resume).
    pub fn epochs_done(&self) -> usize {
        self.epoch
    }

    fn save_state(&self) -> Result<()> {
        let c = Checkpoint {
            format: CHECKPOINT_FORMAT.into(),
            fingerprint: self.fingerprint.clone(),
            epoch: self.epoch,
            rng: self.rng.0,
            params: self.net.params.clone(),
            adam: self.adam.clone(),
            best_loss: self.best_loss,
            history: self.history.clone(),
        };
        let path = self.state_path();
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string(&c).map_err(|e| Error::Input(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(|source| Error::Write {
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, &path).map_err(|source| Error::Write { path, source })
    }

    /// Trains until `config.epochs` epochs are done (or the time budget ends), validating
    /// on `val` after each and saving the best model to `out`.
    pub fn fit(
        &mut self,
        clips: &[Clip],
        val: &Clip,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<()> {
        let weights = class_weights(clips);
        let started = Instant::now();
        let ch = self.net.input.channels;
        let threads = self.config.threads.max(1);
        let mut workers: Vec<Worker<f32>> = (0..threads)
            .map(|_| Worker::new(self.net.shape, self.config.chunk))
            .collect();
        while self.epoch < self.config.epochs {
            let epoch_start = Instant::now();
            let chains = epoch_chains(
                clips,
                self.config.segment,
                self.config.phases,
                ch,
                &mut self.rng,
            );
            let batches: Vec<&[Chain]> = chains.chunks(self.config.batch.max(1)).collect();
            let updates: usize = batches
                .iter()
                .map(|b| {
                    let longest = b.iter().map(|c| c.steps(ch)).max().unwrap_or(0);
                    longest.div_ceil(self.config.chunk)
                })
                .sum();
            progress(Progress::EpochStart {
                epoch: self.epoch + 1,
                epochs: self.config.epochs,
                updates,
            });
            let (mut loss_sum, mut loss_n, mut done) = (0.0, 0.0, 0);
            for batch in batches {
                let mut states: Vec<State<f32>> =
                    batch.iter().map(|_| State::zero(&self.net.shape)).collect();
                let longest = batch.iter().map(|c| c.steps(ch)).max().unwrap_or(0);
                let mut j0 = 0;
                while j0 < longest {
                    let (l, n) = self.update(&mut workers, clips, batch, &mut states, j0, weights);
                    loss_sum += l;
                    loss_n += n;
                    done += 1;
                    progress(Progress::Update {
                        loss: if n > 0.0 { l / n } else { f64::NAN },
                    });
                    j0 += self.config.chunk;
                }
            }
            self.epoch += 1;
            let v = validate(&self.net, val, weights)?;
            let best = self.best_loss.is_none_or(|b| v.loss < b);
            let stale =
                self.history.iter().rev().take_while(|r| !r.best).count() + usize::from(!best);
            if !best && stale % PATIENCE == 0 && self.adam.lr > self.config.lr / 16.0 {
                // Keras' ReduceLROnPlateau (factor 1/2): steps that no longer improve the
                // validation loss are halved, down to lr / 16.
                self.adam.lr /= 2.0;
                tracing::info!(
                    "validation loss has not improved for {stale} epochs: learning rate now {:.2e}",
                    self.adam.lr
                );
            }
            if best {
                self.best_loss = Some(v.loss);
                self.save_model(&v)?;
            }
            let report = EpochReport {
                epoch: self.epoch,
                updates: done,
                train_loss: loss_sum / loss_n.max(1.0),
                val_loss: v.loss,
                val_auc: v.model.auc,
                baseline_auc: v.baseline.auc,
                fused_auc: v.fused.auc,
                val_threshold: v.model.r_j,
                fused_threshold: v.fused.r_j,
                seconds: epoch_start.elapsed().as_secs_f64(),
                best,
            };
            self.history.push(report.clone());
            self.save_state()?;
            progress(Progress::EpochEnd(&report));
            if let Some(budget) = self.config.max_minutes {
                let spent = started.elapsed().as_secs_f64();
                if spent + report.seconds > budget * 60.0 {
                    tracing::info!(
                        "stopping after epoch {}: another would pass the {budget} minute budget",
                        self.epoch
                    );
                    break;
                }
            }
        }
        Ok(())
    }

    /// One chunk of every chain of the batch that still has steps from `j0`, forward and
    /// back on the worker threads, then one Adam update. Returns the summed loss and the
    /// number of labelled steps.
    fn update(
        &mut self,
        workers: &mut [Worker<f32>],
        clips: &[Clip],
        batch: &[Chain],
        states: &mut [State<f32>],
        j0: usize,
        weights: (f64, f64),
    ) -> (f64, f64) {
        let ch = self.net.input.channels;
        let warm = self.net.input.slices;
        let chunk = self.config.chunk;
        let has_loss =
            |c: &Chain, j: usize| j + 1 >= warm && clips[c.clip].labelled(c.frame_of(j, ch));
        // Loss is the mean over every labelled step of the update.
        let count: usize = batch
            .iter()
            .map(|c| {
                (j0..c.steps(ch).min(j0 + chunk))
                    .filter(|&j| has_loss(c, j))
                    .count()
            })
            .sum();
        let norm_by = count.max(1) as f64;
        let threads = workers.len();
        let mut groups: Vec<Vec<(&Chain, &mut State<f32>)>> =
            (0..threads).map(|_| Vec::new()).collect();
        for (i, (c, s)) in batch.iter().zip(states.iter_mut()).enumerate() {
            if j0 < c.steps(ch) {
                groups[i % threads].push((c, s));
            }
        }
        let params = &self.net.params;
        let norm: Norm<f32> = self.net.norm();
        let results: Vec<f64> = std::thread::scope(|scope| {
            let handles: Vec<_> = workers
                .iter_mut()
                .zip(groups)
                .map(|(worker, group)| {
                    let norm = &norm;
                    scope.spawn(move || {
                        worker.clear();
                        let mut loss = 0.0;
                        for (c, state) in group {
                            let steps = (c.steps(ch) - j0).min(chunk);
                            let clip = &clips[c.clip];
                            let logits = worker.forward(params, norm, state, steps, |j, buf| {
                                clip.fill_slice(c.frame_of(j0 + j, ch), ch, c.flip, buf)
                            });
                            let mut dlogits = vec![0.0f32; steps];
                            for (j, z) in logits.iter().enumerate() {
                                if has_loss(c, j0 + j) {
                                    let t = c.frame_of(j0 + j, ch);
                                    let (l, d) = weighted_bce(*z as f64, clip.labels[t], weights);
                                    loss += l;
                                    dlogits[j] = (d / norm_by) as f32;
                                }
                            }
                            if dlogits.iter().any(|&d| d != 0.0) {
                                worker.backward(params, norm, &dlogits);
                            }
                        }
                        loss
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("training thread panicked"))
                .collect()
        });
        if count > 0 {
            let mut grads = vec![0.0f64; self.net.params.len()];
            for w in workers.iter() {
                for (g, &wg) in grads.iter_mut().zip(&w.grads) {
                    *g += wg as f64;
                }
            }
            self.adam.step(&mut self.net.params, &grads);
        }
        (results.iter().sum(), count as f64)
    }
}
