//! The whisper model hiwar converted from the registry's CTranslate2 weights, run for real.

use hiwar_speech::hearing::{Decide, HearingConfig, Transcriber, Utterance, script_share};
use hiwar_speech::models::read_ggml_whisper_info;
use hiwar_speech::text::character_error_rate;
use hiwar_speech::whisper::{DecodeOptions, Interrupt, Language, WhisperModel};
use hiwar_tests::{model_cache, repo_root};

fn read_clip(name: &str) -> Vec<f32> {
    let path = repo_root().join("assets/demo").join(name);
    let mut reader = hound::WavReader::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(reader.spec().sample_rate, 16_000);
    reader.samples::<i16>().map(|s| f32::from(s.expect("sample")) / 32768.0).collect()
}

fn normalise(text: &str) -> String {
    let kept: String = text.to_lowercase().chars().filter(|c| c.is_alphanumeric() || c.is_whitespace()).collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ").replace("center", "centre")
}

#[test]
fn the_converted_base_model_transcribes_a_known_english_clip() {
    let path = model_cache().join("whisper/ggml-base.bin");
    assert!(path.is_file(), "{} is missing: run `hiwar models fetch whisper-base`", path.display());
    let info = read_ggml_whisper_info(&path).expect("ggml header");
    assert_eq!((info.size_name(), info.multilingual()), ("base", true));

    let model = WhisperModel::load(&path).expect("whisper.cpp loads the converted model");
    let said = "Welcome to the government service centre. How can I help you today?";
    let heard = model.transcribe(&read_clip("en-welcome.wav"), Language::Among(&["ar", "en"])).expect("transcribe");
    assert_eq!(heard.lang, "en", "{heard:?}");
    let rate = character_error_rate(&normalise(said), &normalise(&heard.text()));
    assert!(rate <= 0.05, "CER {rate:.3}: heard {:?}", heard.text());
    let last = heard.segments.last().expect("segments");
    assert!(last.end > 3.0 && last.end < 6.0, "segment times in seconds: {:?}", heard.segments);
}

#[test]
fn forcing_a_language_is_obeyed() {
    let model = WhisperModel::load(&model_cache().join("whisper/ggml-base.bin")).expect("load");
    let heard = model.transcribe(&read_clip("en-welcome.wav"), Language::Fixed("en")).expect("transcribe");
    assert_eq!(heard.lang, "en");
    assert!(normalise(&heard.text()).contains("help you today"), "{}", heard.text());
}

#[test]
fn a_missing_model_names_the_fetch_command() {
    let err = WhisperModel::load(std::path::Path::new("/nonexistent/ggml.bin")).expect_err("missing");
    assert!(err.to_string().contains("hiwar models fetch whisper-base"), "{err}");
}

#[test]
fn a_decode_abandoned_midway_leaves_the_model_decoding_as_before() {
    // Live hearing abandons a provisional partial when the speech pauses, so the final is
    // decoded at once: whisper.cpp stops between two compute steps, hiwar says so (not a
    // failure), and the next decode on the same state is the same as ever.
    let model = WhisperModel::load(&model_cache().join("whisper/ggml-base.bin")).expect("load");
    let samples = read_clip("en-welcome.wav");
    let greedy = |interrupt| DecodeOptions { language: Language::Fixed("en"), temperature_fallback: false, interrupt, ..DecodeOptions::default() };
    let before = model.decode(&samples, &greedy(None)).expect("decode").text();
    // Asked between the encoder's operations and once per decoder step: let it go three asks.
    let asked = std::cell::Cell::new(0);
    let after_a_few = || {
        asked.set(asked.get() + 1);
        asked.get() > 3
    };
    let abandoned = model.decode(&samples, &greedy(Some(Interrupt(&after_a_few))));
    assert!(matches!(abandoned, Err(hiwar_speech::Error::Interrupted)), "{abandoned:?}");
    let stopped_after = asked.get();
    let whole = std::cell::Cell::new(0);
    let never = || {
        whole.set(whole.get() + 1);
        false
    };
    let again = model.decode(&samples, &greedy(Some(Interrupt(&never)))).expect("decode").text();
    assert_eq!(again, before, "abandoning a decode changed the next one");
    // It stopped at once, not at the end: a whole decode asks once per step (12 words here).
    assert!(stopped_after <= 6 && whole.get() >= 12, "asked {stopped_after} times when abandoned, {} in a whole decode", whole.get());
}

