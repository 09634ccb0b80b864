//! `hiwar bench tashkeel`: diacritisation on the golden set (speech/tests/data), each model of
//! text2tashkeel alone and with hiwar's lexicon and agreement rules, scored as DER and word
//! error, with and without case endings.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use hiwar_core::config::Config;
use hiwar_speech::voice::{Score, TashkeelModel, score, strip_tashkeel};

/// One golden file: its name and its sentences.
pub struct Golden {
    pub name: String,
    pub sentences: Vec<String>,
}

/// The golden files in `dir` (tashkeel-golden-*.txt; `#` lines are comments).
pub fn golden(dir: &Path) -> anyhow::Result<Vec<Golden>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("tashkeel-golden-") && n.ends_with(".txt")))
        .collect();
    files.sort();
    anyhow::ensure!(!files.is_empty(), "no tashkeel-golden-*.txt in {}", dir.display());
    files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
            let name = p.file_stem().and_then(|n| n.to_str()).unwrap_or_default().trim_start_matches("tashkeel-golden-").to_string();
            let sentences = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect();
            Ok(Golden { name, sentences })
        })
        .collect()
}

/// The figures of one diacritiser on the golden set.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub model: String,
    pub rules: bool,
    pub der: f64,
    pub der_no_ending: f64,
    pub wer: f64,
    pub wer_no_ending: f64,
    /// DER per golden file.
    pub files: Vec<(String, f64)>,
    pub ms_per_sentence: f64,
    pub unaligned: usize,
}

fn measure(d: &mut hiwar_speech::voice::Diacritizer, set: &[Golden], rules: bool, show: usize) -> anyhow::Result<Row> {
    let mut all = Score::default();
    let mut files = Vec::new();
    let mut unaligned = 0;
    let mut shown = 0;
    let started = Instant::now();
    let mut n = 0;
    for g in set {
        let mut file = Score::default();
        for s in &g.sentences {
            let input = strip_tashkeel(s);
            let out = d.diacritize(&input)?;
            n += 1;
            match score(s, &out) {
                Some(sc) => {
                    if sc.letter_errors > 0 && shown < show {
                        shown += 1;
                        eprintln!("golden: {s}\n   got: {out}\n");
                    }
                    file.add(sc);
                }
                None => unaligned += 1,
            }
        }
        files.push((g.name.clone(), file.der()));
        all.add(file);
    }
    let ms = started.elapsed().as_secs_f64() * 1e3 / n.max(1) as f64;
    Ok(Row {
        model: d.model().name().into(),
        rules,
        der: all.der(),
        der_no_ending: all.der_no_ending(),
        wer: all.wer(),
        wer_no_ending: all.wer_no_ending(),
        files,
        ms_per_sentence: ms,
        unaligned,
    })
}

/// Words the lexicon and rules made wrong, and those they mended (to stderr, for tuning).
fn changed_words(bare: &mut hiwar_speech::voice::Diacritizer, full: &mut hiwar_speech::voice::Diacritizer, set: &[Golden]) -> anyhow::Result<()> {
    let (mut worse, mut better) = (std::collections::BTreeMap::<String, usize>::new(), 0usize);
    for s in set.iter().flat_map(|g| &g.sentences) {
        let input = strip_tashkeel(s);
        let (b, f) = (bare.diacritize(&input)?, full.diacritize(&input)?);
        for ((g, b), f) in s.split(' ').zip(b.split(' ')).zip(f.split(' ')) {
            let ok = |w: &str| score(g, w).is_some_and(|sc| sc.letter_errors == 0);
            match (ok(b), ok(f)) {
                (true, false) => *worse.entry(format!("{g} → {f}")).or_default() += 1,
                (false, true) => better += 1,
                _ => {}
            }
        }
    }
    eprintln!("lexicon and rules mended {better} words and broke {}:", worse.values().sum::<usize>());
    for (w, n) in worse {
        eprintln!("  {n}× {w}");
    }
    Ok(())
}

/// `hiwar bench tashkeel`.
pub fn run(config: &Config, dir: Option<PathBuf>, only_hiwar: bool, json: bool, show: usize) -> anyhow::Result<ExitCode> {
    let dir = dir.unwrap_or_else(|| hiwar_core::assets::assets_dir().join("..").join("speech").join("tests").join("data"));
    let set = golden(&dir)?;
    let sentences: usize = set.iter().map(|g| g.sentences.len()).sum();
    let mut rows = Vec::new();
    let models: Vec<TashkeelModel> = if only_hiwar { vec![hiwar_core::build::TASHKEEL_MODEL] } else { TashkeelModel::ALL.to_vec() };
    for model in models {
        let mut bare = hiwar_core::build::diacritizer_model(config, model)?.bare();
        if !only_hiwar {
            rows.push(measure(&mut bare, &set, false, 0)?);
        }
        let mut full = if model == hiwar_core::build::TASHKEEL_MODEL {
            hiwar_core::build::diacritizer(config)?
        } else {
            hiwar_core::build::diacritizer_model(config, model)?
        };
        let ours = model == hiwar_core::build::TASHKEEL_MODEL;
        rows.push(measure(&mut full, &set, true, if ours { show } else { 0 })?);
        if ours && show > 0 {
            changed_words(&mut bare, &mut full, &set)?;
        }
    }
    if json {
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("## hiwar bench tashkeel\n");
    println!(
        "Golden set: {sentences} sentences in {} files ({}), stripped of their marks and diacritised again. DER counts every Arabic letter (with or without a mark); a word is wrong when any of its letters is; \"no CE\" leaves each word's last letter out.\n",
        set.len(),
        set.iter().map(|g| format!("{} {}", g.name, g.sentences.len())).collect::<Vec<_>>().join(", ")
    );
    let names: Vec<&str> = set.iter().map(|g| g.name.as_str()).collect();
    println!("| model | lexicon + rules | DER | DER no CE | word error | word error no CE | {} | ms / sentence |", names.join(" | "));
    println!("|---|---|---|---|---|---|{}---|", "---|".repeat(names.len()));
    for r in &rows {
        let files: Vec<String> = r.files.iter().map(|(_, d)| format!("{:.1} %", d * 100.0)).collect();
        println!(
            "| {} | {} | {:.2} % | {:.2} % | {:.1} % | {:.1} % | {} | {:.1} |",
            r.model,
            if r.rules { "yes" } else { "no" },
            r.der * 100.0,
            r.der_no_ending * 100.0,
            r.wer * 100.0,
            r.wer_no_ending * 100.0,
            files.join(" | "),
            r.ms_per_sentence
        );
        if r.unaligned > 0 {
            println!("|  ({} sentences changed letters and were not scored) |", r.unaligned);
        }
    }
    println!();
    Ok(ExitCode::SUCCESS)
}
