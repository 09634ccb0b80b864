#!/bin/sh
# make-clips.sh: regenerates the clips that clips.toml lists after mixed-emirates-id.wav (the
# entries that have a `kb` field). The eight clips before them are not made here. Needs only
# espeak-ng (1.51, Debian 12) and sox; writes into the directory this script lives in, and
# overwrites only the files named below. Run: sh assets/clips/make-clips.sh
#
# Arabic inputs are fully diacritised MSA (the mixed clips' Arabic parts: Gulf dialect, words
# ending in sukun). Where a letter has shadda and a vowel, the shadda is written first: that is
# the order espeak-ng 1.51 reads (vowel-then-shadda, the order most keyboards give, makes it
# drop the vowel). sox -R seeds its dither, so reruns give the same bytes.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

# part OUT VOICE RATE TEXT: one espeak-ng utterance, as 16 kHz mono 16-bit WAV.
part() {
  espeak-ng -v "$2" -s "$3" -w "$tmp/raw.wav" "$4"
  sox -R "$tmp/raw.wav" -r 16000 -c 1 -b 16 "$1"
}

# cut_tail IN OUT: IN with its trailing silence cut to 0.2 s (espeak-ng leaves about 0.5 s).
cut_tail() {
  sox -R "$1" -b 16 "$2" reverse silence 1 0.01 0.1% reverse pad 0 0.2
}

# clip NAME VOICE RATE TEXT: a one-language clip.
clip() {
  part "$tmp/clip.wav" "$2" "$3" "$4"
  cut_tail "$tmp/clip.wav" "$here/$1.wav"
}

