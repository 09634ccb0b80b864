//! The face, from the outside: frames rendered offscreen (lavapipe) and a window under Xvfb,
//! checked by their pixels; lip-sync offset measured from a muxed MP4.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use hiwar_animation::IdleLife;
use hiwar_animation::lipsync::LEAD;
use hiwar_tests::{Pulse, hiwar, hiwar_bin, lines_of, model_cache, run, wait_for};
use serde_json::Value;

const W: u32 = 320;
const H: u32 = 180;
const FPS: u32 = 25;

/// A `hiwar` command that renders with Mesa's software Vulkan.
fn render_cmd() -> Command {
    let mut cmd = hiwar(&model_cache());
    cmd.env("WGPU_BACKEND", "vulkan").env("HIWAR_STAGE_MSAA", "false");
    cmd
}

/// Renders `text` to PNG frames; returns the frame folder and the timeline.
fn render_frames(text: &str, dir: &Path, env: &[(&str, &str)]) -> (PathBuf, Value) {
    let (frames, json) = (dir.join("frames"), dir.join("timeline.json"));
    let mut cmd = render_cmd();
    cmd.envs(env.iter().copied())
        .args(["say", text, "--size", &format!("{W}x{H}"), "--fps", &FPS.to_string(), "--frames"])
        .arg(&frames)
        .arg("--timeline")
        .arg(&json);
    let out = run(&mut cmd);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    (frames, serde_json::from_str(&std::fs::read_to_string(json).expect("timeline")).expect("json"))
}

/// A frame as RGB bytes (decoded by ffmpeg).
fn rgb(path: &Path) -> Vec<u8> {
    let out = Command::new("ffmpeg").args(["-loglevel", "error", "-i"]).arg(path).args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]).output().expect("ffmpeg");
    assert!(out.status.success(), "decode {}", path.display());
    out.stdout
}

fn frame(dir: &Path, k: u64) -> Vec<u8> {
    rgb(&dir.join(format!("frame-{k:05}.png")))
}

type Box4 = (usize, usize, usize, usize);

fn regions() -> (Box4, Vec<Box4>) {
    let out = run(hiwar(&model_cache()).args(["bench", "regions", "--size", &format!("{W}x{H}")]));
    let v: Value = serde_json::from_str(out.stdout.trim()).expect("regions json");
    let b = |v: &Value| {
        let n = |i: usize| v[i].as_u64().expect("coordinate") as usize;
        (n(0), n(1), n(2), n(3))
    };
    (b(&v["mouth"]), v["eyes"].as_array().expect("eyes").iter().map(b).collect())
}

fn grey(px: &[u8], w: usize, x: usize, y: usize) -> f32 {
    let i = (y * w + x) * 3;
    0.299 * f32::from(px[i]) + 0.587 * f32::from(px[i + 1]) + 0.114 * f32::from(px[i + 2])
}

/// How dark the mouth box is: the cavity shows only when the lips part.
fn mouth_darkness(px: &[u8], b: Box4) -> f32 {
    let mut sum = 0.0;
    for y in b.1..b.3 {
        for x in b.0..b.2 {
            sum += (70.0 - grey(px, W as usize, x, y)).max(0.0);
        }
    }
    sum
}

/// White of the eyes visible in the boxes.
fn sclera(px: &[u8], boxes: &[Box4]) -> usize {
    // Near-white and neutral: skin is as bright but much redder than blue.
    let white = |x: usize, y: usize| {
        let i = (y * W as usize + x) * 3;
        let (r, g, b) = (px[i], px[i + 1], px[i + 2]);
        r > 190 && g > 190 && b > 185 && r.abs_diff(b) < 30
    };
    boxes.iter().map(|b| (b.1..b.3).flat_map(|y| (b.0..b.2).map(move |x| (x, y))).filter(|&(x, y)| white(x, y)).count()).sum()
}

/// The frame showing the sound at sample `pos` of a timeline at `rate` (the mouth leads by
/// [`LEAD`], so its pose for that sound is drawn a little earlier).
fn frame_for(pos: u64, rate: u64) -> u64 {
    ((pos as f64 / rate as f64 - LEAD) * f64::from(FPS)).round().max(0.0) as u64
}

fn phonemes(t: &Value) -> Vec<(String, u64, u64)> {
    t["phonemes"]
        .as_array()
        .expect("phonemes")
        .iter()
        .map(|p| (p["ph"].as_str().unwrap_or_default().to_string(), p["start"].as_u64().unwrap_or(0), p["end"].as_u64().unwrap_or(0)))
        .collect()
}

