//! Idle life: blinks, eye saccades, breathing and small head motion, plus the poses that say
//! "I am listening" and "I am thinking", and a smile on greetings.
//!
//! Everything is a deterministic function of a seed and the times it is sampled at (the
//! random schedules are drawn in order, as far ahead as they are needed, whatever the sampling
//! pattern), so tests and headless renders are repeatable.

/// What the avatar is doing, as the dialogue loop reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activity {
    #[default]
    Idle,
    Listening,
    Thinking,
    Speaking,
}

/// The face's life at one instant, beside the mouth.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct IdleFrame {
    /// Eyelids: 0 open, 1 shut.
    pub blink: f32,
    /// Where the eyes look: yaw (positive to the avatar's left) and pitch (positive up), radians.
    pub gaze: [f32; 2],
    /// Head rotation: pitch (nod, positive up), yaw, roll (tilt), radians.
    pub head: [f32; 3],
    /// Chest rise, 0–1.
    pub breath: f32,
    pub brow_inner_up: f32,
    pub brow_down: f32,
    pub smile: f32,
    /// The mouth's corners down (concern, from the expression layer).
    pub frown: f32,
}

/// A small, fast, seedable generator (xorshift64*), so the crate needs no dependency.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // splitmix64 of the seed, so nearby seeds diverge and 0 is valid.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// Blink timing, seconds.
const BLINK_CLOSE: f64 = 0.07;
const BLINK_HOLD: f64 = 0.03;
const BLINK_OPEN: f64 = 0.12;
const BLINK_LENGTH: f64 = BLINK_CLOSE + BLINK_HOLD + BLINK_OPEN;
/// A saccade's travel time.
const SACCADE: f64 = 0.04;
/// How long a change of activity takes to settle into its pose.
const SETTLE: f64 = 0.35;

/// The random schedules and the state of transitions.
#[derive(Debug, Clone)]
pub struct IdleLife {
    blink_rng: Rng,
    gaze_rng: Rng,
    /// Blink start times, in order; drawn as far as sampling has needed.
    blinks: Vec<f64>,
    /// Saccade times and their random direction (each in [-1, 1]).
    saccades: Vec<(f64, [f32; 2])>,
    /// Phases of the head-motion oscillators.
    phases: [f64; 6],
    activity: Activity,
    previous: Activity,
    changed_at: f64,
    smiles: Vec<(f64, f64)>,
}

impl IdleLife {
    pub fn new(seed: u64) -> IdleLife {
        let mut rng = Rng::new(seed);
        let phases = std::array::from_fn(|_| rng.range(0.0, std::f64::consts::TAU));
        IdleLife {
            blink_rng: Rng::new(seed ^ 0xB1B1),
            gaze_rng: Rng::new(seed ^ 0x5ACC),
            blinks: Vec::new(),
            saccades: vec![(f64::NEG_INFINITY, [0.0, 0.0])],
            phases,
            activity: Activity::Idle,
            previous: Activity::Idle,
            changed_at: f64::NEG_INFINITY,
            smiles: Vec::new(),
        }
    }

    /// Reports a change of activity at `t` seconds; the pose eases into it.
    pub fn set_activity(&mut self, activity: Activity, t: f64) {
        if activity != self.activity {
            self.previous = self.activity;
            self.activity = activity;
            self.changed_at = t;
        }
    }

    pub fn activity(&self) -> Activity {
        self.activity
    }

    /// Smiles from `t` for `duration` seconds (a greeting).
    pub fn smile(&mut self, t: f64, duration: f64) {
        self.smiles.retain(|&(s, d)| s + d + 1.0 > t);
        self.smiles.push((t, duration.max(0.0)));
    }

    /// When blinks start, drawn up to at least `t`.
    fn blinks_until(&mut self, t: f64) -> &[f64] {
        while self.blinks.last().is_none_or(|&b| b < t + BLINK_LENGTH) {
            let last = self.blinks.last().copied().unwrap_or(0.0);
            // People blink every 2–6 s; about one blink in eight is a double.
            let next = last + self.blink_rng.range(2.0, 6.0);
            self.blinks.push(next);
            if self.blink_rng.unit() < 0.125 {
                self.blinks.push(next + BLINK_LENGTH + 0.06);
            }
        }
        &self.blinks
    }

