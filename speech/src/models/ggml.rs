//! CTranslate2 Whisper → whisper.cpp ggml converter.
//!
//! The ggml file is what whisper.cpp's `models/convert-pt-to-ggml.py` writes: magic, eleven i32
//! hyper-parameters, the mel filter bank (f32), the byte-level vocabulary, then every tensor
//! under its OpenAI name with its dimensions innermost first. 2-D and 3-D weights are f16;
//! 1-D tensors, the conv biases (as n×1) and the positional embeddings are f32. With
//! [`Weights::Q8_0`] the 2-D weights are quantised to ggml's q8_0 instead (blocks of 32 values:
//! an f16 scale, amax / 127, and 32 signed bytes), as whisper.cpp's own `quantize` writes them.
//!
//! CTranslate2 fuses attention projections: self-attention `linear_0` holds q, k and v stacked
//! by rows, cross-attention `linear_1` holds k and v. OpenAI's key projections have no bias,
//! so the fused bias carries zeros there; they are dropped.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use half::f16;

use super::ct2::{Ct2Model, DType};
use super::npy::read_npz_member;
use crate::{Error, Result};

const GGML_MAGIC: u32 = 0x6767_6d6c;
const FORMAT: &str = "whisper ggml model";

/// Where the converter's inputs are on disk.
#[derive(Debug, Clone)]
pub struct WhisperSources {
    /// `model.bin`, possibly split into parts that are concatenated in order.
    pub ct2_parts: Vec<PathBuf>,
    /// `whisper/assets/mel_filters.npz` from the openai-whisper package.
    pub mel_filters_npz: PathBuf,
    /// `whisper/assets/multilingual.tiktoken` (or `gpt2.tiktoken` for English-only models).
    pub tiktoken: PathBuf,
}

/// What the converter wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhisperConversion {
    pub info: GgmlWhisperInfo,
    pub tensors: usize,
    pub bytes: u64,
}

/// The hyper-parameters at the head of a whisper ggml file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgmlWhisperInfo {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    pub ftype: i32,
}

impl GgmlWhisperInfo {
    fn fields(&self) -> [i32; 11] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ]
    }

    /// The OpenAI size name of this architecture (`base`, `small`, `large-v3-turbo`, …).
    pub fn size_name(&self) -> &'static str {
        match (self.n_audio_layer, self.n_text_layer, self.n_mels) {
            (4, 4, _) => "tiny",
            (6, 6, _) => "base",
            (12, 12, _) => "small",
            (24, 24, _) => "medium",
            (32, 4, _) => "large-v3-turbo",
            (32, 32, 128) => "large-v3",
            (32, 32, _) => "large",
            _ => "custom",
        }
    }

    pub fn multilingual(&self) -> bool {
        self.n_vocab >= 51865
    }
}

/// Reads the hyper-parameters of a whisper ggml file without loading its tensors.
pub fn read_ggml_whisper_info(path: &Path) -> Result<GgmlWhisperInfo> {
    let mut file = File::open(path).map_err(Error::io(path))?;
    let mut head = [0u8; 48];
    file.read_exact(&mut head).map_err(|_| Error::bad(path, FORMAT, "shorter than its header"))?;
    let word = |i: usize| i32::from_le_bytes([head[4 * i], head[4 * i + 1], head[4 * i + 2], head[4 * i + 3]]);
    if word(0) as u32 != GGML_MAGIC {
        return Err(Error::bad(path, FORMAT, "wrong magic (not a ggml file)"));
    }
    Ok(GgmlWhisperInfo {
        n_vocab: word(1),
        n_audio_ctx: word(2),
        n_audio_state: word(3),
        n_audio_head: word(4),
        n_audio_layer: word(5),
        n_text_ctx: word(6),
        n_text_state: word(7),
        n_text_head: word(8),
        n_text_layer: word(9),
        n_mels: word(10),
        ftype: word(11),
    })
}

/// How the 2-D weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    F16,
    /// ggml's q8_0: half the size of f16, faster on CPUs.
    Q8_0,
}

/// ggml's tensor type numbers, and the file type whisper.cpp reads with its quantisation
/// version (2) × 1000 added, as its `quantize` writes it.
const GGML_TYPE_Q8_0: i32 = 8;
const FTYPE_MOSTLY_Q8_0: i32 = 2 * 1000 + 7;
const QK8_0: usize = 32;

/// Converts a CTranslate2 Whisper model into whisper.cpp's ggml format at `out`, f16 weights.
pub fn convert_ct2_whisper(src: &WhisperSources, out: &Path) -> Result<WhisperConversion> {
    convert_ct2_whisper_as(src, out, Weights::F16)
}

