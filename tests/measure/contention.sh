#!/usr/bin/env bash
# Whisper's wall time when other work shares the cores: the same three clips transcribed by
# one `hiwar transcribe`, by two and three at once, and beside a `nice -n 19` busy loop on one
# core. Each line: the setting, the case, each process's wall time. Extra environment for the
# setting under test comes from the caller (e.g. GOMP_SPINCOUNT=300000, HIWAR_HEARING_THREADS=1).
# Usage: tests/measure/contention.sh LABEL [REPEATS]
set -euo pipefail
cd "$(dirname "$0")/../.."
label=${1:-current}; reps=${2:-2}
hiwar=${HIWAR_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/hiwar-target}/debug/hiwar}
clips=(assets/clips/en-passport.wav assets/clips/ar-passport.wav assets/clips/en-office.wav)
t() { /usr/bin/time -f "%e" "$hiwar" transcribe "${clips[@]}" 2>&1 >/dev/null | tail -1; }
for r in $(seq "$reps"); do
  echo "$label alone: $(t) s"
  a=$(mktemp); b=$(mktemp); c=$(mktemp)
  t >"$a" & t >"$b"; wait; echo "$label two at once: $(cat "$a") s, $(cat "$b") s"
  t >"$a" & t >"$b" & t >"$c"; wait; echo "$label three at once: $(cat "$a") s, $(cat "$b") s, $(cat "$c") s"
  nice -n 19 sh -c 'while :; do :; done' & busy=$!
  echo "$label beside a busy core: $(t) s"; kill $busy; wait $busy 2>/dev/null || true
  rm -f "$a" "$b" "$c"
done
