//! Lip-sync from a phoneme timeline: dominance blending with bilabial closure.
//!
//! Each sound has a target mouth shape and a dominance over time (Cohen & Massaro's model):
//! full strength across the middle of the sound, decaying exponentially before it
//! (anticipation) and after it (carry-over). The mouth at any instant is the
//! dominance-weighted mean of the targets around it. Because the whole timeline is known
//! before it plays, this looks ahead without lagging. Lips that must touch (ب م p b m) are
//! then forced shut across a window at least 40 ms wide, so a 25 fps frame always catches the
//! closure even when the sound lasts 20 ms.

use crate::viseme::{Kind, Sound, Viseme, classify};
use crate::{SamplePos, Timeline};

/// The mouth at one instant: viseme weights (they sum to at most 1) and how far the jaw is
/// open, 0–1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mouth {
    pub visemes: [f32; Viseme::COUNT],
    pub jaw: f32,
}

impl Mouth {
    /// Closed and relaxed.
    pub const REST: Mouth = Mouth { visemes: one_hot(Viseme::Sil, 1.0), jaw: 0.0 };

    /// `viseme` at `amount` (the rest of the weight relaxed), with its own jaw opening.
    pub fn of(viseme: Viseme, amount: f32) -> Mouth {
        let mut visemes = one_hot(viseme, amount);
        visemes[Viseme::Sil.index()] += 1.0 - amount;
        Mouth { visemes, jaw: viseme.jaw() * amount }
    }

    pub fn weight(&self, v: Viseme) -> f32 {
        self.visemes[v.index()]
    }

    /// The strongest viseme.
    pub fn dominant(&self) -> Viseme {
        let mut best = Viseme::Sil;
        for v in Viseme::ALL {
            if self.weight(v) > self.weight(best) {
                best = v;
            }
        }
        best
    }

    /// `self` moved towards `other` by `t` (0 = self, 1 = other).
    pub fn lerp(&self, other: &Mouth, t: f32) -> Mouth {
        let mut out = *self;
        for (o, b) in out.visemes.iter_mut().zip(other.visemes) {
            *o += (b - *o) * t;
        }
        out.jaw += (other.jaw - out.jaw) * t;
        out
    }

    fn add_scaled(&mut self, other: &Mouth, k: f32) {
        for (o, b) in self.visemes.iter_mut().zip(other.visemes) {
            *o += b * k;
        }
        self.jaw += other.jaw * k;
    }

    fn scaled(mut self, k: f32) -> Mouth {
        for v in &mut self.visemes {
            *v *= k;
        }
        self.jaw *= k;
        self
    }
}

const fn one_hot(v: Viseme, amount: f32) -> [f32; Viseme::COUNT] {
    let mut a = [0.0; Viseme::COUNT];
    a[v as usize] = amount;
    a
}

/// One sound's contribution: where it is, what shape it wants, how strongly.
#[derive(Debug, Clone, Copy)]
struct Segment {
    start: f64,
    end: f64,
    target: Mouth,
    /// Dominance at full strength.
    strength: f32,
    /// Time constants of the decay before and after the sound, seconds.
    anticipation: f64,
    carry_over: f64,
    /// The share of the sound held at full strength (0.8: all but the edges).
    plateau: f64,
    bilabial: bool,
}

impl Segment {
    fn center(&self) -> f64 {
        0.5 * (self.start + self.end)
    }

    /// Half the width of the full-strength middle.
    fn plateau(&self) -> f64 {
        self.plateau * (self.end - self.start)
    }

    fn dominance(&self, t: f64) -> f32 {
        let d = t - self.center();
        let outside = d.abs() - self.plateau();
        if outside <= 0.0 {
            return self.strength;
        }
        let tau = if d < 0.0 { self.anticipation } else { self.carry_over };
        self.strength * (-outside / tau).exp() as f32
    }