/// Converts a CTranslate2 Whisper model into whisper.cpp's ggml format at `out`.
pub fn convert_ct2_whisper_as(src: &WhisperSources, out: &Path, weights: Weights) -> Result<WhisperConversion> {
    let model = Ct2Model::read_parts(&src.ct2_parts)?;
    if !model.spec.starts_with("Whisper") {
        return Err(Error::bad(&model.path, "CTranslate2 Whisper model", format!("spec is {}", model.spec)));
    }
    if model.names().any(|n| n.ends_with("weight_scale")) {
        return Err(Error::bad(&model.path, "CTranslate2 Whisper model", "quantized (int8) weights are not supported; use a float16 or float32 model"));
    }
    let mut info = hparams(&model)?;
    if weights == Weights::Q8_0 {
        info.ftype = FTYPE_MOSTLY_Q8_0;
    }
    let mel = read_npz_member(&src.mel_filters_npz, &format!("mel_{}.npy", info.n_mels))?;
    let tokens = read_tiktoken(&src.tiktoken)?;

    let file = File::create(out).map_err(Error::io(out))?;
    let mut w = Writer { out: BufWriter::with_capacity(1 << 20, file), path: out, bytes: 0, tensors: 0, weights };

    w.i32(GGML_MAGIC as i32)?;
    for field in info.fields() {
        w.i32(field)?;
    }
    let [rows, cols] = mel.shape[..] else {
        return Err(Error::bad(&src.mel_filters_npz, "mel filter bank", format!("shape {:?} is not 2-D", mel.shape)));
    };
    w.i32(rows as i32)?;
    w.i32(cols as i32)?;
    for v in &mel.data {
        w.write(&v.to_le_bytes())?;
    }
    w.i32(tokens.len() as i32)?;
    for token in &tokens {
        w.i32(token.len() as i32)?;
        w.write(token)?;
    }

    let enc_layers = info.n_audio_layer as usize;
    let dec_layers = info.n_text_layer as usize;
    let d = info.n_audio_state as usize;

    // Encoder stem.
    w.tensor(&model, "encoder.conv1.weight", "encoder/conv1/weight", Part::All)?;
    w.tensor(&model, "encoder.conv1.bias", "encoder/conv1/bias", Part::ConvBias)?;
    w.tensor(&model, "encoder.conv2.weight", "encoder/conv2/weight", Part::All)?;
    w.tensor(&model, "encoder.conv2.bias", "encoder/conv2/bias", Part::ConvBias)?;
    w.tensor(&model, "encoder.positional_embedding", "encoder/position_encodings/encodings", Part::F32)?;

    for i in 0..enc_layers {
        let (o, c) = (format!("encoder.blocks.{i}"), format!("encoder/layer_{i}"));
        self_attention(&mut w, &model, &o, &c, d)?;
        feed_forward(&mut w, &model, &o, &c)?;
    }
    layer_norm(&mut w, &model, "encoder.ln_post", "encoder/layer_norm")?;

    // Decoder.
    w.tensor(&model, "decoder.positional_embedding", "decoder/position_encodings/encodings", Part::F32)?;
    w.tensor(&model, "decoder.token_embedding.weight", "decoder/embeddings/weight", Part::All)?;
    for i in 0..dec_layers {
        let (o, c) = (format!("decoder.blocks.{i}"), format!("decoder/layer_{i}"));
        self_attention(&mut w, &model, &o, &c, d)?;
        layer_norm(&mut w, &model, &format!("{o}.cross_attn_ln"), &format!("{c}/attention/layer_norm"))?;
        let (q, kv, out) = (format!("{c}/attention/linear_0"), format!("{c}/attention/linear_1"), format!("{c}/attention/linear_2"));
        w.tensor(&model, &format!("{o}.cross_attn.query.weight"), &format!("{q}/weight"), Part::All)?;
        w.tensor(&model, &format!("{o}.cross_attn.query.bias"), &format!("{q}/bias"), Part::All)?;
        w.tensor(&model, &format!("{o}.cross_attn.key.weight"), &format!("{kv}/weight"), Part::Rows(0, d))?;
        w.tensor(&model, &format!("{o}.cross_attn.value.weight"), &format!("{kv}/weight"), Part::Rows(d, 2 * d))?;
        w.tensor(&model, &format!("{o}.cross_attn.value.bias"), &format!("{kv}/bias"), Part::Rows(d, 2 * d))?;
        w.tensor(&model, &format!("{o}.cross_attn.out.weight"), &format!("{out}/weight"), Part::All)?;
        w.tensor(&model, &format!("{o}.cross_attn.out.bias"), &format!("{out}/bias"), Part::All)?;
        feed_forward(&mut w, &model, &o, &c)?;
    }
    layer_norm(&mut w, &model, "decoder.ln", "decoder/layer_norm")?;

    w.out.flush().map_err(Error::io(out))?;
    w.out.get_ref().sync_all().map_err(Error::io(out))?;
    Ok(WhisperConversion { info, tensors: w.tensors, bytes: w.bytes })
}

