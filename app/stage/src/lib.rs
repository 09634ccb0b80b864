//! The stage: the avatar rendered with bevy, its face driven by the played-sample clock, with
//! captions and a state display.
//!
//! The same scene serves two ways of showing it: a desktop or kiosk window ([`window`]), and
//! an offscreen render to PNG frames and MP4 at a frame rate paced by the audio clock
//! ([`headless`], which the frame-time benchmark uses too).
//!
//! Boundaries: it knows nothing of the dialogue. It takes typed cues ([`window::Cue`]) — from
//! standard input, or made from the bus — and speech already queued on a clock, and reports
//! frames and touches through callbacks ([`window::LiveHooks`]).

pub mod avatar;
pub mod captions;
pub mod graphics;
pub mod headless;
pub mod shading;
pub mod vrm;
pub mod window;

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The math types of the scene, for measuring tools that work in its coordinates.
pub use bevy::math::{Vec2, Vec3};
use bevy::prelude::*;
use bevy::world_serialization::WorldAssetRoot;
use hiwar_animation::{Activity, AudioLipSync, Composer, Expression, IdleLife, LipSync, Rig};
use hiwar_speech::voice::PlayClock;

use hiwar_core::config::Config;

/// How the stage looks, from config and flags.
#[derive(Debug, Clone)]
pub struct StageOptions {
    pub width: u32,
    pub height: u32,
    /// A glTF/VRM binary with morph targets; the bundled avatar when empty.
    pub avatar: PathBuf,
    /// Multisampling (off for software rendering, on for GPUs).
    pub msaa: bool,
    /// Seed of the idle life (blinks, saccades).
    pub seed: u64,
    pub assets: PathBuf,
    /// Captions keep the answer's tashkeel (off: shown as people usually write).
    pub caption_marks: bool,
    pub lighting: Lighting,
}

impl StageOptions {
    pub fn from_config(config: &Config) -> StageOptions {
        let assets = hiwar_core::assets::assets_dir();
        let avatar = config.stage.avatar_path(&assets);
        let (w, h) = (config.stage.width, config.stage.height);
        let (width, height) = match config.stage.orientation.as_str() {
            "portrait" if w > h => (h, w),
            "landscape" if h > w => (h, w),
            _ => (w, h),
        };
        let lighting = match config.stage.lighting.as_str() {
            "three-point" => Lighting::ThreePoint,
            "key" => Lighting::Key,
            _ => Lighting::Auto,
        };
        StageOptions { width, height, avatar, msaa: config.stage.msaa, seed: config.stage.seed, assets, caption_marks: config.stage.caption_marks, lighting }
    }

    /// Checks what the stage needs before bevy starts, so a missing file is a clear message.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.avatar.is_file(),
            "the avatar {} is missing: set stage.avatar to a .glb/.vrm file, or restore the bundled ones with `hiwar avatar` (in the repository)",
            self.avatar.display()
        );
        let font = self.assets.join(captions::FONT);
        anyhow::ensure!(font.is_file(), "the caption font {} is missing (it ships in the repository's assets/)", font.display());
        anyhow::ensure!(self.width >= 16 && self.height >= 16, "stage size {}×{} is too small", self.width, self.height);
        Ok(())
    }
}

/// Where the mouth's time comes from.
#[derive(Resource, Clone)]
pub enum StageClock {
    /// Set by the headless renderer before each frame: (position, sample rate).
    Manual(u64, u32),
    /// The speaker's played-sample clock (device latency included).
    Player(Arc<PlayClock>),
    /// No speaker: time since the stage started, at a nominal rate.
    Wall(std::time::Instant, u32),
}

impl StageClock {
    pub fn position(&self) -> u64 {
        match self {
            StageClock::Manual(p, _) => *p,
            StageClock::Player(c) => c.position(),
            StageClock::Wall(start, rate) => (start.elapsed().as_secs_f64() * f64::from(*rate)) as u64,
        }
    }

    pub fn rate(&self) -> u32 {
        match self {
            StageClock::Manual(_, r) => *r,
            StageClock::Player(c) => c.sample_rate(),
            StageClock::Wall(_, rate) => *rate,
        }
    }
}

