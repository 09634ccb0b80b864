//! The default avatar, built by code so that its licence is the project's own.
//!
//! A friendly stylised head and shoulders: skin, hair, ears, nose, eyes that turn (separate
//! nodes), lids, brows, lips, a mouth cavity with teeth and a tongue. Every deforming part is
//! one mesh ("Face") whose morph targets carry ARKit names, so the rig detector binds it like
//! any ARKit avatar. Each part is a parametric surface written as a function of the shape
//! weights; a morph target is the difference between the surface with that one weight at 1
//! and the surface at rest, so the shapes are exact at 0 and 1 and blend linearly between.
//!
//! Axes: +Y up, the avatar faces +Z (towards the camera), its left is +X. Metres; the head's
//! centre is at the origin of the "Head" node.

use std::f32::consts::{PI, TAU};

/// The morph targets of the "Face" mesh, in ARKit's names.
pub const TARGETS: [&str; 27] = [
    "jawOpen",
    "mouthClose",
    "mouthFunnel",
    "mouthPucker",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthShrugUpper",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "tongueOut",
    "eyeBlinkLeft",
    "eyeBlinkRight",
    "browInnerUp",
    "browDownLeft",
    "browDownRight",
    "browOuterUpLeft",
    "browOuterUpRight",
    "cheekSquintLeft",
    "cheekSquintRight",
];

/// Shape weights, one per entry of [`TARGETS`].
#[derive(Clone, Copy)]
struct Shape([f32; TARGETS.len()]);

impl Shape {
    fn rest() -> Shape {
        Shape([0.0; TARGETS.len()])
    }

    fn only(i: usize) -> Shape {
        let mut s = Shape::rest();
        s.0[i] = 1.0;
        s
    }

    fn w(&self, name: &str) -> f32 {
        TARGETS.iter().position(|t| *t == name).map_or(0.0, |i| self.0[i])
    }

    /// A sided shape at horizontal position `x` (the avatar's left is +X): the left weight on
    /// the left, the right on the right, blended across the middle.
    fn sided(&self, name: &str, x: f32) -> f32 {
        let left = smoothstep(-0.3, 0.3, x);
        self.w(&format!("{name}Left")) * left + self.w(&format!("{name}Right")) * (1.0 - left)
    }
}

fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

// The head: an ellipsoid whose lower half narrows towards the chin.
const RX: f32 = 0.08;
const RY: f32 = 0.1;
const RZ: f32 = 0.092;

/// A smooth bump: 1 at 0, falling to 0 (with no slope) at ±1.
fn bell(q: f32) -> f32 {
    if q.abs() < 1.0 { (1.0 - q * q).powi(2) } else { 0.0 }
}

/// How wide the head is at height `y`, as a share of `RX`: the lower half narrows towards
/// the chin, held out a little at the angle of the jaw.
fn taper(y: f32) -> f32 {
    if y < 0.0 { (1.0 - 0.24 * (-y / RY).powf(1.5)) * (1.0 + 0.08 * bell((y + 0.074) / 0.04)) } else { 1.0 }
}

/// What stands out of the ellipsoid in front at (x, y): a chin and the cheekbones.
fn relief(x: f32, y: f32) -> f32 {
    let chin = 0.01 * smoothstep(-0.06, -0.086, y) * bell(x / 0.036);
    let cheek = |cx: f32| 0.0035 * bell((((x - cx) / 0.022).powi(2) + ((y + 0.014) / 0.018).powi(2)).sqrt());
    chin + cheek(0.05) + cheek(-0.05)
}

/// The front of the head's surface at (x, y).
fn surface_z(x: f32, y: f32) -> f32 {
    let rx = RX * taper(y);
    let z = RZ * (1.0 - (x / rx).powi(2) - (y / RY).powi(2)).max(0.0).sqrt();
    z + relief(x, y) * smoothstep(0.0, 0.04, z)
}

// The mouth.
pub const MOUTH_Y: f32 = -0.047;
pub const MOUTH_HALF: f32 = 0.025;

/// How far in front of the head's centre the closed lips are.
pub fn mouth_front() -> f32 {
    surface_z(0.0, MOUTH_Y) + 0.004
}

/// Where the mouth's features sit for parameter `u` in [-1, 1] (corner to corner).
struct MouthLine {
    x: f32,
    upper: f32,
    lower: f32,
    z: f32,
}

fn mouth_line(u: f32, s: &Shape) -> MouthLine {
    let x0 = u * MOUTH_HALF;
    let mid = 1.0 - u * u;
    let half = MOUTH_HALF * (1.0 - 0.3 * s.w("mouthFunnel") - 0.4 * s.w("mouthPucker"))
        + 0.008 * s.sided("mouthStretch", x0 / MOUTH_HALF)
        + 0.006 * s.sided("mouthSmile", x0 / MOUTH_HALF);
    let x = u * half;
    let corner = u * u * (0.008 * s.sided("mouthSmile", u) - 0.002 * s.sided("mouthStretch", u));
    let jaw = s.w("jawOpen");
    let upper = MOUTH_Y
        + corner
        + mid
            * (0.003 * jaw + 0.006 * s.sided("mouthUpperUp", u) + 0.003 * s.w("mouthShrugUpper") + 0.003 * s.w("mouthFunnel")
                - 0.0015 * s.w("mouthClose")
                - 0.002 * s.w("mouthRollUpper"));
    let lower = MOUTH_Y + corner - mid.powf(0.7) * (0.034 * jaw + 0.008 * s.sided("mouthLowerDown", u) + 0.004 * s.w("mouthFunnel")) - u * u * 0.005 * jaw
        + mid * (0.0015 * s.w("mouthClose") + 0.003 * s.w("mouthRollLower"));
    let z = surface_z(x0, MOUTH_Y) + 0.006 * s.w("mouthPucker") + 0.004 * s.w("mouthFunnel");
    MouthLine { x, upper, lower, z }
}

/// A mesh part under construction: a grid of vertices, triangulated.
#[derive(Default, Clone)]
pub struct Part {
    pub name: &'static str,
    pub material: usize,
    pub positions: Vec<[f32; 3]>,
    pub indices: Vec<u32>,
    /// One list of position offsets per morph target (empty for parts that do not deform).
    pub targets: Vec<Vec<[f32; 3]>>,
    pub normals: Vec<[f32; 3]>,
    /// Per-vertex colour (linear RGB) once parts are merged into one draw.
    pub colors: Vec<[f32; 3]>,
}

