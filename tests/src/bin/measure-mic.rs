//! Hearing through real-time devices, measured: each clip is played into a private
//! PulseAudio's "microphone" `--runs` times while `hiwar transcribe --mic` listens, and the word
//! error rate of each final transcript is printed with the distribution — the figures the
//! microphone tests' bounds are set from (docs/benchmarks.md). `--busy` keeps one core busy
//! with a `nice -n 19` loop, as a loaded CI machine would.
//!
//! `cargo run -p hiwar-tests --bin measure-mic -- [--runs 20] [--busy] CLIP…` (clips from
//! assets/clips, e.g. en-passport.wav).

use std::process::{Command, Stdio};
use std::time::Duration;

use hiwar_speech::text::word_error_rate;
use hiwar_tests::{Pulse, clip, hiwar, lines_of, model_cache, wait_for};

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut runs, mut busy, mut clips) = (20usize, false, Vec::new());
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|n| n.parse().ok()).expect("--runs N"),
            "--busy" => busy = true,
            other => clips.push(other.to_string()),
        }
    }
    assert!(!clips.is_empty(), "usage: measure-mic [--runs N] [--busy] CLIP…");
    let mut loader = busy.then(|| Command::new("nice").args(["-n", "19", "sh", "-c", "while :; do :; done"]).spawn().expect("busy loop"));
    for name in &clips {
        let (path, said) = clip(name);
        let mut wers = Vec::new();
        for run in 1..=runs {
            let pulse = Pulse::start(&["mic"]);
            let mut cmd = hiwar(&model_cache());
            pulse.apply(&mut cmd);
            let mut child = cmd.args(["transcribe", "--mic"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn hiwar");
            let (out, err) = (lines_of(child.stdout.take().expect("stdout")), lines_of(child.stderr.take().expect("stderr")));
            wait_for(&err, Duration::from_secs(60), "microphone ready", |l| l.starts_with("microphone ready"));
            // PulseAudio's ALSA plugin delivers its first capture ~1.7 s after the stream starts.
            std::thread::sleep(Duration::from_secs(3));
            pulse.play("mic", &path);
            let heard = out.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
            let _ = child.kill();
            let _ = child.wait();
            let wer = word_error_rate(&said, heard.trim_start_matches("(en)").trim_start_matches("(ar)"));
            println!("{name} run {run:>2}: WER {wer:.2}  {heard}");
            wers.push(wer);
        }
        wers.sort_by(f64::total_cmp);
        let mean = wers.iter().sum::<f64>() / wers.len() as f64;
        let mut counts: Vec<(String, usize)> = Vec::new();
        for w in &wers {
            let k = format!("{w:.2}");
            match counts.iter_mut().find(|(v, _)| *v == k) {
                Some((_, n)) => *n += 1,
                None => counts.push((k, 1)),
            }
        }
        let dist = counts.iter().map(|(v, n)| format!("{v}×{n}")).collect::<Vec<_>>().join(", ");
        println!(
            "{name}{}: {runs} runs, WER mean {mean:.3}, median {:.2}, worst {:.2}; distribution {dist}",
            if busy { " (busy core)" } else { "" },
            wers[wers.len() / 2],
            wers[wers.len() - 1]
        );
    }
    if let Some(l) = loader.as_mut() {
        let _ = l.kill();
        let _ = l.wait();
    }
}
