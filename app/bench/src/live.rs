//! `hiwar bench loop`: the live loop measured end to end, against the stand-in LLM in-process.
//!
//! Recordings are fed at real time (as a microphone would deliver them) through hearing, the
//! mind asks the stand-in (answering at 0 ms or 300 ms time to first token), the voice speaks
//! on the real output device, and every time is taken against where the speech really is in
//! the input: the last voiced sample of each clip, the onset of each interruption.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hiwar_speech::hearing::{self, PacedSource, Source};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::standin::{Behaviour, Standin};
use hiwar_core::bus::Bus;
use hiwar_core::config::Config;
use hiwar_core::speaking::{Output, VoiceEvent, VoiceOut};
use hiwar_dialogue::live::{LoopOutcome, LoopSettings, live_loop};
use hiwar_dialogue::mind::Mind;
use hiwar_dialogue::turn::answer_turn;

/// A clip placed in the input: where its voice starts, and where each stretch of speech in it
/// ends (a pause of 450 ms or more ends one), in 16 kHz samples from the start of the input.
struct Placed {
    onset: u64,
    ends: Vec<u64>,
}

/// Voiced 10 ms windows (above −40 dBFS): the first voiced sample, and the end of every stretch
/// of speech followed by 450 ms of quiet (or by the end of the clip).
fn voiced_span(samples: &[f32]) -> (u64, Vec<u64>) {
    let loud: Vec<usize> = samples.chunks(160).enumerate().filter(|(_, w)| hearing::level_db(w) > -40.0).map(|(i, _)| i).collect();
    let mut ends: Vec<u64> = loud.windows(2).filter(|w| w[1] - w[0] > 45).map(|w| (w[0] as u64 + 1) * 160).collect();
    ends.extend(loud.last().map(|i| (*i as u64 + 1) * 160));
    (loud.first().map_or(0, |i| *i as u64 * 160), ends)
}

/// Clips with `gap_s` of silence after each; returns the input and where each voice is.
fn conversation(clips: &[&str], gap_s: f32) -> anyhow::Result<(Vec<f32>, Vec<Placed>)> {
    let (mut input, mut placed) = (Vec::new(), Vec::new());
    for name in clips {
        let clip = hearing::read_16k(&hiwar_core::assets::assets_dir().join("clips").join(name))?;
        let (a, ends) = voiced_span(&clip);
        let at = input.len() as u64;
        placed.push(Placed { onset: at + a, ends: ends.into_iter().map(|e| at + e).collect() });
        input.extend_from_slice(&clip);
        input.extend(std::iter::repeat_n(0.0, (gap_s * 16_000.0) as usize));
    }
    Ok((input, placed))
}

