//! From mouth and idle life to an avatar's morph-target weights.
//!
//! The face is first expressed in ARKit's 52 blendshapes (the richest of the three
//! conventions), then a [`Rig`], detected from the avatar's morph-target names, copies each
//! target's weight from its source: an ARKit shape, an Oculus viseme, a VRM expression, or —
//! for a rig that names none of those — the jaw alone.

use crate::idle::IdleFrame;
use crate::lipsync::Mouth;
use crate::viseme::Viseme;

/// ARKit's 52 blendshape names, in Apple's order.
pub const ARKIT: [&str; 52] = [
    "eyeBlinkLeft",
    "eyeLookDownLeft",
    "eyeLookInLeft",
    "eyeLookOutLeft",
    "eyeLookUpLeft",
    "eyeSquintLeft",
    "eyeWideLeft",
    "eyeBlinkRight",
    "eyeLookDownRight",
    "eyeLookInRight",
    "eyeLookOutRight",
    "eyeLookUpRight",
    "eyeSquintRight",
    "eyeWideRight",
    "jawForward",
    "jawLeft",
    "jawRight",
    "jawOpen",
    "mouthClose",
    "mouthFunnel",
    "mouthPucker",
    "mouthLeft",
    "mouthRight",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthFrownLeft",
    "mouthFrownRight",
    "mouthDimpleLeft",
    "mouthDimpleRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthShrugLower",
    "mouthShrugUpper",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "browDownLeft",
    "browDownRight",
    "browInnerUp",
    "browOuterUpLeft",
    "browOuterUpRight",
    "cheekPuff",
    "cheekSquintLeft",
    "cheekSquintRight",
    "noseSneerLeft",
    "noseSneerRight",
    "tongueOut",
];

/// The index of an ARKit shape by name.
pub fn arkit_index(name: &str) -> Option<usize> {
    ARKIT.iter().position(|n| *n == name)
}

/// A shape as ARKit weights, written with names (both sides of symmetric shapes at once
/// where the name has no Left/Right).
type Recipe = &'static [(&'static str, f32)];

/// Each viseme's lips in ARKit terms (the jaw comes from [`Mouth::jaw`]).
fn recipe(v: Viseme) -> Recipe {
    match v {
        Viseme::Sil => &[],
        Viseme::PP => &[("mouthClose", 0.3), ("mouthPress", 0.45), ("mouthRollLower", 0.1), ("mouthRollUpper", 0.1)],
        Viseme::FF => &[("mouthRollLower", 0.6), ("mouthUpperUp", 0.25), ("mouthShrugUpper", 0.2)],
        Viseme::TH => &[("tongueOut", 0.35), ("mouthUpperUp", 0.15), ("mouthLowerDown", 0.15)],
        Viseme::DD => &[("mouthUpperUp", 0.15), ("mouthStretch", 0.2), ("mouthLowerDown", 0.1)],
        Viseme::Kk => &[("mouthStretch", 0.3), ("mouthLowerDown", 0.15)],
        Viseme::CH => &[("mouthFunnel", 0.5), ("mouthPucker", 0.2), ("mouthUpperUp", 0.25), ("mouthLowerDown", 0.25)],
        Viseme::SS => &[("mouthStretch", 0.45), ("mouthSmile", 0.2), ("mouthUpperUp", 0.2), ("mouthLowerDown", 0.2)],
        Viseme::Nn => &[("mouthStretch", 0.2), ("mouthUpperUp", 0.1), ("mouthLowerDown", 0.1)],
        Viseme::RR => &[("mouthFunnel", 0.35), ("mouthPucker", 0.3)],
        Viseme::Aa => &[("mouthLowerDown", 0.4), ("mouthUpperUp", 0.15), ("mouthStretch", 0.1)],
        Viseme::E => &[("mouthStretch", 0.5), ("mouthSmile", 0.2), ("mouthLowerDown", 0.3), ("mouthUpperUp", 0.2)],
        Viseme::I => &[("mouthStretch", 0.6), ("mouthSmile", 0.35), ("mouthUpperUp", 0.2), ("mouthLowerDown", 0.2)],
        Viseme::O => &[("mouthFunnel", 0.7), ("mouthPucker", 0.25), ("mouthLowerDown", 0.2)],
        Viseme::U => &[("mouthPucker", 0.85), ("mouthFunnel", 0.4)],
    }
}

