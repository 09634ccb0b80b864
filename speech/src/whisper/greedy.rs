//! Whisper's greedy decoder, run by hiwar on an encoding already made.
//!
//! The language decision decodes one utterance as two languages after detecting it, and
//! `whisper_full` encodes the audio again on every call, while the encoder is 70–75 % of a
//! short decode's time (docs/benchmarks.md, "Why the final is late"). This is whisper.cpp's
//! own greedy path, step for step — `whisper_full_with_state` at temperature 0 with one
//! segment, `whisper_process_logits`' filters and `whisper_sample_token` — on
//! `whisper_decode_with_state`, so that detection and every decode of an utterance share one
//! encoding. Only the greedy, single-window, no-fallback decode is here: beam search and the
//! temperature fallback stay on `whisper_full`.

use whisper_rs::{WhisperContext, WhisperState, WhisperTokenId};

/// Whisper's non-speech symbols (`non_speech_tokens` in whisper.cpp, the reference's
/// `tokenizer.non_speech_tokens`): suppressed alone and after a space.
const NON_SPEECH: &[&str] = &[
    "\"",
    "#",
    "(",
    ")",
    "*",
    "+",
    "/",
    ":",
    ";",
    "<",
    "=",
    ">",
    "@",
    "[",
    "\\",
    "]",
    "^",
    "_",
    "`",
    "{",
    "|",
    "}",
    "~",
    "「",
    "」",
    "『",
    "』",
    "<<",
    ">>",
    "<<<",
    ">>>",
    "--",
    "---",
    "-(",
    "-[",
    "('",
    "(\"",
    "((",
    "))",
    "(((",
    ")))",
    "[[",
    "]]",
    "{{",
    "}}",
    "♪♪",
    "♪♪♪",
    "♩",
    "♪",
    "♫",
    "♬",
    "♭",
    "♮",
    "♯",
];

/// Mel frames (10 ms) of the 30 s window: a completed single segment's `seek_delta`.
const WINDOW_FRAMES: i32 = 100 * 30;
/// whisper.cpp stops a segment within 100 ms (10 frames) of the audio's end.
pub(crate) const DELTA_MIN: i32 = 10;
/// The first timestamp may not be later than this (`max_initial_ts`, whisper.cpp's default).
const MAX_INITIAL_TS: f32 = 1.0;

/// The special tokens and suppression lists of one model's vocabulary.
#[derive(Debug)]
pub(crate) struct Vocabulary {
    n_vocab: usize,
    pub eot: WhisperTokenId,
    pub sot: WhisperTokenId,
    pub beg: WhisperTokenId,
    pub prev: WhisperTokenId,
    pub transcribe: WhisperTokenId,
    nosp: WhisperTokenId,
    /// Always suppressed: <|notimestamps|>, <|startoftranscript|>, <|nospeech|>, <|startoflm|>,
    /// the task tokens, <|startofprev|>, every language token, and (suppress_nst) the
    /// non-speech symbols, " -" and " '".
    suppressed: Vec<WhisperTokenId>,
    /// Suppressed at the first step (suppress_blank): " " (end of text too).
    space: Option<WhisperTokenId>,
    /// Encoder frames (20 ms) of the model's full window.
    n_audio_ctx: i32,
    pub n_text_ctx: i32,
}

