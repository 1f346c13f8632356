//! The tank's dynamics: fish that wander in bursts and coasts, and chases that start when
//! two fish come too close (as in the study: one fish begins chasing another when they get
//! too close). A chase is preceded by a display, as aggression in fish is: the two face
//! each other, hold nearly still and spread their fins for about a second, then one
//! chases the other. The display is what a camera can see coming and the speed proxy
//! cannot (in y~ it is two fish fewer beating their tails, lost among the others).
//! Everything is deterministic from the seed; the ground truth (start of the display,
//! start and end frame of every chase, who chased whom) is recorded as the chases happen.
//!
//! Coordinates are pixels of the processed frame (320 wide, 240 high, y down); speeds are
//! pixels per frame at 30 fps. This module draws nothing and knows nothing of looks.

use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// Joints of a fish's spine, head first: four segments are enough for a body that bends
/// on turns and a tail that beats.
pub const SPINE_JOINTS: usize = 5;

/// How strongly each spine segment lines up with the one ahead per frame (0 = a rope that
/// follows the head's path exactly, 1 = a rigid rod). The sample frames show bodies that
/// are straight or gently bent.
const STIFFNESS: f64 = 0.3;

/// The water the fish swim in, in processed-frame pixels. The margins leave room for the
/// wall dots and the bright rim at the top that the study's processed frames show
/// (`../shared/data/seed/sample-frames/`: dots at x ~ 15 and ~ 308, rim at y ~ 30).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    pub left: f64,
    pub top: f64,
    pub right: f64,
    pub bottom: f64,
}

/// The tank's water in the processed frame.
pub const TANK_BOUNDS: Bounds = Bounds {
    left: 20.0,
    top: 34.0,
    right: 300.0,
    bottom: 230.0,
};