/// Adds `w` to a named shape (or both sides of it).
fn add(arkit: &mut [f32; 52], name: &str, w: f32) {
    if let Some(i) = arkit_index(name) {
        arkit[i] += w;
        return;
    }
    for side in ["Left", "Right"] {
        let mut full = String::with_capacity(name.len() + 5);
        full.push_str(name);
        full.push_str(side);
        if let Some(i) = arkit_index(&full) {
            arkit[i] += w;
        }
    }
}

/// The whole face at one instant, in every form a rig may want.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceFrame {
    pub mouth: Mouth,
    pub arkit: [f32; 52],
    /// Head rotation (pitch, yaw, roll) and eye direction (yaw, pitch), radians.
    pub head: [f32; 3],
    pub gaze: [f32; 2],
    /// Chest rise, 0–1.
    pub breath: f32,
    pub blink: f32,
    pub smile: f32,
    pub frown: f32,
}

/// Precomputed viseme → ARKit table (indices, not names), built once.
#[derive(Debug, Clone)]
pub struct Composer {
    table: Vec<Vec<(usize, f32)>>,
    jaw_open: usize,
}

impl Default for Composer {
    fn default() -> Self {
        Composer::new()
    }
}

impl Composer {
    pub fn new() -> Composer {
        let table = Viseme::ALL
            .iter()
            .map(|&v| {
                let mut a = [0.0; 52];
                for &(name, w) in recipe(v) {
                    add(&mut a, name, w);
                }
                a.iter().enumerate().filter(|(_, w)| **w != 0.0).map(|(i, w)| (i, *w)).collect()
            })
            .collect();
        Composer { table, jaw_open: arkit_index("jawOpen").unwrap_or(17) }
    }

    /// Mouth plus idle life → the face. Allocation-free.
    pub fn compose(&self, mouth: &Mouth, idle: &IdleFrame) -> FaceFrame {
        let mut a = [0.0_f32; 52];
        for (v, w) in mouth.visemes.iter().enumerate() {
            if *w > 0.0 {
                for &(i, k) in &self.table[v] {
                    a[i] += k * w;
                }
            }
        }
        a[self.jaw_open] += mouth.jaw;
        let [yaw, pitch] = idle.gaze;
        // Eye direction as shapes too, for rigs without eye bones: positive yaw is the
        // avatar's left, so the left eye looks out and the right eye in.
        let set = |a: &mut [f32; 52], name: &str, w: f32| {
            if let Some(i) = arkit_index(name) {
                a[i] += w;
            }
        };
        let look = |r: f32| (r / 0.5).clamp(0.0, 1.0);
        set(&mut a, "eyeLookOutLeft", look(yaw));
        set(&mut a, "eyeLookInRight", look(yaw));
        set(&mut a, "eyeLookInLeft", look(-yaw));
        set(&mut a, "eyeLookOutRight", look(-yaw));
        set(&mut a, "eyeLookUpLeft", look(pitch));
        set(&mut a, "eyeLookUpRight", look(pitch));
        set(&mut a, "eyeLookDownLeft", look(-pitch));
        set(&mut a, "eyeLookDownRight", look(-pitch));
        set(&mut a, "eyeBlinkLeft", idle.blink);
        set(&mut a, "eyeBlinkRight", idle.blink);
        set(&mut a, "browInnerUp", idle.brow_inner_up);
        set(&mut a, "browDownLeft", idle.brow_down);
        set(&mut a, "browDownRight", idle.brow_down);
        set(&mut a, "mouthSmileLeft", idle.smile);
        set(&mut a, "mouthSmileRight", idle.smile);
        set(&mut a, "cheekSquintLeft", idle.smile * 0.4);
        set(&mut a, "cheekSquintRight", idle.smile * 0.4);
        set(&mut a, "mouthFrownLeft", idle.frown * 0.3);
        set(&mut a, "mouthFrownRight", idle.frown * 0.3);
        for w in &mut a {
            *w = w.clamp(0.0, 1.0);
        }
        FaceFrame { mouth: *mouth, arkit: a, head: idle.head, gaze: idle.gaze, breath: idle.breath, blink: idle.blink, smile: idle.smile, frown: idle.frown }
    }
}