/// Builds a `rows × cols` grid part from a function of (row, col, shape); with `deform`, one
/// morph target per [`TARGETS`] entry. `wrap` joins the last column to the first.
fn grid(name: &'static str, material: usize, rows: usize, cols: usize, wrap: bool, deform: bool, f: impl Fn(usize, usize, &Shape) -> [f32; 3]) -> Part {
    let at = |s: &Shape| -> Vec<[f32; 3]> { (0..rows).flat_map(|r| (0..cols).map(move |c| (r, c))).map(|(r, c)| f(r, c, s)).collect() };
    let rest = at(&Shape::rest());
    let targets = if deform {
        (0..TARGETS.len())
            .map(|t| {
                let moved = at(&Shape::only(t));
                moved.iter().zip(&rest).map(|(m, r)| [m[0] - r[0], m[1] - r[1], m[2] - r[2]]).collect()
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut indices = Vec::new();
    let span = if wrap { cols } else { cols - 1 };
    for r in 0..rows - 1 {
        for c in 0..span {
            let c1 = (c + 1) % cols;
            let (a, b, d, e) = ((r * cols + c) as u32, (r * cols + c1) as u32, ((r + 1) * cols + c) as u32, ((r + 1) * cols + c1) as u32);
            indices.extend([a, d, b, b, d, e]);
        }
    }
    let mut part = Part { name, material, positions: rest, indices, targets, normals: Vec::new(), colors: Vec::new() };
    part.compute_normals();
    part
}

impl Part {
    /// Area-weighted vertex normals from the winding (counter-clockwise seen from outside).
    fn compute_normals(&mut self) {
        let mut n = vec![[0.0_f32; 3]; self.positions.len()];
        for t in self.indices.chunks_exact(3) {
            let [a, b, c] = [t[0] as usize, t[1] as usize, t[2] as usize];
            let (p, q, r) = (self.positions[a], self.positions[b], self.positions[c]);
            let u = [q[0] - p[0], q[1] - p[1], q[2] - p[2]];
            let v = [r[0] - p[0], r[1] - p[1], r[2] - p[2]];
            let cross = [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]];
            for i in [a, b, c] {
                for k in 0..3 {
                    n[i][k] += cross[k];
                }
            }
        }
        for v in &mut n {
            let len = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
            *v = if len > 1e-12 { [v[0] / len, v[1] / len, v[2] / len] } else { [0.0, 0.0, 1.0] };
        }
        self.normals = n;
    }

    /// Joins parts into one (one draw call: software renderers pay per draw), each part's
    /// material colour carried as vertex colour.
    fn merged(name: &'static str, parts: Vec<Part>) -> Part {
        let mut out = Part { name, material: 0, ..Part::default() };
        let targets = parts.iter().map(|p| p.targets.len()).max().unwrap_or(0);
        out.targets = vec![Vec::new(); targets];
        for p in parts {
            let base = out.positions.len() as u32;
            out.indices.extend(p.indices.iter().map(|i| i + base));
            out.colors.extend(std::iter::repeat_n(MATERIALS[p.material].1, p.positions.len()));
            for (t, list) in out.targets.iter_mut().enumerate() {
                match p.targets.get(t) {
                    Some(d) => list.extend_from_slice(d),
                    None => list.extend(std::iter::repeat_n([0.0; 3], p.positions.len())),
                }
            }
            out.positions.extend(p.positions);
            out.normals.extend(p.normals);
        }
        out
    }

    /// Splits into the triangles that never move (any target) and those that do, each with
    /// its own vertices; normals are kept from the whole, so the seam does not show.
    fn split_moving(self) -> (Part, Part) {
        let moves: Vec<bool> = (0..self.positions.len()).map(|v| self.targets.iter().any(|t| t[v].iter().any(|d| d.abs() > 1e-7))).collect();
        let pick = |keep_moving: bool, name: &'static str| {
            let mut map = vec![u32::MAX; self.positions.len()];
            let mut out = Part { name, material: self.material, targets: vec![Vec::new(); self.targets.len()], ..Part::default() };
            for tri in self.indices.chunks_exact(3) {
                if tri.iter().any(|&i| moves[i as usize]) != keep_moving {
                    continue;
                }
                for &i in tri {
                    let i = i as usize;
                    if map[i] == u32::MAX {
                        map[i] = out.positions.len() as u32;
                        out.positions.push(self.positions[i]);
                        out.normals.push(self.normals[i]);
                        for (t, list) in out.targets.iter_mut().enumerate() {
                            list.push(self.targets[t][i]);
                        }
                    }
                    out.indices.push(map[i]);
                }
            }
            out
        };
        (pick(false, "still"), pick(true, "moving"))
    }

    /// The targets that move anything in this part (indices into [`TARGETS`]).
    fn live_targets(&self) -> Vec<usize> {
        (0..self.targets.len()).filter(|&t| self.targets[t].iter().any(|d| d.iter().any(|v| v.abs() > 1e-7))).collect()
    }

    /// Reverses the winding (and the normals) when the surface was built inside out.
    fn flipped(mut self) -> Part {
        for t in self.indices.chunks_exact_mut(3) {
            t.swap(1, 2);
        }
        self.compute_normals();
        self
    }
}

/// An ellipsoid (latitude rows from top to bottom, longitude columns), optionally reshaped.
fn ellipsoid(name: &'static str, material: usize, centre: [f32; 3], radii: [f32; 3], rows: usize, cols: usize, shape: impl Fn([f32; 3]) -> [f32; 3]) -> Part {
    grid(name, material, rows, cols, true, false, |r, c, _| {
        let theta = PI * r as f32 / (rows - 1) as f32;
        let phi = TAU * c as f32 / cols as f32;
        let p = [radii[0] * theta.sin() * phi.sin(), radii[1] * theta.cos(), radii[2] * theta.sin() * phi.cos()];
        let p = shape(p);
        [centre[0] + p[0], centre[1] + p[1], centre[2] + p[2]]
    })
}

/// A tube along a centre line: `centre(u, shape)` gives the centre and the half-sizes across
/// (vertical, depth) for u in [0, 1].
fn tube(name: &'static str, material: usize, along: usize, around: usize, centre: impl Fn(f32, &Shape) -> ([f32; 3], f32, f32)) -> Part {
    grid(name, material, along, around, true, true, |r, c, s| {
        let u = r as f32 / (along - 1) as f32;
        let (p, half_y, half_z) = centre(u, s);
        let a = TAU * c as f32 / around as f32;
        [p[0], p[1] + half_y * a.cos(), p[2] + half_z * a.sin()]
    })
    .flipped()
}

/// Each part's colour (linear RGB) and how rough it would be (kept for a future per-part
/// material; one material serves all today).
pub const MATERIALS: [(&str, [f32; 3], f32); 18] = [
    ("skin", [0.80, 0.58, 0.45], 0.65),
    ("lips", [0.64, 0.38, 0.35], 0.5),
    ("mouth", [0.02, 0.003, 0.005], 1.0),
    ("teeth", [0.93, 0.92, 0.88], 0.35),
    ("tongue", [0.72, 0.30, 0.33], 0.6),
    ("sclera", [0.96, 0.96, 0.95], 0.3),
    ("iris", [0.30, 0.18, 0.10], 0.3),
    ("pupil", [0.02, 0.02, 0.02], 0.2),
    ("hair", [0.10, 0.07, 0.05], 0.8),
    ("clothes", [0.10, 0.33, 0.42], 0.85),
    ("collar", [0.93, 0.93, 0.90], 0.8),
    ("lashes", [0.015, 0.01, 0.008], 0.9),
    ("highlight", [1.0, 1.0, 1.0], 0.1),
    ("ghutra", [0.92, 0.92, 0.90], 0.85),
    ("agal", [0.012, 0.012, 0.014], 0.7),
    ("hijab", [0.16, 0.17, 0.26], 0.85),
    ("abaya", [0.03, 0.03, 0.035], 0.9),
    // Lids a shade deeper than the skin: they face the key light more than the skin beside
    // them, and a lid reads as a lid by its fold's shadow.
    ("lid", [0.73, 0.51, 0.40], 0.65),
];

const SKIN: usize = 0;
const LIPS: usize = 1;
const MOUTH: usize = 2;
const TEETH: usize = 3;
const TONGUE: usize = 4;
const SCLERA: usize = 5;
const IRIS: usize = 6;
const PUPIL: usize = 7;
const HAIR: usize = 8;
const CLOTHES: usize = 9;
const COLLAR: usize = 10;
const LASHES: usize = 11;
const HIGHLIGHT: usize = 12;
const GHUTRA: usize = 13;
const AGAL: usize = 14;
const HIJAB: usize = 15;
const ABAYA: usize = 16;
const LID: usize = 17;

pub const EYE_RADIUS: f32 = 0.0125;

/// Where each eye's centre is, in head space (left eye first): set into the face so that a
/// little more than a third of the eyeball shows.
pub fn eye_centres() -> [[f32; 3]; 2] {
    let (x, y) = (0.031, 0.018);
    let z = surface_z(x, y) - 0.6 * EYE_RADIUS;
    [[x, y, z], [-x, y, z]]
}

/// Where an upper lid's edge is for eye centre `c`: just over the iris's top when open (a
/// relaxed eye, not a stare), below the eye when shut (the lid and its lashes follow the
/// same edge).
fn upper_lid_edge(c: [f32; 3], s: &Shape, side: &str) -> f32 {
    c[1] + EYE_RADIUS * 0.4 - EYE_RADIUS * 1.5 * s.w(&format!("eyeBlink{side}"))
}

/// Where a lower lid's edge is: under the iris, rising a little in a blink and more when the
/// cheeks squint (the lid and its lash line follow the same edge).
fn lower_lid_edge(c: [f32; 3], s: &Shape, side: &str) -> f32 {
    c[1] - EYE_RADIUS * 0.62 + EYE_RADIUS * (0.25 * s.w(&format!("eyeBlink{side}")) + 0.3 * s.w(&format!("cheekSquint{side}")))
}

/// A lid's depth: on the eyeball's cylinder where `w` is 1, just behind the skin where it is 0.
/// Never inside the eyeball (centre `c`, with the highlight on it): a closed lid covers it.
fn lid_z(x: f32, y: f32, round: f32, w: f32, c: [f32; 3]) -> f32 {
    let skin = surface_z(x, y) - 0.0004;
    let (dx, dy) = (x - c[0], y - c[1]);
    let r = EYE_RADIUS * 1.09;
    let ball = if dx * dx + dy * dy < r * r { c[2] + (r * r - dx * dx - dy * dy).sqrt() } else { f32::MIN };
    (skin + (round - skin) * w).max(ball)
}

/// The deforming parts of the face, all with the same morph targets.
pub fn face_parts() -> Vec<Part> {
    let mut parts = Vec::new();
    // Skin: the head, the lower face following the jaw, cheeks rising with a smile.
    parts.push(grid("skin", SKIN, 40, 52, true, true, |r, c, s| {
        let theta = PI * r as f32 / 39.0;
        let phi = TAU * c as f32 / 52.0;
        let y = RY * theta.cos();
        let mut p = [RX * taper(y) * theta.sin() * phi.sin(), y, RZ * theta.sin() * phi.cos()];
        let front = smoothstep(0.0, 0.04, p[2]);
        p[2] += relief(p[0], p[1]) * front;
        let jaw = s.w("jawOpen") * front * (1.0 - smoothstep(0.022, 0.07, p[0].abs())) * smoothstep(MOUTH_Y + 0.004, MOUTH_Y - 0.012, p[1]);
        p[1] -= 0.03 * jaw;
        p[2] -= 0.006 * jaw;
        for (side, sign) in [("Left", 1.0_f32), ("Right", -1.0)] {
            let d = ((p[0] - sign * 0.036).powi(2) + (p[1] + 0.028).powi(2)).sqrt();
            let bump = (1.0 - smoothstep(0.0, 0.022, d)) * front;
            let k = s.w(&format!("cheekSquint{side}")) + 0.5 * s.w(&format!("mouthSmile{side}"));
            p[1] += 0.004 * k * bump;
            p[2] += 0.003 * k * bump;
        }
        p
    }));
    // The mouth cavity fills the gap between the lips; at rest it has no height.
    let cavity = |s: &Shape, u: f32, v: f32| {
        let m = mouth_line(u, s);
        [m.x * 0.97, m.lower + (m.upper - m.lower) * v, m.z + 0.0008]
    };
    parts.push(grid("mouth", MOUTH, 5, 33, false, true, |r, c, s| cavity(s, c as f32 / 16.0 - 1.0, r as f32 / 4.0)).flipped());
    // Teeth: upper and lower rows, the top fifth and bottom eighth of the opening.
    parts.push(grid("teeth-upper", TEETH, 3, 25, false, true, |r, c, s| {
        let u = 0.72 * (c as f32 / 12.0 - 1.0);
        let m = mouth_line(u, s);
        let v = r as f32 / 2.0;
        [m.x * 0.97, m.upper - 0.16 * (m.upper - m.lower) * v, m.z + 0.0012]
    }));
    parts.push(
        grid("teeth-lower", TEETH, 3, 25, false, true, |r, c, s| {
            let u = 0.65 * (c as f32 / 12.0 - 1.0);
            let m = mouth_line(u, s);
            let v = r as f32 / 2.0;
            [m.x * 0.97, m.lower + 0.08 * (m.upper - m.lower) * v, m.z + 0.0012]
        })
        .flipped(),
    );
    // The tongue rests on the floor of the mouth and comes forward for θ ð.
    parts.push(
        grid("tongue", TONGUE, 4, 21, false, true, |r, c, s| {
            let u = 0.6 * (c as f32 / 10.0 - 1.0);
            let m = mouth_line(u, s);
            let v = r as f32 / 3.0;
            let arch = 1.0 - (u / 0.6).powi(2);
            let out = s.w("tongueOut");
            let top = m.lower + (0.16 * (m.upper - m.lower) + 0.006 * out) * arch;
            [m.x * 0.97, m.lower + (top - m.lower) * v - 0.002 * out * (1.0 - v), m.z + 0.0014 + 0.009 * out * arch]
        })
        .flipped(),
    );
    // Lips: tubes along the mouth line, the upper lip above it and the lower below.
    for (name, upper) in [("lip-upper", true), ("lip-lower", false)] {
        parts.push(tube(name, LIPS, 25, 8, move |u, s| {
            let u = 2.0 * u - 1.0;
            let m = mouth_line(u, s);
            let full = (1.0 - u * u).max(0.0).sqrt();
            let (roll, press) = if upper { (s.w("mouthRollUpper"), s.sided("mouthPress", u)) } else { (s.w("mouthRollLower"), s.sided("mouthPress", u)) };
            let thick = ((if upper { 0.0042 } else { 0.0052 }) * full + 0.0008) * (1.0 - 0.45 * press - 0.5 * roll) * (1.0 + 0.3 * s.w("mouthPucker"));
            let y = if upper { m.upper + thick } else { m.lower - thick };
            let z = m.z + 0.0022 * full + 0.001 - 0.003 * roll;
            ([m.x, y, z], thick, 0.0035 * full + 0.001)
        }));
    }
    // Upper lids: a curtain on a vertical cylinder around each eye, its edge falling to
    // close (a cylinder, so the edge moves in a straight line and the blend stays on it).
    for (i, (name, side)) in [("lid-left", "Left"), ("lid-right", "Right")].into_iter().enumerate() {
        let c = eye_centres()[i];
        parts.push(grid(name, LID, 6, 17, false, true, move |r, col, s| {
            let radius = EYE_RADIUS * 1.08;
            // An almond, not a box: narrower towards the brow.
            let v = r as f32 / 5.0;
            let phi = (col as f32 / 16.0 - 0.5) * 2.0 * 1.25 * (0.45 + 0.55 * v.sqrt());
            let top = c[1] + radius;
            let edge = upper_lid_edge(c, s, side);
            let y = top + (edge - top) * v;
            let x = c[0] + radius * phi.sin();
            // Into the skin at its border (just behind it, so the skin hides the seam), round
            // the eyeball towards its edge.
            let w = smoothstep(0.0, 0.9, v) * (1.0 - smoothstep(0.25, 1.0, phi.abs() / 1.25));
            [x, y, lid_z(x, y, c[2] + radius * phi.cos(), w, c)]
        }));
    }
    // Lower lids: a shorter curtain from below the eye up to an edge under the iris, which
    // rises a little in a blink and more when the cheeks squint (a smile reaches the eyes).
    for (i, (name, side)) in [("lid-lower-left", "Left"), ("lid-lower-right", "Right")].into_iter().enumerate() {
        let c = eye_centres()[i];
        parts.push(
            grid(name, SKIN, 4, 17, false, true, move |r, col, s| {
                let radius = EYE_RADIUS * 1.07;
                let v = r as f32 / 3.0;
                let phi = (col as f32 / 16.0 - 0.5) * 2.0 * 1.2 * (0.5 + 0.5 * v.sqrt());
                let bottom = c[1] - radius;
                let edge = lower_lid_edge(c, s, side);
                let y = bottom + (edge - bottom) * v;
                let x = c[0] + radius * phi.sin();
                let w = smoothstep(0.0, 1.0, v) * (1.0 - smoothstep(0.25, 1.0, phi.abs() / 1.2));
                [x, y, lid_z(x, y, c[2] + radius * phi.cos(), w, c)]
            })
            .flipped(),
        );
    }
    // Lashes: a dark fringe along each upper lid's edge, tilting out and up (thickest at the
    // outer corner), and a finer line along the lower lid.
    for (i, (name, side, sign)) in [("lid-lashes-left", "Left", 1.0_f32), ("lid-lashes-right", "Right", -1.0)].into_iter().enumerate() {
        let c = eye_centres()[i];
        parts.push(grid(name, LASHES, 2, 17, false, true, move |r, col, s| {
            let radius = EYE_RADIUS * 1.09;
            let t = col as f32 / 16.0;
            let phi = (t - 0.5) * 2.0 * 1.2;
            let edge = upper_lid_edge(c, s, side);
            // Outer corner: towards the avatar's side (+X for the left eye).
            let outer = smoothstep(-1.0, 1.0, sign * phi.sin() / 1.0);
            let len = 0.0016 + 0.0014 * outer;
            let k = r as f32;
            [c[0] + (radius + 0.0006 * k) * phi.sin(), edge + 0.0004 + 0.55 * len * k, c[2] + (radius + len * k) * phi.cos()]
        }));
    }
    for (i, (name, side)) in [("lid-liner-left", "Left"), ("lid-liner-right", "Right")].into_iter().enumerate() {
        let c = eye_centres()[i];
        parts.push(
            grid(name, LASHES, 2, 17, false, true, move |r, col, s| {
                let radius = EYE_RADIUS * 1.075;
                let phi = (col as f32 / 16.0 - 0.5) * 2.0 * 1.1;
                let edge = lower_lid_edge(c, s, side);
                [c[0] + radius * phi.sin(), edge - 0.0007 * r as f32, c[2] + (radius + 0.0002) * phi.cos()]
            })
            .flipped(),
        );
    }
    // Brows: tubes from the inner end to the outer.
    for (name, sign, side) in [("brow-left", 1.0_f32, "Left"), ("brow-right", -1.0, "Right")] {
        parts.push(tube(name, HAIR, 9, 6, move |u, s| {
            let x = sign * (0.014 + 0.034 * u);
            let lift = 0.006 * s.w("browInnerUp") * (1.0 - u).powi(2) + 0.006 * s.w(&format!("browOuterUp{side}")) * u * u
                - s.w(&format!("browDown{side}")) * (0.004 + 0.002 * (1.0 - u));
            let y = 0.041 + 0.005 * (PI * u).sin() - 0.003 * u + lift;
            let thick = 0.0028 * (1.0 - 0.45 * u) + 0.0006;
            ([x, y, surface_z(x, y) + 0.0012], thick, 0.0015)
        }));
    }
    parts
}

/// What the avatar wears on its head: kiosks in the region need each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Short dark hair, uncovered.
    Hair,
    /// A white ghutra with a black agal.
    Ghutra,
    /// A hijab framing the face and covering the neck.
    Hijab,
}

