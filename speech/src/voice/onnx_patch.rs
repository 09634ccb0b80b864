//! A one-time patch of a Piper/VITS ONNX model: expose the per-phoneme frame counts (the
//! output of the duration predictor's single `Ceil` node) as an extra graph output, so each
//! synthesis says exactly when each phoneme sounds.
//!
//! Only the few protobuf fields involved are read (ModelProto.graph = 7; GraphProto.node = 1,
//! .output = 12; NodeProto.output = 2, .op_type = 4; ValueInfoProto.name = 1); every other
//! byte is copied unchanged.

use crate::{Error, Result};

const FORMAT: &str = "ONNX model";

/// One protobuf field: number, wire type, and the byte range of its value (for
/// length-delimited fields, of the payload).
struct Field {
    number: u64,
    wire: u8,
    start: usize,
    end: usize,
    /// Where the whole field (tag included) starts.
    tag_start: usize,
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn fields(buf: &[u8]) -> Option<Vec<Field>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let tag_start = pos;
        let tag = varint(buf, &mut pos)?;
        let (number, wire) = (tag >> 3, (tag & 7) as u8);
        let (start, end) = match wire {
            0 => {
                let s = pos;
                varint(buf, &mut pos)?;
                (s, pos)
            }
            1 => (pos, pos + 8),
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                (pos, pos.checked_add(len)?)
            }
            5 => (pos, pos + 4),
            _ => return None,
        };
        if end > buf.len() {
            return None;
        }
        pos = if wire == 0 { pos } else { end };
        out.push(Field { number, wire, start, end, tag_start });
    }
    Some(out)
}

fn string(buf: &[u8], f: &Field) -> Option<String> {
    (f.wire == 2).then(|| String::from_utf8_lossy(&buf[f.start..f.end]).into_owned())
}

/// The name of the duration tensor (the `Ceil` node's output), if the model has one.
pub fn duration_output(model: &[u8]) -> Result<Option<String>> {
    let bad = |why: &str| Error::bad("", FORMAT, why.to_string());
    let top = fields(model).ok_or_else(|| bad("not a protobuf message"))?;
    let graph = top.iter().find(|f| f.number == 7 && f.wire == 2).ok_or_else(|| bad("no graph"))?;
    let g = &model[graph.start..graph.end];
    let mut ceil = Vec::new();
    for node in fields(g).ok_or_else(|| bad("damaged graph"))?.iter().filter(|f| f.number == 1 && f.wire == 2) {
        let n = &g[node.start..node.end];
        let nf = fields(n).ok_or_else(|| bad("damaged node"))?;
        if nf.iter().any(|f| f.number == 4 && string(n, f).as_deref() == Some("Ceil")) {
            ceil.extend(nf.iter().filter(|f| f.number == 2).filter_map(|f| string(n, f)));
        }
    }
    match ceil.len() {
        0 => Ok(None),
        1 => Ok(ceil.pop()),
        n => Err(bad(&format!("{n} Ceil outputs; cannot tell which is the duration"))),
    }
}

/// Returns the model with `output` added to the graph's outputs (unless it is one already).
pub fn add_graph_output(model: &[u8], output: &str) -> Result<Vec<u8>> {
    let bad = |why: &str| Error::bad("", FORMAT, why.to_string());
    let top = fields(model).ok_or_else(|| bad("not a protobuf message"))?;
    let graph = top.iter().find(|f| f.number == 7 && f.wire == 2).ok_or_else(|| bad("no graph"))?;
    let g = &model[graph.start..graph.end];
    let already = fields(g)
        .ok_or_else(|| bad("damaged graph"))?
        .iter()
        .filter(|f| f.number == 12 && f.wire == 2)
        .any(|f| fields(&g[f.start..f.end]).is_some_and(|vf| vf.iter().any(|v| v.number == 1 && string(&g[f.start..f.end], v).as_deref() == Some(output))));
    if already {
        return Ok(model.to_vec());
    }
    // ValueInfoProto { name = output } as GraphProto field 12; ONNX Runtime infers its type.
    let mut info = Vec::new();
    put_varint(&mut info, (1 << 3) | 2);
    put_varint(&mut info, output.len() as u64);
    info.extend_from_slice(output.as_bytes());
    let mut new_graph = g.to_vec();
    put_varint(&mut new_graph, (12 << 3) | 2);
    put_varint(&mut new_graph, info.len() as u64);
    new_graph.extend_from_slice(&info);

    let mut out = Vec::with_capacity(model.len() + 64);
    out.extend_from_slice(&model[..graph.tag_start]);
    put_varint(&mut out, (7 << 3) | 2);
    put_varint(&mut out, new_graph.len() as u64);
    out.extend_from_slice(&new_graph);
    out.extend_from_slice(&model[graph.end..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(out: &mut Vec<u8>, number: u64, payload: &[u8]) {
        put_varint(out, (number << 3) | 2);
        put_varint(out, payload.len() as u64);
        out.extend_from_slice(payload);
    }

    fn node(op: &str, output: &str) -> Vec<u8> {
        let mut n = Vec::new();
        field(&mut n, 2, output.as_bytes());
        field(&mut n, 4, op.as_bytes());
        n
    }

    #[test]
    fn the_ceil_output_is_found_and_added_once() {
        let mut graph = Vec::new();
        field(&mut graph, 1, &node("Exp", "/Exp_output_0"));
        field(&mut graph, 1, &node("Ceil", "/Ceil_output_0"));
        let mut out_info = Vec::new();
        field(&mut out_info, 1, b"output");
        field(&mut graph, 12, &out_info);
        let mut model = Vec::new();
        put_varint(&mut model, 1 << 3); // ir_version = 8 (varint field)
        put_varint(&mut model, 8);
        field(&mut model, 7, &graph);
        field(&mut model, 8, b"opset-stub");

        assert_eq!(duration_output(&model).expect("parse").as_deref(), Some("/Ceil_output_0"));
        let patched = add_graph_output(&model, "/Ceil_output_0").expect("patch");
        assert_eq!(add_graph_output(&patched, "/Ceil_output_0").expect("again"), patched, "idempotent");
        // The patched graph lists both outputs; fields outside the graph are untouched.
        let top = fields(&patched).expect("top");
        let g = top.iter().find(|f| f.number == 7).expect("graph");
        let outputs: Vec<String> = fields(&patched[g.start..g.end])
            .expect("graph fields")
            .iter()
            .filter(|f| f.number == 12)
            .filter_map(|f| {
                let v = &patched[g.start..g.end][f.start..f.end];
                fields(v)?.iter().find(|x| x.number == 1).and_then(|x| string(v, x))
            })
            .collect();
        assert_eq!(outputs, vec!["output", "/Ceil_output_0"]);
        assert!(patched.ends_with(b"opset-stub"));
        assert!(duration_output(b"\xff\xff\xff").is_err(), "garbage is an error, not a panic");
    }
}