/// How the fish behave. The defaults are calibrated so that ten minutes of the processed
/// look match the real recording's y~ (distribution, autocorrelation, label rate, baseline
/// ROC-AUC; see [`super::calibrate`]); each field says which figure it mostly moves.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Behaviour {
    /// Body length range in pixels; the study's fish are slender, about 20x4 px plus tail.
    pub body_length: (f64, f64),
    /// Speed a fish drifts back to between tail beats ("slow wandering"), px/frame; the
    /// fish's own speeds are spread evenly over this range. Sets the floor of y~ (real 5th
    /// percentile ~0.0007).
    pub cruise_speed: (f64, f64),
    /// Time constant of the glide after a tail beat, frames. Sets the fast part of the
    /// autocorrelation (real 0.89 at lag 1, 0.56 at lag 5).
    pub coast_frames: f64,
    /// Time constant of a tail beat's acceleration, frames: a stroke takes ~50-100 ms.
    /// Smooths the onsets (real autocorrelation 0.89 at lag 1).
    pub stroke_frames: f64,
    /// Probability per frame that a fish beats its tail (burst-and-coast swimming).
    pub beat_rate: f64,
    /// Mean speed a tail beat adds (exponentially distributed), px/frame. With
    /// `beat_rate` it sets the median and spread of y~ (real median ~0.0013).
    pub beat_speed: f64,
    /// Standard deviation of the heading change a tail beat makes, radians (a fish turns
    /// as it bursts).
    pub beat_turn: f64,
    /// Random turning between beats: standard deviation of the per-frame change of the
    /// path's curvature, radians per pixel swum. Turning goes with swimming: a fish at
    /// rest does not spin (a spinning body alone would add ~0.0006 to y~).
    pub wander_turn: f64,
    /// Head-to-head distance under which two fish may start a display (and then a
    /// chase), px.
    pub chase_radius: f64,
    /// Probability per frame that two close fish start a display that leads to a chase.
    /// With `chase_radius` it sets how often chases come, hence the label rate (real
    /// 13-16 %) and the slow part of the autocorrelation (real 0.28 at lag 15, 0.10 at
    /// lag 30).
    pub chase_hazard: f64,
    /// Duration of the display before a chase in frames, drawn uniformly. Most of it lies
    /// within the labels' 46-frame look-ahead of the chase, so the display is the cue a
    /// vision model can learn (`scripts/chase_headroom.py` measures what it is worth).
    pub display_frames: (usize, usize),
    /// How much wider spread fins make a displaying fish's front half (1 = twice as wide).
    pub display_fins: f64,
    /// How still displaying fish hold: the share of their cruise speed and tail beats they
    /// give up at full display (0 = they swim on as before, 1 = they hover). Their calm
    /// makes the end of a display a low of y~ before the chase's rise: what the labels
    /// mark.
    pub display_still: f64,
    /// Duration of a chase in frames, drawn uniformly: 0.5-1.5 s (issue 5).
    pub chase_frames: (usize, usize),
    /// Speed of a chase (the spike), px/frame; the chased fish flees at 90-105 % of it.
    pub chase_speed: (f64, f64),
    /// Time constant of the slow-down after a chase, frames: a chase is a sustained
    /// effort and the fish glide out of it. Sets the decay after a burst in y~ (the long
    /// tail of the real autocorrelation, 0.10 at lag 30).
    pub chase_coast_frames: f64,
    /// Frames after a chase before either fish takes part in another.
    pub cooldown_frames: (usize, usize),
    /// Tail-tip sideways amplitude, px: at rest, and added per px/frame of speed. A fish
    /// at rest still fans its tail (a small share of y~; mostly it makes the fish alive).
    pub tail_sway: (f64, f64),
    /// Tail-beat phase advance, radians/frame: at rest, and added per px/frame of speed.
    pub tail_beat: (f64, f64),
    /// Time constant of the tank's mood, frames: the shared activity level that makes
    /// all fish livelier or calmer together for a second or two. Sets the slow part of the
    /// autocorrelation (real 0.28 at lag 15, 0.10 at lag 30) and the calm stretches before
    /// bursts that the labels look for.
    pub mood_frames: f64,
    /// Standard deviation of the mood around 1 (it scales the tail-beat rate and the
    /// cruise speed; it never goes below 0).
    pub mood_spread: f64,
    /// Distance from a wall at which a fish starts turning away, px.
    pub wall_margin: f64,
    /// Fastest turn, radians/frame (when steering from a wall or after a fish).
    pub max_turn: f64,
}

impl Default for Behaviour {
    /// Calibrated with `burstwatch sim --calibrate` (10 min, seeds 1-3; the figures are in
    /// the README); see each field for what it moves.
    fn default() -> Self {
        Behaviour {
            body_length: (25.0, 28.0),
            cruise_speed: (0.4, 0.8),
            coast_frames: 2.1,
            stroke_frames: 0.7,
            beat_rate: 0.155,
            beat_speed: 1.61,
            beat_turn: 0.4,
            wander_turn: 0.006,
            chase_radius: 30.0,
            chase_hazard: 0.05,
            display_frames: (27, 47),
            display_fins: 1.0,
            display_still: 0.8,
            chase_frames: (15, 45),
            chase_speed: (4.6, 7.1),
            cooldown_frames: (60, 150),
            chase_coast_frames: 6.5,
            tail_sway: (0.3, 0.2),
            tail_beat: (0.6, 0.12),
            mood_frames: 53.0,
            mood_spread: 0.24,
            wall_margin: 22.0,
            max_turn: 0.3,
        }
    }
}

/// One chase, as ground truth. Frames are indices of rendered frames (the first is 0);
/// both ends are inclusive: the two fish display on frames `display_frame ..
/// start_frame`, and the chaser swims at chase speed on frames `start_frame ..= end_frame`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chase {
    pub chaser: usize,
    pub target: usize,
    pub display_frame: usize,
    pub start_frame: usize,
    pub end_frame: usize,
}

