//! `hiwar stage`: the avatar in a desktop or kiosk window, speaking through the speaker with
//! its mouth on the speaker's played-sample clock. `hiwar run` drives the same window from
//! the bus (`run_live`); alone, the stage takes its cues as JSON lines on standard input
//! (or from a script file) and reports what happens as JSON lines on standard output:
//!
//! Closing standard input closes the stage.
//!
//! - in: `{"say": "…"}`, `{"state": "idle|listening|thinking|speaking"}`,
//!   `{"heard": "…", "final": true}`, `{"notice": "microphone|llm|model"}`,
//!   `{"clear_notices": true}`, `{"screenshot": "PATH.png"}`, `{"attract": true}`,
//!   `{"out_of_service": true|false}`, `{"session_ended": true}`, `{"quit": true}`
//! - out: `{"event": "ready"}`, `{"event": "speaking", "text": …}`, `{"event": "audio"}` (its
//!   first sound is queued on the speaker), `{"event": "spoken"}`,
//!   `{"event": "push_to_talk", "pressed": …}`, `{"event": "screenshot", "path": …}`,
//!   `{"event": "error", "message": …}`

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy::window::{CursorOptions, MonitorSelection, PresentMode, WindowMode};
use hiwar_animation::{Activity, Timeline};
use serde::Deserialize;

use super::captions::{CaptionWord, Captions};
use super::{AvatarParts, Notice, Performance, StageClock, StageOptions, StageState};
use crate::config::Config;

/// A cue for the stage.
#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Cue {
    pub say: Option<String>,
    pub state: Option<String>,
    pub heard: Option<String>,
    #[serde(rename = "final")]
    pub is_final: Option<bool>,
    pub notice: Option<String>,
    pub clear_notices: Option<bool>,
    pub screenshot: Option<PathBuf>,
    pub attract: Option<bool>,
    /// The kiosk is out of service (true) or back (false).
    pub out_of_service: Option<bool>,
    /// A visitor's session ended: captions cleared, attract screen (kiosk).
    pub session_ended: Option<bool>,
    pub quit: Option<bool>,
    /// The person interrupted: the mouth and the answer's captions stop now.
    pub interrupt: Option<bool>,
}

/// Writes one JSON event line on standard output.
fn emit(value: serde_json::Value) {
    println!("{value}");
}

/// What the speech worker reports back: a chunk queued on the speaker.
struct Queued {
    timeline: Timeline,
    /// Device frame at which the chunk starts playing.
    start: u64,
    /// Device frames per voice sample.
    scale: f64,
    words: Vec<(String, u64, u64)>,
    last: bool,
}

#[derive(Resource)]
struct Channels {
    cues: Mutex<Receiver<Cue>>,
    speech_in: Mutex<Sender<String>>,
    speech_out: Mutex<Receiver<Result<Queued, String>>>,
}

#[derive(Resource)]
struct Live {
    kiosk: bool,
    escape_exits: bool,
    attract_after: Duration,
    last_activity: Instant,
    /// Clock position where the queued speech ends, and whether the last chunk has come.
    speech_end: Option<(u64, bool)>,
    /// Activity to return to after speaking.
    resting: Activity,
    /// Frames drawn since the avatar was bound ("ready" is sent once it has been drawn).
    drawn: u32,
}

