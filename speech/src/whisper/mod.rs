//! Whisper speech recognition through whisper-rs (whisper.cpp): one call per utterance.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use std::cell::RefCell;

use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState};

use crate::{Error, Result};

mod greedy;

/// Sample rate whisper expects.
pub const SAMPLE_RATE: u32 = 16_000;

/// Which language to decode in.
#[derive(Debug, Clone, Copy)]
pub enum Language<'a> {
    /// Force this language (ISO 639-1, e.g. `ar`).
    Fixed(&'a str),
    /// Detect, but choose only among these (so short Arabic is not labelled Farsi or Urdu).
    Among(&'a [&'a str]),
}

/// How to decode one utterance.
#[derive(Debug, Clone)]
pub struct DecodeOptions<'a> {
    pub language: Language<'a>,
    /// Domain words to bias the decoder towards (names, services, places).
    pub initial_prompt: Option<&'a str>,
    /// Above this no-speech probability a segment is dropped.
    pub no_speech_threshold: f32,
    /// Encode only as many 20 ms frames as the audio needs (plus a margin) instead of the
    /// full 30 s window: several times faster on short utterances.
    pub short_window: bool,
    /// Whisper's temperature fallback: when a decode looks degenerate — a repetition loop
    /// (entropy of its last 32 tokens under 2.4, whisper.cpp's stand-in for the reference's
    /// compression ratio over 2.4) or a mean token log-probability under `fallback_logprob` —
    /// decode again by sampling at temperature 0.2, 0.4, … 1.0 (one sample each when greedy).
    /// Costs nothing on a clean decode; not deterministic when it fires.
    pub temperature_fallback: bool,
    /// The fallback's log-probability test: a decode whose mean token log-probability is under
    /// this is decoded again (the reference's −1.0). `f32::NEG_INFINITY` resamples loops only.
    pub fallback_logprob: f32,
    /// Beam width; 1 decodes greedily.
    pub beam_size: usize,
    pub threads: usize,
    /// Asked between the decoder's steps: `true` abandons the decode ([`Error::Interrupted`]).
    pub interrupt: Option<Interrupt<'a>>,
    /// A greedy decode in a fixed language checks the tokens of the last such decode of audio
    /// that opens the same way (a partial of the same utterance) as a draft, in one decoder
    /// call, and picks every token itself as before (see `greedy::Feeder`).
    pub draft: bool,
}

/// A question whisper.cpp asks between compute steps: should this decode be abandoned? (A
/// provisional partial, when the speech it was transcribing pauses and the final is wanted.)
#[derive(Clone, Copy)]
pub struct Interrupt<'a>(pub &'a dyn Fn() -> bool);

impl std::fmt::Debug for Interrupt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Interrupt")
    }
}

thread_local! {
    /// Set while this thread runs a decode that may be abandoned: whisper.cpp then reports
    /// "failed to encode/decode" as an error, which it is not when the decode was abandoned (a
    /// real failure still returns its error to the caller).
    static ABANDONABLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Set while this thread primes an encoding state's width ([`WhisperModel::encoder_at`]):
    /// whisper.cpp reports the primer's planned stop as an error.
    static PRIMING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// whisper.cpp's encoder-begin callback for a primer: stop before encoding (the encoder width
/// is set by then).
#[allow(unsafe_code, reason = "whisper.cpp's encoder-begin callback is a C function pointer")]
unsafe extern "C" fn stop_before_encoding(_: *mut whisper_rs_sys::whisper_context, _: *mut whisper_rs_sys::whisper_state, _: *mut std::ffi::c_void) -> bool {
    false
}

/// Routes whisper.cpp's log through `tracing` (target `whisper`), as whisper-rs's hook does,
/// except that the failure an abandoned decode reports is logged at debug level.
#[allow(unsafe_code, reason = "whisper.cpp's log callback is a C function pointer")]
fn install_whisper_log() {
    unsafe extern "C" fn log(level: whisper_rs_sys::ggml_log_level, text: *const std::ffi::c_char, _: *mut std::ffi::c_void) {
        if text.is_null() {
            return;
        }
        // SAFETY: whisper.cpp passes a NUL-terminated string, valid for this call.
        let text = unsafe { std::ffi::CStr::from_ptr(text) }.to_string_lossy();
        let text = text.trim();
        match level {
            whisper_rs_sys::ggml_log_level_GGML_LOG_LEVEL_ERROR if PRIMING.get() => tracing::trace!(target: "whisper", "{text} (a primer)"),
            whisper_rs_sys::ggml_log_level_GGML_LOG_LEVEL_ERROR if !ABANDONABLE.get() => tracing::error!(target: "whisper", "{text}"),
            whisper_rs_sys::ggml_log_level_GGML_LOG_LEVEL_ERROR => tracing::debug!(target: "whisper", "{text} (an abandoned decode)"),
            whisper_rs_sys::ggml_log_level_GGML_LOG_LEVEL_WARN => tracing::warn!(target: "whisper", "{text}"),
            whisper_rs_sys::ggml_log_level_GGML_LOG_LEVEL_INFO => tracing::info!(target: "whisper", "{text}"),
            _ => tracing::debug!(target: "whisper", "{text}"),
        }
    }
    // SAFETY: `log` is a plain function that lives for the program; whisper.cpp keeps only it
    // and the (null) user data.
    unsafe { whisper_rs_sys::whisper_log_set(Some(log), std::ptr::null_mut()) };
}

/// whisper.cpp's abort callback: `data` points at the `&dyn Fn() -> bool` of an [`Interrupt`],
/// on the stack of the call that runs the decode.
#[allow(unsafe_code, reason = "whisper.cpp's abort callback is a C function pointer with a user-data pointer")]
unsafe extern "C" fn ask_interrupt(data: *mut std::ffi::c_void) -> bool {
    // SAFETY: `decode` and `encoding` pass a pointer to a `&dyn Fn() -> bool` that outlives
    // the whisper.cpp calls that may call this callback (`state.full`, an encode).
    let ask = unsafe { &*(data as *const &dyn Fn() -> bool) };
    ask()
}

#[allow(unsafe_code, reason = "a function hiwar adds to whisper.cpp (speech/whisper-cpp/patch.cmake, change 3)")]
unsafe extern "C" {
    /// Sets the abort callback of this thread's encodes that take none (`whisper_encode_with_state`,
    /// language detection); whisper.cpp then asks it between two of the encoder's operations.
    fn hiwar_whisper_encode_abort(callback: whisper_rs_sys::ggml_abort_callback, data: *mut std::ffi::c_void);
}

/// Runs `encode`, a call that encodes outside `whisper_full`, so that `interrupt` stops it
/// between two of the encoder's operations (`Error::Interrupted`) rather than after all of
/// them: a partial that a pause made useless gives the whisper thread to the final at once.
fn encoding<T>(interrupt: Option<Interrupt<'_>>, encode: impl FnOnce() -> Result<T>) -> Result<T> {
    let Some(Interrupt(ask)) = interrupt else { return encode() };
    /// Takes the callback away however `encode` ends: it points into this stack frame.
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            ABANDONABLE.set(false);
            // SAFETY: sets no callback.
            #[allow(unsafe_code, reason = "see hiwar_whisper_encode_abort")]
            unsafe {
                hiwar_whisper_encode_abort(None, std::ptr::null_mut())
            };
        }
    }
    // SAFETY: `ask` lives on this stack frame until `Clear` takes the callback away again, and
    // whisper.cpp calls it only from this thread's encodes meanwhile.
    #[allow(unsafe_code, reason = "see hiwar_whisper_encode_abort")]
    unsafe {
        hiwar_whisper_encode_abort(Some(ask_interrupt), &ask as *const &dyn Fn() -> bool as *mut std::ffi::c_void)
    };
    ABANDONABLE.set(true);
    let clear = Clear;
    let r = encode();
    drop(clear);
    match r {
        Err(_) if ask() => Err(Error::Interrupted),
        r => r,
    }
}