/// What a fish is doing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Swimming on its own, in bursts and coasts.
    Wander,
    /// Facing fish `rival`, holding still with fins spread, until frame `until`
    /// (inclusive); then the fish with `chaser` set chases the other.
    Displaying {
        rival: usize,
        chaser: bool,
        since: usize,
        until: usize,
    },
    /// Pursuing fish `target` at `speed` until frame `until` (inclusive).
    Chasing {
        target: usize,
        speed: f64,
        until: usize,
    },
    /// Fleeing from fish `from` at `speed` until frame `until` (inclusive).
    Fleeing {
        from: usize,
        speed: f64,
        until: usize,
    },
}

/// One fish: a spine of joints (head first) that follows the head's path.
#[derive(Debug, Clone)]
pub struct Fish {
    /// Spine joints, head first, in processed-frame pixels.
    pub spine: [[f64; 2]; SPINE_JOINTS],
    /// Direction of swimming, radians (0 = +x, y down).
    pub heading: f64,
    /// Current speed, px/frame.
    pub speed: f64,
    /// Phase of the tail's undulation, radians.
    pub tail_phase: f64,
    /// Sideways amplitude of the tail tip, px.
    pub tail_amplitude: f64,
    /// How far the fins are spread, 0 (folded) to 1 (a full display).
    pub fins: f64,
    /// Body length, px.
    pub length: f64,
    /// Brightness of this fish relative to the others (fish differ in size and colour).
    pub brightness: f64,
    pub mode: Mode,
    cruise: f64,
    /// Speed added by tail beats, px/frame.
    burst: f64,
    /// Speed of the latest beats still to come through the stroke, px/frame.
    thrust: f64,
    /// Speed added by a chase, px/frame.
    drive: f64,
    /// Curvature of the wandering path, radians per pixel.
    curvature: f64,
    cooldown_until: usize,
}

impl Fish {
    fn segment(&self) -> f64 {
        self.length / (SPINE_JOINTS - 1) as f64
    }
}

/// The fish tank: fish, their behaviour, the frame counter and the chases so far.
#[derive(Debug, Clone)]
pub struct Tank {
    pub bounds: Bounds,
    pub behaviour: Behaviour,
    fish: Vec<Fish>,
    frame: usize,
    chases: Vec<Chase>,
    /// Shared activity level, around 1 (see [`Behaviour::mood_frames`]).
    mood: f64,
    rng: Rng,
}

/// Time constant of spreading or folding the fins, frames.
const FIN_FRAMES: f64 = 3.0;

/// Range of the fish's brightness relative to each other.
const BRIGHTNESS: (f64, f64) = (0.9, 1.06);

/// Stream of the seed's random numbers that drives the dynamics (looks use others).
const DYNAMICS_STREAM: u64 = 1;

