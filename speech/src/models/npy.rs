//! Minimal NumPy `.npy` / `.npz` reader: little-endian float arrays in C order, which is what
//! Whisper's `mel_filters.npz` holds.

use std::io::Read;
use std::path::Path;

use crate::{Error, Result};

const FORMAT: &str = "NumPy array";

/// A float array read from a `.npy` file, converted to f32.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Reads one member (e.g. `mel_80.npy`) of an `.npz` archive.
pub fn read_npz_member(path: &Path, member: &str) -> Result<NpyArray> {
    let file = std::fs::File::open(path).map_err(Error::io(path))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| Error::bad(path, "NumPy .npz archive", e.to_string()))?;
    let mut entry = zip.by_name(member).map_err(|_| Error::bad(path, "NumPy .npz archive", format!("has no member {member}")))?;
    let mut bytes = Vec::new();
    entry.read_to_end(&mut bytes).map_err(Error::io(path))?;
    read_npy(path, &bytes)
}

/// Parses the bytes of a `.npy` file (format versions 1–3).
pub fn read_npy(path: &Path, bytes: &[u8]) -> Result<NpyArray> {
    let bad = |reason: &str| Error::bad(path, FORMAT, reason.to_string());
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("missing the \\x93NUMPY magic"));
    }
    let (header_len, header_start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(bad(&format!("unsupported format version {v}"))),
    };
    let data_start = header_start + header_len;
    let header = bytes.get(header_start..data_start).and_then(|h| std::str::from_utf8(h).ok()).ok_or_else(|| bad("header is cut short or not text"))?;
    let descr = dict_value(header, "descr").ok_or_else(|| bad("header has no descr"))?;
    let descr = quoted(descr).ok_or_else(|| bad("descr is not a quoted string"))?;
    if dict_value(header, "fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err(bad("Fortran-ordered arrays are not supported"));
    }
    let shape_text = dict_value(header, "shape").ok_or_else(|| bad("header has no shape"))?;
    let shape_text = shape_text.trim_start_matches('(');
    let shape_text = &shape_text[..shape_text.find(')').ok_or_else(|| bad("shape is not a tuple"))?];
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| bad("shape holds a non-integer")))
        .collect::<Result<Vec<_>>>()?;
    let count: usize = shape.iter().product();
    let payload = &bytes[data_start..];
    let data: Vec<f32> = match descr {
        "<f4" => chunks::<4>(payload, count).map(f32::from_le_bytes).collect(),
        "<f8" => chunks::<8>(payload, count).map(|b| f64::from_le_bytes(b) as f32).collect(),
        other => return Err(bad(&format!("element type {other} is not a little-endian float"))),
    };
    if data.len() != count {
        return Err(bad(&format!("holds {} values, its shape {shape:?} needs {count}", data.len())));
    }
    Ok(NpyArray { shape, data })
}

fn chunks<const N: usize>(payload: &[u8], count: usize) -> impl Iterator<Item = [u8; N]> + '_ {
    payload.chunks_exact(N).take(count).map(|c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    })
}

/// The text after `'key':` in a NumPy header dict, up to the end of the header.
fn dict_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let at = header.find(&format!("'{key}'"))?;
    let rest = &header[at + key.len() + 2..];
    Some(rest.trim_start().strip_prefix(':')?.trim_start())
}

/// The contents of the string literal `value` starts with.
fn quoted(value: &str) -> Option<&str> {
    let quote = value.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let rest = &value[1..];
    Some(&rest[..rest.find(quote)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, shape: &str, payload: &[u8]) -> Vec<u8> {
        let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn reads_f4_and_f8_matrices() {
        let payload: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let a = read_npy(Path::new("m.npy"), &npy("<f4", "(2, 3)", &payload)).expect("valid npy");
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);

        let payload: Vec<u8> = [0.5f64, -1.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let a = read_npy(Path::new("m.npy"), &npy("<f8", "(2,)", &payload)).expect("valid npy");
        assert_eq!((a.shape, a.data), (vec![2], vec![0.5, -1.0]));
    }

    #[test]
    fn short_payload_is_an_error_not_a_panic() {
        let err = read_npy(Path::new("m.npy"), &npy("<f4", "(2, 3)", &[0; 8])).expect_err("too short");
        assert!(err.to_string().contains("holds 2 values"), "{err}");
        let err = read_npy(Path::new("m.npy"), b"not numpy at all").expect_err("no magic");
        assert!(err.to_string().contains("magic"), "{err}");
    }
}