impl DecodeOptions<'_> {
    /// [`DecodeOptions::fallback_logprob`] as whisper.cpp's `logprob_thold`, which it compares
    /// with `<`: the lowest float turns the test off.
    fn logprob_threshold(&self) -> f32 {
        if self.fallback_logprob.is_finite() { self.fallback_logprob } else { f32::MIN }
    }
}

impl Default for DecodeOptions<'_> {
    fn default() -> Self {
        DecodeOptions {
            language: Language::Among(&["ar", "en"]),
            initial_prompt: None,
            no_speech_threshold: 0.6,
            short_window: true,
            temperature_fallback: true,
            fallback_logprob: -1.0,
            beam_size: 1,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            interrupt: None,
            draft: true,
        }
    }
}

/// One decoded word with its time in seconds from the start of the audio given.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    pub text: String,
    pub start: f32,
    pub end: f32,
    pub probability: f32,
}

/// One decoded segment; times are seconds from the start of the audio given.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start: f32,
    pub end: f32,
    pub text: String,
    pub no_speech_probability: f32,
    pub words: Vec<Word>,
}

/// A transcription of one piece of audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// ISO 639-1 code of the language whisper decoded in.
    pub lang: String,
    /// Probability of that language among those allowed (1.0 when forced).
    pub lang_probability: f32,
    pub segments: Vec<Segment>,
    /// Mean log-probability of the text tokens decoded (before any segment was dropped);
    /// `f32::NEG_INFINITY` when none was.
    pub avg_logprob: f32,
    /// Text tokens decoded that hold a letter or a digit (punctuation left out), before any
    /// segment was dropped.
    pub tokens: usize,
    /// The decode looks degenerate by the fallback's own tests: a mean log-probability under
    /// [`DecodeOptions::fallback_logprob`], the token budget reached, or a repetition loop
    /// collapsed.
    pub degenerate: bool,
    /// The decode ran away: it reached the token budget or a repetition loop was collapsed out
    /// of it (evidence against the language it was decoded in).
    pub looped: bool,
    /// It reached the token budget: what it holds past the words said is invention.
    pub exhausted: bool,
}

impl Transcript {
    fn empty() -> Transcript {
        Transcript {
            lang: String::new(),
            lang_probability: 0.0,
            segments: Vec::new(),
            avg_logprob: f32::NEG_INFINITY,
            tokens: 0,
            degenerate: false,
            looped: false,
            exhausted: false,
        }
    }

    pub fn text(&self) -> String {
        self.segments.iter().map(|s| s.text.trim()).filter(|t| !t.is_empty()).collect::<Vec<_>>().join(" ")
    }

    /// Mean probability of the decoded words (0 when nothing was decoded).
    pub fn confidence(&self) -> f32 {
        let words: Vec<f32> = self.segments.iter().flat_map(|s| s.words.iter().map(|w| w.probability)).collect();
        if words.is_empty() { 0.0 } else { words.iter().sum::<f32>() / words.len() as f32 }
    }
}

/// A loaded whisper model; keep it and reuse it (loading costs far more than a short decode).
/// One model serves one thread at a time (it is `Send`, not `Sync`); the weights under it are
/// shared by every model loaded from the same file while any of them (or a [`Preloaded`])
/// lives — whisper.cpp keeps a decode's own memory in its state, so each model decodes on
/// its own states over the one set of weights.
pub struct WhisperModel {
    ctx: Arc<WhisperContext>,
    /// The decoding state, reused across calls, and the encoder width it was last run with.
    state: RefCell<Option<(WhisperState, i32)>>,
    /// The state language detection and shared decodes run on (made on first use). Detection
    /// on the decoding state left it unable to `full`: the next produced no segment at all, so
    /// an utterance whose language was detected came out empty (5 of 10 Arabic and 2 of 5
    /// English held-out clips).
    encoder: RefCell<Option<Encoder>>,
    /// Times this model has encoded audio (see [`WhisperModel::encodings`]).
    encodings: std::cell::Cell<u64>,
    /// Draft tokens fed to the decoder, and of them the ones it picked (see `greedy::Feeder`).
    drafted: std::cell::Cell<(u64, u64)>,
    /// Decoder calls of the greedy decodes after their prompts (see [`WhisperModel::decoder_calls`]).
    calls: std::cell::Cell<u64>,
}