impl Vocabulary {
    pub fn new(ctx: &WhisperContext) -> Vocabulary {
        let n_vocab = usize::try_from(ctx.n_vocab()).unwrap_or(0);
        let eot = ctx.token_eot();
        let mut suppressed =
            vec![ctx.token_not(), ctx.token_sot(), ctx.token_nosp(), ctx.token_solm(), ctx.token_translate(), ctx.token_transcribe(), ctx.token_prev()];
        suppressed.extend((0..=whisper_rs::get_lang_max_id()).map(|l| ctx.token_lang(l)));
        let mut symbols: std::collections::HashSet<Vec<u8>> = NON_SPEECH.iter().flat_map(|s| [s.as_bytes().to_vec(), format!(" {s}").into_bytes()]).collect();
        symbols.insert(b" -".to_vec());
        symbols.insert(b" '".to_vec());
        let mut space = None;
        // Text tokens only: whisper.cpp looks the strings up by exact token text.
        for id in 0..eot {
            let Ok(bytes) = ctx.token_to_bytes(id) else { continue };
            if symbols.contains(bytes) {
                suppressed.push(id);
            }
            if bytes == b" " && space.is_none() {
                space = Some(id);
            }
        }
        suppressed.retain(|&t| usize::try_from(t).is_ok_and(|t| t < n_vocab));
        Vocabulary {
            n_vocab,
            eot,
            sot: ctx.token_sot(),
            beg: ctx.token_beg(),
            prev: ctx.token_prev(),
            transcribe: ctx.token_transcribe(),
            nosp: ctx.token_nosp(),
            suppressed,
            space,
            n_audio_ctx: ctx.n_audio_ctx(),
            n_text_ctx: ctx.n_text_ctx(),
        }
    }
}

/// One sampled token: its id, probability and log-probability, and the likeliest timestamp
/// at its step (whisper.cpp's `tid`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Token {
    pub id: WhisperTokenId,
    pub tid: WhisperTokenId,
    pub p: f32,
    pub plog: f32,
}

/// A greedy decode: the tokens kept (up to whisper.cpp's `result_len`), the probability of
/// no speech at the first step, and the mean log-probability whisper.cpp ranks by
/// (`f32::NEG_INFINITY` when the decode failed).
#[derive(Debug)]
pub(crate) struct Decoded {
    pub tokens: Vec<Token>,
    pub no_speech: f32,
    pub avg_logprob: f32,
    /// Mel frames the segment spans from the start (whisper.cpp's `seek_delta`).
    pub seek_delta: i32,
    /// whisper.cpp would decode this again at a higher temperature: the decode failed (went
    /// back in time, or never ended), its last 32 tokens have an entropy under 2.4 (a loop),
    /// or its mean log-probability is under the threshold while speech is likely.
    pub fallback_wanted: bool,
    /// It began the utterance again from its first words (whisper's habit on short audio with
    /// a prompt) and was stopped there, the repeat left out ([`Rules::stop_restart`]).
    pub restarted: bool,
    /// Draft tokens fed, and of them the ones the decoder picked (see [`Feeder`]).
    pub drafted: usize,
    pub checked: usize,
    /// Decoder calls after the prompt's.
    pub calls: usize,
}

/// Where a decode stops, and the thresholds of whisper.cpp's fallback test.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    /// Mel frames (10 ms) of the audio.
    pub seek_end: i32,
    /// Tokens after which the segment ends (0: no limit).
    pub max_tokens: i32,
    /// A mean log-probability under this, while speech is likely, wants the fallback.
    pub logprob: f32,
    pub no_speech: f32,
    /// Stop where the decode begins its utterance again ([`started_over`]), leaving the repeat
    /// out: with a prompt, whisper often says a short utterance twice. Off for the decodes that
    /// decide the language, whose loops count against it.
    pub stop_restart: bool,
}

/// whisper.cpp's `entropy_thold`: the entropy of the last 32 tokens under which a decode is
/// taken for a loop.
const ENTROPY_THRESHOLD: f64 = 2.4;

/// The entropy (nats) of the token ids' distribution over the last 32 of `tokens`.
fn tail_entropy(tokens: &[Token]) -> f64 {
    let tail = &tokens[tokens.len().saturating_sub(32)..];
    let mut counts: Vec<(WhisperTokenId, usize)> = Vec::new();
    for t in tail {
        match counts.iter_mut().find(|(id, _)| *id == t.id) {
            Some((_, c)) => *c += 1,
            None => counts.push((t.id, 1)),
        }
    }
    counts
        .iter()
        .map(|&(_, c)| {
            let p = c as f64 / tail.len() as f64;
            -p * p.ln()
        })
        .sum()
}

