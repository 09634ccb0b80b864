//! `hiwar bench turn`: when a turn is judged over, with Smart Turn and with silence alone, on
//! the end-of-turn clip set (assets/turns): a real recording with pauses mid-speech, and
//! kiosk sentences with a pause of 400, 600 or 800 ms where the sentence is plainly unfinished
//! — spliced into hiwar's own voice, and made by espeak-ng itself (an SSML break). Audio goes
//! through hearing's own listener (Silero VAD, the segmenter, Smart Turn) as fast as it can
//! run: the figures are decisions on the sample clock, and Smart Turn's own time per decision.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use hiwar_core::config::Config;
use hiwar_speech::hearing::{self, Boundary, Decide, Listener, SegmenterConfig, SileroVad, SmartTurn, Transcriber, TurnWaits, WINDOW};
use serde::Deserialize;

use crate::stats::p50_p95;

#[derive(Debug, Deserialize)]
struct ClipSet {
    real: Vec<Real>,
    synthetic: Synthetic,
}

#[derive(Debug, Deserialize)]
struct Real {
    file: String,
    pauses: Vec<(f64, f64)>,
    end: f64,
}

#[derive(Debug, Deserialize)]
struct Synthetic {
    en: Vec<String>,
    ar: Vec<String>,
}

/// A clip to judge: its 16 kHz audio, where pauses the speaker continues after lie (sample
/// ranges), and where the speech really ends.
pub struct TurnClip {
    pub name: String,
    pub lang: &'static str,
    pub audio: Vec<f32>,
    pub pauses: Vec<(u64, u64)>,
    pub end: u64,
}

/// What one way of ending turns did on the clip set.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Outcome {
    pub mode: String,
    pub lang: String,
    /// Pauses mid-speech.
    pub pauses: usize,
    /// Pauses that ended the turn (the person was cut off).
    pub cut: usize,
    /// Of those, the ones whose transcript stops mid-sentence, which the dialogue holds for
    /// the rest (`hiwar_speech::text::ends_unfinished`): not answered half-way.
    pub held: usize,
    /// Turns ended inside the speech anywhere else (a stop's closure, a breath): cut off where
    /// no pause was put.
    pub elsewhere: usize,
    /// What was heard at each cut (the transcript the dialogue would see).
    pub heard_at_cuts: Vec<String>,
    /// Turns whose real end was decided (not ended early nor missed).
    pub ends: usize,
    /// Milliseconds from the last voiced sample of a real end to the decision.
    pub end_delay_ms: Vec<f64>,
    /// Pauses judged unfinished whose words whisper heard as a finished question (each ended
    /// at `question_ms`): the words.
    pub questions: Vec<String>,
    /// Smart Turn's time per decision, ms.
    pub judge_ms: Vec<f64>,
    /// Smart Turn's probability of "complete" at each pause cut and at each end.
    pub p_pause: Vec<f64>,
    pub p_end: Vec<f64>,
    /// Its first answer inside every pause, cut or not.
    pub p_every_pause: Vec<f64>,
}

impl Outcome {
    /// How well Smart Turn's answers tell real ends from pauses: the share of (pause, end)
    /// pairs whose end it judged more complete (ties count half). 1: every end above every
    /// pause; 0.5: no better than chance. `None` without answers of both kinds.
    pub fn separation(&self) -> Option<f64> {
        if self.p_every_pause.is_empty() || self.p_end.is_empty() {
            return None;
        }
        let mut above = 0.0;
        for e in &self.p_end {
            for p in &self.p_every_pause {
                above += if e > p {
                    1.0
                } else if e == p {
                    0.5
                } else {
                    0.0
                };
            }
        }
        Some(above / (self.p_end.len() * self.p_every_pause.len()) as f64)
    }
}

const SR: u64 = 16_000;

fn samples(s: f64) -> u64 {
    (s * SR as f64) as u64
}

