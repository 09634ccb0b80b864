//! Cutting streamed LLM text into speakable chunks: at clause and sentence ends
//! (. ! ? ، ؛ ؟ , ; : and newlines), never inside a number (3.5, 1,250), an abbreviation
//! (e.g., د.إ, Dr.) or a URL, with the first chunk short so speech starts early.

/// Abbreviations whose full stop does not end a sentence (lower-cased, without the last dot).
const ABBREVIATIONS: &[&str] = &["e.g", "i.e", "etc", "dr", "mr", "mrs", "ms", "no", "st", "vs", "approx", "د.إ", "ص.ب", "د", "م", "ش.م.ع"];

#[derive(Debug, Clone)]
pub struct Chunker {
    buffer: String,
    /// Chunks handed out so far.
    emitted: usize,
    /// The first chunk may end at a comma once it has this many characters.
    first_min: usize,
    /// Later chunks prefer sentence ends; a clause end is taken once they are this long.
    later_min: usize,
    /// A chunk longer than this is cut at the last space (a run-on sentence).
    max: usize,
}

impl Default for Chunker {
    fn default() -> Self {
        Chunker { buffer: String::new(), emitted: 0, first_min: 6, later_min: 60, max: 240 }
    }
}

impl Chunker {
    pub fn new() -> Chunker {
        Chunker::default()
    }

    /// Adds streamed text; returns the chunks now complete.
    pub fn push(&mut self, delta: &str) -> Vec<String> {
        self.buffer.push_str(delta);
        let mut out = Vec::new();
        while let Some(end) = self.next_cut() {
            let chunk: String = self.buffer.drain(..end).collect();
            let chunk = chunk.trim().to_string();
            if !chunk.is_empty() {
                out.push(chunk);
                self.emitted += 1;
            }
        }
        out
    }

    /// The stream ended: whatever is left.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buffer);
        let rest = rest.trim();
        (!rest.is_empty()).then(|| rest.to_string())
    }

    /// Drops what is buffered (barge-in).
    pub fn clear(&mut self) {
        self.buffer.clear();
    }

    /// Byte index just after the next place to cut, if the buffer holds one for sure.
    fn next_cut(&self) -> Option<usize> {
        let chars: Vec<(usize, char)> = self.buffer.char_indices().collect();
        let min = if self.emitted == 0 { self.first_min } else { self.later_min };
        for (k, &(i, c)) in chars.iter().enumerate() {
            let next = chars.get(k + 1).map(|&(_, n)| n);
            // A mark followed by nothing yet may still turn into "3.5" or "e.g.": wait.
            let Some(next) = next else { break };
            let after = i + c.len_utf8();
            let sentence_end = matches!(c, '.' | '!' | '?' | '؟' | '\n');
            let clause_end = matches!(c, ',' | '،' | ';' | '؛' | ':');
            if !(sentence_end || clause_end) || !(next.is_whitespace() || c == '\n') {
                continue;
            }
            if c == '.' && self.is_abbreviation(i) {
                continue;
            }
            if c == ':' && self.buffer[after..].starts_with("//") {
                continue;
            }
            let len = self.buffer[..after].chars().count();
            if sentence_end && (len >= self.first_min.min(min) || self.emitted > 0) {
                return Some(after);
            }
            if clause_end && len >= min {
                return Some(after);
            }
        }
        if self.buffer.chars().count() > self.max {
            return self.buffer[..self.max].rfind(' ').map(|i| i + 1);
        }
        None
    }

    fn is_abbreviation(&self, dot: usize) -> bool {
        let word_start = self.buffer[..dot].rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let word = self.buffer[word_start..dot].to_lowercase();
        let word = word.trim_start_matches(|c: char| !c.is_alphanumeric());
        ABBREVIATIONS.contains(&word) || (word.chars().count() == 1 && word.chars().all(char::is_alphabetic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(text: &str, step: usize) -> Vec<String> {
        let mut c = Chunker::new();
        let chars: Vec<char> = text.chars().collect();
        let mut out = Vec::new();
        for piece in chars.chunks(step) {
            out.extend(c.push(&piece.iter().collect::<String>()));
        }
        out.extend(c.finish());
        out
    }

    #[test]
    fn the_first_chunk_is_a_short_clause_and_numbers_stay_whole() {
        let text = "أهلاً بك، يسعدني مساعدتك. الرسوم 3.5 دينار، أو 1,250 فلس للطلب الواحد في المركز الرئيسي؛ والدفع نقداً أو بالبطاقة. هل تحتاج شيئاً آخر؟";
        for step in [1, 3, 7, 50] {
            let chunks = stream(text, step);
            assert_eq!(chunks[0], "أهلاً بك،", "step {step}: {chunks:?}");
            assert!(chunks.iter().any(|c| c.contains("3.5 دينار")), "{chunks:?}");
            assert!(chunks.iter().any(|c| c.contains("1,250")), "{chunks:?}");
            assert_eq!(chunks.last().map(String::as_str), Some("هل تحتاج شيئاً آخر؟"));
            assert_eq!(chunks.concat().replace(' ', ""), text.replace(' ', ""), "nothing lost");
        }
    }

    #[test]
    fn abbreviations_and_urls_do_not_end_sentences() {
        let text = "The fee is 50 د.إ. only, e.g. for renewals. Visit https://example.gov.ae/renew today. Dr. Amal will help you.";
        let chunks = stream(text, 2);
        assert!(chunks.iter().any(|c| c.contains("50 د.إ. only")), "{chunks:?}");
        assert!(chunks.iter().any(|c| c.contains("e.g. for renewals.")), "{chunks:?}");
        assert!(chunks.iter().any(|c| c.contains("https://example.gov.ae/renew today.")), "{chunks:?}");
        assert!(chunks.iter().any(|c| c.starts_with("Dr. Amal")), "{chunks:?}");
    }

    #[test]
    fn a_run_on_without_punctuation_is_cut_at_a_space() {
        let text = "word ".repeat(100);
        let chunks = stream(&text, 5);
        assert!(chunks.len() >= 2 && chunks.iter().all(|c| c.chars().count() <= 240), "{:?}", chunks.iter().map(|c| c.len()).collect::<Vec<_>>());
    }
}
