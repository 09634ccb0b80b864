//! hiwar's WebSocket protocol, version 1 (docs/protocol.md is its description for
//! integrators; these types are the authority on names).
//!
//! Text frames are JSON objects with `type` and `v`; binary frames are audio: PCM16LE mono,
//! upstream at the rate the client's `audio_start` states (16 kHz), downstream at the voice's
//! rate, each binary frame announced by the `audio` message just before it. Every time in a
//! turn (`audio.start`, viseme and word spans, blendshape frames) is a sample position in
//! that turn's downstream audio, which starts at 0.

use serde::{Deserialize, Serialize};

pub const VERSION: u32 = 1;

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    Hello {
        v: u32,
        /// `ar`, `en` or `auto` (the language of each question decides).
        #[serde(default)]
        lang: Option<String>,
        #[serde(default)]
        want: Want,
        /// The client's rig (`arkit`, `oculus`, `vrm`, …), for its own use; visemes suit them all.
        #[serde(default)]
        rig: Option<String>,
    },
    /// A typed question.
    Text {
        v: u32,
        text: String,
    },
    /// Microphone audio follows in binary frames at `rate` (16000), until `audio_end`.
    AudioStart {
        v: u32,
        rate: u32,
    },
    AudioEnd {
        v: u32,
    },
    /// Stop the answer now (the client's own barge-in button).
    Interrupt {
        v: u32,
    },
    Bye {
        v: u32,
    },
}

/// What the client wants streamed (audio, visemes and words by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Want {
    pub audio: bool,
    pub visemes: bool,
    pub words: bool,
    /// ARKit-52 blendshape frames (lip-sync + idle life, the window's composer) on the turn's
    /// clock, `fps` a second.
    pub blendshapes: bool,
    /// Blendshape frames a second: 30 or 60.
    pub fps: u32,
}

impl Default for Want {
    fn default() -> Want {
        Want { audio: true, visemes: true, words: true, blendshapes: false, fps: 30 }
    }
}

impl Want {
    /// What will be streamed of what was asked for.
    pub fn streams(&self) -> Vec<&'static str> {
        [("audio", self.audio), ("visemes", self.visemes), ("words", self.words), ("blendshapes", self.blendshapes)]
            .into_iter()
            .filter(|(_, on)| *on)
            .map(|(n, _)| n)
            .collect()
    }
}

/// What `ready` says of the blendshape stream when it was asked for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlendshapeInfo {
    pub fps: u32,
    /// The 52 weights' names, in the order every frame gives them (ARKit's).
    pub names: &'static [&'static str],
}

/// A speaking face sampled for the blendshape stream: the window's composer (lip-sync from the
/// phoneme timeline, idle life: blinks, gaze, breath) on a grid of `fps` frames a second of the
/// turn's sample clock, so frames continue across chunks without gaps or repeats.
#[derive(Debug)]
pub struct FaceStream {
    composer: hiwar_animation::Composer,
    idle: hiwar_animation::IdleLife,
    /// Moods and nods of what is said, on the stream's clock (turns one after another).
    expression: hiwar_animation::Expression,
    /// Samples of the turns before this one: the idle life's clock runs on across turns.
    before: u64,
    turn: u64,
    /// How far this turn's chunks have reached.
    reached: u64,
}

impl FaceStream {
    pub fn new(seed: u64) -> FaceStream {
        FaceStream {
            composer: hiwar_animation::Composer::new(),
            idle: hiwar_animation::IdleLife::new(seed),
            expression: hiwar_animation::Expression::new(0),
            before: 0,
            turn: 0,
            reached: 0,
        }
    }

    /// Moves the stream's clock on to `turn` (the idle life runs on across turns).
    fn enter(&mut self, turn: u64, rate: u32) {
        if turn != self.turn {
            self.before += self.reached;
            (self.turn, self.reached) = (turn, 0);
            self.idle.set_activity(hiwar_animation::Activity::Speaking, self.before as f64 / f64::from(rate.max(1)));
        }
        if self.expression.rate() != rate.max(1) {
            self.expression = hiwar_animation::Expression::new(rate);
        }
    }

    /// The expression of a chunk about to be streamed (its written words, positions in the
    /// chunk; `clock` the chunk's first sample on the turn's clock): call before [`Self::frames`].
    pub fn express(&mut self, turn: u64, words: &[hiwar_speech::voice::WrittenWord], rate: u32, clock: u64, fallback: bool) {
        self.enter(turn, rate);
        let base = self.before + clock;
        self.expression.speak(words.iter().map(|w| (w.text.as_str(), base + w.start, base + w.end)), fallback);
    }