#[test]
fn an_encode_abandoned_midway_stops_inside_the_encoder_and_is_not_reused() {
    // A partial in flight when the speech pauses gives the whisper thread to the final: its
    // encoder stops between two of its operations (hiwar's change 3 to whisper.cpp), not
    // after all of them, and the next decode of the same audio encodes it again rather than
    // reading what the stopped encoder left. Both encodes outside whisper_full: the shared
    // encoding of a fixed-language decode, and detection.
    let model = WhisperModel::load(&model_cache().join("whisper/ggml-base.bin")).expect("load");
    let samples = read_clip("en-welcome.wav");
    let fixed =
        |interrupt| DecodeOptions { language: Language::Fixed("en"), temperature_fallback: false, short_window: true, interrupt, ..DecodeOptions::default() };
    let before = model.decode_encoded(&samples, &fixed(None)).expect("decode").text();
    let asks = std::cell::Cell::new(0);
    let never = || {
        asks.set(asks.get() + 1);
        false
    };
    let again = model.decode_encoded(&samples[..samples.len() - 1], &fixed(Some(Interrupt(&never)))).expect("decode").text();
    let whole = asks.get();
    // The encoder alone is hundreds of operations; the decode of 12 words, tens of steps.
    assert!(whole > 150, "a whole encode and decode asked {whole} times: the encoder does not ask between its operations");
    assert_eq!(normalise(&again), normalise(&before), "the interrupt's callback changed the decode");

    let asked = std::cell::Cell::new(0);
    let at_ten = || {
        asked.set(asked.get() + 1);
        asked.get() >= 10
    };
    let encodings = model.encodings();
    let stopped = model.decode_encoded(&samples, &fixed(Some(Interrupt(&at_ten))));
    assert!(matches!(stopped, Err(hiwar_speech::Error::Interrupted)), "{stopped:?}");
    // The tenth ask stopped it; one more tells a stop from a failure.
    assert_eq!(asked.get(), 11, "stopped at the tenth ask, inside the encoder");
    let after = model.decode_encoded(&samples, &fixed(None)).expect("decode");
    assert_eq!(after.text(), before, "the decode after a stopped encode read what it left");
    assert_eq!(model.encodings(), encodings + 2, "the stopped encode and a new one: {}", model.encodings() - encodings);

    asked.set(0);
    let stopped = model.detect_interruptible(&samples, &["ar", "en"], 256, 2, Some(Interrupt(&at_ten)));
    assert!(matches!(stopped, Err(hiwar_speech::Error::Interrupted)), "{stopped:?}");
    assert_eq!(asked.get(), 11, "detection stopped inside the encoder");
    let detected = model.detect(&samples, &["ar", "en"], 256, 2).expect("detect");
    let en = detected.iter().find(|(l, _)| *l == "en").map_or(0.0, |(_, p)| *p);
    assert!(en > 0.9, "detection after a stopped one: {detected:?}");
}

/// The clip set before issue 17 widened it (one espeak-ng voice per language).
const ORIGINAL_CLIPS: [&str; 7] =
    ["ar-office.wav", "ar-passport.wav", "ar-thanks.wav", "en-office.wav", "en-passport.wav", "mixed-emirates-id.wav", "ar-welcome.wav"];