/// Runs the window until it is closed or told to quit.
pub fn run(config: &Config, kiosk: bool, script: Option<PathBuf>, frame_log: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let options = StageOptions::from_config(config);
    options.check()?;
    anyhow::ensure!(
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some(),
        "no display to open the stage window on (DISPLAY and WAYLAND_DISPLAY are unset); render offscreen instead: hiwar say \"…\" --video out.mp4"
    );
    let kiosk = kiosk || config.stage.kiosk;

    // The speaker and its clock; without one the stage still runs, on a wall clock, and says so.
    let (speech_in, speech_requests) = channel::<String>();
    let (speech_done, speech_out) = channel::<Result<Queued, String>>();
    let (clock, output, audio_ok) = match hiwar_speech::voice::Player::open(&config.audio.output_device) {
        Ok(player) => (StageClock::Player(player.clock()), Output::Speaker(player), true),
        Err(e) => {
            tracing::warn!("no audio output: {e}; the stage runs on a wall clock and shows its answers as captions");
            let clock = StageClock::Wall(Instant::now(), 48_000);
            (clock.clone(), Output::Silent { clock, free_from: 0 }, false)
        }
    };
    spawn_speech_worker(config.clone(), output, speech_requests, speech_done);
    let (cue_tx, cues) = channel::<Cue>();
    spawn_cue_reader(script, cue_tx);
    let channels = Channels { cues: Mutex::new(cues), speech_in: Mutex::new(speech_in), speech_out: Mutex::new(speech_out) };
    launch(config, &options, kiosk, clock, channels, audio_ok, frame_log)
}

/// Whether a window can be opened here.
pub fn has_display() -> bool {
    std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
}