    fn saccades_until(&mut self, t: f64) {
        while self.saccades.last().is_some_and(|&(s, _)| s <= t) {
            let last = self.saccades.last().map_or(0.0, |&(s, _)| s.max(0.0));
            let at = last + self.gaze_rng.range(0.6, 2.8);
            let dir = [self.gaze_rng.range(-1.0, 1.0) as f32, self.gaze_rng.range(-1.0, 1.0) as f32];
            self.saccades.push((at, dir));
        }
    }

    /// The face's life at `t` seconds.
    pub fn sample(&mut self, t: f64) -> IdleFrame {
        let blink = self.blink_at(t);
        let gaze = self.gaze_at(t);
        let settle = smoothstep(((t - self.changed_at) / SETTLE).clamp(0.0, 1.0) as f32);
        let pose = |a: Activity| pose_of(a);
        let (from, to) = (pose(self.previous), pose(self.activity));
        let mix = |a: f32, b: f32| a + (b - a) * settle;
        let p = &self.phases;
        let wave = |amp: f64, hz: f64, phase: f64| (amp * (std::f64::consts::TAU * hz * t + phase).sin()) as f32;
        let mut head = [
            wave(0.012, 0.13, p[0]) + wave(0.006, 0.31, p[1]),
            wave(0.025, 0.09, p[2]) + wave(0.01, 0.23, p[3]),
            wave(0.01, 0.07, p[4]) + wave(0.004, 0.19, p[5]),
        ];
        for (h, (a, b)) in head.iter_mut().zip(from.head.iter().zip(to.head)) {
            *h += mix(*a, b);
        }
        // About fourteen breaths a minute.
        let breath = (0.5 - 0.5 * (std::f64::consts::TAU * t / 4.3).cos()) as f32;
        let gaze = [
            gaze[0] * mix(from.gaze_spread, to.gaze_spread) + mix(from.gaze[0], to.gaze[0]),
            gaze[1] * mix(from.gaze_spread, to.gaze_spread) + mix(from.gaze[1], to.gaze[1]),
        ];
        IdleFrame {
            blink,
            gaze,
            head,
            breath,
            brow_inner_up: mix(from.brow_inner_up, to.brow_inner_up),
            brow_down: mix(from.brow_down, to.brow_down),
            smile: self.smile_at(t),
            frown: 0.0,
        }
    }

    fn blink_at(&mut self, t: f64) -> f32 {
        let blinks = self.blinks_until(t);
        let i = blinks.partition_point(|&b| b <= t);
        let Some(&start) = i.checked_sub(1).and_then(|j| blinks.get(j)) else { return 0.0 };
        let d = t - start;
        let v = if d < BLINK_CLOSE {
            d / BLINK_CLOSE
        } else if d < BLINK_CLOSE + BLINK_HOLD {
            1.0
        } else if d < BLINK_LENGTH {
            1.0 - (d - BLINK_CLOSE - BLINK_HOLD) / BLINK_OPEN
        } else {
            0.0
        };
        smoothstep(v as f32)
    }

    /// The random part of the gaze (each axis in [-1, 1] scaled later by the activity).
    fn gaze_at(&mut self, t: f64) -> [f32; 2] {
        self.saccades_until(t);
        let i = self.saccades.partition_point(|&(s, _)| s <= t);
        let (at, to) = self.saccades[i.saturating_sub(1)];
        let from = self.saccades.get(i.saturating_sub(2)).map_or([0.0, 0.0], |s| s.1);
        let k = smoothstep(((t - at) / SACCADE).clamp(0.0, 1.0) as f32);
        [from[0] + (to[0] - from[0]) * k, from[1] + (to[1] - from[1]) * k]
    }

    fn smile_at(&self, t: f64) -> f32 {
        self.smiles
            .iter()
            .map(|&(start, duration)| {
                let rise = ((t - start) / 0.3).clamp(0.0, 1.0);
                let fall = (1.0 - (t - start - duration) / 0.5).clamp(0.0, 1.0);
                smoothstep((rise.min(fall)) as f32) * 0.8
            })
            .fold(0.0, f32::max)
    }
}