/// The clip set: the real recordings, then the synthetic sentences spoken by `voices`.
pub fn clips(config: &Config, dir: &Path) -> anyhow::Result<Vec<TurnClip>> {
    let toml = std::fs::read_to_string(dir.join("turns.toml")).with_context(|| format!("cannot read {}/turns.toml", dir.display()))?;
    let set: ClipSet = toml::from_str(&toml).context("turns.toml")?;
    let mut out = Vec::new();
    for r in &set.real {
        let audio = hearing::read_16k(&dir.join(&r.file))?;
        let pauses = r.pauses.iter().map(|(from, to)| (samples(*from), samples(*to))).collect();
        out.push(TurnClip { name: r.file.clone(), lang: "real", audio, pauses, end: samples(r.end) });
    }
    // The same clips every run: the voice without its random variation.
    let mut config = config.clone();
    config.voice.deterministic = true;
    let mut voices = hiwar_core::build::voices(&config, true)?;
    for (lang, sentences) in [("ar", &set.synthetic.ar), ("en", &set.synthetic.en)] {
        for (i, sentence) in sentences.iter().enumerate() {
            let (before, _) = sentence.split_once('|').with_context(|| format!("no | in {sentence:?}"))?;
            let cut_after = before.split_whitespace().count();
            let speech = voices.speak(&sentence.replace('|', " "))?.resampled(SR as u32)?;
            let words: Vec<_> = speech.words.iter().filter(|w| !w.joined).collect();
            let Some(cut) = words.get(cut_after.saturating_sub(1)).map(|w| w.end as usize) else {
                anyhow::bail!("{sentence:?}: no word {cut_after} in the timeline");
            };
            let end = last_voiced(&speech.samples);
            for pause_ms in [400u64, 600, 800] {
                let gap = (pause_ms * SR / 1000) as usize;
                let mut audio = vec![0.0; 8_000];
                audio.extend_from_slice(&speech.samples[..cut]);
                let at = audio.len() as u64;
                audio.extend(std::iter::repeat_n(0.0, gap));
                audio.extend_from_slice(&speech.samples[cut..]);
                let shift = 8_000 + gap as u64;
                out.push(TurnClip { name: format!("{lang}{} +{pause_ms} ms", i + 1), lang, audio, pauses: vec![(at, at + gap as u64)], end: end + shift });
            }
        }
    }
    out.extend(espeak_clips(&set.synthetic)?);
    Ok(out)
}

/// The same sentences in espeak-ng's voice, the pause made by the synthesiser itself (an SSML
/// `<break>` inside the sentence) rather than spliced into its audio: another voice and
/// another kind of pause, to tell what Smart Turn hears in people's pauses from what it hears
/// in one synthesiser's.
fn espeak_clips(set: &Synthetic) -> anyhow::Result<Vec<TurnClip>> {
    let mut out = Vec::new();
    for (lang, voice, speed, sentences) in [("ar-espeak", "ar", 130, &set.ar), ("en-espeak", "en-us", 150, &set.en)] {
        let espeak = hiwar_speech::voice::EspeakVoice { voice: voice.into(), speed };
        for (i, sentence) in sentences.iter().enumerate() {
            let (before, after) = sentence.split_once('|').with_context(|| format!("no | in {sentence:?}"))?;
            for pause_ms in [400u64, 600, 800] {
                let ssml = format!("<speak>{} <break time=\"{pause_ms}ms\"/> {}</speak>", before.trim(), after.trim());
                let speech = espeak.synthesize_ssml(&ssml)?.resampled(SR as u32)?;
                let pause = longest_gap(&speech.samples).with_context(|| format!("{sentence:?}: espeak-ng made no pause"))?;
                let mut audio = vec![0.0; 8_000];
                audio.extend_from_slice(&speech.samples);
                let shift = 8_000;
                let end = last_voiced(&speech.samples) + shift;
                out.push(TurnClip { name: format!("{lang}{} +{pause_ms} ms", i + 1), lang, audio, pauses: vec![(pause.0 + shift, pause.1 + shift)], end });
            }
        }
    }
    Ok(out)
}

/// The longest stretch of unvoiced 32 ms windows between two voiced ones (sample range), if
/// one is at least 250 ms long.
fn longest_gap(audio: &[f32]) -> Option<(u64, u64)> {
    const W: usize = 512;
    let voiced_at: Vec<usize> = audio.chunks(W).enumerate().filter(|(_, w)| voiced(w)).map(|(i, _)| i).collect();
    voiced_at.windows(2).map(|p| (((p[0] + 1) * W) as u64, (p[1] * W) as u64)).filter(|(from, to)| to - from >= SR / 4).max_by_key(|(from, to)| to - from)
}