/// The window for `hiwar run`: driven by the bus (states, transcripts, speech queued by the
/// dialogue on the speaker whose `clock` it reads), until it is closed or `stop` fires.
pub fn run_live(
    config: &Config,
    kiosk: bool,
    bus: &crate::bus::Bus,
    clock: Option<std::sync::Arc<hiwar_speech::voice::PlayClock>>,
    hooks: LiveHooks,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<ExitCode> {
    use crate::bus::{EventKind, State};
    let options = StageOptions::from_config(config);
    options.check()?;
    let kiosk = kiosk || config.stage.kiosk;
    let audio_ok = clock.is_some();
    let clock = match clock {
        Some(c) => StageClock::Player(c),
        None => StageClock::Wall(Instant::now(), 48_000),
    };
    let (cue_tx, cues) = channel::<Cue>();
    let (speech_tx, speech_out) = channel::<Result<Queued, String>>();
    let mut rx = bus.subscribe();
    std::thread::Builder::new().name("stage-bus".into()).spawn(move || {
        loop {
            let event = match rx.blocking_recv() {
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            };
            let cue = match event.kind {
                EventKind::State(s) => {
                    Cue { state: Some(format!("{s:?}").to_lowercase()), interrupt: (s == State::Listening).then_some(true), ..Cue::default() }
                }
                EventKind::Transcript { text, is_final, .. } => Cue { heard: Some(text), is_final: Some(is_final), ..Cue::default() },
                EventKind::Said { speech, .. } => {
                    let Some(at) = event.clock else { continue };
                    let words = speech.words.iter().map(|w| (w.word.clone(), w.start, w.end)).collect();
                    let q = Queued {
                        timeline: super::timeline_of(speech.sample_rate, &speech.phonemes, 0),
                        start: at.sample,
                        scale: f64::from(at.sample_rate) / f64::from(speech.sample_rate.max(1)),
                        words,
                        last: true,
                    };
                    if speech_tx.send(Ok(q)).is_err() {
                        break;
                    }
                    continue;
                }
                EventKind::Error { for_person: Some(_), .. } => Cue { notice: Some("microphone".into()), ..Cue::default() },
                EventKind::Error { message, for_person: None } if message.starts_with("microphone ready") => {
                    Cue { clear_notices: Some(true), ..Cue::default() }
                }
                EventKind::Service { in_service, .. } => Cue { out_of_service: Some(!in_service), ..Cue::default() },
                EventKind::Session { started: false } => Cue { session_ended: Some(true), ..Cue::default() },
                _ => continue,
            };
            if cue_tx.send(cue).is_err() {
                break;
            }
        }
    })?;
    let (speech_in, _unused) = channel::<String>();
    let channels = Channels { cues: Mutex::new(cues), speech_in: Mutex::new(speech_in), speech_out: Mutex::new(speech_out) };
    let stopper = stop.clone();
    let result = launch_with(config, &options, kiosk, clock, channels, audio_ok, None, Some(stopper), Some(hooks));
    stop.cancel();
    result
}

fn launch(
    config: &Config,
    options: &StageOptions,
    kiosk: bool,
    clock: StageClock,
    channels: Channels,
    audio_ok: bool,
    frame_log: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    launch_with(config, options, kiosk, clock, channels, audio_ok, frame_log, None, None)
}

/// What the live window reports back: every frame to the watchdog, touches to the loop.
#[derive(Resource, Clone)]
pub struct LiveHooks {
    pub health: std::sync::Arc<crate::ops::watchdog::Health>,
    pub touch: tokio::sync::mpsc::UnboundedSender<crate::dialogue::LoopInput>,
}

fn beat(hooks: Res<LiveHooks>) {
    hooks.health.beat_render();
}

#[allow(clippy::too_many_arguments, reason = "the two ways into the same window")]
fn launch_with(
    config: &Config,
    options: &StageOptions,
    kiosk: bool,
    clock: StageClock,
    channels: Channels,
    audio_ok: bool,
    frame_log: Option<PathBuf>,
    stop: Option<tokio_util::sync::CancellationToken>,
    hooks: Option<LiveHooks>,
) -> anyhow::Result<ExitCode> {
    let options = options.clone();
    let window = Window {
        title: "hiwar · حوار".into(),
        resolution: (options.width, options.height).into(),
        present_mode: PresentMode::AutoVsync,
        mode: if kiosk { WindowMode::BorderlessFullscreen(MonitorSelection::Primary) } else { WindowMode::Windowed },
        decorations: !kiosk,
        ..default()
    };
    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .set(WindowPlugin { primary_window: Some(window), primary_cursor_options: Some(CursorOptions { visible: !kiosk, ..default() }), ..default() })
            .set(super::asset_plugin(&options))
            // Compile every pipeline before the first frame: a kiosk never shows a half-drawn
            // (or black) screen while shaders compile.
            .set(bevy::render::RenderPlugin { synchronous_pipeline_compilation: true, ..default() })
            .disable::<bevy::log::LogPlugin>(),
    );
    super::add_stage(&mut app, &options, clock, false);
    let mut state = StageState::default();
    if !audio_ok {
        state.notices.push(Notice::Speaker);
    }
    if let Some(stop) = stop {
        app.insert_resource(StopWhen(stop)).add_systems(Update, stop_when);
    }
    if let Some(hooks) = hooks {
        app.insert_resource(hooks).add_systems(Last, beat);
    }
    app.insert_resource(state)
        .insert_resource(channels)
        .insert_resource(Live {
            kiosk,
            escape_exits: !kiosk || config.stage.kiosk_escape_exits,
            attract_after: Duration::from_secs(config.stage.attract_after_secs.max(1)),
            last_activity: Instant::now(),
            speech_end: None,
            resting: Activity::Idle,
            drawn: 0,
        })
        .add_systems(Startup, move |mut commands: Commands, assets: Res<AssetServer>| {
            let camera = super::spawn_scene(&mut commands, &assets, &options, None);
            super::captions::spawn_ui(&mut commands, &assets, camera);
        })
        .add_systems(Update, (apply_cues, take_speech, input, kiosk_attract, announce_ready));
    if let Some(path) = frame_log {
        app.insert_resource(FrameLog { path, started: Instant::now(), rows: String::from("wall_s,pose,clock,rate\n") }).add_systems(Last, log_frame);
    }
    app.run();
    Ok(ExitCode::SUCCESS)
}

/// Where synthesised speech goes.
enum Output {
    Speaker(hiwar_speech::voice::Player),
    /// No speaker: the speech is timed on the wall clock (mouth and captions move, nothing is
    /// heard).
    Silent {
        clock: StageClock,
        free_from: u64,
    },
}

