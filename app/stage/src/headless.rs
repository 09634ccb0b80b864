//! Offscreen rendering paced by the audio clock: PNG frames and MP4 with the audio muxed.
//!
//! Frame k shows the face at clock position round(k × rate / fps), whatever the renderer's
//! speed: a slow software renderer takes longer, never drifts. Each frame is captured from
//! the very update that posed it (bevy's screenshot of that frame's render), tagged with its
//! index, and handed to ffmpeg in order.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bevy::app::PluginsState;
use bevy::asset::RenderAssetUsages;
use bevy::camera::RenderTarget;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, PollType, TextureDimension, TextureFormat, TextureUsages};
use bevy::render::renderer::RenderDevice;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::window::ExitCondition;
use hiwar_animation::{Activity, AudioLipSync, Timeline};

use super::captions::{CaptionWord, Captions};
use super::{AvatarParts, Performance, StageClock, StageOptions, StageState};

/// What to record.
pub struct Recording<'a> {
    /// Mono audio and its rate.
    pub samples: &'a [f32],
    pub rate: u32,
    /// The voice's timeline (None: the mouth follows the audio alone).
    pub timeline: Option<Timeline>,
    pub words: Vec<CaptionWord>,
    pub fps: u32,
    /// Rest frames after the audio ends, seconds.
    pub tail: f64,
    /// A conversation: from each beat's start (clock samples) on, the face's activity, the
    /// person's caption and the avatar's words are the beat's. Empty: one answer throughout.
    pub beats: Vec<Beat>,
}

/// A stretch of a recorded conversation (the person asking, the avatar answering).
#[derive(Debug, Clone)]
pub struct Beat {
    pub from: u64,
    pub activity: Activity,
    pub person: String,
    pub words: Vec<CaptionWord>,
}

/// Where the frames go.
#[derive(Default)]
pub struct Outputs {
    pub video: Option<PathBuf>,
    pub frames: Option<PathBuf>,
}

#[derive(Debug)]
pub struct RenderReport {
    pub frames: u64,
    pub seconds: f64,
}

/// A bevy app rendering to an offscreen image, updated by hand.
pub struct Offscreen {
    pub app: App,
    pub target: Handle<Image>,
}

/// Which scene the offscreen app shows.
pub enum Scene {
    /// The avatar, captions and state display.
    Stage,
    /// One sphere and one light, for the frame-time comparison.
    Minimal,
}

