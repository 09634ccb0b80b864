//! `hiwar bench soak --turns N`: the whole pipeline, headless, for many turns — recorded
//! questions streamed into hearing (VAD + whisper) at the pace they are spoken, the live loop with its sessions, the mind
//! against the stand-in LLM over HTTP, the voice synthesising every answer, and (unless
//! `--no-render`) the avatar rendered offscreen at a small size for every answer. Memory, file
//! descriptors and threads are sampled every `--every` turns; the exit status says whether
//! they stayed flat.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hiwar_speech::hearing::{self, Source};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::standin::{Behaviour, Standin};
use hiwar_core::bus::{Bus, EventKind};
use hiwar_core::config::Config;
use hiwar_core::speaking::{Output, VoiceOut};
use hiwar_dialogue::live::{LoopSettings, live_loop};
use hiwar_dialogue::mind::Mind;

const CLIPS: [&str; 5] = ["ar-passport.wav", "en-office.wav", "mixed-emirates-id.wav", "ar-office.wav", "en-passport.wav"];
/// A session ends after every this many turns (the loop wipes it after a quiet spell).
const TURNS_PER_SESSION: usize = 10;

/// One reading of the process.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sample {
    pub turn: usize,
    pub rss_mib: f64,
    pub fds: usize,
    /// The descriptors by kind ("socket", "pipe", "anon_inode:[eventfd]", a file's folder…),
    /// so a growth names what grew.
    pub fd_kinds: std::collections::BTreeMap<String, usize>,
    /// Of `fds`, the ends of connections to the stand-in LLM (the client's pooled ones and the
    /// server's): how many the HTTP pool holds depends on timing, not on a leak (see [`run`]).
    pub llm_sockets: usize,
    pub threads: usize,
}

impl Sample {
    /// The descriptors besides the LLM connections' ends: what must not grow.
    pub fn own_fds(&self) -> usize {
        self.fds.saturating_sub(self.llm_sockets)
    }
}

/// `targets` ([`crate::stats::fd_targets`]) by kind.
fn fd_kinds(targets: &[String]) -> std::collections::BTreeMap<String, usize> {
    let mut kinds = std::collections::BTreeMap::new();
    for target in targets {
        // "socket:[123]" and "pipe:[456]" by kind; a file by its folder.
        let kind = match target.split_once(":[") {
            Some(_) if target.starts_with("anon_inode:") => target.clone(),
            Some((kind, _)) => kind.to_string(),
            None => std::path::Path::new(target).parent().map_or_else(|| target.clone(), |p| p.display().to_string()),
        };
        *kinds.entry(kind).or_insert(0) += 1;
    }
    kinds
}

pub fn sample(turn: usize, llm_port: u16) -> Sample {
    // One reading of the descriptors for the count, the kinds and the LLM's share.
    let targets = crate::stats::fd_targets();
    Sample {
        turn,
        rss_mib: crate::stats::rss_mib(std::process::id()),
        fds: targets.len(),
        fd_kinds: fd_kinds(&targets),
        llm_sockets: crate::stats::connection_ends(&targets, llm_port),
        // A directory entry per thread.
        threads: std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count()),
    }
}

static PANICS: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, serde::Serialize)]
struct Report {
    turns: usize,
    answered: usize,
    sessions: u64,
    wall_s: f64,
    rendered_frames: u64,
    panics: u64,
    samples: Vec<Sample>,
    rss_growth_pct: f64,
    /// Growth of the descriptors besides the LLM connections' ends.
    fd_growth: i64,
    /// The most LLM connections' ends a sample saw (at most 4: see [`run`]).
    llm_sockets_max: usize,
    thread_growth: i64,
}

