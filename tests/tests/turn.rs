//! The semantic end of turn with its real model, on a real recording (assets/turns/jfk.wav, a
//! person pausing mid-sentence): the features it is fed against the reference front end, its
//! judgements, and the live microphone path, where a pause mid-sentence no longer cuts the
//! person off.

use std::process::Stdio;
use std::time::{Duration, Instant};

use hiwar_speech::hearing::{
    Boundary, Hearing, HearingConfig, HearingEvent, Listener, PacedSource, SegmenterConfig, SileroVad, SmartTurn, Source, TurnFeatures, TurnWaits,
};
use hiwar_tests::{Pulse, clip, hiwar, lines_of, model_cache, read_wav, repo_root, wait_for};

fn jfk() -> Vec<f32> {
    let (rate, samples) = read_wav(&repo_root().join("assets/turns/jfk.wav"));
    assert_eq!(rate, 16_000);
    samples
}

fn at(seconds: f64) -> usize {
    (seconds * 16_000.0) as usize
}

#[test]
fn the_features_match_the_reference_front_end() {
    // Reference: pipecat 1.14.0's _whisper_features.compute_whisper_log_mel_features on the
    // first 5 s of jfk.wav, zero-padded in front to 8 s (numpy, float64 inside); the cells are
    // (mel, frame). hiwar's Rust front end agreed within 1.6e-5 on all 64 000 values.
    let f = TurnFeatures::new().compute(&jfk()[..80_000]);
    let cells = [
        (0, 790, 0.65539),
        (5, 700, 1.07851),
        (10, 600, 0.72411),
        (20, 650, 1.25173),
        (40, 720, 1.20484),
        (60, 680, 0.08356),
        (79, 799, -0.09677),
        (30, 100, -0.09677),
    ];
    for (mel, frame, want) in cells {
        let got = f[mel * 800 + frame];
        assert!((got - want).abs() < 1e-3, "mel {mel}, frame {frame}: {got} against {want}");
    }
}

#[test]
fn a_real_pause_mid_sentence_is_unfinished_and_the_end_is_the_end() {
    let cache = model_cache();
    hiwar_speech::onnx::load(&cache.join("onnxruntime/libonnxruntime.so.1.32.0")).expect("ONNX Runtime");
    let mut turn = SmartTurn::load(&cache.join("turn/smart-turn-v3.2-cpu.onnx")).expect("Smart Turn");
    let audio = jfk();
    // Each asked 200 ms into the silence, as the listener asks. Reference probabilities from
    // pipecat's own Python path (onnxruntime 1.32, same model): 0.024, 0.044, 0.974, 0.926.
    // The int8 model moves by up to ±0.03 on inputs that differ by 1e-5, so the bounds are wide.
    let mut p = |end: f64| turn.probability(&audio[..at(end)]).expect("judged");
    let ask_not = p(4.62); // "ask not [pause] what your country…"
    let for_you = p(7.85); // "…can do for you, [pause] ask what you can do…"
    let end = p(10.73); // "…for your country." — the end
    let americans = p(2.44); // "And so, my fellow Americans, [pause]" — a finished phrase
    assert!(ask_not < 0.2 && for_you < 0.2, "pauses mid-sentence judged complete: {ask_not:.3}, {for_you:.3}");
    assert!(end > 0.8, "the end judged unfinished: {end:.3}");
    assert!(americans > 0.6, "{americans:.3}");
    // Silence and broken input are judged without failing.
    assert!(turn.probability(&[]).is_ok_and(|p| (0.0..=1.0).contains(&p)));
    assert!(turn.probability(&[f32::NAN; 16_000]).is_ok_and(|p| (0.0..=1.0).contains(&p)));
}