/// Every bundled clip, 16 kHz mono.
fn clips() -> Vec<(String, Vec<f32>)> {
    let dir = repo_root().join("assets/clips");
    let mut out: Vec<(String, Vec<f32>)> = std::fs::read_dir(&dir)
        .expect("clips")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .map(|p| {
            let audio = hiwar_speech::hearing::open_audio_file(&p).and_then(|f| f.read_all()).expect("clip");
            let mut r = hiwar_speech::hearing::Resampler::new(audio.sample_rate).expect("resampler");
            let mut samples = r.push(&audio.samples).expect("resample").to_vec();
            samples.extend_from_slice(r.finish().expect("resample"));
            (p.file_name().unwrap_or_default().to_string_lossy().into_owned(), samples)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn detecting_the_language_never_leaves_speech_without_words() {
    // Detection ran on the decoding state and left it unable to decode: whatever language
    // was detected, the utterance came out empty. One model, every clip in turn, as hearing
    // uses it (the state is reused from clip to clip).
    // Greedy without the fallback, so that two decodes of the same audio must agree.
    let model = WhisperModel::load(&model_cache().join("whisper/ggml-base.bin")).expect("load");
    let decode =
        |samples: &[f32], language: Language<'_>| model.decode(samples, &DecodeOptions { language, temperature_fallback: false, ..DecodeOptions::default() });
    for (name, samples) in clips().into_iter().filter(|(n, _)| ORIGINAL_CLIPS.contains(&n.as_str())) {
        let detected = decode(&samples, Language::Among(&["ar", "en"])).expect("transcribe");
        assert!(!detected.text().trim().is_empty(), "{name}: no words with detection ({detected:?})");
        let forced = decode(&samples, Language::Fixed(&detected.lang)).expect("transcribe");
        assert_eq!(detected.text(), forced.text(), "{name}: detection changes what is decoded in the language it chose");
    }
}

#[test]
fn arabic_speech_is_heard_in_arabic_whatever_detection_guesses() {
    // Whisper base labels espeak-ng's Arabic as English with p >= 0.99 on most of these clips;
    // hearing decodes both languages when the primary (Arabic) is not sure and chooses by
    // log-probability, script and word shape. Figures: docs/benchmarks.md (issue 17).
    let mut hc = HearingConfig::new(model_cache().join("whisper/ggml-base.bin"), std::path::PathBuf::from("unused-here"));
    // Greedy throughout, so the run is repeatable (the decision itself decodes greedily; the
    // fallback would resample a degenerate winner).
    hc.temperature_fallback = false;
    let transcriber = Transcriber::load(&hc).expect("whisper");
    let mut english_in_english = Vec::new();
    let mut english_total = 0;
    for (name, samples) in clips() {
        let said = hiwar_tests::clip(&name).1;
        // Each clip is a conversation of its own.
        transcriber.forget_conversation();
        let u = transcriber.transcribe(0, &samples, 0, samples.len() as u64).expect("decode").unwrap_or_else(|| panic!("{name}: no words"));
        let why = u.language.summary(&u.lang);
        assert!(u.text.chars().count() <= 2 * said.chars().count(), "{name}: runaway transcript {:?} ({why})", u.text);
        if name.starts_with("en-") {
            english_total += 1;
            if u.lang == "en" && script_share(&u.text, "en") > 0.9 {
                english_in_english.push(name);
            }
        } else {
            // Arabic and mixed (an Arabic sentence with English terms): Arabic, in Arabic script.
            assert_eq!(u.lang, "ar", "{name}: heard {:?} ({why})", u.text);
            assert!(script_share(&u.text, "ar") >= 0.5, "{name}: heard {:?} ({why})", u.text);
        }
    }
    // `hiwar bench asr` chose English for 9 of 9 clean; while the scoring was being set, the
    // two hardest voices (en-us+f4 at 170 wpm, en-gb+f2: English decodes at −0.75 and −0.45 a
    // token) went Arabic, and Arabic is what a tie must favour here: they may, no more.
    assert!(english_in_english.len() >= 7, "English clips heard in English: {english_in_english:?} of {english_total}");
}

#[test]
fn a_speculative_decode_abandoned_when_the_speech_goes_on_stops_at_once_and_leaves_the_next_whole() {
    // Live hearing decodes each pause speculatively; when the speech goes on, that decode is
    // stale and is abandoned so the partials and the final behind it do not wait for it. As
    // hearing decodes a pause: the whole pass (with the prompt) with the language decided in
    // full, on an Arabic clip (both languages decoded when detection is not sure).
    let mut hc = HearingConfig::new(model_cache().join("whisper/ggml-base.bin"), std::path::PathBuf::from("unused-here"));
    // Greedy, so that two whole decodes of the same audio must agree.
    hc.temperature_fallback = false;
    let transcriber = Transcriber::load(&hc).expect("whisper");
    let (_, samples) = clips().into_iter().find(|(n, _)| n == "ar-passport.wav").expect("clip");
    let end = samples.len() as u64;
    let text = |u: Option<Utterance>| u.map(|u| (u.lang, u.text)).expect("words");
    let before = text(transcriber.transcribe_with(0, &samples, 0, end, Decide::Full).expect("decode"));
    let asked = std::cell::Cell::new(0);
    let went_on = || {
        asked.set(asked.get() + 1);
        asked.get() > 3
    };
    let stale = transcriber.transcribe_speculative(1, &samples, 0, end, Decide::Full, Interrupt(&went_on));
    assert!(matches!(stale, Err(hiwar_speech::Error::Interrupted)), "{stale:?}");
    assert!(asked.get() <= 6, "asked {} times before it stopped", asked.get());
    let never = || false;
    let again = text(transcriber.transcribe_speculative(2, &samples, 0, end, Decide::Full, Interrupt(&never)).expect("decode"));
    assert_eq!(again, before, "an abandoned speculative decode changed the next one");
}

#[test]
fn the_prompt_keeps_the_first_terms_that_fit_its_tokens_and_the_operators_words_whole() {
    let mut config = HearingConfig::new(model_cache().join("whisper/ggml-base.bin"), std::path::PathBuf::from("unused-here"));
    let terms = ["Opening hours and times", "Renewing an Emirates ID", "Appointments and queue tickets", "Traffic fines", "Al Nahda Park"];
    config.vocabulary.write().expect("vocabulary").insert("en".into(), terms.iter().map(|t| t.to_string()).collect());
    config.initial_prompt = "Hiwar centre.".into();
    let full = Transcriber::load(&config).expect("load").prompt_for("en");
    assert_eq!(full, format!("{}. Hiwar centre.", terms.join(", ")));
    // A budget that holds the operator's words and the first two terms only.
    let probe = Transcriber::load(&config).expect("load");
    let two = format!("{}, {}.", terms[0], terms[1]);
    config.prompt_tokens = probe.token_count("Hiwar centre.") + probe.token_count(&two);
    let cut = Transcriber::load(&config).expect("load").prompt_for("en");
    assert_eq!(cut, format!("{two} Hiwar centre."));
    // No room for any term: the operator's words stay.
    config.prompt_tokens = 1;
    assert_eq!(Transcriber::load(&config).expect("load").prompt_for("en"), "Hiwar centre.");
}

#[test]
fn a_decode_on_the_shared_encoding_is_whisper_fulls_decode() {
    // Detection and the decision's decodes share one encoding (decode_encoded, hiwar's own
    // run of whisper.cpp's greedy decoder) instead of whisper_full encoding again each time.
    // It must hear exactly what whisper_full hears: the same words, the same confidence,
    // in both languages, as the language decision uses it. With a prompt, it stops where
    // whisper begins the utterance again (en-office as Arabic: whisper_full goes on to say its
    // first word again and then copies the prompt): whisper_full's words up to there.
    let model = WhisperModel::load(&model_cache().join("whisper/ggml-base.bin")).expect("load");
    let only: Option<String> = std::env::var("HIWAR_TEST_SHARED_CLIPS").ok();
    let mut compared = 0;
    for (name, samples) in
        clips().into_iter().filter(|(n, _)| only.as_deref().map_or(ORIGINAL_CLIPS.contains(&n.as_str()), |o| o == "all" || o.split(',').any(|c| c == n)))
    {
        for (lang, prompt) in [("ar", None), ("en", None), ("ar", Some("الهوية الإماراتية، تجديد جواز السفر.")), ("en", Some("Emirates ID, passport renewal."))]
        {
            let options = DecodeOptions { language: Language::Fixed(lang), initial_prompt: prompt, temperature_fallback: false, ..DecodeOptions::default() };
            let full = model.decode(&samples, &options).expect("whisper_full");
            let shared = model.decode_encoded(&samples, &options).expect("shared encoding");
            let what = format!("{name} as {lang}{}", if prompt.is_some() { " with a prompt" } else { "" });
            // (Or the same words, whisper_full's repeat collapsed out of them, with its tokens' figures.)
            if prompt.is_some() && (shared.text() != full.text() || full.looped) {
                let (cut, whole) = (shared.text(), full.text());
                assert!(!cut.is_empty() && whole.starts_with(&cut), "{what}: {cut:?} is not the start of {whole:?}");
                let again = whole[cut.len()..].split_whitespace().next().unwrap_or_default().to_string();
                assert!(cut.starts_with(again.trim_end_matches(['.', ',', '،'])), "{what}: {whole:?} does not begin again after {cut:?}");
                compared += 1;
                continue;
            }
            assert_eq!(shared.text(), full.text(), "{what}");
            assert!((shared.avg_logprob - full.avg_logprob).abs() < 0.01, "{what}: mean log-probability {} against {}", shared.avg_logprob, full.avg_logprob);
            assert_eq!((shared.tokens, shared.looped), (full.tokens, full.looped), "{what}");
            let no_speech = |t: &hiwar_speech::whisper::Transcript| t.segments.first().map(|s| s.no_speech_probability);
            assert!(no_speech(&shared).zip(no_speech(&full)).is_none_or(|(a, b)| (a - b).abs() < 0.01), "{what}: {shared:?} against {full:?}");
            compared += 1;
        }
    }
    assert!(compared >= 24, "only {compared} decodes compared");
}

#[test]
fn detection_and_every_decode_of_an_utterance_share_one_encoding() {
    let model = WhisperModel::load(&model_cache().join("whisper/ggml-base.bin")).expect("load");
    let samples = read_clip("ar-welcome.wav");
    let width = hiwar_speech::whisper::audio_ctx_for(samples.len());
    let options =
        |lang, prompt| DecodeOptions { language: Language::Fixed(lang), initial_prompt: prompt, temperature_fallback: false, ..DecodeOptions::default() };
    let before = model.encodings();
    model.detect(&samples, &["ar", "en"], width, 2).expect("detect");
    let arabic = model.decode_encoded(&samples, &options("ar", None)).expect("ar");
    model.decode_encoded(&samples, &options("en", None)).expect("en");
    model.decode_encoded(&samples, &options("ar", Some("مركز الخدمة الحكومية."))).expect("ar with a prompt");
    assert_eq!(model.encodings() - before, 1, "detection and three decodes of one utterance");
    assert!(script_share(&arabic.text(), "ar") > 0.9, "{}", arabic.text());
    // Other audio is encoded anew, not decoded on the last one's encoding.
    let english = read_clip("en-welcome.wav");
    let heard = model.decode_encoded(&english, &options("en", None)).expect("en");
    assert_eq!(model.encodings() - before, 2);
    assert!(normalise(&heard.text()).contains("help you today"), "{}", heard.text());
    // Whisper_full's own decode counts one.
    model.decode(&english, &options("en", None)).expect("en");
    assert_eq!(model.encodings() - before, 3);
}

#[test]
fn a_final_checks_what_the_last_partial_said_as_a_draft_and_hears_the_same_words() {
    // Each decode of an utterance checks the last one's tokens (a partial of its first
    // seconds) as a draft, in one decoder call, and whisper still picks every token: the
    // final's words are those of a decode without a draft, and most of its tokens came from
    // the draft. Two models: one with drafts, one without, each fed the same partials.
    let path = model_cache().join("whisper/ggml-base.bin");
    let (with, without) = (WhisperModel::load(&path).expect("load"), WhisperModel::load(&path).expect("load"));
    let clips: Vec<_> = clips()
        .into_iter()
        .filter(|(n, _)| ["en-office.wav", "en-passport.wav", "ar-office.wav", "ar-lost-id.wav", "mixed-emirates-id.wav"].contains(&n.as_str()))
        .collect();
    assert_eq!(clips.len(), 5);
    let mut final_tokens = 0;
    // Decoder calls of the finals, with drafts and without.
    let mut calls = [0, 0];
    for (name, samples) in &clips {
        let lang = if name.starts_with("en") { "en" } else { "ar" };
        let prompt = (lang == "en").then_some("Emirates ID, Khalidiya branch, Apple Pay, people of determination, passport renewal, traffic fine.");
        let options =
            |draft| DecodeOptions { language: Language::Fixed(lang), initial_prompt: prompt, temperature_fallback: false, draft, ..DecodeOptions::default() };
        let mut heard = Vec::new();
        for (way, (model, draft)) in [(&with, true), (&without, false)].into_iter().enumerate() {
            // Partials every half second from 1.5 s, as hearing makes them, then the final.
            for upto in (24_000..samples.len().saturating_sub(4_000)).step_by(8_000) {
                model.decode_encoded(&samples[..upto], &options(draft)).expect("partial");
            }
            let (before, called) = (model.draft_tokens().1, model.decoder_calls());
            let t = model.decode_encoded(samples, &options(draft)).expect("final");
            calls[way] += model.decoder_calls() - called;
            if draft {
                assert!(model.draft_tokens().1 > before, "{name}: the final took nothing from its draft");
                final_tokens += t.tokens;
            }
            heard.push(t.text());
        }
        assert!(!heard[0].trim().is_empty(), "{name}: nothing heard");
        assert_eq!(heard[0], heard[1], "{name} as {lang}: with a draft, then without");
    }
    let (fed, taken) = with.draft_tokens();
    assert_eq!(without.draft_tokens(), (0, 0));
    assert!(taken * 2 >= fed, "{taken} of {fed} draft tokens fed were the decoder's own");
    assert!(final_tokens > 20, "{final_tokens} tokens in the finals");
    // Each draft token the decoder took spared a call.
    assert!(calls[0] * 2 < calls[1], "decoder calls of the finals: {} with drafts, {} without", calls[0], calls[1]);
}

#[test]
fn a_forgotten_session_leaves_whisper_neither_a_draft_nor_an_encoding() {
    // At the end of a visitor's session whisper's states (the last audio's spectrogram,
    // encoding and text) are freed and the drafts (its tokens) wiped: the same audio is then
    // encoded anew and decoded with no draft, to the same words.
    let model = WhisperModel::load(&model_cache().join("whisper/ggml-base.bin")).expect("load");
    let samples = read_clip("en-welcome.wav");
    let options = DecodeOptions { language: Language::Fixed("en"), temperature_fallback: false, ..DecodeOptions::default() };
    model.decode_encoded(&samples[..samples.len() * 2 / 3], &options).expect("partial");
    let heard = model.decode_encoded(&samples, &options).expect("final");
    let encodings = model.encodings();
    model.decode_encoded(&samples, &options).expect("the same audio again");
    assert_eq!(model.encodings(), encodings, "the same audio decodes on its encoding");
    let (fed, _) = model.draft_tokens();
    assert!(fed > 0, "no draft was fed");
    model.forget();
    let again = model.decode_encoded(&samples, &options).expect("after forgetting");
    assert_eq!(model.encodings(), encodings + 1, "encoded anew");
    assert_eq!(model.draft_tokens().0, fed, "a draft survived the session");
    assert_eq!(again.text(), heard.text());
}

#[test]
fn a_partial_heard_in_english_on_a_rejected_decode_does_not_settle_an_arabic_question() {
    // Live hearing decides an utterance's language on its first 1.5 s and keeps it. After two
    // English questions, an Arabic one (ar-passport, espeak-ng) was heard as English on that
    // first part, where whisper base's English decode ran away or scored under −1.0, and the
    // whole question was then answered in English ("O be no touch me…"). Greedy throughout, so
    // every run decodes the same.
    let mut hc = HearingConfig::new(model_cache().join("whisper/ggml-base.bin"), std::path::PathBuf::from("unused-here"));
    hc.temperature_fallback = false;
    let transcriber = Transcriber::load(&hc).expect("whisper");
    let all = clips();
    let get = |n: &str| all.iter().find(|(name, _)| name == n).unwrap_or_else(|| panic!("{n}")).1.clone();
    let english = get("en-office.wav");
    let before = transcriber.transcribe(0, &english, 0, english.len() as u64).expect("decode").expect("words");
    assert_eq!(before.lang, "en", "{}", before.language.summary(&before.lang));
    // Each part comes 2 s after that English question, in its conversation.
    let start = english.len() as u64 + 32_000;
    let in_english_conversation = |samples: &[f32]| {
        transcriber.remember(&before);
        transcriber.transcribe_partial(1, samples, start, start + samples.len() as u64, Decide::Full, None).expect("decode").expect("words")
    };
    let arabic = get("ar-passport.wav");
    let mut english_once = 0;
    for tenths in 15..=21 {
        let u = in_english_conversation(&arabic[..tenths * 1_600]);
        let why = u.language.summary(&u.lang);
        if u.lang == "en" {
            english_once += 1;
            assert!(!u.language.settles(), "ar-passport's first {tenths}/10 s, heard as English {:?}, would settle the question ({why})", u.text);
        }
    }
    // Whisper base hears some of these parts as English (1.9–2.1 s, when this was written):
    // the test must see the case it is for.
    assert!(english_once > 0, "no part of ar-passport heard as English: the case is gone");
    let whole = in_english_conversation(&arabic);
    assert_eq!(whole.lang, "ar", "{:?} ({})", whole.text, whole.language.summary(&whole.lang));
    // The same parts as a final (nothing more to come): Arabic, unless its own decode ran away.
    for tenths in 15..=21 {
        transcriber.remember(&before);
        let part = &arabic[..tenths * 1_600];
        let f = transcriber.transcribe(1, part, start, start + part.len() as u64).expect("decode").expect("words");
        let why = f.language.summary(&f.lang);
        let arabic_ran_away = f.language.decoded.iter().any(|d| d.lang == "ar" && d.looped);
        assert!(f.lang == "ar" || arabic_ran_away, "ar-passport's first {tenths}/10 s as a final: {:?} ({why})", f.text);
    }
    // English speech in an English conversation is still heard in English on its first parts
    // (whether they settle it or leave it to more audio), and settles on the whole.
    for name in ["en-office.wav", "en-passport.wav"] {
        let said = get(name);
        for tenths in [15, 18, 21] {
            let u = in_english_conversation(&said[..tenths * 1_600]);
            assert_eq!(u.lang, "en", "{name}'s first {tenths}/10 s: {:?} ({})", u.text, u.language.summary(&u.lang));
        }
        let u = in_english_conversation(&said);
        assert!(u.lang == "en" && u.language.settles(), "{name}: {:?} ({})", u.text, u.language.summary(&u.lang));
    }
}
