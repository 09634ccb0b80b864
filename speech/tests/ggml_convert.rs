//! Round trip of the CTranslate2 → ggml converter on a tiny synthetic Whisper: every tensor
//! the whisper.cpp loader expects is written once, under its OpenAI name, with the right
//! shape, type and values (fused q/k/v split by rows, key biases dropped, conv biases n×1).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use half::f16;
use hiwar_speech::models::{WhisperSources, convert_ct2_whisper, read_ggml_whisper_info};

const D: usize = 4; // model width
const MELS: usize = 3;
const VOCAB: usize = 5;

/// Variables by name: dimensions and (f16-representable) values.
type Vars = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Writes a CTranslate2 `model.bin` holding `vars` (name → dims, f16 values or i16 scalar).
fn write_ct2(path: &Path, vars: &Vars, scalars: &[(&str, i16)]) {
    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&6u32.to_le_bytes());
    string(&mut out, "WhisperSpec");
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&((vars.len() + scalars.len()) as u32).to_le_bytes());
    for (name, value) in scalars {
        string(&mut out, name);
        out.push(0);
        out.push(2);
        out.extend_from_slice(&2u32.to_le_bytes());
        out.extend_from_slice(&value.to_le_bytes());
    }
    for (name, (dims, values)) in vars {
        string(&mut out, name);
        out.push(dims.len() as u8);
        for d in dims {
            out.extend_from_slice(&(*d as u32).to_le_bytes());
        }
        out.push(4);
        out.extend_from_slice(&((values.len() * 2) as u32).to_le_bytes());
        for v in values {
            out.extend_from_slice(&f16::from_f32(*v).to_le_bytes());
        }
    }
    out.extend_from_slice(&1u32.to_le_bytes());
    string(&mut out, "decoder/projection/weight");
    string(&mut out, "decoder/embeddings/weight");
    std::fs::write(path, out).expect("write ct2");
}

/// A tiny Whisper: one encoder and one decoder layer. Each tensor's values encode its index
/// and position so the test can tell exactly which slice landed where.
fn tiny_model() -> Vars {
    let mut vars = BTreeMap::new();
    let mut add = |name: &str, dims: Vec<usize>| {
        let n: usize = dims.iter().product();
        let base = vars.len() as f32;
        vars.insert(name.to_string(), (dims, (0..n).map(|i| base + i as f32 / 64.0).collect()));
    };
    add("encoder/conv1/weight", vec![D, MELS, 3]);
    add("encoder/conv1/bias", vec![D]);
    add("encoder/conv2/weight", vec![D, D, 3]);
    add("encoder/conv2/bias", vec![D]);
    add("encoder/position_encodings/encodings", vec![6, D]);
    add("decoder/position_encodings/encodings", vec![5, D]);
    add("decoder/embeddings/weight", vec![VOCAB + 4, D]);
    for stack in ["encoder", "decoder"] {
        let l = format!("{stack}/layer_0");
        for ln in ["self_attention/layer_norm", "ffn/layer_norm"] {
            add(&format!("{l}/{ln}/gamma"), vec![D]);
            add(&format!("{l}/{ln}/beta"), vec![D]);
        }
        add(&format!("{l}/self_attention/linear_0/weight"), vec![3 * D, D]);
        add(&format!("{l}/self_attention/linear_0/bias"), vec![3 * D]);
        add(&format!("{l}/self_attention/linear_1/weight"), vec![D, D]);
        add(&format!("{l}/self_attention/linear_1/bias"), vec![D]);
        add(&format!("{l}/ffn/linear_0/weight"), vec![2 * D, D]);
        add(&format!("{l}/ffn/linear_0/bias"), vec![2 * D]);
        add(&format!("{l}/ffn/linear_1/weight"), vec![D, 2 * D]);
        add(&format!("{l}/ffn/linear_1/bias"), vec![D]);
        add(&format!("{stack}/layer_norm/gamma"), vec![D]);
        add(&format!("{stack}/layer_norm/beta"), vec![D]);
    }
    let l = "decoder/layer_0/attention";
    add(&format!("{l}/layer_norm/gamma"), vec![D]);
    add(&format!("{l}/layer_norm/beta"), vec![D]);
    add(&format!("{l}/linear_0/weight"), vec![D, D]);
    add(&format!("{l}/linear_0/bias"), vec![D]);
    add(&format!("{l}/linear_1/weight"), vec![2 * D, D]);
    add(&format!("{l}/linear_1/bias"), vec![2 * D]);
    add(&format!("{l}/linear_2/weight"), vec![D, D]);
    add(&format!("{l}/linear_2/bias"), vec![D]);
    vars
}