impl std::fmt::Debug for WhisperModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperModel").finish_non_exhaustive()
    }
}

/// The weights of the model at `path`, loaded once while anyone holds them: the same file
/// (path, size and modification time) gives the same weights; a file replaced on disk loads
/// anew.
fn shared_weights(path: &Path) -> Result<Arc<WhisperContext>> {
    type Loaded = Vec<((PathBuf, u64, Option<SystemTime>), Weak<WhisperContext>)>;
    static LOADED: Mutex<Loaded> = Mutex::new(Vec::new());
    static HOOKS: std::sync::Once = std::sync::Once::new();
    // whisper.cpp and ggml log to stderr by default; route them through `tracing` (whisper's
    // own through hiwar's hook, which knows an abandoned decode is not an error).
    HOOKS.call_once(|| {
        whisper_rs::install_logging_hooks();
        install_whisper_log();
    });
    let Ok(meta) = std::fs::metadata(path) else {
        return Err(Error::ModelMissing { name: "whisper".into(), path: path.to_path_buf(), fix: "hiwar models fetch whisper-base".into() });
    };
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    // Held while loading, so two threads asking at once load it once.
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    loaded.retain(|(_, w)| w.strong_count() > 0);
    if let Some(ctx) = loaded.iter().find(|(k, _)| *k == key).and_then(|(_, w)| w.upgrade()) {
        return Ok(ctx);
    }
    let path_str = path.to_str().ok_or_else(|| Error::Whisper(format!("{} is not UTF-8", path.display())))?;
    let ctx = Arc::new(
        WhisperContext::new_with_params(path_str, WhisperContextParameters::default())
            .map_err(|e| Error::Whisper(format!("cannot load {}: {e}", path.display())))?,
    );
    loaded.push((key, Arc::downgrade(&ctx)));
    Ok(ctx)
}

/// A whisper model's weights kept loaded while this lives (a server keeps them between its
/// audio sessions, so a session neither loads them again nor leaves the allocator a
/// model-sized hole when it ends).
#[derive(Clone)]
pub struct Preloaded {
    _weights: Arc<WhisperContext>,
}

impl std::fmt::Debug for Preloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preloaded").finish_non_exhaustive()
    }
}

/// Loads the model at `path` (or finds it loaded) and keeps it loaded while the result lives.
pub fn preload(path: &Path) -> Result<Preloaded> {
    shared_weights(path).map(|w| Preloaded { _weights: w })
}

impl WhisperModel {
    pub fn load(path: &Path) -> Result<WhisperModel> {
        Ok(WhisperModel {
            ctx: shared_weights(path)?,
            state: RefCell::new(None),
            encoder: RefCell::new(None),
            encodings: std::cell::Cell::new(0),
            drafted: std::cell::Cell::new((0, 0)),
            calls: std::cell::Cell::new(0),
        })
    }

    /// Whisper's tokens for `text` (none when it cannot tokenize it).
    fn tokenize(&self, text: &str) -> Vec<whisper_rs::WhisperTokenId> {
        if text.is_empty() {
            return Vec::new();
        }
        self.ctx.tokenize(text, text.len() + 8).unwrap_or_default()
    }

    /// How many tokens whisper's tokenizer makes of `text` (0 when it cannot).
    pub fn token_count(&self, text: &str) -> usize {
        self.tokenize(text).len()
    }

    /// How many times this model has run the encoder on audio (each `whisper_full` call counts
    /// one; the temperature fallback's resamples within it, and the encoding state's priming
    /// at a new width, are not counted): what a shared encoding saves.
    pub fn encodings(&self) -> u64 {
        self.encodings.get()
    }

    /// Forgets what the last decodes heard (a visitor's session ended): the drafts, which hold
    /// their tokens, are zeroed, and whisper's states, which hold the last audio's spectrogram,
    /// encoding and text, are freed. The encoding state is made anew now, while no one speaks
    /// (the next visitor's first decode would otherwise make it, and the vocabulary's
    /// suppression lists with it); whisper_full's is made by the next decode that needs it.
    pub fn forget(&self) {
        let mut slot = self.encoder.borrow_mut();
        if let Some(encoder) = slot.as_mut() {
            for draft in &mut encoder.drafts {
                draft.tokens.fill(0);
            }
            encoder.drafts.clear();
            match self.ctx.create_state() {
                Ok(fresh) => {
                    (encoder.state, encoder.width, encoder.encoded) = (fresh, 0, None);
                }
                Err(_) => *slot = None,
            }
        }
        self.state.borrow_mut().take();
    }

    /// Draft tokens fed to the decoder so far, and of them the ones it picked: each of those
    /// spared a decoder call.
    pub fn draft_tokens(&self) -> (u64, u64) {
        self.drafted.get()
    }

    /// Decoder calls made by hiwar's greedy decodes so far, their prompts' left out: a call
    /// reads all the decoder's weights, for one token or a draft's dozens.
    pub fn decoder_calls(&self) -> u64 {
        self.calls.get()
    }

    fn count_encoding(&self) {
        self.encodings.set(self.encodings.get() + 1);
    }

    /// Tokens of `text` that hold a letter or a digit (as [`Transcript::tokens`] counts them).
    fn word_tokens(&self, text: &str) -> usize {
        self.tokenize(text)
            .into_iter()
            .filter(|&t| self.ctx.token_to_bytes(t).is_ok_and(|b| String::from_utf8_lossy(b).chars().any(char::is_alphanumeric)))
            .count()
    }