impl Variant {
    pub const ALL: [Variant; 3] = [Variant::Hair, Variant::Ghutra, Variant::Hijab];

    pub fn parse(name: &str) -> Option<Variant> {
        Variant::ALL.into_iter().find(|v| v.name() == name)
    }

    /// Its name in `stage.variant`.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Hair => "hair",
            Variant::Ghutra => "ghutra",
            Variant::Hijab => "hijab",
        }
    }

    /// The bundled file for this variant, in assets/avatar/ (named where the config finds it).
    pub fn file_name(self) -> &'static str {
        hiwar_core::config::bundled_avatar(self.name())
    }
}

/// The head's outer surface at polar angle `theta` (0 at the crown) and azimuth `phi` (0 at
/// the front), pushed out by `lift` (1 = the skin).
fn head_shell(theta: f32, phi: f32, lift: f32) -> [f32; 3] {
    let y = RY * theta.cos();
    [RX * taper(y) * lift * theta.sin() * phi.sin(), RY * lift * theta.cos(), RZ * lift * theta.sin() * phi.cos()]
}

/// Cloth over the head that falls to the shoulders everywhere but where `open(phi)` says it
/// stops (the height its edge reaches at that azimuth, head space): a ghutra or a hijab.
fn drape(name: &'static str, material: usize, lift: f32, flare: f32, open: impl Fn(f32) -> f32) -> Part {
    const ROWS: usize = 22;
    const COLS: usize = 48;
    grid(name, material, ROWS, COLS, true, false, move |r, c, _| {
        let phi = TAU * c as f32 / COLS as f32 - PI;
        let end = open(phi);
        let top = RY * lift;
        let v = r as f32 / (ROWS - 1) as f32;
        let y = top + (end - top) * v;
        if y >= 0.0 {
            // Over the skull: the head's shell, a little out.
            let theta = (y / (RY * lift)).clamp(-1.0, 1.0).acos();
            head_shell(theta, phi, lift)
        } else {
            // Below the ears' top: falling straight, flaring towards the shoulders.
            let k = -y;
            let (rx, rz) = (RX * lift + flare * k, RZ * lift + 0.6 * flare * k);
            [rx * phi.sin(), y, rz * phi.cos() - 0.25 * k]
        }
    })
}