impl Tank {
    /// `count` fish placed at random (from `seed`) in the tank, at frame 0.
    pub fn new(seed: u64, count: usize, behaviour: Behaviour) -> Tank {
        let mut rng = Rng::new(seed, DYNAMICS_STREAM);
        let b = TANK_BOUNDS;
        // Sizes, cruise speeds and brightness are spread evenly over their ranges and
        // dealt out at random: the fish differ, but the tank as a whole (and so the level
        // of y~) does not change from seed to seed.
        let mut spread = |range: (f64, f64)| -> Vec<f64> {
            let mut v: Vec<f64> = (0..count)
                .map(|k| range.0 + (range.1 - range.0) * (k as f64 + 0.5) / count as f64)
                .collect();
            for k in (1..v.len()).rev() {
                v.swap(k, rng.below(k + 1));
            }
            v
        };
        let lengths = spread(behaviour.body_length);
        let cruises = spread(behaviour.cruise_speed);
        let brightness = spread(BRIGHTNESS);
        let fish = (0..count)
            .map(|i| {
                let length = lengths[i];
                let head = [
                    rng.range(b.left + length, b.right - length),
                    rng.range(b.top + length, b.bottom - length),
                ];
                let heading = rng.range(-std::f64::consts::PI, std::f64::consts::PI);
                let seg = length / (SPINE_JOINTS - 1) as f64;
                let mut spine = [head; SPINE_JOINTS];
                for (k, joint) in spine.iter_mut().enumerate() {
                    joint[0] -= k as f64 * seg * heading.cos();
                    joint[1] -= k as f64 * seg * heading.sin();
                }
                let cruise = cruises[i];
                Fish {
                    spine,
                    heading,
                    speed: cruise,
                    tail_phase: rng.range(0.0, std::f64::consts::TAU),
                    tail_amplitude: behaviour.tail_sway.0,
                    fins: 0.0,
                    length,
                    brightness: brightness[i],
                    mode: Mode::Wander,
                    cruise,
                    burst: 0.0,
                    thrust: 0.0,
                    drive: 0.0,
                    curvature: 0.0,
                    cooldown_until: 0,
                }
            })
            .collect();
        Tank {
            bounds: b,
            behaviour,
            fish,
            frame: 0,
            chases: Vec::new(),
            mood: 1.0,
            rng,
        }
    }

    pub fn fish(&self) -> &[Fish] {
        &self.fish
    }

    /// Index of the frame the current state shows.
    pub fn frame(&self) -> usize {
        self.frame
    }

    /// Every chase that has started so far (a chase in progress has its planned end).
    pub fn chases(&self) -> &[Chase] {
        &self.chases
    }

    /// Advances the tank by one frame.
    pub fn step(&mut self) {
        let next = self.frame + 1;
        self.end_chases(next);
        self.start_chases(next);
        // Ornstein-Uhlenbeck around 1 with the configured spread and time constant.
        let beh = self.behaviour;
        let keep = (-1.0 / beh.mood_frames).exp();
        let kick = beh.mood_spread * (1.0 - keep * keep).sqrt();
        self.mood = 1.0 + (self.mood - 1.0) * keep + kick * self.rng.normal();
        for i in 0..self.fish.len() {
            self.swim(i);
        }
        self.frame = next;
    }

    /// Ends the chases and displays that are over: a display turns into its chase, a
    /// chase into wandering after a cooldown.
    fn end_chases(&mut self, next: usize) {
        for i in 0..self.fish.len() {
            let until = match self.fish[i].mode {
                Mode::Chasing { until, .. } | Mode::Fleeing { until, .. } => until,
                Mode::Displaying {
                    rival,
                    chaser: true,
                    since,
                    until,
                } if next > until => {
                    self.start_chase(i, rival, since, next);
                    continue;
                }
                Mode::Displaying { .. } | Mode::Wander => continue,
            };
            if next > until {
                let (lo, hi) = self.behaviour.cooldown_frames;
                let f = &mut self.fish[i];
                f.mode = Mode::Wander;
                f.cooldown_until = next + lo + self.rng.below(hi - lo + 1);
            }
        }
    }

    /// Fish `chaser` starts chasing fish `target` on frame `next`, after their display
    /// that began on frame `display_frame`.
    fn start_chase(&mut self, chaser: usize, target: usize, display_frame: usize, next: usize) {
        let beh = self.behaviour;
        let (lo, hi) = beh.chase_frames;
        let until = next + lo + self.rng.below(hi - lo + 1) - 1;
        let speed = self.rng.range(beh.chase_speed.0, beh.chase_speed.1);
        let flee = speed * self.rng.range(0.9, 1.05);
        self.fish[chaser].mode = Mode::Chasing {
            target,
            speed,
            until,
        };
        self.fish[target].mode = Mode::Fleeing {
            from: chaser,
            speed: flee,
            until,
        };
        self.chases.push(Chase {
            chaser,
            target,
            display_frame,
            start_frame: next,
            end_frame: until,
        });
    }

