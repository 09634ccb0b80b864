//! `hiwar demo`: the whole product on this machine, with no microphone, speaker, display or
//! API key needed. Bundled recorded questions (Arabic, English, one mixed) go through the real
//! pipeline — hearing (VAD + whisper) → mind (Qwen if configured, else the knowledge base) →
//! voice → face — and come out as `demo/demo.mp4` (the avatar answering, with the audio) and
//! `demo/turns.json` (what was heard and answered, and how long each stage took).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use hiwar_speech::hearing::Transcriber;
use tokio_util::sync::CancellationToken;

use hiwar_core::bus::Bus;
use hiwar_core::config::Config;
use hiwar_core::models::{FileStatus, Store};
use hiwar_core::speaking::{Output, VoiceEvent, VoiceOut};
use hiwar_dialogue::mind::Mind;
use hiwar_dialogue::turn::answer_turn;

/// The bundled questions: (clip in assets/clips, what is said).
const QUESTIONS: [(&str, &str); 3] = [
    ("ar-passport.wav", "أريد تجديد جواز السفر."),
    ("en-office.wav", "Where is the nearest office, and what time does it open tomorrow?"),
    ("mixed-emirates-id.wav", "أبغى أجدد Emirates ID"),
];

#[derive(serde::Serialize)]
struct Turn {
    clip: String,
    said: String,
    heard: String,
    heard_lang: String,
    answer: String,
    source: Option<hiwar_dialogue::mind::Source>,
    fallback: Option<&'static str>,
    /// Stage timings, milliseconds.
    hearing_ms: f64,
    retrieval_ms: f64,
    first_token_ms: Option<f64>,
    /// From the transcript to the first chunk of the answer synthesised and ready to play.
    first_audio_ms: f64,
    synth_ms: f64,
    answer_seconds: f64,
    /// Where the question and the answer are in demo.mp4, seconds.
    question_at: f64,
    answer_at: f64,
}

