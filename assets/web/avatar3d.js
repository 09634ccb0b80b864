// The kiosk's avatar in the page: the same .glb the kiosk shows (served as /avatar.glb),
// rendered with three.js (vendored from the npm registry: vendor/three), its morph targets set
// from the blendshape stream's ARKit-52 frames and its head, eyes and chest moved by the
// frames' pose, as the kiosk window moves them (app/stage). hiwar.js picks the frame for the
// Web Audio clock's position; this draws it. Where WebGL is missing, hiwar.js keeps the SVG face.

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
  // The nodes the kiosk turns, by the names it looks for (three.js drops ':' from names).
  const node = (...names) => names.map((n) => gltf.scene.getObjectByName(n)).find(Boolean);
  const head = node("Head", "J_Bip_C_Head", "mixamorigHead", "head");
  const eyes = [node("EyeLeft", "LeftEye", "J_Adj_L_FaceEye", "eye_L", "mixamorigLeftEye"),
    node("EyeRight", "RightEye", "J_Adj_R_FaceEye", "eye_R", "mixamorigRightEye")].filter(Boolean);
  const body = node("Body");
  const rest = new Map([head, ...eyes, body].filter(Boolean).map((o) => [o, { q: o.quaternion.clone(), p: o.position.clone(), s: o.scale.clone() }]));
  // pitch positive up, yaw positive to the avatar's left (+x), roll: bevy's
  // Quat::from_euler(YXZ, yaw, -pitch, roll) after the rest rotation, as app/stage does.
  const euler = new THREE.Euler(0, 0, 0, "YXZ"), turn = new THREE.Quaternion();
  const turnBy = (o, pitch, yaw, roll) => {
    turn.setFromEuler(euler.set(-pitch, yaw, roll, "YXZ"));
    o.quaternion.copy(rest.get(o).q).multiply(turn);
  };
  const rig = `${head ? "head" : ""},eyes:${eyes.length},${body ? "body" : ""}`;

  // Drawn only when the face or the canvas changed: a still face costs nothing (a software
  // WebGL renderer would otherwise take a core from the microphone's capture); a breath at
  // rest redraws in twenty steps (the chest moves less than a pixel between them).
  let drawn = null, posed = null;
  const changed = (weights, pose) => drawn === null || Object.keys(weights).some((k) => Math.abs((weights[k] || 0) - (drawn[k] || 0)) > 0.004)
    || Object.keys(drawn).some((k) => !(k in weights) && drawn[k] > 0.004) || pose.some((x, i) => Math.abs(x - posed[i]) > (i === 5 ? 0.05 : 0.001));

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
    rig,
    // `weights`: name → 0–1 (ARKit names); targets the frame does not name rest at 0.
    // `pose`: [head pitch, yaw, roll, eyes' yaw, pitch (radians), breath 0–1].
    draw(weights, pose) {
      frame();
      if (!changed(weights, pose)) return;
      drawn = { ...weights };
      posed = [...pose];
      for (const mesh of faces) {
        for (const [name, i] of Object.entries(mesh.morphTargetDictionary)) mesh.morphTargetInfluences[i] = weights[name] || 0;
      }
      const [pitch, yaw, roll, lookYaw, lookPitch, breath] = pose;
      if (head) {
        turnBy(head, pitch, yaw, roll);
        head.position.copy(rest.get(head).p).y += 0.002 * breath;
      }
      for (const eye of eyes) turnBy(eye, lookPitch, lookYaw, 0);
      if (body) body.scale.copy(rest.get(body).s).multiply(new THREE.Vector3(1 + 0.004 * breath, 1 + 0.008 * breath, 1 + 0.006 * breath));
      renderer.render(scene, camera);
      document.body.dataset.head = head ? head.rotation.y.toFixed(4) : "";
      document.body.dataset.eyes = eyes.length ? eyes[0].rotation.x.toFixed(4) + " " + eyes[0].rotation.y.toFixed(4) : "";
    },
  };
}
