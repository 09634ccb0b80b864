//! `hiwar bench echo`: the echo canceller in a simulated room. The clip set's recordings
//! (assets/clips) stand in for 50 answers the speaker plays, one after another with half a
//! second between; the room delays them (20, 50, 80 ms), scales them (−6, 0, +6 dB) and adds
//! a decaying reverberant tail (RT60 250 ms); every fifth answer, a person (another clip)
//! starts talking over it one second in. The microphone signal goes through the canceller and
//! then hearing's own listener (Silero VAD and the segmenter), as fast as it can run.
//!
//! Figures: echo return loss enhancement where only the echo is present; the utterances the
//! VAD starts on the echo alone (each a self-interruption, before the dialogue's level-margin
//! guard), with and without the canceller; the person's voice found over the answer and how
//! long after its onset; and the canceller's CPU time per 10 ms frame. The microphone has a
//! −60 dBFS noise floor, so ERLE is bounded as in a real room.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use hiwar_core::config::Config;
use hiwar_speech::hearing::{self, Boundary, Canceller, FRAME_10MS, Listener, SegmenterConfig, SileroVad};

use crate::stats::p50_p95;

const SR: usize = 16_000;
const ANSWERS: usize = 50;
/// Every this many answers, a person talks over one.
const BARGE_EVERY: usize = 5;

/// The next value in [-1, 1) of a deterministic noise sequence (a linear congruential step).
fn noise(seed: &mut u32) -> f32 {
    *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
    (*seed >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
}

/// A room's impulse response: `delay_ms` of flight, `gain_db`, and a deterministic decaying
/// noise tail (RT60 250 ms) standing in for the walls.
pub fn room_response(delay_ms: usize, gain_db: f32) -> Vec<f32> {
    let d = delay_ms * SR / 1000;
    let g = 10f32.powf(gain_db / 20.0);
    let tail = SR / 4;
    let mut ir = vec![0.0; d + tail];
    ir[d] = g;
    let mut seed = 12_345u32;
    for i in 1..tail {
        ir[d + i] = g * 0.2 * noise(&mut seed) * (-6.9 * i as f32 / tail as f32).exp();
    }
    ir
}

/// `x` through the room `ir`, as long as `x` (a direct convolution over the non-zero taps).
pub fn through(x: &[f32], ir: &[f32]) -> Vec<f32> {
    let taps: Vec<(usize, f32)> = ir.iter().copied().enumerate().filter(|(_, h)| *h != 0.0).collect();
    let mut y = vec![0.0f32; x.len()];
    for (i, &s) in x.iter().enumerate() {
        if s == 0.0 {
            continue;
        }
        for &(k, h) in &taps {
            if i + k >= y.len() {
                break;
            }
            y[i + k] += s * h;
        }
    }
    y
}

/// One room's figures with one canceller's tuning.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// Which tuning: WebRTC's defaults, hiwar's, or a candidate (with the VAD's settings
    /// where they are not the configured ones).
    pub tuning: String,
    pub delay_ms: usize,
    pub gain_db: f32,
    /// Echo return loss enhancement where only the echo plays (after the first 2 s), dB.
    pub erle_db: f64,
    /// Utterances the VAD started on the echo alone (answers without a person over them).
    pub self_starts_raw: usize,
    pub self_starts_cancelled: usize,
    /// People talking over an answer, and how many the VAD found (within 1 s of their onset).
    pub barge_ins: usize,
    pub found: usize,
    /// Onset → the VAD's start decision, ms.
    pub found_after_ms: Vec<f64>,
    /// The canceller's time per 10 ms frame, µs.
    pub us_per_frame: f64,
}

struct Stream {
    far: Vec<f32>,
    near: Vec<f32>,
    /// (start, end) of each answer, and the person's onsets and ends.
    answers: Vec<(usize, usize)>,
    onsets: Vec<usize>,
    ends: Vec<usize>,
}