/// What the face performs: lip-sync on the clock, idle life, the dialogue state.
#[derive(Resource)]
pub struct Performance {
    pub lipsync: LipSync,
    /// Mouth from audio alone (speech with no timing), at its own sample positions from
    /// `audio_offset` on the clock.
    pub audio: Option<(AudioLipSync, u64)>,
    pub idle: IdleLife,
    /// Moods and nods from what is said, on the clock.
    pub expression: Expression,
    pub composer: Composer,
    /// Idle life runs on the clock (headless, reproducible) or on wall time (live).
    pub idle_on_clock: bool,
    pub last_frame: Option<hiwar_animation::FaceFrame>,
    /// The clock position the last frame was posed for.
    pub last_pose: u64,
    /// Live only: how long a frame takes from posing to the screen, smoothed (seconds); the
    /// mouth is posed for the sound that will be heard when the frame shows.
    pub present_delay: f64,
}

impl Performance {
    pub fn new(rate: u32, seed: u64, idle_on_clock: bool) -> Performance {
        Performance {
            lipsync: LipSync::new(rate),
            audio: None,
            idle: IdleLife::new(seed),
            expression: Expression::new(rate),
            composer: Composer::new(),
            idle_on_clock,
            last_frame: None,
            last_pose: 0,
            present_delay: 0.0,
        }
    }
}

/// The dialogue state shown on screen, and notices for the person at the kiosk.
#[derive(Resource, Default)]
pub struct StageState {
    pub activity: Activity,
    /// The kiosk's attract screen is up.
    pub attract: bool,
    /// Problems to show (microphone, LLM, model), in Arabic and English.
    pub notices: Vec<Notice>,
    /// The whole screen says "out of service" (a stage keeps failing; the watchdog retries).
    pub out_of_service: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Microphone,
    Speaker,
    Llm,
    Model,
}

impl Notice {
    pub fn parse(name: &str) -> Option<Notice> {
        Some(match name {
            "microphone" => Notice::Microphone,
            "speaker" => Notice::Speaker,
            "llm" => Notice::Llm,
            "model" => Notice::Model,
            _ => return None,
        })
    }

    /// The message for the person in front of the screen: Arabic first.
    pub fn text(self) -> (&'static str, &'static str) {
        match self {
            Notice::Microphone => ("الميكروفون غير متاح حالياً", "The microphone is not available"),
            Notice::Speaker => ("السماعة غير متاحة، أعرض الإجابات كتابةً", "No speaker is available; answers are shown as text"),
            Notice::Llm => ("لا أستطيع الوصول إلى المساعد الآن، أجيب من المعلومات المحلية", "The assistant is unreachable; answering from local information"),
            Notice::Model => ("أحد النماذج غير متوفر على هذا الجهاز", "A model is missing on this device"),
        }
    }
}

/// A bound avatar: the entities that carry morph weights, each with its rig, and the nodes
/// that turn (head, eyes) with their rest poses.
#[derive(Resource, Default)]
pub struct AvatarParts {
    pub faces: Vec<(Entity, Rig)>,
    pub head: Option<(Entity, Transform)>,
    pub eyes: Vec<(Entity, Transform)>,
    pub body: Option<(Entity, Transform)>,
    pub bound: bool,
    /// The avatar file's VRM expression table, if it has one.
    pub tables: vrm::Tables,
}

/// Marks the avatar's scene root.
#[derive(Component)]
pub struct AvatarRoot;

/// The camera's framing: where it stands and what it looks at (also used to find the mouth
/// on screen when measuring sync from pixels).
pub struct Framing {
    pub eye: Vec3,
    pub target: Vec3,
    pub fov_y: f32,
}

/// Head and shoulders, a little headroom; portrait screens see more of the shoulders.
pub fn framing(width: u32, height: u32) -> Framing {
    let aspect = width as f32 / height.max(1) as f32;
    let head = Vec3::new(0.0, avatar::HEAD_ABOVE_BODY, 0.0);
    if aspect >= 1.0 {
        Framing { eye: head + Vec3::new(0.0, 0.0, 0.6), target: head + Vec3::new(0.0, -0.03, 0.0), fov_y: 30f32.to_radians() }
    } else {
        Framing { eye: head + Vec3::new(0.0, -0.02, 0.78), target: head + Vec3::new(0.0, -0.07, 0.0), fov_y: 38f32.to_radians() }
    }
}

