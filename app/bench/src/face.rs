//! `hiwar bench face`: frame time against a minimal bevy scene, audio-visual offset measured
//! from rendered outputs, and the animation's own cost per frame.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use hiwar_animation::{Composer, IdleLife, LipSync, Rig, Timeline};

use hiwar_core::config::Config;
use hiwar_stage::headless::{Offscreen, Outputs, Recording, Scene, render};
use hiwar_stage::{StageClock, StageOptions};

/// Phrases for the sync measurement: each starts on an open vowel after a pause, so the sound
/// and the mouth both have a clear onset and offset.
pub const SYNC_TEXT: &str = "آه. أنا هنا. أهلاً وسهلاً. Oh, I am here. All is well.";

use crate::stats::percentile;

/// Frame times (ms) of `frames` updates of an offscreen scene, speaking at 30 fps of clock.
fn frame_times(options: &StageOptions, scene: Scene, timeline: &Timeline, frames: usize) -> anyhow::Result<Vec<f64>> {
    let rate = timeline.sample_rate;
    let mut off = Offscreen::new(options, StageClock::Manual(0, rate), scene)?;
    if let Some(mut perf) = off.app.world_mut().get_resource_mut::<hiwar_stage::Performance>() {
        perf.lipsync.push(timeline, 0);
    }
    let mut times = Vec::with_capacity(frames);
    for k in 0..frames + 5 {
        off.set_clock(k as u64 * u64::from(rate) / 30 % timeline.end().max(1), rate);
        let t = Instant::now();
        off.update();
        if k >= 5 {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(times)
}

/// What `hiwar bench face` runs.
pub struct FaceBench {
    pub frames: usize,
    pub size: (u32, u32),
    pub sync_size: (u32, u32),
    pub sync_fps: u32,
    pub only: Vec<String>,
    pub timeline: Option<std::path::PathBuf>,
}

/// A timeline written by `hiwar say --timeline`.
fn read_timeline(path: &Path) -> anyhow::Result<Timeline> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?)?;
    let phonemes = v["phonemes"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("{}: no phonemes (write it with hiwar say --timeline)", path.display()))?
        .iter()
        .map(|p| hiwar_animation::TimedPhoneme {
            phoneme: p["ph"].as_str().unwrap_or_default().to_string(),
            start: p["start"].as_u64().unwrap_or(0),
            end: p["end"].as_u64().unwrap_or(0),
        })
        .collect();
    Ok(Timeline { sample_rate: v["sample_rate"].as_u64().unwrap_or(22_050) as u32, phonemes, words: Vec::new() })
}