    /// Pairs of free fish closer than the chase radius start a display with the chase
    /// hazard; the fish that faces the other more will be the chaser.
    fn start_chases(&mut self, next: usize) {
        let beh = self.behaviour;
        let free = |f: &Fish| f.mode == Mode::Wander && next >= f.cooldown_until;
        for i in 0..self.fish.len() {
            for j in i + 1..self.fish.len() {
                let (a, b) = (&self.fish[i], &self.fish[j]);
                if !free(a) || !free(b) {
                    continue;
                }
                let d = [b.spine[0][0] - a.spine[0][0], b.spine[0][1] - a.spine[0][1]];
                if d[0].hypot(d[1]) >= beh.chase_radius || !self.rng.chance(beh.chase_hazard) {
                    continue;
                }
                let facing =
                    |f: &Fish, dx: f64, dy: f64| f.heading.cos() * dx + f.heading.sin() * dy;
                let i_chases = facing(a, d[0], d[1]) >= facing(b, -d[0], -d[1]);
                let (lo, hi) = beh.display_frames;
                let until = next + lo + self.rng.below(hi - lo + 1) - 1;
                for (me, rival, chaser) in [(i, j, i_chases), (j, i, !i_chases)] {
                    self.fish[me].mode = Mode::Displaying {
                        rival,
                        chaser,
                        since: next,
                        until,
                    };
                }
            }
        }
    }