/// VRM expression presets (1.0 names; 0.x names are recognised too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vrm {
    Aa,
    Ih,
    Ou,
    Ee,
    Oh,
    Blink,
    BlinkLeft,
    BlinkRight,
    Happy,
    Sad,
    Angry,
    Relaxed,
    Surprised,
    LookUp,
    LookDown,
    LookLeft,
    LookRight,
    Neutral,
}

impl Vrm {
    /// A preset by its name in a VRM 1.0 `VRMC_vrm` expression table or a VRM 0.x
    /// `blendShapeMaster` group's `presetName` (or a morph target named after one).
    pub fn parse(name: &str) -> Option<Vrm> {
        vrm_of(&canonical(name))
    }

    fn is_mouth(self) -> bool {
        matches!(self, Vrm::Aa | Vrm::Ih | Vrm::Ou | Vrm::Ee | Vrm::Oh)
    }
}

/// Where one morph target's weight comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Arkit(usize),
    Viseme(Viseme),
    Vrm(Vrm),
    /// The jaw opening alone (rigs with no known names).
    Jaw,
}

/// Which convention drives the mouth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RigKind {
    Arkit,
    Oculus,
    Vrm,
    JawOnly,
    /// Nothing recognisable at all: the face cannot move.
    Static,
}

/// An avatar's morph targets, each bound to its source.
#[derive(Debug, Clone)]
pub struct Rig {
    pub kind: RigKind,
    channels: Vec<Option<Channel>>,
    /// From the avatar's own VRM expression table, where it has one: per morph target, the
    /// presets that move it and by how much (they add). Overrides the name-bound channel.
    table: Vec<Vec<(Vrm, f32)>>,
}

/// Lower case without separators or an exporter's prefix (`blendShape1.jawOpen` → `jawopen`).
fn canonical(name: &str) -> String {
    let tail = name.rsplit(['.', ':', '|']).next().unwrap_or(name);
    tail.chars().filter(|c| !matches!(c, '_' | '-' | ' ')).flat_map(char::to_lowercase).collect()
}

fn vrm_of(canon: &str) -> Option<Vrm> {
    Some(match canon {
        "aa" | "a" => Vrm::Aa,
        "ih" | "i" => Vrm::Ih,
        "ou" | "u" => Vrm::Ou,
        "ee" | "e" => Vrm::Ee,
        "oh" | "o" => Vrm::Oh,
        "blink" => Vrm::Blink,
        "blinkleft" | "blinkl" => Vrm::BlinkLeft,
        "blinkright" | "blinkr" => Vrm::BlinkRight,
        "happy" | "joy" => Vrm::Happy,
        "sad" | "sorrow" => Vrm::Sad,
        "angry" => Vrm::Angry,
        "relaxed" | "fun" => Vrm::Relaxed,
        "surprised" => Vrm::Surprised,
        "lookup" => Vrm::LookUp,
        "lookdown" => Vrm::LookDown,
        "lookleft" => Vrm::LookLeft,
        "lookright" => Vrm::LookRight,
        "neutral" => Vrm::Neutral,
        _ => return None,
    })
}

/// Whether ARKit shape `i` belongs to the mouth (what one convention alone should drive).
fn is_mouth_arkit(i: usize) -> bool {
    ARKIT[i].starts_with("mouth") || ARKIT[i].starts_with("jaw") || ARKIT[i] == "tongueOut"
}