pub fn face(config: &Config, bench: &FaceBench) -> anyhow::Result<ExitCode> {
    let FaceBench { frames, size, sync_size, sync_fps, .. } = *bench;
    let runs = |part: &str| bench.only.is_empty() || bench.only.iter().any(|o| o == part);
    let mut options = StageOptions::from_config(config);
    options.check()?;
    let timeline = match &bench.timeline {
        Some(path) => read_timeline(path)?,
        None => {
            let mut voices = hiwar_core::build::voices(config, true)?;
            speak_all(&mut voices, "مرحبا بكم في مركز الخدمة، كيف يمكنني مساعدتكم اليوم؟")?.2
        }
    };
    println!("## hiwar bench face\n");
    if runs("animation") {
        animation_cost(&timeline);
    }
    if runs("frame-time") {
        frame_time(&mut options, &timeline, frames, size)?;
    }
    if runs("sync") {
        let mut voices = hiwar_core::build::voices(config, true)?;
        sync_render(&mut options, &mut voices, sync_size, sync_fps)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn animation_cost(timeline: &Timeline) {
    // The animation alone: lip-sync + idle life + ARKit composition + a 52-target rig.
    let lipsync = LipSync::from_timeline(timeline);
    let mut idle = IdleLife::new(1);
    let composer = Composer::new();
    let (rig, _) = Rig::detect(&hiwar_animation::ARKIT);
    let mut out = [0.0_f32; 52];
    let n = 20_000u64;
    let step = u64::from(timeline.sample_rate) / 60;
    let t = Instant::now();
    let mut checksum = 0.0_f32;
    for k in 0..n {
        let pos = k * step % timeline.end().max(1);
        let mouth = lipsync.sample(pos);
        let life = idle.sample(k as f64 / 60.0);
        let frame = composer.compose(&mouth, &life);
        rig.apply(&frame, &mut out);
        checksum += out[17];
    }
    let per_frame_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!(
        "Animation cost per frame (lip-sync sample + idle life + ARKit composition + 52-target rig), {n} frames of a {:.1} s Arabic sentence: **{per_frame_us:.2} µs** (checksum {checksum:.1}).\n",
        timeline.end() as f64 / f64::from(timeline.sample_rate)
    );
}

/// Frame time against a minimal scene at the same size and settings, A-B-A.
fn frame_time(options: &mut StageOptions, timeline: &Timeline, frames: usize, size: (u32, u32)) -> anyhow::Result<()> {
    options.width = size.0;
    options.height = size.1;
    let adapter = adapter_name();
    let a1 = frame_times(options, Scene::Minimal, timeline, frames)?;
    let b = frame_times(options, Scene::Stage, timeline, frames)?;
    let a2 = frame_times(options, Scene::Minimal, timeline, frames)?;
    let mut minimal: Vec<f64> = a1.into_iter().chain(a2).collect();
    minimal.sort_by(f64::total_cmp);
    let mut stage = b;
    stage.sort_by(f64::total_cmp);
    let (m50, s50) = (percentile(&minimal, 0.5), percentile(&stage, 0.5));
    println!(
        "Frame time on {adapter}, offscreen {}×{}, MSAA {}, no tonemapping, {frames} frames each (minimal scene before and after the stage):\n",
        size.0,
        size.1,
        if options.msaa { "4×" } else { "off" }
    );
    println!("| scene | p50 ms | p95 ms | fps (p50) |\n|---|---|---|---|");
    println!("| minimal (one sphere, one light) | {m50:.1} | {:.1} | {:.1} |", percentile(&minimal, 0.95), 1e3 / m50);
    println!("| hiwar stage (avatar, 27 morph targets, captions, state badge) | {s50:.1} | {:.1} | {:.1} |", percentile(&stage, 0.95), 1e3 / s50);
    println!("\nRatio stage / minimal (p50): **{:.2}×** (goal ≤ 1.25×).\n", s50 / m50);
    Ok(())
}

/// The graphics adapter wgpu picks (as `hiwar doctor` reports it).
fn adapter_name() -> String {
    hiwar_stage::graphics::adapter_summary().unwrap_or_else(|| "the default adapter".into())
}

/// Sync, measured from a rendered video's pixels and audio track.
fn sync_render(options: &mut StageOptions, voices: &mut hiwar_speech::voice::Voices, sync_size: (u32, u32), sync_fps: u32) -> anyhow::Result<()> {
    let speech = speak_all(voices, SYNC_TEXT)?;
    let dir = std::env::temp_dir().join(format!("hiwar-bench-face-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let video = dir.join("sync.mp4");
    options.width = sync_size.0;
    options.height = sync_size.1;
    let rec =
        Recording { samples: &speech.0, rate: speech.1, timeline: Some(speech.2.clone()), words: Vec::new(), fps: sync_fps, tail: 0.3, beats: Vec::new() };
    render(options, &rec, &Outputs { video: Some(video.clone()), frames: None })?;
    let report = crate::sync::measure(&video, sync_size.0, sync_size.1, sync_fps)?;
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "Audio-visual offset, headless render at {}×{} and {sync_fps} fps of «{SYNC_TEXT}», measured from the MP4's mouth pixels and audio track:\n",
        sync_size.0, sync_size.1
    );
    print_sync(&report);
    Ok(())
}

pub fn print_sync(report: &crate::sync::SyncReport) {
    println!("| event | sound (s) | mouth (s) | offset (ms) |\n|---|---|---|---|");
    for e in &report.events {
        println!("| {} | {:.3} | {:.3} | {:+.0} |", if e.onset { "onset (opens)" } else { "offset (closes)" }, e.audio_s, e.mouth_s, e.offset_ms());
    }
    println!(
        "\nmean |offset| **{:.1} ms** (goal ≤ 20), max |offset| **{:.1} ms** (goal ≤ 40), mean signed {:+.1} ms (negative: the mouth leads), latest lag {:.1} ms (goal ≤ 20); {} sound events unmatched.\n",
        report.mean_abs_ms(),
        report.max_abs_ms(),
        report.mean_ms(),
        report.max_lag_ms(),
        report.unmatched
    );
}

/// All of `text`, chunk by chunk as `hiwar say` speaks it: samples, rate, one timeline.
pub fn speak_all(voices: &mut hiwar_speech::voice::Voices, text: &str) -> anyhow::Result<(Vec<f32>, u32, Timeline)> {
    let mut chunker = hiwar_speech::voice::Chunker::new();
    let mut chunks = chunker.push(text);
    chunks.extend(chunker.finish());
    let rate = voices.sample_rate();
    let (mut samples, mut phonemes) = (Vec::new(), Vec::new());
    for chunk in chunks {
        let speech = voices.speak(&chunk)?;
        let offset = samples.len() as u64;
        phonemes.extend(hiwar_stage::timeline_of(rate, &speech.phonemes, offset).phonemes);
        samples.extend_from_slice(&speech.samples);
    }
    Ok((samples, rate, Timeline { sample_rate: rate, phonemes, words: Vec::new() }))
}

/// `hiwar bench sync VIDEO`: the offset of any stage-rendered video.
pub fn sync(video: &Path, size: (u32, u32), fps: u32, json: bool) -> anyhow::Result<ExitCode> {
    let report = crate::sync::measure(video, size.0, size.1, fps)?;
    if json {
        let events: Vec<serde_json::Value> = report
            .events
            .iter()
            .map(|e| serde_json::json!({"onset": e.onset, "audio_s": e.audio_s, "mouth_s": e.mouth_s, "offset_ms": e.offset_ms()}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"events": events, "unmatched": report.unmatched, "mean_abs_ms": report.mean_abs_ms(), "max_abs_ms": report.max_abs_ms(), "mean_ms": report.mean_ms(), "max_lag_ms": report.max_lag_ms(), "openness": report.openness})
        );
    } else {
        print_sync(&report);
    }
    Ok(ExitCode::SUCCESS)
}