impl Offscreen {
    /// Builds the app and waits (up to a minute) until the scene is loaded and drawn once.
    pub fn new(options: &StageOptions, clock: StageClock, scene: Scene) -> anyhow::Result<Offscreen> {
        if matches!(scene, Scene::Stage) {
            options.check()?;
        }
        let (w, h) = (options.width, options.height);
        let mut app = App::new();
        app.add_plugins(
            DefaultPlugins
                .set(WindowPlugin { primary_window: None, exit_condition: ExitCondition::DontExit, close_when_requested: false, ..default() })
                .set(bevy::render::RenderPlugin { synchronous_pipeline_compilation: true, ..default() })
                .set(super::asset_plugin(options))
                .disable::<bevy::winit::WinitPlugin>()
                .disable::<bevy::log::LogPlugin>()
                .disable::<bevy::render::pipelined_rendering::PipelinedRenderingPlugin>(),
        );
        let mut image = Image::new_uninit(
            Extent3d { width: w, height: h, depth_or_array_layers: 1 },
            TextureDimension::D2,
            TextureFormat::Rgba8UnormSrgb,
            RenderAssetUsages::RENDER_WORLD,
        );
        image.texture_descriptor.usage |= TextureUsages::RENDER_ATTACHMENT | TextureUsages::COPY_SRC;
        let target = app.world_mut().resource_mut::<Assets<Image>>().add(image);
        let opts = options.clone();
        let t = target.clone();
        match scene {
            Scene::Stage => {
                super::add_stage(&mut app, options, clock, true);
                app.add_systems(Startup, move |mut commands: Commands, assets: Res<AssetServer>| {
                    let camera = super::spawn_scene(&mut commands, &assets, &opts, Some(RenderTarget::Image(t.clone().into())));
                    super::captions::spawn_ui(&mut commands, &assets, camera);
                });
            }
            Scene::Minimal => {
                app.insert_resource(clock);
                app.add_systems(Startup, move |mut commands: Commands, mut meshes: ResMut<Assets<Mesh>>, mut materials: ResMut<Assets<StandardMaterial>>| {
                    let f = super::framing(opts.width, opts.height);
                    commands.spawn((super::camera_bundle(&opts), RenderTarget::Image(t.clone().into())));
                    commands.spawn((
                        Mesh3d(meshes.add(Sphere::new(0.1).mesh().ico(5).unwrap_or_else(|_| Sphere::new(0.1).mesh().build()))),
                        MeshMaterial3d(materials.add(Color::srgb(0.8, 0.58, 0.45))),
                        Transform::from_translation(f.target),
                    ));
                    commands.spawn((
                        DirectionalLight { illuminance: 7_000.0, shadow_maps_enabled: false, ..default() },
                        Transform::from_xyz(0.6, 1.2, 1.0).looking_at(Vec3::ZERO, Vec3::Y),
                    ));
                });
            }
        }
        // What App::run would do before its first update.
        let started = Instant::now();
        while app.plugins_state() == PluginsState::Adding {
            bevy::tasks::tick_global_task_pools_on_main_thread();
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(60),
                "the renderer did not start within a minute (see `hiwar doctor` for the graphics adapter)"
            );
        }
        app.finish();
        app.cleanup();
        let mut off = Offscreen { app, target };
        let ready = |app: &App| -> bool {
            let Some(parts) = app.world().get_resource::<AvatarParts>() else { return true };
            let font_ok = app
                .world()
                .get_resource::<super::captions::CaptionFont>()
                .is_none_or(|f| app.world().resource::<AssetServer>().is_loaded_with_dependencies(&f.0));
            parts.bound && font_ok
        };
        let started = Instant::now();
        loop {
            off.update();
            if ready(&off.app) {
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                let failed = off.app.world().get_resource::<AvatarParts>().is_some_and(|p| !p.bound);
                anyhow::bail!(
                    "the stage did not become ready within a minute ({})",
                    if failed {
                        format!("the avatar {} did not load or has no morph targets", options.avatar.display())
                    } else {
                        "the caption font did not load".to_string()
                    }
                );
            }
        }
        // A few frames so that text layout and the first pose have settled.
        for _ in 0..3 {
            off.update();
        }
        Ok(off)
    }

    /// One update, waiting until the GPU has finished it.
    pub fn update(&mut self) {
        self.app.update();
        let device = self.app.world().resource::<RenderDevice>();
        let _ = device.wgpu_device().poll(PollType::Wait { submission_index: None, timeout: None });
    }

    pub fn set_clock(&mut self, position: u64, rate: u32) {
        self.app.insert_resource(StageClock::Manual(position, rate));
    }

    /// Asks for a capture of the next update's frame; it lands in `sink` under `index`.
    pub fn capture(&mut self, index: u64, sink: &Arc<Mutex<BTreeMap<u64, Image>>>) {
        let sink = Arc::clone(sink);
        self.app.world_mut().spawn(Screenshot::image(self.target.clone())).observe(move |ev: On<ScreenshotCaptured>| {
            if let Ok(mut s) = sink.lock() {
                s.insert(index, ev.image.clone());
            }
        });
    }
}