    /// Transcribes 16 kHz mono samples with default options in `language`.
    pub fn transcribe(&self, samples: &[f32], language: Language<'_>) -> Result<Transcript> {
        self.decode(samples, &DecodeOptions { language, ..DecodeOptions::default() })
    }

    /// Transcribes 16 kHz mono samples (at most 30 s; longer audio is cut into windows by
    /// whisper.cpp itself).
    pub fn decode(&self, samples: &[f32], options: &DecodeOptions<'_>) -> Result<Transcript> {
        if samples.is_empty() {
            return Ok(Transcript::empty());
        }
        let threads = options.threads.max(1);
        let seconds = samples.len() as f32 / SAMPLE_RATE as f32;
        // 0 is whisper's full 30 s window.
        let audio_ctx = if options.short_window && seconds < 29.0 { audio_ctx_for(samples.len()) } else { 0 };
        let (lang, lang_probability) = match options.language {
            Language::Fixed(lang) => {
                whisper_rs::get_lang_id(lang).ok_or_else(|| Error::Whisper(format!("`{lang}` is not a whisper language")))?;
                (lang.to_string(), 1.0)
            }
            Language::Among(allowed) => {
                let scored = self.detect_interruptible(samples, allowed, audio_ctx, threads, options.interrupt)?;
                let total: f32 = scored.iter().map(|(_, p)| p).sum();
                let (best, p) = scored
                    .into_iter()
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .ok_or_else(|| Error::Whisper(format!("none of {allowed:?} is a whisper language")))?;
                (best.to_string(), if total > 0.0 { p / total } else { 0.0 })
            }
        };
        let mut slot = self.state.borrow_mut();
        if slot.is_none() {
            *slot = Some((self.ctx.create_state().map_err(werr)?, 0));
        }
        let Some((state, state_ctx)) = slot.as_mut() else { return Err(Error::Whisper("no state".into())) };

        let mut params = if options.beam_size > 1 {
            FullParams::new(SamplingStrategy::BeamSearch { beam_size: options.beam_size as i32, patience: -1.0 })
        } else {
            // best_of only counts when the fallback samples (temperature > 0). One sample per
            // temperature: five each (the reference's) made an unclear utterance cost up to 25
            // decodes, seconds on two cores.
            FullParams::new(SamplingStrategy::Greedy { best_of: 1 })
        };
        params.set_language(Some(&lang));
        params.set_n_threads(threads as i32);
        quiet(&mut params);
        params.set_suppress_nst(true);
        params.set_suppress_blank(true);
        params.set_no_context(true);
        params.set_token_timestamps(true);
        params.set_no_speech_thold(options.no_speech_threshold);
        if let Some(prompt) = options.initial_prompt.filter(|p| !p.trim().is_empty()) {
            params.set_initial_prompt(prompt);
        }
        params.set_audio_ctx(audio_ctx);
        params.set_temperature_inc(if options.temperature_fallback { 0.2 } else { 0.0 });
        params.set_entropy_thold(2.4);
        params.set_logprob_thold(options.logprob_threshold());
        if seconds <= 30.0 {
            // One utterance is one window: decode it once. Without this, a repetition loop
            // (whisper's classic failure on unclear audio) is re-run seek after seek.
            params.set_single_segment(true);
            // No one speaks faster than ~20 tokens a second; a decode that runs past that is
            // looping.
            params.set_max_tokens(max_tokens_for(seconds));
        }
        let ask: &dyn Fn() -> bool = match options.interrupt {
            Some(Interrupt(ask)) => ask,
            None => &|| false,
        };
        if options.interrupt.is_some() {
            // SAFETY: `ask` lives on this stack frame until `state.full` returns, and whisper.cpp
            // calls the callback only during that call. (whisper-rs's safe variant leaks a box
            // per call: a kiosk decodes twice a second for weeks.)
            #[allow(unsafe_code, reason = "whisper.cpp's abort callback takes a raw user-data pointer")]
            unsafe {
                params.set_abort_callback(Some(ask_interrupt));
                params.set_abort_callback_user_data(&ask as *const &dyn Fn() -> bool as *mut std::ffi::c_void);
            }
        }
        ABANDONABLE.set(options.interrupt.is_some());
        self.count_encoding();
        let done = state.full(params, samples);
        ABANDONABLE.set(false);
        *state_ctx = audio_ctx;
        if done.is_err() && ask() {
            return Err(Error::Interrupted);
        }
        done.map_err(werr)?;

        let eot = self.ctx.token_eot();
        let mut raw = Vec::new();
        for segment in state.as_iter() {
            let mut tokens = Vec::new();
            for i in 0..segment.n_tokens() {
                let Some(token) = segment.get_token(i) else { continue };
                if token.token_id() >= eot {
                    continue; // timestamps and other special tokens
                }
                let data = token.token_data();
                let piece = String::from_utf8_lossy(token.to_bytes().map_err(werr)?).into_owned();
                tokens.push(RawToken { piece, plog: data.plog, p: data.p, t0: data.t0 as f32 / 100.0, t1: data.t1 as f32 / 100.0 });
            }
            raw.push(RawSegment {
                text: segment.to_str_lossy().map_err(werr)?.into_owned(),
                start: segment.start_timestamp() as f32 / 100.0,
                end: segment.end_timestamp() as f32 / 100.0,
                no_speech: segment.no_speech_probability(),
                tokens,
            });
        }
        Ok(self.transcript_from(raw, lang, lang_probability, seconds, options))
    }