# mixed NAME VOICE RATE TEXT VOICE RATE TEXT [VOICE RATE TEXT]: a code-switched clip, each part
# synthesised on its own, 0.1 s of silence between parts, joined with sox (as
# mixed-emirates-id.wav was; each part keeps espeak-ng's own trailing silence), then the tail cut.
mixed() {
  name=$1
  part "$tmp/p1.wav" "$2" "$3" "$4"
  part "$tmp/p2.wav" "$5" "$6" "$7"
  sox -R -n -r 16000 -c 1 -b 16 "$tmp/gap.wav" trim 0 0.1
  if [ $# -ge 10 ]; then
    part "$tmp/p3.wav" "$8" "$9" "${10}"
    sox -R "$tmp/p1.wav" "$tmp/gap.wav" "$tmp/p2.wav" "$tmp/gap.wav" "$tmp/p3.wav" -b 16 "$tmp/joined.wav"
  else
    sox -R "$tmp/p1.wav" "$tmp/gap.wav" "$tmp/p2.wav" -b 16 "$tmp/joined.wav"
  fi
  cut_tail "$tmp/joined.wav" "$here/$name.wav"
}

# Arabic (MSA, fully diacritised).
clip ar-emirates-id-renewal ar 130 'أُرِيدُ تَجْدِيدَ بِطَاقَةِ الْهُوِيَّةِ الْإِمَارَاتِيَّةِ.'
clip ar-passport-fee ar+m3 110 'كَمْ تَبْلُغُ رُسُومُ تَجْدِيدِ جَوَازِ السَّفَرِ؟'
clip ar-lost-id ar+f2 160 'فَقَدْتُ بِطَاقَةَ الْهُوِيَّةِ، كَيْفَ أَطْلُبُ بَدَلَ فَاقِدٍ؟'
clip ar-queue-ticket ar+m5 110 'مِنْ أَيْنَ آخُذُ رَقْمَ انْتِظَارٍ؟'
clip ar-people-of-determination ar+f4 160 'هَلْ يَخْدُمُ الْمَرْكَزُ أَصْحَابَ الْهِمَمِ دُونَ مَوْعِدٍ؟'
clip ar-nahda-amman-street ar 110 'هَلْ مَرْكَزُ النَّهْدَةِ فِي شَارِعِ عَمَّانَ؟'
clip ar-stadium-metro ar+m3 160 'كَيْفَ أَصِلُ إِلَى الْمَرْكَزِ مِنْ مَحَطَّةِ الِٱسْتَادِ؟'
clip ar-khalidiya-branch ar+f2 130 'هَلْ لَدَيْكُمْ فَرْعٌ فِي مِنْطَقَةِ الْخَالِدِيَّةِ؟'
clip ar-certificate ar+m5 130 'أُرِيدُ اسْتِخْرَاجَ شَهَادَةٍ لِمَنْ يَهُمُّهُ الْأَمْرُ.'
clip ar-apple-pay ar+f4 130 'هَلْ يُمْكِنُنِي الدَّفْعُ بِآبِلْ بَايْ؟'
clip ar-friday-hours ar 160 'مَتَى يُغْلَقُ الْمَرْكَزُ يَوْمَ الْجُمُعَةِ؟'
clip ar-traffic-fine ar+f2 110 'أَيْنَ أَدْفَعُ الْمُخَالَفَةَ الْمُرُورِيَّةَ؟'

# English.
clip en-lost-emirates-id en-us+m3 150 'I lost my Emirates ID. How much does a replacement cost?'
clip en-stadium-metro en-gb+f2 130 'How do I get to Amman Street from Stadium metro station?'
clip en-certificate en-us+f4 170 'How long does a to-whom-it-may-concern certificate take?'
clip en-people-of-determination en-gb+m5 160 'Do people of determination need a queue ticket?'
clip en-traffic-fine en-us+f2 140 'Where can I pay the traffic fine?'
clip en-friday-hours en-gb+m3 130 'What time do you close on Friday?'

# Mixed: Arabic frame (espeak-ng ar), English term (espeak-ng en-us), same variant in a clip.
mixed mixed-apple-pay ar+m3 130 'وَيْنْ أَقْدَرْ أَدْفَعْ بِ' en-us+m3 150 'Apple Pay'
mixed mixed-passport-renewal ar+f2 110 'كَمْ رُسُومْ اَلْـ' en-us+f2 140 'passport renewal'
mixed mixed-appointment ar+m5 160 'عِنْدِي' en-us+m5 170 'appointment' ar+m5 160 'الْيَوْمْ'
mixed mixed-queue-ticket ar+f4 130 'مِنْ وَيْنْ آخُذْ' en-us+f4 150 'queue ticket'
mixed mixed-lost-emirates-id ar 130 'ضَيَّعْتْ اَلْـ' en-us 150 'Emirates ID' ar 130 'شُو أَسَوِّي'

# Cheap listen-check: every clip 1-6 s long and not silent (RMS amplitude > 0.01).
bad=0
for name in \
  ar-emirates-id-renewal \
  ar-passport-fee \
  ar-lost-id \
  ar-queue-ticket \
  ar-people-of-determination \
  ar-nahda-amman-street \
  ar-stadium-metro \
  ar-khalidiya-branch \
  ar-certificate \
  ar-apple-pay \
  ar-friday-hours \
  ar-traffic-fine \
  en-lost-emirates-id \
  en-stadium-metro \
  en-certificate \
  en-people-of-determination \
  en-traffic-fine \
  en-friday-hours \
  mixed-apple-pay \
  mixed-passport-renewal \
  mixed-appointment \
  mixed-queue-ticket \
  mixed-lost-emirates-id; do
  stat=$(sox "$here/$name.wav" -n stat 2>&1)
  len=$(printf '%s\n' "$stat" | awk '/^Length/ {print $3}')
  rms=$(printf '%s\n' "$stat" | awk '/^RMS +amplitude/ {print $3}')
  if awk -v l="$len" -v r="$rms" 'BEGIN { exit !(l >= 1 && l <= 6 && r > 0.01) }'; then
    echo "ok  $name.wav  ${len} s  RMS ${rms}"
  else
    echo "BAD $name.wav  ${len} s  RMS ${rms}" >&2
    bad=1
  fi
done
exit $bad