#[test]
fn off_the_clock_the_listener_ends_jfks_turns_where_the_phrase_is_finished() {
    // hearing's own listener (Silero VAD, the segmenter, Smart Turn) over jfk.wav as fast as it
    // runs: ends after "…my fellow Americans" and at the end only, whether an "unfinished" is
    // asked again or not. Asked again every 400 ms, "ask not" was cut when each utterance was
    // judged alone (p 0.11 → 0.91 as the pause went on); judged with the turn it continues in
    // front, it is not.
    let cache = model_cache();
    hiwar_speech::onnx::load(&cache.join("onnxruntime/libonnxruntime.so.1.32.0")).expect("ONNX Runtime");
    let mut audio = jfk();
    audio.extend(std::iter::repeat_n(0.0, at(3.0)));
    for reprobe_ms in [0, 400] {
        let vad = SileroVad::load(&cache.join("vad/silero_vad_16k_op15.onnx")).expect("VAD");
        let turn = SmartTurn::load(&cache.join("turn/smart-turn-v3.2-cpu.onnx")).expect("Smart Turn");
        let waits = TurnWaits { reprobe_ms, ..TurnWaits::default() };
        let mut listener = Listener::with_turn(vad, Some(turn), SegmenterConfig { turn: Some(waits), ..SegmenterConfig::default() });
        let mut ends = Vec::new();
        let mut record = |_: &Listener, b: Boundary| {
            if let Boundary::Ended { last_voiced, turn, .. } = b {
                ends.push((last_voiced as f64 / 16_000.0, turn));
            }
        };
        listener.push(&audio, &mut record).expect("heard");
        listener.finish(&mut record).expect("heard");
        assert_eq!(ends.len(), 2, "asked again every {reprobe_ms} ms: {ends:?}");
        assert!((2.0..2.6).contains(&ends[0].0) && ends[1].0 > 10.3, "asked again every {reprobe_ms} ms: {ends:?}");
    }
}

