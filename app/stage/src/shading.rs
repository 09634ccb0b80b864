//! The bundled avatar's own material: the scene's lights through a short shader
//! (`avatar.wgsl`, the same Burley + GGX terms as bevy's PBR for this untextured dielectric)
//! in place of bevy's whole PBR fragment, which, paid per pixel and per light, was the avatar's
//! main cost: on lavapipe the stage fell from 3.0× the one-sphere scene to 0.8× (three-point
//! lighting 4.3× → 0.9×), on an H200 in portrait from 1.31× to 1.19–1.25×. Same colours (the
//! mean of skin and shirt patches equal to the unit, PSNR 35–54 dB against the PBR frame).

use bevy::gltf::GltfMaterialName;
use bevy::pbr::{Material, MaterialPlugin};
use bevy::prelude::*;
use bevy::render::render_resource::AsBindGroup;
use bevy::shader::ShaderRef;

/// The name `hiwar avatar` gives its one material (see `avatar::glb_of`).
pub const BUNDLED_MATERIAL: &str = "avatar";

/// Vertex-coloured, lit by the view's directional and ambient lights.
#[derive(Asset, TypePath, AsBindGroup, Clone, Default)]
pub struct AvatarMaterial {}

impl Material for AvatarMaterial {
    fn fragment_shader() -> ShaderRef {
        "embedded://hiwar_stage/avatar.wgsl".into()
    }
}

pub fn add_shading(app: &mut App) {
    bevy::asset::embedded_asset!(app, "avatar.wgsl");
    app.add_plugins(MaterialPlugin::<AvatarMaterial>::default()).add_systems(Update, shade_bundled_avatar);
}

/// Meshes whose glTF material has just been given them.
type NewlyMaterialised<'w, 's> =
    Query<'w, 's, (Entity, &'static MeshMaterial3d<StandardMaterial>, &'static GltfMaterialName), Added<MeshMaterial3d<StandardMaterial>>>;

/// The bundled avatar's meshes take [`AvatarMaterial`] as they appear; an operator's own
/// avatar (a VRM, textured glTF) keeps the materials it was made with.
fn shade_bundled_avatar(
    mut commands: Commands,
    added: NewlyMaterialised,
    standard: Res<Assets<StandardMaterial>>,
    mut ours: ResMut<Assets<AvatarMaterial>>,
    mut shared: Local<Option<Handle<AvatarMaterial>>>,
) {
    for (entity, material, name) in &added {
        let untextured = standard.get(&material.0).is_some_and(|m| m.base_color_texture.is_none());
        if name.0 != BUNDLED_MATERIAL || !untextured {
            continue;
        }
        let handle = shared.get_or_insert_with(|| ours.add(AvatarMaterial::default())).clone();
        commands.entity(entity).remove::<MeshMaterial3d<StandardMaterial>>().insert(MeshMaterial3d(handle));
    }
}
