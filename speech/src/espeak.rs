//! espeak-ng, run as a separate process (it is GPL-3.0; hiwar never links it).

use std::process::Command;

use crate::{Error, Result};

/// What the installed espeak-ng offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspeakInfo {
    pub version: String,
    pub has_arabic: bool,
    pub has_english: bool,
}

/// Runs `espeak-ng --version` and `--voices` to see that it and its Arabic and English data exist.
pub fn probe() -> Result<EspeakInfo> {
    let run = |args: &[&str]| -> Result<String> {
        let out = Command::new("espeak-ng").args(args).output().map_err(|e| {
            Error::Espeak(format!("cannot run espeak-ng ({e}); install it: apt-get install espeak-ng"))
        })?;
        if !out.status.success() {
            return Err(Error::Espeak(format!(
                "`espeak-ng {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let version = run(&["--version"])?;
    let voices = run(&["--voices"])?;
    let has = |lang: &str| voices.lines().skip(1).any(|l| l.split_whitespace().nth(1) == Some(lang));
    Ok(EspeakInfo {
        version: version.split_whitespace().nth(3).unwrap_or(version.trim()).to_string(),
        has_arabic: has("ar"),
        has_english: has("en-us") || has("en"),
    })
}