fn voiced(w: &[f32]) -> bool {
    hearing::level_db(w) > -45.0
}

fn last_voiced(audio: &[f32]) -> u64 {
    audio.chunks(160).rposition(voiced).map_or(0, |i| ((i + 1) * 160) as u64)
}

/// ", asked at N ms" when Smart Turn is asked before the probe.
fn asked(w: TurnWaits) -> String {
    if w.early_ms == 0 { String::new() } else { format!(", asked at {} ms", w.probe_ms.saturating_sub(w.early_ms)) }
}

/// ", again at N ms if not sure" when a first answer under `sure` is checked.
pub(crate) fn confirmed(w: TurnWaits) -> String {
    if w.confirms() { format!(", again at {} ms if not sure", w.confirm_ms) } else { String::new() }
}

/// ", at N ms under P" when a "complete" under `sure` waits longer.
fn unsure(w: TurnWaits) -> String {
    if w.sure > w.threshold { format!(", at {} ms under {}", w.unsure_ms, w.sure) } else { String::new() }
}

/// ", N ms if a question" when a pause judged unfinished ends sooner on its words.
fn question(w: TurnWaits) -> String {
    if w.question_ms > 0 { format!("; {} ms if its words are a question", w.question_ms) } else { String::new() }
}

/// Runs `clips` through a listener ending turns `waits`' way (`None`: silence alone).
pub fn judge(config: &hearing::HearingConfig, clips: &[TurnClip], lang: &str, waits: Option<TurnWaits>, whisper: &Transcriber) -> anyhow::Result<Outcome> {
    let mode = match waits {
        Some(w) if w.reprobe_ms == 0 => {
            format!(
                "Smart Turn (at {} ms{}{}; {} ms if unfinished{}; p ≥ {}{})",
                w.probe_ms,
                asked(w),
                confirmed(w),
                w.incomplete_ms,
                question(w),
                w.threshold,
                unsure(w)
            )
        }
        Some(w) => format!(
            "Smart Turn (at {} ms{}{}, again every {} ms; {} ms at most{}; p ≥ {}{})",
            w.probe_ms,
            asked(w),
            confirmed(w),
            w.reprobe_ms,
            w.incomplete_ms,
            question(w),
            w.threshold,
            unsure(w)
        ),
        None => format!("silence alone ({} ms)", config.segmenter.end_silence_ms),
    };
    let mut out = Outcome { mode, lang: lang.into(), ..Outcome::default() };
    let seg = SegmenterConfig { turn: waits, ..config.segmenter };
    let mut vad = Some(SileroVad::load(&config.vad_model)?);
    let mut turn = match (waits, &config.smart_turn) {
        (Some(_), Some(path)) => Some(SmartTurn::load(path)?),
        (Some(_), None) => anyhow::bail!("Smart Turn is not available (hiwar models fetch smart-turn)"),
        (None, _) => None,
    };
    for clip in clips.iter().filter(|c| c.lang == lang) {
        let mut listener = Listener::with_turn(vad.take().context("vad")?, turn.take(), seg);
        // (start, last voiced, decided at, p(complete))
        let mut ended: Vec<(u64, u64, u64, Option<f32>)> = Vec::new();
        let mut input = clip.audio.clone();
        input.extend(std::iter::repeat_n(0.0, 3 * SR as usize));
        let mut record = |_: &Listener, b: Boundary| {
            if let Boundary::Ended { start, last_voiced, decided_at, turn } = b {
                ended.push((start, last_voiced, decided_at, turn));
            }
        };
        // Window by window, so that a pause judged unfinished can have its words heard: off
        // the clock they are ready at once, where live the speculative decode takes ~0.3 s
        // from the first silent window (under `question_ms` of silence).
        let mut decoded = None;
        // Smart Turn's answers, at the sample where each was given.
        let mut answers: Vec<(u64, Option<f32>)> = Vec::new();
        let mut at = 0u64;
        for window in input.chunks(512) {
            listener.push(window, &mut record)?;
            at += window.len() as u64;
            answers.extend(listener.take_judgements().into_iter().map(|j| {
                out.judge_ms.push(j.took.as_secs_f64() * 1e3);
                (at, j.complete)
            }));
            if let Some((start, last)) = listener.awaits_words().filter(|w| decoded != Some(*w)) {
                decoded = Some((start, last));
                // What the live speculative decode gets: the audio to the first silent window.
                let audio = listener.audio(start, last + WINDOW as u64);
                let heard = whisper.transcribe_with(0, audio, start, last, Decide::Full)?.map(|u| u.text).unwrap_or_default();
                if hiwar_speech::text::is_question(&heard) {
                    out.questions.push(heard);
                    listener.heard_question(last);
                }
            }
        }
        listener.finish(&mut record)?;
        out.judge_ms.extend(listener.take_judgements().iter().map(|j| j.took.as_secs_f64() * 1e3));
        (vad, turn) = {
            let (v, t) = listener.into_models();
            (Some(v), t)
        };
        // A decision inside the pause (from, to), or in the VAD's window after it.
        let within = |d: u64, (from, to): (u64, u64)| d > from && d <= to + 512;
        for &pause in &clip.pauses {
            out.pauses += 1;
            if let Some(p) = answers.iter().find(|(a, _)| within(*a, pause)).and_then(|(_, p)| *p) {
                out.p_every_pause.push(f64::from(p));
            }
            // Ended during the pause: the person was cut off.
            if let Some(&(start, last, _, p)) = ended.iter().find(|(_, _, d, _)| within(*d, pause)) {
                out.cut += 1;
                out.p_pause.extend(p.map(f64::from));
                let audio = &input[start as usize..(last as usize + 3_200).min(input.len())];
                let heard = whisper.transcribe_with(0, audio, start, last, Decide::Full)?.map(|u| u.text).unwrap_or_default();
                if hiwar_speech::text::ends_unfinished(&heard) {
                    out.held += 1;
                }
                out.heard_at_cuts.push(heard);
            }
        }
        // Ended before the real end, outside every pause: cut at a closure or a breath.
        out.elsewhere += ended.iter().filter(|(_, _, d, _)| *d <= clip.end && !clip.pauses.iter().any(|&pause| within(*d, pause))).count();
        // The real end: the decision after it (within the 3 s of silence that follows).
        if let Some(&(_, _, decided, p)) = ended.iter().find(|(_, _, d, _)| *d > clip.end) {
            out.ends += 1;
            out.end_delay_ms.push(decided.saturating_sub(clip.end) as f64 * 1e3 / SR as f64);
            out.p_end.extend(p.map(f64::from));
        }
    }
    Ok(out)
}