fn write_inputs(dir: &Path, vars: &Vars) -> WhisperSources {
    // model.bin split in two parts at an arbitrary byte, as the registry ships it.
    let whole = dir.join("model.bin");
    write_ct2(&whole, vars, &[("encoder/num_heads", 2), ("decoder/num_heads", 2)]);
    let bytes = std::fs::read(&whole).expect("read");
    let (a, b) = bytes.split_at(bytes.len() / 3);
    let parts = [dir.join("model.bin.part1"), dir.join("model.bin.part2")];
    std::fs::write(&parts[0], a).expect("part1");
    std::fs::write(&parts[1], b).expect("part2");

    let npz = dir.join("mel_filters.npz");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&npz).expect("npz"));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file(format!("mel_{MELS}.npy"), options).expect("member");
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({MELS}, 2), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    zip.write_all(b"\x93NUMPY\x01\x00").expect("npy");
    zip.write_all(&(header.len() as u16).to_le_bytes()).expect("npy");
    zip.write_all(header.as_bytes()).expect("npy");
    for v in 0..MELS * 2 {
        zip.write_all(&(v as f32 * 0.5).to_le_bytes()).expect("npy");
    }
    zip.finish().expect("zip");

    let tiktoken = dir.join("multilingual.tiktoken");
    // Five tokens, the last the lone "=" that Python decodes as empty.
    std::fs::write(&tiktoken, "IQ== 0\nIg== 1\n2KfZhA== 2\nSGk= 3\n= 4\n").expect("tiktoken");
    WhisperSources { ct2_parts: parts.to_vec(), mel_filters_npz: npz, tiktoken }
}

struct Tensor {
    dims: Vec<usize>,
    ftype: i32,
    values: Vec<f32>,
}

/// A whisper ggml file read back: header ints, mel filters, vocabulary, tensors by name.
struct Ggml {
    header: Vec<i32>,
    mel: Vec<f32>,
    tokens: Vec<Vec<u8>>,
    tensors: BTreeMap<String, Tensor>,
}

fn read_ggml(path: &Path) -> Ggml {
    let bytes = std::fs::read(path).expect("read ggml");
    let mut pos = 0;
    let i32_at = |pos: &mut usize| {
        let v = i32::from_le_bytes(bytes[*pos..*pos + 4].try_into().expect("4 bytes"));
        *pos += 4;
        v
    };
    let header: Vec<i32> = (0..12).map(|_| i32_at(&mut pos)).collect();
    let (rows, cols) = (i32_at(&mut pos) as usize, i32_at(&mut pos) as usize);
    let mel: Vec<f32> = (0..rows * cols).map(|_| f32::from_bits(i32_at(&mut pos) as u32)).collect();
    let n_tokens = i32_at(&mut pos) as usize;
    let mut tokens = Vec::new();
    for _ in 0..n_tokens {
        let len = i32_at(&mut pos) as usize;
        tokens.push(bytes[pos..pos + len].to_vec());
        pos += len;
    }
    let mut tensors = BTreeMap::new();
    while pos < bytes.len() {
        let (n_dims, name_len, ftype) = (i32_at(&mut pos) as usize, i32_at(&mut pos) as usize, i32_at(&mut pos));
        let mut dims: Vec<usize> = (0..n_dims).map(|_| i32_at(&mut pos) as usize).collect();
        dims.reverse();
        let name = String::from_utf8(bytes[pos..pos + name_len].to_vec()).expect("utf8 name");
        pos += name_len;
        let n: usize = dims.iter().product();
        let values: Vec<f32> = if ftype == 0 {
            (0..n).map(|i| f32::from_le_bytes(bytes[pos + 4 * i..pos + 4 * i + 4].try_into().expect("f32"))).collect()
        } else {
            (0..n).map(|i| f16::from_le_bytes([bytes[pos + 2 * i], bytes[pos + 2 * i + 1]]).to_f32()).collect()
        };
        pos += n * if ftype == 0 { 4 } else { 2 };
        assert!(tensors.insert(name.clone(), Tensor { dims, ftype, values }).is_none(), "{name} written twice");
    }
    Ggml { header, mel, tokens, tensors }
}

fn f16_round(values: &[f32]) -> Vec<f32> {
    values.iter().map(|v| f16::from_f32(*v).to_f32()).collect()
}