    /// How firmly the lips must be shut at `t`: 1 across a window at least 40 ms wide
    /// around the middle of a bilabial, ramping to 0 over 25 ms either side.
    fn closure(&self, t: f64) -> f32 {
        const MIN_HALF: f64 = 0.020;
        const RAMP: f64 = 0.025;
        let half = (0.5 * (self.end - self.start) - 0.005).max(MIN_HALF);
        let outside = (t - self.center()).abs() - half;
        if outside <= 0.0 { 1.0 } else { (1.0 - outside / RAMP).max(0.0) as f32 }
    }
}

/// How far around an instant sounds still matter, seconds (the slowest decay dies out well
/// within it).
const REACH: f64 = 0.6;

/// The relaxed mouth's own small, constant dominance: far from any sound the mouth rests.
const REST_DOMINANCE: f32 = 0.01;

/// How far the mouth runs ahead of the sound, seconds. A mouth slightly ahead looks natural,
/// one behind looks dubbed (ITU-R BT.1359; ../shared/ARABIC.md); 10 ms centres the measured
/// onsets and closures of the rendered face on the sound (docs/benchmarks.md, face).
pub const LEAD: f64 = 0.010;

/// Lip-sync for everything the voice has queued on the played-sample clock.
#[derive(Debug, Clone)]
pub struct LipSync {
    sample_rate: u32,
    /// Ordered by start time (chunks are appended in playing order).
    segments: Vec<Segment>,
}

impl LipSync {
    /// An empty lip-sync counting time in samples at `sample_rate`.
    pub fn new(sample_rate: u32) -> LipSync {
        LipSync { sample_rate: sample_rate.max(1), segments: Vec::new() }
    }

    /// Lip-sync for one timeline starting at sample 0.
    pub fn from_timeline(timeline: &Timeline) -> LipSync {
        let mut l = LipSync::new(timeline.sample_rate);
        l.push(timeline, 0);
        l
    }

    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Adds a chunk's timeline whose sample 0 plays at `offset` on this lip-sync's clock.
    /// A timeline at another sample rate is converted.
    pub fn push(&mut self, timeline: &Timeline, offset: SamplePos) {
        let rate = f64::from(timeline.sample_rate.max(1));
        let base = offset as f64 / f64::from(self.sample_rate);
        let entries: Vec<(f64, f64, &str)> =
            timeline.phonemes.iter().map(|p| (base + p.start as f64 / rate, base + p.end.max(p.start) as f64 / rate, p.phoneme.as_str())).collect();
        let new = segments(&entries);
        // Keep the order by start even if a caller pushes out of order.
        if self.segments.last().zip(new.first()).is_some_and(|(a, b)| a.start > b.start) {
            self.segments.extend(new);
            self.segments.sort_by(|a, b| a.start.total_cmp(&b.start));
        } else {
            self.segments.extend(new);
        }
    }

    /// Drops everything (barge-in: the voice was cut off).
    pub fn clear(&mut self) {
        self.segments.clear();
    }

    /// Drops what ended long enough before `pos` to no longer matter.
    pub fn forget_before(&mut self, pos: SamplePos) {
        let t = self.seconds(pos) - REACH;
        let keep_from = self.segments.partition_point(|s| s.end < t);
        self.segments.drain(..keep_from);
    }

    /// When the last queued sound ends, in samples (0 if nothing is queued).
    pub fn end(&self) -> SamplePos {
        let end = self.segments.iter().map(|s| s.end).fold(0.0_f64, f64::max);
        (end * f64::from(self.sample_rate)).round() as SamplePos
    }

    fn seconds(&self, pos: SamplePos) -> f64 {
        pos as f64 / f64::from(self.sample_rate)
    }

    /// The mouth at sample `pos` of the played-sample clock.
    pub fn sample(&self, pos: SamplePos) -> Mouth {
        self.sample_at(self.seconds(pos))
    }

    /// The mouth at `t` seconds on the same clock (it shows the sound [`LEAD`] ahead).
    pub fn sample_at(&self, t: f64) -> Mouth {
        self.sample_exact(t + LEAD)
    }

