//! Arabic diacritisation with rawi v2 (text2tashkeel, Apache-2.0) on ONNX Runtime.
//!
//! As the model's own front-end does: NFD, drop symbols, the base letters (no combining
//! marks) go in, one of 75 mark classes per character comes out. Unlike it, hiwar keeps the
//! input's own letters and marks: hamza and madda (which NFD splits off أ إ آ ؤ ئ) are never
//! taken from the model, and a letter that already carries tashkeel keeps it.

use std::collections::HashMap;
use std::path::Path;

use ort::session::Session;
use ort::value::Tensor;
use serde::Deserialize;
use unicode_normalization::UnicodeNormalization as _;

use crate::text::is_arabic_letter;
use crate::{Error, Result};

/// Harakat, tanween, shadda, sukun and the dagger alef: what diacritisation adds.
pub fn is_tashkeel(c: char) -> bool {
    matches!(c, '\u{064B}'..='\u{0652}' | '\u{0670}')
}

fn is_combining(c: char) -> bool {
    matches!(c, '\u{0610}'..='\u{061A}' | '\u{064B}'..='\u{065F}' | '\u{0670}' | '\u{06D6}'..='\u{06ED}')
}

#[derive(Deserialize)]
struct Vocab {
    char_to_idx: HashMap<String, i64>,
    diac_to_idx: HashMap<String, i64>,
}

pub struct Diacritizer {
    session: Session,
    chars: HashMap<char, i64>,
    unknown: i64,
    marks: HashMap<i64, String>,
}

impl std::fmt::Debug for Diacritizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Diacritizer").finish_non_exhaustive()
    }
}

impl Diacritizer {
    /// Loads rawi v2 and its vocabulary; ONNX Runtime must be loaded first.
    pub fn load(model: &Path, vocab: &Path) -> Result<Diacritizer> {
        let text = std::fs::read_to_string(vocab).map_err(Error::io(vocab))?;
        let v: Vocab = serde_json::from_str(&text).map_err(|e| Error::bad(vocab, "rawi vocabulary", e.to_string()))?;
        let chars: HashMap<char, i64> = v
            .char_to_idx
            .iter()
            .filter_map(|(k, i)| {
                let mut it = k.chars();
                match (it.next(), it.next()) {
                    (Some(c), None) => Some((c, *i)),
                    _ => None,
                }
            })
            .collect();
        let unknown = v.char_to_idx.get("<UNK>").copied().unwrap_or(1);
        let marks = v.diac_to_idx.into_iter().map(|(s, i)| (i, s)).collect();
        let session = crate::onnx::session(model, 1, "tashkeel")?;
        Ok(Diacritizer { session, chars, unknown, marks })
    }

    /// Fully diacritises `text`, keeping its letters and any marks it already has.
    pub fn diacritize(&mut self, text: &str) -> Result<String> {
        // Base characters with the combining marks that followed each in the input.
        let mut bases: Vec<(char, String)> = Vec::new();
        for c in text.nfd() {
            if is_combining(c) {
                match bases.last_mut() {
                    Some((_, marks)) => marks.push(c),
                    None => bases.push((c, String::new())),
                }
            } else {
                bases.push((c, String::new()));
            }
        }
        if !bases.iter().any(|(c, _)| is_arabic_letter(*c)) {
            return Ok(text.to_string());
        }
        let ids: Vec<i64> = bases.iter().map(|(c, _)| self.chars.get(c).copied().unwrap_or(self.unknown)).collect();
        let n = ids.len();
        let onnx = |e: ort::Error| Error::Onnx(format!("tashkeel: {e}"));
        let input = Tensor::from_array(([1usize, n], ids)).map_err(onnx)?;
        let outputs = self.session.run(ort::inputs!["input" => input]).map_err(onnx)?;
        let (shape, scores) = outputs["output"].try_extract_tensor::<f32>().map_err(onnx)?;
        let classes = *shape.last().unwrap_or(&0) as usize;
        if classes == 0 || scores.len() != n * classes {
            return Err(Error::Onnx("tashkeel: unexpected output shape".into()));
        }
        let mut out = String::with_capacity(text.len() * 2);
        for (i, (base, own)) in bases.iter().enumerate() {
            out.push(*base);
            // The input's own non-tashkeel marks (hamza, madda) always stay.
            out.extend(own.chars().filter(|c| !is_tashkeel(*c)));
            if !is_arabic_letter(*base) {
                out.extend(own.chars().filter(|c| is_tashkeel(*c)));
                continue;
            }
            if own.chars().any(is_tashkeel) {
                out.extend(own.chars().filter(|c| is_tashkeel(*c)));
                continue;
            }
            let row = &scores[i * classes..(i + 1) * classes];
            let best = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(k, _)| k as i64);
            if let Some(marks) = self.marks.get(&best) {
                out.extend(marks.chars().filter(|c| is_tashkeel(*c)));
            }
        }
        Ok(out.nfc().collect())
    }
}