    /// A transcript of decoded segments: words from the tokens, repetition loops collapsed,
    /// segments without speech dropped, and the decode's figures for the language decision.
    fn transcript_from(&self, raw: Vec<RawSegment>, lang: String, lang_probability: f32, seconds: f32, options: &DecodeOptions<'_>) -> Transcript {
        let mut segments = Vec::new();
        let (mut logprob_sum, mut logprob_n, mut word_tokens) = (0.0f64, 0usize, 0usize);
        let mut looped = false;
        for segment in raw {
            let mut segment_word_tokens = 0;
            let mut words: Vec<Word> = Vec::new();
            for token in segment.tokens {
                logprob_sum += f64::from(token.plog);
                logprob_n += 1;
                let piece = token.piece;
                segment_word_tokens += usize::from(piece.chars().any(char::is_alphanumeric));
                let (t0, t1) = (token.t0.min(seconds), token.t1.min(seconds));
                match words.last_mut() {
                    // A piece that does not start with a space continues the word (BPE).
                    Some(last) if !piece.starts_with(' ') => {
                        last.text.push_str(&piece);
                        last.end = t1.max(last.end);
                        last.probability = last.probability.min(token.p);
                    }
                    _ => words.push(Word { text: piece.trim_start().to_string(), start: t0, end: t1, probability: token.p }),
                }
            }
            words.retain(|w| !w.text.trim().is_empty());
            for w in &mut words {
                w.text = collapse_inside_word(&w.text);
            }
            let text = segment.text.trim();
            let collapsed = collapse_repeats(text);
            if collapsed.split_whitespace().count() < text.split_whitespace().count() || collapsed.chars().count() < text.chars().count() {
                looped = true;
                // Tokens per word must describe the words kept, not the loop cut out of them.
                segment_word_tokens = self.word_tokens(&collapsed);
            }
            word_tokens += segment_word_tokens;
            let text = collapsed;
            // Keep the word timings in step with a collapsed text.
            words.truncate(text.split_whitespace().count().max(1).min(words.len()));
            segments.push(Segment {
                start: segment.start.min(seconds),
                // A single-segment decode ends at the window's end: clamp to the audio's.
                end: segment.end.min(seconds),
                text,
                no_speech_probability: segment.no_speech,
                words,
            });
        }
        segments.retain(|s| !s.text.is_empty() && s.no_speech_probability <= options.no_speech_threshold);
        let avg_logprob = if logprob_n == 0 { f32::NEG_INFINITY } else { (logprob_sum / logprob_n as f64) as f32 };
        let budget = if seconds <= 30.0 { max_tokens_for(seconds) as usize } else { usize::MAX };
        let exhausted = logprob_n + 1 >= budget;
        let looped = looped || exhausted;
        let degenerate = avg_logprob < options.fallback_logprob || looped;
        Transcript { lang, lang_probability, segments, avg_logprob, tokens: word_tokens, degenerate, looped, exhausted }
    }
}

/// One decoded text token: its text, probabilities and time (seconds from the audio's start).
struct RawToken {
    piece: String,
    plog: f32,
    p: f32,
    t0: f32,
    t1: f32,
}

/// One decoded segment as whisper gave it (times in seconds from the audio's start).
struct RawSegment {
    text: String,
    start: f32,
    end: f32,
    no_speech: f32,
    tokens: Vec<RawToken>,
}

