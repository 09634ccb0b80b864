//! A VRM avatar's own expression table, read from the file.
//!
//! bevy's glTF loader reads meshes, morph targets and node names but no VRM extension, and a
//! VRM's morph targets are named by its exporter (VRoid: `Fcl_MTH_A`, `Fcl_EYE_Close`…) —
//! what binds them to "aa" or "blink" is the file's table: the `VRMC_vrm` extension's
//! `expressions` (VRM 1.0: `morphTargetBinds` of node, target index and weight 0–1) or the
//! `VRM` extension's `blendShapeMaster.blendShapeGroups` (VRM 0.x: `binds` of mesh, target
//! index and weight 0–100). This reads either into binds per node name, the name bevy gives
//! the node's entity, so [`crate::bind_avatar`] can build each mesh's rig from them.

use std::collections::HashMap;
use std::path::Path;

use hiwar_animation::Vrm;
use serde_json::Value;

/// The binds of one node's mesh: (preset, morph target index, weight 0–1).
pub type Binds = Vec<(Vrm, usize, f32)>;

/// An avatar's expression table, by the name of the node that carries the mesh.
#[derive(Debug, Default, Clone)]
pub struct Tables {
    /// "1.0" or "0.x" when the file has a table.
    pub version: Option<&'static str>,
    pub by_node: HashMap<String, Binds>,
}

/// Reads the table from a .vrm/.glb (binary glTF) or .gltf file; an avatar without one gives
/// empty tables.
pub fn read(path: &Path) -> anyhow::Result<Tables> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read the avatar {}: {e}", path.display()))?;
    let json = if bytes.starts_with(b"glTF") { glb_json(&bytes)? } else { &bytes[..] };
    let json: Value = serde_json::from_slice(json).map_err(|e| anyhow::anyhow!("the avatar {} is not valid glTF: {e}", path.display()))?;
    Ok(tables(&json))
}

/// The JSON chunk of a binary glTF.
fn glb_json(bytes: &[u8]) -> anyhow::Result<&[u8]> {
    let u32_at = |i: usize| bytes.get(i..i + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let len = u32_at(12).ok_or_else(|| anyhow::anyhow!("the avatar file is cut short (no glTF chunk header)"))?;
    anyhow::ensure!(bytes.get(16..20) == Some(b"JSON"), "the avatar's first glTF chunk is not JSON");
    bytes.get(20..20 + len).ok_or_else(|| anyhow::anyhow!("the avatar file is cut short (its JSON chunk says {len} bytes)"))
}

/// The name bevy gives a node's entity.
fn node_name(json: &Value, node: usize) -> String {
    json["nodes"][node]["name"].as_str().map_or_else(|| format!("GltfNode{node}"), str::to_string)
}

/// The expression table of a glTF document (VRM 1.0 first, then 0.x).
pub fn tables(json: &Value) -> Tables {
    let mut t = Tables::default();
    let mut push = |node: String, preset: Vrm, index: usize, weight: f32| {
        if weight.is_finite() && weight > 0.0 {
            t.by_node.entry(node).or_default().push((preset, index, weight.min(1.0)));
        }
    };
    let index = |v: &Value| v.as_u64().and_then(|i| usize::try_from(i).ok());
    let expressions = &json["extensions"]["VRMC_vrm"]["expressions"];
    if expressions.is_object() {
        // Presets by their key; a custom expression only where its name is a preset's.
        for group in ["preset", "custom"] {
            for (name, e) in expressions[group].as_object().into_iter().flatten() {
                let Some(preset) = Vrm::parse(name) else { continue };
                for b in e["morphTargetBinds"].as_array().into_iter().flatten() {
                    if let (Some(node), Some(i)) = (index(&b["node"]), index(&b["index"])) {
                        push(node_name(json, node), preset, i, b["weight"].as_f64().unwrap_or(1.0) as f32);
                    }
                }
            }
        }
        return Tables { version: Some("1.0"), ..t };
    }
    let groups = &json["extensions"]["VRM"]["blendShapeMaster"]["blendShapeGroups"];
    let Some(groups) = groups.as_array() else { return t };
    let nodes = json["nodes"].as_array().map_or(&[][..], Vec::as_slice);
    for g in groups {
        let name = g["presetName"].as_str().filter(|p| *p != "unknown").or_else(|| g["name"].as_str()).unwrap_or_default();
        let Some(preset) = Vrm::parse(name) else { continue };
        for b in g["binds"].as_array().into_iter().flatten() {
            let (Some(mesh), Some(i)) = (index(&b["mesh"]), index(&b["index"])) else { continue };
            // 0.x binds a mesh, weight 0–100; every node that shows that mesh moves.
            let weight = (b["weight"].as_f64().unwrap_or(100.0) / 100.0) as f32;
            for (n, node) in nodes.iter().enumerate() {
                if index(&node["mesh"]) == Some(mesh) {
                    push(node_name(json, n), preset, i, weight);
                }
            }
        }
    }
    Tables { version: Some("0.x"), ..t }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_versions_of_the_table() {
        let v1 = serde_json::json!({
            "nodes": [{"name": "Face", "mesh": 0}, {"mesh": 1}],
            "extensions": {"VRMC_vrm": {"expressions": {
                "preset": {
                    "aa": {"morphTargetBinds": [{"node": 0, "index": 3, "weight": 1.0}]},
                    "blink": {"morphTargetBinds": [{"node": 1, "index": 0, "weight": 0.5}, {"node": 0, "index": 9, "weight": 0.0}]},
                    "angry": {"morphTargetBinds": [{"node": 0, "index": 5}]}
                },
                "custom": {"sparkle": {"morphTargetBinds": [{"node": 0, "index": 6, "weight": 1.0}]}}
            }}}
        });
        let t = tables(&v1);
        assert_eq!(t.version, Some("1.0"));
        assert_eq!(t.by_node["Face"], vec![(Vrm::Aa, 3, 1.0), (Vrm::Angry, 5, 1.0)]);
        assert_eq!(t.by_node["GltfNode1"], vec![(Vrm::Blink, 0, 0.5)]);

        let v0 = serde_json::json!({
            "nodes": [{"name": "Body", "mesh": 0}, {"name": "Face", "mesh": 1}],
            "extensions": {"VRM": {"blendShapeMaster": {"blendShapeGroups": [
                {"name": "A", "presetName": "a", "binds": [{"mesh": 1, "index": 2, "weight": 100}]},
                {"name": "Joy", "presetName": "joy", "binds": [{"mesh": 1, "index": 7, "weight": 50}]},
                {"name": "O", "presetName": "unknown", "binds": [{"mesh": 1, "index": 4, "weight": 100}]},
                {"name": "Extra", "presetName": "unknown", "binds": [{"mesh": 1, "index": 8, "weight": 100}]},
                {"name": "Broken", "presetName": "i", "binds": [{"mesh": "x"}]}
            ]}}}
        });
        let t = tables(&v0);
        assert_eq!(t.version, Some("0.x"));
        assert_eq!(t.by_node["Face"], vec![(Vrm::Aa, 2, 1.0), (Vrm::Happy, 7, 0.5), (Vrm::Oh, 4, 1.0)]);
        assert!(!t.by_node.contains_key("Body"));

        assert_eq!(tables(&serde_json::json!({"nodes": []})).version, None);
        assert!(glb_json(b"glTF\x02\0\0\0").is_err());
    }
}