#[test]
fn synthetic_whisper_round_trips_through_the_converter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vars = tiny_model();
    let sources = write_inputs(dir.path(), &vars);
    let out: PathBuf = dir.path().join("ggml.bin");
    let done = convert_ct2_whisper(&sources, &out).expect("convert");

    let Ggml { header, mel, tokens, tensors } = read_ggml(&out);
    assert_eq!(header, vec![0x6767_6d6c, (VOCAB + 4) as i32, 6, D as i32, 2, 1, 5, D as i32, 2, 1, MELS as i32, 1]);
    assert_eq!(read_ggml_whisper_info(&out).expect("info"), done.info);
    assert_eq!(mel, vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.5]);
    assert_eq!(tokens, vec![b"!".to_vec(), b"\"".to_vec(), "ال".as_bytes().to_vec(), b"Hi".to_vec(), vec![]]);

    // Every tensor whisper.cpp's loader asks for, once (it rejects a file with fewer or more).
    let mut expected = vec![
        "encoder.positional_embedding",
        "encoder.conv1.weight",
        "encoder.conv1.bias",
        "encoder.conv2.weight",
        "encoder.conv2.bias",
        "encoder.ln_post.weight",
        "encoder.ln_post.bias",
        "decoder.positional_embedding",
        "decoder.token_embedding.weight",
        "decoder.ln.weight",
        "decoder.ln.bias",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    let block = [
        "mlp_ln.weight",
        "mlp_ln.bias",
        "mlp.0.weight",
        "mlp.0.bias",
        "mlp.2.weight",
        "mlp.2.bias",
        "attn_ln.weight",
        "attn_ln.bias",
        "attn.query.weight",
        "attn.query.bias",
        "attn.key.weight",
        "attn.value.weight",
        "attn.value.bias",
        "attn.out.weight",
        "attn.out.bias",
    ];
    expected.extend(block.iter().map(|t| format!("encoder.blocks.0.{t}")));
    expected.extend(block.iter().map(|t| format!("decoder.blocks.0.{t}")));
    expected.extend(
        [
            "cross_attn_ln.weight",
            "cross_attn_ln.bias",
            "cross_attn.query.weight",
            "cross_attn.query.bias",
            "cross_attn.key.weight",
            "cross_attn.value.weight",
            "cross_attn.value.bias",
            "cross_attn.out.weight",
            "cross_attn.out.bias",
        ]
        .iter()
        .map(|t| format!("decoder.blocks.0.{t}")),
    );
    expected.sort();
    assert_eq!(tensors.keys().cloned().collect::<Vec<_>>(), expected);
    assert_eq!(done.tensors, expected.len());

    let src = |name: &str| &vars[name].1;
    // Fused self-attention q|k|v, split by rows; the key bias (zeros in OpenAI's model) dropped.
    let qkv = src("encoder/layer_0/self_attention/linear_0/weight");
    for (name, rows) in [("query", 0..D), ("key", D..2 * D), ("value", 2 * D..3 * D)] {
        let t = &tensors[&format!("encoder.blocks.0.attn.{name}.weight")];
        assert_eq!((t.dims.clone(), t.ftype), (vec![D, D], 1), "{name}");
        assert_eq!(t.values, f16_round(&qkv[rows.start * D..rows.end * D]), "{name}");
    }
    let bias = src("encoder/layer_0/self_attention/linear_0/bias");
    assert_eq!(tensors["encoder.blocks.0.attn.value.bias"].values, f16_round(&bias[2 * D..]));
    assert_eq!(tensors["encoder.blocks.0.attn.value.bias"].ftype, 0, "1-D tensors are f32");
    // Fused cross-attention k|v.
    let kv = src("decoder/layer_0/attention/linear_1/weight");
    assert_eq!(tensors["decoder.blocks.0.cross_attn.key.weight"].values, f16_round(&kv[..D * D]));
    assert_eq!(tensors["decoder.blocks.0.cross_attn.value.weight"].values, f16_round(&kv[D * D..]));
    // Conv biases become n×1 f32; conv weights keep [out, in, k] as f16; positions are f32.
    let bias = &tensors["encoder.conv1.bias"];
    assert_eq!((bias.dims.clone(), bias.ftype), (vec![D, 1], 0));
    assert_eq!(tensors["encoder.conv1.weight"].dims, vec![D, MELS, 3]);
    assert_eq!(tensors["encoder.positional_embedding"].ftype, 0);
    assert_eq!(tensors["decoder.token_embedding.weight"].values, f16_round(src("decoder/embeddings/weight")));
}

#[test]
fn a_truncated_model_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sources = write_inputs(dir.path(), &tiny_model());
    let part2 = &sources.ct2_parts[1];
    let bytes = std::fs::read(part2).expect("read");
    std::fs::write(part2, &bytes[..bytes.len() / 2]).expect("truncate");
    let err = convert_ct2_whisper(&sources, &dir.path().join("out.bin")).expect_err("truncated").to_string();
    assert!(err.contains("truncated download"), "{err}");
}

#[test]
fn a_model_without_its_second_part_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sources = write_inputs(dir.path(), &tiny_model());
    sources.ct2_parts.pop();
    let err = convert_ct2_whisper(&sources, &dir.path().join("out.bin")).expect_err("one part").to_string();
    assert!(err.contains("file ends inside"), "{err}");
}