fn stream(clips: &[Vec<f32>], person: &[Vec<f32>]) -> Stream {
    let (mut far, mut near) = (Vec::new(), Vec::new());
    let (mut answers, mut onsets, mut ends) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..ANSWERS {
        let a = &clips[i % clips.len()];
        let start = far.len();
        far.extend_from_slice(a);
        far.extend(std::iter::repeat_n(0.0, SR / 2));
        near.resize(far.len(), 0.0);
        if i % BARGE_EVERY == BARGE_EVERY - 1 {
            let p = &person[(i / BARGE_EVERY) % person.len()];
            let at = start + SR;
            if near.len() < at + p.len() {
                far.resize(at + p.len(), 0.0);
                near.resize(at + p.len(), 0.0);
            }
            near[at..at + p.len()].iter_mut().zip(p).for_each(|(n, s)| *n += s);
            onsets.push(at);
            ends.push(at + p.len());
        }
        answers.push((start, start + a.len()));
    }
    Stream { far, near, answers, onsets, ends }
}

/// What the microphone hears in the room: `far` through `ir`, the person's `near` (nothing past
/// its end), and the room's own noise floor (−60 dBFS), as every microphone has.
fn microphone(far: &[f32], ir: &[f32], near: &[f32]) -> Vec<f32> {
    let mut seed = 777u32;
    through(far, ir)
        .iter()
        .enumerate()
        .map(|(i, e)| (e + near.get(i).copied().unwrap_or(0.0) + noise(&mut seed) * 0.001 * 3f32.sqrt()).clamp(-1.0, 1.0))
        .collect()
}

/// `mic` through `canceller` with `far` as its reference: the cleaned samples, and per 10 ms
/// frame whether the answer played and the sound played so far.
fn cancelled(canceller: &mut Canceller, far: &[f32], mic: &[f32]) -> anyhow::Result<(Vec<f32>, Vec<bool>, Vec<usize>)> {
    let (mut out, mut playing, mut sounding) = (Vec::new(), Vec::new(), Vec::new());
    for (f, m) in far.chunks(FRAME_10MS).zip(mic.chunks(FRAME_10MS)) {
        canceller.render(f);
        out.extend_from_slice(canceller.process(m)?);
        playing.push(canceller.playing());
        sounding.push(canceller.sounding());
    }
    Ok((out, playing, sounding))
}

/// Whether the answer plays and whether the canceller is still learning the room, per 10 ms
/// frame, as the live listener is told.
#[derive(Debug, Clone, Copy, Default)]
struct Told {
    playing: bool,
    settling: bool,
}

/// Where the VAD started utterances in `audio` (the decision's sample position); `told`, per
/// 10 ms frame, is what the live listener is told of the answer.
fn starts(vad: &mut Option<SileroVad>, seg: SegmenterConfig, audio: &[f32], told: Option<&[Told]>) -> anyhow::Result<Vec<(u64, u64)>> {
    let mut listener = Listener::with_turn(vad.take().context("vad")?, None, seg);
    let mut found = Vec::new();
    let mut record = |l: &Listener, b: Boundary| {
        if let Boundary::Started { start } = b {
            found.push((start, l.position()));
        }
    };
    for (i, block) in audio.chunks(FRAME_10MS).enumerate() {
        let t = told.and_then(|t| t.get(i).copied()).unwrap_or_default();
        listener.set_playing(t.playing);
        listener.set_settling(t.settling);
        listener.push(block, &mut record)?;
    }
    listener.finish(&mut record)?;
    *vad = Some(listener.into_models().0);
    Ok(found)
}

fn energy(v: &[f32]) -> f64 {
    v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() + 1e-12
}

/// The suppressor tunings `--sweep` measures beside WebRTC's defaults and hiwar's: each a
/// change to WebRTC's defaults. The dominant near-end detector switches the suppressor to its
/// gentler near-end masks while the microphone's low band holds `enr` times more near-end than
/// residual echo (WebRTC: 0.25) for `trigger` blocks of 4 ms (12), and keeps them `hold`
/// blocks (50).
fn candidates() -> Vec<(&'static str, hearing::Aec3Config)> {
    let with = |f: &dyn Fn(&mut hearing::Aec3Config)| {
        let mut c = hearing::Aec3Config::default();
        f(&mut c);
        c
    };
    let masks = hearing::nearend_transparency;
    vec![
        ("near-end ENR 1", with(&|c| c.suppressor.dominant_nearend_detection.enr_threshold = 1.0)),
        ("near-end ENR 4", with(&|c| c.suppressor.dominant_nearend_detection.enr_threshold = 4.0)),
        (
            "near-end ENR 4, trigger 6, hold 100",
            with(&|c| {
                let d = &mut c.suppressor.dominant_nearend_detection;
                (d.enr_threshold, d.trigger_threshold, d.hold_duration) = (4.0, 6, 100);
            }),
        ),
        ("near-end masks ×3", with(&|c| masks(c, 3.0))),
        (
            "near-end ENR 4, masks ×3",
            with(&|c| {
                c.suppressor.dominant_nearend_detection.enr_threshold = 4.0;
                masks(c, 3.0);
            }),
        ),
        ("subband near-end detection", with(&|c| c.suppressor.use_subband_nearend_detection = true)),
        (
            "near-end ENR 1, masks ×3",
            with(&|c| {
                c.suppressor.dominant_nearend_detection.enr_threshold = 1.0;
                masks(c, 3.0);
            }),
        ),
        ("near-end masks ×5", with(&|c| masks(c, 5.0))),
    ]
}

