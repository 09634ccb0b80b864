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
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy::window::{CursorOptions, MonitorSelection, PresentMode, WindowMode};
use hiwar_animation::{Activity, Timeline};
use hiwar_core::bus::{Bus, EventKind, Said, State};
use hiwar_core::config::Config;
use hiwar_core::speaking::{Output, VoiceEvent, VoiceOut};
use serde::Deserialize;

use super::captions::{CaptionWord, Captions};
use super::{AvatarParts, Notice, Performance, StageClock, StageOptions, StageState};

/// What the stage is told: typed. `hiwar stage` reads cues as JSON lines ([`CueLine`], the
/// wire format, checked where it is read); `hiwar run` makes them from the bus.
#[derive(Debug, Clone, PartialEq)]
pub enum Cue {
    /// Speak this (through the stage's own voice worker).
    Say(String),
    State(Activity),
    /// What the person said so far, or in all.
    Heard {
        text: String,
        is_final: bool,
    },
    Notice(Notice),
    ClearNotices,
    Screenshot(PathBuf),
    Attract(bool),
    /// The kiosk is out of service (true) or back (false).
    OutOfService(bool),
    /// A visitor's session ended: captions cleared, attract screen (kiosk).
    SessionEnded,
    /// The person interrupted: the mouth and the answer's captions stop now.
    Interrupt,
    Quit,
}

/// One line of `hiwar stage`'s input: any of its fields, each a cue.
#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct CueLine {
    pub say: Option<String>,
    pub state: Option<String>,
    pub heard: Option<String>,
    #[serde(rename = "final")]
    pub is_final: Option<bool>,
    pub notice: Option<String>,
    pub clear_notices: Option<bool>,
    pub screenshot: Option<PathBuf>,
    pub attract: Option<bool>,
    pub out_of_service: Option<bool>,
    pub session_ended: Option<bool>,
    pub quit: Option<bool>,
    pub interrupt: Option<bool>,
}

impl CueLine {
    /// The cues in this line, in the order the stage applies them, or what is wrong with it.
    pub fn cues(self) -> Result<Vec<Cue>, String> {
        let mut out = Vec::new();
        if self.interrupt == Some(true) {
            out.push(Cue::Interrupt);
        }
        if let Some(text) = self.say {
            out.push(Cue::Say(text));
        }
        if let Some(name) = self.state {
            out.push(Cue::State(activity_of(&name).ok_or_else(|| format!("unknown state {name:?}: idle, listening, thinking or speaking"))?));
        }
        if let Some(text) = self.heard {
            out.push(Cue::Heard { text, is_final: self.is_final.unwrap_or(false) });
        }
        if let Some(name) = self.notice {
            out.push(Cue::Notice(Notice::parse(&name).ok_or_else(|| format!("unknown notice {name:?}"))?));
        }
        if self.clear_notices == Some(true) {
            out.push(Cue::ClearNotices);
        }
        if let Some(on) = self.attract {
            out.push(Cue::Attract(on));
        }
        if let Some(out_of_service) = self.out_of_service {
            out.push(Cue::OutOfService(out_of_service));
        }
        if self.session_ended == Some(true) {
            out.push(Cue::SessionEnded);
        }
        if let Some(path) = self.screenshot {
            out.push(Cue::Screenshot(path));
        }
        if self.quit == Some(true) {
            out.push(Cue::Quit);
        }
        Ok(out)
    }
}