/// Projects a point of the scene to pixel coordinates (x right, y down) for a frame of the
/// given size, as the stage's camera sees it.
pub fn project(point: Vec3, width: u32, height: u32) -> Vec2 {
    let f = framing(width, height);
    let view = Mat4::look_at_rh(f.eye, f.target, Vec3::Y);
    let proj = Mat4::perspective_rh(f.fov_y, width as f32 / height.max(1) as f32, 0.01, 100.0);
    let clip = proj * view * point.extend(1.0);
    let ndc = clip.truncate() / clip.w;
    Vec2::new((ndc.x + 1.0) * 0.5 * width as f32, (1.0 - ndc.y) * 0.5 * height as f32)
}

/// Where the mouth is in the avatar's scene (its centre at rest).
pub fn mouth_point() -> Vec3 {
    Vec3::new(0.0, avatar::HEAD_ABOVE_BODY + avatar::MOUTH_Y, avatar::mouth_front())
}

/// Marks the stage's camera, and the viewport size it is framed for.
#[derive(Component, Default)]
pub struct StageCamera {
    pub framed_for: (u32, u32),
}

/// The stage camera: framing for the size, no tonemapping, MSAA as configured.
pub fn camera_bundle(options: &StageOptions) -> impl Bundle {
    let f = framing(options.width, options.height);
    (
        StageCamera { framed_for: (options.width, options.height) },
        Camera3d::default(),
        Camera { clear_color: ClearColorConfig::Custom(Color::srgb(0.86, 0.88, 0.9)), ..default() },
        Projection::Perspective(PerspectiveProjection { fov: f.fov_y, near: 0.01, far: 100.0, ..default() }),
        Transform::from_translation(f.eye).looking_at(f.target, Vec3::Y),
        if options.msaa { Msaa::Sample4 } else { Msaa::Off },
        bevy::core_pipeline::tonemapping::Tonemapping::None,
    )
}

/// Frames the camera for the viewport it really has: a kiosk's fullscreen window is the
/// screen's size (a portrait panel, whatever the config says), and a window can be resized.
/// The captions learn the viewport's shape too (they page by it).
pub fn reframe(mut cameras: Query<(&Camera, &mut StageCamera, &mut Transform, &mut Projection)>, mut captions: ResMut<captions::Captions>) {
    for (camera, mut stage, mut transform, mut projection) in &mut cameras {
        let Some(size) = camera.physical_viewport_size() else { continue };
        let size = (size.x, size.y);
        if size.0 < 16 || size.1 < 16 {
            continue;
        }
        let aspect = size.0 as f32 / size.1 as f32;
        if (captions.aspect - aspect).abs() > 1e-3 {
            captions.aspect = aspect;
        }
        if size == stage.framed_for {
            continue;
        }
        let f = framing(size.0, size.1);
        *transform = Transform::from_translation(f.eye).looking_at(f.target, Vec3::Y);
        if let Projection::Perspective(p) = &mut *projection {
            p.fov = f.fov_y;
        }
        stage.framed_for = size;
    }
}

fn light(lux: f32, colour: Color) -> DirectionalLight {
    DirectionalLight { illuminance: lux, color: colour, shadow_maps_enabled: false, ..default() }
}

/// How the avatar is lit (`stage.lighting`).
#[derive(Resource, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Lighting {
    /// Three-point on a hardware GPU, the key light alone on a software renderer.
    Auto,
    ThreePoint,
    Key,
}

/// Three-point lighting, as a portrait is lit: besides the key, a cool, weaker fill from the
/// right and a rim from behind above that separates head and shoulders from the background,
/// with a dimmer ambient. Each directional light is paid per pixel, which a software renderer
/// feels, so there it stays off unless asked for (lavapipe, the bundled avatar's own shading:
/// 0.8× → 0.9× the one-sphere scene; an avatar with bevy's PBR materials: 3.0× → 4.3×). Without
/// shadows the rim also lights what the brow would hide: a shut lid shows a bright sheen.
pub fn three_point_lights(mut commands: Commands, lighting: Res<Lighting>, adapter: Option<Res<bevy::render::renderer::RenderAdapterInfo>>) {
    let software = adapter.is_some_and(|a| a.device_type == wgpu::DeviceType::Cpu);
    if *lighting == Lighting::Key || (*lighting == Lighting::Auto && software) {
        return;
    }
    commands.spawn((light(1_100.0, Color::srgb(0.85, 0.9, 1.0)), Transform::from_xyz(-1.0, 0.2, 0.8).looking_at(Vec3::ZERO, Vec3::Y)));
    commands.spawn((light(2_600.0, Color::srgb(1.0, 0.98, 0.95)), Transform::from_xyz(-0.3, 0.8, -1.0).looking_at(Vec3::ZERO, Vec3::Y)));
    commands.insert_resource(GlobalAmbientLight { brightness: 260.0, color: Color::srgb(0.92, 0.95, 1.0), ..default() });
}

