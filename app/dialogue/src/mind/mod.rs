//! The mind: what to say back. Retrieval over the organisation's documents, then Qwen (any
//! OpenAI-compatible endpoint) streamed with those passages in its prompt; with no LLM
//! configured, or when it fails, the best passage itself, or an honest "I can't help with that
//! now" in the person's language. Conversation memory is bounded by tokens and wiped with
//! the session.

pub mod knowledge;
pub mod llm;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use hiwar_core::bus::Lang;
pub use hiwar_core::bus::Source;
use hiwar_core::config::Config;
use knowledge::{Hit, Knowledge};
use llm::{LlmClient, LlmError, LlmEvent, LlmSettings, Message, Usage};

#[derive(Debug, Clone, PartialEq)]
pub enum MindEvent {
    /// Passages found for the question (titles), and how long the search took.
    Retrieved { titles: Vec<String>, ms: f64 },
    /// A piece of the answer, to be spoken as it comes.
    Delta(String),
    /// The LLM failed (`kind`, `log`); `text` is said instead of, or after, what was said.
    Fallback { kind: &'static str, log: String, text: String },
    /// The answer is complete.
    Done { source: Source, text: String, usage: Option<Usage>, first_token_ms: Option<f64> },
}

/// Short things said in the person's language.
pub struct Phrases;

impl Phrases {
    pub fn holding(lang: Lang) -> &'static str {
        match lang {
            Lang::Ar => "لحظة من فضلك…",
            Lang::En => "One moment, please…",
        }
    }

    pub fn no_answer(lang: Lang) -> &'static str {
        match lang {
            Lang::Ar => "عذراً، لا أستطيع المساعدة في هذا الآن. يمكنك سؤال موظف الاستقبال.",
            Lang::En => "Sorry, I can't help with that right now. Please ask at the reception desk.",
        }
    }

    pub fn cut_off(lang: Lang) -> &'static str {
        match lang {
            Lang::Ar => "عذراً، انقطع الاتصال. هل تعيد سؤالك من فضلك؟",
            Lang::En => "Sorry, I lost the connection. Could you ask again, please?",
        }
    }

    fn from_knowledge(lang: Lang) -> &'static str {
        match lang {
            Lang::Ar => "حسب معلومات المركز: ",
            Lang::En => "According to the centre's information: ",
        }
    }
}

/// The least share of a question's weight a passage must cover to be read out on its own.
const MIN_COVERAGE: f32 = 0.3;

/// Past exchanges, oldest first, within a token budget.
#[derive(Debug, Default)]
struct Memory {
    messages: VecDeque<Message>,
    budget: usize,
    /// What the person heard of an interrupted answer, for an exchange not stored yet (the
    /// answer's own task stores it when its stream ends, which may come after the cut).
    heard: Option<(String, String)>,
}

/// Qwen's tokenizer takes about 2.5 characters of Arabic or 4 of English per token.
pub fn estimate_tokens(text: &str) -> usize {
    let arabic = text.chars().filter(|c| hiwar_speech::text::is_arabic(*c)).count();
    let other = text.chars().count() - arabic;
    (arabic * 2).div_ceil(5) + other.div_ceil(4)
}

impl Memory {
    fn push(&mut self, question: &str, answer: &str) {
        // A cut recorded for another question is stale (its answer never got stored).
        let answer = match self.heard.take() {
            Some((q, heard)) if q == question => heard,
            Some((mut q, mut heard)) => {
                hiwar_core::runtime::wipe(&mut q);
                hiwar_core::runtime::wipe(&mut heard);
                answer.to_string()
            }
            None => answer.to_string(),
        };
        self.messages.push_back(Message { role: "user", content: question.to_string() });
        self.messages.push_back(Message { role: "assistant", content: answer });
        while self.messages.iter().map(|m| estimate_tokens(&m.content)).sum::<usize>() > self.budget && !self.messages.is_empty() {
            // Whole exchanges go, oldest first.
            self.messages.pop_front();
            self.messages.pop_front();
        }
    }
}