/// Why a decode stopped without a result.
#[derive(Debug)]
pub(crate) enum Stopped {
    Interrupted,
    Failed(String),
}

/// What one step's logits become: whisper.cpp's filtered logits, log-probabilities and
/// probabilities (kept between steps to spare the allocations).
struct Step {
    logits: Vec<f32>,
    logprobs: Vec<f32>,
    probs: Vec<f32>,
}

/// The tokens of a decode's prompt: `<|startofprev|>` and the last tokens of `prompt` (at
/// most half the text context less one, as whisper.cpp keeps them), then `<|startoftranscript|>`,
/// the language and `<|transcribe|>`.
pub(crate) fn prompt_tokens(vocab: &Vocabulary, prompt: &[WhisperTokenId], lang_token: WhisperTokenId) -> Vec<WhisperTokenId> {
    let mut tokens = Vec::new();
    let max_prompt = usize::try_from(vocab.n_text_ctx / 2).unwrap_or(0);
    if !prompt.is_empty() && max_prompt > 0 {
        let take = prompt.len().min(max_prompt - 1);
        tokens.push(vocab.prev);
        tokens.extend_from_slice(&prompt[prompt.len() - take..]);
    }
    tokens.extend([vocab.sot, lang_token, vocab.transcribe]);
    tokens
}