/// Spawns camera, lights and the avatar. `target` is the camera's render target (None: the
/// primary window).
pub fn spawn_scene(commands: &mut Commands, assets: &AssetServer, options: &StageOptions, target: Option<bevy::camera::RenderTarget>) -> Entity {
    let mut camera = commands.spawn((camera_bundle(options), IsDefaultUiCamera));
    if let Some(target) = target {
        camera.insert(target);
    }
    let camera = camera.id();
    // A warm key light from the upper left front and an ambient fill; on a GPU a fill and a
    // rim light join it ([`three_point_lights`]). No shadows (each shadow map is paid per
    // pixel; a kiosk's GPU budget, software rendering here).
    commands.spawn((light(3_400.0, Color::srgb(1.0, 0.96, 0.9)), Transform::from_xyz(0.5, 1.0, 1.2).looking_at(Vec3::ZERO, Vec3::Y)));
    commands.insert_resource(GlobalAmbientLight { brightness: 420.0, color: Color::srgb(0.92, 0.95, 1.0), ..default() });
    let path = bevy::asset::AssetPath::from_path_buf(loadable(&options.avatar));
    commands.spawn((WorldAssetRoot(assets.load(GltfAssetLabel::Scene(0).from_asset(path))), AvatarRoot));
    camera
}

/// The path bevy loads the avatar from: bevy's glTF loader knows .glb and .gltf only, so a
/// .vrm (binary glTF by another name) is reached through a link named .glb in the temporary
/// folder, one per avatar file (not one per start: a kiosk restarts for weeks).
fn loadable(avatar: &Path) -> PathBuf {
    if !avatar.extension().is_some_and(|e| e.eq_ignore_ascii_case("vrm")) {
        return avatar.to_path_buf();
    }
    use std::hash::{Hash, Hasher};
    let full = std::fs::canonicalize(avatar).unwrap_or_else(|_| avatar.to_path_buf());
    let mut h = std::collections::hash_map::DefaultHasher::new();
    full.hash(&mut h);
    let dir = std::env::temp_dir().join(format!("hiwar-avatars-{}", user_id()));
    let link = dir.join(format!("{:016x}.glb", h.finish()));
    let made = std::fs::create_dir_all(&dir).and_then(|()| {
        if std::fs::read_link(&link).ok().as_deref() != Some(full.as_path()) {
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&full, &link)?;
        }
        Ok(())
    });
    match made {
        Ok(()) => link,
        Err(e) => {
            tracing::warn!("cannot link the VRM avatar {} as {}: {e}; it may not load (rename it to .glb)", avatar.display(), link.display());
            avatar.to_path_buf()
        }
    }
}

/// This user's id, so two users' links do not collide.
fn user_id() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or(0, |m| m.uid())
}