/// How far the nose stands out of the head's surface at (x, y): a bridge from between the
/// eyes that widens and rises to a rounded tip, an underside falling back to the lip, and
/// the two wings (alae) either side of the tip, joined smoothly.
fn nose_height(x: f32, y: f32) -> f32 {
    const ROOT: f32 = 0.025;
    const TIP: f32 = -0.014;
    const BASE: f32 = -0.027;
    let ridge = if !(BASE..=ROOT).contains(&y) {
        0.0
    } else if y >= TIP {
        let s = (ROOT - y) / (ROOT - TIP);
        let width = 0.0085 + 0.0035 * s * s;
        0.0185 * s.powf(1.4) * bell(x / width)
    } else {
        let s = (TIP - y) / (TIP - BASE);
        0.0185 * (1.0 - s * s) * bell(x / (0.012 - 0.003 * s))
    };
    let wing = |cx: f32| {
        let d = (((x - cx) / 0.0062).powi(2) + ((y + 0.021) / 0.006).powi(2)).sqrt();
        0.0072 * bell(d)
    };
    let wings = wing(0.0088).max(wing(-0.0088));
    (ridge.powi(4) + wings.powi(4)).powf(0.25)
}

/// The nose: a patch of skin over the head's surface raised by [`nose_height`], sinking just
/// under the skin at its border so that the seam never shows.
fn nose() -> Part {
    const ROWS: usize = 20;
    const COLS: usize = 17;
    grid("nose", SKIN, ROWS, COLS, false, false, |r, c, _| {
        let y = 0.028 - 0.058 * r as f32 / (ROWS - 1) as f32;
        let x = -0.021 + 0.042 * c as f32 / (COLS - 1) as f32;
        [x, y, surface_z(x, y) + nose_height(x, y) - 0.0004]
    })
}