pub struct Mind {
    pub knowledge: Arc<Knowledge>,
    pub llm: Option<LlmClient>,
    persona: String,
    memory: Arc<Mutex<Memory>>,
    top_k: usize,
    /// The kiosk's first language (`hearing.languages`' first): what a person who was not
    /// understood is told first, whatever language hearing guessed.
    primary: Lang,
}

impl std::fmt::Debug for Mind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mind").field("passages", &self.knowledge.passages.len()).field("llm", &self.llm.as_ref().map(|l| &l.settings.base_url)).finish()
    }
}

pub use hiwar_core::assets::knowledge_dir;

/// Hearing's settings from the config, with the knowledge base's own words as the
/// recogniser's vocabulary in the languages `hearing.knowledge_prompt` lists. A knowledge folder that
/// does not load leaves the vocabulary empty: hearing still works, and the mind reports the
/// folder's fault where it loads it.
pub fn hearing_config(config: &Config, lang: Option<&str>) -> anyhow::Result<hiwar_speech::hearing::HearingConfig> {
    let hc = hiwar_core::build::hearing_config(config, lang)?;
    if !config.hearing.knowledge_prompt.is_empty()
        && let Ok(k) = Knowledge::load(&knowledge_dir(config))
    {
        set_vocabulary(&hc.vocabulary, &k, config);
    }
    Ok(hc)
}

/// Replaces the recogniser's vocabulary with `knowledge`'s in the languages
/// `hearing.knowledge_prompt` lists; the running hearing uses it from its next decode.
pub fn set_vocabulary(target: &hiwar_speech::hearing::Vocabulary, knowledge: &Knowledge, config: &Config) {
    let mut words = knowledge.vocabulary();
    words.retain(|lang, _| config.hearing.knowledge_prompt.contains(lang));
    if let Ok(mut v) = target.write() {
        *v = words;
    }
}

/// The persona for `config`: the Arabic and English system prompts, and, when asked, the
/// request for fully diacritised Arabic (what the voice reads best).
fn persona(config: &Config) -> String {
    let mut p = format!("{}\n\n{}", config.llm.persona_ar.trim(), config.llm.persona_en.trim());
    if config.llm.arabic_tashkeel {
        p.push_str(
            "\n\nاكتب إجابتك العربية مشكولة تشكيلًا كاملًا: حركة كل حرف، والشدة، والتنوين، وعلامة الإعراب في آخر الكلمة، \
             فالإجابة تُقرأ بصوت آلي ينطق ما تكتبه حرفًا حرفًا. Arabic answers: write full tashkeel on every letter.",
        );
    }
    p
}

impl Mind {
    pub fn from_config(config: &Config) -> anyhow::Result<Mind> {
        let knowledge = Knowledge::load(&knowledge_dir(config)).context("knowledge.dir")?;
        let llm = LlmSettings::from_config(config)?.map(LlmClient::new).transpose()?;
        Ok(Mind {
            knowledge: Arc::new(knowledge),
            llm,
            persona: persona(config),
            memory: Arc::new(Mutex::new(Memory { messages: VecDeque::new(), budget: config.llm.memory_tokens, heard: None })),
            top_k: config.knowledge.top_k.max(1),
            primary: Lang::of_code(config.hearing.languages.first().map_or("ar", String::as_str)),
        })
    }

    /// The system prompt this mind sends (its persona; the centre's passages follow per turn).
    pub fn persona(&self) -> &str {
        &self.persona
    }

    /// Another conversation with the same knowledge and LLM, and a memory of its own (a
    /// WebSocket session).
    pub fn session(&self) -> Mind {
        let budget = self.memory.lock().map_or(1_500, |m| m.budget);
        Mind {
            knowledge: Arc::clone(&self.knowledge),
            llm: self.llm.clone(),
            persona: self.persona.clone(),
            memory: Arc::new(Mutex::new(Memory { messages: VecDeque::new(), budget, heard: None })),
            top_k: self.top_k,
            primary: self.primary,
        }
    }

    /// This mind, carrying on `old`'s conversation (a config reload mid-session).
    pub fn continuing(mut self, old: &Mind) -> Mind {
        self.memory = Arc::clone(&old.memory);
        self
    }