#[test]
fn the_mouth_closes_in_silence_and_for_b_m_and_opens_for_long_a() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (frames, t) = render_frames("مرحبا بكم، أنا هنا.", dir.path(), &[]);
    let rate = t["sample_rate"].as_u64().expect("rate");
    let (mouth, _) = regions();
    let ph = phonemes(&t);

    // Not a black (or blank) frame: a lit face on a light background, with contrast.
    let first = frame(&frames, 0);
    let mean = first.iter().map(|&v| f64::from(v)).sum::<f64>() / first.len() as f64;
    let var = first.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / first.len() as f64;
    assert!(mean > 80.0 && var.sqrt() > 25.0, "frame 0 looks blank: mean {mean:.0}, sd {:.0}", var.sqrt());

    // Silence before speech: closed.
    assert!(mouth_darkness(&first, mouth) < 50.0, "mouth open in the leading silence: {}", mouth_darkness(&first, mouth));
    // Every m and b: closed at its frame.
    let bilabials: Vec<&(String, u64, u64)> = ph.iter().filter(|p| p.0 == "m" || p.0 == "b").collect();
    assert!(bilabials.len() >= 3, "{ph:?}");
    for (p, s, e) in bilabials {
        let k = frame_for((s + e) / 2, rate);
        let d = mouth_darkness(&frame(&frames, k), mouth);
        assert!(d < 50.0, "mouth open ({d:.0}) during {p} at frame {k}");
    }
    // The long ā of هنا: wide open.
    let (_, s, e) = ph.iter().rev().find(|p| p.0 == "aː").expect("a long a in the timeline");
    let k = frame_for((s + e) / 2, rate);
    let d = mouth_darkness(&frame(&frames, k), mouth);
    assert!(d > 1500.0, "mouth not open ({d:.0}) for aː at frame {k}");
}

/// The rows of the caption panel: it spans the whole width, darker than the background.
fn panel_rows(px: &[u8], w: usize, h: usize) -> std::ops::Range<usize> {
    let dark = |y: usize| grey(px, w, 1, y) < 160.0 && grey(px, w, w - 2, y) < 160.0;
    let top = (h / 2..h).find(|&y| dark(y)).unwrap_or(h);
    top..h
}

/// Caption text in the panel: (min x, max x) of pixels matching `text`, and the mean x of the
/// highlighted (gold) ones.
fn text_extent(px: &[u8], w: usize, h: usize, text: impl Fn(u8, u8, u8) -> bool) -> (usize, usize, Option<f64>) {
    let (mut lo, mut hi, mut gold, mut n) = (w, 0, 0.0, 0usize);
    for y in panel_rows(px, w, h) {
        for x in 0..w {
            let i = (y * w + x) * 3;
            let (r, g, b) = (px[i], px[i + 1], px[i + 2]);
            if text(r, g, b) {
                lo = lo.min(x);
                hi = hi.max(x);
            }
            if r > 200 && g > 150 && b < 120 {
                gold += x as f64;
                n += 1;
            }
        }
    }
    (lo, hi, (n > 3).then(|| gold / n as f64))
}

fn caption_extent(px: &[u8]) -> (usize, usize, Option<f64>) {
    text_extent(px, W as usize, H as usize, |r, g, b| 0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b) > 170.0)
}

#[test]
fn captions_run_right_to_left_for_arabic_and_left_to_right_for_english() {
    for (text, rtl) in [("مرحبا بكم في مركز الخدمة", true), ("Welcome to the service centre", false)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (frames, t) = render_frames(text, dir.path(), &[]);
        let rate = t["sample_rate"].as_u64().expect("rate");
        let words = t["words"].as_array().expect("words");
        let at = |w: &Value| frame_for((w["start"].as_u64().unwrap_or(0) + w["end"].as_u64().unwrap_or(0)) / 2, rate);
        let first = frame(&frames, at(&words[0]));
        let last = frame(&frames, at(&words[words.len() - 1]));
        let (lo, hi, gold_first) = caption_extent(&first);
        let (_, _, gold_last) = caption_extent(&last);
        let (gold_first, gold_last) = (gold_first.expect("the first word highlighted"), gold_last.expect("the last word highlighted"));
        let w = W as f64;
        if rtl {
            // Right-aligned, the first word at the right end, the last at the left.
            assert!(hi as f64 > 0.9 * w && (lo as f64) > 0.2 * w, "{text}: text spans {lo}..{hi}");
            assert!(gold_first > gold_last + 40.0, "{text}: first word at x={gold_first:.0}, last at {gold_last:.0}");
        } else {
            assert!((lo as f64) < 0.1 * w && (hi as f64) < 0.8 * w, "{text}: text spans {lo}..{hi}");
            assert!(gold_first + 40.0 < gold_last, "{text}: first word at x={gold_first:.0}, last at {gold_last:.0}");
        }
    }
}

#[test]
fn the_eyes_close_during_a_blink() {
    // A seed whose first blink falls early in the render (the idle life is deterministic).
    let seed = (0..500u64)
        .find(|&s| {
            let mut life = IdleLife::new(s);
            (0..60).any(|k| life.sample(f64::from(k) / f64::from(FPS)).blink > 0.99)
                && (0..25).all(|k| IdleLife::new(s).sample(f64::from(k) / f64::from(FPS)).blink < 0.01)
        })
        .expect("a seed that blinks within 2.4 s");
    let dir = tempfile::tempdir().expect("tempdir");
    let (frames, _) = render_frames("Welcome to the service centre. How can I help you today?", dir.path(), &[("HIWAR_STAGE_SEED", &seed.to_string())]);
    let (_, eyes) = regions();
    let mut life = IdleLife::new(seed);
    let blink: Vec<f32> = (0..60).map(|k| life.sample(f64::from(k) / f64::from(FPS)).blink).collect();
    let shut = blink.iter().position(|b| *b > 0.99).expect("a shut frame") as u64;
    let open_white = sclera(&frame(&frames, 5), &eyes);
    let shut_white = sclera(&frame(&frames, shut), &eyes);
    assert!(open_white >= 12, "no white of the eyes in an open-eyed frame ({open_white} px)");
    assert!(shut_white * 5 < open_white, "eyes not closed at frame {shut}: {shut_white} white px vs {open_white} open");
}