/// The linear filter's lengths `--sweep filter` tries beside hiwar's (WebRTC's 13), in AEC3's
/// 4 ms blocks: the refined and coarse filters after AEC3's initial state (its first 2.5 s of
/// sound keep WebRTC's 12).
const FILTER_BLOCKS: [(&str, usize); 3] =
    [("hiwar's, linear filter 26 blocks (104 ms)", 26), ("hiwar's, linear filter 40 blocks (160 ms)", 40), ("hiwar's, linear filter 64 blocks (256 ms)", 64)];

/// hiwar's tuning with a linear filter (refined and coarse) of `blocks` 4 ms blocks.
fn filter_length(blocks: usize) -> hearing::Aec3Config {
    let mut c = hearing::aec3_config();
    c.filter.refined.length_blocks = blocks;
    c.filter.coarse.length_blocks = blocks;
    c.validate();
    c
}

/// The sweep's row whose VAD hears AEC3's linear output (its ERLE is the linear filter's).
const LINEAR: &str = "hiwar's, the VAD on the linear output";

/// What `--sweep` measures beside hiwar's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// AEC3's suppressor tunings, and the VAD on its linear output.
    Aec,
    /// The VAD's start threshold and minimum speech on hiwar's cancelled signal.
    Vad,
    /// The length of AEC3's linear filter (hiwar's tuning otherwise).
    Filter,
    All,
}

/// The VAD settings `--sweep vad` tries on hiwar's cancelled signal, playing or not: (start
/// threshold, minimum speech ms). hiwar's own row is its configuration: a start at 0.5 and
/// 250 ms, 150 ms while the answer plays.
const VAD_CANDIDATES: [(f32, u32); 8] = [(0.5, 250), (0.35, 250), (0.25, 250), (0.5, 150), (0.35, 150), (0.5, 100), (0.35, 100), (0.25, 100)];

/// The rooms: (delay ms, echo gain dB).
const ROOMS: [(usize, f32); 5] = [(20, -6.0), (50, 0.0), (80, 6.0), (20, 0.0), (80, 0.0)];

/// One recording, 16 kHz.
type Audio = Vec<f32>;

/// The clip set's recordings: the answers the speaker plays, and the English questions people
/// say over them.
fn clips() -> anyhow::Result<(Vec<Audio>, Vec<Audio>)> {
    let dir = hiwar_core::assets::assets_dir().join("clips");
    let mut names: Vec<_> = std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    names.retain(|p| p.extension().is_some_and(|e| e == "wav"));
    names.sort();
    let (mut answers, mut people) = (Vec::new(), Vec::new());
    for p in &names {
        let audio = hearing::read_16k(p)?;
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        // Questions in English interrupt; everything else is an answer being played.
        if name.starts_with("en-") { people.push(audio) } else { answers.push(audio) }
    }
    anyhow::ensure!(!answers.is_empty() && !people.is_empty(), "no clips in {}", dir.display());
    Ok((answers, people))
}