impl WhisperModel {
    /// The probabilities whisper gives each of `allowed` for `samples` (first 30 s; not
    /// normalised over `allowed`), at encoder width `audio_ctx` (see [`audio_ctx_for`]), on the
    /// encoding state, which then holds this audio's encoding for [`WhisperModel::decode_encoded`].
    pub fn detect<'l>(&self, samples: &[f32], allowed: &[&'l str], audio_ctx: i32, threads: usize) -> Result<Vec<(&'l str, f32)>> {
        self.detect_interruptible(samples, allowed, audio_ctx, threads, None)
    }

    /// [`WhisperModel::detect`], abandoned (`Error::Interrupted`) as soon as `interrupt` says
    /// so, in the encoder too.
    pub fn detect_interruptible<'l>(
        &self,
        samples: &[f32],
        allowed: &[&'l str],
        audio_ctx: i32,
        threads: usize,
        interrupt: Option<Interrupt<'_>>,
    ) -> Result<Vec<(&'l str, f32)>> {
        let mut slot = self.encoder.borrow_mut();
        let encoder = self.encoder_at(&mut slot, audio_ctx, allowed.first().copied().unwrap_or("en"), threads)?;
        encoder.encoded = None;
        encoder.state.pcm_to_mel(samples, threads).map_err(werr)?;
        // Detection encodes the audio, then reads the language from the first decoder step.
        self.count_encoding();
        let (_, probs) = encoding(interrupt, || encoder.state.lang_detect(0, threads).map_err(werr))?;
        encoder.encoded = Some(fingerprint(samples, audio_ctx));
        Ok(allowed.iter().filter_map(|l| Some((*l, *probs.get(usize::try_from(whisper_rs::get_lang_id(l)?).ok()?)?))).collect())
    }

    /// The encoding state, made on first use and set to encoder width `audio_ctx`: whisper.cpp
    /// encodes at the width its state last decoded with, and only `whisper_full` sets it, so a
    /// state at another width is primed by a `whisper_full` on 0.2 s of silence at this one
    /// (`language`: any whisper language) that stops where it would begin to encode: the width
    /// is set just before. A primer that encoded cost an encoder pass (~150 ms for a few
    /// seconds' width on 2 cores) each time an utterance's width differed from the last one's.
    fn encoder_at<'s>(&self, slot: &'s mut Option<Encoder>, audio_ctx: i32, language: &str, threads: usize) -> Result<&'s mut Encoder> {
        if slot.is_none() {
            *slot = Some(Encoder {
                state: self.ctx.create_state().map_err(werr)?,
                width: 0,
                encoded: None,
                vocabulary: greedy::Vocabulary::new(&self.ctx),
                drafts: Vec::new(),
            });
        }
        let Some(encoder) = slot.as_mut() else { return Err(Error::Whisper("no encoding state".into())) };
        if encoder.width != audio_ctx {
            encoder.encoded = None;
            let mut primer = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
            primer.set_language(Some(language));
            primer.set_audio_ctx(audio_ctx);
            primer.set_max_tokens(1);
            primer.set_single_segment(true);
            primer.set_no_timestamps(true);
            primer.set_n_threads(threads as i32);
            quiet(&mut primer);
            // SAFETY: `stop_before_encoding` is a plain function that reads none of its
            // arguments; whisper.cpp calls it only during `state.full`.
            #[allow(unsafe_code, reason = "whisper.cpp's encoder-begin callback is a C function pointer")]
            unsafe {
                primer.set_start_encoder_callback(Some(stop_before_encoding));
            }
            // whisper.cpp reports the stop as an error ("encoder_begin_callback returned false"):
            // here it is what was asked for.
            PRIMING.set(true);
            let primed = encoder.state.full(primer, &[0.0; 3200]);
            PRIMING.set(false);
            primed.map_err(werr)?;
            encoder.width = audio_ctx;
        }
        Ok(encoder)
    }

    /// As [`WhisperModel::decode`], on one encoding of `samples` shared by every decode of them
    /// (and their detection, [`WhisperModel::detect`]): the audio is encoded only if the
    /// encoding state does not already hold it. A greedy decode of one window in a fixed
    /// language runs whisper.cpp's greedy decoder step for step (see [`greedy`]), to the same
    /// tokens; when whisper.cpp would fall back to sampling (and `temperature_fallback` is
    /// on), the decode is run again by `whisper_full` with the fallback, as are beam search,
    /// detection inside the call and audio over one window.
    pub fn decode_encoded(&self, samples: &[f32], options: &DecodeOptions<'_>) -> Result<Transcript> {
        let seconds = samples.len() as f32 / SAMPLE_RATE as f32;
        let Language::Fixed(lang) = options.language else { return self.decode(samples, options) };
        if samples.is_empty() || options.beam_size > 1 || seconds > 29.0 {
            return self.decode(samples, options);
        }
        let lang_id = whisper_rs::get_lang_id(lang).ok_or_else(|| Error::Whisper(format!("`{lang}` is not a whisper language")))?;
        let threads = options.threads.max(1);
        let audio_ctx = if options.short_window { audio_ctx_for(samples.len()) } else { 0 };
        let prompt: Vec<whisper_rs::WhisperTokenId> = options.initial_prompt.filter(|p| !p.trim().is_empty()).map(|p| self.tokenize(p)).unwrap_or_default();
        let decoded = {
            let mut slot = self.encoder.borrow_mut();
            let encoder = self.encoder_at(&mut slot, audio_ctx, lang, threads)?;
            let key = fingerprint(samples, audio_ctx);
            if encoder.encoded != Some(key) {
                encoder.encoded = None;
                encoder.state.pcm_to_mel(samples, threads).map_err(werr)?;
                self.count_encoding();
                encoding(options.interrupt, || encoder.state.encode(0, threads).map_err(werr))?;
                encoder.encoded = Some(key);
            }
            let seek_end = encoder.state.n_len();
            if seek_end < greedy::DELTA_MIN {
                // Under 100 ms: whisper_full decodes nothing either.
                return Ok(Transcript { lang: lang.to_string(), lang_probability: 1.0, ..Transcript::empty() });
            }
            let vocabulary = &encoder.vocabulary;
            let lang_token = self.ctx.token_lang(lang_id);
            let tokens = greedy::prompt_tokens(vocabulary, &prompt, lang_token);
            // What the last decode in this language of audio that opens the same way said (a
            // partial of the utterance, with or without the prompt): the draft this decode
            // checks (see greedy::Feeder).
            let opening = opening(samples);
            let draft = opening
                .filter(|_| options.draft)
                .and_then(|o| encoder.drafts.iter().find(|d| d.opening == o && d.lang == lang_token))
                .map(|d| d.tokens.clone())
                .unwrap_or_default();
            // A prompted decode that begins the utterance again is cut there (see greedy::Rules).
            let rules = greedy::Rules {
                seek_end,
                max_tokens: max_tokens_for(seconds),
                logprob: options.logprob_threshold(),
                no_speech: options.no_speech_threshold,
                stop_restart: !prompt.is_empty(),
            };
            let ask: &dyn Fn() -> bool = match options.interrupt {
                Some(Interrupt(ask)) => ask,
                None => &|| false,
            };
            match greedy::decode(&mut encoder.state, vocabulary, &tokens, rules, &draft, threads, ask) {
                Ok(d) => {
                    self.calls.set(self.calls.get() + d.calls as u64);
                    if !draft.is_empty() {
                        let (fed, taken) = self.drafted.get();
                        self.drafted.set((fed + d.drafted as u64, taken + d.checked as u64));
                        tracing::debug!(
                            target: "hiwar::hearing",
                            "whisper: {} of {} draft tokens fed were decoded so, {} tokens in all, {} decoder calls",
                            d.checked,
                            d.drafted,
                            d.tokens.len(),
                            d.calls
                        );
                    }
                    // Only this audio's drafts are kept: one per language.
                    encoder.drafts.retain(|k| k.lang != lang_token && Some(k.opening) == opening);
                    if let Some(opening) = opening {
                        encoder.drafts.push(Draft { opening, lang: lang_token, tokens: d.tokens.iter().map(|t| t.id).collect() });
                    }
                    d
                }
                Err(greedy::Stopped::Interrupted) => return Err(Error::Interrupted),
                Err(greedy::Stopped::Failed(e)) => {
                    encoder.encoded = None;
                    return Err(Error::Whisper(e));
                }
            }
        };
        if decoded.restarted {
            tracing::debug!(target: "hiwar::hearing", "the {lang} decode with its prompt began the utterance again: cut there");
        }
        if decoded.fallback_wanted && options.temperature_fallback {
            return self.decode(samples, options);
        }
        Ok(self.transcript_from(self.segments_of(&decoded, options), lang.to_string(), 1.0, seconds, options))
    }

    /// The one segment of a greedy decode, as whisper_full makes it: its text tokens, from the
    /// first timestamp to the end of the window; none when whisper would take it for no
    /// speech. Whisper's token-level times are not computed: each token's time is its share of
    /// the segment (nothing in hiwar reads a heard word's time).
    fn segments_of(&self, decoded: &greedy::Decoded, options: &DecodeOptions<'_>) -> Vec<RawSegment> {
        let Some(first) = decoded.tokens.first() else { return Vec::new() };
        if decoded.no_speech > options.no_speech_threshold && decoded.avg_logprob < options.logprob_threshold() {
            return Vec::new();
        }
        let eot = self.ctx.token_eot();
        let beg = self.ctx.token_beg();
        let start = 2.0 * (first.tid - beg) as f32 / 100.0;
        let end = decoded.seek_delta as f32 / 100.0;
        let text_tokens: Vec<&greedy::Token> = decoded.tokens.iter().filter(|t| t.id < eot).collect();
        let mut bytes = Vec::new();
        let mut tokens = Vec::new();
        let share = (end - start).max(0.0) / text_tokens.len().max(1) as f32;
        for (k, t) in text_tokens.iter().enumerate() {
            let piece = self.ctx.token_to_bytes(t.id).unwrap_or_default();
            bytes.extend_from_slice(piece);
            let t0 = start + share * k as f32;
            tokens.push(RawToken { piece: String::from_utf8_lossy(piece).into_owned(), plog: t.plog, p: t.p, t0, t1: t0 + share });
        }
        vec![RawSegment { text: String::from_utf8_lossy(&bytes).into_owned(), start, end, no_speech: decoded.no_speech, tokens }]
    }
}