/// Runs the live loop once over `input` with the stand-in answering by `script`; returns what
/// happened and when the input started.
fn live_run(config: &Config, rt: &tokio::runtime::Runtime, input: Vec<f32>, script: Vec<Behaviour>) -> anyhow::Result<(LoopOutcome, Instant)> {
    let standin = rt.block_on(Standin::start(script))?;
    let mut config = config.clone();
    config.llm.base_url = standin.base_url.clone();
    config.llm.api_key_env.clear();
    let mind = Arc::new(Mind::from_config(&config)?);
    let voices = hiwar_core::build::voices(&config, true)?;
    let player = hiwar_speech::voice::Player::open(&config.audio.output_device)
        .map_err(|e| anyhow::anyhow!("bench loop needs an audio output (a PulseAudio null sink will do): {e}"))?;
    let hc = hiwar_dialogue::mind::hearing_config(&config, None)?;
    let _guard = rt.enter();
    let (voice, voice_events) = VoiceOut::start(voices, Output::Speaker(player), None);
    let voice = Arc::new(voice);
    let bus = Bus::new(4096);
    let (tx, rx) = mpsc::unbounded_channel();
    let hearing = hearing::Hearing::start(hc, Source::Paced(PacedSource { samples: input, rate: 16_000, block: 320 }))?;
    let t0 = Instant::now();
    let level = Arc::clone(&hearing.level);
    hiwar_dialogue::live::forward(hearing, voice_events, &tx);
    let settings = LoopSettings::from_config(&config);
    let outcome = rt.block_on(live_loop(mind, voice, bus, settings, level, rx, tx, CancellationToken::new()));
    Ok((outcome, t0))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn since(t: Option<Instant>, from: Instant) -> Option<f64> {
    t.map(|t| if t >= from { ms(t - from) } else { -ms(from - t) })
}

/// p50 and p95 (nearest rank) of `v`.
use crate::stats::p50_p95 as percentiles;

const CLIPS: [&str; 5] = ["en-passport.wav", "en-office.wav", "ar-passport.wav", "ar-office.wav", "mixed-emirates-id.wav"];

fn latency(config: &Config, rt: &tokio::runtime::Runtime, rounds: usize, ttfts: &[u64]) -> anyhow::Result<()> {
    println!("### Voice-to-voice latency\n");
    println!("End of speech (the clip's last voiced sample, fed at real time) → the answer's first sample at the");
    println!("listener (the speaker's played-sample clock, its latency included). Stand-in LLM on loopback.\n");
    let clips: Vec<&str> = CLIPS.iter().copied().cycle().take(CLIPS.len() * rounds.max(1)).collect();
    let mut summary = Vec::new();
    let h = &config.hearing;
    let end_of_turn = if h.end_of_turn == "smart" {
        let check = crate::turn::confirmed(hiwar_core::build::turn_waits(h));
        format!(
            "Smart Turn at {} ms of silence (asked {} ms before{check}), {} ms when judged incomplete",
            h.turn_probe_ms, h.turn_early_ms, h.turn_incomplete_ms
        )
    } else {
        format!("{} ms of silence", h.end_silence_ms)
    };
    println!("End of turn: {end_of_turn} (hearing.end_of_turn = \"{}\").\n", h.end_of_turn);
    for &ttft in ttfts {
        let (input, placed) = conversation(&clips, 9.0)?;
        let script = vec![Behaviour::Answer { text: None, ttft: Duration::from_millis(ttft), gap: Duration::from_millis(15) }];
        let (outcome, t0) = live_run(config, rt, input, script)?;
        let mut rows: Vec<[f64; 7]> = Vec::new();
        let mut detail =
            String::from("| turn | heard | → decision | → final | → sent | synthesis | device | end of speech → heard |\n|---|---|---|---|---|---|---|---|\n");
        // Each clip's turns: when a change alters how many turns a clip makes (a pause taken
        // for an end), the p50 over all turns moves for that alone; compare clip by clip.
        let mut per_clip: Vec<(&str, Vec<f64>)> = Vec::new();
        for r in outcome.turns.iter().filter(|r| !r.cancelled) {
            let t = &r.times;
            let (Some(hearing_end), Some(heard)) = (t.speech_end, t.answer_heard) else { continue };
            // The speech this turn answers: the stretch whose real end is nearest hearing's.
            let Some((clip, end)) = placed
                .iter()
                .enumerate()
                .flat_map(|(i, p)| p.ends.iter().map(move |e| (i, *e)))
                .map(|(i, e)| (i, t0 + Duration::from_secs_f64(e as f64 / 16_000.0)))
                .min_by_key(|(_, end)| (if *end > hearing_end { *end - hearing_end } else { hearing_end - *end }).as_millis())
            else {
                continue;
            };
            let (Some(decided), Some(fin)) = (since(t.decided, end), since(t.final_ready, end)) else { continue };
            let sent = since(r.first_chunk_sent, end).unwrap_or(f64::NAN);
            let total = since(Some(heard), end).unwrap_or(f64::NAN);
            rows.push([decided, fin - decided, r.first_token_ms.unwrap_or(f64::NAN), sent - fin, t.first_synth_ms, t.first_device_ms, total]);
            let name = clips[clip];
            match per_clip.iter_mut().find(|(n, _)| *n == name) {
                Some((_, totals)) => totals.push(total),
                None => per_clip.push((name, vec![total])),
            }
            let fields = [decided, fin - decided, sent - fin, t.first_synth_ms, t.first_device_ms].map(|v| format!("{v:.0}")).join(" | ");
            detail.push_str(&format!("| {} | {} | {fields} | {total:.0} ms |\n", r.turn, r.question));
        }
        let col = |i: usize| -> Vec<f64> { rows.iter().map(|r| r[i]).collect() };
        let (p50, p95) = percentiles(&col(6));
        let from_decision: Vec<f64> = rows.iter().map(|r| r[6] - r[0]).collect();
        let (d50, d95) = percentiles(&from_decision);
        println!(
            "TTFT {ttft} ms, {} turns: **{p50:.0} ms p50**, {p95:.0} ms p95 from the end of speech; {d50:.0} ms p50, {d95:.0} ms p95 from the end-pointing decision\n",
            rows.len()
        );
        println!("| stage (median of {} turns) | ms |", rows.len());
        println!("|---|---|");
        for (i, name) in [
            "end of speech → end-of-turn decision",
            "decision → final transcript (speculative decode, usually ready)",
            "question → LLM first token (retrieval + request + TTFT)",
            "final → first chunk sent to the voice (mind + first clause)",
            "first chunk synthesis (diacritiser + G2P + VITS)",
            "queued → heard (the device's buffer and latency)",
        ]
        .iter()
        .enumerate()
        {
            println!("| {name} | {:.0} |", percentiles(&col(i)).0);
        }
        println!("| **end of speech → first audio heard** | **{p50:.0}** |\n");
        println!("{detail}");
        println!("| clip ({} rounds) | turns answered | end of speech → heard, median |", rounds.max(1));
        println!("|---|---|---|");
        for (name, totals) in &per_clip {
            println!("| {name} | {} | {:.0} ms |", totals.len(), percentiles(totals).0);
        }
        println!();
        summary.push((ttft, p50, p95, d50, d95));
    }
    println!("| TTFT | p50 | p95 | p50 from the decision | p95 from the decision | goal |");
    println!("|---|---|---|---|---|---|");
    for (ttft, p50, p95, d50, d95) in summary {
        println!(
            "| {ttft} ms | {p50:.0} ms | {p95:.0} ms | {d50:.0} ms | {d95:.0} ms | {} |",
            if ttft == 0 { "≤ 800 ms p50 (≤ 300 from the decision)" } else { "—" }
        );
    }
    println!("\nRSS of this process after the live turns: {:.0} MB\n", rss_mb());
    Ok(())
}

fn barge(config: &Config, rt: &tokio::runtime::Runtime, n: usize) -> anyhow::Result<()> {
    println!("### Barge-in\n");
    println!("Each answer is interrupted by the next question, spoken 3.5 s after the previous one ends (the answer is");
    println!("playing by then). Onset: the interrupting clip's first voiced sample in the input.\n");
    let clips: Vec<&str> = CLIPS.iter().copied().filter(|c| c.starts_with("en")).cycle().take(n + 1).collect();
    let (input, placed) = conversation(&clips, 3.5)?;
    let mut script = vec![Behaviour::Endless; n];
    script.push(Behaviour::parse("answer")?);
    let (outcome, t0) = live_run(config, rt, input, script)?;
    println!("| interruption | onset → decision | onset → silence at the device | frames after the decision (limit: fade + one buffer) |");
    println!("|---|---|---|---|");
    let (mut detect, mut total) = (Vec::new(), Vec::new());
    for (i, b) in outcome.barge_ins.iter().enumerate() {
        // The interruption is the clip that started last before the decision.
        let Some(p) = placed.iter().rfind(|p| t0 + Duration::from_secs_f64(p.onset as f64 / 16_000.0) <= b.decided) else { continue };
        let onset = t0 + Duration::from_secs_f64(p.onset as f64 / 16_000.0);
        let (d, s) = (ms(b.decided - onset), ms(b.silent_at.max(onset) - onset));
        detect.push(d);
        total.push(s);
        println!("| {} (turn {}) | {d:.0} ms | {s:.0} ms | {} (≤ {}) |", i + 1, b.turn, b.audible_after, b.limit);
    }
    let ((d50, _), (s50, s95)) = (percentiles(&detect), percentiles(&total));
    println!(
        "\n{} interruptions: onset → silence **{s50:.0} ms p50**, {s95:.0} ms p95 (of which the decision {d50:.0} ms p50: the voice going on for dialogue.interruption_ms = {} ms; the answer is ducked from the VAD's report, ~250 ms after onset).\n",
        total.len(),
        config.dialogue.interruption_ms
    );
    Ok(())
}

/// What a listener says over an answer without taking the turn, and a cough-like burst.
const BACKCHANNELS: [(&str, &str); 12] = [
    ("en-us", "Okay."),
    ("en-us", "Mm-hmm."),
    ("en-us", "Yeah."),
    ("en-us", "Right."),
    ("en-us", "Uh-huh."),
    ("en-gb+f2", "I see."),
    ("ar", "اها"),
    ("ar", "إِيوَهْ"),
    ("ar", "طَيِّبْ"),
    ("ar", "تَمَامْ"),
    ("ar+f2", "نَعَمْ"),
    ("cough", ""),
];

/// A cough's stand-in: 250 ms of decaying, band-limited noise (seeded).
fn cough() -> Vec<f32> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut last = 0.0f32;
    (0..4_000)
        .map(|i| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let white = (seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
            last = 0.7 * last + 0.3 * white;
            last * 0.6 * (-(i as f32) / 1_600.0).exp()
        })
        .collect()
}

