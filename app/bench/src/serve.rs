//! `hiwar bench serve`: the WebSocket server measured from real clients (tokio-tungstenite) on
//! loopback — idle sessions and their memory, concurrent text turns against real time, and the
//! server path's added latency against the same turn in-process.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use hiwar_core::bus::Bus;
use hiwar_core::config::Config;
use hiwar_core::speaking::{Output, VoiceEvent, VoiceOut};
use hiwar_dialogue::mind::Mind;
use hiwar_dialogue::turn::answer_turn;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Resident memory of process `pid` now (VmRSS), MiB.
use crate::stats::{percentile, rss_mib};

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn open(addr: &str) -> anyhow::Result<Ws> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await?;
    ws.send(Message::Text(r#"{"type":"hello","v":1,"lang":"auto"}"#.into())).await?;
    while let Some(m) = ws.next().await {
        if let Message::Text(t) = m?
            && t.contains("\"ready\"")
        {
            break;
        }
    }
    Ok(ws)
}

/// One text turn: (ms to the first audio frame, audio seconds, whether every chunk arrived
/// before it was due if playback began at the first one).
async fn turn(ws: &mut Ws, question: &str) -> anyhow::Result<(f64, f64, bool)> {
    let sent = Instant::now();
    ws.send(Message::Text(serde_json::json!({"type": "text", "v": 1, "text": question}).to_string().into())).await?;
    let (mut first, mut rate, mut on_time, mut samples) = (None::<Instant>, 22_050.0, true, 0u64);
    let mut this_turn = None;
    while let Some(m) = ws.next().await {
        let Message::Text(t) = m? else { continue };
        let v: serde_json::Value = serde_json::from_str(&t)?;
        if std::env::var_os("BENCH_SERVE_DEBUG").is_some() {
            eprintln!("{}", t.chars().take(120).collect::<String>());
        }
        match v["type"].as_str() {
            Some("transcript") => this_turn = v["turn"].as_u64(),
            _ if this_turn.is_none() || v["turn"].as_u64() != this_turn => {}
            Some("audio") => {
                let now = Instant::now();
                let first = *first.get_or_insert(now);
                rate = v["rate"].as_f64().unwrap_or(rate);
                let due = first + Duration::from_secs_f64(v["start"].as_f64().unwrap_or(0.0) / rate);
                on_time &= now <= due + Duration::from_millis(20);
                samples += v["samples"].as_u64().unwrap_or(0);
            }
            Some("end_of_turn") => break,
            _ => {}
        }
    }
    let first_ms = first.map_or(f64::NAN, |f| (f - sent).as_secs_f64() * 1e3);
    Ok((first_ms, samples as f64 / rate, on_time))
}

/// One spoken turn in a session of its own: a recorded question streamed as microphone audio
/// (16 kHz PCM16 in 100 ms frames, then a second of silence), `audio_end`, and everything up to
/// the answer's `end_of_turn`: whether a final transcript came.
async fn spoken_turn(addr: &str, samples: &[f32]) -> anyhow::Result<bool> {
    let mut ws = open(addr).await?;
    ws.send(Message::Text(r#"{"type":"audio_start","v":1,"rate":16000}"#.into())).await?;
    let pcm: Vec<u8> = samples.iter().chain(std::iter::repeat_n(&0.0, 16_000)).flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes()).collect();
    for frame in pcm.chunks(3_200) {
        ws.send(Message::Binary(frame.to_vec().into())).await?;
    }
    ws.send(Message::Text(r#"{"type":"audio_end","v":1}"#.into())).await?;
    let mut heard = false;
    while let Some(m) = tokio::time::timeout(Duration::from_secs(60), ws.next()).await?.transpose()? {
        let Message::Text(t) = m else { continue };
        let v: serde_json::Value = serde_json::from_str(&t)?;
        heard |= v["type"] == "transcript" && v["final"] == true;
        if v["type"] == "error" {
            eprintln!("audio session: {t}");
        }
        if v["type"] == "end_of_turn" || (v["type"] == "error" && !heard) {
            break;
        }
    }
    let _ = ws.close(None).await;
    Ok(heard)
}

/// A value from the server's /metrics (the first line starting with `name`); NaN if absent.
async fn metric(addr: &str, name: &str) -> f64 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut body = String::new();
    if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
        let _ = s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await;
        let _ = s.read_to_string(&mut body).await;
    }
    body.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

/// A new client arriving now: "admitted", or "refused (REASON)" from its close frame.
async fn arrival(addr: &str) -> String {
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await else { return "no upgrade".into() };
    let _ = ws.send(Message::Text(r#"{"type":"hello","v":1,"lang":"auto"}"#.into())).await;
    let seen = loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.contains("\"ready\"") => break "admitted".to_string(),
            Some(Ok(Message::Close(f))) => {
                let reason = f.map(|f| f.reason.to_string()).unwrap_or_default();
                break format!("refused ({})", reason.split(':').next().unwrap_or("").trim());
            }
            Some(Ok(_)) => {}
            _ => break "dropped".into(),
        }
    };
    let _ = ws.close(None).await;
    seen
}

const QUESTIONS: [&str; 4] = ["متى يفتح المركز يوم الجمعة؟", "How much is a passport renewal?", "أبغى أجدد الـ Emirates ID", "Where can I park?"];

pub fn run(config: &Config, idle: usize, reps: usize) -> anyhow::Result<ExitCode> {
    // Sockets for the idle sessions, on both sides.
    let _ = std::process::Command::new("prlimit").args(["--pid", &std::process::id().to_string(), "--nofile=8192:"]).status();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = format!("127.0.0.1:{port}");
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["serve", "--bind", &addr])
        .env("HIWAR_SERVE_MAX_SESSIONS", (idle + 64).to_string())
        .env("HIWAR_SERVE_IDLE_TIMEOUT_SECS", "3600")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some(c) = &config.source {
        cmd.arg("--config").arg(c);
    }
    let server = Child(cmd.spawn()?);
    let pid = server.0.id();
    let rt = hiwar_core::runtime::runtime()?;
    println!("## WebSocket server (`hiwar bench serve`)\n");
    rt.block_on(async {
        let started = Instant::now();
        while tokio::net::TcpStream::connect(&addr).await.is_err() {
            anyhow::ensure!(started.elapsed() < Duration::from_secs(60), "hiwar serve did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Warm the voice and the mind once.
        let mut warm = open(&addr).await?;
        turn(&mut warm, QUESTIONS[0]).await?;
        // A cold first synthesis may send a chunk late: new sessions are admitted 3 s after.
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        let base = rss_mib(pid);

        // 1. Idle sessions.
        let mut held = Vec::with_capacity(idle);
        let t = Instant::now();
        for _ in 0..idle {
            held.push(open(&addr).await?);
        }
        let opened_s = t.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let with_idle = rss_mib(pid);
        println!("### Idle sessions\n");
        println!("| sessions | server RSS | per session | opened in |");
        println!("|---|---|---|---|");
        println!("| 0 (after one turn) | {base:.0} MiB | — | — |");
        println!("| {idle} | {with_idle:.0} MiB | {:.1} KiB | {opened_s:.1} s |\n", (with_idle - base) * 1024.0 / idle.max(1) as f64);
        drop(held);

        // 2. Concurrent turns against real time.
        println!("### Concurrent text turns against real time\n");
        println!("Each client asks, then the next question as soon as its answer is in; a turn is \"real time\" when every audio chunk");
        println!(
            "arrives before it is due (playback starting at the first chunk, 20 ms of slack). {} synthesis thread(s), {} answer(s)",
            config.serve.voice_threads, config.serve.turns_per_voice_thread
        );
        println!("speaking at once per thread (`serve.turns_per_voice_thread`): answers past that wait for a voice. \"Late\" is the");
        println!("server's own count of chunks sent after the client's playback would have run out; a new client arrives 1.5 s into each run.\n");
        println!("| concurrent sessions | turns | real time | first audio p50 | p95 | waited for a voice | late chunks (server) | a new client then |");
        println!("|---|---|---|---|---|---|---|---|");
        for n in [1usize, 2, 4, 6, 8, 12, 16, 24] {
            // The last run's busy hold (3 s) passes before this one's clients connect.
            tokio::time::sleep(Duration::from_millis(3_500)).await;
            let (waited_before, late_before) =
                (metric(&addr, "hiwar_stage_ms_count{stage=\"voice_wait\"}").await, metric(&addr, "hiwar_chunks_late_total").await);
            let mut clients = Vec::new();
            for _ in 0..n {
                clients.push(open(&addr).await?);
            }
            let tasks: Vec<_> = clients
                .into_iter()
                .enumerate()
                .map(|(i, mut ws)| {
                    tokio::spawn(async move {
                        let mut out = Vec::new();
                        for k in 0..reps {
                            out.push(turn(&mut ws, QUESTIONS[(i + k) % QUESTIONS.len()]).await);
                        }
                        out
                    })
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            let newcomer = arrival(&addr).await;
            let mut results = Vec::new();
            for t in tasks {
                results.extend(t.await?.into_iter().flatten());
            }
            let firsts: Vec<f64> = results.iter().map(|r| r.0).collect();
            let on_time = results.iter().filter(|r| r.2).count();
            let waited = metric(&addr, "hiwar_stage_ms_count{stage=\"voice_wait\"}").await - waited_before;
            let late = metric(&addr, "hiwar_chunks_late_total").await - late_before;
            println!(
                "| {n} | {} | {on_time} of {} | {:.0} ms | {:.0} ms | {waited:.0} | {late:.0} | {newcomer} |",
                results.len(),
                results.len(),
                percentile(&firsts, 0.5),
                percentile(&firsts, 0.95)
            );
        }

        // 3. Memory after microphone sessions and typed turns (each audio session runs its own
        // VAD and whisper on the server).
        let clips: Vec<Vec<f32>> = ["en-office.wav", "ar-friday-hours.wav", "mixed-emirates-id.wav", "en-traffic-fine.wav", "ar-passport-fee.wav"]
            .iter()
            .map(|c| hiwar_speech::hearing::read_16k(&hiwar_core::assets::assets_dir().join("clips").join(c)))
            .collect::<Result<_, _>>()?;
        println!("\n### Memory after microphone sessions and typed turns\n");
        println!("Audio sessions one after another, each a recorded question (five clips: English, Arabic, mixed) streamed as");
        println!("microphone audio and answered; then typed turns on one session. Server RSS right after each step, and");
        println!("at rest (the server gives its free memory back after 5 s without activity; read 11 s later).\n");
        println!("| after | server RSS | at rest | answers heard |");
        println!("|---|---|---|---|");
        let rested = || async {
            tokio::time::sleep(Duration::from_secs(11)).await;
            rss_mib(pid)
        };
        println!("| the idle sessions closed | {:.0} MiB | {:.0} MiB | — |", rss_mib(pid), rested().await);
        let mut heard = 0;
        for (i, step) in [5usize, 10, 15].iter().enumerate() {
            for k in 0..5 {
                heard += usize::from(spoken_turn(&addr, &clips[(i * 5 + k) % clips.len()]).await?);
            }
            println!("| {step} audio sessions | {:.0} MiB | {:.0} MiB | {heard} of {step} |", rss_mib(pid), rested().await);
        }
        for k in 0..100 {
            turn(&mut warm, QUESTIONS[k % QUESTIONS.len()]).await?;
            if (k + 1) % 50 == 0 {
                println!("| 15 audio sessions and {} typed turns | {:.0} MiB | {:.0} MiB | — |", k + 1, rss_mib(pid), rested().await);
            }
        }
        for k in 0..5 {
            heard += usize::from(spoken_turn(&addr, &clips[k % clips.len()]).await?);
        }
        println!("| 20 audio sessions and 100 typed turns | {:.0} MiB | {:.0} MiB | {heard} of 20 |\n", rss_mib(pid), rested().await);

        // 4. The server path against the same turn in-process.
        println!("\n### Added latency of the server path\n");
        let mind = Mind::from_config(config)?;
        let voices = hiwar_core::build::voices(config, true)?;
        let (voice, mut spoken) = VoiceOut::start(voices, Output::Null { played: 0 }, None);
        let bus = Bus::new(64);
        let (mut local, mut remote) = (Vec::new(), Vec::new());
        for k in 0..reps * 4 {
            let q = QUESTIONS[k % QUESTIONS.len()];
            let lang = hiwar_dialogue::mind::knowledge::lang_of(q);
            let t = Instant::now();
            let turn_id = k as u64 + 1;
            answer_turn(&mind, &voice, &bus, turn_id, q, lang, Instant::now(), Duration::from_secs(2), CancellationToken::new()).await;
            let mut first = None;
            while let Some(e) = spoken.recv().await {
                match e {
                    VoiceEvent::Spoken(s) if s.turn == turn_id && first.is_none() => first = Some(s.queued_at),
                    VoiceEvent::TurnEnd { turn, .. } if turn == turn_id => break,
                    _ => {}
                }
            }
            local.push(first.map_or(f64::NAN, |f| (f - t).as_secs_f64() * 1e3));
            remote.push(turn(&mut warm, q).await?.0);
        }
        let diffs: Vec<f64> = remote.iter().zip(&local).map(|(r, l)| r - l).collect();
        println!("Text sent → first audio: over the WebSocket (received by the client) against in-process (the chunk queued by");
        println!("the voice worker), the same questions alternating, {} each.\n", local.len());
        println!("| path | p50 | p95 |");
        println!("|---|---|---|");
        println!("| in-process | {:.1} ms | {:.1} ms |", percentile(&local, 0.5), percentile(&local, 0.95));
        println!("| WebSocket on loopback | {:.1} ms | {:.1} ms |", percentile(&remote, 0.5), percentile(&remote, 0.95));
        println!("| **added by the server path** | **{:.1} ms** | {:.1} ms |\n", percentile(&diffs, 0.5), percentile(&diffs, 0.95));
        anyhow::Ok(())
    })?;
    drop(server);
    Ok(ExitCode::SUCCESS)
}