/// Decodes greedily on `state`, which holds the encoding of the audio, after `prompt` (see
/// [`prompt_tokens`]), stopping as `whisper_full` does: end of text, `rules.max_tokens`, the
/// end of the audio, or a failure. `interrupt` is asked between steps.
pub(crate) fn decode(
    state: &mut WhisperState,
    vocab: &Vocabulary,
    prompt: &[WhisperTokenId],
    rules: Rules,
    draft: &[WhisperTokenId],
    threads: usize,
    interrupt: &dyn Fn() -> bool,
) -> Result<Decoded, Stopped> {
    let err = |e: whisper_rs::WhisperError| Stopped::Failed(e.to_string());
    let n = vocab.n_vocab;
    if prompt.is_empty() || n == 0 {
        return Err(Stopped::Failed("an empty prompt or vocabulary".into()));
    }
    // The prompt in one call, as whisper_full does, but its last token alone: whisper-rs gives
    // the logits of a call's first position, and only the last one's are wanted. The last
    // token goes with the draft's first tokens, if any.
    let (head, last) = prompt.split_at(prompt.len() - 1);
    if !head.is_empty() {
        state.decode(head, 0, threads).map_err(err)?;
    }
    let n_ctx = usize::try_from(vocab.n_text_ctx).unwrap_or(0);
    let mut feeder = Feeder { rows: Vec::new(), fed: Vec::new(), at: 0, next: 0, drafted: 0, checked: 0, calls: 0, chunk: FIRST_DRAFT };
    let mut step = Step { logits: vec![0.0; n], logprobs: vec![0.0; n], probs: vec![0.0; n] };
    feeder.logits_after(state, last[0], head.len(), ahead(draft, 0, vocab.eot, head.len() + 1, n_ctx), threads, &mut step.logits)?;
    // No speech: from the unfiltered logits of the first step. whisper_full reads a row of the
    // prompt's logits its decode did not write (a stale one); both are near zero on speech and
    // on silence alike, so hiwar's no-speech gate is the VAD's. The reference reads it at
    // <|startoftranscript|> (0.92 on silence), but whisper base gives espeak-ng's Arabic a high
    // one too: with the reference's test, 3 of 16 clean Arabic clips came out empty
    // (docs/benchmarks.md, "One encoding per utterance").
    log_softmax(&step.logits, &mut step.logprobs);
    let no_speech = usize::try_from(vocab.nosp).ok().and_then(|i| step.logprobs.get(i)).map_or(0.0, |l| l.exp());

    let mut tokens: Vec<Token> = Vec::new();
    let (mut seek_delta, mut has_ts, mut result_len, mut failed, mut restarted) = (WINDOW_FRAMES, false, 0usize, false, false);
    process_logits(vocab, &tokens, has_ts, seek_delta, &mut step);
    let n_max = usize::try_from(vocab.n_text_ctx / 2 - 4).unwrap_or(0);
    let mut drafting = !draft.is_empty();
    for i in 0..n_max {
        let token = sample(vocab, &step);
        tokens.push(token);
        if token.id > vocab.beg {
            let seek_delta_new = 2 * (token.id - vocab.beg);
            // Do not go back in time.
            if has_ts && seek_delta > seek_delta_new && result_len < i {
                failed = true;
                break;
            }
            seek_delta = seek_delta_new;
            result_len = i + 1;
            has_ts = true;
        }
        let past_end = seek_delta + DELTA_MIN >= rules.seek_end;
        if rules.stop_restart
            && token.id < vocab.eot
            && let Some(at) = started_over(&tokens, vocab.eot)
        {
            // The same segment's end as at the end of text, without the repeat.
            tokens.truncate(at);
            (result_len, seek_delta, restarted) = (at, WINDOW_FRAMES, true);
            break;
        }
        if token.id == vocab.eot || (rules.max_tokens > 0 && i >= rules.max_tokens as usize) || (has_ts && past_end) {
            if result_len == 0 && !past_end {
                failed = true;
                break;
            }
            // One segment: everything decoded, to the window's end.
            result_len = i + 1;
            seek_delta = WINDOW_FRAMES;
            break;
        }
        // A repetition loop (whisper.cpp's test at its last step).
        if i == n_max - 1 && (result_len == 0 || seek_delta < WINDOW_FRAMES / 2) {
            failed = true;
            break;
        }
        if interrupt() {
            return Err(Stopped::Interrupted);
        }
        // The draft goes on only while every token so far is the one it holds.
        drafting &= draft.get(i) == Some(&token.id);
        let next = if drafting { ahead(draft, i + 1, vocab.eot, prompt.len() + i + 1, n_ctx) } else { &[] };
        feeder.logits_after(state, token.id, prompt.len() + i, next, threads, &mut step.logits)?;
        process_logits(vocab, &tokens, has_ts, seek_delta, &mut step);
    }
    let avg_logprob = if failed || result_len == 0 {
        f32::NEG_INFINITY
    } else {
        tokens.truncate(result_len);
        (tokens.iter().map(|t| f64::from(t.plog)).sum::<f64>() / result_len as f64) as f32
    };
    let looping = !failed && result_len > 32 && tail_entropy(&tokens) < ENTROPY_THRESHOLD;
    let fallback_wanted = failed || looping || (avg_logprob < rules.logprob && no_speech < rules.no_speech);
    Ok(Decoded {
        tokens,
        no_speech,
        avg_logprob,
        seek_delta,
        fallback_wanted,
        restarted,
        drafted: feeder.drafted,
        checked: feeder.checked,
        calls: feeder.calls,
    })
}

/// The most draft tokens checked in one call.
const MAX_DRAFT: usize = 48;

/// The draft tokens fed in a decode's first call with them; each call after one whose every
/// row the decoder took feeds twice as many, up to [`MAX_DRAFT`]. Every row fed costs its
/// projection onto the vocabulary whether the decoder takes it or not: a live partial's draft
/// often parts from the final within a few tokens, and 48 rows where the first was wrong cost
/// more than the decoder calls the draft spared (docs/benchmarks.md, "A final with the last
/// partial as its draft").
const FIRST_DRAFT: usize = 12;

/// How many draft tokens the next call feeds after one that fed `chunk`: twice as many when
/// the decoder took `all` of them, else the first call's number again.
fn next_chunk(chunk: usize, all: bool) -> usize {
    if all { (chunk * 2).min(MAX_DRAFT) } else { FIRST_DRAFT }
}