/// The parts that never deform, by the node that carries them.
pub fn head_parts(variant: Variant) -> Vec<Part> {
    let mut parts = vec![
        nose(),
        ellipsoid("ear-left", SKIN, [0.079, 0.002, -0.006], [0.009, 0.022, 0.012], 8, 12, |p| p),
        ellipsoid("ear-right", SKIN, [-0.079, 0.002, -0.006], [0.009, 0.022, 0.012], 8, 12, |p| p),
    ];
    // Where the shoulders meet the cloth, in head space.
    let shoulders = 0.012 - HEAD_ABOVE_BODY;
    match variant {
        Variant::Hair => {
            // Hair with volume: thicker at the crown and the back, close over the ears, down
            // to the nape.
            parts.push(grid("hair", HAIR, 14, 56, true, false, |r, c, _| {
                let phi = TAU * c as f32 / 56.0;
                let back = 0.5 - 0.5 * phi.cos();
                // The hairline: receding a little at the temples, down in front of the ears
                // (sideburns), lowest at the nape.
                let temple = 0.1 * bell((phi.abs() - 0.6) / 0.32);
                let sideburn = 0.26 * bell((phi.abs() - 1.3) / 0.16);
                let hairline = (0.8 + 1.15 * back.powf(1.2) - temple + sideburn).min(2.05);
                let v = r as f32 / 13.0;
                let theta = hairline * v;
                let side = phi.sin().abs();
                let crown = 1.0 - v * v;
                // Nothing that depends on the azimuth at the crown itself (one point there).
                let around = smoothstep(0.0, 0.35, v);
                // Thinning to the skin at the hairline, not a helmet's rim; fuller over the
                // forehead, swept back; combed strands as shallow ridges.
                let edge = smoothstep(1.0, 0.72, v);
                let front = bell(phi / 0.9) * bell((v - 0.5) / 0.45);
                let strands = 0.004 * (phi * 23.0 + 6.0 * v).sin() * around * edge;
                let lift = 1.012 + edge * (0.04 + 0.06 * crown + 0.02 * side * around * (1.0 - v) + 0.03 * back * around * (1.0 - v) + 0.035 * front) + strands;
                let p = head_shell(theta, phi, lift);
                [p[0], p[1] + 0.004 * edge, p[2] - 0.004 * edge]
            }));
        }
        Variant::Ghutra => {
            // Open from the forehead (above the brows) down the sides of the face; closed
            // behind, falling over the shoulders.
            parts.push(drape("ghutra", GHUTRA, 1.13, 0.55, move |phi| {
                let a = phi.abs();
                0.058 + (shoulders - 0.058) * smoothstep(0.62, 1.15, a)
            }));
            // The agal: two black cords round the crown, a little lower at the back.
            for (k, dy) in [("agal-upper", 0.0_f32), ("agal-lower", -0.0085)] {
                parts.push(grid(k, AGAL, 48, 8, true, false, move |r, c, _| {
                    // A torus: r runs round the head, c round the cord.
                    let phi = TAU * r as f32 / 47.0;
                    let a = TAU * c as f32 / 8.0;
                    let y = 0.062 + dy - 0.012 * (0.5 - 0.5 * phi.cos());
                    let theta = (y / (RY * 1.16)).clamp(-1.0, 1.0).acos();
                    let p = head_shell(theta, phi, 1.19);
                    let cord = 0.0042;
                    [p[0] + cord * a.cos() * phi.sin(), p[1] + cord * a.sin(), p[2] + cord * a.cos() * phi.cos()]
                }));
            }
        }
        Variant::Hijab => {
            // Framing the face: from the hairline down the cheeks to under the chin, the
            // neck covered, falling over the shoulders.
            parts.push(drape("hijab", HIJAB, 1.1, 0.3, move |phi| {
                let a = phi.abs();
                0.062 + (shoulders - 0.062) * smoothstep(0.66, 0.98, a)
            }));
            // Under the chin and round the neck to the chest.
            parts.push(grid("hijab-neck", HIJAB, 10, 40, true, false, move |r, c, _| {
                let phi = TAU * c as f32 / 40.0;
                let v = r as f32 / 9.0;
                let y = -0.072 + (0.02 - HEAD_ABOVE_BODY + 0.072) * v;
                let rx = 0.058 + 0.07 * v * v;
                let rz = 0.062 + 0.04 * v * v;
                [rx * phi.sin(), y, rz * phi.cos() - 0.012 - 0.01 * v]
            }));
        }
    }
    parts
}