/// A greedy decode's tokens, the draft of the next decode in its language of audio that opens
/// the same way.
struct Draft {
    /// [`opening`] of the audio decoded.
    opening: u64,
    /// The language's token.
    lang: whisper_rs::WhisperTokenId,
    tokens: Vec<whisper_rs::WhisperTokenId>,
}

/// Samples two decodes' audio must share at its start for one's tokens to be the other's
/// draft: 0.5 s, so that the partials and the final of one utterance share it, and two
/// utterances do not.
const OPENING: usize = SAMPLE_RATE as usize / 2;

/// A fingerprint of the audio's first [`OPENING`] samples; `None` when it is shorter.
fn opening(samples: &[f32]) -> Option<u64> {
    samples.get(..OPENING).map(|s| fingerprint(s, 0))
}

/// The state detection and shared decodes encode on, its encoder width, and which audio its
/// encoding holds.
struct Encoder {
    state: WhisperState,
    width: i32,
    /// [`fingerprint`] of the audio and width encoded (`None`: nothing usable).
    encoded: Option<u64>,
    vocabulary: greedy::Vocabulary,
    /// The last greedy decode in each language of the audio decoded last (see [`Draft`]).
    drafts: Vec<Draft>,
}

/// Identifies audio and an encoder width (FNV-1a over the samples' bits): the encoding state
/// holds this audio's encoding only if its fingerprint matches.
fn fingerprint(samples: &[f32], audio_ctx: i32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |x: u64| {
        h ^= x;
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    eat(samples.len() as u64);
    eat(audio_ctx as u64);
    for s in samples {
        eat(u64::from(s.to_bits()));
    }
    h
}

/// whisper-rs's error as hiwar's.
fn werr(e: whisper_rs::WhisperError) -> Error {
    Error::Whisper(e.to_string())
}

fn max_tokens_for(seconds: f32) -> i32 {
    (16.0 + seconds * 20.0).min(224.0) as i32
}

/// Removes whisper's repetition loops, keeping the first occurrence: a run of up to
/// [`LOOP_PERIOD`] words repeated three or more times in a row ("the world, the world, the
/// world" → "the world,"), a phrase of five or more words said twice running, and, inside a
/// word, a letter written four or more times running ("موووووو" → "مو") or a syllable of 2–4
/// letters repeated four or more times ("hahahaha" → "ha", "a-a-a-a-" → "a-"). Digits are
/// never touched: "1111" may be a real number.
pub fn collapse_repeats(text: &str) -> String {
    let collapsed: Vec<String> = text.split_whitespace().map(collapse_inside_word).collect();
    let words: Vec<&str> = collapsed.iter().map(String::as_str).collect();
    let key = |w: &str| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase();
    let mut out: Vec<&str> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let mut skipped = false;
        for period in 1..=LOOP_PERIOD {
            let block = |k: usize| words.get(i + k * period..i + (k + 1) * period);
            let Some(first) = block(0) else { break };
            let same = |b: &[&str]| b.iter().zip(first).all(|(a, f)| key(a) == key(f));
            let mut reps = 1;
            while block(reps).is_some_and(same) {
                reps += 1;
            }
            // The loop may end mid-block: a partial repeat at the end is part of it.
            let tail = words.get(i + reps * period..).map_or(0, |rest| rest.iter().zip(first).take_while(|(a, f)| key(a) == key(f)).count());
            // People do repeat a word or two ("no, no"), not a whole clause.
            if reps >= 3 || (reps == 2 && period >= 5) {
                out.extend_from_slice(first);
                i += reps * period + tail.min(period - 1);
                skipped = true;
                break;
            }
        }
        if !skipped {
            out.push(words[i]);
            i += 1;
        }
    }
    out.join(" ")
}

/// The longest run of words [`collapse_repeats`] looks for as a loop (whisper base loops over
/// whole clauses: "we will not be able to touch the limit," three times is 9 words).
pub const LOOP_PERIOD: usize = 16;