/// What happens on the bus, as the stage shows it: its cues, and the speech it lip-syncs.
pub fn from_bus(event: &hiwar_core::bus::Event) -> (Vec<Cue>, Option<Chunk>) {
    let cues = match &event.kind {
        EventKind::State(s) => {
            let mut cues = Vec::new();
            if *s == State::Listening {
                cues.push(Cue::Interrupt);
            }
            cues.push(Cue::State(activity_from(*s)));
            cues
        }
        EventKind::Transcript { text, is_final, .. } => vec![Cue::Heard { text: text.clone(), is_final: *is_final }],
        EventKind::Said { speech, what, .. } => {
            let Some(at) = event.clock else { return (Vec::new(), None) };
            return (Vec::new(), Some(Chunk::of(speech, at.sample, at.sample_rate, true, *what == Said::Fallback)));
        }
        EventKind::Error { for_person: Some(_), .. } | EventKind::Microphone { ready: false, .. } => vec![Cue::Notice(Notice::Microphone)],
        EventKind::Microphone { ready: true, .. } => vec![Cue::ClearNotices],
        EventKind::Service { in_service, .. } => vec![Cue::OutOfService(!in_service)],
        EventKind::Session { started: false } => vec![Cue::SessionEnded],
        _ => Vec::new(),
    };
    (cues, None)
}

fn activity_from(state: State) -> Activity {
    match state {
        State::Idle => Activity::Idle,
        State::Listening => Activity::Listening,
        State::Thinking => Activity::Thinking,
        State::Speaking => Activity::Speaking,
    }
}

/// Writes one JSON event line on standard output.
fn emit(value: serde_json::Value) {
    println!("{value}");
}

/// A chunk of speech queued on the speaker, as the face needs it.
#[derive(Debug, Clone)]
pub struct Chunk {
    timeline: Timeline,
    /// Clock position at which the chunk starts playing.
    start: u64,
    /// Clock samples per voice sample.
    scale: f64,
    words: Vec<(String, u64, u64)>,
    /// The last of what was asked for (the face rests when it has been heard).
    last: bool,
    /// Said instead of an answer that failed (the face shows concern).
    fallback: bool,
}

impl Chunk {
    fn of(speech: &hiwar_speech::voice::Speech, start: u64, clock_rate: u32, last: bool, fallback: bool) -> Chunk {
        Chunk {
            timeline: super::timeline_of(speech.sample_rate, &speech.phonemes, 0),
            start,
            scale: f64::from(clock_rate) / f64::from(speech.sample_rate.max(1)),
            words: speech.written_words(true).into_iter().map(|w| (w.text, w.start, w.end)).collect(),
            last,
            fallback,
        }
    }
}

/// What the stage's speech reports.
enum Speech {
    Chunk(Chunk),
    /// All of the last `say` is queued.
    Done,
    Failed(String),
}

#[derive(Resource)]
struct Channels {
    cues: Mutex<Receiver<Cue>>,
    speech_in: Mutex<Option<Sender<String>>>,
    speech_out: Mutex<Receiver<Speech>>,
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
        has_display(),
        "no display to open the stage window on (DISPLAY and WAYLAND_DISPLAY are unset); render offscreen instead: hiwar say \"…\" --video out.mp4"
    );
    let kiosk = kiosk || config.stage.kiosk;

    // The speaker and its clock; without one the stage still runs, on a wall clock, and says so.
    let (clock, output, audio_ok) = match hiwar_speech::voice::Player::open(&config.audio.output_device) {
        Ok(player) => (StageClock::Player(player.clock()), Output::Speaker(player), true),
        Err(e) => {
            tracing::warn!("no audio output: {e}; the stage runs on a wall clock and shows its answers as captions");
            let started = Instant::now();
            (StageClock::Wall(started, 48_000), Output::Wall { started, rate: 48_000, free_from: 0 }, false)
        }
    };
    let (speech_in, speech_requests) = channel::<String>();
    let (speech_done, speech_out) = channel::<Speech>();
    spawn_speech_worker(config.clone(), output, speech_requests, speech_done);
    let (cue_tx, cues) = channel::<Cue>();
    spawn_cue_reader(script, cue_tx);
    let channels = Channels { cues: Mutex::new(cues), speech_in: Mutex::new(Some(speech_in)), speech_out: Mutex::new(speech_out) };
    launch_with(config, &options, kiosk, clock, channels, audio_ok, frame_log, None, None)
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
    bus: &Bus,
    clock: Option<Arc<hiwar_speech::voice::PlayClock>>,
    hooks: LiveHooks,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<ExitCode> {
    let options = StageOptions::from_config(config);
    options.check()?;
    let kiosk = kiosk || config.stage.kiosk;
    let audio_ok = clock.is_some();
    let clock = match clock {
        Some(c) => StageClock::Player(c),
        None => StageClock::Wall(Instant::now(), 48_000),
    };
    let (cue_tx, cues) = channel::<Cue>();
    let (speech_tx, speech_out) = channel::<Speech>();
    let mut rx = bus.subscribe();
    std::thread::Builder::new().name("stage-bus".into()).spawn(move || {
        loop {
            let event = match rx.blocking_recv() {
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            };
            let (cues, chunk) = from_bus(&event);
            if let Some(c) = chunk
                && speech_tx.send(Speech::Chunk(c)).is_err()
            {
                break;
            }
            if cues.into_iter().any(|c| cue_tx.send(c).is_err()) {
                break;
            }
        }
    })?;
    let channels = Channels { cues: Mutex::new(cues), speech_in: Mutex::new(None), speech_out: Mutex::new(speech_out) };
    let stopper = stop.clone();
    let result = launch_with(config, &options, kiosk, clock, channels, audio_ok, None, Some(stopper), Some(hooks));
    stop.cancel();
    result
}

