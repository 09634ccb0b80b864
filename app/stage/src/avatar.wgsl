// The bundled avatar's shading: the scene's own directional lights (the key; on a GPU also the
// fill and the rim) and its ambient light, through the same terms bevy's PBR uses for an
// untextured dielectric of perceptual roughness 0.6 (Burley diffuse, GGX with Smith's
// correlated visibility and Schlick's Fresnel; the ambient through the same split-sum
// approximation), and nothing else: bevy's full fragment (the material's texture slots,
// clustered point-light lookup, fog, every feature's branches), paid per pixel, was the
// avatar's main cost. Colours ride on the vertices (linear, as glTF's COLOR_0).
#import bevy_pbr::{
    forward_io::VertexOutput,
    mesh_view_bindings::{view, lights},
}

const PI: f32 = 3.14159265;
// Reflectance 0.5 (bevy's default): F0 = 0.16 * 0.5^2.
const F0: f32 = 0.04;
const PERCEPTUAL_ROUGHNESS: f32 = 0.6;
const ROUGHNESS: f32 = 0.36;

fn schlick(f0: f32, f90: f32, x: f32) -> f32 {
    return f0 + (f90 - f0) * pow(1.0 - x, 5.0);
}

@fragment
fn fragment(in: VertexOutput, @builtin(front_facing) front: bool) -> @location(0) vec4<f32> {
#ifdef VERTEX_COLORS
    let albedo = in.color.rgb;
#else
    let albedo = vec3(0.8);
#endif
    var n = normalize(in.world_normal);
    if !front {
        n = -n;
    }
    let v = normalize(view.world_position.xyz - in.world_position.xyz);
    let n_dot_v = max(dot(n, v), 1e-4);
    // The split-sum terms (bevy's F_AB polynomial) for the ambient light.
    let c0 = vec4(-1.0, -0.0275, -0.572, 0.022);
    let c1 = vec4(1.0, 0.0425, 1.04, -0.04);
    let r_diffuse = c0 + c1;
    let a_diffuse = min(r_diffuse.x * r_diffuse.x, exp2(-9.28 * n_dot_v)) * r_diffuse.x + r_diffuse.y;
    let ab_diffuse = max(vec2(-1.04, 1.04) * a_diffuse + r_diffuse.zw, vec2(0.00005));
    let r = PERCEPTUAL_ROUGHNESS * c0 + c1;
    let a = min(r.x * r.x, exp2(-9.28 * n_dot_v)) * r.x + r.y;
    let ab = max(vec2(-1.04, 1.04) * a + r.zw, vec2(0.00005));
    var light = lights.ambient_color.rgb * (albedo * ab_diffuse.x + ab_diffuse.y + (F0 * ab.x + ab.y));
    let a2 = ROUGHNESS * ROUGHNESS;
    let energy = 1.0 + F0 * (1.0 / (ab.x + ab.y) - 1.0);
    for (var i = 0u; i < lights.n_directional_lights; i = i + 1u) {
        let l = lights.directional_lights[i].direction_to_light.xyz;
        let n_dot_l = saturate(dot(n, l));
        if n_dot_l <= 0.0 {
            continue;
        }
        let h = normalize(l + v);
        let n_dot_h = saturate(dot(n, h));
        let l_dot_h = saturate(dot(l, h));
        let f90 = 0.5 + 2.0 * ROUGHNESS * l_dot_h * l_dot_h;
        let diffuse = albedo * schlick(1.0, f90, n_dot_l) * schlick(1.0, f90, n_dot_v) / PI;
        let k = ROUGHNESS / (1.0 - n_dot_h * n_dot_h + n_dot_h * n_dot_h * a2);
        let d = k * k / PI;
        let vis = 0.5 / (n_dot_l * sqrt((n_dot_v - a2 * n_dot_v) * n_dot_v + a2) + n_dot_v * sqrt((n_dot_l - a2 * n_dot_l) * n_dot_l + a2));
        let specular = d * vis * schlick(F0, 1.0, l_dot_h) * energy;
        light += (diffuse + specular) * n_dot_l * lights.directional_lights[i].color.rgb;
    }
    return vec4(light * view.exposure, 1.0);
}