/// An eye at its own origin, looking along +Z: sclera, iris and pupil.
pub fn eye_parts() -> Vec<Part> {
    let cap = |name, material, r: f32, angle: f32| {
        grid(name, material, 5, 16, true, false, move |row, col, _| {
            let t = angle * row as f32 / 4.0;
            let phi = TAU * col as f32 / 16.0;
            [r * t.sin() * phi.cos(), r * t.sin() * phi.sin(), r * t.cos()]
        })
    };
    // A catch light: the key light's reflection on the cornea, up and to the avatar's right
    // of the pupil (towards the key light), so the eyes look wet and alive.
    let (hx, hy) = (-0.22 * EYE_RADIUS, 0.26 * EYE_RADIUS);
    let hz = (EYE_RADIUS * EYE_RADIUS - hx * hx - hy * hy).sqrt() * 1.014;
    vec![
        ellipsoid("sclera", SCLERA, [0.0; 3], [EYE_RADIUS; 3], 12, 18, |p| p),
        cap("limbus", PUPIL, EYE_RADIUS * 1.002, 0.56),
        cap("iris", IRIS, EYE_RADIUS * 1.004, 0.5),
        cap("pupil", PUPIL, EYE_RADIUS * 1.008, 0.22),
        ellipsoid("highlight", HIGHLIGHT, [hx, hy, hz], [0.0022, 0.0022, 0.0006], 5, 8, |p| p),
    ]
}

/// One horizontal ring of the torso at `t` (0 at the neck, 1 at the bottom): a superellipse
/// of half-width `w`, half-depth `d` and exponent `n` (2 round, higher squarer) at height `y`,
/// lower in front by `dip`, its front pushed out by `chest`, its centre at depth `z`.
struct TorsoRing {
    w: f32,
    d: f32,
    n: f32,
    y: f32,
    dip: f32,
    chest: f32,
    z: f32,
}

const TORSO_ROWS: usize = 16;

/// The torso's profile: from the base of the neck along the trapezius's slope to the
/// shoulders, round their caps, and straight down the arms and chest.
fn torso_ring(t: f32) -> TorsoRing {
    // (t, half-width, half-depth, height), interpolated smoothly between.
    const KEYS: [(f32, f32, f32, f32); 8] = [
        (0.0, 0.058, 0.052, 0.048),
        (0.1, 0.098, 0.062, 0.036),
        (0.22, 0.142, 0.074, 0.02),
        (0.34, 0.17, 0.086, 0.002),
        (0.46, 0.186, 0.095, -0.026),
        (0.58, 0.19, 0.1, -0.06),
        (0.76, 0.186, 0.102, -0.13),
        (1.0, 0.178, 0.1, -0.27),
    ];
    let i = KEYS.iter().rposition(|k| k.0 <= t).unwrap_or(0).min(KEYS.len() - 2);
    let u = ((t - KEYS[i].0) / (KEYS[i + 1].0 - KEYS[i].0)).clamp(0.0, 1.0);
    // A Catmull-Rom curve through the keys: smooth, with no flat step at a key.
    let key = |j: isize| KEYS[j.clamp(0, KEYS.len() as isize - 1) as usize];
    let i = i as isize;
    let spline = |f: fn(&(f32, f32, f32, f32)) -> f32| {
        let (p0, p1, p2, p3) = (f(&key(i - 1)), f(&key(i)), f(&key(i + 1)), f(&key(i + 2)));
        let (u2, u3) = (u * u, u * u * u);
        0.5 * (2.0 * p1 + (p2 - p0) * u + (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3) * u2 + (3.0 * p1 - p0 - 3.0 * p2 + p3) * u3)
    };
    let up = 1.0 - smoothstep(0.0, 0.4, t);
    TorsoRing {
        w: spline(|k| k.1),
        d: spline(|k| k.2),
        n: 2.0 + 0.9 * smoothstep(0.05, 0.45, t),
        y: spline(|k| k.3),
        dip: 0.014 * up,
        chest: 0.1 * smoothstep(0.3, 0.6, t),
        z: -0.02 + 0.004 * smoothstep(0.3, 0.7, t),
    }
}

