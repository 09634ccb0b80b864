#!/usr/bin/env bash
# Screenshots of the stage window in each state, portrait and landscape, as a kiosk shows it:
# `hiwar stage` (the real window, under Xvfb with Mesa's software Vulkan here) driven by cues on
# standard input, each state captured by the window's own screenshot cue. A private PulseAudio
# server with a null sink is its speaker (real-time paced), so the mouth follows the played
# audio as on a kiosk.
#   docs/screenshots/make.sh [HIWAR_BINARY]
set -euo pipefail
cd "$(dirname "$0")"
hiwar=${1:-hiwar}
run=$(mktemp -d)
trap 'kill "$pulse" 2>/dev/null || true; rm -rf "$run"' EXIT
export XDG_RUNTIME_DIR=$run
HOME=$run pulseaudio -n --daemonize=no --exit-idle-time=-1 --disallow-exit --log-level=error \
  -L module-native-protocol-unix -L "module-null-sink sink_name=speaker" >/dev/null 2>&1 &
pulse=$!
for _ in $(seq 50); do pactl info >/dev/null 2>&1 && break; sleep 0.2; done
pactl set-default-sink speaker
{ cat /usr/share/alsa/alsa.conf; printf 'pcm.!default { type pulse }\nctl.!default { type pulse }\n'; } >"$run/asound.conf"
export ALSA_CONFIG_PATH=$run/asound.conf
shot() { # orientation width height
  local o=$1 w=$2 h=$3 d
  d=$(pwd)
  {
    sleep 4
    echo '{"state": "idle"}'; sleep 1.7; echo "{\"screenshot\": \"$d/$o-idle.png\"}"; sleep 1
    echo '{"state": "listening", "heard": "أبغى أجدد بطاقة الهوية"}'; sleep 1.5; echo "{\"screenshot\": \"$d/$o-listening.png\"}"; sleep 1
    echo '{"state": "thinking", "heard": "أبغى أجدد بطاقة الهوية", "final": true}'; sleep 1.5; echo "{\"screenshot\": \"$d/$o-thinking.png\"}"; sleep 1
    echo '{"say": "أهلاً وسهلاً! يمكنك تجديد بطاقة الهوية من خلال التطبيق أو في أي مركز خدمة، والرسوم مئة درهم."}'; sleep 5
    echo "{\"screenshot\": \"$d/$o-speaking-ar.png\"}"; sleep 6
    echo '{"state": "listening", "heard": "How much does renewal cost?", "final": true}'
    echo '{"say": "Hello! Renewing your Emirates ID costs one hundred dirhams, online or at any service centre."}'; sleep 5
    echo "{\"screenshot\": \"$d/$o-speaking-en.png\"}"; sleep 6
    echo '{"session_ended": true}'; echo '{"attract": true}'; sleep 1.5; echo "{\"screenshot\": \"$d/$o-attract.png\"}"; sleep 1
    echo '{"attract": false, "out_of_service": true}'; sleep 1.5; echo "{\"screenshot\": \"$d/$o-out-of-service.png\"}"; sleep 1.5
    echo '{"quit": true}'
  } | HIWAR_STAGE_WIDTH=$w HIWAR_STAGE_HEIGHT=$h HIWAR_STAGE_MSAA=false WGPU_BACKEND=${WGPU_BACKEND:-vulkan} \
      xvfb-run -a -s "-screen 0 1920x1920x24" "$hiwar" stage | grep -c '"screenshot"'
}
# The bundled variants (stage.variant), portrait, greeting.
variant() { # name
  local d
  d=$(pwd)
  {
    sleep 4
    echo '{"state": "listening", "heard": "السلام عليكم"}'; sleep 0.5
    echo '{"say": "وعليكم السلام، أهلاً وسهلاً! كيف أقدر أساعدك؟"}'; sleep 2.8
    echo "{\"screenshot\": \"$d/variant-$1.png\"}"; sleep 1.5
    echo '{"quit": true}'
  } | HIWAR_STAGE_VARIANT=$1 HIWAR_STAGE_WIDTH=432 HIWAR_STAGE_HEIGHT=768 HIWAR_STAGE_MSAA=false WGPU_BACKEND=${WGPU_BACKEND:-vulkan} \
      xvfb-run -a -s "-screen 0 1920x1920x24" "$hiwar" stage | grep -c '"screenshot"'
}
shot portrait 432 768
shot landscape 768 432
for v in hair ghutra hijab; do variant "$v"; done
