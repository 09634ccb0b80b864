//! `hiwar run` (the live avatar: microphone, mind, voice, speaker, window) and `hiwar chat`
//! (the same mind in a terminal, for operators tuning the knowledge base).

use std::io::{BufRead as _, Write as _};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hiwar_speech::hearing::{self, PacedSource, Source};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use hiwar_core::bus::{Bus, Lang};
use hiwar_core::config::Config;
use hiwar_core::speaking::{Output, VoiceEvent, VoiceOut};
use hiwar_dialogue::input::LoopInput;
use hiwar_dialogue::live::{LoopSettings, forward, forward_voice, live_loop};
use hiwar_dialogue::mind::{Mind, MindEvent};
use hiwar_dialogue::turn::answer_turn;

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
                    let _ = writeln!(out, "{}", hiwar_core::bus::to_json(&e));
                    let _ = out.flush();
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => tracing::warn!("event printer fell behind by {n}"),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// Logs the conversation for the operator: sessions, answers' sources, fallbacks, barge-ins.
/// What people said and what was answered only if `privacy.record_transcripts` is on (logs
/// are on disk: the journal or a file).
fn log_events(bus: &Bus, transcripts: bool) {
    use hiwar_core::bus::EventKind as K;
    let mut rx = bus.subscribe();
    tokio::spawn(async move {
        while let Ok(e) = rx.recv().await {
            let turn = e.turn.0;
            match &e.kind {
                K::Transcript { text, lang, is_final: true, .. } if transcripts => {
                    tracing::info!(target: "hiwar::ops", turn, "heard ({}): {text}", lang.code())
                }
                K::Answered { source, text } if transcripts => tracing::info!(target: "hiwar::ops", turn, "answered from {source}: {text}"),
                K::Answered { source, text } => {
                    tracing::info!(target: "hiwar::ops", turn, "answered from {source} ({} words)", text.split_whitespace().count())
                }
                K::Fallback { kind, .. } => tracing::warn!(target: "hiwar::ops", turn, "LLM fallback: {kind}"),
                K::BargeIn { audible_after, limit } => {
                    tracing::info!(target: "hiwar::ops", turn, "barge-in: {audible_after} frames after the decision (limit {limit})")
                }
                K::Session { started } => {
                    tracing::info!(target: "hiwar::ops", session = turn, "session {turn} {}", if *started { "began" } else { "ended: memory, transcripts and audio wiped" })
                }
                K::Error { message, .. } => tracing::warn!(target: "hiwar::ops", "{message}"),
                _ => {}
            }
        }
    });
}

/// Signals a running `hiwar run` answers: SIGTERM and Ctrl-C stop it (what is being said is
/// cut short, nothing is left half-written), SIGHUP reloads the config.
fn signals(stop: &CancellationToken, reload: mpsc::UnboundedSender<()>) -> Arc<std::sync::atomic::AtomicBool> {
    use tokio::signal::unix::{SignalKind, signal};
    let stop = stop.clone();
    let signalled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Arc::clone(&signalled);
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut hup)) = (signal(SignalKind::terminate()), signal(SignalKind::hangup())) else {
            tracing::error!("cannot listen for signals");
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => {
                    tracing::warn!(target: "hiwar::ops", "SIGTERM: stopping");
                    break;
                }
                _ = hup.recv() => {
                    let _ = reload.send(());
                }
            }
        }
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
        stop.cancel();
    });
    signalled
}

/// Reloads the config on request, checks it, and hands it to the loop; a bad one is refused
/// with the reason and the running one stays.
fn reloader(
    config: &Config,
    mut requests: mpsc::UnboundedReceiver<()>,
    tx: mpsc::UnboundedSender<LoopInput>,
    health: Arc<hiwar_dialogue::kiosk::watchdog::Health>,
) {
    let current = Arc::new(std::sync::Mutex::new(config.clone()));
    tokio::spawn(async move {
        while requests.recv().await.is_some() {
            health.notifier.reloading();
            tracing::warn!(target: "hiwar::ops", "SIGHUP: reloading the config");
            let current = Arc::clone(&current);
            let loaded = tokio::task::spawn_blocking(move || {
                let old = current.lock().map(|c| c.clone()).unwrap_or_default();
                let result = hiwar_dialogue::kiosk::reload::load(old.source.as_ref(), &old);
                if let (Ok(r), Ok(mut c)) = (&result, current.lock()) {
                    *c = r.config.clone();
                }
                result
            })
            .await;
            match loaded {
                Ok(Ok(r)) => {
                    if tx.send(LoopInput::Reload(Box::new(r))).is_err() {
                        return;
                    }
                }
                Ok(Err(e)) => tracing::error!(target: "hiwar::ops", "config reload refused, the running config stays: {e:#}"),
                Err(e) => tracing::error!(target: "hiwar::ops", "config reload failed: {e}"),
            }
            health.notifier.ready(if health.in_service() { "in service" } else { "out of service" });
        }
    });
}