/// What the live window reports back: every frame drawn (the watchdog's heartbeat), and touches
/// or push-to-talk (a visitor is there).
#[derive(Resource, Clone)]
pub struct LiveHooks {
    pub on_frame: Arc<dyn Fn() + Send + Sync>,
    pub on_touch: Arc<dyn Fn() + Send + Sync>,
}

fn beat(hooks: Res<LiveHooks>) {
    (hooks.on_frame)();
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
        // Cues land before the captions and the badge are laid out, so the frame drawn after a
        // cue (and a screenshot asked for with it) shows it.
        .add_systems(
            Update,
            ((apply_cues, take_speech, input, kiosk_attract).before(super::captions::update_status).before(super::captions::update_captions), announce_ready),
        );
    if let Some(path) = frame_log {
        app.insert_resource(FrameLog { path, started: Instant::now(), rows: String::from("wall_s,pose,clock,rate\n") }).add_systems(Last, log_frame);
    }
    app.run();
    Ok(ExitCode::SUCCESS)
}

/// Synthesises what `hiwar stage` is asked to say, chunk by chunk, onto the output, through the
/// voice worker.
fn spawn_speech_worker(config: Config, output: Output, requests: Receiver<String>, done: Sender<Speech>) {
    std::thread::spawn(move || {
        // Load the voices now, so the first answer is not delayed by it.
        let voices = match hiwar_core::build::voices(&config, true) {
            Ok(v) => v,
            Err(e) => {
                let message = format!("{e:#}");
                for _ in requests {
                    if done.send(Speech::Failed(message.clone())).is_err() {
                        return;
                    }
                }
                return;
            }
        };
        let (voice, mut events) = VoiceOut::start(voices, output, None);
        let reports = done.clone();
        std::thread::spawn(move || {
            while let Some(e) = events.blocking_recv() {
                let report = match e {
                    VoiceEvent::Spoken(s) => Speech::Chunk(Chunk::of(&s.speech, s.start, s.clock_rate, false, false)),
                    VoiceEvent::TurnEnd { .. } => Speech::Done,
                    VoiceEvent::Failed { message, .. } => Speech::Failed(message),
                };
                if reports.send(report).is_err() {
                    return;
                }
            }
        });
        for (turn, text) in requests.into_iter().enumerate() {
            let turn = turn as u64 + 1;
            let mut chunker = hiwar_speech::voice::Chunker::new();
            let mut chunks = chunker.push(&text);
            chunks.extend(chunker.finish());
            for chunk in &chunks {
                voice.say(turn, Said::Answer, chunk);
            }
            voice.end(turn);
        }
        voice.finish();
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
            match serde_json::from_str::<CueLine>(&line).map_err(|e| e.to_string()).and_then(CueLine::cues) {
                Ok(parsed) => {
                    if parsed.into_iter().any(|cue| cues.send(cue).is_err()) {
                        return;
                    }
                }
                Err(e) => emit(serde_json::json!({"event": "error", "message": format!("bad cue {line:?}: {e}")})),
            }
        }
        // Standard input closed: whoever drove the stage is gone, so the stage goes too (a
        // script file ending leaves the window up).
        if from_stdin {
            let _ = cues.send(Cue::Quit);
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
        // Someone is there (they spoke, or the dialogue moved on): the kiosk wakes up.
        // Screenshots, notices and quitting are not visitors.
        if matches!(cue, Cue::Say(_) | Cue::State(_) | Cue::Heard { .. }) {
            live.last_activity = Instant::now();
            state.attract = false;
        }
        match cue {
            Cue::Interrupt => {
                perf.lipsync.clear();
                perf.expression.clear();
                captions.avatar.clear();
                live.speech_end = None;
            }
            Cue::Say(text) => {
                emit(serde_json::json!({"event": "speaking", "text": text}));
                captions.avatar.clear();
                live.speech_end = Some((0, false));
                let sent = channels.speech_in.lock().ok().and_then(|tx| tx.as_ref().map(|tx| tx.send(text).is_ok()));
                if sent != Some(true) {
                    emit(serde_json::json!({"event": "error", "message": "the speaker is unavailable"}));
                }
            }
            Cue::State(a) => {
                state.activity = a;
                live.resting = if a == Activity::Speaking { Activity::Idle } else { a };
            }
            Cue::Heard { text, is_final } => {
                captions.person = text;
                captions.person_final = is_final;
            }
            Cue::Notice(n) => {
                if !state.notices.contains(&n) {
                    state.notices.push(n);
                }
            }
            Cue::ClearNotices => state.notices.clear(),
            Cue::Attract(on) => state.attract = on,
            Cue::OutOfService(out) => state.out_of_service = out,
            Cue::SessionEnded => {
                // Nothing of the last visitor stays on screen.
                captions.person.clear();
                captions.avatar.clear();
                perf.lipsync.clear();
                perf.expression.clear();
                live.speech_end = None;
                state.attract = live.kiosk;
            }
            Cue::Screenshot(path) => {
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
            Cue::Quit => {
                exit.write(AppExit::Success);
            }
        }
    }
}

/// Takes chunks of speech queued on the speaker: their timelines into the lip-sync, their words
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
        while let Ok(report) = rx.try_recv() {
            match report {
                Speech::Chunk(q) => {
                    if live.speech_end.is_none_or(|(end, _)| end == 0) {
                        emit(serde_json::json!({"event": "audio", "start": q.start, "now": clock.position()}));
                    }
                    perf.lipsync.push(&q.timeline, q.start);
                    let at = |s: u64| q.start + (s as f64 * q.scale).round() as u64;
                    let words: Vec<CaptionWord> = q.words.into_iter().map(|(text, start, end)| CaptionWord { text, start: at(start), end: at(end) }).collect();
                    super::express(&mut perf.expression, &words, q.fallback);
                    captions.avatar.extend(words);
                    let end = perf.lipsync.end();
                    live.speech_end = Some((end, q.last));
                    state.activity = Activity::Speaking;
                }
                Speech::Done => match live.speech_end {
                    Some((end, _)) if end > 0 => live.speech_end = Some((end, true)),
                    _ => {
                        // Nothing could be said: nothing to wait for.
                        live.speech_end = None;
                        state.activity = live.resting;
                        emit(serde_json::json!({"event": "spoken"}));
                    }
                },
                Speech::Failed(message) => {
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
            (hooks.on_touch)();
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