fn hparams(model: &Ct2Model) -> Result<GgmlWhisperInfo> {
    let dims = |name: &str| -> Result<Vec<usize>> { Ok(model.get(name)?.dims.clone()) };
    let count_layers = |prefix: &str| (0..).take_while(|i| model.contains(&format!("{prefix}/layer_{i}/ffn/linear_0/weight"))).count();
    let emb = dims("decoder/embeddings/weight")?;
    let enc_pos = dims("encoder/position_encodings/encodings")?;
    let dec_pos = dims("decoder/position_encodings/encodings")?;
    let conv1 = dims("encoder/conv1/weight")?;
    let bad_shape = || Error::bad(&model.path, "CTranslate2 Whisper model", "unexpected tensor shapes");
    if emb.len() != 2 || enc_pos.len() != 2 || dec_pos.len() != 2 || conv1.len() != 3 {
        return Err(bad_shape());
    }
    let as_i32 = |v: usize| i32::try_from(v).map_err(|_| bad_shape());
    Ok(GgmlWhisperInfo {
        n_vocab: as_i32(emb[0])?,
        n_audio_ctx: as_i32(enc_pos[0])?,
        n_audio_state: as_i32(enc_pos[1])?,
        n_audio_head: model.scalar("encoder/num_heads")? as i32,
        n_audio_layer: as_i32(count_layers("encoder"))?,
        n_text_ctx: as_i32(dec_pos[0])?,
        n_text_state: as_i32(dec_pos[1])?,
        n_text_head: model.scalar("decoder/num_heads")? as i32,
        n_text_layer: as_i32(count_layers("decoder"))?,
        n_mels: as_i32(conv1[1])?,
        ftype: 1,
    })
}

fn self_attention(w: &mut Writer<'_>, m: &Ct2Model, o: &str, c: &str, d: usize) -> Result<()> {
    layer_norm(w, m, &format!("{o}.attn_ln"), &format!("{c}/self_attention/layer_norm"))?;
    let (qkv, out) = (format!("{c}/self_attention/linear_0"), format!("{c}/self_attention/linear_1"));
    w.tensor(m, &format!("{o}.attn.query.weight"), &format!("{qkv}/weight"), Part::Rows(0, d))?;
    w.tensor(m, &format!("{o}.attn.query.bias"), &format!("{qkv}/bias"), Part::Rows(0, d))?;
    w.tensor(m, &format!("{o}.attn.key.weight"), &format!("{qkv}/weight"), Part::Rows(d, 2 * d))?;
    w.tensor(m, &format!("{o}.attn.value.weight"), &format!("{qkv}/weight"), Part::Rows(2 * d, 3 * d))?;
    w.tensor(m, &format!("{o}.attn.value.bias"), &format!("{qkv}/bias"), Part::Rows(2 * d, 3 * d))?;
    w.tensor(m, &format!("{o}.attn.out.weight"), &format!("{out}/weight"), Part::All)?;
    w.tensor(m, &format!("{o}.attn.out.bias"), &format!("{out}/bias"), Part::All)
}

fn feed_forward(w: &mut Writer<'_>, m: &Ct2Model, o: &str, c: &str) -> Result<()> {
    layer_norm(w, m, &format!("{o}.mlp_ln"), &format!("{c}/ffn/layer_norm"))?;
    for (oi, ci) in [("0", "linear_0"), ("2", "linear_1")] {
        w.tensor(m, &format!("{o}.mlp.{oi}.weight"), &format!("{c}/ffn/{ci}/weight"), Part::All)?;
        w.tensor(m, &format!("{o}.mlp.{oi}.bias"), &format!("{c}/ffn/{ci}/bias"), Part::All)?;
    }
    Ok(())
}

fn layer_norm(w: &mut Writer<'_>, m: &Ct2Model, o: &str, c: &str) -> Result<()> {
    w.tensor(m, &format!("{o}.weight"), &format!("{c}/gamma"), Part::All)?;
    w.tensor(m, &format!("{o}.bias"), &format!("{c}/beta"), Part::All)
}