/// The draft's tokens from `from` on, to be fed at positions from `pos` on: up to its end of
/// text, at most [`MAX_DRAFT`] of them, and no further than the text context has room for.
fn ahead(draft: &[WhisperTokenId], from: usize, eot: WhisperTokenId, pos: usize, n_ctx: usize) -> &[WhisperTokenId] {
    let rest = draft.get(from..).unwrap_or(&[]);
    let end = rest.iter().position(|&t| t == eot).unwrap_or(rest.len()).min(MAX_DRAFT).min(n_ctx.saturating_sub(pos + 1));
    &rest[..end]
}

#[allow(unsafe_code, reason = "functions hiwar adds to whisper.cpp (speech/whisper-cpp/patch.cmake, change 6)")]
unsafe extern "C" {
    /// Whether this thread's decodes give every row's logits (speech/whisper-cpp/patch.cmake,
    /// change 6).
    fn hiwar_whisper_all_rows(all: bool);
    /// The logits of this thread's last decode: a row of the vocabulary for each token it fed
    /// while every row was asked for; null after a failed decode.
    fn hiwar_whisper_rows_logits() -> *const f32;
}

/// Feeds the decoder a token at a time, or a token and the draft's guess at the tokens after
/// it in one call (a few at first, more while the decoder takes them all: [`FIRST_DRAFT`]):
/// the logits after each are kept, and used while the decoder picks the very tokens the draft
/// holds. A decoder step reads all of the decoder's weights whether it feeds
/// one token or a few dozen, so a draft the decoder agrees with costs about a step or two;
/// where it disagrees, the next call feeds the decoder's own token at that position, and
/// whisper.cpp drops the draft's tokens after it from its cache. The decoder still picks
/// every token itself, from the same filters.
struct Feeder {
    /// The rows of the last call that fed more than one token: `rows[j * n..]` follows `fed[j]`.
    rows: Vec<f32>,
    fed: Vec<WhisperTokenId>,
    /// The position of `fed[0]`.
    at: usize,
    /// The next row not yet used.
    next: usize,
    /// Draft tokens fed, and of them the ones the decoder then picked.
    drafted: usize,
    checked: usize,
    /// Decoder calls made.
    calls: usize,
    /// Draft tokens the next call may feed (see [`FIRST_DRAFT`]).
    chunk: usize,
}

impl Feeder {
    /// The logits after `token` at position `pos`, into `out`: the row of the last call when it
    /// fed that very token there, else a new call feeding `token` and then `ahead`.
    fn logits_after(
        &mut self,
        state: &mut WhisperState,
        token: WhisperTokenId,
        pos: usize,
        ahead: &[WhisperTokenId],
        threads: usize,
        out: &mut [f32],
    ) -> Result<(), Stopped> {
        let n = out.len();
        let err = |e: whisper_rs::WhisperError| Stopped::Failed(e.to_string());
        if self.next < self.fed.len() && self.fed[self.next] == token && self.at + self.next == pos {
            out.copy_from_slice(&self.rows[self.next * n..(self.next + 1) * n]);
            self.next += 1;
            self.checked += 1;
            return Ok(());
        }
        if !self.fed.is_empty() {
            self.chunk = next_chunk(self.chunk, self.next == self.fed.len());
        }
        let ahead = &ahead[..ahead.len().min(self.chunk)];
        self.fed.clear();
        self.next = 0;
        self.calls += 1;
        if ahead.is_empty() {
            state.decode(&[token], pos, threads).map_err(err)?;
            let raw = state.get_logits().map_err(err)?;
            if raw.len() < n {
                return Err(Stopped::Failed("whisper gave fewer logits than its vocabulary".into()));
            }
            out.copy_from_slice(&raw[..n]);
            return Ok(());
        }
        self.fed.push(token);
        self.fed.extend_from_slice(ahead);
        // SAFETY: sets a flag of this thread's, which whisper.cpp reads during the decode below.
        #[allow(unsafe_code, reason = "hiwar's whisper.cpp change 6 is a C function")]
        unsafe {
            hiwar_whisper_all_rows(true)
        };
        let decoded = state.decode(&self.fed, pos, threads);
        // SAFETY: as above.
        #[allow(unsafe_code, reason = "hiwar's whisper.cpp change 6 is a C function")]
        unsafe {
            hiwar_whisper_all_rows(false)
        };
        decoded.map_err(err)?;
        // SAFETY: after a decode of `fed.len()` tokens with every row asked for, the state
        // holds that many rows of `n` logits (`whisper_decode_internal` sizes and fills them),
        // valid until its next decode; they are copied out at once.
        #[allow(unsafe_code, reason = "the rows of logits whisper-rs does not give")]
        let rows = unsafe {
            let ptr = hiwar_whisper_rows_logits();
            if ptr.is_null() {
                return Err(Stopped::Failed("whisper gave no logits for the draft".into()));
            }
            std::slice::from_raw_parts(ptr, self.fed.len() * n)
        };
        self.rows.clear();
        self.rows.extend_from_slice(rows);
        self.at = pos;
        self.next = 1;
        self.drafted += ahead.len();
        out.copy_from_slice(&self.rows[..n]);
        Ok(())
    }
}