/// Finds the avatar's morph-weight entities and turning nodes once its scene has spawned.
/// A mesh the avatar's VRM expression table binds is rigged by the table; others by their
/// morph targets' names.
pub fn bind_avatar(
    mut parts: ResMut<AvatarParts>,
    weights: Query<(Entity, &MorphWeights, Option<&Name>)>,
    names: Query<(Entity, &Name, &Transform)>,
    meshes: Res<Assets<Mesh>>,
) {
    if parts.bound {
        return;
    }
    let mut faces = Vec::new();
    for (entity, w, node) in &weights {
        let Some(mesh) = w.first_mesh().and_then(|h| meshes.get(h)) else { return };
        let names: Vec<String> = mesh.morph_target_names().map(<[String]>::to_vec).unwrap_or_default();
        // A mesh without names still has its targets, counted by its weights.
        let names = if names.is_empty() { (0..w.weights().len()).map(|i| format!("target{i}")).collect() } else { names };
        let binds = node.and_then(|n| parts.tables.by_node.get(n.as_str()));
        let (rig, warning) = match binds {
            Some(binds) => Rig::with_expressions(&names, binds),
            None => Rig::detect(&names),
        };
        // A VRM's table names what moves; its other meshes (hair, clothes) are not faces.
        if let Some(w) = warning.filter(|_| parts.tables.version.is_none()) {
            tracing::warn!("avatar mesh with {} morph targets: {w}", names.len());
        }
        faces.push((entity, rig));
    }
    if faces.is_empty() {
        return;
    }
    let find = |candidates: &[&str]| names.iter().find(|(_, n, _)| candidates.iter().any(|c| n.as_str().eq_ignore_ascii_case(c))).map(|(e, _, t)| (e, *t));
    parts.head = find(&["Head", "J_Bip_C_Head", "mixamorig:Head", "head"]);
    parts.eyes = [
        find(&["EyeLeft", "LeftEye", "J_Adj_L_FaceEye", "eye_L", "mixamorig:LeftEye"]),
        find(&["EyeRight", "RightEye", "J_Adj_R_FaceEye", "eye_R", "mixamorig:RightEye"]),
    ]
    .into_iter()
    .flatten()
    .collect();
    parts.body = find(&["Body"]);
    let kind = faces.iter().map(|f| f.1.kind).find(|k| *k != hiwar_animation::RigKind::Static).unwrap_or(faces[0].1.kind);
    let table = parts.tables.version.map_or(String::new(), |v| format!(" (VRM {v} expression table)"));
    tracing::info!("avatar bound: {} face mesh(es), rig {kind:?}{table}, head {}, eyes {}", faces.len(), parts.head.is_some(), parts.eyes.len());
    parts.faces = faces;
    parts.bound = true;
}

/// Sets the face for this frame from the clock.
pub fn animate_face(
    clock: Res<StageClock>,
    time: Res<Time>,
    state: Res<StageState>,
    mut perf: ResMut<Performance>,
    parts: Res<AvatarParts>,
    mut weights: Query<&mut MorphWeights>,
    mut transforms: Query<&mut Transform>,
) {
    if !parts.bound {
        return;
    }
    let rate = clock.rate();
    let perf = &mut *perf;
    // Live, a frame posed now is seen about one frame interval later (rendering runs a frame
    // behind the update): pose for the sound that will be heard then. Offscreen the clock is
    // the frame's own time and there is nothing to predict.
    let pos = match &*clock {
        StageClock::Manual(p, _) => *p,
        live => {
            let dt = time.delta_secs_f64().clamp(0.0, 0.25);
            perf.present_delay = if perf.present_delay == 0.0 { dt } else { 0.9 * perf.present_delay + 0.1 * dt };
            live.position() + (perf.present_delay * f64::from(rate)) as u64
        }
    };
    perf.last_pose = pos;
    let mouth = match &perf.audio {
        Some((audio, offset)) if pos >= *offset && pos < offset + audio_len(audio, rate) => {
            let local = (pos - offset) as f64 * f64::from(audio.sample_rate()) / f64::from(rate);
            audio.sample(local as u64)
        }
        _ => perf.lipsync.sample(pos),
    };
    let t = if perf.idle_on_clock { pos as f64 / f64::from(rate.max(1)) } else { time.elapsed_secs_f64() };
    perf.idle.set_activity(state.activity, t);
    let mut idle = perf.idle.sample(t);
    perf.expression.sample(pos).apply(&mut idle);
    let frame = perf.composer.compose(&mouth, &idle);
    for (entity, rig) in &parts.faces {
        if let Ok(mut w) = weights.get_mut(*entity) {
            rig.apply(&frame, w.weights_mut());
        }
    }
    let [pitch, yaw, roll] = frame.head;
    if let Some((entity, rest)) = parts.head
        && let Ok(mut t) = transforms.get_mut(entity)
    {
        t.rotation = rest.rotation * Quat::from_euler(EulerRot::YXZ, yaw, -pitch, roll);
        t.translation = rest.translation + Vec3::Y * 0.002 * frame.breath;
    }
    for (entity, rest) in &parts.eyes {
        if let Ok(mut t) = transforms.get_mut(*entity) {
            t.rotation = rest.rotation * Quat::from_euler(EulerRot::YXZ, frame.gaze[0], -frame.gaze[1], 0.0);
        }
    }
    if let Some((entity, rest)) = parts.body
        && let Ok(mut t) = transforms.get_mut(entity)
    {
        t.scale = rest.scale * Vec3::new(1.0 + 0.004 * frame.breath, 1.0 + 0.008 * frame.breath, 1.0 + 0.006 * frame.breath);
    }
    perf.last_frame = Some(frame);
}