    /// The mouth for the sound at exactly `t` seconds, with no lead.
    pub fn sample_exact(&self, t: f64) -> Mouth {
        let mut sum = Mouth::REST.scaled(REST_DOMINANCE);
        let mut total = REST_DOMINANCE;
        let mut closure = 0.0_f32;
        // Segments are ordered by start; any that can reach `t` start after t - REACH - their
        // own length, so scan from a little earlier than that.
        let from = self.segments.partition_point(|s| s.start < t - 2.0 * REACH);
        for s in &self.segments[from..] {
            if s.start > t + REACH {
                break;
            }
            if s.end < t - REACH {
                continue;
            }
            let d = s.dominance(t);
            if d > 0.0 {
                sum.add_scaled(&s.target, d);
                total += d;
            }
            if s.bilabial {
                closure = closure.max(s.closure(t));
            }
        }
        let blended = sum.scaled(1.0 / total);
        if closure > 0.0 { blended.lerp(&Mouth::of(Viseme::PP, 1.0), closure) } else { blended }
    }
}

/// The per-sound segments of one timeline (times in seconds).
fn segments(entries: &[(f64, f64, &str)]) -> Vec<Segment> {
    // Modifiers standing alone (ˤ after s, say) belong to the sound before them.
    let mut sounds: Vec<(f64, f64, Option<Sound>)> = Vec::with_capacity(entries.len());
    let mut word_gap: Vec<bool> = Vec::with_capacity(entries.len());
    for &(start, end, ph) in entries {
        let sound = classify(ph);
        match (sound, sounds.last_mut()) {
            (Some(s), Some(last)) if s.kind == Kind::Modifier => {
                last.1 = end;
                if let Some(prev) = &mut last.2 {
                    prev.emphatic |= s.emphatic;
                    prev.long |= s.long;
                }
            }
            _ => {
                sounds.push((start, end, sound));
                word_gap.push(ph == " ");
            }
        }
    }
    let vowel_near = |i: usize| -> Option<(usize, Sound)> {
        // The vowel a pharyngeal or glottal takes its shape from: the next one within the
        // word, else the one before.
        let next = sounds[i + 1..]
            .iter()
            .enumerate()
            .take_while(|(_, s)| s.2.is_some_and(|s| s.kind != Kind::Pause))
            .find_map(|(k, s)| s.2.filter(|s| s.kind == Kind::Vowel).map(|s| (i + 1 + k, s)));
        next.or_else(|| {
            sounds[..i]
                .iter()
                .enumerate()
                .rev()
                .take_while(|(_, s)| s.2.is_some_and(|s| s.kind != Kind::Pause))
                .find_map(|(k, s)| s.2.filter(|s| s.kind == Kind::Vowel).map(|s| (k, s)))
        })
    };
    let emphatic_next_to = |i: usize| {
        let near = |s: Option<&(f64, f64, Option<Sound>)>| s.and_then(|s| s.2).is_some_and(|s| s.emphatic);
        near(i.checked_sub(1).and_then(|j| sounds.get(j))) || near(sounds.get(i + 1))
    };
    let mut out = Vec::with_capacity(sounds.len());
    for (i, &(start, end, sound)) in sounds.iter().enumerate() {
        let Some(sound) = sound else {
            // A symbol the tables do not know: neutral and slightly open, weakly held.
            out.push(seg(start, end, Mouth::of(Viseme::E, 0.4), 0.5, false));
            continue;
        };
        let segment = match sound.kind {
            Kind::Pause => {
                // A word boundary inside running speech is not a rest: hold it weakly.
                // Padding and punctuation are real pauses.
                // A space right after punctuation continues that pause («آه. أنا»), however short.
                let after_pause = i > 0 && !word_gap[i - 1] && sounds[i - 1].2.is_some_and(|s| s.kind == Kind::Pause);
                if word_gap[i] && end - start < 0.08 && !after_pause {
                    seg(start, end, Mouth::REST, 0.15, false)
                } else {
                    // A real pause (the voice's timeline snaps it to the silence in the audio):
                    // the mouth closes as the sound stops and opens as it starts.
                    let mut s = seg(start, end, Mouth::REST, 5.0, false);
                    s.plateau = 0.5;
                    s.anticipation = 0.02;
                    s.carry_over = 0.012;
                    s
                }
            }
            Kind::Vowel => seg(start, end, vowel_target(sound, emphatic_next_to(i)), 1.0, false),
            Kind::Consonant => {
                let mut target = Mouth::of(sound.viseme, 1.0);
                if sound.emphatic {
                    // Pharyngealised: a little funnel and jaw.
                    target.visemes[Viseme::O.index()] += 0.15;
                    target.visemes[sound.viseme.index()] -= 0.15;
                    target.jaw += 0.05;
                }
                let strength = match sound.viseme {
                    // The closure window below shuts the lips; dominance only shapes the way in.
                    Viseme::PP => 2.0,
                    Viseme::FF => 2.0,
                    Viseme::U => 1.5,
                    Viseme::TH | Viseme::CH => 1.2,
                    Viseme::SS | Viseme::I => 1.0,
                    _ => 0.6,
                };
                let mut s = seg(start, end, target, strength, sound.viseme == Viseme::PP);
                if sound.viseme == Viseme::U {
                    s.anticipation = 0.09;
                }
                s
            }
            Kind::Pharyngeal | Kind::Glottal => {
                let vowel = vowel_near(i).map(|(j, v)| vowel_target(v, emphatic_next_to(j))).unwrap_or(Mouth::of(Viseme::Aa, 0.5));
                let target = if sound.kind == Kind::Pharyngeal {
                    let mut t = vowel;
                    t.jaw = (t.jaw * 1.15 + 0.08).min(1.0);
                    t
                } else {
                    // The glottal stop's closure is silent; the sound (and the mouth) comes
                    // with the vowel it starts.
                    vowel.lerp(&Mouth::REST, 0.2)
                };
                seg(start, end, target, if sound.kind == Kind::Glottal { 0.8 } else { 0.5 }, false)
            }
            Kind::Modifier => seg(start, end, Mouth::REST, 0.1, false),
        };
        out.push(segment);
    }
    out
}

