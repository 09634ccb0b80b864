// The kiosk's avatar in the page: the same .glb the kiosk shows (served as /avatar.glb),
// rendered with three.js (vendored from the npm registry: vendor/three), its morph targets set
// from the blendshape stream's ARKit-52 frames. hiwar.js picks the frame for the Web Audio
// clock's position; this draws it. Where WebGL is missing, hiwar.js keeps the SVG face.

import * as THREE from "three";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";

// Where the kiosk's camera stands (app/stage: the head's centre 0.158 m above the body's
// origin, head and shoulders in landscape, chest up in portrait).
const HEAD = 0.158;

export async function start(canvas) {
  const renderer = new THREE.WebGLRenderer({ canvas, antialias: true, alpha: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
  renderer.outputColorSpace = THREE.SRGBColorSpace;
  const scene = new THREE.Scene();
  const camera = new THREE.PerspectiveCamera(30, 1, 0.01, 100);
  // The kiosk's three-point lighting: a warm key, a cool fill, a rim from behind.
  scene.add(new THREE.HemisphereLight(0xeef2ff, 0x6f625a, 1.1));
  const light = (colour, intensity, x, y, z) => {
    const l = new THREE.DirectionalLight(colour, intensity);
    l.position.set(x, y, z);
    scene.add(l);
  };
  light(0xfff4e6, 2.4, 0.5, 1.0, 1.2);
  light(0xd9e6ff, 0.7, -1.0, 0.2, 0.8);
  light(0xffffff, 1.6, -0.3, 0.8, -1.0);

  const gltf = await new GLTFLoader().loadAsync("avatar.glb");
  scene.add(gltf.scene);
  const faces = [];
  gltf.scene.traverse((o) => { if (o.isMesh && o.morphTargetDictionary && o.morphTargetInfluences) faces.push(o); });
  if (faces.length === 0) throw new Error("the avatar has no morph targets");

  // Drawn only when the face or the canvas changed: a still face costs nothing (a software
  // WebGL renderer would otherwise take a core from the microphone's capture).
  let drawn = null;
  const changed = (weights) => drawn === null || Object.keys(weights).some((k) => Math.abs((weights[k] || 0) - (drawn[k] || 0)) > 0.004)
    || Object.keys(drawn).some((k) => !(k in weights) && drawn[k] > 0.004);

  function frame() {
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * renderer.getPixelRatio()) || canvas.height !== Math.round(h * renderer.getPixelRatio())) {
      drawn = null;
      renderer.setSize(w, h, false);
      const aspect = w / Math.max(h, 1);
      camera.aspect = aspect;
      if (aspect >= 1) { camera.fov = 30; camera.position.set(0, HEAD, 0.6); camera.lookAt(0, HEAD - 0.03, 0); }
      else { camera.fov = 38; camera.position.set(0, HEAD - 0.02, 0.78); camera.lookAt(0, HEAD - 0.07, 0); }
      camera.updateProjectionMatrix();
    }
  }

  return {
    // `weights`: name → 0–1 (ARKit names); targets the frame does not name rest at 0.
    draw(weights) {
      frame();
      if (!changed(weights)) return;
      drawn = { ...weights };
      for (const mesh of faces) {
        for (const [name, i] of Object.entries(mesh.morphTargetDictionary)) mesh.morphTargetInfluences[i] = weights[name] || 0;
      }
      renderer.render(scene, camera);
    },
  };
}