impl Rig {
    /// Binds an avatar's morph targets by name. The warning, if any, says what the avatar
    /// lacks (for the log).
    pub fn detect<S: AsRef<str>>(names: &[S]) -> (Rig, Option<String>) {
        let canon: Vec<String> = names.iter().map(|n| canonical(n.as_ref())).collect();
        let arkit: Vec<Option<usize>> = canon.iter().map(|c| ARKIT.iter().position(|a| a.to_lowercase() == *c)).collect();
        let oculus: Vec<Option<Viseme>> = canon.iter().map(|c| Viseme::ALL.into_iter().find(|v| canonical(v.oculus_name()) == *c)).collect();
        let vrm: Vec<Option<Vrm>> = canon.iter().map(|c| vrm_of(c)).collect();
        let count = |v: &[Option<Viseme>]| v.iter().filter(|x| x.is_some()).count();
        let any_arkit = arkit.iter().any(Option::is_some);
        let has_jaw_open = arkit.iter().any(|a| *a == arkit_index("jawOpen"));
        let mouth_vrm = vrm.iter().any(|v| matches!(v, Some(Vrm::Aa | Vrm::Oh | Vrm::Ou)));
        let kind = if count(&oculus) >= 10 {
            RigKind::Oculus
        } else if has_jaw_open || (any_arkit && !mouth_vrm) {
            // ARKit names; a mesh of the face without the mouth (lids, brows) is ARKit too.
            RigKind::Arkit
        } else if mouth_vrm {
            RigKind::Vrm
        } else if canon.iter().any(|c| c.contains("jaw") || c.contains("mouthopen")) {
            RigKind::JawOnly
        } else {
            RigKind::Static
        };
        let channels = (0..names.len())
            .map(|i| match kind {
                // The mouth from one convention only, so it is not driven twice; the rest of
                // the face (eyes, brows, smile) from whichever names the rig has.
                RigKind::Oculus => oculus[i]
                    .map(Channel::Viseme)
                    .or(arkit[i].filter(|&a| !is_mouth_arkit(a) || ARKIT[a].starts_with("mouthSmile")).map(Channel::Arkit))
                    .or(vrm[i].filter(|v| matches!(v, Vrm::Blink | Vrm::BlinkLeft | Vrm::BlinkRight | Vrm::Happy)).map(Channel::Vrm)),
                RigKind::Arkit => arkit[i]
                    .map(Channel::Arkit)
                    .or(vrm[i].filter(|v| matches!(v, Vrm::Blink | Vrm::BlinkLeft | Vrm::BlinkRight | Vrm::Happy)).map(Channel::Vrm)),
                RigKind::Vrm => vrm[i].map(Channel::Vrm).or(arkit[i].filter(|&a| !is_mouth_arkit(a)).map(Channel::Arkit)),
                RigKind::JawOnly => (canon[i].contains("jaw") || canon[i].contains("mouthopen"))
                    .then_some(Channel::Jaw)
                    .or(arkit[i].filter(|&a| !is_mouth_arkit(a)).map(Channel::Arkit)),
                RigKind::Static => None,
            })
            .collect();
        let warning = match kind {
            RigKind::JawOnly => Some("the avatar names no ARKit, Oculus or VRM mouth shapes: only its jaw will move with the voice".to_string()),
            RigKind::Static => {
                Some("the avatar has no morph targets hiwar recognises (ARKit 52, Oculus visemes or VRM expressions): its face will not move".to_string())
            }
            _ => None,
        };
        (Rig { kind, channels, table: Vec::new() }, warning)
    }

    /// Binds an avatar mesh through its VRM expression table: `binds` are (preset, morph
    /// target index, weight 0–1) as the file's `VRMC_vrm` (1.0) or `blendShapeMaster` (0.x)
    /// extension lists them for this mesh. Targets no preset moves are still bound by name
    /// (a VRM may carry ARKit shapes too), the mouth's excepted when the table drives it.
    pub fn with_expressions<S: AsRef<str>>(names: &[S], binds: &[(Vrm, usize, f32)]) -> (Rig, Option<String>) {
        let (mut rig, warning) = Rig::detect(names);
        let mut table = vec![Vec::new(); names.len()];
        for &(preset, target, weight) in binds {
            if let Some(t) = table.get_mut(target)
                && weight > 0.0
            {
                t.push((preset, weight.min(1.0)));
            }
        }
        if !table.iter().flatten().any(|(p, _)| p.is_mouth()) {
            // The table has no mouth for this mesh: it is eyes or brows only, or nothing.
            if table.iter().all(Vec::is_empty) {
                return (rig, warning);
            }
            rig.table = table;
            return (rig, None);
        }
        rig.kind = RigKind::Vrm;
        for (ch, t) in rig.channels.iter_mut().zip(&table) {
            let mouth_by_name = match ch {
                Some(Channel::Arkit(i)) => is_mouth_arkit(*i),
                Some(Channel::Viseme(_) | Channel::Jaw) => true,
                Some(Channel::Vrm(v)) => v.is_mouth(),
                None => false,
            };
            if !t.is_empty() || mouth_by_name {
                *ch = None;
            }
        }
        rig.table = table;
        (rig, None)
    }

    /// How many targets the rig drives.
    pub fn driven(&self) -> usize {
        (0..self.channels.len()).filter(|&i| self.channels[i].is_some() || self.table.get(i).is_some_and(|t| !t.is_empty())).count()
    }