fn seg(start: f64, end: f64, target: Mouth, strength: f32, bilabial: bool) -> Segment {
    let rounded = target.weight(Viseme::U) + target.weight(Viseme::O) > 0.5;
    Segment {
        start,
        end: end.max(start),
        target,
        strength,
        // Rounding is anticipated earlier than other gestures.
        anticipation: if rounded { 0.05 } else { 0.03 },
        carry_over: 0.02,
        plateau: 0.4,
        bilabial,
    }
}

/// A vowel's mouth: long vowels at full size, short ones smaller; next to an emphatic the
/// vowel backs (less spread, a little rounding, more jaw).
fn vowel_target(sound: Sound, emphatic: bool) -> Mouth {
    let amount = if sound.long { 1.0 } else { 0.75 };
    let mut m = Mouth::of(sound.viseme, amount);
    if sound.viseme == Viseme::RR {
        m.jaw = 0.3 * amount;
    }
    if emphatic {
        let spread = m.weight(Viseme::I) + m.weight(Viseme::E);
        m.visemes[Viseme::I.index()] *= 0.7;
        m.visemes[Viseme::E.index()] *= 0.7;
        m.visemes[Viseme::O.index()] += 0.3 * spread + 0.15 * m.weight(Viseme::Aa);
        m.visemes[Viseme::Aa.index()] *= 0.85;
        m.jaw = (m.jaw + 0.05).min(1.0);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TimedPhoneme;

    const RATE: u32 = 22_050;

    /// A timeline from (phoneme, milliseconds) pairs.
    fn timeline(parts: &[(&str, u64)]) -> Timeline {
        let mut pos = 0;
        let phonemes = parts
            .iter()
            .map(|&(p, ms)| {
                let start = pos;
                pos += ms * u64::from(RATE) / 1000;
                TimedPhoneme { phoneme: p.into(), start, end: pos }
            })
            .collect();
        Timeline { sample_rate: RATE, phonemes, words: vec![] }
    }

    /// The mouth for the sound at `pos`, without the lead (the model's own timing).
    fn exact(l: &LipSync, pos: SamplePos) -> Mouth {
        l.sample_exact(pos as f64 / f64::from(l.sample_rate()))
    }

    #[test]
    fn the_mouth_runs_a_little_ahead() {
        let t = marhaban();
        let l = LipSync::from_timeline(&t);
        let pos = middle(&t, 5);
        assert_eq!(l.sample(pos), l.sample_exact(pos as f64 / f64::from(RATE) + LEAD));
        const { assert!(LEAD > 0.0 && LEAD <= 0.02) };
    }

    fn middle(t: &Timeline, i: usize) -> SamplePos {
        (t.phonemes[i].start + t.phonemes[i].end) / 2
    }

    /// مرحبا بكم: m a r ħ a b a k u m
    fn marhaban() -> Timeline {
        timeline(&[
            ("_", 70),
            ("m", 58),
            ("a", 46),
            ("r", 58),
            ("ħ", 58),
            ("aː", 120),
            ("b", 46),
            ("i", 58),
            ("k", 58),
            ("u", 46),
            ("m", 46),
            (".", 104),
            ("_", 150),
        ])
    }

    #[test]
    fn bilabials_close_even_when_short() {
        let t = marhaban();
        let l = LipSync::from_timeline(&t);
        for i in [1, 6, 10] {
            let m = exact(&l, middle(&t, i));
            assert!(m.weight(Viseme::PP) > 0.95, "{} at {i}: {m:?}", t.phonemes[i].phoneme);
            assert!(m.jaw < 0.02, "jaw open during {}: {}", t.phonemes[i].phoneme, m.jaw);
        }
        // A 20 ms bilabial is held shut for at least 40 ms, so a 25 fps frame sees it.
        let t = timeline(&[("aː", 150), ("b", 20), ("aː", 150)]);
        let l = LipSync::from_timeline(&t);
        let c = middle(&t, 1) as i64;
        let ms = i64::from(RATE) / 1000;
        for off in [-19 * ms, 0, 19 * ms] {
            let m = exact(&l, (c + off) as u64);
            assert!(m.weight(Viseme::PP) > 0.95, "offset {off}: {m:?}");
        }
    }

    #[test]
    fn long_vowels_open_the_jaw() {
        let t = timeline(&[("_", 100), ("m", 60), ("aː", 200), ("_", 100)]);
        let l = LipSync::from_timeline(&t);
        let m = exact(&l, middle(&t, 2));
        assert_eq!(m.dominant(), Viseme::Aa);
        assert!(m.jaw > 0.6, "jaw {}", m.jaw);
        // The long vowel is open across most of its length, not only at its centre.
        let p = &t.phonemes[2];
        let late = exact(&l, p.start + (p.end - p.start) * 3 / 4);
        assert!(late.jaw > 0.5, "jaw late in the vowel {}", late.jaw);
    }

    #[test]
    fn silence_rests_and_pharyngeals_keep_the_vowel() {
        let t = marhaban();
        let l = LipSync::from_timeline(&t);
        let rest = exact(&l, middle(&t, 12));
        assert!(rest.jaw < 0.05 && rest.weight(Viseme::Sil) > 0.9, "{rest:?}");
        assert!(exact(&l, 0).jaw < 0.05);
        // ħ before aː keeps an open mouth rather than closing.
        let h = exact(&l, middle(&t, 4));
        assert!(h.jaw > 0.4, "ħ {h:?}");
    }

    #[test]
    fn rounding_is_anticipated() {
        // In "s u" the lips start rounding during the s.
        let t = timeline(&[("_", 100), ("s", 80), ("uː", 150), ("_", 100)]);
        let l = LipSync::from_timeline(&t);
        let during_s = exact(&l, t.phonemes[1].end - 10 * u64::from(RATE) / 1000);
        let before = timeline(&[("_", 100), ("s", 80), ("iː", 150), ("_", 100)]);
        let b = exact(&LipSync::from_timeline(&before), before.phonemes[1].end - 10 * u64::from(RATE) / 1000);
        assert!(during_s.weight(Viseme::U) > 0.2 && during_s.weight(Viseme::U) > b.weight(Viseme::U), "{during_s:?}");
    }

    #[test]
    fn a_space_after_punctuation_is_still_a_pause() {
        // «آه. أنا»: the voice puts a short space after the full stop; the mouth must not open
        // for the next vowel there (it did, 57 ms before the sound).
        let t = timeline(&[("aː", 120), ("h", 25), (".", 65), (" ", 73), ("ʔ", 48), ("a", 69), ("n", 58)]);
        let l = LipSync::from_timeline(&t);
        let in_space = exact(&l, t.phonemes[4].start - 15 * u64::from(RATE) / 1000);
        let vowel = exact(&l, middle(&t, 5));
        assert!(in_space.jaw < 0.25 * vowel.jaw, "mouth {in_space:?} in the pause, {vowel:?} in the vowel");
    }

    #[test]
    fn emphatics_back_the_vowel() {
        let plain = timeline(&[("s", 80), ("aː", 150)]);
        let emph = timeline(&[("s", 40), ("ˤ", 40), ("aː", 150)]);
        let m_plain = exact(&LipSync::from_timeline(&plain), middle(&plain, 1));
        let m_emph = exact(&LipSync::from_timeline(&emph), middle(&emph, 2));
        assert!(m_emph.weight(Viseme::O) > m_plain.weight(Viseme::O) + 0.05, "{m_emph:?} vs {m_plain:?}");
    }

    #[test]
    fn chunks_queue_on_one_clock_and_clear_on_barge_in() {
        let t = timeline(&[("m", 60), ("aː", 200), ("_", 100)]);
        let mut l = LipSync::new(RATE);
        l.push(&t, 0);
        l.push(&t, t.end());
        let second_a = t.end() + middle(&t, 1);
        assert!(exact(&l, second_a).jaw > 0.6);
        assert!(exact(&l, t.end() + middle(&t, 0)).weight(Viseme::PP) > 0.95);
        // Another voice's rate: 16 kHz positions land at the same times.
        let mut slow = t.clone();
        slow.sample_rate = 16_000;
        for p in &mut slow.phonemes {
            p.start = p.start * 16_000 / u64::from(RATE);
            p.end = p.end * 16_000 / u64::from(RATE);
        }
        let mut l2 = LipSync::new(RATE);
        l2.push(&slow, 0);
        assert!((exact(&l2, middle(&t, 1)).jaw - exact(&LipSync::from_timeline(&t), middle(&t, 1)).jaw).abs() < 0.02);
        l.forget_before(2 * t.end());
        l.clear();
        assert!(exact(&l, second_a).jaw < 0.01);
    }

    #[test]
    fn weights_stay_in_range_on_any_timeline() {
        // A deterministic scramble of every kind of entry, with zero-length and overlapping
        // spans, checked densely.
        let symbols = ["_", " ", "m", "aː", "ħ", "ʔ", "sˤ", "ˤ", "u", "iː", "ʃ", "f", "ɹ", "ˈɛ", "?", "§", "", "ɚ", "w", "j"];
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..50 {
            let mut pos = 0u64;
            let phonemes = (0..40)
                .map(|_| {
                    let p = symbols[(next() % symbols.len() as u64) as usize];
                    let len = next() % 4000;
                    let start = pos.saturating_sub(next() % 300);
                    pos += len;
                    TimedPhoneme { phoneme: p.into(), start, end: pos }
                })
                .collect();
            let l = LipSync::from_timeline(&Timeline { sample_rate: RATE, phonemes, words: vec![] });
            for s in (0..pos + 20_000).step_by(97) {
                let m = exact(&l, s);
                assert!((0.0..=1.0).contains(&m.jaw), "jaw {}", m.jaw);
                let sum: f32 = m.visemes.iter().sum();
                assert!(sum <= 1.0001 && m.visemes.iter().all(|w| (0.0..=1.0).contains(w)), "{m:?}");
            }
        }
    }
}