/// Tokens a repeat of the utterance's first words must span to be taken for a restart.
const RESTART_TOKENS: usize = 5;

/// Where the decode began its utterance again: the index at which `tokens` (a leading
/// timestamp, then text) end with a repeat of their first [`RESTART_TOKENS`] or more text
/// tokens, after them; `None` if they do not.
fn started_over(tokens: &[Token], eot: WhisperTokenId) -> Option<usize> {
    let first = usize::from(tokens.first().is_some_and(|t| t.id > eot));
    let len = tokens.len();
    (RESTART_TOKENS..=(len - first) / 2).find_map(|k| {
        let at = len - k;
        let (head, tail) = (&tokens[first..first + k], &tokens[at..]);
        head.iter().zip(tail).all(|(a, b)| a.id == b.id && a.id < eot).then_some(at)
    })
}

/// `whisper_compute_logprobs`: log-softmax over the finite logits.
fn log_softmax(logits: &[f32], out: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().filter(|&&l| l > f32::NEG_INFINITY).map(|&l| (l - max).exp()).sum();
    let lse = sum.ln() + max;
    for (o, &l) in out.iter_mut().zip(logits) {
        *o = if l > f32::NEG_INFINITY { l - lse } else { f32::NEG_INFINITY };
    }
}

/// `whisper_process_logits` at temperature 0 with suppress_blank, suppress_nst, timestamps
/// and no grammar: the filters, then log-probabilities and probabilities.
fn process_logits(vocab: &Vocabulary, tokens: &[Token], has_ts: bool, seek_delta: i32, step: &mut Step) {
    let n = vocab.n_vocab;
    let logits = &mut step.logits;
    let beg = usize::try_from(vocab.beg).unwrap_or(n).min(n);
    let eot = usize::try_from(vocab.eot).unwrap_or(n).min(n);
    let mut kill = |i: usize| {
        if let Some(l) = logits.get_mut(i) {
            *l = f32::NEG_INFINITY;
        }
    };
    if tokens.is_empty() {
        kill(eot);
        if let Some(space) = vocab.space {
            kill(space as usize);
        }
    }
    for &t in &vocab.suppressed {
        kill(t as usize);
    }
    // Timestamps come in pairs, except directly before the end of text.
    let last_was_timestamp = tokens.last().is_some_and(|t| t.id >= vocab.beg);
    let penultimate_was_timestamp = tokens.len() < 2 || tokens[tokens.len() - 2].id >= vocab.beg;
    if last_was_timestamp {
        let range = if penultimate_was_timestamp { beg..n } else { 0..eot };
        logits[range].fill(f32::NEG_INFINITY);
    }
    if tokens.is_empty() {
        let precision = 30.0 / vocab.n_audio_ctx as f32;
        let tid0 = (MAX_INITIAL_TS / precision).round() as usize;
        let from = (beg + tid0 + 1).min(n);
        logits[from..].fill(f32::NEG_INFINITY);
    }
    // Timestamps only increase.
    if has_ts {
        let to = (beg + usize::try_from(seek_delta / 2).unwrap_or(0)).min(n);
        logits[beg..to].fill(f32::NEG_INFINITY);
    }
    log_softmax(&step.logits, &mut step.logprobs);
    // When the timestamps together are likelier than any text token, sample a timestamp.
    let logprobs = &mut step.logprobs;
    let ts_max = logprobs[beg..].iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let ts_sum: f32 = logprobs[beg..].iter().filter(|&&l| l > f32::NEG_INFINITY).map(|&l| (l - ts_max).exp()).sum();
    let timestamp_logprob = if ts_sum > 0.0 { ts_sum.ln() + ts_max } else { f32::NEG_INFINITY };
    let text_max = logprobs[..beg].iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if timestamp_logprob > text_max {
        step.logits[..beg].fill(f32::NEG_INFINITY);
        logprobs[..beg].fill(f32::NEG_INFINITY);
    }
    for ((p, &l), &lp) in step.probs.iter_mut().zip(&step.logits).zip(logprobs.iter()) {
        *p = if l == f32::NEG_INFINITY { 0.0 } else { lp.exp() };
    }
}