    /// Writes each morph target's weight for `face` into `out` (one per target name given to
    /// [`Rig::detect`]; targets with no source are set to 0). Allocation-free.
    pub fn apply(&self, face: &FaceFrame, out: &mut [f32]) {
        let m = &face.mouth;
        for (i, (o, ch)) in out.iter_mut().zip(&self.channels).enumerate() {
            *o = match (ch, self.table.get(i).filter(|t| !t.is_empty())) {
                (_, Some(t)) => t.iter().map(|&(v, w)| w * vrm_weight(v, face)).sum::<f32>().clamp(0.0, 1.0),
                (None, None) => 0.0,
                (Some(Channel::Arkit(i)), None) => face.arkit[*i],
                (Some(Channel::Viseme(v)), None) => m.weight(*v),
                (Some(Channel::Jaw), None) => m.jaw,
                (Some(Channel::Vrm(v)), None) => vrm_weight(*v, face),
            };
        }
    }
}

/// A VRM preset's weight for the face.
fn vrm_weight(v: Vrm, face: &FaceFrame) -> f32 {
    let m = &face.mouth;
    let look = |r: f32| (r / 0.5).clamp(0.0, 1.0);
    match v {
        Vrm::Aa => m.weight(Viseme::Aa).max(m.jaw),
        Vrm::Ih => m.weight(Viseme::I) + 0.5 * (m.weight(Viseme::SS) + m.weight(Viseme::CH)),
        Vrm::Ou => m.weight(Viseme::U) + 0.5 * m.weight(Viseme::RR),
        Vrm::Ee => m.weight(Viseme::E),
        Vrm::Oh => m.weight(Viseme::O),
        Vrm::Blink | Vrm::BlinkLeft | Vrm::BlinkRight => face.blink,
        Vrm::Happy => face.smile,
        Vrm::Sad => 0.6 * face.frown,
        Vrm::LookUp => look(face.gaze[1]),
        Vrm::LookDown => look(-face.gaze[1]),
        // Positive yaw is the avatar's own left.
        Vrm::LookLeft => look(face.gaze[0]),
        Vrm::LookRight => look(-face.gaze[0]),
        Vrm::Angry | Vrm::Relaxed | Vrm::Surprised | Vrm::Neutral => 0.0,
    }
    .clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arkit_has_52_distinct_names() {
        let mut n = ARKIT.to_vec();
        n.sort_unstable();
        n.dedup();
        assert_eq!(n.len(), 52);
        for v in Viseme::ALL {
            for (name, _) in recipe(v) {
                let mut a = [0.0; 52];
                add(&mut a, name, 1.0);
                assert!(a.iter().any(|w| *w > 0.0), "{name} names no ARKit shape");
            }
        }
    }

    #[test]
    fn detects_each_convention() {
        let arkit: Vec<String> = ARKIT.iter().map(|n| format!("blendShape1.{n}")).collect();
        let (rig, warn) = Rig::detect(&arkit);
        assert_eq!((rig.kind, rig.driven(), warn), (RigKind::Arkit, 52, None));

        let mut oculus: Vec<&str> = Viseme::ALL.iter().map(|v| v.oculus_name()).collect();
        oculus.extend(["eyeBlinkLeft", "eyeBlinkRight", "jawOpen", "mouthSmileLeft"]);
        let (rig, _) = Rig::detect(&oculus);
        assert_eq!(rig.kind, RigKind::Oculus);
        // The mouth is driven once: by the visemes, not also by jawOpen.
        assert_eq!(rig.driven(), 15 + 3);

        let (rig, _) = Rig::detect(&["A", "I", "U", "E", "O", "Blink", "Joy"]);
        assert_eq!((rig.kind, rig.driven()), (RigKind::Vrm, 7));

        let (rig, warn) = Rig::detect(&["JawDrop", "Brows"]);
        assert_eq!((rig.kind, rig.driven()), (RigKind::JawOnly, 1));
        assert!(warn.is_some_and(|w| w.contains("jaw")));
        let (rig, warn) = Rig::detect(&["eyeBlinkLeft", "eyeBlinkRight"]);
        assert_eq!((rig.kind, rig.driven(), warn), (RigKind::Arkit, 2, None), "a lids-only mesh");
        let (rig, warn) = Rig::detect(&["Key 1"]);
        assert_eq!(rig.kind, RigKind::Static);
        assert!(warn.is_some());
    }

    #[test]
    fn composed_weights_stay_in_range() {
        let composer = Composer::new();
        let (rig, _) = Rig::detect(&ARKIT);
        let idle = IdleFrame { blink: 1.0, gaze: [0.3, -0.2], head: [0.0; 3], breath: 0.5, brow_inner_up: 1.0, brow_down: 1.0, smile: 1.0, frown: 1.0 };
        let mut out = [0.0; 52];
        for v in Viseme::ALL {
            let f = composer.compose(&Mouth::of(v, 1.0), &idle);
            rig.apply(&f, &mut out);
            assert!(out.iter().all(|w| (0.0..=1.0).contains(w)), "{v:?}: {out:?}");
        }
        let open = composer.compose(&Mouth::of(Viseme::Aa, 1.0), &IdleFrame::default());
        assert!(open.arkit[arkit_index("jawOpen").unwrap_or(0)] > 0.7);
        let closed = composer.compose(&Mouth::of(Viseme::PP, 1.0), &IdleFrame::default());
        assert_eq!(closed.arkit[arkit_index("jawOpen").unwrap_or(0)], 0.0);
        assert!(closed.arkit[arkit_index("mouthPressLeft").unwrap_or(0)] > 0.3);
    }

    #[test]
    fn a_vrm_expression_table_drives_targets_whatever_their_names() {
        // As VRoid exports: targets named by the exporter, bound through the table only.
        let names = ["Fcl_ALL_Neutral", "Fcl_MTH_A", "Fcl_MTH_I", "Fcl_MTH_U", "Fcl_MTH_E", "Fcl_MTH_O", "Fcl_EYE_Close", "Fcl_ALL_Joy", "Fcl_ALL_Sorrow"];
        assert_eq!(Rig::detect(&names).0.kind, RigKind::Static, "the names alone say nothing");
        let binds = [
            (Vrm::Aa, 1, 1.0),
            (Vrm::Ih, 2, 1.0),
            (Vrm::Ou, 3, 1.0),
            (Vrm::Ee, 4, 1.0),
            (Vrm::Oh, 5, 1.0),
            (Vrm::Blink, 6, 1.0),
            (Vrm::Happy, 7, 0.5),
            (Vrm::Sad, 8, 1.0),
            // An exporter's "neutral" moves nothing hiwar drives.
            (Vrm::Neutral, 0, 1.0),
        ];
        let (rig, warn) = Rig::with_expressions(&names, &binds);
        assert_eq!((rig.kind, warn), (RigKind::Vrm, None));
        let composer = Composer::new();
        let mut out = [0.0; 9];
        let idle = IdleFrame { blink: 1.0, smile: 1.0, frown: 1.0, ..IdleFrame::default() };
        rig.apply(&composer.compose(&Mouth::of(Viseme::Aa, 1.0), &idle), &mut out);
        assert!(out[1] > 0.7, "aa opens the mouth: {out:?}");
        assert_eq!((out[0], out[2], out[5]), (0.0, 0.0, 0.0));
        assert_eq!((out[6], out[7], out[8]), (1.0, 0.5, 0.6));
        rig.apply(&composer.compose(&Mouth::of(Viseme::O, 1.0), &IdleFrame::default()), &mut out);
        assert!(out[5] > 0.7 && out[1] <= 0.5, "oh rounds it (the jaw half open): {out:?}");
        rig.apply(&composer.compose(&Mouth::REST, &IdleFrame::default()), &mut out);
        assert!(out.iter().all(|w| *w == 0.0), "at rest nothing moves: {out:?}");

        // A table for the eyes only leaves a mesh's ARKit mouth bound by name.
        let (rig, _) = Rig::with_expressions(&["jawOpen", "Eye_Close"], &[(Vrm::Blink, 1, 1.0)]);
        let mut out = [0.0; 2];
        rig.apply(&composer.compose(&Mouth::of(Viseme::Aa, 1.0), &IdleFrame { blink: 1.0, ..IdleFrame::default() }), &mut out);
        assert!(out[0] > 0.7 && out[1] == 1.0, "{out:?}");
        // Out-of-range binds (a broken file) are dropped, not a panic.
        let (rig, _) = Rig::with_expressions(&["A"], &[(Vrm::Aa, 7, 1.0)]);
        assert_eq!(rig.driven(), 1);
    }
}