pub fn run(config: &Config) -> anyhow::Result<ExitCode> {
    println!("حوار · hiwar — an Arabic-first digital human\n");
    let store = Store::open(config)?;
    let missing: Vec<&str> = store
        .manifest
        .models
        .iter()
        .filter(|m| m.required && store.model_status(m).iter().any(|(_, s)| !matches!(s, FileStatus::Ok)))
        .map(|m| m.name.as_str())
        .collect();
    if !missing.is_empty() {
        anyhow::bail!("models not ready: {}; run `hiwar models fetch` first", missing.join(", "));
    }
    let out_dir = PathBuf::from("demo");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;

    let hc = hiwar_dialogue::mind::hearing_config(config, None)?;
    let transcriber = Transcriber::load(&hc)?;
    let mind = Mind::from_config(config)?;
    let mind_name = match &mind.llm {
        Some(l) => format!("Qwen at {} ({})", l.settings.base_url, l.settings.model),
        None => format!("the knowledge base alone ({} passages; set llm.base_url for Qwen)", mind.knowledge.passages.len()),
    };
    let voices = hiwar_core::build::voices(config, true)?;
    let rate = voices.sample_rate();
    println!("hearing: VAD + whisper {} · mind: {mind_name} · voice: Piper on ONNX Runtime\n", size_name(&hc.whisper_model));

    let rt = hiwar_core::runtime::runtime()?;
    let _guard = rt.enter();
    let bus = Bus::new(4096);
    let (voice, mut spoken) = VoiceOut::start(voices, Output::Memory { samples: Vec::new() }, None);
    let (mut audio, mut timeline, mut words, mut turns) = (Vec::<f32>::new(), Vec::new(), Vec::new(), Vec::new());
    // The questions alone, for the live window.
    let mut questions_16k: Vec<f32> = Vec::new();
    let mut misheard = 0;
    let mut beats: Vec<hiwar_stage::headless::Beat> = Vec::new();
    for (i, (file, said)) in QUESTIONS.iter().enumerate() {
        let path = hiwar_core::assets::assets_dir().join("clips").join(file);
        // Hearing: the recording through the same resampler, VAD and whisper as the microphone.
        let started = Instant::now();
        let heard = hiwar_speech::hearing::transcribe_file(&path, &hc, &transcriber)?;
        let hearing_ms = started.elapsed().as_secs_f64() * 1e3;
        let text = heard.iter().map(|u| u.text.as_str()).collect::<Vec<_>>().join(" ");
        let heard_lang = heard.first().map_or("ar", |u| u.lang.as_str()).to_string();
        let lang = hiwar_dialogue::turn::reply_lang(&heard_lang, &text);
        println!("{}. 👤 {said}", i + 1);
        println!("   heard ({heard_lang}, {hearing_ms:.0} ms): {text}");
        if let Some(u) = heard.first() {
            println!("   language {} → answered in {}", u.language.summary(&u.lang), lang.code());
        }
        let cer = hiwar_speech::text::character_error_rate(said, &text);
        if cer > 0.5 {
            misheard += 1;
            println!("   (misheard: {:.0}% of the characters differ — see the note below)", cer.min(1.0) * 100.0);
        }

        // The question's audio goes into the video too (the avatar listens).
        let question = hiwar_speech::hearing::read_16k(&path)?;
        questions_16k.extend_from_slice(&question);
        questions_16k.extend(std::iter::repeat_n(0.0, 16_000 * 9));
        let question = hiwar_speech::hearing::Resampler::between(16_000, rate).and_then(|mut r| {
            let mut v = r.push(&question)?.to_vec();
            v.extend_from_slice(r.finish()?);
            Ok(v)
        })?;
        let question_at = audio.len() as f64 / f64::from(rate);
        beats.push(hiwar_stage::headless::Beat {
            from: audio.len() as u64,
            activity: hiwar_animation::Activity::Listening,
            person: String::new(),
            words: Vec::new(),
        });
        audio.extend_from_slice(&question);
        audio.extend(std::iter::repeat_n(0.0, rate as usize * 2 / 5));
        let answer_at = audio.len() as f64 / f64::from(rate);

        let first_word = words.len();
        let answer_from = audio.len() as u64;
        let asked = Instant::now();
        let hold = std::time::Duration::from_millis(config.dialogue.holding_after_ms);
        let turn = i as u64 + 1;
        let report = if text.trim().is_empty() {
            None
        } else {
            Some(rt.block_on(answer_turn(&mind, &voice, &bus, turn, &text, lang, asked, hold, CancellationToken::new())))
        };
        // The answer's audio and timings, as the voice worker spoke it.
        let (mut first_audio_ms, mut synth_ms, mut answer_samples) = (0.0, 0.0, 0u64);
        if report.is_some() {
            while let Some(event) = rt.block_on(spoken.recv()) {
                match event {
                    VoiceEvent::Spoken(s) if s.turn == turn => {
                        if answer_samples == 0 {
                            first_audio_ms = (s.queued_at - asked).as_secs_f64() * 1e3;
                        }
                        synth_ms += s.synth_ms;
                        let at = audio.len() as u64;
                        timeline.extend(s.speech.phonemes.iter().map(|p| hiwar_speech::voice::TimedPhoneme {
                            start: p.start + at,
                            end: p.end + at,
                            ..p.clone()
                        }));
                        words.extend(s.speech.written_words(true).into_iter().map(|w| hiwar_stage::captions::CaptionWord {
                            text: w.text,
                            start: w.start + at,
                            end: w.end + at,
                        }));
                        audio.extend_from_slice(&s.speech.samples);
                        answer_samples += s.speech.samples.len() as u64;
                    }
                    VoiceEvent::TurnEnd { turn: t, .. } if t == turn => break,
                    VoiceEvent::Failed { message, .. } => anyhow::bail!("the voice failed: {message}"),
                    _ => {}
                }
            }
        }
        beats.push(hiwar_stage::headless::Beat {
            from: answer_from,
            activity: hiwar_animation::Activity::Speaking,
            person: text.clone(),
            words: words[first_word..].to_vec(),
        });
        beats.push(hiwar_stage::headless::Beat {
            from: audio.len() as u64,
            activity: hiwar_animation::Activity::Idle,
            person: text.clone(),
            words: words[first_word..].to_vec(),
        });
        audio.extend(std::iter::repeat_n(0.0, rate as usize * 4 / 5));
        let report = report.unwrap_or_default();
        let answer_seconds = answer_samples as f64 / f64::from(rate);
        println!("   🗣  [{}] {}", report.source.map_or("—", hiwar_core::bus::Source::code), report.answer);
        println!(
            "   retrieval {:.1} ms · first token {} · first audio ready {first_audio_ms:.0} ms · {answer_seconds:.1} s of speech synthesised in {synth_ms:.0} ms\n",
            report.retrieval_ms,
            report.first_token_ms.map_or("—".into(), |t| format!("{t:.0} ms")),
        );
        turns.push(Turn {
            clip: (*file).to_string(),
            said: (*said).to_string(),
            heard: text,
            heard_lang,
            answer: report.answer,
            source: report.source,
            fallback: report.fallback,
            hearing_ms,
            retrieval_ms: report.retrieval_ms,
            first_token_ms: report.first_token_ms,
            first_audio_ms,
            synth_ms,
            answer_seconds,
            question_at,
            answer_at,
        });
    }
    drop(voice);
    let json = out_dir.join("turns.json");
    std::fs::write(&json, serde_json::to_string_pretty(&turns)?).with_context(|| format!("cannot write {}", json.display()))?;

    println!("Rendering the conversation (the avatar listening and answering, captions, audio)…");
    let video = out_dir.join("demo.mp4");
    let render = crate::say::VideoArgs { video: Some(video.clone()), frames: None, size: Some((640, 360)), fps: Some(25) };
    let tl = hiwar_stage::timeline_of(rate, &timeline, 0);
    render.render(config, &audio, rate, Some(tl), words, beats)?;

    if hiwar_stage::window::has_display() {
        println!("\nNow live, in a window: the same questions fed to `hiwar run` as if spoken into the microphone…");
        let wav = out_dir.join("questions.wav");
        hiwar_core::runtime::write_wav(&wav, 16_000, &questions_16k)?;
        if let Err(e) = crate::converse::run(config, Some(&wav), false, true, false, false) {
            println!("   (the live window could not run here: {e:#})");
        }
    }

    if misheard > 0 {
        println!("\nNote: the bundled questions are espeak-ng's synthetic voices (no registry ships real Arabic speech), and");
        println!("whisper base hears espeak's Arabic poorly, so {misheard} of {} questions were misheard; each was still answered", QUESTIONS.len());
        println!("in the language it was asked in. A larger whisper hears far better: `hiwar models fetch whisper-large-v3-turbo`");
        println!("and set hearing.whisper_model (then try hearing.knowledge_prompt = true). Try typed questions with `hiwar chat`.");
    }
    println!("\nتمّ · Done.");
    println!("   {}  — شاهد الأفاتار يجيب · watch the avatar answer", video.display());
    println!("   {}  — ما سُمع وما قيل وكم استغرق · what was heard, answered, and how long each stage took", json.display());
    println!("   Live: `hiwar run` (microphone, speaker, window) · `hiwar chat` (the same mind in the terminal).");
    Ok(ExitCode::SUCCESS)
}

fn size_name(path: &Path) -> &'static str {
    hiwar_speech::models::read_ggml_whisper_info(path).map_or("(unknown size)", |i| i.size_name())
}