pub fn run(config: &Config, turns: usize, every: usize, no_render: bool, size: (u32, u32), json: bool) -> anyhow::Result<ExitCode> {
    let every = every.max(1);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::Relaxed);
        default_hook(info);
    }));
    let rt = hiwar_core::runtime::runtime()?;
    let _guard = rt.enter();
    let standin = rt.block_on(Standin::start(vec![Behaviour::Answer { text: None, ttft: Duration::from_millis(20), gap: Duration::from_millis(1) }]))?;
    let mut config = config.clone();
    config.llm.base_url = standin.base_url.clone();
    let llm_port = standin.addr.port();
    config.llm.api_key_env.clear();
    config.dialogue.session_ends_after_secs = 3;
    let mind = Arc::new(Mind::from_config(&config)?);
    let voices = hiwar_core::build::voices(&config, true)?;
    let (voice, voice_events) = VoiceOut::start(voices, Output::Null { played: 0 }, None);
    let voice = Arc::new(voice);
    let bus = Bus::new(4096);
    let (blocks_tx, blocks) = std::sync::mpsc::sync_channel::<Vec<f32>>(64);
    let hc = hiwar_dialogue::mind::hearing_config(&config, None)?;
    let hearing = hearing::Hearing::start(hc, Source::Stream { blocks, rate: 16_000 })?;
    let level = Arc::clone(&hearing.level);
    let (tx, rx) = mpsc::unbounded_channel();
    hiwar_dialogue::live::forward(hearing, voice_events, &tx);
    let live =
        rt.spawn(live_loop(Arc::clone(&mind), Arc::clone(&voice), bus.clone(), LoopSettings::from_config(&config), level, rx, tx, CancellationToken::new()));

    // What the renderer draws, and when each turn is over.
    let (said_tx, said_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let sessions = Arc::new(AtomicU64::new(0));
    {
        let mut events = bus.subscribe();
        let sessions = Arc::clone(&sessions);
        rt.spawn(async move {
            while let Ok(e) = events.recv().await {
                match e.kind {
                    EventKind::Said { speech, .. } => {
                        let _ = said_tx.send(speech);
                    }
                    EventKind::Answered { .. } => {
                        let _ = done_tx.send(());
                    }
                    EventKind::Session { started: true } => {
                        sessions.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        });
    }
    let clips: Vec<Vec<f32>> = CLIPS.iter().map(|c| hearing::read_16k(&hiwar_core::assets::assets_dir().join("clips").join(c))).collect::<Result<_, _>>()?;

    let started = Instant::now();
    // The feeder: a question, a pause, wait for the answer; a longer quiet every session.
    let feeder = std::thread::Builder::new().name("soak-feeder".into()).spawn(move || -> (usize, Vec<Sample>) {
        let (mut answered, mut samples) = (0, Vec::new());
        let silence = |secs: f32| vec![0.0f32; (secs * 16_000.0) as usize];
        for turn in 1..=turns {
            let mut audio = clips[(turn - 1) % clips.len()].clone();
            // Quiet after it longer than Smart Turn's wait after an "unfinished" (1.5 s): the
            // feeder sends nothing more until the answer is done.
            audio.extend(silence(2.0));
            // At the pace a person speaks: 20 ms of audio every 20 ms. Streamed faster, hearing
            // ran ahead of whisper and the backlog kept every session from ever ending.
            let spoken = Instant::now();
            for (i, block) in audio.chunks(320).enumerate() {
                if let Some(wait) = Duration::from_millis(20 * (i as u64 + 1)).checked_sub(spoken.elapsed()) {
                    std::thread::sleep(wait);
                }
                if blocks_tx.send(block.to_vec()).is_err() {
                    return (answered, samples);
                }
            }
            if done_rx.recv_timeout(Duration::from_secs(60)).is_ok() {
                answered += 1;
            }
            while done_rx.try_recv().is_ok() {}
            if turn % TURNS_PER_SESSION == 0 {
                // The visitor leaves: quiet until the session ends and is wiped.
                std::thread::sleep(Duration::from_millis(3_500));
            }
            if turn % every == 0 || turn == 1 {
                samples.push(sample(turn, llm_port));
            }
        }
        drop(blocks_tx);
        (answered, samples)
    })?;

    let mut frames = 0u64;
    if !no_render {
        let mut options = hiwar_stage::StageOptions::from_config(&config);
        (options.width, options.height) = size;
        let rate = 22_050;
        let mut off = hiwar_stage::headless::Offscreen::new(&options, hiwar_stage::StageClock::Manual(0, rate), hiwar_stage::headless::Scene::Stage)?;
        let mut clock = 0u64;
        while !feeder.is_finished() {
            let Ok(speech) = said_rx.recv_timeout(Duration::from_millis(100)) else { continue };
            frames += hiwar_stage::headless::perform(&mut off, &speech, &mut clock, 10);
        }
    }
    let (answered, samples) = feeder.join().map_err(|_| anyhow::anyhow!("the feeder panicked"))?;
    let _ = rt.block_on(live);
    let wall_s = started.elapsed().as_secs_f64();

    let first = samples.iter().find(|s| s.turn >= every.min(turns)).or(samples.first()).cloned();
    let last = samples.last().cloned();
    let (rss_growth_pct, fd_growth, thread_growth) = match (&first, &last) {
        (Some(a), Some(b)) => {
            ((b.rss_mib - a.rss_mib) / a.rss_mib.max(1.0) * 100.0, b.own_fds() as i64 - a.own_fds() as i64, b.threads as i64 - a.threads as i64)
        }
        _ => (0.0, 0, 0),
    };
    // The HTTP client keeps one connection to the LLM warm. When a question is asked while the
    // last answer's connection is still finishing (a turn replaced as it ended), hyper-util
    // connects anew, takes the old one when it comes back, and pools the new one too, idle
    // until it expires (50 s): two connections, each with two ends in this process (the
    // stand-in's is here too). More than that is a leak.
    let llm_sockets_max = samples.iter().map(|s| s.llm_sockets).max().unwrap_or(0);
    let report = Report {
        turns,
        answered,
        sessions: sessions.load(Ordering::Relaxed),
        wall_s,
        rendered_frames: frames,
        panics: PANICS.load(Ordering::Relaxed),
        samples,
        rss_growth_pct,
        fd_growth,
        llm_sockets_max,
        thread_growth,
    };
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("## Soak (`hiwar bench soak --turns {turns}{}`)\n", if no_render { " --no-render" } else { "" });
        println!(
            "{answered}/{turns} turns answered in {wall_s:.0} s over {} sessions; {frames} frames rendered at {}×{}; {} panics.\n",
            report.sessions, size.0, size.1, report.panics
        );
        println!("| turn | RSS | fds (of them, LLM connections' ends) | threads |\n|---|---|---|---|");
        for s in &report.samples {
            println!("| {} | {:.0} MiB | {} ({}) | {} |", s.turn, s.rss_mib, s.fds, s.llm_sockets, s.threads);
        }
        println!(
            "\nFrom turn {} to turn {}: RSS {rss_growth_pct:+.1} % (goal ≤ 5 %), fds besides the LLM's connections {fd_growth:+}, threads {thread_growth:+} (goal 0).\n",
            first.map_or(0, |s| s.turn),
            last.map_or(0, |s| s.turn)
        );
    }
    let flat = rss_growth_pct <= 5.0 && fd_growth <= 0 && llm_sockets_max <= 2 * 2 && thread_growth <= 0 && report.panics == 0 && answered == turns;
    Ok(if flat { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
