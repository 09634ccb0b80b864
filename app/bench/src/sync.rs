//! Audio-visual sync measured from a rendered video's outputs alone: the mouth's opening from
//! the pixels of its region, the sound from the muxed audio track.
//!
//! Each time the sound starts after a pause (an onset) the mouth should open, and each time
//! it stops (an offset) the mouth should close. The offset of a pair is mouth time minus sound
//! time: negative means the mouth leads (natural), positive that it lags (looks dubbed).

use std::path::Path;
use std::process::Command;

use anyhow::Context as _;
use hiwar_stage::Vec3;

use hiwar_stage::avatar;

/// One matched pair of events.
#[derive(Debug, Clone, Copy)]
pub struct SyncEvent {
    /// true: the sound starts (mouth opens); false: it stops (mouth closes).
    pub onset: bool,
    pub audio_s: f64,
    pub mouth_s: f64,
}

impl SyncEvent {
    pub fn offset_ms(&self) -> f64 {
        (self.mouth_s - self.audio_s) * 1e3
    }
}

#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    pub events: Vec<SyncEvent>,
    /// Sound events with no mouth event near them.
    pub unmatched: usize,
    /// Mouth openness per frame (0 closed … 1 widest), for inspection.
    pub openness: Vec<f32>,
}

impl SyncReport {
    pub fn mean_abs_ms(&self) -> f64 {
        self.events.iter().map(|e| e.offset_ms().abs()).sum::<f64>() / self.events.len().max(1) as f64
    }

    pub fn max_abs_ms(&self) -> f64 {
        self.events.iter().map(|e| e.offset_ms().abs()).fold(0.0, f64::max)
    }

    pub fn mean_ms(&self) -> f64 {
        self.events.iter().map(SyncEvent::offset_ms).sum::<f64>() / self.events.len().max(1) as f64
    }

    /// The latest the mouth comes after the sound (0 if it never lags).
    pub fn max_lag_ms(&self) -> f64 {
        self.events.iter().map(SyncEvent::offset_ms).fold(0.0, f64::max)
    }
}

/// The mouth's box in a frame of `width` × `height` (x0, y0, x1, y1), from the stage camera's
/// projection of the avatar's mouth.
pub fn mouth_box(width: u32, height: u32) -> (usize, usize, usize, usize) {
    let centre = hiwar_stage::mouth_point();
    let c = hiwar_stage::project(centre, width, height);
    let side = hiwar_stage::project(centre + Vec3::new(avatar::MOUTH_HALF, 0.0, 0.0), width, height);
    let below = hiwar_stage::project(centre - Vec3::new(0.0, 0.034, 0.0), width, height);
    let half_w = (side.x - c.x).abs() * 0.8;
    let down = (below.y - c.y).abs();
    let x0 = (c.x - half_w).max(0.0) as usize;
    let x1 = ((c.x + half_w).ceil() as usize).min(width as usize);
    let y0 = (c.y - 0.12 * down).max(0.0) as usize;
    let y1 = ((c.y + down).ceil() as usize).min(height as usize);
    (x0, y0, x1, y1)
}

/// The eyes' boxes (left eye first), from the projection of their centres.
pub fn eye_boxes(width: u32, height: u32) -> Vec<(usize, usize, usize, usize)> {
    avatar::eye_centres()
        .iter()
        .map(|c| {
            let centre = Vec3::new(c[0], c[1] + avatar::HEAD_ABOVE_BODY, c[2] + avatar::EYE_RADIUS);
            let p = hiwar_stage::project(centre, width, height);
            let r = (hiwar_stage::project(centre + Vec3::new(avatar::EYE_RADIUS, 0.0, 0.0), width, height).x - p.x).abs();
            let (x0, x1) = ((p.x - r).max(0.0) as usize, ((p.x + r).ceil() as usize).min(width as usize));
            let (y0, y1) = ((p.y - r).max(0.0) as usize, ((p.y + r).ceil() as usize).min(height as usize));
            (x0, y0, x1, y1)
        })
        .collect()
}

/// Both regions as JSON (`hiwar bench regions`).
pub fn regions(width: u32, height: u32) -> serde_json::Value {
    let b = |t: (usize, usize, usize, usize)| serde_json::json!([t.0, t.1, t.2, t.3]);
    serde_json::json!({"mouth": b(mouth_box(width, height)), "eyes": eye_boxes(width, height).into_iter().map(b).collect::<Vec<_>>()})
}

