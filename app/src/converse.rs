//! `hiwar run` (the live avatar: microphone, mind, voice, speaker, window) and `hiwar chat`
//! (the same mind in a terminal, for operators tuning the knowledge base).

use std::io::{BufRead as _, Write as _};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hiwar_speech::hearing::{self, HearingEvent, PacedSource, Source};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, Lang};
use crate::config::Config;
use crate::dialogue::{LoopInput, LoopSettings, Output, VoiceEvent, VoiceOut, answer_turn, live_loop};
use crate::mind::{Mind, MindEvent};

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("mind").enable_all().build()?)
}

/// Prints every bus event as a JSON line on standard output.
fn print_events(bus: &Bus) {
    let mut rx = bus.subscribe();
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(e) => {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{}", crate::bus::to_json(&e));
                    let _ = out.flush();
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => tracing::warn!("event printer fell behind by {n}"),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// Logs state changes and what was said (the operator's view) on standard error.
fn log_events(bus: &Bus) {
    use crate::bus::EventKind as K;
    let mut rx = bus.subscribe();
    tokio::spawn(async move {
        while let Ok(e) = rx.recv().await {
            match &e.kind {
                K::Transcript { text, lang, is_final: true, .. } => eprintln!("👤 ({}) {text}", lang.code()),
                K::Answered { source, text } => eprintln!("🗣  [{source}] {text}"),
                K::Fallback { kind, .. } => eprintln!("⚠  LLM fallback: {kind}"),
                K::BargeIn { audible_after, limit } => eprintln!("✋ barge-in: {audible_after} frames after the decision (limit {limit})"),
                _ => {}
            }
        }
    });
}

/// `hiwar run`: the live loop. `input` replaces the microphone with a recording fed at real
/// time (tests, benchmarks); `events` prints the bus as JSON lines.
pub fn run(config: &Config, input: Option<&Path>, events: bool, window: bool, kiosk: bool) -> anyhow::Result<ExitCode> {
    let mind = Arc::new(Mind::from_config(config)?);
    let voices = crate::voice::voices(config, true)?;
    let player = hiwar_speech::voice::Player::open(&config.audio.output_device).map_err(|e| {
        anyhow::anyhow!("no audio output to speak on: {e} (check `hiwar doctor`; set audio.output_device to one it lists)")
    })?;
    let hc = crate::hearing::hearing_config(config, None)?;
    let source = match input {
        Some(path) => {
            let audio = hearing::open_audio_file(path)?.read_all().with_context(|| format!("cannot read {}", path.display()))?;
            let block = (audio.sample_rate / 50).max(1) as usize;
            Source::Paced(PacedSource { samples: audio.samples, rate: audio.sample_rate, block })
        }
        None => Source::Microphone { device: hc.input_device.clone() },
    };
    let rt = runtime()?;
    let _guard = rt.enter();
    let bus = Bus::new(4096);
    if events {
        print_events(&bus);
    }
    log_events(&bus);
    let (voice, voice_events) = VoiceOut::start(voices, Output::Speaker(player));
    let voice = Arc::new(voice);
    let hearing = hearing::Hearing::start(hc, source)?;
    let level = Arc::clone(&hearing.level);
    let (loop_tx, loop_rx) = mpsc::unbounded_channel();
    forward(hearing, voice_events, &loop_tx);
    if let Some(llm) = mind.llm.clone() {
        rt.spawn(async move { llm.warm_up().await });
    }
    let stop = CancellationToken::new();
    let ctrl_c = stop.clone();
    rt.spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        ctrl_c.cancel();
    });
    eprintln!("hiwar is listening — تحدّث بالعربية أو بالإنجليزية · speak Arabic or English; Ctrl-C to stop");
    let live = live_loop(Arc::clone(&mind), Arc::clone(&voice), bus.clone(), LoopSettings::from_config(config), level, loop_rx, loop_tx, stop.clone());
    let outcome = if window && crate::stage::window::has_display() {
        let clock = voice.clock.clone();
        let done = stop.clone();
        // The loop ending (its input ran out) closes the window too.
        let handle = rt.spawn(async move {
            let outcome = live.await;
            done.cancel();
            outcome
        });
        let shown = crate::stage::window::run_live(config, kiosk, &bus, clock, stop.clone());
        stop.cancel();
        if let Err(e) = shown {
            tracing::error!("stage window: {e:#}");
        }
        rt.block_on(handle).unwrap_or_default()
    } else {
        if window {
            eprintln!("(no display: running without the window)");
        }
        rt.block_on(live)
    };
    drop(mind);
    if let Ok(voice) = Arc::try_unwrap(voice) {
        voice.finish();
    }
    eprintln!("{} turn(s) answered", outcome.turns.iter().filter(|r| !r.cancelled).count());
    rt.shutdown_timeout(Duration::from_millis(200));
    Ok(ExitCode::SUCCESS)
}