    /// One frame of one fish: speed (burst and coast, or the chase), heading (wander,
    /// pursue or flee, keep off the walls), then the head moves and the body follows.
    fn swim(&mut self, i: usize) {
        let beh = self.behaviour;
        let bounds = self.bounds;
        let head = self.fish[i].spine[0];
        // Where the fish wants to go, as a unit vector; None = keep wandering.
        let goal = match self.fish[i].mode {
            Mode::Chasing { target, .. } => {
                let t = self.fish[target].spine[0];
                Some([t[0] - head[0], t[1] - head[1]])
            }
            Mode::Fleeing { from, .. } => {
                let c = self.fish[from].spine[0];
                Some([head[0] - c[0], head[1] - c[1]])
            }
            // A display is head to head: each fish turns to face the other.
            Mode::Displaying { rival, .. } => {
                let r = self.fish[rival].spine[0];
                Some([r[0] - head[0], r[1] - head[1]])
            }
            Mode::Wander => None,
        };
        let mood = self.mood.max(0.0);
        let rng = &mut self.rng;
        let f = &mut self.fish[i];

        // Speed = cruise (scaled by the mood) + what the tail beats add + what a chase
        // adds; each part glides down at its own pace.
        // A beat's thrust reaches the speed over a couple of frames (the fish accelerates
        // through the stroke), then the speed glides down.
        let stroke = f.thrust * (1.0 - (-1.0 / beh.stroke_frames).exp());
        f.thrust -= stroke;
        f.burst = f.burst * (-1.0 / beh.coast_frames).exp() + stroke;
        f.drive *= (-1.0 / beh.chase_coast_frames).exp();
        // Random turning: an Ornstein-Uhlenbeck curvature, so paths curve smoothly.
        f.curvature = 0.9 * f.curvature + beh.wander_turn * rng.normal();
        // Fins spread over a few frames when a display starts and fold as it ends.
        let spread = if matches!(f.mode, Mode::Displaying { .. }) {
            1.0
        } else {
            0.0
        };
        f.fins += (spread - f.fins) * (1.0 - (-1.0 / FIN_FRAMES).exp());
        // A displaying fish holds nearly still: no beats, and its cruise fades.
        let still = 1.0 - beh.display_still * f.fins;
        let cruise = f.cruise * mood.min(2.0) * still;
        match f.mode {
            Mode::Chasing { speed, .. } | Mode::Fleeing { speed, .. } => {
                f.drive = f.drive.max(speed * rng.range(0.93, 1.0) - cruise - f.burst);
            }
            Mode::Displaying { .. } | Mode::Wander => {
                if rng.chance(beh.beat_rate * mood * still) {
                    f.thrust += beh.beat_speed * rng.exponential();
                    f.heading = wrap_angle(f.heading + beh.beat_turn * rng.normal());
                }
            }
        }
        f.speed = cruise + f.burst + f.drive;

        let mut dir = [f.heading.cos(), f.heading.sin()];
        let mut steer = f.curvature * f.speed;
        // A fast fish needs room to turn (radius speed / max_turn), so it looks further ahead.
        let wall = wall_push(head, bounds, beh.wall_margin + 3.0 * f.speed);
        let want = match goal {
            Some(g) => {
                let n = g[0].hypot(g[1]).max(1e-9);
                Some([g[0] / n + 2.0 * wall[0], g[1] / n + 2.0 * wall[1]])
            }
            None if wall != [0.0, 0.0] => Some([dir[0] + 2.0 * wall[0], dir[1] + 2.0 * wall[1]]),
            None => None,
        };
        if let Some(w) = want {
            let delta = angle_diff(w[1].atan2(w[0]), f.heading);
            steer = delta.clamp(-beh.max_turn, beh.max_turn);
            if goal.is_none() {
                f.curvature = 0.0;
            }
        }
        f.heading = wrap_angle(f.heading + steer);
        dir = [f.heading.cos(), f.heading.sin()];

        // Move the head; a wall reflects it (a fish that reaches the glass turns along it
        // rather than stopping, so a chase keeps its speed to the end).
        let inset = 2.0;
        let (lo_x, hi_x) = (bounds.left + inset, bounds.right - inset);
        let (lo_y, hi_y) = (bounds.top + inset, bounds.bottom - inset);
        let mut x = head[0] + f.speed * dir[0];
        let mut y = head[1] + f.speed * dir[1];
        if x < lo_x || x > hi_x {
            x = reflect(x, lo_x, hi_x);
            f.heading = wrap_angle(std::f64::consts::PI - f.heading);
        }
        if y < lo_y || y > hi_y {
            y = reflect(y, lo_y, hi_y);
            f.heading = wrap_angle(-f.heading);
        }
        f.spine[0] = [x, y];
        dir = [f.heading.cos(), f.heading.sin()];
        // Follow the leader: each joint keeps its distance to the one ahead, so the body
        // bends along the path the head took; a stiffness pulls each segment toward the
        // line of the one ahead, so a fish that turns on the spot swings its tail round
        // instead of folding.
        let seg = f.segment();
        let mut ahead_dir = [-dir[0], -dir[1]];
        for k in 1..SPINE_JOINTS {
            let (ahead, this) = (f.spine[k - 1], f.spine[k]);
            let d = [this[0] - ahead[0], this[1] - ahead[1]];
            let n = d[0].hypot(d[1]);
            let follow = if n > 1e-9 {
                [d[0] / n, d[1] / n]
            } else {
                ahead_dir
            };
            let u = [
                (1.0 - STIFFNESS) * follow[0] + STIFFNESS * ahead_dir[0],
                (1.0 - STIFFNESS) * follow[1] + STIFFNESS * ahead_dir[1],
            ];
            let n = u[0].hypot(u[1]).max(1e-9);
            let u = [u[0] / n, u[1] / n];
            f.spine[k] = [ahead[0] + seg * u[0], ahead[1] + seg * u[1]];
            ahead_dir = u;
        }
        // The tail beats faster and wider when the fish swims faster.
        let v = f.speed.min(9.0);
        f.tail_phase =
            (f.tail_phase + beh.tail_beat.0 + beh.tail_beat.1 * v) % std::f64::consts::TAU;
        f.tail_amplitude = beh.tail_sway.0 + beh.tail_sway.1 * v;
    }
}

