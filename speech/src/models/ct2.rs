//! Reader for CTranslate2's `model.bin` (binary version 6).
//!
//! Layout (all little-endian): u32 binary version; the spec name and a u32 spec revision; u32
//! variable count; per variable: name, u8 rank, u32 dims, u8 dtype, u32 byte count, the bytes;
//! then u32 alias count and (alias, target) name pairs. Strings are a u16 byte length followed
//! by the bytes, which include a trailing NUL.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

const FORMAT: &str = "CTranslate2 model";

/// Element type of a CTranslate2 variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl DType {
    fn from_code(code: u8) -> Option<DType> {
        Some(match code {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::Bf16,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::Bf16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }
}

/// One named tensor of the model; its bytes live in the model's buffer.
#[derive(Debug, Clone)]
pub struct Variable {
    pub dims: Vec<usize>,
    pub dtype: DType,
    bytes: Range<usize>,
}

impl Variable {
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A whole CTranslate2 model held in memory.
#[derive(Debug)]
pub struct Ct2Model {
    pub path: PathBuf,
    pub spec: String,
    pub revision: u32,
    variables: BTreeMap<String, Variable>,
    buffer: Vec<u8>,
}

impl Ct2Model {
    /// Reads a model whose `model.bin` may be split into parts (concatenated in order).
    pub fn read_parts(parts: &[impl AsRef<Path>]) -> Result<Ct2Model> {
        let first = parts.first().ok_or_else(|| Error::bad("", FORMAT, "no model file given"))?;
        let mut buffer = Vec::new();
        for part in parts {
            let part = part.as_ref();
            let bytes = std::fs::read(part).map_err(Error::io(part))?;
            buffer.extend_from_slice(&bytes);
        }
        Ct2Model::parse(first.as_ref().to_path_buf(), buffer)
    }

    pub fn parse(path: PathBuf, buffer: Vec<u8>) -> Result<Ct2Model> {
        let mut r = Reader { buf: &buffer, pos: 0, path: &path };
        let version = r.u32("binary version")?;
        if version != 6 {
            return Err(Error::bad(&path, FORMAT, format!("binary version {version}, expected 6")));
        }
        let spec = r.string("spec name")?;
        let revision = r.u32("spec revision")?;
        let count = r.u32("variable count")? as usize;
        let mut variables = BTreeMap::new();
        for index in 0..count {
            let name = r.string("variable name")?;
            let what = |field: &str| format!("{field} of variable {index} ({name})");
            let rank = r.u8(&what("rank"))? as usize;
            let mut dims = Vec::with_capacity(rank);
            for _ in 0..rank {
                dims.push(r.u32(&what("dimension"))? as usize);
            }
            let code = r.u8(&what("dtype"))?;
            let dtype = DType::from_code(code).ok_or_else(|| Error::bad(&path, FORMAT, format!("unknown dtype {code} for {name}")))?;
            let nbytes = r.u32(&what("byte count"))? as usize;
            let elements: usize = dims.iter().product();
            if elements * dtype.size() != nbytes {
                return Err(Error::bad(&path, FORMAT, format!("{name}: {nbytes} bytes do not hold {dims:?} of {dtype:?}")));
            }
            let bytes = r.skip(nbytes, &what("data"))?;
            variables.insert(name, Variable { dims, dtype, bytes });
        }
        let aliases = r.u32("alias count")? as usize;
        for _ in 0..aliases {
            let alias = r.string("alias name")?;
            let target = r.string("alias target")?;
            let var = variables.get(&target).cloned().ok_or_else(|| Error::bad(&path, FORMAT, format!("alias {alias} points at missing {target}")))?;
            variables.insert(alias, var);
        }
        if r.pos != buffer.len() {
            return Err(Error::bad(&path, FORMAT, format!("{} unexpected trailing bytes", buffer.len() - r.pos)));
        }
        Ok(Ct2Model { path, spec, revision, variables, buffer })
    }

    pub fn get(&self, name: &str) -> Result<&Variable> {
        self.variables.get(name).ok_or_else(|| Error::bad(&self.path, FORMAT, format!("variable {name} is missing")))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.variables.contains_key(name)
    }

    pub fn bytes(&self, var: &Variable) -> &[u8] {
        &self.buffer[var.bytes.clone()]
    }

    /// A scalar integer variable (CTranslate2 stores e.g. `num_heads` this way).
    pub fn scalar(&self, name: &str) -> Result<i64> {
        let var = self.get(name)?;
        let b = self.bytes(var);
        Ok(match (var.dtype, b.len()) {
            (DType::I8, 1) => i64::from(b[0] as i8),
            (DType::I16, 2) => i64::from(i16::from_le_bytes([b[0], b[1]])),
            (DType::I32, 4) => i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            _ => return Err(Error::bad(&self.path, FORMAT, format!("{name} is not an integer scalar"))),
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.variables.keys().map(String::as_str)
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl Reader<'_> {
    fn skip(&mut self, n: usize, what: &str) -> Result<Range<usize>> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.buf.len()).ok_or_else(|| {
            Error::bad(self.path, FORMAT, format!("file ends inside the {what} (offset {}, {} bytes in all): truncated download?", self.pos, self.buf.len()))
        })?;
        let range = self.pos..end;
        self.pos = end;
        Ok(range)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let range = self.skip(N, what)?;
        let mut out = [0; N];
        out.copy_from_slice(&self.buf[range]);
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let len = u16::from_le_bytes(self.array(what)?) as usize;
        let range = self.skip(len, what)?;
        let raw = &self.buf[range];
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        String::from_utf8(raw.to_vec()).map_err(|_| Error::bad(self.path, FORMAT, format!("{what} is not UTF-8")))
    }
}