#[test]
fn lip_sync_offset_measured_from_the_video_stays_within_bounds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let video = dir.path().join("sync.mp4");
    let text = "آه. أنا هنا. أهلاً وسهلاً. Oh, I am here. All is well.";
    let out = run(render_cmd().args(["say", text, "--size", "320x180", "--fps", "100", "--video"]).arg(&video));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // Both streams are in the file.
    let probe = Command::new("ffprobe").args(["-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0"]).arg(&video).output().expect("ffprobe");
    let streams = String::from_utf8_lossy(&probe.stdout);
    assert!(streams.contains("video") && streams.contains("audio"), "{streams}");
    let m = run(hiwar(&model_cache()).args(["bench", "sync", "--size", "320x180", "--fps", "100", "--json"]).arg(&video));
    let v: Value = serde_json::from_str(m.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {} {}", m.stdout, m.stderr));
    let events = v["events"].as_array().expect("events").len();
    let (mean, max, lag) =
        (v["mean_abs_ms"].as_f64().unwrap_or(f64::MAX), v["max_abs_ms"].as_f64().unwrap_or(f64::MAX), v["max_lag_ms"].as_f64().unwrap_or(f64::MAX));
    // Measured 12 / 29 / 16 ms (docs/benchmarks.md); the bounds are the goals, with a little
    // room for the measurement's own frame quantisation.
    assert!(events >= 10 && v["unmatched"].as_u64() <= Some(1), "{events} events, {} unmatched", v["unmatched"]);
    assert!(mean <= 20.0 && max <= 45.0 && lag <= 25.0, "mean |offset| {mean:.1} ms, max {max:.1} ms, latest lag {lag:.1} ms");
}

#[test]
fn a_recording_without_timing_moves_the_mouth_from_its_audio() {
    let dir = tempfile::tempdir().expect("tempdir");
    let video = dir.path().join("audio.mp4");
    let wav = hiwar_tests::repo_root().join("assets/demo/ar-welcome.wav");
    let out = run(render_cmd().args(["say", "--audio"]).arg(&wav).args(["--size", "160x90", "--fps", "25", "--video"]).arg(&video));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let m = run(hiwar(&model_cache()).args(["bench", "sync", "--size", "160x90", "--fps", "25", "--json"]).arg(&video));
    let v: Value = serde_json::from_str(m.stdout.trim()).expect("json");
    let open: Vec<f64> = v["openness"].as_array().expect("openness").iter().filter_map(Value::as_f64).collect();
    let moving = open.windows(2).filter(|w| (w[0] - w[1]).abs() > 0.1).count();
    assert!(moving >= 10, "the mouth barely moves: {open:?}");
    assert!(open.iter().filter(|o| **o < 0.05).count() >= 5, "the mouth never closes: {open:?}");
}

#[test]
fn bad_stage_input_gets_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let video = dir.path().join("x.mp4");
    let missing = run(render_cmd().env("HIWAR_STAGE_AVATAR", "/nonexistent/face.glb").args(["say", "مرحبا", "--video"]).arg(&video));
    assert_eq!(missing.code, Some(1));
    assert!(missing.stderr.contains("/nonexistent/face.glb") && missing.stderr.contains("stage.avatar"), "{}", missing.stderr);
    let tiny = run(render_cmd().args(["say", "مرحبا", "--size", "15x15", "--video"]).arg(&video));
    assert_ne!(tiny.code, Some(0));
    assert!(tiny.stderr.contains("16"), "{}", tiny.stderr);
    let odd = run(render_cmd().args(["say", "مرحبا", "--size", "161x90", "--video"]).arg(&video));
    assert!(odd.code == Some(1) && odd.stderr.contains("even"), "{}", odd.stderr);
    let junk = dir.path().join("junk.wav");
    std::fs::write(&junk, b"RIFF\x10\x00\x00\x00WAVEjunk").expect("write");
    let broken = run(render_cmd().args(["say", "--audio"]).arg(&junk).arg("--video").arg(&video));
    assert!(broken.code == Some(1) && broken.stderr.contains("junk.wav"), "{}", broken.stderr);
    let no_display = run(hiwar(&model_cache()).env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY").arg("stage"));
    assert!(no_display.code == Some(1) && no_display.stderr.contains("--video"), "{}", no_display.stderr);
    assert!(!video.exists(), "a failed render left a file behind");
}

/// The stage window's size in pixels.
const STAGE_W: usize = 480;
const STAGE_H: usize = 270;

/// Pixels of the attract screen's teal.
fn teal_pixels(shot: &[u8]) -> usize {
    shot.chunks_exact(3).filter(|p| u16::from(p[1]) > u16::from(p[0]) + 12 && u16::from(p[2]) > u16::from(p[0]) + 20).count()
}