impl Output {
    /// Queues `samples` at `rate`; returns the clock position where they start and the clock's
    /// rate.
    fn queue(&mut self, samples: &[f32], rate: u32) -> Result<(u64, u32), String> {
        match self {
            Output::Speaker(player) => Ok((player.queue(samples, rate).map_err(|e| e.to_string())?, player.sample_rate())),
            Output::Silent { clock, free_from } => {
                let start = (*free_from).max(clock.position());
                *free_from = start + samples.len() as u64 * u64::from(clock.rate()) / u64::from(rate.max(1));
                Ok((start, clock.rate()))
            }
        }
    }
}

/// Synthesises what the stage is asked to say, chunk by chunk, onto the speaker.
fn spawn_speech_worker(config: Config, mut output: Output, requests: Receiver<String>, done: Sender<Result<Queued, String>>) {
    std::thread::spawn(move || {
        // Load the voices now, so the first answer is not delayed by it.
        let mut voices: Option<hiwar_speech::voice::Voices> = crate::voice::voices(&config, true).map_err(|e| tracing::warn!("voices: {e:#}")).ok();
        for text in requests {
            if voices.is_none() {
                match crate::voice::voices(&config, true) {
                    Ok(v) => voices = Some(v),
                    Err(e) => {
                        let _ = done.send(Err(format!("{e:#}")));
                        continue;
                    }
                }
            }
            let Some(v) = voices.as_mut() else { continue };
            let mut chunker = hiwar_speech::voice::Chunker::new();
            let mut chunks = chunker.push(&text);
            chunks.extend(chunker.finish());
            let n = chunks.len();
            for (i, chunk) in chunks.iter().enumerate() {
                let result = v.speak(chunk).map_err(|e| e.to_string()).and_then(|speech| {
                    let (start, clock_rate) = output.queue(&speech.samples, speech.sample_rate)?;
                    let scale = f64::from(clock_rate) / f64::from(speech.sample_rate.max(1));
                    let timeline = super::timeline_of(speech.sample_rate, &speech.phonemes, 0);
                    let words = speech.words.iter().map(|w| (w.word.clone(), w.start, w.end)).collect();
                    Ok(Queued { timeline, start, scale, words, last: i + 1 == n })
                });
                if done.send(result).is_err() {
                    return;
                }
            }
        }
    });
}

/// Reads cues from a script file or standard input, one JSON object per line.
fn spawn_cue_reader(script: Option<PathBuf>, cues: Sender<Cue>) {
    std::thread::spawn(move || {
        let reader: Box<dyn std::io::BufRead> = match &script {
            Some(path) => match std::fs::File::open(path) {
                Ok(f) => Box::new(std::io::BufReader::new(f)),
                Err(e) => {
                    emit(serde_json::json!({"event": "error", "message": format!("cannot read {}: {e}", path.display())}));
                    return;
                }
            },
            None => Box::new(std::io::stdin().lock()),
        };
        let from_stdin = script.is_none();
        for line in reader.lines() {
            let Ok(line) = line else { break };
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Cue>(&line) {
                Ok(cue) => {
                    if cues.send(cue).is_err() {
                        return;
                    }
                }
                Err(e) => emit(serde_json::json!({"event": "error", "message": format!("bad cue {line:?}: {e}")})),
            }
        }
        // Standard input closed: whoever drove the stage is gone, so the stage goes too (a
        // script file ending leaves the window up).
        if from_stdin {
            let _ = cues.send(Cue { quit: Some(true), ..Cue::default() });
        }
    });
}

/// The live loop has ended (Ctrl-C, or its input ran out): the window closes.
#[derive(Resource)]
struct StopWhen(tokio_util::sync::CancellationToken);

fn stop_when(stop: Res<StopWhen>, mut exit: MessageWriter<AppExit>) {
    if stop.0.is_cancelled() {
        exit.write(AppExit::Success);
    }
}

fn activity_of(name: &str) -> Option<Activity> {
    Some(match name {
        "idle" => Activity::Idle,
        "listening" => Activity::Listening,
        "thinking" => Activity::Thinking,
        "speaking" => Activity::Speaking,
        _ => return None,
    })
}