/// Quiet after each question before the backchannel: the answer must be playing by then. The
/// question (en-office.wav) is judged finished at ~200 ms of silence and answered ~1 s later,
/// or judged unfinished and answered ~2.5 s later; each item's placement is checked anyway.
const BACKCHANNEL_AFTER_S: f32 = 5.0;

fn backchannels(config: &Config, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    println!("### Backchannels over the answer\n");
    println!("A question, then {BACKCHANNEL_AFTER_S} s after it ends a backchannel in espeak-ng's voice, or a cough-like noise");
    println!("burst, over the playing answer; then quiet while the answer finishes. Per item: whether an answer was");
    println!("playing at its onset (the answer's first sample heard before it, less than ~12 s before), whether the");
    println!("answer was stopped (a barge-in decided after its onset and before the next question), and whether it was");
    println!("taken for a question (a turn asked with its words).\n");
    let question = hearing::read_16k(&hiwar_core::assets::assets_dir().join("clips").join("en-office.wav"))?;
    let (q_onset, _) = voiced_span(&question);
    let long = "The office opens at half past seven in the morning and closes at three in the afternoon on weekdays, and on Friday it closes at noon, so please come early and bring your documents.";
    let (mut input, mut script, mut items) = (Vec::new(), Vec::new(), Vec::new());
    for (voice, text) in BACKCHANNELS {
        let said = if voice == "cough" {
            cough()
        } else {
            hiwar_speech::voice::EspeakVoice { voice: voice.into(), speed: 150 }.synthesize(text)?.resampled(16_000)?.samples
        };
        let question_at = input.len() as u64 + q_onset;
        input.extend_from_slice(&question);
        input.extend(std::iter::repeat_n(0.0, (BACKCHANNEL_AFTER_S * 16_000.0) as usize));
        let (onset, _) = voiced_span(&said);
        let at = input.len() as u64 + onset;
        input.extend_from_slice(&said);
        // Long enough for the answer (~13 s spoken) to finish before the next question, which
        // would otherwise stop it as a real interruption.
        input.extend(std::iter::repeat_n(0.0, 16_000 * 18));
        script.push(Behaviour::Answer { text: Some(long.into()), ttft: Duration::ZERO, gap: Duration::from_millis(15) });
        let name = if voice == "cough" { "(a cough-like burst)".to_string() } else { format!("{text} ({voice})") };
        items.push((name, question_at, at));
    }
    let (outcome, t0) = live_run(config, rt, input, script)?;
    let at = |samples: u64| t0 + Duration::from_secs_f64(samples as f64 / 16_000.0);
    println!("| said over the answer | answer playing at its onset | answer stopped | taken for a question |");
    println!("|---|---|---|---|");
    let (mut over, mut ignored) = (0, 0);
    for (i, (name, _, onset)) in items.iter().enumerate() {
        let onset = at(*onset);
        let next = items.get(i + 1).map_or(onset + Duration::from_secs(30), |n| at(n.1));
        let playing = outcome.turns.iter().any(|r| r.times.answer_heard.is_some_and(|h| h < onset && onset - h < Duration::from_secs(12)));
        let stopped = outcome.barge_ins.iter().any(|b| b.decided >= onset && b.decided < next);
        // A turn whose speech ended after the item's onset (and before the next question) was
        // asked with it: alone, or with the question it joined.
        let asked = outcome.turns.iter().any(|r| r.times.speech_end.is_some_and(|e| e >= onset && e < next));
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        println!("| {name} | {} | {} | {} |", yes_no(playing), yes_no(stopped), yes_no(asked));
        if playing {
            over += 1;
            if !stopped && !asked {
                ignored += 1;
            }
        }
    }
    println!(
        "\n{} items, {over} of them over a playing answer: **{ignored} of {over} ignored** ({:.0} %); {} turns asked of the LLM in all ({} questions).\n",
        items.len(),
        100.0 * f64::from(ignored) / f64::from(over.max(1)),
        outcome.turns.len(),
        items.len()
    );
    Ok(())
}