/// The stage in a window under Xvfb, speaking on a PulseAudio null sink.
struct Stage {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    out: std::sync::mpsc::Receiver<String>,
}

impl Stage {
    fn start(pulse: &Pulse, extra: &[&str], env: &[(&str, &str)]) -> Stage {
        let mut cmd = hiwar(&model_cache());
        pulse.apply(&mut cmd);
        let mut xvfb = hiwar_tests::under_xvfb(&cmd);
        xvfb.arg("stage").args(extra);
        // Its own process group, so that Xvfb and hiwar go with it whatever happens.
        std::os::unix::process::CommandExt::process_group(&mut xvfb, 0);
        xvfb.envs(env.iter().copied())
            .env("WGPU_BACKEND", "vulkan")
            .env("HIWAR_STAGE_WIDTH", STAGE_W.to_string())
            .env("HIWAR_STAGE_HEIGHT", STAGE_H.to_string())
            .env("HIWAR_STAGE_MSAA", "false")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = xvfb.spawn().expect("xvfb-run (Debian package xvfb)");
        let stdin = child.stdin.take().expect("stdin");
        let out = lines_of(child.stdout.take().expect("stdout"));
        let mut stage = Stage { child, stdin: Some(stdin), out };
        stage.expect("ready", 60);
        stage
    }

    fn cue(&mut self, cue: Value) {
        use std::io::Write as _;
        writeln!(self.stdin.as_mut().expect("stdin"), "{cue}").expect("cue");
    }

    fn expect(&mut self, event: &str, secs: u64) -> Value {
        let line = wait_for(&self.out, Duration::from_secs(secs), event, |l| l.contains(&format!("\"event\":\"{event}\"")));
        serde_json::from_str(&line).expect("event json")
    }

    fn screenshot(&mut self, path: &Path) -> Vec<u8> {
        self.cue(serde_json::json!({"screenshot": path}));
        self.expect("screenshot", 30);
        rgb(path)
    }

    /// A screenshot that must show what `check` looks for. The stage applies its cues before
    /// the frame is laid out, so the screenshot asked for after them shows them, however slow
    /// the frame; a screen that does not is kept in the temporary directory and said.
    fn screenshot_showing(&mut self, path: &Path, what: &str, check: impl Fn(&[u8]) -> Result<String, String>) -> Vec<u8> {
        let shot = self.screenshot(path);
        assert_eq!(shot.len(), STAGE_W * STAGE_H * 3, "the window is not {STAGE_W}x{STAGE_H}");
        match check(&shot) {
            Ok(seen) => eprintln!("{what}: {seen}"),
            Err(seen) => {
                let kept = std::env::temp_dir().join(path.file_name().expect("file name"));
                let _ = std::fs::copy(path, &kept);
                panic!("{what}: not on screen: {seen} (kept {})", kept.display());
            }
        }
        shot
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        // Closing its input ends the stage; the process group goes down in any case.
        drop(self.stdin.take());
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-TERM", "--", &format!("-{}", self.child.id())]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn count(px: &[u8], w: usize, area: (usize, usize, usize, usize), pred: impl Fn(i32, i32, i32) -> bool) -> usize {
    (area.1..area.3)
        .flat_map(|y| (area.0..area.2).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let i = (y * w + x) * 3;
            pred(i32::from(px[i]), i32::from(px[i + 1]), i32::from(px[i + 2]))
        })
        .count()
}

