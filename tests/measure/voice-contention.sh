#!/usr/bin/env bash
# The voice's wall time when other work shares the cores: one `hiwar say --out` of a long
# answer alone, two at once, and beside a whisper transcription of three clips.
# Usage: tests/measure/voice-contention.sh [REPEATS]
set -euo pipefail
cd "$(dirname "$0")/../.."
reps=${1:-2}
hiwar=${HIWAR_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/hiwar-target}/debug/hiwar}
text="Welcome to the government service centre. Our office opens at half past seven in the morning and closes at half past three in the afternoon, from Monday to Thursday. On Friday we close at noon. To renew your passport, bring your current passport, two photographs and your Emirates ID; the fee is two hundred and sixty dirhams."
out=$(mktemp -d)
s() { /usr/bin/time -f "%e" "$hiwar" say "$text" --out "$out/$1.wav" 2>&1 | tail -1; }
for r in $(seq "$reps"); do
  echo "voice alone: $(s a) s"
  a=$(mktemp); b=$(mktemp)
  s a >"$a" & s b >"$b"; wait; echo "voice, two at once: $(cat "$a") s, $(cat "$b") s"
  s a >"$a" & /usr/bin/time -f "%e" "$hiwar" transcribe assets/clips/en-passport.wav assets/clips/ar-passport.wav assets/clips/en-office.wav 2>"$b" >/dev/null; wait
  echo "voice beside whisper: $(cat "$a") s (whisper $(tail -1 "$b") s)"
  rm -f "$a" "$b"
done
rm -rf "$out"
