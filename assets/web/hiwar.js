// hiwar's reference page: protocol v1 over one WebSocket (docs/protocol.md). Plain JS, no
// build step, nothing from a CDN. The audio is scheduled on the Web Audio clock; the mouth and
// the caption highlight read that same clock: turn sample position = (now − turn start) × rate.

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws${params.get("token") ? `?token=${encodeURIComponent(params.get("token"))}` : ""}`;

let ctx = null;          // AudioContext, created on the first user gesture
let turn = null;         // { id, rate, startAt (ctx time of sample 0), visemes: [], words: [], sources: [] }
let pendingAudio = null; // the `audio` header waiting for its binary frame
const OPEN = { sil: 0, PP: 0, FF: 0.15, TH: 0.2, DD: 0.3, kk: 0.35, CH: 0.3, SS: 0.2, nn: 0.25, RR: 0.35, aa: 1, E: 0.7, I: 0.45, O: 0.8, U: 0.5 };
const WIDE = { E: 1.1, I: 1.15, O: 0.75, U: 0.65, PP: 0.95, FF: 1.0 };

let shapeNames = [];      // the blendshape stream's 52 names, from `ready`
let avatar3d = null;     // the 3D avatar (avatar3d.js) once it has loaded; the SVG face until then or without WebGL

// The kiosk's avatar in 3D where the browser has WebGL; the SVG face stays where it has not.
(async () => {
  const canvas = $("face3d");
  if (!canvas.getContext("webgl2") && !canvas.getContext("webgl")) { document.body.dataset.avatar = "svg"; return; }
  try {
    avatar3d = await (await import("./avatar3d.js")).start(canvas);
    canvas.hidden = false; $("face").style.display = "none";
    document.body.dataset.avatar = "3d";
    document.body.dataset.rig = avatar3d.rig;
  } catch (e) {
    document.body.dataset.avatar = "svg";
    console.warn("3D avatar unavailable, SVG face instead:", e);
  }
})();

const isRtl = (t) => { for (const c of t) { if (/[\u0600-\u06FF]/.test(c)) return true; if (/[A-Za-z]/.test(c)) return false; } return false; };
function setCaption(el, text) { el.dir = isRtl(text) ? "rtl" : "ltr"; el.textContent = text; }

// 1013 (the server is full, or its voice is at capacity) is "try again later": say so in both
// languages and reconnect, waiting twice as long each time (2 s, then 4, 8, … 30 s at most).
let ws = null;
let retryMs = 2000;
function connect() {
  ws = new WebSocket(wsUrl);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => ws.send(JSON.stringify({ type: "hello", v: 1, lang: "auto", want: { audio: true, visemes: true, words: true, blendshapes: true, fps: 30 } }));
  ws.onclose = (e) => {
    serverState = null;
    if (e.code === 1013) {
      $("state").textContent = "مشغول · busy";
      $("error").textContent = `الخدمة مشغولة الآن، نعيد المحاولة بعد قليل · Busy right now; trying again in ${Math.round(retryMs / 1000)} s`;
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 30000);
      return;
    }
    $("state").textContent = `closed ${e.code}`;
    if (e.reason) $("error").textContent = e.reason;
  };
  ws.onmessage = onMessage;
}
connect();

function onMessage(e) {
  if (typeof e.data !== "string") return playChunk(e.data);
  const m = JSON.parse(e.data);
  switch (m.type) {
    case "ready": serverState = "idle"; showState(); $("error").textContent = ""; retryMs = 2000; shapeNames = m.blendshapes?.names || []; break;
    case "state": serverState = m.state; showState(); break;
    case "transcript": setCaption($("person"), m.text); startTurn(m.turn); break;
    case "audio": pendingAudio = m; break;
    case "visemes": if (turn && turn.id === m.turn) turn.visemes.push(...m.frames); break;
    case "blendshapes": if (turn && turn.id === m.turn) { turn.fps = m.fps; m.frames.forEach((f, i) => { turn.shapes[m.first + i] = f; turn.pose[m.first + i] = m.pose?.[i]; }); } break;
    case "words": if (turn && turn.id === m.turn) { turn.words.push(...m.words); renderWords(); } break;
    case "end_of_turn": if (turn && turn.id === m.turn) turn.ended = m.samples; break;
    case "error": $("error").textContent = `${m.message_ar} · ${m.message}`; break;
  }
}

// What the page shows of the conversation's state. The server is done with an answer once it
// has sent it, which is well before the person has heard it (the voice runs faster than real
// time): while the page still plays the answer, it is speaking, not ready.
const STATE_TEXT = { idle: "جاهز · ready", listening: "أستمع · listening", thinking: "أفكّر · thinking", speaking: "أتحدّث · speaking" };
let serverState = null; // null while not connected (the element then says why)
function playing() {
  const pos = position();
  return !!turn && !turn.stopped && pos >= 0 && (turn.ended === null || pos < turn.ended);
}
window.hiwarPlaying = playing; // for tests and the curious
function showState() {
  if (serverState === null) return;
  const s = serverState === "idle" && playing() ? "speaking" : serverState;
  const text = STATE_TEXT[s] || s;
  if ($("state").textContent !== text) $("state").textContent = text;
}

function startTurn(id) {
  stopAudio();
  turn = { id, rate: 22050, startAt: null, visemes: [], words: [], sources: [], ended: null, fps: 30, shapes: [], pose: [] };
  $("avatar").textContent = "";
}

function playChunk(buffer) {
  const h = pendingAudio; pendingAudio = null;
  if (!h || !turn || h.turn !== turn.id || !ctx) return;
  const pcm = new Int16Array(buffer);
  const audio = ctx.createBuffer(1, pcm.length, h.rate);
  const ch = audio.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) ch[i] = pcm[i] / 32768;
  turn.rate = h.rate;
  // Sample 0 of the turn plays a little after the first chunk arrives; every chunk at its
  // own position after it, so the audio clock and the turn's sample positions agree.
  if (turn.startAt === null) turn.startAt = ctx.currentTime + 0.05;
  const at = Math.max(turn.startAt + h.start / h.rate, ctx.currentTime);
  const src = ctx.createBufferSource();
  src.buffer = audio; src.connect(ctx.destination); src.start(at);
  turn.sources.push(src);
}

function stopAudio() {
  if (!turn) return;
  turn.stopped = true;
  for (const s of turn.sources) { try { s.stop(); } catch (_) {} }
}

function position() { return turn && turn.startAt !== null && ctx ? (ctx.currentTime - turn.startAt) * turn.rate : -1; }

function renderWords() {
  const el = $("avatar"); el.textContent = "";
  const pos = position();
  // Light the words as the answer wrote them ("250", not «مئتان وخمسون»): an entry and the
  // `joined` ones after it are one written word. Tashkeel stays in the voice, not the caption.
  const shown = [];
  for (const w of turn.words) {
    const last = shown[shown.length - 1];
    if (w.joined && last) last.end = w.end;
    else shown.push({ text: (w.written || w.text).replace(/[\u064B-\u0652\u0670]/g, ""), start: w.start, end: w.end });
  }
  const text = shown.map((w) => w.text).join(" ");
  el.dir = isRtl(text) ? "rtl" : "ltr";
  shown.forEach((w, i) => {
    const span = document.createElement("span");
    span.textContent = (i ? " " : "") + w.text;
    span.className = pos >= w.end ? "said" : pos >= w.start ? "now" : "later";
    el.appendChild(span);
  });
}

// Each frame: the mouth from the viseme at the audio clock (eased), the caption highlight.
let open = 0, wide = 1, lastWord = -1;
function frame(t) {
  const pos = position();
  let target = 0, targetWide = 1;
  if (turn && pos >= 0) {
    const v = turn.visemes.find((f) => f.start <= pos && pos < f.end);
    if (v) { target = (OPEN[v.viseme] ?? 0.3) * v.weight; targetWide = WIDE[v.viseme] ?? 1; }
    const w = turn.words.findIndex((x) => x.start <= pos && pos < x.end);
    if (w !== lastWord) { lastWord = w; renderWords(); }
  }
  open += (target - open) * 0.45; wide += (targetWide - wide) * 0.45;
  $("mouth-open").setAttribute("ry", (1 + open * 14).toFixed(2));
  $("mouth-open").setAttribute("rx", (22 * wide).toFixed(2));
  $("lips").setAttribute("d", `M${-24 * wide} 0 Q0 ${-6 - open * 10} ${24 * wide} 0 Q0 ${6 + open * 12} ${-24 * wide} 0Z`);
  document.body.dataset.mouth = open.toFixed(3);
  showState();
  // A blink every few seconds.
  const b = (t % 4200) < 130 ? 22 : 0;
  $("lids").setAttribute("height", b);
  if (avatar3d) drawAvatar(pos, b > 0);
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);

// The 3D face: the blendshape frame and pose for the audio clock's position (frame k is at
// sample k × rate / fps of the turn), eased towards rest between answers; blinks and breaths
// of its own then (the kiosk's rhythm: about fourteen breaths a minute).
let weights = {}, pose = [0, 0, 0, 0, 0, 0];
function drawAvatar(pos, blink) {
  const k = turn && pos >= 0 ? Math.floor((pos * turn.fps) / turn.rate) : -1;
  const f = k >= 0 ? turn.shapes[k] : undefined;
  const next = {};
  shapeNames.forEach((n, i) => { const rest = (weights[n] || 0) * 0.8; next[n] = f ? f[i] : rest < 0.01 ? 0 : rest; });
  if (!f) { next.eyeBlinkLeft = blink ? 1 : 0; next.eyeBlinkRight = blink ? 1 : 0; }
  weights = next;
  const p = f ? turn.pose[k] : undefined;
  const breath = 0.5 - 0.5 * Math.cos((2 * Math.PI * performance.now()) / 4300);
  pose = p || pose.map((x, i) => (i === 5 ? breath : Math.abs(x * 0.8) < 1e-4 ? 0 : x * 0.8));
  document.body.dataset.jaw = (weights.jawOpen || 0).toFixed(3);
  avatar3d.draw(weights, pose);
}

$("ask").onsubmit = (e) => {
  e.preventDefault();
  ctx = ctx || new AudioContext();
  ctx.resume();
  const text = $("question").value.trim();
  if (text && ws.readyState === WebSocket.OPEN) { $("error").textContent = ""; ws.send(JSON.stringify({ type: "text", v: 1, text })); }
  $("question").value = "";
};
$("interrupt").onclick = () => { stopAudio(); if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "interrupt", v: 1 })); };

// The microphone: an AudioWorklet hands 128-frame blocks to the page, which low-pass filters
// and resamples them to 16 kHz PCM16 and streams them (audio_start … binary frames …
// audio_end). The browser's own echo cancellation keeps the answer out of the microphone, so
// speaking over it interrupts.
const WORKLET = `class Tap extends AudioWorkletProcessor { process(inputs) { const c = inputs[0][0]; if (c) this.port.postMessage(c.slice(0)); return true; } }
registerProcessor("hiwar-tap", Tap);`;

// Any rate to 16 kHz through a windowed-sinc low-pass (cut-off 7.2 kHz, Blackman window,
// 2·HALF taps at the input rate). Taking every third sample of 48 kHz, as the page once did,
// folds 8–24 kHz (the hiss of s and sh, fans, the room) down into the band whisper hears.
export function downsampler(rateIn, rateOut = 16000) {
  const HALF = 48, STEPS = 256;
  const ratio = rateIn / rateOut, fc = (0.45 * rateOut) / rateIn;
  // h(d) for d in [-HALF, HALF] input samples, tabulated every 1/STEPS of a sample.
  const table = new Float32Array(2 * HALF * STEPS + 2);
  for (let j = 0; j < table.length; j++) {
    const d = j / STEPS - HALF;
    const sinc = d === 0 ? 1 : Math.sin(2 * Math.PI * fc * d) / (Math.PI * d * 2 * fc);
    const w = 0.42 + 0.5 * Math.cos((Math.PI * d) / HALF) + 0.08 * Math.cos((2 * Math.PI * d) / HALF);
    table[j] = Math.abs(d) >= HALF ? 0 : 2 * fc * sinc * w;
  }
  // buf starts with HALF samples of silence, so the first output is centred on the first input.
  let buf = new Float32Array(HALF), t = HALF; // t: the next output's position in buf
  return {
    latency: HALF / rateIn,
    push(x) {
      const joined = new Float32Array(buf.length + x.length);
      joined.set(buf); joined.set(x, buf.length);
      buf = joined;
      const out = [];
      for (let base = Math.floor(t); base + HALF < buf.length; t += ratio, base = Math.floor(t)) {
        let acc = 0;
        for (let i = base - HALF + 1; i <= base + HALF; i++) {
          const u = (t - i + HALF) * STEPS, k = Math.floor(u), a = u - k;
          acc += buf[i] * (table[k] + a * (table[k + 1] - table[k]));
        }
        out.push(acc);
      }
      const drop = Math.max(0, Math.floor(t) - HALF);
      buf = buf.slice(drop); t -= drop;
      return out;
    },
  };
}
window.hiwarDownsampler = downsampler;
let mic = null, tapModule = null;
async function startMic() {
  const clicked = performance.now();
  ctx = ctx || new AudioContext();
  await ctx.resume();
  // Everything that can be ready before the microphone opens is made ready first: the device
  // starts capturing when getUserMedia resolves, and whatever it captures before the tap is
  // connected is lost (the first words of a person who speaks as soon as they press).
  tapModule = tapModule || ctx.audioWorklet.addModule(URL.createObjectURL(new Blob([WORKLET], { type: "text/javascript" })));
  await tapModule;
  const tap = new AudioWorkletNode(ctx, "hiwar-tap");
  const down = downsampler(ctx.sampleRate);
  let pending = [], first = true;
  tap.port.onmessage = (e) => {
    if (first) { first = false; window.hiwarMic = { ...(window.hiwarMic || {}), firstBlockMs: Math.round(performance.now() - clicked) }; }
    for (const v of down.push(e.data)) pending.push(v);
    if (pending.length >= 1600 && ws.readyState === WebSocket.OPEN) {
      const pcm = new Int16Array(pending.length);
      pending.forEach((s, i) => { pcm[i] = Math.max(-1, Math.min(1, s)) * 32767; });
      ws.send(pcm.buffer);
      // For tests and the curious: what the microphone has sent.
      const m = window.hiwarMic || {};
      window.hiwarMic = { ...m, frames: (m.frames || 0) + 1, peak: Math.max(m.peak || 0, ...pending.map(Math.abs)) };
      pending = [];
    }
  };
  const stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true, channelCount: 1 } });
  ws.send(JSON.stringify({ type: "audio_start", v: 1, rate: 16000 }));
  const source = ctx.createMediaStreamSource(stream);
  source.connect(tap);
  window.hiwarMic = { ...(window.hiwarMic || {}), openMs: Math.round(performance.now() - clicked) };
  mic = { stream, source, tap };
  $("mic").classList.add("on");
  $("mic-label").textContent = "أوقف الميكروفون · Mic off";
}
function stopMic() {
  if (!mic) return;
  mic.source.disconnect(); mic.tap.disconnect(); mic.stream.getTracks().forEach((t) => t.stop());
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "audio_end", v: 1 }));
  mic = null;
  $("mic").classList.remove("on");
  $("mic-label").textContent = "تحدّث · Speak";
}
$("mic").onclick = () => (mic ? stopMic() : startMic().catch((e) => { $("error").textContent = `الميكروفون غير متاح · microphone unavailable: ${e.message}`; }));