pub fn measure(config: &Config, sweep: Option<Sweep>) -> anyhow::Result<Vec<Row>> {
    let hc = hiwar_core::build::hearing_config(config, None)?;
    let (answers, people) = clips()?;
    let s = stream(&answers, &people);
    // Silence-only segmentation: what matters here is whether speech starts at all.
    let seg = SegmenterConfig { turn: None, ..hc.segmenter };
    let mut vad = Some(SileroVad::load(&hc.vad_model)?);
    let mut rows = Vec::new();
    let mut tunings = vec![("WebRTC's defaults", hearing::Aec3Config::default()), ("hiwar's", hearing::aec3_config())];
    if matches!(sweep, Some(Sweep::Aec | Sweep::All)) {
        tunings.extend(candidates());
        // The VAD hearing the linear filter's output (the microphone less the modelled echo,
        // before the suppressor takes the rest, and with it much of a voice over the echo).
        let mut linear = hearing::aec3_config();
        linear.filter.export_linear_aec_output = true;
        tunings.push((LINEAR, linear));
    }
    if matches!(sweep, Some(Sweep::Filter | Sweep::All)) {
        tunings.extend(FILTER_BLOCKS.iter().map(|&(name, blocks)| (name, filter_length(blocks))));
    }
    for (tuning, aec) in &tunings {
        let use_linear = *tuning == LINEAR;
        let vads: Vec<Option<(f32, u32)>> = if *tuning == "hiwar's" && matches!(sweep, Some(Sweep::Vad | Sweep::All)) {
            std::iter::once(None).chain(VAD_CANDIDATES.iter().copied().map(Some)).collect()
        } else {
            vec![None]
        };
        for &(delay_ms, gain_db) in &ROOMS {
            let ir = room_response(delay_ms, gain_db);
            let mic = microphone(&s.far, &ir, &s.near);
            let mut canceller = Canceller::with_config(aec);
            let mut out = Vec::with_capacity(mic.len());
            // Whether the answer was playing at each 10 ms frame, as the live listener is told.
            let mut playing = Vec::with_capacity(mic.len() / FRAME_10MS + 1);
            let started = Instant::now();
            for (i, (far, near)) in s.far.chunks(FRAME_10MS).zip(mic.chunks(FRAME_10MS)).enumerate() {
                // The person's voice over the answer has ended after the answer did: the
                // canceller settles again, as the live hearing thread tells it when such an
                // utterance ends (here the answers play on, so only a voice that outlasts one).
                if s.ends.iter().any(|&e| e / FRAME_10MS == i) && !canceller.playing() {
                    canceller.doubt();
                }
                canceller.render(far);
                let suppressed = canceller.process(near)?;
                if use_linear {
                    out.extend_from_slice(canceller.linear());
                } else {
                    out.extend_from_slice(suppressed);
                }
                playing.push(Told { playing: canceller.playing(), settling: canceller.settling() });
            }
            let us_per_frame = started.elapsed().as_secs_f64() * 1e6 / (mic.len() / FRAME_10MS) as f64;
            // ERLE where only the echo plays: answers without a person, after 2 s to converge.
            let echo_only: Vec<(usize, usize)> = s
                .answers
                .iter()
                .copied()
                .filter(|&(a, b)| a > 2 * SR && !s.onsets.iter().any(|&o| o >= a && o < b + SR / 2))
                .map(|(a, b)| (a, b.min(out.len())))
                .collect();
            let (num, den) = echo_only.iter().fold((0.0, 0.0), |(n, d), &(a, b)| (n + energy(&mic[a..b]), d + energy(&out[a..b])));
            let erle_db = 10.0 * (num / den).log10();
            let alone = |found: &[(u64, u64)]| {
                found.iter().filter(|(start, _)| !s.onsets.iter().any(|&o| (*start as usize) + SR / 2 >= o && (*start as usize) < o + 4 * SR)).count()
            };
            let raw = starts(&mut vad, seg, &mic, None)?;
            for v in &vads {
                let seg = match *v {
                    None => seg,
                    Some((start_threshold, ms)) => SegmenterConfig { start_threshold, min_speech_ms: ms, min_speech_playing_ms: ms, ..seg },
                };
                let cancelled = starts(&mut vad, seg, &out, Some(&playing))?;
                let mut found_after_ms = Vec::new();
                for &o in &s.onsets {
                    if let Some(&(_, at)) = cancelled.iter().find(|(_, at)| (*at as usize) >= o && (*at as usize) < o + SR) {
                        found_after_ms.push((at as usize - o) as f64 * 1e3 / SR as f64);
                    }
                }
                let tuning = match v {
                    None => tuning.to_string(),
                    Some((start, ms)) => format!("{tuning}, VAD start {start}, {ms} ms playing or not"),
                };
                rows.push(Row {
                    tuning,
                    delay_ms,
                    gain_db,
                    erle_db,
                    self_starts_raw: alone(&raw),
                    self_starts_cancelled: alone(&cancelled),
                    barge_ins: s.onsets.len(),
                    found: found_after_ms.len(),
                    found_after_ms,
                    us_per_frame,
                });
            }
        }
    }
    Ok(rows)
}