#[allow(clippy::too_many_arguments, reason = "a bevy system")]
fn apply_cues(
    mut commands: Commands,
    channels: Res<Channels>,
    mut state: ResMut<StageState>,
    mut captions: ResMut<Captions>,
    mut live: ResMut<Live>,
    mut perf: ResMut<Performance>,
    mut exit: MessageWriter<AppExit>,
) {
    let Ok(cues) = channels.cues.lock() else { return };
    while let Ok(cue) = cues.try_recv() {
        if cue.interrupt == Some(true) {
            perf.lipsync.clear();
            captions.avatar.clear();
            live.speech_end = None;
        }
        // Someone is there (they spoke, or the dialogue moved on): the kiosk wakes up.
        // Screenshots, notices and quitting are not visitors.
        if cue.say.is_some() || cue.state.is_some() || cue.heard.is_some() {
            live.last_activity = Instant::now();
            if state.attract {
                state.attract = false;
            }
        }
        if let Some(text) = cue.say {
            emit(serde_json::json!({"event": "speaking", "text": text}));
            captions.avatar.clear();
            live.speech_end = Some((0, false));
            if let Ok(tx) = channels.speech_in.lock()
                && tx.send(text).is_err()
            {
                emit(serde_json::json!({"event": "error", "message": "the speaker is unavailable"}));
            }
        }
        if let Some(name) = cue.state {
            match activity_of(&name) {
                Some(a) => {
                    state.activity = a;
                    live.resting = if a == Activity::Speaking { Activity::Idle } else { a };
                }
                None => emit(serde_json::json!({"event": "error", "message": format!("unknown state {name:?}: idle, listening, thinking or speaking")})),
            }
        }
        if let Some(text) = cue.heard {
            captions.person = text;
            captions.person_final = cue.is_final.unwrap_or(false);
        }
        if let Some(name) = cue.notice {
            match Notice::parse(&name) {
                Some(n) if !state.notices.contains(&n) => state.notices.push(n),
                Some(_) => {}
                None => emit(serde_json::json!({"event": "error", "message": format!("unknown notice {name:?}")})),
            }
        }
        if cue.clear_notices == Some(true) {
            state.notices.clear();
        }
        if let Some(on) = cue.attract {
            state.attract = on;
        }
        if let Some(out) = cue.out_of_service {
            state.out_of_service = out;
        }
        if cue.session_ended == Some(true) {
            // Nothing of the last visitor stays on screen.
            captions.person.clear();
            captions.avatar.clear();
            perf.lipsync.clear();
            live.speech_end = None;
            state.attract = live.kiosk;
        }
        if let Some(path) = cue.screenshot {
            commands.spawn(bevy::render::view::screenshot::Screenshot::primary_window()).observe(
                move |ev: On<bevy::render::view::screenshot::ScreenshotCaptured>| {
                    let saved =
                        ev.image.clone().try_into_dynamic().map_err(|e| e.to_string()).and_then(|img| img.to_rgb8().save(&path).map_err(|e| e.to_string()));
                    match saved {
                        Ok(()) => emit(serde_json::json!({"event": "screenshot", "path": path})),
                        Err(e) => emit(serde_json::json!({"event": "error", "message": format!("screenshot {}: {e}", path.display())})),
                    }
                },
            );
        }
        if cue.quit == Some(true) {
            exit.write(AppExit::Success);
        }
    }
}