fn faults(config: &Config, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    println!("### LLM faults: the holding phrase and the fallback\n");
    let mut config = config.clone();
    // A runaway stream is cut at max_tokens × 2 pieces; 100 keeps this benchmark short.
    config.llm.max_tokens = 100;
    println!(
        "Defaults: holding phrase {} ms after the end of speech, first-token timeout {} ms, idle {} ms, {} retries; max_tokens {} here.\n",
        config.dialogue.holding_after_ms, config.llm.first_token_timeout_ms, config.llm.idle_timeout_ms, config.llm.retries, config.llm.max_tokens
    );
    println!("| fault | holding phrase heard | fallback heard | fallback |");
    println!("|---|---|---|---|");
    for spec in ["401", "429", "500", "cut:6", "malformed", "stall:20000", "endless"] {
        let (input, placed) = conversation(&["en-office.wav"], 1.0)?;
        let (outcome, t0) = live_run(&config, rt, input, vec![Behaviour::parse(spec)?])?;
        let end = t0 + Duration::from_secs_f64(placed[0].ends.last().copied().unwrap_or(0) as f64 / 16_000.0);
        let Some(r) = outcome.turns.first() else {
            println!("| {spec} | — | — | (no turn: nothing heard) |");
            continue;
        };
        let show = |t: Option<f64>| t.map_or("—".to_string(), |t| format!("{t:.0} ms"));
        println!("| {spec} | {} | {} | {} |", show(since(r.times.holding_heard, end)), show(since(r.times.fallback_heard, end)), r.fallback.unwrap_or("none"));
    }
    println!();
    Ok(())
}