/// One tuning and room of [`cold`]: of `answers`, how many the VAD started on under each of
/// [`COLD_RULES`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct ColdRow {
    pub tuning: &'static str,
    pub delay_ms: usize,
    pub gain_db: f32,
    pub answers: usize,
    pub started: Vec<usize>,
}

/// What [`cold`] tries: the minimum voice while the answer plays, and how much sound a new
/// canceller plays before speech may start (16 kHz samples; hiwar's: [`hearing::SETTLE`]).
const COLD_RULES: [(&str, u32, usize); 8] = [
    ("50 ms", 50, 0),
    ("100 ms", 100, 0),
    ("150 ms", 150, 0),
    ("250 ms", 250, 0),
    ("150 ms, none in the first 1 s", 150, 16_000),
    ("150 ms, none in the first 2 s", 150, 32_000),
    ("150 ms, none in the first 3 s", 150, 48_000),
    ("150 ms, none in the first 4 s (hiwar's)", 150, hearing::SETTLE),
];

/// The canceller's first answer: each answer clip alone, after half a second of silence, in
/// each room, through a fresh canceller — as a kiosk's first answer after a start, or after
/// the microphone came back, is heard. Returns, per tuning and room, how many of the answers
/// the VAD started on under each of [`COLD_RULES`], and the latest such start with the 150 ms
/// rule alone (ms into the answer).
pub fn cold(config: &Config) -> anyhow::Result<(Vec<ColdRow>, f64)> {
    let hc = hiwar_core::build::hearing_config(config, None)?;
    let (answers, _) = clips()?;
    let mut vad = Some(SileroVad::load(&hc.vad_model)?);
    let mut rows = Vec::new();
    let mut latest = f64::NEG_INFINITY;
    let mut conservative = hearing::aec3_config();
    conservative.filter.conservative_initial_phase = true;
    let mut initial5 = hearing::aec3_config();
    initial5.filter.initial_state_seconds = 5.0;
    let tunings = [("hiwar's", hearing::aec3_config()), ("conservative initial phase", conservative), ("initial state 5 s", initial5)];
    for (tuning, aec) in &tunings {
        for &(delay_ms, gain_db) in &ROOMS {
            let ir = room_response(delay_ms, gain_db);
            let mut started = vec![0; COLD_RULES.len()];
            for a in &answers {
                let mut far = vec![0.0; SR / 2];
                far.extend_from_slice(a);
                far.extend(std::iter::repeat_n(0.0, SR / 2));
                let mic = microphone(&far, &ir, &[]);
                let (out, playing, sounding) = cancelled(&mut Canceller::with_config(aec), &far, &mic)?;
                for (count, &(_, ms, settle)) in started.iter_mut().zip(&COLD_RULES) {
                    let seg = SegmenterConfig { turn: None, min_speech_playing_ms: ms, ..hc.segmenter };
                    let told: Vec<Told> = playing.iter().zip(&sounding).map(|(&p, &s)| Told { playing: p, settling: p && s < settle }).collect();
                    let found = starts(&mut vad, seg, &out, Some(&told))?;
                    if settle == 0 && ms == 150 {
                        latest = found.iter().map(|(_, at)| (*at as f64 - (SR / 2) as f64) * 1e3 / SR as f64).fold(latest, f64::max);
                    }
                    *count += usize::from(!found.is_empty());
                }
            }
            rows.push(ColdRow { tuning, delay_ms, gain_db, answers: answers.len(), started });
        }
    }
    Ok((rows, latest))
}

/// What [`after_barge_in`] tries: how much of the next answer's sound plays before speech may
/// start again after a voice that stopped an answer (16 kHz samples; hiwar's:
/// [`hearing::RESETTLE`]).
const RESETTLE_RULES: [(&str, usize); 5] = [("none", 0), ("0.5 s", 8_000), ("1 s", 16_000), ("1.5 s (hiwar's)", hearing::RESETTLE), ("2 s", 32_000)];

/// How long after a person's onset the answer they talk over goes quiet: the dialogue's 700 ms
/// of voice going on (`dialogue.interruption_ms`) and the player's fade (`bench loop --only
/// barge`: 726 ms to the decision, ~30 ms more to silence).
const BARGE_STOP: usize = SR * 3 / 4;