    /// The answer to `question` was interrupted: only `heard` (the words played before the cut)
    /// reached the person, so that is what the conversation remembers of it, marked as cut
    /// off. Works whether the answer's exchange is already stored or not yet.
    pub fn heard_only(&self, question: &str, heard: &str) {
        let heard = if heard.trim().is_empty() { "…".to_string() } else { format!("{}…", heard.trim()) };
        if let Ok(mut m) = self.memory.lock() {
            let n = m.messages.len();
            if n >= 2 && m.messages[n - 2].content == question {
                hiwar_core::runtime::wipe(&mut m.messages[n - 1].content);
                m.messages[n - 1].content = heard;
            } else {
                m.heard = Some((question.to_string(), heard));
            }
        }
    }

    /// Forgets the conversation (a kiosk session ended).
    pub fn forget(&self) {
        if let Ok(mut m) = self.memory.lock() {
            for mut message in m.messages.drain(..) {
                hiwar_core::runtime::wipe(&mut message.content);
            }
            if let Some((mut q, mut a)) = m.heard.take() {
                hiwar_core::runtime::wipe(&mut q);
                hiwar_core::runtime::wipe(&mut a);
            }
            m.messages.shrink_to_fit();
        }
    }

    /// Exchanges remembered.
    #[cfg(test)]
    pub fn remembered(&self) -> usize {
        self.memory.lock().map_or(0, |m| m.messages.len() / 2)
    }