    /// The frames that fall on one chunk (`clock` its first sample on the turn's clock, `n`
    /// samples at `rate`): frame k is at sample k × rate / fps.
    pub fn frames(&mut self, turn: u64, phonemes: &[hiwar_speech::voice::TimedPhoneme], rate: u32, clock: u64, n: u64, fps: u32) -> Faces {
        let (rate64, fps64) = (u64::from(rate.max(1)), u64::from(fps.max(1)));
        self.enter(turn, rate);
        self.reached = self.reached.max(clock + n);
        let timeline = hiwar_animation::Timeline {
            sample_rate: rate,
            phonemes: phonemes.iter().map(|p| hiwar_animation::TimedPhoneme { phoneme: p.phoneme.clone(), start: p.start, end: p.end }).collect(),
            words: Vec::new(),
        };
        let lipsync = hiwar_animation::LipSync::from_timeline(&timeline);
        let first = (clock * fps64).div_ceil(rate64);
        let mut out = Faces { first, weights: Vec::new(), pose: Vec::new() };
        let mut k = first;
        while k * rate64 / fps64 < clock + n {
            let pos = k * rate64 / fps64;
            let mouth = lipsync.sample(pos - clock);
            let mut life = self.idle.sample((self.before + pos) as f64 / rate64 as f64);
            self.expression.sample(self.before + pos).apply(&mut life);
            let face = self.composer.compose(&mouth, &life);
            out.weights.push(face.arkit.iter().map(|w| (w.clamp(0.0, 1.0) * 1000.0).round() / 1000.0).collect());
            let [pitch, yaw, roll] = face.head;
            let radians = |x: f32| (x * 10_000.0).round() / 10_000.0;
            out.pose.push([
                radians(pitch),
                radians(yaw),
                radians(roll),
                radians(face.gaze[0]),
                radians(face.gaze[1]),
                (face.breath.clamp(0.0, 1.0) * 1000.0).round() / 1000.0,
            ]);
            k += 1;
        }
        out
    }
}

/// One chunk's faces for the blendshape stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Faces {
    /// The index of the first frame on the turn's grid.
    pub first: u64,
    /// 52 ARKit weights a frame, rounded to 3 decimals.
    pub weights: Vec<Vec<f32>>,
    /// What a rig moves besides its morph targets, a frame each: the head's pitch (positive
    /// up), yaw (positive to the avatar's left) and roll, the eyes' yaw and pitch (the same
    /// signs), radians to 4 decimals; and the chest's rise, 0–1 — as the kiosk window turns its
    /// avatar's head and eye nodes.
    pub pose: Vec<[f32; 6]>,
}

/// One mouth shape over a span of the turn's audio.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VisemeSpan {
    /// Oculus viseme name without its prefix: sil PP FF TH DD kk CH SS nn RR aa E I O U.
    pub viseme: &'static str,
    /// 0–1 (short vowels are smaller than long ones).
    pub weight: f32,
    pub start: u64,
    pub end: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WordSpan {
    /// As spoken.
    pub text: String,
    pub start: u64,
    pub end: u64,
    /// As the answer wrote it ("250" where `text` is «مئتان»); spoken words of one written word
    /// repeat it.
    pub written: String,
    /// Says the same written word as the entry before it (sent only when true).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub joined: bool,
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    Ready {
        v: u32,
        session: String,
        audio_rate: u32,
        audio_format: &'static str,
        languages: Vec<&'static str>,
        streams: Vec<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        blendshapes: Option<BlendshapeInfo>,
    },
    State {
        v: u32,
        state: &'static str,
        turn: Option<u64>,
    },
    Transcript {
        v: u32,
        turn: u64,
        text: String,
        lang: &'static str,
        #[serde(rename = "final")]
        is_final: bool,
    },
    Reply {
        v: u32,
        turn: u64,
        delta: String,
    },
    /// The next binary frame: `samples` PCM16LE at `rate`, starting at `start` in the turn.
    Audio {
        v: u32,
        turn: u64,
        seq: u64,
        start: u64,
        samples: u64,
        rate: u32,
        what: &'static str,
    },
    Visemes {
        v: u32,
        turn: u64,
        frames: Vec<VisemeSpan>,
    },
    Words {
        v: u32,
        turn: u64,
        words: Vec<WordSpan>,
    },
    /// ARKit-52 weights (names and order in `ready.blendshapes.names`), `fps` frames a second
    /// of the turn's clock: frame `first + i` is at sample (first + i) × audio_rate / fps; with
    /// each frame's head, eyes and breath in `pose` ([`Faces::pose`]).
    Blendshapes {
        v: u32,
        turn: u64,
        fps: u32,
        first: u64,
        frames: Vec<Vec<f32>>,
        pose: Vec<[f32; 6]>,
    },
    Error {
        v: u32,
        code: &'static str,
        message: String,
        message_ar: String,
    },
    EndOfTurn {
        v: u32,
        turn: u64,
        source: &'static str,
        interrupted: bool,
        samples: u64,
    },
}