/// Mirrors `v` back into `[lo, hi]` (a fast fish may overshoot a wall by a few pixels).
fn reflect(v: f64, lo: f64, hi: f64) -> f64 {
    if v < lo {
        (2.0 * lo - v).min(hi)
    } else if v > hi {
        (2.0 * hi - v).max(lo)
    } else {
        v
    }
}

/// Unit-less push away from the walls closer than `margin`: 0 at the margin, 1 at the wall.
fn wall_push(p: [f64; 2], b: Bounds, margin: f64) -> [f64; 2] {
    let near = |d: f64| ((margin - d) / margin).clamp(0.0, 1.0);
    [
        near(p[0] - b.left) - near(b.right - p[0]),
        near(p[1] - b.top) - near(b.bottom - p[1]),
    ]
}

fn wrap_angle(a: f64) -> f64 {
    let tau = std::f64::consts::TAU;
    let a = a.rem_euclid(tau);
    if a > std::f64::consts::PI {
        a - tau
    } else {
        a
    }
}

/// `a - b` wrapped into (-pi, pi].
fn angle_diff(a: f64, b: f64) -> f64 {
    wrap_angle(a - b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fish_stay_in_the_tank_and_chases_happen() {
        let mut tank = Tank::new(11, 6, Behaviour::default());
        for _ in 0..3000 {
            tank.step();
            for f in tank.fish() {
                let h = f.spine[0];
                let b = tank.bounds;
                assert!(h[0] >= b.left && h[0] <= b.right && h[1] >= b.top && h[1] <= b.bottom);
            }
        }
        let chases = tank.chases();
        assert!(!chases.is_empty(), "no chase in 100 s");
        for c in chases {
            assert_ne!(c.chaser, c.target);
            assert!(
                (15..=45).contains(&(c.end_frame - c.start_frame + 1)),
                "{c:?}"
            );
        }
    }

    #[test]
    fn a_display_comes_before_every_chase() {
        let beh = Behaviour::default();
        let mut tank = Tank::new(3, 6, beh);
        let mut displaying = vec![Vec::new(); 6];
        for _ in 0..3000 {
            tank.step();
            for (i, f) in tank.fish().iter().enumerate() {
                if let Mode::Displaying { rival, .. } = f.mode {
                    displaying[i].push((tank.frame(), rival, f.fins));
                }
            }
        }
        let chases = tank.chases();
        assert!(chases.len() > 10, "{} chases", chases.len());
        let (lo, hi) = beh.display_frames;
        for c in chases {
            let lasted = c.start_frame - c.display_frame;
            assert!((lo..=hi).contains(&lasted), "{c:?}");
            // Both fish displayed to each other on every frame of it, and by its end
            // their fins were spread.
            for (me, rival) in [(c.chaser, c.target), (c.target, c.chaser)] {
                let frames: Vec<_> = displaying[me]
                    .iter()
                    .filter(|d| (c.display_frame..c.start_frame).contains(&d.0))
                    .collect();
                assert_eq!(frames.len(), lasted, "{c:?}");
                assert!(frames.iter().all(|d| d.1 == rival), "{c:?}");
                assert!(frames.last().unwrap().2 > 0.9, "{c:?}");
            }
        }
    }

    #[test]
    fn a_fish_chases_no_two_fish_at_once() {
        let mut tank = Tank::new(5, 8, Behaviour::default());
        for _ in 0..3000 {
            tank.step();
        }
        let chases = tank.chases();
        for (k, a) in chases.iter().enumerate() {
            for b in &chases[k + 1..] {
                // A display and the chase after it, as one engagement.
                let overlap = a.display_frame <= b.end_frame && b.display_frame <= a.end_frame;
                let shared = [a.chaser, a.target]
                    .iter()
                    .any(|f| *f == b.chaser || *f == b.target);
                assert!(!(overlap && shared), "{a:?} and {b:?}");
            }
        }
    }
}