/// `hiwar run`: the live loop. `input` replaces the microphone with a recording fed at real
/// time (tests, benchmarks); `events` prints the bus as JSON lines.
pub fn run(config: &Config, input: Option<&Path>, events: bool, window: bool, kiosk: bool, control: bool) -> anyhow::Result<ExitCode> {
    let mind = Arc::new(Mind::from_config(config)?);
    let voices = hiwar_core::build::speaking_voices(config)?;
    let player = hiwar_speech::voice::Player::open(&config.audio.output_device)
        .map_err(|e| anyhow::anyhow!("no audio output to speak on: {e} (check `hiwar doctor`; set audio.output_device to one it lists)"))?;
    let mut hc = hiwar_dialogue::mind::hearing_config(config, None)?;
    if config.hearing.echo_cancellation {
        hc.echo = Some(player.echo_reference());
    }
    let rt = runtime()?;
    let _guard = rt.enter();
    let bus = Bus::new(4096);
    if events {
        print_events(&bus);
    }
    log_events(&bus, config.privacy.record_transcripts);
    let health = hiwar_dialogue::kiosk::watchdog::Health::new(bus.clone(), config.watchdog.clone(), hiwar_core::notify::Notifier::from_env());
    // The watchdog restarts a stuck synthesis with voices loaded from this config.
    let (voice, voice_events) = VoiceOut::start(voices, Output::Speaker(player), Some(config.clone()));
    let voice = Arc::new(voice);
    let (loop_tx, loop_rx) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let mut settings = LoopSettings::from_config(config);
    settings.health = Some(Arc::clone(&health));
    settings.vocabulary = Some(hc.vocabulary.clone());
    let level = match input {
        Some(path) => {
            let audio = hearing::open_audio_file(path)?.read_all().with_context(|| format!("cannot read {}", path.display()))?;
            let block = (audio.sample_rate / 50).max(1) as usize;
            let hearing = hearing::Hearing::start(hc, Source::Paced(PacedSource { samples: audio.samples, rate: audio.sample_rate, block }))?;
            let level = Arc::clone(&hearing.level);
            forward(hearing, voice_events, &loop_tx);
            level
        }
        None => {
            // The microphone, under the watchdog: a stalled hearing is restarted alone.
            let level = Arc::new(hearing::InputLevel::default());
            let device = hc.input_device.clone();
            hiwar_dialogue::kiosk::watchdog::supervise_hearing(
                hc,
                device,
                Arc::clone(&level),
                {
                    use hiwar_dialogue::kiosk::watchdog::Supervised;
                    let tx = loop_tx.clone();
                    Box::new(move |s| {
                        tx.send(match s {
                            Supervised::Event(e) => LoopInput::Hearing(*e),
                            Supervised::Restarted => LoopInput::HearingRestarted,
                        })
                        .is_ok()
                    })
                },
                Arc::clone(&settings.wipe_audio),
                Arc::clone(&health),
                stop.clone(),
            )?;
            forward_voice(voice_events, &loop_tx);
            level
        }
    };
    if let Some(llm) = mind.llm.clone() {
        rt.spawn(async move { llm.warm_up().await });
    }
    let (reload_tx, reload_rx) = mpsc::unbounded_channel();
    let signalled = signals(&stop, reload_tx);
    reloader(config, reload_rx, loop_tx.clone(), Arc::clone(&health));
    health.start_heartbeat(stop.clone());
    eprintln!("hiwar is listening — تحدّث بالعربية أو بالإنجليزية · speak Arabic or English; Ctrl-C to stop");
    let touch_tx = loop_tx.clone();
    if control {
        read_control(loop_tx.clone());
    }
    let live = live_loop(Arc::clone(&mind), Arc::clone(&voice), bus.clone(), settings, level, loop_rx, loop_tx, stop.clone());
    health.notifier.ready("listening");
    let outcome = if window && hiwar_stage::window::has_display() {
        let clock = voice.clock.clone();
        let done = stop.clone();
        // The loop ending (its input ran out) closes the window too.
        let handle = rt.spawn(async move {
            let outcome = live.await;
            done.cancel();
            outcome
        });
        let hooks = {
            let (frames, touches) = (Arc::clone(&health), touch_tx);
            hiwar_stage::window::LiveHooks {
                on_frame: Arc::new(move || frames.beat_render()),
                on_touch: Arc::new(move || {
                    let _ = touches.send(LoopInput::Touch);
                }),
            }
        };
        let shown = hiwar_stage::window::run_live(config, kiosk, &bus, clock, hooks, stop.clone());
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
    health.notifier.stopping();
    stop.cancel();
    drop(mind);
    if signalled.load(std::sync::atomic::Ordering::Relaxed) {
        // Stopped (SIGTERM, Ctrl-C): what is being said is cut short, with the player's fade.
        voice.cancel(u64::MAX);
    } else if let Ok(voice) = Arc::try_unwrap(voice) {
        // The input ran out: the last answer is heard to its end.
        voice.finish();
    }
    eprintln!("{} turn(s) answered", outcome.turns.iter().filter(|r| !r.cancelled).count());
    rt.shutdown_timeout(Duration::from_millis(200));
    Ok(ExitCode::SUCCESS)
}

/// Typed input on standard input (`hiwar run --control`), one JSON object per line: `{"ask":
/// TEXT}` is a question, `{"touch": true}` a touch; anything else is named in the log and
/// skipped. Standard input closing ends nothing.
fn read_control(tx: mpsc::UnboundedSender<LoopInput>) {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Line {
        ask: Option<String>,
        #[serde(default)]
        touch: bool,
    }
    let spawned = std::thread::Builder::new().name("control".into()).spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if line.trim().is_empty() {
                continue;
            }
            let input = match serde_json::from_str::<Line>(&line) {
                Ok(Line { ask: Some(text), .. }) if !text.trim().is_empty() => LoopInput::Typed(text.chars().take(2_000).collect()),
                Ok(Line { touch: true, .. }) => LoopInput::Touch,
                Ok(_) => {
                    tracing::warn!("control: nothing to do in {line:?} (expected {{\"ask\": TEXT}} or {{\"touch\": true}})");
                    continue;
                }
                Err(e) => {
                    tracing::warn!("control: not a control line ({e}): {}", line.chars().take(120).collect::<String>());
                    continue;
                }
            };
            if tx.send(input).is_err() {
                return;
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!("cannot read control input: {e}");
    }
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
            let voices = hiwar_core::build::voices(config, true)?;
            rate = voices.sample_rate();
            let (voice, mut spoken) = VoiceOut::start(voices, Output::Memory { samples: Vec::new() }, None);
            let bus = bus.clone();
            rt.spawn(async move {
                while let Some(e) = spoken.recv().await {
                    match e {
                        VoiceEvent::Spoken(s) => hiwar_dialogue::turn::publish_spoken(&bus, &s),
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
        let lang = hiwar_dialogue::mind::knowledge::lang_of(&question);
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
        hiwar_core::runtime::write_wav(path, rate, &samples)?;
    }
    // Let the event printer drain.
    rt.block_on(tokio::time::sleep(Duration::from_millis(50)));
    Ok(ExitCode::SUCCESS)
}

async fn print_answer(mind: &Mind, bus: &Bus, turn: u64, question: &str, lang: Lang, events: bool) {
    use hiwar_core::bus::{Event, EventKind, TurnId};
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
                if !events && source != hiwar_dialogue::mind::Source::Llm {
                    let _ = write!(out, "{text}");
                }
                if !events {
                    let _ = writeln!(out);
                }
                bus.publish(Event { turn: TurnId(turn), clock: None, kind: EventKind::Answered { source, text } });
            }
            MindEvent::Retrieved { titles, .. } => tracing::info!("passages: {}", titles.join(" · ")),
        }
    }
}