/// What an activity adds to the idle motion.
struct Pose {
    head: [f32; 3],
    gaze: [f32; 2],
    /// How far the eyes wander (radians at full random deflection).
    gaze_spread: f32,
    brow_inner_up: f32,
    brow_down: f32,
}

fn pose_of(a: Activity) -> Pose {
    match a {
        // Looking around the room a little.
        Activity::Idle => Pose { head: [0.0; 3], gaze: [0.0, 0.0], gaze_spread: 0.14, brow_inner_up: 0.0, brow_down: 0.0 },
        // Attentive: a slight nod down and tilt, eyes on the person, brows a little raised.
        Activity::Listening => Pose { head: [-0.03, 0.0, 0.06], gaze: [0.0, 0.0], gaze_spread: 0.03, brow_inner_up: 0.2, brow_down: 0.0 },
        // Eyes up and aside, a small frown of concentration.
        Activity::Thinking => Pose { head: [0.04, -0.05, -0.02], gaze: [-0.2, 0.16], gaze_spread: 0.03, brow_inner_up: 0.25, brow_down: 0.15 },
        Activity::Speaking => Pose { head: [0.0; 3], gaze: [0.0, 0.0], gaze_spread: 0.04, brow_inner_up: 0.05, brow_down: 0.0 },
    }
}

fn smoothstep(x: f32) -> f32 {
    let x = x.clamp(0.0, 1.0);
    x * x * (3.0 - 2.0 * x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(seed: u64, step: f64, seconds: f64) -> Vec<IdleFrame> {
        let mut life = IdleLife::new(seed);
        (0..(seconds / step) as usize).map(|i| life.sample(i as f64 * step)).collect()
    }

    #[test]
    fn deterministic_under_a_seed_whatever_the_sampling() {
        assert_eq!(frames(7, 0.04, 30.0), frames(7, 0.04, 30.0));
        assert_ne!(frames(7, 0.04, 30.0), frames(8, 0.04, 30.0));
        // Sampling more densely does not change what happens at the shared instants.
        let coarse = frames(7, 0.04, 30.0);
        let fine = frames(7, 0.01, 30.0);
        for (i, f) in coarse.iter().enumerate() {
            assert_eq!(*f, fine[i * 4], "frame {i}");
        }
    }

    #[test]
    fn blinks_at_human_rates_with_some_doubles() {
        let f = frames(3, 0.01, 600.0);
        let closed: Vec<usize> = f.windows(2).enumerate().filter(|(_, w)| w[0].blink < 0.9 && w[1].blink >= 0.9).map(|(i, _)| i).collect();
        let per_minute = closed.len() as f64 / 10.0;
        assert!((9.0..=30.0).contains(&per_minute), "{per_minute} blinks a minute");
        let doubles = closed.windows(2).filter(|w| w[1] - w[0] < 50).count();
        assert!(doubles > 0, "no double blinks in ten minutes");
        // Fully shut for a moment, open most of the time.
        let open = f.iter().filter(|x| x.blink < 0.01).count() as f64 / f.len() as f64;
        assert!(open > 0.9, "open {open}");
    }

    #[test]
    fn activities_set_the_pose_smoothly() {
        let mut life = IdleLife::new(1);
        life.set_activity(Activity::Thinking, 1.0);
        let just_after = life.sample(1.01);
        let settled = life.sample(2.0);
        assert!(settled.brow_inner_up > 0.2 && just_after.brow_inner_up < 0.05);
        assert!(settled.gaze[1] > 0.1, "thinking looks up: {:?}", settled.gaze);
        life.smile(3.0, 1.0);
        assert!(life.sample(3.5).smile > 0.7 && life.sample(5.0).smile == 0.0);
        for f in frames(5, 0.05, 120.0) {
            let all = [f.blink, f.breath, f.brow_inner_up, f.brow_down, f.smile];
            assert!(all.iter().all(|v| (0.0..=1.0).contains(v)), "{f:?}");
            assert!(f.head.iter().chain(&f.gaze).all(|v| v.is_finite() && v.abs() < 0.5), "{f:?}");
        }
    }
}