/// Neck, shoulders and a collar, in the "Body" node's space (the head's centre is
/// [`HEAD_ABOVE_BODY`] above its origin).
pub fn body_parts(variant: Variant) -> Vec<Part> {
    // A shirt with a white collar; a white thobe under the ghutra; a dark abaya with the hijab.
    let (clothes, collar_colour) = match variant {
        Variant::Hair => (CLOTHES, COLLAR),
        Variant::Ghutra => (GHUTRA, GHUTRA),
        Variant::Hijab => (ABAYA, ABAYA),
    };
    // The neck: wider than a cylinder of old, leaning a little forward into the head, widening
    // where it meets the shoulders.
    let neck = grid("neck", SKIN, 8, 32, true, false, |r, c, _| {
        let v = r as f32 / 7.0;
        let y = 0.125 - 0.105 * v;
        let phi = TAU * c as f32 / 32.0;
        let wide = 1.0 + 0.12 * v * v;
        [0.049 * wide * phi.sin(), y, 0.046 * wide * phi.cos() - 0.012 - 0.01 * v]
    });
    let torso = grid("torso", clothes, TORSO_ROWS + 1, 36, true, false, |r, c, _| {
        let phi = TAU * c as f32 / 36.0;
        if r == TORSO_ROWS {
            // Closed underneath (never seen, but a shell has no holes).
            return [0.0, torso_ring(1.0).y, -0.02];
        }
        // Rows closer together over the shoulders, where the profile turns.
        let ring = torso_ring((r as f32 / (TORSO_ROWS - 1) as f32).powf(1.5));
        let (sx, cz) = (phi.sin(), phi.cos());
        let e = 2.0 / ring.n;
        let x = ring.w * sx.signum() * sx.abs().powf(e);
        let z = ring.d * cz.signum() * cz.abs().powf(e);
        // The neckline dips in front and rises behind; the chest stands out a little.
        let front = cz.max(0.0);
        let y = ring.y - ring.dip * cz;
        [x, y, z * (1.0 + ring.chest * front * front) + ring.z]
    });
    // A turned-down collar round the neck, lying out and down over the shirt, lower in front
    // (its two ends meet behind the neck, out of sight).
    let collar = grid("collar", collar_colour, 3, 33, false, false, |r, c, _| {
        let phi = -PI + 0.16 + (TAU - 0.32) * c as f32 / 32.0;
        let k = r as f32 / 2.0;
        let front = smoothstep(1.2, 0.0, phi.abs());
        // From the neck (k = 0) out and down over the shirt (k = 1), lower in front.
        let (rx, rz) = (0.056 + 0.02 * k, 0.053 + 0.02 * k);
        let y = 0.058 - 0.018 * k - 0.02 * front;
        [rx * phi.sin(), y, rz * phi.cos() - 0.02]
    });
    vec![neck, torso, collar]
}

/// Where the head's centre sits above the body's origin.
pub const HEAD_ABOVE_BODY: f32 = 0.158;

/// Writes the bundled avatar (uncovered hair) as a binary glTF 2.0 file.
pub fn glb() -> Vec<u8> {
    glb_of(Variant::Hair)
}

/// Writes one variant of the avatar as a binary glTF 2.0 file.
pub fn glb_of(variant: Variant) -> Vec<u8> {
    let mut w = GltfWriter::default();
    // One material; each part's colour rides on its vertices, so each mesh is one draw.
    w.materials.push(serde_json::json!({
        "name": "avatar",
        "pbrMetallicRoughness": {"baseColorFactor": [1.0, 1.0, 1.0, 1.0], "metallicFactor": 0.0, "roughnessFactor": 0.6},
    }));
    // Morph targets cost per vertex and per target in the vertex shader, so only what moves
    // carries them, grouped by what moves it: mouth and jaw, lids, brows.
    let mut face = face_parts();
    let (skin_still, skin_moving) = face.remove(0).split_moving();
    let (lids, rest): (Vec<Part>, Vec<Part>) = face.into_iter().partition(|p| p.name.starts_with("lid-"));
    let (brows, mouth): (Vec<Part>, Vec<Part>) = rest.into_iter().partition(|p| p.name.starts_with("brow-"));
    let mut mouth_group = vec![skin_moving];
    mouth_group.extend(mouth);
    let mut children = Vec::new();
    for (name, group) in [("Face", mouth_group), ("Lids", lids), ("Brows", brows)] {
        let part = Part::merged("group", group);
        let mesh = w.mesh(name, &[part], true);
        children.push(w.node(serde_json::json!({"name": name, "mesh": mesh})));
    }
    let mut still = head_parts(variant);
    still.push(skin_still);
    let head_static = w.mesh("HeadParts", &[Part::merged("head", still)], false);
    let eye = w.mesh("Eye", &[Part::merged("eye", eye_parts())], false);
    let body = w.mesh("Body", &[Part::merged("body", body_parts(variant))], false);
    let head_parts_node = w.node(serde_json::json!({"name": "HeadParts", "mesh": head_static}));
    let [left, right] = eye_centres();
    let eye_l = w.node(serde_json::json!({"name": "EyeLeft", "mesh": eye, "translation": left}));
    let eye_r = w.node(serde_json::json!({"name": "EyeRight", "mesh": eye, "translation": right}));
    children.extend([head_parts_node, eye_l, eye_r]);
    let head = w.node(serde_json::json!({"name": "Head", "translation": [0.0, HEAD_ABOVE_BODY, 0.0], "children": children}));
    let body_node = w.node(serde_json::json!({"name": "Body", "mesh": body}));
    let root = w.node(serde_json::json!({"name": "Avatar", "children": [body_node, head]}));
    w.finish(root)
}

#[derive(Default)]
struct GltfWriter {
    bin: Vec<u8>,
    views: Vec<serde_json::Value>,
    accessors: Vec<serde_json::Value>,
    meshes: Vec<serde_json::Value>,
    nodes: Vec<serde_json::Value>,
    materials: Vec<serde_json::Value>,
}

impl GltfWriter {
    fn view(&mut self, bytes: &[u8], target: u32) -> usize {
        while !self.bin.len().is_multiple_of(4) {
            self.bin.push(0);
        }
        self.views.push(serde_json::json!({"buffer": 0, "byteOffset": self.bin.len(), "byteLength": bytes.len(), "target": target}));
        self.bin.extend_from_slice(bytes);
        self.views.len() - 1
    }