/// `hiwar transcribe --mic` on a private PulseAudio with `end_of_turn`: the finals heard while
/// jfk.wav plays into the microphone.
fn finals_live(end_of_turn: &str) -> Vec<String> {
    let pulse = Pulse::start(&["mic"]);
    let mut cmd = hiwar(&model_cache());
    pulse.apply(&mut cmd);
    cmd.env("HIWAR_HEARING_END_OF_TURN", end_of_turn).env("HIWAR_HEARING_LANGUAGE", "en");
    let mut child = cmd.args(["transcribe", "--mic"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn hiwar");
    let (out, err) = (lines_of(child.stdout.take().expect("stdout")), lines_of(child.stderr.take().expect("stderr")));
    wait_for(&err, Duration::from_secs(20), "microphone ready", |l| l.starts_with("microphone ready"));
    // PulseAudio's ALSA plugin delivers its first capture ~1.7 s after the stream starts.
    std::thread::sleep(Duration::from_secs(3));
    pulse.play("mic", &repo_root().join("assets/turns/jfk.wav"));
    // Whatever ends after the clip has ended is in within a few seconds (the incomplete wait
    // is 1.5 s, a final decode of 8 s of speech about a second here).
    let mut finals = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(8);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match out.recv_timeout(left) {
            Ok(line) if line.starts_with("(en)") => finals.push(line.trim_start_matches("(en)").trim().to_lowercase()),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    finals
}

#[test]
fn live_a_pause_mid_sentence_does_not_end_the_turn() {
    // Silence alone (500 ms) ends a turn at each of the speaker's three pauses: four finals.
    let silence = finals_live("silence");
    assert_eq!(silence.len(), 4, "{silence:#?}");
    // Smart Turn ends it where the phrase is finished ("…my fellow Americans") and at the
    // end, and hears "…can do for you, [0.5 s] ask what…" as one sentence. "ask not [1 s]" is
    // borderline on its own (p 0.15–0.3 offline; heard as finished in 1 of 9 live runs, stop
    // 27's CI), so it may be a final of its own. Once it was, "what your country can do for
    // you" was judged on its own too — a finished question — and the sentence came in four
    // finals (stop 29's CI); the listener now judges a continuation with the turn it
    // continues in front (p 0.04), as the model was trained: two finals, three at most.
    let smart = finals_live("smart");
    eprintln!("finals with Smart Turn: {smart:?}");
    assert!((2..=3).contains(&smart.len()) && smart.len() < silence.len(), "{smart:#?}");
    assert!(smart[0].contains("americans"), "{smart:#?}");
    // Both halves of the last sentence in the one final.
    let last = &smart[smart.len() - 1];
    assert!(last.contains("country can do for you") && last.contains("can do for your country"), "{smart:#?}");
    if smart.len() == 2 {
        // (whisper base hears "ask not" as "ask not" or "is not")
        assert!(last.contains("not"), "{smart:#?}");
    }
}

/// Hearing's own threads (VAD, Smart Turn, the speculative decode on the whisper thread) on
/// `clips`, each with 3 s of silence after it, paced as a microphone gives them, with every
/// pause judged unfinished (Smart Turn's threshold 0.99): per turn, the silence on the sample
/// clock before it was decided (ms), Smart Turn's answer, and the final transcript.
fn paced_turns(clips: &[&str], question_ms: u32) -> Vec<(f64, Option<f32>, String)> {
    let cache = model_cache();
    hiwar_speech::onnx::load(&cache.join("onnxruntime/libonnxruntime.so.1.32.0")).expect("ONNX Runtime");
    let mut hc = HearingConfig::new(cache.join("whisper/ggml-base.bin"), cache.join("vad/silero_vad_16k_op15.onnx"));
    hc.smart_turn = Some(cache.join("turn/smart-turn-v3.2-cpu.onnx"));
    let waits = TurnWaits { probe_ms: 180, early_ms: 30, threshold: 0.99, sure: 0.99, question_ms, ..TurnWaits::default() };
    hc.segmenter.turn = Some(waits);
    let mut samples = vec![0.0; 8_000];
    for name in clips {
        let (rate, audio) = read_wav(&clip(name).0);
        assert_eq!(rate, 16_000, "{name}");
        samples.extend(audio);
        samples.extend(std::iter::repeat_n(0.0, at(3.0)));
    }
    // Every turn is decided within the stream (3 s of silence after each clip); its final
    // follows within a few seconds.
    let deadline = Instant::now() + Duration::from_secs_f64(samples.len() as f64 / 16_000.0 + 8.0);
    let hearing = Hearing::start(hc, Source::Paced(PacedSource { samples, rate: 16_000, block: 320 })).expect("hearing");
    let mut ended = std::collections::HashMap::new();
    let mut turns = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(event) = hearing.events.recv_timeout(left) else { break };
        match event {
            HearingEvent::SpeechEnded { utterance, last_voiced, decided_at, turn, .. } => {
                ended.insert(utterance, ((decided_at - last_voiced) as f64 / 16.0, turn));
            }
            HearingEvent::Final { utterance, id, .. } => {
                let (silence, turn) = ended.remove(&id).expect("a final after its end");
                turns.push((silence, turn, utterance.map(|u| u.text).unwrap_or_default()));
            }
            HearingEvent::Failed { reason } => panic!("{reason}"),
            _ => {}
        }
    }
    turns
}

#[test]
fn live_a_question_smart_turn_doubts_ends_on_its_words() {
    // Smart Turn hears the voice, not the words, and doubts espeak-ng's flat questions (ar-office's
    // «ومتى يفتح غدًا؟» p 0.40). When whisper's speculative decode of the words before the pause
    // ends "?" or «؟», a pause judged unfinished ends at turn_question_ms (500) instead of the
    // 1.5 s wait; a statement still waits. Smart Turn is made to doubt every pause here, so
    // each turn shows which wait ended it.
    let turns = paced_turns(&["en-office.wav", "en-passport.wav", "ar-passport-fee.wav"], 500);
    eprintln!("{turns:?}");
    assert_eq!(turns.len(), 3, "{turns:?}");
    for (silence, p, text) in &turns {
        assert!(p.is_some_and(|p| p < 0.99), "judged unfinished: {turns:?}");
        let question = hiwar_speech::text::is_question(text);
        if question {
            // Its words are ready ~0.3 s into the pause; at worst, beside the suite, a second.
            assert!((500.0..1400.0).contains(silence), "a question ended at {silence} ms of silence: {turns:?}");
        } else {
            assert!(*silence >= 1500.0, "a statement ended at {silence} ms of silence: {turns:?}");
        }
    }
    assert!(hiwar_speech::text::is_question(&turns[0].2) && !hiwar_speech::text::is_question(&turns[1].2), "{turns:?}");
    // Without the words (0), every pause judged unfinished waits the 1.5 s.
    let turns = paced_turns(&["en-office.wav"], 0);
    assert!(turns.len() == 1 && turns[0].0 >= 1500.0, "{turns:?}");
}
