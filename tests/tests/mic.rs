//! Live hearing from a microphone through cpal and ALSA, on a real-time paced virtual device
//! (a private PulseAudio null sink whose monitor is the default source), including the
//! microphone disappearing and coming back.

use std::process::Stdio;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use hiwar_speech::text::word_error_rate;
use hiwar_tests::{Pulse, clip, hiwar, lines_of, model_cache, wait_for};

struct Live {
    child: std::process::Child,
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `hiwar transcribe --mic` against `pulse`: the process and its stdout and stderr lines.
fn listen(pulse: &Pulse) -> (Live, Receiver<String>, Receiver<String>) {
    let mut cmd = hiwar(&model_cache());
    pulse.apply(&mut cmd);
    let mut child = cmd.args(["transcribe", "--mic"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn hiwar");
    let (out, err) = (lines_of(child.stdout.take().expect("stdout")), lines_of(child.stderr.take().expect("stderr")));
    (Live { child }, out, err)
}

#[test]
fn speech_into_the_microphone_is_transcribed_and_survives_the_device_going_away() {
    let pulse = Pulse::start(&["mic"]);
    let (_live, out, err) = listen(&pulse);
    let final_line = |l: &str| l.starts_with("(en)") || l.starts_with("(ar)");

    wait_for(&err, Duration::from_secs(20), "microphone ready", |l| l.starts_with("microphone ready"));
    // PulseAudio's ALSA plugin delivers its first capture ~1.7 s after the stream starts.
    std::thread::sleep(Duration::from_secs(3));
    let (path, said) = clip("en-passport.wav");
    pulse.play("mic", &path);
    let heard = wait_for(&out, Duration::from_secs(20), "a final transcript", final_line);
    let wer = word_error_rate(&said, heard.trim_start_matches("(en)"));
    assert!(heard.starts_with("(en)") && wer <= 0.2, "WER {wer:.2}: {heard}");
    // Partials came first, on stderr, while the clip played.
    wait_for(&err, Duration::from_secs(2), "a partial", |l| l.starts_with("… (en)"));

    // Unplug: the only source goes away; hiwar says so and keeps running.
    pulse.pactl(&["unload-module", &pulse.module_of("mic")]);
    wait_for(&err, Duration::from_secs(15), "microphone lost", |l| l.starts_with("microphone lost"));
    // Plug it back in: hiwar reopens it by itself and hears again.
    pulse.pactl(&["load-module", "module-null-sink", "sink_name=mic"]);
    pulse.pactl(&["set-default-source", "mic.monitor"]);
    wait_for(&err, Duration::from_secs(20), "microphone ready again", |l| l.starts_with("microphone ready"));
    std::thread::sleep(Duration::from_secs(3));
    let (path, said) = clip("en-office.wav");
    pulse.play("mic", &path);
    let heard = wait_for(&out, Duration::from_secs(20), "a final transcript after reconnecting", final_line);
    let wer = word_error_rate(&said, heard.trim_start_matches("(en)"));
    assert!(wer <= 0.2, "WER {wer:.2}: {heard}");
}

#[test]
fn silence_from_the_microphone_produces_nothing() {
    let pulse = Pulse::start(&["quiet"]);
    let (_live, out, err) = listen(&pulse);
    wait_for(&err, Duration::from_secs(20), "microphone ready", |l| l.starts_with("microphone ready"));
    // Six seconds of the null source's digital silence: whisper base alone says "you" here.
    std::thread::sleep(Duration::from_secs(6));
    assert!(out.try_recv().is_err(), "a transcript out of silence");
}