/// Which slice of a CTranslate2 variable becomes a ggml tensor, and how.
#[derive(Clone, Copy)]
enum Part {
    /// The whole variable (f16 if 2-D or more, else f32).
    All,
    /// Rows `start..end` of the first dimension.
    Rows(usize, usize),
    /// The whole variable as f32.
    F32,
    /// A conv bias: f32, shaped n×1.
    ConvBias,
}

struct Writer<'p> {
    out: BufWriter<File>,
    path: &'p Path,
    bytes: u64,
    tensors: usize,
    weights: Weights,
}

impl Writer<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).map_err(Error::io(self.path))?;
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    fn i32(&mut self, v: i32) -> Result<()> {
        self.write(&v.to_le_bytes())
    }

    fn tensor(&mut self, model: &Ct2Model, name: &str, source: &str, part: Part) -> Result<()> {
        let var = model.get(source)?;
        let all = model.bytes(var);
        let mut dims = var.dims.clone();
        let row_elems: usize = dims.iter().skip(1).product();
        let esize = var.dtype.size();
        let data = match part {
            Part::Rows(start, end) => {
                if end > dims[0] || start >= end {
                    return Err(Error::bad(&model.path, "CTranslate2 Whisper model", format!("{source} has {} rows, needs {end}", dims[0])));
                }
                dims[0] = end - start;
                &all[start * row_elems * esize..end * row_elems * esize]
            }
            _ => all,
        };
        if matches!(part, Part::ConvBias) {
            dims.push(1);
        }
        let as_f32 = matches!(part, Part::F32 | Part::ConvBias) || dims.len() < 2;
        let values = to_f32(var.dtype, data)
            .ok_or_else(|| Error::bad(&model.path, "CTranslate2 Whisper model", format!("{source} has non-float type {:?}", var.dtype)))?;

        // Quantised: 2-D weights whose rows are whole blocks (all of whisper's are).
        let q8 = !as_f32 && self.weights == Weights::Q8_0 && dims.len() == 2 && dims[1] % QK8_0 == 0;
        self.i32(dims.len() as i32)?;
        self.i32(name.len() as i32)?;
        self.i32(if q8 {
            GGML_TYPE_Q8_0
        } else if as_f32 {
            0
        } else {
            1
        })?;
        for &dim in dims.iter().rev() {
            self.i32(dim as i32)?;
        }
        self.write(name.as_bytes())?;
        let mut buf = Vec::with_capacity(values.len() * 4);
        match (as_f32, var.dtype) {
            _ if q8 => values.chunks(QK8_0).for_each(|block| quantize_q8_0(block, &mut buf)),
            (false, DType::F16) => buf.extend_from_slice(data),
            (false, _) => values.iter().for_each(|v| buf.extend_from_slice(&f16::from_f32(*v).to_le_bytes())),
            (true, _) => values.iter().for_each(|v| buf.extend_from_slice(&v.to_le_bytes())),
        }
        self.write(&buf)?;
        self.tensors += 1;
        Ok(())
    }
}

/// One q8_0 block (ggml's `quantize_row_q8_0_ref`): scale d = amax / 127 as f16, then each
/// value / d rounded to a signed byte.
fn quantize_q8_0(block: &[f32], out: &mut Vec<u8>) {
    let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
    out.extend(block.iter().map(|v| (v * id).round().clamp(-127.0, 127.0) as i8 as u8));
}

fn to_f32(dtype: DType, bytes: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        DType::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        DType::F16 => bytes.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        DType::Bf16 => bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        DType::I8 | DType::I16 | DType::I32 => return None,
    })
}

/// Reads a tiktoken vocabulary (`base64-token rank` per line) in rank order.
fn read_tiktoken(path: &Path) -> Result<Vec<Vec<u8>>> {
    let file = File::open(path).map_err(Error::io(path))?;
    let mut tokens = Vec::new();
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(Error::io(path))?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| Error::bad(path, "tiktoken vocabulary", format!("line {}: {why}", index + 1));
        let (token, rank) = line.split_once(' ').ok_or_else(|| bad("expected `token rank`"))?;
        let rank: usize = rank.trim().parse().map_err(|_| bad("rank is not a number"))?;
        if rank != tokens.len() {
            return Err(bad("ranks are not consecutive"));
        }
        // Python's lenient decoder, which OpenAI's loader uses, reads the lone "=" of rank
        // 50256 as the empty token: decode without padding to match it.
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD.decode(token.trim_end_matches('=')).map_err(|_| bad("token is not base64"))?;
        tokens.push(bytes);
    }
    Ok(tokens)
}