/// Renders `rec` to the outputs. Returns how many frames were written.
pub fn render(options: &StageOptions, rec: &Recording<'_>, out: &Outputs) -> anyhow::Result<RenderReport> {
    anyhow::ensure!(rec.fps > 0 && rec.fps <= 240, "frame rate {} out of range (1–240)", rec.fps);
    anyhow::ensure!(options.width.is_multiple_of(2) && options.height.is_multiple_of(2), "video size must be even (got {}×{})", options.width, options.height);
    let started = Instant::now();
    let mut off = Offscreen::new(options, StageClock::Manual(0, rec.rate), Scene::Stage)?;
    {
        let world = off.app.world_mut();
        let mut perf = world.resource_mut::<Performance>();
        match &rec.timeline {
            Some(t) => perf.lipsync.push(t, 0),
            None => perf.audio = Some((AudioLipSync::analyze(rec.samples, rec.rate), 0)),
        }
        super::express(&mut perf.expression, &rec.words, false);
        world.resource_mut::<Captions>().avatar = rec.words.clone();
        world.resource_mut::<StageState>().activity = Activity::Speaking;
    }
    let audio_seconds = rec.samples.len() as f64 / f64::from(rec.rate);
    let frames = ((audio_seconds + rec.tail) * f64::from(rec.fps)).ceil() as u64;
    let wav = match &out.video {
        Some(video) => Some(write_temp_wav(video, rec.samples, rec.rate)?),
        None => None,
    };
    let mut ffmpeg = match (&out.video, &wav) {
        (Some(video), Some(wav)) => Some(spawn_ffmpeg(video, wav, options.width, options.height, rec.fps)?),
        _ => None,
    };
    if let Some(dir) = &out.frames {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let sink: Arc<Mutex<BTreeMap<u64, Image>>> = Arc::default();
    let mut next = 0u64;
    let mut write_ready = |sink: &Arc<Mutex<BTreeMap<u64, Image>>>, next: &mut u64| -> anyhow::Result<()> {
        loop {
            let Some(image) = sink.lock().ok().and_then(|mut s| s.remove(next)) else { return Ok(()) };
            let bytes = image.data.as_deref().unwrap_or(&[]);
            if let Some(f) = &mut ffmpeg {
                f.stdin.as_mut().context("ffmpeg input closed")?.write_all(bytes).context("ffmpeg stopped taking frames")?;
            }
            if let Some(dir) = &out.frames {
                let png = dir.join(format!("frame-{:05}.png", *next));
                image
                    .clone()
                    .try_into_dynamic()
                    .map_err(|e| anyhow::anyhow!("frame {next}: {e}"))?
                    .to_rgb8()
                    .save(&png)
                    .with_context(|| format!("cannot write {}", png.display()))?;
            }
            *next += 1;
        }
    };
    let mut beat = usize::MAX;
    for k in 0..frames {
        let pos = (k as f64 * f64::from(rec.rate) / f64::from(rec.fps)).round() as u64;
        if let Some(now) = rec.beats.iter().rposition(|b| b.from <= pos)
            && now != beat
        {
            beat = now;
            let b = &rec.beats[now];
            let world = off.app.world_mut();
            let mut captions = world.resource_mut::<Captions>();
            captions.avatar = b.words.clone();
            captions.person = b.person.clone();
            captions.person_final = true;
            world.resource_mut::<StageState>().activity = b.activity;
        }
        off.set_clock(pos, rec.rate);
        off.capture(k, &sink);
        off.update();
        write_ready(&sink, &mut next)?;
    }
    // The last captures arrive a frame or two later.
    let wait = Instant::now();
    while next < frames {
        anyhow::ensure!(wait.elapsed() < Duration::from_secs(30), "frames {next}..{frames} were never captured");
        off.update();
        write_ready(&sink, &mut next)?;
    }
    if let Some(mut f) = ffmpeg.take() {
        drop(f.stdin.take());
        let status = f.wait()?;
        anyhow::ensure!(
            status.success(),
            "ffmpeg failed ({status}) writing {}",
            out.video.as_deref().map(Path::display).map(|d| d.to_string()).unwrap_or_default()
        );
    }
    if let Some(w) = wav {
        let _ = std::fs::remove_file(w);
    }
    Ok(RenderReport { frames, seconds: started.elapsed().as_secs_f64() })
}

/// The audio for muxing, beside the video (removed afterwards).
fn write_temp_wav(video: &Path, samples: &[f32], rate: u32) -> anyhow::Result<PathBuf> {
    let path = video.with_extension(format!("{}.audio.wav", std::process::id()));
    hiwar_core::runtime::write_wav(&path, rate, samples)?;
    Ok(path)
}

fn spawn_ffmpeg(video: &Path, wav: &Path, w: u32, h: u32, fps: u32) -> anyhow::Result<std::process::Child> {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgba", "-s"])
        .arg(format!("{w}x{h}"))
        .args(["-framerate", &fps.to_string(), "-i", "pipe:0", "-i"])
        .arg(wav)
        .args(["-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k"])
        .arg(video)
        .stdin(Stdio::piped())
        .spawn()
        .context("cannot run ffmpeg (Debian package `ffmpeg`; ./bootstrap installs it)")
}

/// Performs one piece of speech on a long-lived offscreen stage (the soak benchmark): from
/// clock position `clock` on, its mouth shapes and words, `fps` frames a second of audio;
/// then the stage forgets it, as the live window does. Returns the frames drawn.
pub fn perform(off: &mut Offscreen, speech: &hiwar_speech::voice::Speech, clock: &mut u64, fps: u32) -> u64 {
    let rate = speech.sample_rate.max(1);
    let start = *clock;
    {
        let world = off.app.world_mut();
        let words: Vec<CaptionWord> =
            speech.written_words(true).into_iter().map(|w| CaptionWord { text: w.text, start: start + w.start, end: start + w.end }).collect();
        let mut perf = world.resource_mut::<Performance>();
        perf.lipsync.push(&super::timeline_of(rate, &speech.phonemes, start), 0);
        super::express(&mut perf.expression, &words, false);
        world.resource_mut::<Captions>().avatar = words;
        world.resource_mut::<StageState>().activity = Activity::Speaking;
    }
    let length = speech.samples.len() as u64;
    let step = (u64::from(rate) / u64::from(fps.max(1))).max(1);
    let mut frames = 0;
    let mut at = 0;
    while at <= length {
        off.set_clock(start + at, rate);
        off.update();
        frames += 1;
        at += step;
    }
    *clock = start + length;
    let world = off.app.world_mut();
    world.resource_mut::<Performance>().lipsync.forget_before(*clock);
    world.resource_mut::<Captions>().avatar.clear();
    world.resource_mut::<StageState>().activity = Activity::Idle;
    frames
}