/// Takes chunks the speech worker has queued: their timelines into the lip-sync, their words
/// into the captions, all on the speaker's clock.
fn take_speech(
    channels: Res<Channels>,
    clock: Res<StageClock>,
    mut perf: ResMut<Performance>,
    mut captions: ResMut<Captions>,
    mut state: ResMut<StageState>,
    mut live: ResMut<Live>,
) {
    if let Ok(rx) = channels.speech_out.lock() {
        while let Ok(result) = rx.try_recv() {
            match result {
                Ok(q) => {
                    if live.speech_end.is_none_or(|(end, _)| end == 0) {
                        emit(serde_json::json!({"event": "audio", "start": q.start, "now": clock.position()}));
                    }
                    perf.lipsync.push(&q.timeline, q.start);
                    for (text, start, end) in q.words {
                        let at = |s: u64| q.start + (s as f64 * q.scale).round() as u64;
                        captions.avatar.push(CaptionWord { text, start: at(start), end: at(end) });
                    }
                    let end = perf.lipsync.end();
                    live.speech_end = Some((end, q.last));
                    state.activity = Activity::Speaking;
                }
                Err(message) => {
                    emit(serde_json::json!({"event": "error", "message": message}));
                    if !state.notices.contains(&Notice::Model) {
                        state.notices.push(Notice::Model);
                    }
                    live.speech_end = None;
                }
            }
        }
    }
    let pos = clock.position();
    if let Some((end, true)) = live.speech_end
        && end > 0
        && pos >= end
    {
        live.speech_end = None;
        live.last_activity = Instant::now();
        state.activity = live.resting;
        perf.lipsync.forget_before(pos);
        emit(serde_json::json!({"event": "spoken"}));
    }
}

/// Space or a touch: push-to-talk (reported; the dialogue loop listens to it). Escape closes
/// the window unless a kiosk forbids it.
fn input(
    keys: Res<ButtonInput<KeyCode>>,
    touches: Res<Touches>,
    hooks: Option<Res<LiveHooks>>,
    mut state: ResMut<StageState>,
    mut live: ResMut<Live>,
    mut exit: MessageWriter<AppExit>,
) {
    let pressed = keys.just_pressed(KeyCode::Space) || touches.any_just_pressed();
    let released = keys.just_released(KeyCode::Space) || touches.any_just_released();
    if pressed {
        if let Some(hooks) = &hooks {
            let _ = hooks.touch.send(crate::dialogue::LoopInput::Touch);
        }
        live.last_activity = Instant::now();
        state.attract = false;
        state.activity = Activity::Listening;
        emit(serde_json::json!({"event": "push_to_talk", "pressed": true}));
    }
    if released {
        live.last_activity = Instant::now();
        state.activity = live.resting;
        emit(serde_json::json!({"event": "push_to_talk", "pressed": false}));
    }
    if keys.just_pressed(KeyCode::Escape) && live.escape_exits {
        exit.write(AppExit::Success);
    }
}

/// The attract screen after a quiet spell, in kiosk mode.
fn kiosk_attract(mut state: ResMut<StageState>, live: Res<Live>) {
    if live.kiosk && !state.attract && live.speech_end.is_none() && state.activity == Activity::Idle && live.last_activity.elapsed() >= live.attract_after {
        state.attract = true;
    }
}

/// Per frame: when it was posed (wall seconds), the position posed for, and the speaker's
/// clock at that moment — the sync figure of the live path is computed from these.
#[derive(Resource)]
struct FrameLog {
    path: PathBuf,
    started: Instant,
    rows: String,
}

fn log_frame(mut log: ResMut<FrameLog>, perf: Res<Performance>, clock: Res<StageClock>, exit: MessageReader<AppExit>) {
    // About an hour at 60 fps; past that the log stops growing.
    if log.rows.len() < 8_000_000 {
        let wall = log.started.elapsed().as_secs_f64();
        let row = format!("{wall:.4},{},{},{}\n", perf.last_pose, clock.position(), clock.rate());
        log.rows.push_str(&row);
    }
    if !exit.is_empty()
        && let Err(e) = std::fs::write(&log.path, &log.rows)
    {
        emit(serde_json::json!({"event": "error", "message": format!("frame log {}: {e}", log.path.display())}));
    }
}

/// Says "ready" once the bound avatar has been on screen for a few frames.
fn announce_ready(parts: Res<AvatarParts>, mut live: ResMut<Live>) {
    if parts.bound && live.drawn < 4 {
        live.drawn += 1;
        if live.drawn == 4 {
            emit(serde_json::json!({"event": "ready"}));
        }
    }
}