/// Hearing's and the voice's events into the loop (hearing's channel is a std one). Needs a
/// tokio runtime.
pub fn forward(hearing: hearing::Hearing, mut voice_events: mpsc::UnboundedReceiver<VoiceEvent>, tx: &mpsc::UnboundedSender<LoopInput>) {
    let h = tx.clone();
    std::thread::Builder::new()
        .name("hearing-loop".into())
        .spawn(move || {
            let hearing = hearing;
            for e in hearing.events.iter() {
                if let HearingEvent::Failed { reason } = &e {
                    tracing::error!("hearing: {reason}");
                }
                if h.send(LoopInput::Hearing(e)).is_err() {
                    return;
                }
            }
            let _ = h.send(LoopInput::HearingClosed);
        })
        .expect("spawn the hearing forwarder");
    let v = tx.clone();
    tokio::spawn(async move {
        while let Some(e) = voice_events.recv().await {
            if v.send(LoopInput::Voice(e)).is_err() {
                return;
            }
        }
    });
}

/// `hiwar chat`: questions from the terminal (or `--once`), answers printed as they stream;
/// with `--speak FILE.wav` the answers are also spoken into a wav file; with `--events` the
/// bus is printed as JSON lines instead.
pub fn chat(config: &Config, once: Option<&str>, speak: Option<&Path>, events: bool) -> anyhow::Result<ExitCode> {
    let mind = Mind::from_config(config)?;
    let rt = runtime()?;
    let _guard = rt.enter();
    let bus = Bus::new(4096);
    if events {
        print_events(&bus);
    }
    let mut rate = 22_050;
    let voice_out = match speak {
        Some(_) => {
            let voices = crate::voice::voices(config, true)?;
            rate = voices.sample_rate();
            let (voice, mut spoken) = VoiceOut::start(voices, Output::Memory { samples: Vec::new() });
            let bus = bus.clone();
            rt.spawn(async move {
                while let Some(e) = spoken.recv().await {
                    match e {
                        VoiceEvent::Spoken(s) => crate::dialogue::publish_spoken(&bus, &s),
                        VoiceEvent::Failed { message, .. } => tracing::error!("voice: {message}"),
                        VoiceEvent::TurnEnd { .. } => {}
                    }
                }
            });
            Some(voice)
        }
        None => None,
    };
    let where_from = match &mind.llm {
        Some(l) => format!("{} ({})", l.settings.base_url, l.settings.model),
        None => "the knowledge base only (no llm.base_url)".into(),
    };
    let interactive = once.is_none();
    if interactive {
        eprintln!(
            "hiwar chat — {} passages from {}; answers from {where_from}. Ask in Arabic or English; an empty line or Ctrl-D ends.",
            mind.knowledge.passages.len(),
            mind.knowledge.dir.display()
        );
    }
    let questions: Box<dyn Iterator<Item = String>> = match once {
        Some(q) => Box::new(std::iter::once(q.to_string())),
        None => Box::new(std::io::stdin().lock().lines().map_while(Result::ok).take_while(|l| !l.trim().is_empty())),
    };
    for (i, question) in questions.enumerate() {
        if interactive {
            eprint!("› ");
        }
        let lang = crate::mind::knowledge::lang_of(&question);
        let turn = i as u64 + 1;
        if let Some(voice) = &voice_out {
            let hold = Duration::from_millis(config.dialogue.holding_after_ms);
            let report = rt.block_on(answer_turn(&mind, voice, &bus, turn, &question, lang, Instant::now(), hold, CancellationToken::new()));
            if !events {
                println!("{}", report.answer);
            }
            continue;
        }
        rt.block_on(print_answer(&mind, &bus, turn, &question, lang, events));
    }
    if let (Some(voice), Some(path)) = (voice_out, speak) {
        let samples = voice.finish();
        anyhow::ensure!(!samples.is_empty(), "nothing was spoken");
        write_wav(path, rate, &samples)?;
    }
    // Let the event printer drain.
    rt.block_on(tokio::time::sleep(Duration::from_millis(50)));
    Ok(ExitCode::SUCCESS)
}

async fn print_answer(mind: &Mind, bus: &Bus, turn: u64, question: &str, lang: Lang, events: bool) {
    use crate::bus::{Event, EventKind, TurnId};
    let mut rx = mind.ask(question, lang, CancellationToken::new());
    let mut out = std::io::stdout();
    while let Some(e) = rx.recv().await {
        match e {
            MindEvent::Delta(d) => {
                if !events {
                    let _ = write!(out, "{d}");
                    let _ = out.flush();
                }
                bus.publish(Event { turn: TurnId(turn), clock: None, kind: EventKind::ReplyText { delta: d } });
            }
            MindEvent::Fallback { kind, log, text } => {
                if !events {
                    let _ = write!(out, "{}{text}", if text.is_empty() { "" } else { " " });
                }
                bus.publish(Event { turn: TurnId(turn), clock: None, kind: EventKind::Fallback { kind, log } });
            }
            MindEvent::Done { source, text, .. } => {
                if !events && source != crate::mind::Source::Llm {
                    let _ = write!(out, "{text}");
                }
                if !events {
                    let _ = writeln!(out);
                }
                bus.publish(Event { turn: TurnId(turn), clock: None, kind: EventKind::Answered { source: crate::dialogue::source_code(source), text } });
            }
            MindEvent::Retrieved { titles, .. } => tracing::info!("passages: {}", titles.join(" · ")),
        }
    }
}

pub fn write_wav(path: &Path, rate: u32, samples: &[f32]) -> anyhow::Result<()> {
    let spec = hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).with_context(|| format!("cannot write {}", path.display()))?;
    for s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16)?;
    }
    w.finalize()?;
    Ok(())
}