/// How open the mouth is in one grey frame: the darkness of the mouth box (the cavity is the
/// darkest thing there; skin, lips and teeth are light).
fn darkness(frame: &[u8], width: usize, b: (usize, usize, usize, usize)) -> f32 {
    let mut sum = 0.0_f32;
    for y in b.1..b.3 {
        for x in b.0..b.2 {
            let g = f32::from(frame[y * width + x]);
            sum += (70.0 - g).max(0.0);
        }
    }
    sum
}

/// Decodes a video's frames as grey bytes and its audio as 16 kHz mono.
fn decode(video: &Path, width: u32, height: u32) -> anyhow::Result<(Vec<Vec<u8>>, Vec<f32>)> {
    let grey = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(video)
        .args(["-map", "0:v", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .context("cannot run ffmpeg")?;
    anyhow::ensure!(grey.status.success(), "ffmpeg could not decode the video of {}: {}", video.display(), String::from_utf8_lossy(&grey.stderr));
    let size = (width * height) as usize;
    let frames = grey.stdout.chunks_exact(size).map(<[u8]>::to_vec).collect();
    let audio = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(video)
        .args(["-map", "0:a", "-ac", "1", "-ar", "16000", "-f", "f32le", "-"])
        .output()
        .context("cannot run ffmpeg")?;
    anyhow::ensure!(audio.status.success(), "ffmpeg could not decode the audio of {}: {}", video.display(), String::from_utf8_lossy(&audio.stderr));
    let samples = audio.stdout.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok((frames, samples))
}

/// Times (seconds) where `level` crosses `threshold` upwards (true) or downwards (false),
/// interpolated between samples, keeping only changes that last `hold` samples.
fn crossings(level: &[f32], threshold: f32, step: f64, hold: usize) -> Vec<(bool, f64)> {
    let mut out = Vec::new();
    let mut state = level.first().is_some_and(|l| *l > threshold);
    let mut i = 1;
    while i < level.len() {
        let now = level[i] > threshold;
        if now != state {
            // Ignore flickers shorter than `hold`.
            let lasting = level[i..(i + hold).min(level.len())].iter().all(|l| (*l > threshold) == now);
            if lasting {
                let (a, b) = (level[i - 1], level[i]);
                let frac = if (b - a).abs() > f32::EPSILON { f64::from((threshold - a) / (b - a)) } else { 0.0 };
                out.push((now, (i as f64 - 1.0 + frac.clamp(0.0, 1.0)) * step));
                state = now;
            }
        }
        i += 1;
    }
    out
}

/// Measures a video rendered by the stage at `width` × `height` and `fps`.
pub fn measure(video: &Path, width: u32, height: u32, fps: u32) -> anyhow::Result<SyncReport> {
    let (frames, audio) = decode(video, width, height)?;
    anyhow::ensure!(frames.len() > 2 && !audio.is_empty(), "{} has too little video or audio to measure", video.display());
    let b = mouth_box(width, height);
    let raw: Vec<f32> = frames.iter().map(|f| darkness(f, width as usize, b)).collect();
    let mut sorted = raw.clone();
    sorted.sort_by(f32::total_cmp);
    let lo = sorted[sorted.len() / 20];
    let hi = sorted[sorted.len() - 1 - sorted.len() / 100].max(lo + 1.0);
    let openness: Vec<f32> = raw.iter().map(|d| ((d - lo) / (hi - lo)).clamp(0.0, 1.0)).collect();
    // Sound level every 5 ms (10 ms windows), in dB below the loudest.
    let hop = 80;
    let level: Vec<f32> = audio
        .chunks(hop)
        .enumerate()
        .map(|(i, _)| {
            let from = (i * hop).saturating_sub(hop / 2);
            let w = &audio[from..(from + 2 * hop).min(audio.len())];
            let e = w.iter().map(|s| s * s).sum::<f32>() / w.len().max(1) as f32;
            10.0 * (e + 1e-12).log10()
        })
        .collect();
    let peak = level.iter().copied().fold(f32::MIN, f32::max);
    // Pauses between phrases: the sound must stay off (or on) for 60 ms to count.
    let sound = crossings(&level, peak - 32.0, hop as f64 / 16_000.0, 12);
    let mouth = crossings(&openness, 0.06, 1.0 / f64::from(fps), 1);
    let mut report = SyncReport { openness, ..SyncReport::default() };
    for &(onset, t) in &sound {
        // The nearest mouth event of the same kind within a quarter second.
        let best = mouth.iter().filter(|(o, m)| *o == onset && (m - t).abs() < 0.25).min_by(|a, b| (a.1 - t).abs().total_cmp(&(b.1 - t).abs()));
        match best {
            Some(&(_, m)) => report.events.push(SyncEvent { onset, audio_s: t, mouth_s: m }),
            None => report.unmatched += 1,
        }
    }
    Ok(report)
}