    fn vec3(&mut self, data: &[[f32; 3]]) -> usize {
        let bytes: Vec<u8> = data.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
        let view = self.view(&bytes, 34962);
        let mut min = [f32::MAX; 3];
        let mut max = [f32::MIN; 3];
        for p in data {
            for k in 0..3 {
                min[k] = min[k].min(p[k]);
                max[k] = max[k].max(p[k]);
            }
        }
        self.accessors.push(serde_json::json!({"bufferView": view, "componentType": 5126, "count": data.len(), "type": "VEC3", "min": min, "max": max}));
        self.accessors.len() - 1
    }

    /// A VEC3 attribute that needs no bounds (colours).
    fn vec3_plain(&mut self, data: &[[f32; 3]]) -> usize {
        let bytes: Vec<u8> = data.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
        let view = self.view(&bytes, 34962);
        self.accessors.push(serde_json::json!({"bufferView": view, "componentType": 5126, "count": data.len(), "type": "VEC3"}));
        self.accessors.len() - 1
    }

    fn indices(&mut self, data: &[u32]) -> usize {
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = self.view(&bytes, 34963);
        self.accessors.push(serde_json::json!({"bufferView": view, "componentType": 5125, "count": data.len(), "type": "SCALAR"}));
        self.accessors.len() - 1
    }

    /// A mesh of `parts`; with `morph`, the targets that move any of them (all parts share
    /// one target list, as glTF requires).
    fn mesh(&mut self, name: &str, parts: &[Part], morph: bool) -> usize {
        let mut live: Vec<usize> = parts.iter().flat_map(Part::live_targets).collect();
        live.sort_unstable();
        live.dedup();
        let primitives: Vec<serde_json::Value> = parts
            .iter()
            .map(|p| {
                let position = self.vec3(&p.positions);
                let normal = self.vec3(&p.normals);
                let indices = self.indices(&p.indices);
                let mut prim = serde_json::json!({"attributes": {"POSITION": position, "NORMAL": normal}, "indices": indices, "material": p.material});
                if !p.colors.is_empty() {
                    prim["attributes"]["COLOR_0"] = serde_json::json!(self.vec3_plain(&p.colors));
                }
                if morph {
                    let targets: Vec<serde_json::Value> = live.iter().map(|&t| serde_json::json!({"POSITION": self.vec3(&p.targets[t])})).collect();
                    prim["targets"] = serde_json::Value::Array(targets);
                }
                prim
            })
            .collect();
        let mut mesh = serde_json::json!({"name": name, "primitives": primitives});
        if morph {
            mesh["weights"] = serde_json::json!(vec![0.0; live.len()]);
            mesh["extras"] = serde_json::json!({"targetNames": live.iter().map(|&t| TARGETS[t]).collect::<Vec<_>>()});
        }
        self.meshes.push(mesh);
        self.meshes.len() - 1
    }

    fn node(&mut self, node: serde_json::Value) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn finish(mut self, root: usize) -> Vec<u8> {
        while !self.bin.len().is_multiple_of(4) {
            self.bin.push(0);
        }
        let json = serde_json::json!({
            "asset": {"version": "2.0", "generator": "hiwar avatar generator (app/stage/src/avatar.rs)", "copyright": "hiwar contributors, MIT OR Apache-2.0"},
            "scene": 0,
            "scenes": [{"name": "Avatar", "nodes": [root]}],
            "nodes": self.nodes,
            "meshes": self.meshes,
            "materials": self.materials,
            "accessors": self.accessors,
            "bufferViews": self.views,
            "buffers": [{"byteLength": self.bin.len()}],
        });
        let mut json = serde_json::to_vec(&json).unwrap_or_default();
        while !json.len().is_multiple_of(4) {
            json.push(b' ');
        }
        let total = 12 + 8 + json.len() + 8 + self.bin.len();
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(b"glTF");
        out.extend_from_slice(&2u32.to_le_bytes());
        out.extend_from_slice(&(total as u32).to_le_bytes());
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(b"JSON");
        out.extend_from_slice(&json);
        out.extend_from_slice(&(self.bin.len() as u32).to_le_bytes());
        out.extend_from_slice(b"BIN\0");
        out.extend_from_slice(&self.bin);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_mouth_is_closed_and_jaw_opens_it() {
        let rest = mouth_line(0.0, &Shape::rest());
        assert!((rest.upper - rest.lower).abs() < 1e-6);
        let open = mouth_line(0.0, &Shape::only(0));
        assert!(open.upper - open.lower > 0.025, "{}", open.upper - open.lower);
        // Every morph target moves something, and no part moves more than 4 cm.
        let parts = face_parts();
        for (t, name) in TARGETS.iter().enumerate() {
            let moved = parts.iter().flat_map(|p| &p.targets[t]).map(|d| (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()).fold(0.0_f32, f32::max);
            assert!(moved > 0.001 && moved < 0.04, "{name} moves {moved}");
        }
    }

    #[test]
    fn the_config_names_each_variants_file() {
        for v in Variant::ALL {
            let stage = hiwar_core::config::Stage { variant: v.name().to_string(), ..Default::default() };
            assert_eq!(stage.avatar_path(std::path::Path::new("a")), std::path::Path::new("a/avatar").join(v.file_name()));
        }
    }

    #[test]
    fn the_bundled_avatars_are_this_generator_output() {
        for v in Variant::ALL {
            // The checkout under test (cargo names it at run time; see tests/src/lib.rs).
            let crate_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
            let path = format!("{crate_dir}/../../assets/avatar/{}", v.file_name());
            let bundled = std::fs::read(&path).unwrap_or_default();
            assert!(bundled == glb_of(v), "{path} is not what the generator writes: run `hiwar avatar` and commit the result");
        }
    }

    #[test]
    fn glb_is_deterministic_and_well_formed() {
        let a = glb();
        assert_eq!(a, glb());
        assert_eq!(&a[..4], b"glTF");
        assert_eq!(u32::from_le_bytes([a[8], a[9], a[10], a[11]]) as usize, a.len());
        let json_len = u32::from_le_bytes([a[12], a[13], a[14], a[15]]) as usize;
        let json: serde_json::Value = serde_json::from_slice(&a[20..20 + json_len]).unwrap_or_default();
        // Every target is on some mesh; the mouth's mesh has the jaw.
        let names: Vec<String> = json["meshes"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|m| m["extras"]["targetNames"].as_array().cloned().unwrap_or_default())
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect();
        for t in TARGETS {
            assert!(names.iter().any(|n| n == t), "{t} is on no mesh");
        }
        assert_eq!(json["meshes"][0]["extras"]["targetNames"][0], "jawOpen");
    }
}