fn pct(n: usize, of: usize) -> f64 {
    if of == 0 { f64::NAN } else { 100.0 * n as f64 / of as f64 }
}

/// The benchmark: Smart Turn at the configured waits, and silence alone, per language.
pub fn run(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let mut hc = hiwar_core::build::hearing_config(config, None)?;
    if hc.smart_turn.is_none() {
        let store = hiwar_core::models::Store::open(config)?;
        hc.smart_turn = Some(store.verified_file(hiwar_core::build::SMART_TURN.0, hiwar_core::build::SMART_TURN.1)?);
    }
    let h = &config.hearing;
    let waits = hiwar_core::build::turn_waits(h);
    let dir = hiwar_core::assets::assets_dir().join("turns");
    let started = std::time::Instant::now();
    let set = clips(config, &dir)?;
    let synth_s = started.elapsed().as_secs_f64();
    let whisper = Transcriber::load(&hc)?;
    let mut rows = Vec::new();
    for lang in ["ar", "en", "ar-espeak", "en-espeak", "real"] {
        // As configured, asking again after an "incomplete" (if the config does not), and silence alone.
        let again = TurnWaits { reprobe_ms: if waits.reprobe_ms == 0 { 400 } else { 0 }, ..waits };
        for mode in [Some(waits), Some(again), None] {
            rows.push(judge(&hc, &set, lang, mode, &whisper)?);
        }
    }
    let real = set.iter().filter(|c| c.lang == "real").count();
    if json {
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("### Semantic end of turn\n");
    println!(
        "{} clips ({} synthetic, made in {synth_s:.0} s: \"ar\" and \"en\" in hiwar's voice with a pause of 400/600/800 ms spliced in mid-sentence,",
        set.len(),
        set.len() - real
    );
    println!("\"ar-espeak\" and \"en-espeak\" the same sentences in espeak-ng's voice with an SSML <break> of 400/600/800 ms there), fed through");
    println!("hearing's listener (Silero VAD, segmenter, Smart Turn v3.2) off the clock. \"real\" is assets/turns/jfk.wav.\n");
    println!("\"cut off\": the turn ended in a pause mid-sentence; \"left cut off\": of those, the ones whose transcript does not stop");
    println!("on a word no sentence ends on — the dialogue holds the others for the rest (up to hearing.turn_incomplete_ms).");
    println!(
        "\"heard as a question\": pauses Smart Turn judged unfinished whose words whisper heard as a finished question (\"?\", «؟»): ended at hearing.turn_question_ms."
    );
    println!("\"cut off elsewhere\": turns ended before the real end outside the inserted pauses (a stop's closure, a breath).");
    println!("\"ends above pauses\": the share of (pause, real end) pairs where Smart Turn's first answer in the pause was less sure of");
    println!("\"complete\" than its answer at the end (1: it tells every end from every pause; 0.5: chance).\n");
    println!(
        "| set | end of turn | pauses cut off | left cut off after the transcript check | cut off elsewhere | real ends decided | end → decision p50 / p95 | Smart Turn p(complete) at pauses cut / at every pause / at ends (median) | ends above pauses | pauses judged unfinished heard as a question |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut judge_ms = Vec::new();
    for r in &rows {
        let (d50, d95) = p50_p95(&r.end_delay_ms);
        let med = |v: &[f64]| if v.is_empty() { "—".to_string() } else { format!("{:.2}", p50_p95(v).0) };
        println!(
            "| {} | {} | {} of {} ({:.0} %) | {} ({:.0} %) | {} | {} | {d50:.0} / {d95:.0} ms | {} / {} / {} | {} | {} |",
            r.lang,
            r.mode,
            r.cut,
            r.pauses,
            pct(r.cut, r.pauses),
            r.cut - r.held,
            pct(r.cut - r.held, r.pauses),
            r.elsewhere,
            r.ends,
            med(&r.p_pause),
            med(&r.p_every_pause),
            med(&r.p_end),
            r.separation().map_or("—".to_string(), |a| format!("{a:.2}")),
            r.questions.len()
        );
        judge_ms.extend_from_slice(&r.judge_ms);
    }
    let (j50, j95) = p50_p95(&judge_ms);
    println!(
        "\nSmart Turn per decision (features + inference, one thread, nothing else running): {j50:.1} ms p50, {j95:.1} ms p95 over {} decisions.\n",
        judge_ms.len()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separation_is_the_share_of_ends_judged_above_pauses() {
        let out = |pauses: &[f64], ends: &[f64]| Outcome { p_every_pause: pauses.to_vec(), p_end: ends.to_vec(), ..Outcome::default() };
        assert_eq!(out(&[0.1, 0.2], &[0.9]).separation(), Some(1.0));
        assert_eq!(out(&[0.9, 0.95], &[0.1, 0.2]).separation(), Some(0.0));
        // One end above one of two pauses, and a tie: (1 + 0.5) / 2.
        assert_eq!(out(&[0.5, 0.8], &[0.5]).separation(), Some(0.25));
        assert_eq!(out(&[0.5, 0.3], &[0.5]).separation(), Some(0.75));
        assert_eq!(out(&[], &[0.5]).separation(), None);
    }

    #[test]
    fn the_longest_gap_is_found_between_voiced_windows() {
        let tone = |n: usize| (0..n).map(|i| 0.3 * (i as f32 * 0.2).sin()).collect::<Vec<f32>>();
        let mut audio = tone(8_000);
        audio.extend(vec![0.0; 3_000]); // 190 ms: too short to count
        audio.extend(tone(8_000));
        audio.extend(vec![0.0; 9_600]); // 600 ms
        audio.extend(tone(4_000));
        let (from, to) = longest_gap(&audio).expect("a gap");
        // Whole 512-sample windows: the gap starts after the window holding the tone's last
        // sample (at 19 000) and ends where the next voiced window begins (at 28 600).
        assert_eq!((from, to), (19_456, 28_160));
        assert_eq!(longest_gap(&tone(16_000)), None);
    }
}
