//! Audio files (wav, flac, mp3, ogg/vorbis) decoded with symphonia, streamed as mono f32 at
//! the file's own rate, block by block, so a two-hour recording never sits in memory.

use std::fs::File;
use std::path::Path;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, Decoder, DecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::{Error, Result};

/// Lowest sample rate accepted: below this there is no intelligible speech.
const MIN_RATE: u32 = 4_000;
const MAX_RATE: u32 = 384_000;

/// A whole decoded file (tests and small clips).
#[derive(Debug, Clone)]
pub struct DecodedAudio {
    pub sample_rate: u32,
    pub samples: Vec<f32>,
}

pub struct FileSource {
    path: std::path::PathBuf,
    format: Box<dyn FormatReader>,
    decoder: Box<dyn Decoder>,
    track: u32,
    rate: u32,
    mono: Vec<f32>,
    buffer: Option<SampleBuffer<f32>>,
    /// Samples that were not finite numbers (replaced: NaN by silence, ±inf by full scale).
    replaced: u64,
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource").field("path", &self.path).field("rate", &self.rate).finish_non_exhaustive()
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::Audio(format!("{}: {}", path.display(), reason.into()))
}

/// Opens an audio file for streaming decode, checking that it is audio hiwar can hear.
pub fn open_audio_file(path: &Path) -> Result<FileSource> {
    let file = File::open(path).map_err(Error::io(path))?;
    let meta = file.metadata().map_err(Error::io(path))?;
    if meta.is_dir() {
        return Err(bad(path, "is a folder, not an audio file (give the files in it: wav, flac, mp3, ogg)"));
    }
    if meta.len() == 0 {
        return Err(bad(path, "the file is empty"));
    }
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let probed = symphonia::default::get_probe()
        .format(&hint, stream, &FormatOptions::default(), &MetadataOptions::default())
        .map_err(|e| bad(path, format!("not a readable audio file (wav, flac, mp3, ogg): {}", describe(&e))))?;
    let format = probed.format;
    let track = format.tracks().iter().find(|t| t.codec_params.codec != CODEC_TYPE_NULL).ok_or_else(|| bad(path, "no audio track"))?;
    let params = &track.codec_params;
    let rate = params.sample_rate.ok_or_else(|| bad(path, "no sample rate in the header"))?;
    if !(MIN_RATE..=MAX_RATE).contains(&rate) {
        return Err(bad(path, format!("sample rate {rate} Hz is outside {MIN_RATE}–{MAX_RATE} Hz")));
    }
    match params.channels.map(|c| c.count()) {
        Some(0) => return Err(bad(path, "the header says 0 channels")),
        None if params.codec != symphonia::core::codecs::CODEC_TYPE_VORBIS => {}
        _ => {}
    }
    let decoder =
        symphonia::default::get_codecs().make(params, &DecoderOptions::default()).map_err(|e| bad(path, format!("unsupported codec: {}", describe(&e))))?;
    let track = track.id;
    Ok(FileSource { path: path.to_path_buf(), format, decoder, track, rate, mono: Vec::new(), buffer: None, replaced: 0 })
}

impl FileSource {
    /// Logs once, at the end of a file, how many of its samples were not numbers.
    pub fn warn_if_damaged(&self) {
        if self.replaced > 0 {
            tracing::warn!(
                "{}: {} sample(s) were not finite numbers (NaN or infinity) and were replaced by silence or full scale; the rest of the audio is kept",
                self.path.display(),
                self.replaced
            );
        }
    }
}

fn describe(e: &SymError) -> String {
    match e {
        SymError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => "it ends too early (truncated header?)".into(),
        SymError::Unsupported(what) => format!("unsupported ({what})"),
        other => other.to_string(),
    }
}

impl FileSource {
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// The next block of mono samples, or `None` at the end. A file cut off mid-stream ends
    /// where the data ends; a damaged packet is skipped.
    pub fn next_block(&mut self) -> Result<Option<&[f32]>> {
        loop {
            let packet = match self.format.next_packet() {
                Ok(p) => p,
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Ok(None);
                }
                Err(SymError::ResetRequired) => return Ok(None),
                Err(e) => return Err(bad(&self.path, format!("cannot read: {}", describe(&e)))),
            };
            if packet.track_id() != self.track {
                continue;
            }
            let decoded = match self.decoder.decode(&packet) {
                Ok(d) => d,
                Err(SymError::DecodeError(_)) => continue,
                Err(e) => return Err(bad(&self.path, format!("cannot decode: {}", describe(&e)))),
            };
            let spec = *decoded.spec();
            let channels = spec.channels.count();
            if channels == 0 {
                return Err(bad(&self.path, "a block with 0 channels"));
            }
            let frames = decoded.frames();
            if frames == 0 {
                continue;
            }
            let buffer = match &mut self.buffer {
                Some(b) if b.capacity() >= frames * channels => b,
                slot => slot.insert(SampleBuffer::<f32>::new(decoded.capacity() as u64, spec)),
            };
            buffer.copy_interleaved_ref(decoded);
            self.mono.clear();
            self.mono.extend(buffer.samples().chunks_exact(channels).map(|f| f.iter().sum::<f32>() / channels as f32));
            self.replaced += crate::audio::replace_non_finite(&mut self.mono) as u64;
            return Ok(Some(&self.mono));
        }
    }

    /// Samples so far that were not finite numbers (NaN, ±infinity) and were replaced: the
    /// file is damaged there, and the caller says so; the rest of it is kept.
    pub fn replaced(&self) -> u64 {
        self.replaced
    }

    /// Decodes everything that is left (for short clips).
    pub fn read_all(mut self) -> Result<DecodedAudio> {
        let mut samples = Vec::new();
        while let Some(block) = self.next_block()? {
            samples.extend_from_slice(block);
        }
        self.warn_if_damaged();
        Ok(DecodedAudio { sample_rate: self.rate, samples })
    }
}

/// A whole file decoded and resampled to 16 kHz mono (short clips: tests, benchmarks, the demo).
pub fn read_16k(path: &Path) -> Result<Vec<f32>> {
    let audio = open_audio_file(path)?.read_all()?;
    let mut r = super::resample::Resampler::new(audio.sample_rate)?;
    let mut out = r.push(&audio.samples)?.to_vec();
    out.extend_from_slice(r.finish()?);
    Ok(out)
}