#[test]
fn the_window_shows_state_notices_and_captions_and_speaks_on_the_speaker() {
    let _ = hiwar_bin();
    let pulse = Pulse::start(&["spk"]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let raw = dir.join("played.raw");
    let mut recorder = pulse.record("spk", &raw);
    let log = dir.join("frames.csv");
    let log_arg = log.to_string_lossy().into_owned();
    let mut stage = Stage::start(&pulse, &["--frame-log", &log_arg], &[]);
    let (w, h) = (STAGE_W, STAGE_H);

    stage.cue(serde_json::json!({"state": "listening"}));
    stage.cue(serde_json::json!({"heard": "أبغى أجدد الـ Emirates ID حقي لو سمحت", "final": true}));
    stage.cue(serde_json::json!({"notice": "microphone"}));
    // The listening badge's green dot, top left; the red notice panel, top centre; the person's
    // Arabic line, right-aligned.
    stage.screenshot_showing(&dir.join("listening.png"), "the listening badge, the notice and the right-aligned caption", |a| {
        let dot = count(a, w, (0, 0, w / 8, h / 8), |r, g, b| g > 150 && r < 120 && b < 140);
        let panel = count(a, w, (w / 4, 0, 3 * w / 4, h / 5), |r, g, b| r > 110 && r > g + 40 && r > b + 40);
        let (lo, hi, _) = text_extent(a, w, h, |_, g, b| b > 200 && g > 170);
        let seen = format!("{dot} green dot pixels, {panel} notice pixels, caption spans {lo}..{hi}");
        if dot > 4 && panel > 500 && hi > w * 85 / 100 && lo > w / 5 { Ok(seen) } else { Err(seen) }
    });

    stage.cue(serde_json::json!({"clear_notices": true}));
    stage.cue(serde_json::json!({"say": "مرحبا بكم في مركز الخدمة. كيف يمكنني مساعدتكم اليوم؟"}));
    stage.expect("speaking", 10);
    let audio = stage.expect("audio", 30);
    // While it speaks, a word of its caption is highlighted (the first screenshot may land
    // in the silence before the first word).
    let mut highlighted = false;
    for i in 0..8 {
        std::thread::sleep(Duration::from_millis(300));
        let b = stage.screenshot(&dir.join(format!("speaking-{i}.png")));
        assert!(count(&b, w, (w / 4, 0, 3 * w / 4, h / 5), |r, g, bl| r > 110 && r > g + 40 && r > bl + 40) < 50, "the notice did not clear");
        if count(&b, w, (0, h * 75 / 100, w, h), |r, g, bl| r > 200 && g > 150 && bl < 120) > 5 {
            highlighted = true;
            break;
        }
    }
    assert!(highlighted, "no word highlighted while speaking");
    stage.expect("spoken", 60);
    stage.cue(serde_json::json!({"quit": true}));
    let status = stage.child.wait().expect("exit");
    assert!(status.success(), "{status}");
    std::thread::sleep(Duration::from_millis(300));
    let _ = recorder.kill();
    let _ = recorder.wait();
    // Live sync from the frame log: a frame posed for position p is on screen by the next
    // frame, when the speaker's clock (latency included) reads c'; the mouth shows p + lead.
    let text = std::fs::read_to_string(&log).expect("frame log");
    let rows: Vec<Vec<f64>> = text.lines().skip(1).map(|l| l.split(',').filter_map(|v| v.parse().ok()).collect()).filter(|r: &Vec<f64>| r.len() == 4).collect();
    let start = audio["start"].as_f64().unwrap_or(0.0);
    let offsets: Vec<f64> = rows.windows(2).filter(|r| r[0][2] >= start).map(|r| ((r[1][2] - r[0][1]) / r[0][3] - LEAD) * 1e3).collect();
    assert!(offsets.len() > 20, "{} frames while speaking", offsets.len());
    let mean_abs = offsets.iter().map(|o| o.abs()).sum::<f64>() / offsets.len() as f64;
    assert!(mean_abs <= 30.0, "live mouth vs sound: mean |offset| {mean_abs:.1} ms over {} frames", offsets.len());
    // The speaker played the answer.
    let bytes = std::fs::read(&raw).expect("recording");
    let loud = bytes.chunks_exact(2).filter(|c| i16::from_le_bytes([c[0], c[1]]).unsigned_abs() > 2000).count();
    assert!(loud > 16_000 / 2, "the speaker played almost nothing ({loud} loud samples)");
}

/// A screenshot asked for right after a cue shows the cue: the stage applies its cues before
/// the frame is laid out. (It did not: when a slow frame took both lines in one update, the
/// badge was laid out before the cue and the screenshot showed the state before it — every
/// time, measured with both sent together; CI's software renderer once took 800 ms a frame.)
#[test]
fn a_screenshot_asked_for_with_a_cue_shows_that_cue() {
    let pulse = Pulse::start(&["spk"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut stage = Stage::start(&pulse, &[], &[]);
    let w = STAGE_W;
    for i in 0..6 {
        // The badge's dot: green while listening, amber while thinking.
        let state = if i % 2 == 0 { "listening" } else { "thinking" };
        let colour = |r: i32, g: i32, b: i32| if state == "listening" { g > 150 && r < 120 && b < 140 } else { r > 200 && g > 150 && b < 120 };
        let path = dir.path().join(format!("{state}-{i}.png"));
        // Both lines in one write: the stage reads them in one update.
        use std::io::Write as _;
        let both = format!("{}\n{}\n", serde_json::json!({"state": state}), serde_json::json!({"screenshot": path}));
        stage.stdin.as_mut().expect("stdin").write_all(both.as_bytes()).expect("cues");
        stage.expect("screenshot", 30);
        let shot = rgb(&path);
        let dot = count(&shot, w, (0, 0, w / 8, STAGE_H / 8), colour);
        assert!(dot > 4, "the screenshot asked for with {state:?} does not show it ({dot} pixels of its colour)");
    }
}

#[test]
fn the_kiosk_shows_its_attract_screen_when_nobody_talks() {
    let pulse = Pulse::start(&["spk"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut stage = Stage::start(&pulse, &["--kiosk"], &[("HIWAR_STAGE_ATTRACT_AFTER_SECS", "1")]);
    // After the quiet second, the teal invitation covers the screen.
    std::thread::sleep(Duration::from_millis(1000));
    let n = STAGE_W * STAGE_H;
    stage.screenshot_showing(&dir.path().join("attract.png"), "the attract screen", |shot| {
        let teal = teal_pixels(shot);
        let seen = format!("{teal} of {n} pixels teal");
        if teal * 2 > n { Ok(seen) } else { Err(seen) }
    });
    // Any cue (here: someone spoke) takes it away.
    stage.cue(serde_json::json!({"state": "listening"}));
    stage.screenshot_showing(&dir.path().join("after.png"), "the attract screen gone", |after| {
        let teal = teal_pixels(after);
        let seen = format!("{teal} of {n} pixels teal");
        if teal * 5 < n { Ok(seen) } else { Err(seen) }
    });
}

/// Every symbol the voices can put in a timeline, one codepoint at a time as Piper's timeline
/// carries them: the visemes tables must know each one.
#[test]
fn viseme_tables_cover_every_phoneme_the_voices_emit() {
    use hiwar_speech::voice::arabic::{Position, word_to_ipa};
    let mut symbols = std::collections::BTreeSet::new();
    // Arabic: every letter with every short vowel, sukun, shadda, tanween, long vowels, the
    // article before sun and moon letters, taa marbuta and alef maqsura, at pause and not.
    let letters = "ءآأؤإئابةتثجحخدذرزسشصضطظعغفقكلمنهوىي";
    let marks = ["\u{064E}", "\u{064F}", "\u{0650}", "\u{0652}", "\u{0651}\u{064E}", "\u{064B}", "\u{064C}", "\u{064D}", "\u{064E}ا", "\u{064F}و", "\u{0650}ي"];
    let mut words: Vec<String> = Vec::new();
    for l in letters.chars() {
        for m in marks {
            words.push(format!("بَ{l}{m}"));
            words.push(format!("{l}{m}بَ"));
        }
        words.push(format!("الْ{l}َبُ"));
    }
    words.extend(["مَدْرَسَةٌ", "مُسْتَشْفَى", "اِسْمٌ", "ٱلشَّمْسُ", "عِيسَى", "صَبَاحٌ", "ظَلَامٌ", "ضَوْءٌ"].map(String::from));
    for w in &words {
        for (first, last) in [(true, true), (false, false), (true, false)] {
            symbols.extend(word_to_ipa(w, Position { first, last }).chars());
        }
    }
    // English: espeak-ng's en-us phonemes over text that uses every English sound.
    let english = "The quick brown fox jumps over the lazy dog. Pleasure, vision, judge, church, thin, this, \
        sing, hat, yes, wet, red, very, zoo, ship, measure, bird, nurse, north, force, cure, near, square, start, \
        thought, cloth, lot, palm, bath, trap, dress, kit, fleece, goose, foot, strut, comma, letter, happy, \
        price, choice, mouth, face, goat, boy, tour, fire, hour, Emirates ID, passport, appointment, Tuesday.";
    let out = Command::new("espeak-ng").args(["-q", "--ipa", "-v", "en-us", english]).output().expect("espeak-ng");
    symbols.extend(String::from_utf8_lossy(&out.stdout).chars().filter(|c| !c.is_whitespace()));
    symbols.extend(['_', ' ', '.', ',', '?', '!', '،', '؟']);
    let unknown: Vec<char> = symbols.iter().copied().filter(|c| hiwar_animation::classify(&c.to_string()).is_none()).collect();
    assert!(symbols.len() > 40 && symbols.contains(&'ɹ') && symbols.contains(&'ħ') && symbols.contains(&'ˤ'), "too few symbols collected: {symbols:?}");
    assert!(unknown.is_empty(), "no viseme for {unknown:?} (of {symbols:?})");
}

#[test]
fn out_of_service_covers_the_screen_until_service_is_back_and_a_finished_session_leaves_the_screen() {
    let pulse = Pulse::start(&["spk"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut stage = Stage::start(&pulse, &["--kiosk"], &[]);
    stage.cue(serde_json::json!({"out_of_service": true}));
    let n = STAGE_W * STAGE_H;
    let dark_grey = |shot: &[u8]| shot.chunks_exact(3).filter(|p| p.iter().all(|c| (20..=50).contains(c))).count();
    // Dark grey over everything (the avatar's skin and the backdrop are gone) with light text.
    stage.screenshot_showing(&dir.path().join("out-of-service.png"), "the out-of-service screen", |shot| {
        let dark = dark_grey(shot);
        let text = shot.chunks_exact(3).filter(|p| p.iter().all(|c| *c > 180)).count();
        let seen = format!("{dark} of {n} pixels dark grey, {text} light pixels");
        if dark * 10 > n * 8 && text > 200 { Ok(seen) } else { Err(seen) }
    });
    stage.cue(serde_json::json!({"out_of_service": false}));
    stage.screenshot_showing(&dir.path().join("back.png"), "the out-of-service screen gone", |after| {
        let dark = dark_grey(after);
        let seen = format!("{dark} of {n} pixels dark grey");
        if dark * 2 < n { Ok(seen) } else { Err(seen) }
    });
    // A visitor's session ends: what they said leaves the screen and the kiosk invites the next.
    stage.cue(serde_json::json!({"state": "listening"}));
    stage.cue(serde_json::json!({"heard": "رقمي 0501234567", "final": true}));
    stage.cue(serde_json::json!({"session_ended": true}));
    stage.screenshot_showing(&dir.path().join("next-visitor.png"), "the attract screen after the session ended", |next| {
        let teal = teal_pixels(next);
        let seen = format!("{teal} of {n} pixels teal");
        if teal * 2 > n { Ok(seen) } else { Err(seen) }
    });
}

/// The bundled avatar rewritten as a VRoid export looks: its morph targets renamed to names
/// no convention knows ("Key 0"…), bound only through a VRM expression table of `version`
/// ("1.0", "0.x", or none at all).
fn as_vrm(version: Option<&str>) -> Vec<u8> {
    let glb = std::fs::read(hiwar_tests::repo_root().join("assets/avatar/hiwar-avatar.glb")).expect("bundled avatar");
    let u32_at = |i: usize| u32::from_le_bytes([glb[i], glb[i + 1], glb[i + 2], glb[i + 3]]) as usize;
    let json_len = u32_at(12);
    let mut json: Value = serde_json::from_slice(&glb[20..20 + json_len]).expect("glTF JSON");
    let bin = &glb[20 + json_len..];
    // Which target of which mesh is which, before the names go.
    let mut target = std::collections::HashMap::new();
    for (m, mesh) in json["meshes"].as_array_mut().expect("meshes").iter_mut().enumerate() {
        if let Some(names) = mesh["extras"]["targetNames"].as_array_mut() {
            for (i, n) in names.iter_mut().enumerate() {
                target.insert(n.as_str().expect("name").to_string(), (m, i));
                *n = Value::from(format!("Key {i}"));
            }
        }
    }
    let node_of = |mesh: usize| json["nodes"].as_array().expect("nodes").iter().position(|n| n["mesh"].as_u64() == Some(mesh as u64)).expect("node");
    // VRoid-like presets: each binds ARKit-shaped targets of the generated face.
    let presets = [
        ("aa", vec![("jawOpen", 1.0)]),
        ("oh", vec![("jawOpen", 0.5), ("mouthFunnel", 1.0)]),
        ("ou", vec![("jawOpen", 0.2), ("mouthPucker", 1.0)]),
        ("ih", vec![("jawOpen", 0.2), ("mouthStretchLeft", 0.6), ("mouthStretchRight", 0.6)]),
        ("ee", vec![("jawOpen", 0.3), ("mouthStretchLeft", 0.4), ("mouthStretchRight", 0.4)]),
        ("blink", vec![("eyeBlinkLeft", 1.0), ("eyeBlinkRight", 1.0)]),
    ];
    let binds = |name: &str, zero_x: bool| -> Vec<Value> {
        presets
            .iter()
            .find(|p| p.0 == name)
            .map_or(&vec![], |p| &p.1)
            .iter()
            .map(|(t, w)| {
                let (mesh, index) = target[*t];
                if zero_x {
                    serde_json::json!({"mesh": mesh, "index": index, "weight": w * 100.0})
                } else {
                    serde_json::json!({"node": node_of(mesh), "index": index, "weight": w})
                }
            })
            .collect()
    };
    match version {
        Some("1.0") => {
            let preset: serde_json::Map<String, Value> =
                presets.iter().map(|(n, _)| (n.to_string(), serde_json::json!({"morphTargetBinds": binds(n, false)}))).collect();
            json["extensionsUsed"] = serde_json::json!(["VRMC_vrm"]);
            json["extensions"] = serde_json::json!({"VRMC_vrm": {"specVersion": "1.0", "expressions": {"preset": preset}}});
        }
        Some(_) => {
            let zero = [("aa", "a"), ("oh", "o"), ("ou", "u"), ("ih", "i"), ("ee", "e"), ("blink", "blink")];
            let groups: Vec<Value> =
                zero.iter().map(|(n, p)| serde_json::json!({"name": p.to_uppercase(), "presetName": p, "binds": binds(n, true)})).collect();
            json["extensionsUsed"] = serde_json::json!(["VRM"]);
            json["extensions"] = serde_json::json!({"VRM": {"specVersion": "0.0", "blendShapeMaster": {"blendShapeGroups": groups}}});
        }
        None => {}
    }
    let mut text = serde_json::to_vec(&json).expect("json");
    while !text.len().is_multiple_of(4) {
        text.push(b' ');
    }
    let mut out = Vec::new();
    out.extend_from_slice(b"glTF");
    out.extend_from_slice(&2u32.to_le_bytes());
    out.extend_from_slice(&((12 + 8 + text.len() + bin.len()) as u32).to_le_bytes());
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(b"JSON");
    out.extend_from_slice(&text);
    out.extend_from_slice(bin);
    out
}

#[test]
fn a_vrm_avatar_moves_its_mouth_through_its_own_expression_table() {
    let (mouth, _) = regions();
    let mut open = Vec::new();
    for version in [Some("1.0"), Some("0.x"), None] {
        let dir = tempfile::tempdir().expect("tempdir");
        let avatar = dir.path().join("avatar.vrm");
        std::fs::write(&avatar, as_vrm(version)).expect("write vrm");
        let (frames, t) = render_frames("أنا هنا.", dir.path(), &[("HIWAR_STAGE_AVATAR", avatar.to_str().expect("utf-8 path"))]);
        let rate = t["sample_rate"].as_u64().expect("rate");
        let (_, s, e) = phonemes(&t).into_iter().rev().find(|p| p.0 == "aː").expect("a long a");
        let first = frame(&frames, 0);
        assert!(mouth_darkness(&first, mouth) < 50.0, "{version:?}: mouth open in the leading silence");
        open.push(mouth_darkness(&frame(&frames, frame_for((s + e) / 2, rate)), mouth));
    }
    // VRM 1.0 and 0.x: open on the long a, as wide as the ARKit-named original (> 1500 in the
    // test above); without the table nothing names the targets and the face cannot move.
    assert!(open[0] > 1500.0 && open[1] > 1500.0, "mouth darkness on aː with a VRM 1.0 / 0.x table: {:.0} / {:.0}", open[0], open[1]);
    assert!(open[2] < 50.0, "the same avatar without its table opened its mouth ({:.0}): the names alone bound it", open[2]);
}

/// The first row, from the upper third down, that is the caption panel: dark and grey across
/// the whole width (the panel's translucent black over whatever is behind it; the light
/// background is brighter, the avatar's teal clothes far more saturated).
fn panel_top(px: &[u8], w: usize, h: usize) -> usize {
    let panel = |x: usize, y: usize| {
        let i = (y * w + x) * 3;
        let (hi, lo) = (px[i].max(px[i + 1]).max(px[i + 2]), px[i].min(px[i + 1]).min(px[i + 2]));
        // Darker than the background and far less saturated than the clothes.
        grey(px, w, x, y) < 140.0 && hi - lo < 60
    };
    (h / 3..h).find(|&y| (0..w).filter(|&x| panel(x, y)).count() * 10 >= w * 9).unwrap_or(h)
}

#[test]
fn captions_never_cover_the_mouth_in_portrait_or_landscape() {
    // A long answer: without paging it would fill most of a portrait screen.
    let text = "أهلاً وسهلاً بك في مركز الخدمة. يمكنك تجديد بطاقة الهوية من خلال التطبيق أو في أي مركز خدمة، \
                والرسوم مئة درهم، وتحتاج إلى صورة شخصية حديثة وجواز سفر ساري المفعول. هل تريد أن أحجز لك موعداً؟";
    for (orientation, size) in [("portrait", "180x320"), ("landscape", "320x180")] {
        let dir = tempfile::tempdir().expect("tempdir");
        let frames = dir.path().join("frames");
        // The configured size is turned by stage.orientation (720 × 1280 here): --size sets it.
        let out = run(render_cmd().env("HIWAR_STAGE_ORIENTATION", orientation).args(["say", text, "--size", size, "--fps", "2", "--frames"]).arg(&frames));
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let (w, h) = size.split_once('x').map(|(a, b)| (a.parse::<usize>().expect("w"), b.parse::<usize>().expect("h"))).expect("size");
        let r = run(hiwar(&model_cache()).args(["bench", "regions", "--size", size]));
        let v: Value = serde_json::from_str(r.stdout.trim()).expect("regions json");
        let mouth_bottom = v["mouth"][3].as_u64().expect("mouth box") as usize;
        let mut files: Vec<PathBuf> = std::fs::read_dir(&frames).expect("frames").map(|e| e.expect("entry").path()).collect();
        files.sort();
        assert!(files.len() >= 20, "{orientation}: {} frames", files.len());
        let mut tops = Vec::new();
        for f in &files[1..] {
            let px = rgb(f);
            assert_eq!(px.len(), w * h * 3, "{}: not {size}", f.display());
            tops.push(panel_top(&px, w, h));
        }
        let highest = *tops.iter().min().expect("a frame");
        // A chin's height below the mouth's box stays clear.
        assert!(highest < h, "{orientation}: no caption panel found");
        assert!(highest > mouth_bottom + h / 25, "{orientation} {size}: the captions reach row {highest}, the mouth ends at row {mouth_bottom}");
    }
}

#[test]
fn each_bundled_variant_wears_its_headdress() {
    // Above the eyes, between the brows and the top of the head: hair, a ghutra or a hijab.
    let (_, eyes) = regions();
    let top = eyes.iter().map(|b| b.1).min().expect("eyes");
    let (x0, x1) = (eyes.iter().map(|b| b.0).min().expect("eyes"), eyes.iter().map(|b| b.2).max().expect("eyes"));
    let mut seen = Vec::new();
    for variant in ["hair", "ghutra", "hijab"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (frames, _) = render_frames("أهلاً.", dir.path(), &[("HIWAR_STAGE_VARIANT", variant)]);
        let px = frame(&frames, 0);
        // The band a third of the way from the eyes to the top of the frame, across the eyes.
        let y = top * 2 / 5;
        let mean = |k: usize| (x0..x1).map(|x| f64::from(px[(y * W as usize + x) * 3 + k])).sum::<f64>() / (x1 - x0) as f64;
        let (r, g, b) = (mean(0), mean(1), mean(2));
        seen.push(format!("{variant}: ({r:.0}, {g:.0}, {b:.0})"));
        let ok = match variant {
            // Dark brown hair: dark, red over blue.
            "hair" => r < 140.0 && r > b,
            // A white ghutra: bright and neutral.
            "ghutra" => r > 170.0 && g > 170.0 && b > 165.0 && (r - b).abs() < 30.0,
            // A dark blue-grey hijab: blue over red, darker than the ghutra.
            _ => b > r && r < 170.0,
        };
        assert!(ok, "{variant} does not show its headdress above the eyes: {}", seen.join("; "));
    }
}