/// One room of [`after_barge_in`]: of `trials` answers played after an interrupted one, how
/// many the VAD started on under each of [`RESETTLE_RULES`], and the latest such start with no
/// rule (ms of the answer's sound).
#[derive(Debug, Clone, serde::Serialize)]
pub struct AfterRow {
    /// Whether a person's voice stopped the answer before (else it was stopped with no voice,
    /// as a control).
    pub voice: bool,
    pub delay_ms: usize,
    pub gain_db: f32,
    pub trials: usize,
    pub started: Vec<usize>,
    pub latest_ms: f64,
}

/// The answer after a barge-in: through a canceller that has settled (two answers played),
/// an answer plays, a person talks over it from 1 s in and it stops 750 ms later, the person
/// finishes, and after 1 s the next answer plays whole. Counts the next answers the VAD
/// started on (its echo alone: the person has finished), per room, with the voice and, as a
/// control, with the answer stopped the same way and no voice.
pub fn after_barge_in(config: &Config) -> anyhow::Result<Vec<AfterRow>> {
    let hc = hiwar_core::build::hearing_config(config, None)?;
    let (answers, people) = clips()?;
    let mut vad = Some(SileroVad::load(&hc.vad_model)?);
    let seg = SegmenterConfig { turn: None, ..hc.segmenter };
    let trials = answers.len().min(12);
    let mut rows = Vec::new();
    for voice in [true, false] {
        for &(delay_ms, gain_db) in &ROOMS {
            let ir = room_response(delay_ms, gain_db);
            let (mut started, mut latest) = (vec![0; RESETTLE_RULES.len()], f64::NEG_INFINITY);
            for k in 0..trials {
                let n = answers.len();
                let (warm1, warm2, first, next) = (&answers[(k + 2) % n], &answers[(k + 3) % n], &answers[k], &answers[(k + 1) % n]);
                let person = &people[k % people.len()];
                let mut far = vec![0.0; SR / 2];
                for w in [warm1, warm2] {
                    far.extend_from_slice(w);
                    far.extend(std::iter::repeat_n(0.0, SR / 2));
                }
                // The interrupted answer, cut (a 10 ms fade) where the barge-in stops it.
                let onset = far.len() + SR;
                let cut = (SR + BARGE_STOP).min(first.len());
                far.extend_from_slice(&first[..cut]);
                let fade = FRAME_10MS.min(cut);
                let len = far.len();
                for (j, v) in far[len - fade..].iter_mut().enumerate() {
                    *v *= 1.0 - (j + 1) as f32 / fade as f32;
                }
                let person_end = onset + person.len();
                let next_start = person_end.max(far.len()) + SR;
                far.resize(next_start, 0.0);
                far.extend_from_slice(next);
                far.extend(std::iter::repeat_n(0.0, SR / 2));
                let mut near = vec![0.0; far.len()];
                if voice {
                    near[onset..person_end].iter_mut().zip(person).for_each(|(n, s)| *n = *s);
                }
                let mic = microphone(&far, &ir, &near);
                let (out, playing, sounding) = cancelled(&mut Canceller::new(), &far, &mic)?;
                // The sound played when the person finished (before the first frame from there).
                let from = match person_end.div_ceil(FRAME_10MS) {
                    0 => 0,
                    i if i < sounding.len() => sounding[i - 1],
                    _ => usize::MAX,
                };
                for (count, &(_, resettle)) in started.iter_mut().zip(&RESETTLE_RULES) {
                    let told: Vec<Told> = playing
                        .iter()
                        .zip(&sounding)
                        .map(|(&p, &s)| Told { playing: p, settling: p && (s < hearing::SETTLE || (s >= from && s - from < resettle)) })
                        .collect();
                    let found = starts(&mut vad, seg, &out, Some(&told))?;
                    // Starts once the person has finished: the next answer's echo alone.
                    let on_echo: Vec<u64> = found.iter().map(|&(_, at)| at).filter(|&at| at as usize >= person_end + SR / 4).collect();
                    if resettle == 0 {
                        // How far into the next answer's sound: the sounding count at the start.
                        for &at in &on_echo {
                            let frame = (at as usize / FRAME_10MS).min(sounding.len() - 1);
                            latest = latest.max((sounding[frame].saturating_sub(from)) as f64 * 1e3 / SR as f64);
                        }
                    }
                    *count += usize::from(!on_echo.is_empty());
                }
            }
            rows.push(AfterRow { voice, delay_ms, gain_db, trials, started, latest_ms: latest });
        }
    }
    Ok(rows)
}

