//! Small things every command needs: the async runtime, wav files, error chains, and wiping
//! what a visitor said from memory.

use std::path::Path;

use anyhow::Context as _;

/// The tokio runtime the app's async parts (the mind, the server, the bus) run on: two
/// workers — inference never runs on it.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("mind").enable_all().build()?)
}

/// Writes mono 16-bit PCM.
pub fn write_wav(path: &Path, rate: u32, samples: &[f32]) -> anyhow::Result<()> {
    let spec = hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).with_context(|| format!("cannot write {}", path.display()))?;
    for s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16)?;
    }
    w.finalize()?;
    Ok(())
}

/// The innermost cause of an error, for one-line reports ("connection refused").
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Overwrites a string's bytes with zeros, then empties it: what a visitor said does not stay
/// in freed memory.
pub fn wipe(text: &mut String) {
    let mut bytes = std::mem::take(text).into_bytes();
    bytes.fill(0);
    std::hint::black_box(&bytes);
}
