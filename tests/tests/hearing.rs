//! Hearing end to end through `hiwar transcribe`: real models, real decoders, the repo's clip
//! set (assets/clips/clips.toml says where each clip comes from and its limits).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hiwar_speech::text::{character_error_rate, word_error_rate};
use hiwar_tests::{clip, hiwar, model_cache, peak_rss_mib, read_wav, run, write_wav};
use serde_json::Value;

fn transcribe_json(args: &[&str], files: &[&Path]) -> Vec<Value> {
    let out = run(hiwar(&model_cache()).arg("transcribe").arg("--json").args(args).args(files));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    out.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

fn text(v: &Value) -> String {
    v["text"].as_str().expect("text").to_string()
}

#[test]
fn english_clips_are_heard_word_for_word() {
    for name in ["en-welcome.wav", "en-passport.wav", "en-office.wav"] {
        let (path, said) = clip(name);
        let v = &transcribe_json(&[], &[&path])[0];
        assert_eq!(v["lang"], "en", "{v}");
        let wer = word_error_rate(&said, &text(v));
        assert!(wer <= 0.15, "{name}: WER {wer:.2}, heard {:?}", text(v));
        // The JSON shape integrators rely on.
        let seg = &v["segments"][0];
        assert!(seg["start"].is_f64() && seg["end"].as_f64() > seg["start"].as_f64(), "{seg}");
        assert_eq!(seg["lang"], "en");
        assert!(v["file"].as_str().is_some_and(|f| f.ends_with(name)));
    }
}

#[test]
fn the_knowledge_bases_names_are_heard_through_the_english_prompt() {
    // "How do I get to Amman Street from Stadium Metro Station?": whisper base alone hears "the
    // Man's Street". With the knowledge base's English titles and names as its prompt
    // (`hearing.knowledge_prompt = ["en"]`), it hears the street the centre is on; a question
    // that names two of the prompt's terms is what the prompt is for, not an echo of it.
    let (path, said) = clip("en-stadium-metro.wav");
    let heard = |prompt: &str| {
        let out = run(hiwar(&model_cache()).env("HIWAR_HEARING_KNOWLEDGE_PROMPT", prompt).args(["transcribe", "--json"]).arg(&path));
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        text(&serde_json::from_str(out.stdout.trim()).expect("json"))
    };
    let prompted = heard("en");
    assert!(prompted.contains("Amman Street"), "{prompted}");
    let plain = heard("false");
    assert!(!plain.contains("Amman"), "whisper base now hears the name unaided: {plain}");
    assert!(word_error_rate(&said, &prompted) < word_error_rate(&said, &plain), "{prompted} / {plain}");
}

#[test]
fn arabic_clips_in_arabic_are_heard_within_the_measured_bounds() {
    // whisper base on espeak-ng's robotic Arabic: measured mean CER 0.59 (docs/benchmarks.md).
    // The bound keeps that from getting worse; it is not a claim of good Arabic.
    let mut total = 0.0;
    let names = ["ar-welcome.wav", "ar-passport.wav", "ar-office.wav", "ar-thanks.wav"];
    for name in names {
        let (path, said) = clip(name);
        let v = &transcribe_json(&["--lang", "ar"], &[&path])[0];
        assert_eq!(v["lang"], "ar", "{v}");
        let heard = text(v);
        assert!(heard.chars().any(|c| ('\u{0600}'..='\u{06FF}').contains(&c)), "{name}: not Arabic script: {heard}");
        let cer = character_error_rate(&said, &heard);
        assert!(cer <= 0.9, "{name}: CER {cer:.2}, heard {heard}");
        total += cer;
    }
    let mean = total / names.len() as f64;
    assert!(mean <= 0.7, "mean Arabic CER {mean:.2}");
}

#[test]
fn arabic_is_heard_in_arabic_with_detection_as_the_kiosk_runs() {
    // Whisper base labels these clips English (p >= 0.97); the demo once heard both Arabic
    // questions as English and answered in English. ar-welcome is two utterances: the second
    // continues the first's conversation.
    for name in ["ar-welcome.wav", "ar-passport.wav", "ar-office.wav"] {
        let (path, said) = clip(name);
        let v = &transcribe_json(&[], &[&path])[0];
        for seg in v["segments"].as_array().expect("segments") {
            assert_eq!(seg["lang"], "ar", "{name}: {seg}");
            assert!(seg["language_choice"].as_str().is_some_and(|c| c.contains(": ar")), "{name}: {seg}");
        }
        let heard = text(v);
        let arabic = heard.chars().filter(|c| ('\u{0621}'..='\u{064A}').contains(c)).count();
        let latin = heard.chars().filter(char::is_ascii_alphabetic).count();
        assert!(arabic > 3 * latin, "{name}: heard {heard:?}");
        assert!(heard.chars().count() <= 2 * said.chars().count(), "{name}: runaway {heard:?}");
    }
}

#[test]
fn noisy_arabic_is_not_taken_for_the_english_whisper_invents_over_it() {
    // ar-traffic-fine with pink noise at 20 dB SNR, as `hiwar bench asr` makes it (the 20 dB
    // condition's seed for this clip): forced into English, whisper base invents "I know that
    // the moon will look at the sea, the moon will be at the sea." at a mean log-probability of
    // −1.3, which once outscored the Arabic decode. A decode whisper itself rejects no longer
    // takes the turn from the primary language.
    let (path, said) = clip("ar-traffic-fine.wav");
    let (rate, samples) = read_wav(&path);
    assert_eq!(rate, 16_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let noisy = dir.path().join("ar-traffic-fine-20db.wav");
    write_wav(&noisy, 16_000, 1, &hiwar_speech::audio::with_noise(&samples, 20.0, 1019));
    let v = &transcribe_json(&[], &[&noisy])[0];
    let heard = text(v);
    for seg in v["segments"].as_array().expect("segments") {
        assert_eq!(seg["lang"], "ar", "heard {heard:?}: {seg}");
    }
    assert!(heard.chars().any(|c| ('\u{0621}'..='\u{064A}').contains(&c)), "{heard:?}");
    assert!(heard.chars().count() <= 2 * said.chars().count(), "runaway {heard:?}");
}

#[test]
fn a_code_switched_clip_keeps_its_english_term() {
    let (path, said) = clip("mixed-emirates-id.wav");
    let v = &transcribe_json(&["--lang", "ar"], &[&path])[0];
    let heard = text(v);
    assert!(heard.to_lowercase().contains("id"), "{heard}");
    let cer = character_error_rate(&said, &heard);
    assert!(cer <= 0.8, "CER {cer:.2}: {heard}");
}

#[test]
fn silence_noise_and_music_produce_no_transcript() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rate = 16_000;
    let n = rate as usize * 5;
    let silence = vec![0.0f32; n];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<f32> = (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.6
        })
        .collect();
    // Chords with a beat: triads changing every half second, amplitude-modulated at 4 Hz.
    let chords = [[261.6, 329.6, 392.0], [220.0, 261.6, 329.6], [174.6, 220.0, 261.6], [196.0, 246.9, 293.7]];
    let music: Vec<f32> = (0..n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            let chord = chords[(t * 2.0) as usize % 4];
            let beat = 0.6 + 0.4 * (t * 4.0 * std::f32::consts::TAU).sin().abs();
            chord.iter().map(|f| (t * f * std::f32::consts::TAU).sin()).sum::<f32>() * 0.15 * beat
        })
        .collect();
    for (name, samples) in [("silence.wav", silence), ("noise.wav", noise), ("music.wav", music)] {
        let path = dir.path().join(name);
        write_wav(&path, rate, 1, &samples);
        let v = &transcribe_json(&[], &[&path])[0];
        assert_eq!(text(v), "", "{name} produced {v}");
        assert_eq!(v["segments"].as_array().map(Vec::len), Some(0), "{name}");
    }
}