/// The audio track's length on the clock; past it the timeline (or rest) takes over.
fn audio_len(audio: &AudioLipSync, rate: u32) -> u64 {
    audio.len_samples() * u64::from(rate) / u64::from(audio.sample_rate().max(1))
}

/// What the face does for speech whose words are `words` (on the clock).
pub fn express(expression: &mut Expression, words: &[captions::CaptionWord], fallback: bool) {
    expression.speak(words.iter().map(|w| (w.text.as_str(), w.start, w.end)), fallback);
}

/// The voice's phonemes as the face's timeline, shifted by `offset` samples (the two crates
/// share data, not types).
pub fn timeline_of(rate: u32, phonemes: &[hiwar_speech::voice::TimedPhoneme], offset: u64) -> hiwar_animation::Timeline {
    hiwar_animation::Timeline {
        sample_rate: rate,
        phonemes: phonemes.iter().map(|p| hiwar_animation::TimedPhoneme { phoneme: p.phoneme.clone(), start: p.start + offset, end: p.end + offset }).collect(),
        words: Vec::new(),
    }
}

/// The plugins every stage needs besides bevy's own.
pub fn add_stage(app: &mut App, options: &StageOptions, clock: StageClock, idle_on_clock: bool) {
    let rate = clock.rate();
    shading::add_shading(app);
    app.insert_resource(clock)
        .insert_resource(Performance::new(rate, options.seed, idle_on_clock))
        .insert_resource(StageState::default())
        .insert_resource(AvatarParts { tables: avatar_tables(&options.avatar), ..Default::default() })
        .insert_resource(options.lighting)
        .add_systems(PostStartup, three_point_lights)
        .insert_resource(captions::Captions { marks: options.caption_marks, aspect: options.width as f32 / options.height.max(1) as f32, ..Default::default() })
        .add_systems(Update, (bind_avatar, animate_face.after(bind_avatar), reframe, captions::update_captions.after(reframe), captions::update_status));
}

/// The avatar's VRM expression table; a file that cannot be read as glTF is bevy's to report.
fn avatar_tables(avatar: &Path) -> vrm::Tables {
    vrm::read(avatar).unwrap_or_else(|e| {
        tracing::warn!("{e}");
        vrm::Tables::default()
    })
}

/// bevy's asset plugin reading from our assets folder (absolute, so the working directory
/// does not matter).
pub fn asset_plugin(options: &StageOptions) -> AssetPlugin {
    let root = std::fs::canonicalize(&options.assets).unwrap_or_else(|_| options.assets.clone());
    AssetPlugin {
        file_path: root.to_string_lossy().into_owned(),
        // The avatar may live anywhere the operator's config says (never a network input).
        unapproved_path_mode: bevy::asset::UnapprovedPathMode::Allow,
        meta_check: bevy::asset::AssetMetaCheck::Never,
        ..default()
    }
}

/// Writes the bundled avatars (`hiwar avatar`: every variant into `dir`), or one variant to
/// a file of your choosing (`--variant V --out FILE`).
pub fn write_avatar(dir: &Path, variant: Option<&str>, out: Option<&Path>) -> anyhow::Result<()> {
    let variants = match variant {
        Some(name) => vec![avatar::Variant::parse(name).ok_or_else(|| anyhow::anyhow!("unknown avatar variant {name:?}: hair, ghutra or hijab"))?],
        None => avatar::Variant::ALL.to_vec(),
    };
    anyhow::ensure!(out.is_none() || variants.len() == 1, "--out writes one avatar: name it with --variant hair, ghutra or hijab");
    for v in variants {
        let path = out.map_or_else(|| dir.join(v.file_name()), Path::to_path_buf);
        if let Some(parent) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let bytes = avatar::glb_of(v);
        std::fs::write(&path, &bytes).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        println!("wrote {} ({v:?}, {} bytes, {} morph targets)", path.display(), bytes.len(), avatar::TARGETS.len());
    }
    Ok(())
}