/// A message that cannot be taken: its code and bilingual text.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
    pub message_ar: &'static str,
}

impl Refusal {
    pub fn to_msg(&self) -> ServerMsg {
        ServerMsg::Error { v: VERSION, code: self.code, message: self.message.clone(), message_ar: self.message_ar.to_string() }
    }
}

/// Decodes a text frame: JSON, a known `type`, version 1, sane fields.
pub fn decode(text: &str) -> Result<ClientMsg, Refusal> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| Refusal {
        code: "bad_json",
        message: format!("not JSON: {e}"),
        message_ar: "الرسالة ليست بصيغة JSON صحيحة.",
    })?;
    let v = value.get("v").and_then(serde_json::Value::as_u64);
    if v != Some(u64::from(VERSION)) {
        return Err(Refusal {
            code: "bad_version",
            message: format!("protocol version {} is not spoken here; send \"v\": {VERSION}", v.map_or("(none)".to_string(), |v| v.to_string())),
            message_ar: "إصدار البروتوكول غير مدعوم.",
        });
    }
    let kind = value.get("type").and_then(serde_json::Value::as_str).unwrap_or("").to_string();
    let msg: ClientMsg = serde_json::from_value(value).map_err(|e| {
        let known = ["hello", "text", "audio_start", "audio_end", "interrupt", "bye"];
        if known.contains(&kind.as_str()) {
            Refusal { code: "bad_message", message: format!("{kind}: {e}"), message_ar: "حقول الرسالة غير صحيحة." }
        } else {
            Refusal {
                code: "unknown_type",
                message: format!("unknown message type {kind:?}; known: {}", known.join(", ")),
                message_ar: "نوع الرسالة غير معروف.",
            }
        }
    })?;
    match &msg {
        ClientMsg::Text { text, .. } if text.trim().is_empty() => {
            Err(Refusal { code: "bad_message", message: "text: empty question".into(), message_ar: "السؤال فارغ." })
        }
        ClientMsg::Text { text, .. } if text.chars().count() > 2_000 => {
            Err(Refusal {
                code: "too_long", message: format!("text: {} characters; at most 2000", text.chars().count()), message_ar: "السؤال طويل جداً."
            })
        }
        ClientMsg::Hello { want, .. } if want.fps != 30 && want.fps != 60 => {
            Err(Refusal {
                code: "bad_message", message: format!("hello: want.fps {}; 30 or 60", want.fps), message_ar: "عدد الإطارات غير مدعوم."
            })
        }
        ClientMsg::AudioStart { rate, .. } if !(8_000..=48_000).contains(rate) => Err(Refusal {
            code: "bad_message",
            message: format!("audio_start: rate {rate} Hz; 8000–48000 (16000 preferred)"),
            message_ar: "معدل العينات غير مدعوم.",
        }),
        _ => Ok(msg),
    }
}

/// PCM16LE bytes → f32 samples; an odd trailing byte is an error.
pub fn pcm16_to_f32(bytes: &[u8]) -> Result<Vec<f32>, Refusal> {
    if !bytes.len().is_multiple_of(2) {
        return Err(Refusal {
            code: "bad_audio", message: format!("{} bytes is not whole PCM16 samples", bytes.len()), message_ar: "بيانات الصوت غير صالحة."
        });
    }
    Ok(bytes.chunks_exact(2).map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0).collect())
}

pub fn f32_to_pcm16(samples: &[f32]) -> Vec<u8> {
    samples.iter().flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes()).collect()
}