/// `whisper_sample_token` with `best`: the likeliest token (the first of equals), and the
/// likeliest timestamp.
fn sample(vocab: &Vocabulary, step: &Step) -> Token {
    let beg = usize::try_from(vocab.beg).unwrap_or(step.probs.len()).min(step.probs.len());
    let mut token = Token { id: 0, tid: -1, p: 0.0, plog: 0.0 };
    let mut max_ts = 0.0f64;
    for (i, &p) in step.probs.iter().enumerate().skip(beg) {
        if max_ts < f64::from(p) {
            max_ts = f64::from(p);
            token.tid = i as WhisperTokenId;
        }
    }
    for (i, &p) in step.probs.iter().enumerate() {
        if token.p < p {
            token.id = i as WhisperTokenId;
            token.p = p;
            token.plog = step.logprobs[i];
        }
    }
    if token.id >= vocab.beg {
        token.tid = token.id;
    }
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocabulary() -> Vocabulary {
        // whisper base's layout: 50257 text tokens, then the specials, then 1501 timestamps.
        Vocabulary {
            n_vocab: 51865,
            eot: 50257,
            sot: 50258,
            beg: 50364,
            prev: 50361,
            transcribe: 50359,
            nosp: 50362,
            suppressed: vec![50363],
            space: Some(220),
            n_audio_ctx: 1500,
            n_text_ctx: 448,
        }
    }

    #[test]
    fn a_long_prompt_keeps_its_last_tokens_as_whisper_full_does() {
        let v = vocabulary();
        let prompt: Vec<WhisperTokenId> = (0..300).collect();
        let tokens = prompt_tokens(&v, &prompt, 50272);
        // <|startofprev|>, the last 223 of the prompt, then the task.
        assert_eq!(tokens.len(), 1 + 223 + 3);
        assert_eq!((tokens[0], tokens[1], tokens[223]), (v.prev, 77, 299));
        assert_eq!(&tokens[224..], &[v.sot, 50272, v.transcribe]);
        assert_eq!(prompt_tokens(&v, &[], 50272), vec![v.sot, 50272, v.transcribe]);
    }

    fn step(v: &Vocabulary, favour: &[(usize, f32)]) -> Step {
        let mut logits = vec![0.0; v.n_vocab];
        for &(i, l) in favour {
            logits[i] = l;
        }
        Step { logits, logprobs: vec![0.0; v.n_vocab], probs: vec![0.0; v.n_vocab] }
    }

    fn token(id: WhisperTokenId) -> Token {
        Token { id, tid: -1, p: 1.0, plog: 0.0 }
    }

    #[test]
    fn the_first_token_is_an_early_timestamp_never_a_blank() {
        let v = vocabulary();
        // End of text and the space are the likeliest, then a timestamp past 1 s.
        let mut s = step(&v, &[(50257, 30.0), (220, 29.0), (50364 + 60, 28.0), (50364, 5.0)]);
        process_logits(&v, &[], false, WINDOW_FRAMES, &mut s);
        let t = sample(&v, &s);
        assert_eq!(t.id, 50364, "the first token: {t:?}");
    }

    #[test]
    fn timestamps_come_in_pairs_and_only_increase() {
        let v = vocabulary();
        // After text then a timestamp, only a timestamp or the end of text may follow.
        let after_one = [token(50364), token(100), token(50364 + 40)];
        let mut s = step(&v, &[(100, 30.0), (50364 + 20, 10.0), (50364 + 45, 9.0)]);
        process_logits(&v, &after_one, true, 80, &mut s);
        assert_eq!(sample(&v, &s).id, 50364 + 45, "text after a single timestamp, or a timestamp going back");
        // After two timestamps, text (no third timestamp).
        let after_two = [token(50364), token(100), token(50364 + 40), token(50364 + 40)];
        let mut s = step(&v, &[(50364 + 50, 30.0), (101, 10.0)]);
        process_logits(&v, &after_two, true, 80, &mut s);
        assert_eq!(sample(&v, &s).id, 101);
    }

    #[test]
    fn a_decode_that_begins_its_utterance_again_is_cut_where_it_did() {
        let v = vocabulary();
        let ids = |ids: &[WhisperTokenId]| ids.iter().map(|&i| token(i)).collect::<Vec<_>>();
        let sentence = [10, 11, 12, 13, 14, 15];
        // <|0.00|>, the sentence, then its first five tokens again.
        let mut again = vec![50364];
        again.extend(sentence);
        again.extend(&sentence[..5]);
        assert_eq!(started_over(&ids(&again), v.eot), Some(7));
        // A repeat shorter than five tokens, or none, is not a restart.
        let mut short = vec![50364];
        short.extend(sentence);
        short.extend(&sentence[..4]);
        assert_eq!(started_over(&ids(&short), v.eot), None);
        assert_eq!(started_over(&ids(&[50364, 10, 11, 12, 13, 14, 20, 21, 22, 23, 24]), v.eot), None);
        // Without a leading timestamp too.
        assert_eq!(started_over(&ids(&[10, 11, 12, 13, 14, 10, 11, 12, 13, 14]), v.eot), Some(5));
    }

    #[test]
    fn a_draft_is_fed_up_to_its_end_of_text_and_within_the_context() {
        let eot = 50_257;
        let draft = [50_364, 400, 401, 402, eot, 403];
        assert_eq!(ahead(&draft, 1, eot, 10, 448), &[400, 401, 402]);
        assert_eq!(ahead(&draft, 4, eot, 10, 448), &[] as &[WhisperTokenId]);
        assert_eq!(ahead(&draft, 9, eot, 10, 448), &[] as &[WhisperTokenId]);
        assert_eq!(ahead(&draft, 0, eot, 445, 448), &[50_364, 400]);
        let long: Vec<WhisperTokenId> = (0..100).collect();
        assert_eq!(ahead(&long, 0, eot, 10, 448).len(), MAX_DRAFT);
    }

    #[test]
    fn a_draft_is_fed_a_few_tokens_first_and_more_while_the_decoder_takes_them_all() {
        assert_eq!(next_chunk(FIRST_DRAFT, true), 2 * FIRST_DRAFT);
        assert_eq!(next_chunk(2 * FIRST_DRAFT, true), MAX_DRAFT.min(4 * FIRST_DRAFT));
        assert_eq!(next_chunk(MAX_DRAFT, true), MAX_DRAFT);
        assert_eq!(next_chunk(MAX_DRAFT, false), FIRST_DRAFT);
    }

    #[test]
    fn a_repeated_token_has_no_entropy_and_varied_ones_do() {
        let same: Vec<Token> = (0..40).map(|_| token(7)).collect();
        assert!(tail_entropy(&same) < 1e-9);
        let varied: Vec<Token> = (0..40).map(token).collect();
        assert!((tail_entropy(&varied) - (32f64).ln()).abs() < 1e-9, "the last 32 only");
    }
}