#[test]
fn bad_audio_files_are_clear_errors_and_the_good_ones_still_come_through() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("empty.wav"), b"").expect("empty");
    let good = clip("en-passport.wav").0;
    let bytes = std::fs::read(&good).expect("read clip");
    std::fs::write(d.join("truncated.wav"), &bytes[..20]).expect("truncated");
    let mut zero_channels = bytes.clone();
    zero_channels[22..24].copy_from_slice(&0u16.to_le_bytes());
    std::fs::write(d.join("zero-channels.wav"), zero_channels).expect("0 ch");
    let mut low_rate = bytes.clone();
    low_rate[24..28].copy_from_slice(&1000u32.to_le_bytes());
    low_rate[28..32].copy_from_slice(&2000u32.to_le_bytes());
    std::fs::write(d.join("1000hz.wav"), low_rate).expect("low rate");
    std::fs::write(d.join("not-audio.mp3"), "this is a text file, not an mp3\n".repeat(50)).expect("text");

    let bad = ["empty.wav", "truncated.wav", "zero-channels.wav", "1000hz.wav", "not-audio.mp3"];
    let mut cmd = hiwar(&model_cache());
    cmd.arg("transcribe").arg("--json");
    for b in bad {
        cmd.arg(d.join(b));
    }
    cmd.arg(&good);
    let out = run(&mut cmd);
    assert_eq!(out.code, Some(1), "some files failed: {}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    for b in bad {
        let line = out.stderr.lines().find(|l| l.contains(b)).unwrap_or_else(|| panic!("no error for {b}:\n{}", out.stderr));
        assert!(line.starts_with("error: "), "{line}");
    }
    assert!(out.stderr.contains("empty"), "{}", out.stderr);
    assert!(out.stderr.contains("channel count"), "{}", out.stderr);
    assert!(out.stderr.contains("1000 Hz"), "{}", out.stderr);
    // The good file after the bad ones is transcribed all the same.
    let v: Value = serde_json::from_str(out.stdout.lines().last().expect("a result")).expect("json");
    assert!(word_error_rate(&clip("en-passport.wav").1, &text(&v)) <= 0.15, "{v}");
}