/// The voice's phoneme timeline as viseme spans (positions shifted by `offset`).
pub fn visemes_of(phonemes: &[hiwar_speech::voice::TimedPhoneme], offset: u64) -> Vec<VisemeSpan> {
    use hiwar_animation::viseme::Kind;
    phonemes
        .iter()
        .map(|p| {
            let (viseme, weight) = match hiwar_animation::classify(&p.phoneme) {
                Some(s) if s.kind == Kind::Pause => (hiwar_animation::Viseme::Sil, 0.0),
                Some(s) if s.kind == Kind::Vowel => (s.viseme, if s.long { 1.0 } else { 0.7 }),
                Some(s) => (s.viseme, 1.0),
                None => (hiwar_animation::Viseme::Sil, 0.0),
            };
            VisemeSpan { viseme: viseme.oculus_name().trim_start_matches("viseme_"), weight, start: p.start + offset, end: p.end + offset }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_decode_and_bad_ones_are_named() {
        assert_eq!(decode(r#"{"type":"text","v":1,"text":"متى تفتحون؟"}"#), Ok(ClientMsg::Text { v: 1, text: "متى تفتحون؟".into() }));
        let hello =
            decode(r#"{"type":"hello","v":1,"lang":"ar","want":{"audio":true,"visemes":true,"words":false,"blendshapes":true},"rig":"arkit"}"#).expect("hello");
        assert!(matches!(hello, ClientMsg::Hello { want: Want { words: false, .. }, .. }));
        for (frame, code) in [
            ("{not json", "bad_json"),
            (r#"{"type":"text","v":2,"text":"x"}"#, "bad_version"),
            (r#"{"type":"text","text":"x"}"#, "bad_version"),
            (r#"{"type":"dance","v":1}"#, "unknown_type"),
            (r#"{"type":"text","v":1}"#, "bad_message"),
            (r#"{"type":"text","v":1,"text":"  "}"#, "bad_message"),
            (r#"{"type":"text","v":1,"text":"x","extra":1}"#, "bad_message"),
            (r#"{"type":"audio_start","v":1,"rate":1}"#, "bad_message"),
            ("[]", "bad_version"),
            ("null", "bad_version"),
        ] {
            assert_eq!(decode(frame).map_err(|r| r.code), Err(code), "{frame}");
        }
        let long = format!(r#"{{"type":"text","v":1,"text":"{}"}}"#, "ب".repeat(2_001));
        assert_eq!(decode(&long).map_err(|r| r.code), Err("too_long"));
    }

    /// A property test of the decoder: random bytes, random JSON-ish text and mutations of
    /// valid messages never panic and always give a message or a named refusal.
    #[test]
    fn the_decoder_never_panics_on_anything() {
        let valid = [
            r#"{"type":"hello","v":1,"lang":"auto","want":{"audio":true,"visemes":true,"words":true}}"#,
            r#"{"type":"text","v":1,"text":"أبغى أجدد الـ Emirates ID"}"#,
            r#"{"type":"audio_start","v":1,"rate":16000}"#,
            r#"{"type":"interrupt","v":1}"#,
        ];
        let alphabet: Vec<char> = "{}[]\":,0123456789.-eEtruefalsnl vtypehoxa\\uبمح\u{0}\u{FFFF}".chars().collect();
        let mut rng = fastrand::Rng::with_seed(7);
        for i in 0..20_000 {
            let text: String = match i % 3 {
                0 => (0..rng.usize(0..64)).map(|_| alphabet[rng.usize(..alphabet.len())]).collect(),
                1 => {
                    let mut s: Vec<char> = valid[rng.usize(..valid.len())].chars().collect();
                    for _ in 0..rng.usize(1..4) {
                        let at = rng.usize(..s.len());
                        match rng.u8(0..3) {
                            0 => {
                                s.remove(at);
                            }
                            1 => s.insert(at, alphabet[rng.usize(..alphabet.len())]),
                            _ => s[at] = alphabet[rng.usize(..alphabet.len())],
                        }
                    }
                    s.into_iter().collect()
                }
                _ => String::from_utf8_lossy(&(0..rng.usize(0..48)).map(|_| rng.u8(..)).collect::<Vec<u8>>()).into_owned(),
            };
            if let Err(r) = decode(&text) {
                assert!(!r.code.is_empty() && !r.message.is_empty() && !r.message_ar.is_empty(), "{text:?}");
            }
        }
        assert!(pcm16_to_f32(&[1, 2, 3]).is_err());
        assert_eq!(pcm16_to_f32(&f32_to_pcm16(&[0.5, -0.5])).expect("pcm").len(), 2);
    }

    #[test]
    fn visemes_follow_the_phonemes_on_the_turns_clock() {
        let ph = |p: &str, s: u64, e: u64| hiwar_speech::voice::TimedPhoneme { phoneme: p.into(), start: s, end: e };
        let v = visemes_of(&[ph("m", 0, 100), ph("aː", 100, 300), ph("a", 300, 400), ph(" ", 400, 450)], 1_000);
        let names: Vec<&str> = v.iter().map(|s| s.viseme).collect();
        assert_eq!(names, ["PP", "aa", "aa", "sil"]);
        assert_eq!((v[0].start, v[3].end), (1_000, 1_450));
        assert!(v[1].weight > v[2].weight, "long vowels open wider");
    }

    #[test]
    fn blendshape_frames_fall_on_one_grid_across_chunks_and_the_mouth_opens_on_vowels() {
        let ph = |phoneme: &str, start: u64, end: u64| hiwar_speech::voice::TimedPhoneme { phoneme: phoneme.into(), start, end };
        let rate = 22_050;
        let mut face = FaceStream::new(1);
        // One second: silence, then "ma" (a long open vowel from 0.3 s to 0.8 s).
        let chunk = [ph("_", 0, 4_410), ph("m", 4_410, 6_615), ph("aː", 6_615, 17_640), ph("_", 17_640, 22_050)];
        let Faces { first, weights: frames, pose } = face.frames(1, &chunk, rate, 0, 22_050, 30);
        assert_eq!((first, frames.len(), pose.len()), (0, 30, 30));
        assert!(frames.iter().all(|f| f.len() == 52 && f.iter().all(|w| (0.0..=1.0).contains(w))));
        let jaw = hiwar_animation::rig::arkit_index("jawOpen").expect("jawOpen");
        assert!(frames[3][jaw] < 0.05 && frames[18][jaw] > 0.2, "closed in the silence, open on the vowel: {} / {}", frames[3][jaw], frames[18][jaw]);
        // The next chunk of the turn starts at sample 22050 and a half-second: frames 30..44.
        // The head, eyes and breath of each frame: within a person's range, and alive — over
        // four seconds of speaking the eyes move and the chest rises and falls.
        let long = [ph("_", 0, 4 * 22_050)];
        let alive = FaceStream::new(7).frames(1, &long, rate, 0, 4 * 22_050, 30).pose;
        assert_eq!(alive.len(), 120);
        let span = |i: usize| alive.iter().map(|p| p[i]).fold(f32::MAX, f32::min)..=alive.iter().map(|p| p[i]).fold(f32::MIN, f32::max);
        assert!(alive.iter().all(|p| p[..5].iter().all(|r| r.abs() < 0.35) && (0.0..=1.0).contains(&p[5])), "{alive:?}");
        let moved = |i: usize| span(i).end() - span(i).start();
        assert!(moved(1) > 0.01 && moved(3) + moved(4) > 0.01 && moved(5) > 0.2, "head {:?}, gaze {:?} {:?}, breath {:?}", span(1), span(3), span(4), span(5));
        let Faces { first, weights: frames, .. } = face.frames(1, &chunk[..2], rate, 22_050, 11_025, 30);
        assert_eq!((first, frames.len()), (30, 15));
        // 60 a second on a new turn: twice as many, from 0 again.
        let Faces { first, weights: frames, .. } = face.frames(2, &chunk, rate, 0, 22_050, 60);
        assert_eq!((first, frames.len()), (0, 60));
        // What is said shows: a greeting smiles, a fallback does not and lifts the inner brows.
        let smile = hiwar_animation::rig::arkit_index("mouthSmileLeft").expect("smile");
        let brows = hiwar_animation::rig::arkit_index("browInnerUp").expect("brows");
        let word = |text: &str| hiwar_speech::voice::WrittenWord { text: text.into(), start: 0, end: 22_050 };
        let mut warm = FaceStream::new(1);
        warm.express(1, &[word("Hello!")], rate, 0, false);
        let frames = warm.frames(1, &chunk, rate, 0, 22_050, 30).weights;
        let mut sorry = FaceStream::new(1);
        sorry.express(1, &[word("Hello!")], rate, 0, true);
        let concerned = sorry.frames(1, &chunk, rate, 0, 22_050, 30).weights;
        assert!(frames[15][smile] > 0.5 && concerned[15][smile] < 0.05, "{} / {}", frames[15][smile], concerned[15][smile]);
        assert!(concerned[15][brows] > frames[15][brows] + 0.2);
        assert!(decode(r#"{"type":"hello","v":1,"want":{"blendshapes":true,"fps":25}}"#).is_err_and(|r| r.code == "bad_message"));
        let hello = decode(r#"{"type":"hello","v":1,"want":{"blendshapes":true,"fps":60}}"#).expect("hello");
        assert!(matches!(hello, ClientMsg::Hello { want: Want { blendshapes: true, fps: 60, audio: true, .. }, .. }));
    }
}