/// The parts of `hiwar bench echo`, each on its own with `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// 50 answers through one canceller, a person over every fifth.
    Steady,
    /// Each answer through a fresh canceller.
    FirstAnswer,
    /// The answer after one a person stopped.
    AfterBargeIn,
}

pub fn run(config: &Config, json: bool, sweep: Option<Sweep>, only: Option<Part>) -> anyhow::Result<ExitCode> {
    let wants = |p: Part| only.is_none_or(|o| o == p);
    let rows = if wants(Part::Steady) { measure(config, sweep)? } else { Vec::new() };
    let (cold, latest) = if wants(Part::FirstAnswer) { cold(config)? } else { (Vec::new(), f64::NAN) };
    let after = if wants(Part::AfterBargeIn) { after_barge_in(config)? } else { Vec::new() };
    if json {
        let first = serde_json::json!({"rules": COLD_RULES.map(|r| r.0), "rows": cold, "latest_start_ms": latest});
        let next = serde_json::json!({"rules": RESETTLE_RULES.map(|r| r.0), "rows": after});
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"rows": rows, "first_answer": first, "after_barge_in": next}))?);
        return Ok(ExitCode::SUCCESS);
    }
    if wants(Part::Steady) {
        println!("echo cancellation (WebRTC AEC3, sonora) in a simulated room: {ANSWERS} answers, a person over every {BARGE_EVERY}th");
        println!(
            "| tuning | room | ERLE | VAD starts on the echo alone: raw → cancelled | person found over the answer | onset → found p50 / p95 | CPU per 10 ms frame |"
        );
        println!("|---|---|---|---|---|---|---|");
        for r in &rows {
            let (p50, p95) = p50_p95(&r.found_after_ms);
            println!(
                "| {} | {} ms, {:+} dB | {:.1} dB | {} → {} | {} of {} | {:.0} / {:.0} ms | {:.0} µs |",
                r.tuning, r.delay_ms, r.gain_db, r.erle_db, r.self_starts_raw, r.self_starts_cancelled, r.found, r.barge_ins, p50, p95, r.us_per_frame
            );
        }
    }
    if wants(Part::FirstAnswer) {
        println!(
            "\nThe canceller's first answer (a fresh canceller, each answer alone): answers the VAD started on, by the minimum voice while the answer plays \
             and the sound a new canceller plays before speech may start (hiwar's: 150 ms, {} s of sound)",
            hearing::SETTLE as f64 / SR as f64
        );
        println!("| tuning | room | answers | {} |", COLD_RULES.map(|r| r.0).join(" | "));
        println!("|---|---|---|{}", "---|".repeat(COLD_RULES.len()));
        for ColdRow { tuning, delay_ms, gain_db, answers, started } in &cold {
            println!("| {tuning} | {delay_ms} ms, {gain_db:+} dB | {answers} | {} |", started.iter().map(ToString::to_string).collect::<Vec<_>>().join(" | "));
        }
        println!("\nThe latest start on a first answer's echo with 150 ms alone: {latest:.0} ms into the answer.");
    }
    if wants(Part::AfterBargeIn) {
        println!(
            "\nThe answer after a barge-in (a settled canceller; an answer stopped {} ms after a person starts over it; the next answer 1 s after they finish): \
             next answers the VAD started on, by the sound played before speech may start again (hiwar's: {} s)",
            BARGE_STOP * 1000 / SR,
            hearing::RESETTLE as f64 / SR as f64
        );
        println!("| stopped by | room | answers | {} | latest start, none (ms of its sound) |", RESETTLE_RULES.map(|r| r.0).join(" | "));
        println!("|---|---|---|{}---|", "---|".repeat(RESETTLE_RULES.len()));
        for AfterRow { voice, delay_ms, gain_db, trials, started, latest_ms } in &after {
            let by = if *voice { "a voice" } else { "nothing (control)" };
            let latest = if latest_ms.is_finite() { format!("{latest_ms:.0}") } else { "—".to_string() };
            println!(
                "| {by} | {delay_ms} ms, {gain_db:+} dB | {trials} | {} | {latest} |",
                started.iter().map(ToString::to_string).collect::<Vec<_>>().join(" | ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