/// Collapses a letter or a 2–4 letter syllable (letters, or letters joined by hyphens)
/// repeated four or more times running inside one word to its first occurrence.
fn collapse_inside_word(word: &str) -> String {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::with_capacity(word.len());
    let mut i = 0;
    'outer: while i < chars.len() {
        for period in 1..=4 {
            let Some(unit) = chars.get(i..i + period) else { break };
            if !unit.iter().all(|c| c.is_alphabetic() || *c == '-') || !unit.iter().any(|c| c.is_alphabetic()) {
                continue;
            }
            let mut reps = 1;
            while chars.get(i + reps * period..i + (reps + 1) * period) == Some(unit) {
                reps += 1;
            }
            if reps >= 4 {
                out.extend(unit);
                i += reps * period;
                continue 'outer;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

fn quiet(params: &mut FullParams<'_, '_>) {
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_special(false);
    params.set_print_timestamps(false);
}

/// Encoder frames (20 ms each) for `samples`, with a margin, rounded up to a multiple of 64:
/// the encoder width `short_window` decodes with.
pub fn audio_ctx_for(samples: usize) -> i32 {
    let frames = samples.div_ceil(320) + 64;
    (frames.div_ceil(64) * 64).min(1500) as i32
}

/// What whisper.cpp was built with, as its `whisper_print_system_info` says: the names set to 1
/// ("AVX2", "AVX512", "LLAMAFILE", "OPENMP"…), without their section ("CPU : ").
pub fn build_features() -> Vec<String> {
    features_set(whisper_rs::print_system_info())
}

fn features_set(info: &str) -> Vec<String> {
    info.split('|')
        .filter_map(|item| {
            let (name, value) = item.split_once('=')?;
            let name = name.rsplit(':').next()?.trim();
            (value.trim() == "1" && !name.is_empty()).then(|| name.to_string())
        })
        .collect()
}

/// The instruction-set extensions whisper.cpp was compiled for that this CPU lacks: its first
/// decode would stop the process with an illegal instruction (a package built on a newer
/// machine than the kiosk). Empty where the CPU has them all, or off x86-64.
pub fn missing_cpu_features(built: &[String]) -> Vec<String> {
    built.iter().filter(|f| cpu_has(f) == Some(false)).cloned().collect()
}

#[cfg(target_arch = "x86_64")]
fn cpu_has(feature: &str) -> Option<bool> {
    Some(match feature {
        "SSE3" => std::arch::is_x86_feature_detected!("sse3"),
        "SSSE3" => std::arch::is_x86_feature_detected!("ssse3"),
        "AVX" => std::arch::is_x86_feature_detected!("avx"),
        "AVX2" => std::arch::is_x86_feature_detected!("avx2"),
        "F16C" => std::arch::is_x86_feature_detected!("f16c"),
        "FMA" => std::arch::is_x86_feature_detected!("fma"),
        "BMI2" => std::arch::is_x86_feature_detected!("bmi2"),
        "AVX512" => std::arch::is_x86_feature_detected!("avx512f"),
        "AVX512_VBMI" => std::arch::is_x86_feature_detected!("avx512vbmi"),
        "AVX512_VNNI" => std::arch::is_x86_feature_detected!("avx512vnni"),
        "AVX512_BF16" => std::arch::is_x86_feature_detected!("avx512bf16"),
        "AVX_VNNI" => std::arch::is_x86_feature_detected!("avxvnni"),
        _ => return None,
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_has(_feature: &str) -> Option<bool> {
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn build_features_are_the_names_set_to_one() {
        let info = "WHISPER : COREML = 0 | OPENVINO = 0 | CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 0 | LLAMAFILE = 1 | OPENMP = 1 | ";
        assert_eq!(super::features_set(info), ["SSE3", "AVX2", "LLAMAFILE", "OPENMP"]);
        let built = super::build_features();
        assert!(built.iter().any(|f| f == "LLAMAFILE"), "GGML_LLAMAFILE (.cargo/config.toml) is not in this build: {built:?}");
        assert!(super::missing_cpu_features(&built).is_empty(), "built here, for here: {built:?}");
        assert!(super::missing_cpu_features(&["LLAMAFILE".into(), "OPENMP".into()]).is_empty(), "options are not CPU features");
    }

    #[test]
    fn the_short_window_covers_the_audio_with_a_margin() {
        assert_eq!(super::audio_ctx_for(16_000), 128); // 1 s: 50 frames + 64 → 128
        assert_eq!(super::audio_ctx_for(3 * 16_000), 256);
        assert_eq!(super::audio_ctx_for(40 * 16_000), 1500);
    }

    #[test]
    fn repetition_loops_are_collapsed_and_real_repeats_kept() {
        use super::collapse_repeats as c;
        assert_eq!(c("and the people of the world, the people of the world, the people of the world, the people"), "and the people of the world,");
        assert_eq!(c("no no no no"), "no");
        assert_eq!(c("شكرا شكرا شكرا شكرا جزيلا"), "شكرا جزيلا");
        assert_eq!(c("no, no. I said yes"), "no, no. I said yes", "two is not a loop");
        assert_eq!(c("Welcome to the Government Service Center."), "Welcome to the Government Service Center.");
        assert_eq!(c("أين موووووووووو المكتب"), "أين مو المكتب", "a letter looping inside a token");
        assert_eq!(c("hahahahahaha ok"), "ha ok");
        assert_eq!(c("مرررحبا"), "مرررحبا", "three is not a loop");
        assert_eq!(c("www.example.com"), "www.example.com");
        assert_eq!(c("784-1111-2222222-1"), "784-1111-2222222-1", "digits are never collapsed");
        assert_eq!(c("Mississippi Hmmmmm"), "Mississippi Hm", "a syllable twice is a word, a letter four times is a loop");
        // Whisper base on noisy Arabic, forced into English: a nine-word clause three times.
        let clause = "We will not be able to touch the limit,";
        assert_eq!(c(&format!("{clause} {clause} {clause}")), clause);
        assert_eq!(c("I want to renew my passport I want to renew my passport"), "I want to renew my passport", "a clause said twice is a loop");
        assert_eq!(c("thank you, thank you very much"), "thank you, thank you very much", "a short phrase twice is speech");
        assert_eq!(c("Wine, a-a-a-a-a-a-a-a-a"), "Wine, a-a", "a syllable looping with hyphens");
        assert_eq!(c("well-known co-operation"), "well-known co-operation");
    }
}