#[test]
fn other_rates_channels_and_formats_are_decoded_and_resampled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, said) = clip("en-office.wav");
    let (rate, mono) = read_wav(&path);
    // 44.1 kHz stereo by linear interpolation (the pipeline then resamples it properly).
    let target = 44_100u32;
    let n = mono.len() * target as usize / rate as usize;
    let mut stereo = Vec::with_capacity(n * 2);
    for i in 0..n {
        let x = i as f64 * f64::from(rate) / f64::from(target);
        let (k, f) = (x as usize, (x - x.floor()) as f32);
        let s = mono[k.min(mono.len() - 1)] * (1.0 - f) + mono[(k + 1).min(mono.len() - 1)] * f;
        stereo.extend([s, s * 0.8]);
    }
    let wav44 = dir.path().join("stereo-44k.wav");
    write_wav(&wav44, target, 2, &stereo);
    let mut files = vec![wav44];
    for ext in ["flac", "mp3", "ogg"] {
        let out = dir.path().join(format!("en-office.{ext}"));
        let status = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(&path)
            .args(["-ar", "22050"])
            .arg(&out)
            .status()
            .expect("ffmpeg (installed by ./bootstrap)");
        assert!(status.success());
        files.push(out);
    }
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    for v in transcribe_json(&["--lang", "en"], &refs) {
        let wer = word_error_rate(&said, &text(&v));
        assert!(wer <= 0.15, "{}: WER {wer:.2}: {}", v["file"], text(&v));
    }
}

#[test]
fn a_two_hour_recording_is_streamed_in_bounded_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("two-hours.wav");
    let rate = 16_000u32;
    let clips = [(600.0, "en-welcome.wav"), (3600.0, "en-passport.wav"), (6900.0, "en-office.wav")];
    {
        let spec = hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
        let mut w = hound::WavWriter::create(&path, spec).expect("wav");
        let mut written = 0usize;
        for (at, name) in clips {
            let start = (at * f64::from(rate)) as usize;
            // A quiet room, not digital silence: faint noise.
            while written < start {
                w.write_sample(((written * 7919) % 13) as i16 - 6).expect("write");
                written += 1;
            }
            for s in read_wav(&clip(name).0).1 {
                w.write_sample((s * 32767.0) as i16).expect("write");
                written += 1;
            }
        }
        while written < 7200 * rate as usize {
            w.write_sample(((written * 7919) % 13) as i16 - 6).expect("write");
            written += 1;
        }
        w.finalize().expect("finalize");
    }
    let started = Instant::now();
    let mut child = hiwar(&model_cache()).args(["transcribe", "--json"]).arg(&path).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut peak = 0.0f64;
    while child.try_wait().expect("wait").is_none() {
        peak = peak.max(peak_rss_mib(child.id()).unwrap_or(0.0));
        assert!(started.elapsed() < Duration::from_secs(600), "took too long");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("output");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The whole file as f32 would be 460 MB on its own; streaming keeps the process near
    // the model's own footprint.
    assert!(peak > 0.0 && peak < 400.0, "peak RSS {peak:.0} MiB");
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let segments = v["segments"].as_array().expect("segments");
    for (at, name) in clips {
        let near: Vec<&Value> = segments.iter().filter(|s| (s["start"].as_f64().unwrap_or(-1.0) - at).abs() < 2.0).collect();
        assert!(!near.is_empty(), "nothing heard at {at} s ({name}): {v}");
        let heard: String = near.iter().map(|s| s["text"].as_str().unwrap_or_default()).collect::<Vec<_>>().join(" ");
        let wer = word_error_rate(&clip(name).1, &heard);
        assert!(wer <= 0.2, "{name} at {at} s: WER {wer:.2}: {heard}");
    }
    assert_eq!(
        segments.iter().filter(|s| !clips.iter().any(|(at, _)| (s["start"].as_f64().unwrap_or(0.0) - at).abs() < 10.0)).count(),
        0,
        "phantoms in the silence: {v}"
    );
}

#[test]
fn the_benchmark_measures_a_model_given_by_path() {
    // Same base model, at another path: `hiwar bench asr --model` loads what it is given.
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("my-whisper.bin");
    std::fs::copy(model_cache().join("whisper/ggml-base.bin"), &copy).expect("copy model");
    let out = run(hiwar(&model_cache()).args(["bench", "asr", "--only", "memory", "--model"]).arg(&copy));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("my-whisper.bin") && out.stdout.contains("whisper base"), "{}", out.stdout);
    assert!(out.stdout.contains("| with whisper base loaded"), "{}", out.stdout);
    let missing = run(hiwar(&model_cache()).args(["bench", "asr", "--model", "/nonexistent/ggml.bin"]));
    assert_eq!(missing.code, Some(1));
    assert!(missing.stderr.contains("/nonexistent/ggml.bin"), "{}", missing.stderr);
}