fn rss_mb() -> f64 {
    crate::stats::rss_mib(std::process::id())
}

fn memory(config: &Config, rt: &tokio::runtime::Runtime, turns: usize) -> anyhow::Result<()> {
    println!("### Memory over many turns\n");
    let standin = rt.block_on(Standin::start(vec![Behaviour::Answer { text: None, ttft: Duration::ZERO, gap: Duration::from_millis(1) }]))?;
    let mut config = config.clone();
    config.llm.base_url = standin.base_url.clone();
    config.llm.api_key_env.clear();
    let _guard = rt.enter();
    let mind = Mind::from_config(&config)?;
    let voices = hiwar_core::build::voices(&config, true)?;
    let rate = voices.sample_rate();
    let (voice, mut spoken) = VoiceOut::start(voices, Output::Null { played: 0 }, None);
    let bus = Bus::new(4096);
    let questions = ["متى يفتح المركز يوم الجمعة؟", "How much is a passport renewal?", "أبغى أجدد الـ Emirates ID", "Where can I park?"];
    let (mut after_start, mut spoken_samples) = (0.0, 0u64);
    let mut readings: Vec<(usize, f64)> = Vec::new();
    let started = Instant::now();
    for i in 0..turns {
        let q = questions[i % questions.len()];
        let lang = hiwar_dialogue::mind::knowledge::lang_of(q);
        let turn = i as u64 + 1;
        rt.block_on(answer_turn(&mind, &voice, &bus, turn, q, lang, Instant::now(), Duration::from_secs(2), CancellationToken::new()));
        // Wait for the voice to finish the turn.
        while let Some(e) = rt.block_on(spoken.recv()) {
            match e {
                VoiceEvent::TurnEnd { turn: t, end } if t == turn => {
                    spoken_samples = end;
                    break;
                }
                _ => {}
            }
        }
        if i == 0 {
            after_start = rss_mb();
        }
        if i % 50 == 49 {
            mind.forget();
            // The in-process stand-in keeps every request it was sent: not hiwar's memory.
            if let Ok(mut seen) = standin.seen.lock() {
                seen.clear();
                seen.shrink_to_fit();
            }
            readings.push((i + 1, rss_mb()));
        }
    }
    let after = rss_mb();
    drop(voice);
    let spoken_s = spoken_samples as f64 / f64::from(rate);
    println!("Text turns through the mind (stand-in LLM over HTTP), the chunker and the voice ({spoken_s:.0} s of speech");
    println!("synthesised, not kept); the conversation memory is wiped every 50 turns, as sessions end. Hearing is not in");
    println!("this loop: the live turns above measure the process with it.\n");
    println!("| after the first turn | after {turns} turns | growth | goal |");
    println!("|---|---|---|---|");
    println!("| {after_start:.0} MB | {after:.0} MB | {:+.0} MB | flat, ≤ 600 MB |", after - after_start);
    println!("\nRSS every 50 turns: {}", readings.iter().map(|(n, r)| format!("{n}: {r:.0} MB")).collect::<Vec<_>>().join(" · "));
    println!("\n{turns} turns in {:.0} s.\n", started.elapsed().as_secs_f64());
    Ok(())
}

pub fn run(config: &Config, only: &[String], rounds: usize, ttfts: &[u64], interruptions: usize, turns: usize) -> anyhow::Result<ExitCode> {
    let wants = |part: &str| only.is_empty() || only.iter().any(|o| o == part);
    let rt = hiwar_core::runtime::runtime()?;
    println!("## Live loop (`hiwar bench loop`)\n");
    if wants("latency") {
        latency(config, &rt, rounds, ttfts)?;
    }
    if wants("barge") {
        barge(config, &rt, interruptions.max(1))?;
    }
    if wants("backchannel") {
        backchannels(config, &rt)?;
    }
    if wants("faults") {
        faults(config, &rt)?;
    }
    if wants("memory") {
        memory(config, &rt, turns.max(1))?;
    }
    Ok(ExitCode::SUCCESS)
}