    /// The passage read out when there is no LLM answer, in the person's language. With no
    /// passage either, the person was perhaps not understood at all (whisper base hears noisy
    /// Arabic as English words): the apology comes in the primary language first, then in
    /// theirs, never in English alone to someone who may have spoken Arabic.
    pub fn local_answer(&self, hits: &[Hit<'_>], question: &str, lang: Lang) -> (Source, String) {
        match hits.first().filter(|h| h.coverage >= MIN_COVERAGE) {
            Some(h) => {
                let p = self.knowledge.in_lang(h.passage, lang).unwrap_or(h.passage);
                (Source::Knowledge, format!("{}{}", Phrases::from_knowledge(p.lang), spoken_excerpt(&p.text, question, 260)))
            }
            None if lang == self.primary => (Source::NoAnswer, Phrases::no_answer(lang).to_string()),
            None => (Source::NoAnswer, format!("{} {}", Phrases::no_answer(self.primary), Phrases::no_answer(lang))),
        }
    }

    fn prompt(&self, hits: &[Hit<'_>], question: &str, lang: Lang) -> Vec<Message> {
        let mut system = self.persona.clone();
        system.push_str("\n\nمعلومات المركز · Centre information:\n");
        for h in hits {
            system.push_str(&format!("\n### {}\n{}\n", h.passage.title, h.passage.text));
        }
        system.push_str(match lang {
            Lang::Ar => "\nالزائر يتحدث العربية: أجب بالعربية.",
            Lang::En => "\nThe visitor speaks English: answer in English.",
        });
        let mut messages = vec![Message { role: "system", content: system }];
        if let Ok(m) = self.memory.lock() {
            messages.extend(m.messages.iter().cloned());
        }
        messages.push(Message { role: "user", content: question.to_string() });
        messages
    }

    /// Answers `question` (in `lang`) as a stream of events; `cancel` stops it (barge-in).
    /// Needs a tokio runtime.
    pub fn ask(&self, question: &str, lang: Lang, cancel: CancellationToken) -> mpsc::Receiver<MindEvent> {
        let (tx, rx) = mpsc::channel(256);
        let started = Instant::now();
        // Passages in either language; the person's language first among equals.
        let hits = self.knowledge.search(question, self.top_k);
        let titles = hits.iter().map(|h| h.passage.title.clone()).collect();
        let retrieved = MindEvent::Retrieved { titles, ms: started.elapsed().as_secs_f64() * 1e3 };
        let local = self.local_answer(&hits, question, lang);
        let memory = Arc::clone(&self.memory);
        let question = question.to_string();
        let Some(llm) = self.llm.clone() else {
            tokio::spawn(async move {
                let _ = tx.send(retrieved).await;
                let (source, text) = local;
                remember(&memory, &question, &text);
                let _ = tx.send(MindEvent::Done { source, text, usage: None, first_token_ms: None }).await;
            });
            return rx;
        };
        let messages = self.prompt(&hits, &question, lang);
        tokio::spawn(async move {
            let _ = tx.send(retrieved).await;
            let asked = Instant::now();
            let mut stream = llm.stream(messages, cancel.clone());
            let (mut said, mut first_token_ms) = (String::new(), None);
            while let Some(event) = stream.recv().await {
                match event {
                    Ok(LlmEvent::Delta(d)) => {
                        first_token_ms.get_or_insert(asked.elapsed().as_secs_f64() * 1e3);
                        said.push_str(&d);
                        if tx.send(MindEvent::Delta(d)).await.is_err() {
                            return;
                        }
                    }
                    Ok(LlmEvent::Done { usage, .. }) => {
                        remember(&memory, &question, &said);
                        let _ = tx.send(MindEvent::Done { source: Source::Llm, text: said, usage, first_token_ms }).await;
                        return;
                    }
                    Err(LlmError::Cancelled) => {
                        remember(&memory, &question, &format!("{said}…"));
                        return;
                    }
                    Err(e) => {
                        let (kind, log) = (e.kind(), e.to_string());
                        let (source, text) = if said.trim().is_empty() { local.clone() } else { (Source::Llm, Phrases::cut_off(lang).to_string()) };
                        let fallback = if said.trim().is_empty() { "answering from the knowledge base" } else { "apologising after the part already said" };
                        tracing::warn!("llm failed ({kind}): {log}; {fallback}");
                        let _ = tx.send(MindEvent::Fallback { kind, log, text: text.clone() }).await;
                        said.push_str(&text);
                        remember(&memory, &question, &said);
                        let _ = tx.send(MindEvent::Done { source, text: said, usage: None, first_token_ms }).await;
                        return;
                    }
                }
            }
        });
        rx
    }
}

fn remember(memory: &Mutex<Memory>, question: &str, answer: &str) {
    if let Ok(mut m) = memory.lock() {
        m.push(question, answer);
    }
}

/// The sentences of `text` that answer `question` best (by shared terms; the first ones when
/// none share any), in their order, up to about `limit` characters: a spoken answer is short.
pub fn spoken_excerpt(text: &str, question: &str, limit: usize) -> String {
    let sentences: Vec<&str> = text.split_inclusive(['.', '!', '?', '؟', '۔']).map(str::trim).filter(|s| !s.is_empty()).collect();
    let asked: std::collections::HashSet<String> = knowledge::query_terms(question).into_iter().collect();
    let mut ranked: Vec<(usize, usize)> =
        sentences.iter().enumerate().map(|(i, s)| (i, knowledge::terms(s).iter().filter(|t| asked.contains(*t)).count())).collect();
    // Best first; ties (and no overlap at all) in reading order.
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let (mut chosen, mut length) = (Vec::new(), 0);
    for (i, _) in ranked {
        let n = sentences[i].chars().count();
        if !chosen.is_empty() && length + n > limit {
            continue;
        }
        chosen.push(i);
        length += n + 1;
    }
    chosen.sort_unstable();
    chosen.iter().map(|&i| sentences[i]).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mind() -> Mind {
        Mind::from_config(&Config::default()).expect("mind on the bundled knowledge")
    }

    async fn answer(m: &Mind, q: &str, lang: Lang) -> (Source, String, Vec<MindEvent>) {
        let mut rx = m.ask(q, lang, CancellationToken::new());
        let mut events = Vec::new();
        while let Some(e) = rx.recv().await {
            if let MindEvent::Done { source, text, .. } = &e {
                return (*source, text.clone(), events);
            }
            events.push(e);
        }
        panic!("no Done: {events:?}")
    }

    #[tokio::test]
    async fn without_an_llm_the_best_passage_is_read_in_the_persons_language() {
        let m = mind();
        let (source, text, events) = answer(&m, "متى يفتح المركز يوم الجمعة؟", Lang::Ar).await;
        assert_eq!(source, Source::Knowledge);
        assert!(text.starts_with("حسب معلومات المركز") && text.contains("الجمعة"), "{text}");
        assert!(matches!(&events[0], MindEvent::Retrieved { titles, .. } if titles[0] == "مواعيد العمل"), "{events:?}");
        let (_, text, _) = answer(&m, "opening hours", Lang::Ar).await;
        assert!(text.starts_with("حسب معلومات المركز"), "an English match answered in Arabic: {text}");
        let (source, text, _) = answer(&m, "What is the airspeed velocity of a swallow?", Lang::En).await;
        assert_eq!(source, Source::NoAnswer);
        assert_eq!(text, format!("{} {}", Phrases::no_answer(Lang::Ar), Phrases::no_answer(Lang::En)), "Arabic first at an Arabic-first kiosk");
        let (_, text, _) = answer(&m, "ما سرعة طيران السنونو؟", Lang::Ar).await;
        assert_eq!(text, Phrases::no_answer(Lang::Ar), "in Arabic only to an Arabic question");
    }

    #[tokio::test]
    async fn memory_stays_within_its_token_budget_and_is_wiped() {
        let m = mind();
        m.memory.lock().expect("memory").budget = 200;
        for _ in 0..20 {
            let _ = answer(&m, "كم رسوم تجديد جواز السفر؟", Lang::Ar).await;
        }
        let kept = m.memory.lock().expect("memory").messages.iter().map(|x| estimate_tokens(&x.content)).sum::<usize>();
        assert!(kept <= 200 && m.remembered() >= 1, "{kept} tokens, {} exchanges", m.remembered());
        m.forget();
        assert_eq!(m.remembered(), 0);
    }

    #[tokio::test]
    async fn an_interrupted_answer_is_remembered_as_far_as_it_was_heard() {
        let m = mind();
        // Stored first, then cut: the stored answer is replaced.
        let _ = answer(&m, "كم رسوم تجديد جواز السفر؟", Lang::Ar).await;
        m.heard_only("كم رسوم تجديد جواز السفر؟", "الرسوم مئتان");
        let last = |m: &Mind| m.memory.lock().expect("memory").messages.back().map(|x| x.content.clone()).unwrap_or_default();
        assert_eq!(last(&m), "الرسوم مئتان…");
        // Cut before the answer's task stored it (the stream ends after the barge-in): the
        // exchange is stored with what was heard, not what was written.
        m.heard_only("What are the opening hours?", "We open");
        m.memory.lock().expect("memory").push("What are the opening hours?", "We open at 7:30 and close at 3 on weekdays.");
        assert_eq!(last(&m), "We open…");
        // Nothing heard at all.
        m.heard_only("What are the opening hours?", "");
        assert_eq!(last(&m), "…");
        // A cut for another question does not touch the next exchange.
        m.heard_only("something else", "x");
        m.memory.lock().expect("memory").push("Where is the office?", "In Khalidiya.");
        assert_eq!(last(&m), "In Khalidiya.");
        assert!(m.memory.lock().expect("memory").heard.is_none());
    }

    #[test]
    fn the_persona_asks_for_full_tashkeel_unless_told_not_to() {
        let mut config = Config::default();
        assert!(persona(&config).contains("مشكولة تشكيلًا كاملًا"), "{}", persona(&config));
        config.llm.arabic_tashkeel = false;
        assert!(!persona(&config).contains("تشكيل"));
    }

    #[test]
    fn excerpts_end_at_a_sentence() {
        assert_eq!(spoken_excerpt("One. Two two. Three three three.", "", 10), "One.");
        assert_eq!(spoken_excerpt("الأولى. الثانية؟ الثالثة", "", 100), "الأولى. الثانية؟ الثالثة");
        let text = "Citizens renew their passport here. You need your current passport and a photo. The fee is 260 dirhams.";
        assert_eq!(spoken_excerpt(text, "passport renewal fee", 60), "Citizens renew their passport here. The fee is 260 dirhams.");
        assert_eq!(estimate_tokens("مرحبا"), 2);
    }
}
