//! Golden lip-sync: a phoneme timeline in, the mouth out, every 20 ms — the dominant viseme
//! with its weight, the runner-up, and the jaw — as the face will show it (the 10 ms lead
//! included). `UPDATE_EXPECT=1 cargo test -p hiwar-animation --test golden` rewrites the
//! expectations after a deliberate change; read the diff before keeping it.

use expect_test::{Expect, expect};
use hiwar_animation::{LipSync, TimedPhoneme, Timeline, Viseme};

const RATE: u32 = 22_050;

/// A timeline from (phoneme, milliseconds) pairs.
fn timeline(parts: &[(&str, u64)]) -> Timeline {
    let mut pos = 0;
    let phonemes = parts
        .iter()
        .map(|&(p, ms)| {
            let start = pos;
            pos += ms * u64::from(RATE) / 1000;
            TimedPhoneme { phoneme: p.into(), start, end: pos }
        })
        .collect();
    Timeline { sample_rate: RATE, phonemes, words: vec![] }
}

fn check(parts: &[(&str, u64)], expected: Expect) {
    let t = timeline(parts);
    let lipsync = LipSync::from_timeline(&t);
    let mut out = String::new();
    let end_ms = t.end() * 1000 / u64::from(RATE);
    for ms in (0..=end_ms).step_by(20) {
        let mouth = lipsync.sample(ms * u64::from(RATE) / 1000);
        let mut ranked: Vec<(Viseme, f32)> = Viseme::ALL.iter().map(|&v| (v, mouth.weight(v))).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let sounding = t.phoneme_at(ms * u64::from(RATE) / 1000).map_or("", |p| p.phoneme.as_str());
        out.push_str(&format!(
            "t={ms:04}ms {sounding:<3} {:<4} {:.2}  {:<4} {:.2}  jaw {:.2}\n",
            format!("{:?}", ranked[0].0),
            ranked[0].1,
            format!("{:?}", ranked[1].0),
            ranked[1].1,
            mouth.jaw
        ));
    }
    expected.assert_eq(&out);
}

#[test]
fn marhaban_arabic_greeting() {
    // مرحباً: m a r ħ a b a n, as the voice times it.
    check(
        &[("_", 60), ("m", 70), ("a", 80), ("r", 60), ("ħ", 90), ("a", 80), ("b", 60), ("a", 90), ("n", 80), ("_", 60)],
        expect![[r#"
        t=0000ms _   Sil  0.94  PP   0.06  jaw 0.00
        t=0020ms _   Sil  0.89  PP   0.10  jaw 0.00
        t=0040ms _   PP   0.51  Sil  0.49  jaw 0.00
        t=0060ms m   PP   1.00  Sil  0.00  jaw 0.00
        t=0080ms m   PP   1.00  Sil  0.00  jaw 0.00
        t=0100ms m   PP   1.00  Sil  0.00  jaw 0.00
        t=0120ms m   PP   0.93  Aa   0.05  jaw 0.04
        t=0140ms a   Aa   0.47  PP   0.32  jaw 0.36
        t=0160ms a   Aa   0.57  Sil  0.20  jaw 0.45
        t=0180ms a   Aa   0.57  Sil  0.20  jaw 0.47
        t=0200ms a   Aa   0.43  RR   0.39  jaw 0.43
        t=0220ms r   RR   0.62  Aa   0.27  jaw 0.37
        t=0240ms r   RR   0.65  Aa   0.25  jaw 0.38
        t=0260ms r   RR   0.49  Aa   0.37  jaw 0.47
        t=0280ms ħ   Aa   0.57  RR   0.21  jaw 0.59
        t=0300ms ħ   Aa   0.66  Sil  0.23  jaw 0.62
        t=0320ms ħ   Aa   0.69  Sil  0.24  jaw 0.62
        t=0340ms ħ   Aa   0.69  Sil  0.24  jaw 0.59
        t=0360ms a   Aa   0.66  Sil  0.23  jaw 0.52
        t=0380ms a   Aa   0.58  PP   0.22  jaw 0.44
        t=0400ms a   Aa   0.48  PP   0.36  jaw 0.36
        t=0420ms a   PP   0.71  Aa   0.21  jaw 0.16
        t=0440ms b   PP   1.00  Sil  0.00  jaw 0.00
        t=0460ms b   PP   1.00  Sil  0.00  jaw 0.00
        t=0480ms b   PP   1.00  Sil  0.00  jaw 0.00
        t=0500ms a   PP   0.67  Aa   0.23  jaw 0.18
        t=0520ms a   Aa   0.53  PP   0.23  jaw 0.41
        t=0540ms a   Aa   0.59  Sil  0.22  jaw 0.46
        t=0560ms a   Aa   0.57  Sil  0.22  jaw 0.46
        t=0580ms a   Aa   0.39  Nn   0.38  jaw 0.37
        t=0600ms n   Nn   0.55  Sil  0.29  jaw 0.23
        t=0620ms n   Sil  0.52  Nn   0.44  jaw 0.12
        t=0640ms n   Sil  0.75  Nn   0.24  jaw 0.06
        t=0660ms n   Sil  0.92  Nn   0.07  jaw 0.02
        t=0680ms _   Sil  0.97  Nn   0.03  jaw 0.01
        t=0700ms _   Sil  0.99  Nn   0.01  jaw 0.00
        t=0720ms _   Sil  1.00  Nn   0.00  jaw 0.00
    "#]],
    );
}

#[test]
fn a_short_bilabial_still_closes_the_lips() {
    // ب lasting 20 ms between two long vowels: a 25 fps frame must still see it shut.
    check(
        &[("_", 40), ("aː", 160), ("b", 20), ("aː", 160), ("_", 40)],
        expect![[r#"
        t=0000ms _   Sil  0.96  Aa   0.04  jaw 0.03
        t=0020ms _   Sil  0.92  Aa   0.08  jaw 0.06
        t=0040ms aː  Sil  0.72  Aa   0.27  jaw 0.20
        t=0060ms aː  Aa   0.69  Sil  0.29  jaw 0.52
        t=0080ms aː  Aa   0.88  Sil  0.08  jaw 0.66
        t=0100ms aː  Aa   0.90  PP   0.08  jaw 0.67
        t=0120ms aː  Aa   0.84  PP   0.15  jaw 0.63
        t=0140ms aː  Aa   0.74  PP   0.25  jaw 0.56
        t=0160ms aː  PP   0.50  Aa   0.49  jaw 0.37
        t=0180ms aː  PP   1.00  Sil  0.00  jaw 0.00
        t=0200ms b   PP   1.00  Sil  0.00  jaw 0.00
        t=0220ms aː  PP   1.00  Sil  0.00  jaw 0.00
        t=0240ms aː  Aa   0.57  PP   0.42  jaw 0.43
        t=0260ms aː  Aa   0.85  PP   0.12  jaw 0.64
        t=0280ms aː  Aa   0.89  Sil  0.06  jaw 0.67
        t=0300ms aː  Aa   0.85  Sil  0.14  jaw 0.64
        t=0320ms aː  Aa   0.70  Sil  0.29  jaw 0.53
        t=0340ms aː  Sil  0.53  Aa   0.47  jaw 0.35
        t=0360ms aː  Sil  0.80  Aa   0.20  jaw 0.15
        t=0380ms _   Sil  0.95  Aa   0.05  jaw 0.04
        t=0400ms _   Sil  0.98  Aa   0.02  jaw 0.01
        t=0420ms     Sil  0.98  Aa   0.02  jaw 0.01
    "#]],
    );
}

#[test]
fn rounding_is_anticipated_and_emphatics_back_the_vowel() {
    // سوق then صاد: the lips round during the s of suː; the emphatic sˤ takes the vowel back.
    check(
        &[("_", 40), ("s", 80), ("uː", 140), ("q", 60), ("_", 60), ("s", 40), ("ˤ", 40), ("aː", 140), ("d", 60), ("_", 40)],
        expect![[r#"
        t=0000ms _   Sil  0.93  SS   0.05  jaw 0.01
        t=0020ms _   Sil  0.88  SS   0.10  jaw 0.01
        t=0040ms s   Sil  0.65  SS   0.30  jaw 0.04
        t=0060ms s   SS   0.59  Sil  0.25  jaw 0.10
        t=0080ms s   SS   0.66  U    0.28  jaw 0.14
        t=0100ms s   SS   0.61  U    0.38  jaw 0.16
        t=0120ms uː  U    0.68  SS   0.30  jaw 0.23
        t=0140ms uː  U    0.85  SS   0.13  jaw 0.27
        t=0160ms uː  U    0.91  SS   0.05  jaw 0.28
        t=0180ms uː  U    0.92  Kk   0.04  jaw 0.29
        t=0200ms uː  U    0.88  Kk   0.08  jaw 0.29
        t=0220ms uː  U    0.80  Kk   0.14  jaw 0.28
        t=0240ms uː  U    0.61  Kk   0.26  jaw 0.25
        t=0260ms q   Kk   0.45  Sil  0.31  jaw 0.18
        t=0280ms q   Sil  0.60  Kk   0.32  jaw 0.10
        t=0300ms q   Sil  0.81  Kk   0.16  jaw 0.05
        t=0320ms _   Sil  0.92  Kk   0.05  jaw 0.02
        t=0340ms _   Sil  0.93  SS   0.04  jaw 0.01
        t=0360ms _   Sil  0.89  SS   0.08  jaw 0.02
        t=0380ms s   Sil  0.67  SS   0.26  jaw 0.06
        t=0400ms s   SS   0.55  Sil  0.27  jaw 0.15
        t=0420ms ˤ   SS   0.64  Aa   0.15  jaw 0.24
        t=0440ms ˤ   SS   0.58  Aa   0.26  jaw 0.33
        t=0460ms aː  Aa   0.57  SS   0.27  jaw 0.58
        t=0480ms aː  Aa   0.72  O    0.15  jaw 0.70
        t=0500ms aː  Aa   0.78  O    0.14  jaw 0.74
        t=0520ms aː  Aa   0.78  O    0.14  jaw 0.75
        t=0540ms aː  Aa   0.75  O    0.13  jaw 0.72
        t=0560ms aː  Aa   0.68  DD   0.14  jaw 0.67
        t=0580ms aː  Aa   0.52  DD   0.26  jaw 0.54
        t=0600ms d   DD   0.45  Sil  0.32  jaw 0.27
        t=0620ms d   Sil  0.61  DD   0.33  jaw 0.11
        t=0640ms d   Sil  0.83  DD   0.16  jaw 0.04
        t=0660ms _   Sil  0.95  DD   0.05  jaw 0.01
        t=0680ms _   Sil  0.98  DD   0.02  jaw 0.00
        t=0700ms     Sil  0.98  DD   0.02  jaw 0.00
    "#]],
    );
}

#[test]
fn english_welcome() {
    // "welcome": w ɛ l k ʌ m
    check(
        &[("_", 40), ("w", 60), ("ɛ", 80), ("l", 50), ("k", 60), ("ʌ", 70), ("m", 80), ("_", 60)],
        expect![[r#"
        t=0000ms _   Sil  0.83  U    0.17  jaw 0.05
        t=0020ms _   Sil  0.79  U    0.20  jaw 0.06
        t=0040ms w   Sil  0.58  U    0.39  jaw 0.13
        t=0060ms w   U    0.68  Sil  0.22  jaw 0.25
        t=0080ms w   U    0.69  E    0.19  jaw 0.30
        t=0100ms ɛ   E    0.43  U    0.38  jaw 0.31
        t=0120ms ɛ   E    0.54  Sil  0.19  jaw 0.32
        t=0140ms ɛ   E    0.56  Sil  0.20  jaw 0.31
        t=0160ms ɛ   E    0.50  Nn   0.24  jaw 0.30
        t=0180ms l   Nn   0.50  E    0.26  jaw 0.26
        t=0200ms l   Nn   0.55  Kk   0.23  jaw 0.25
        t=0220ms l   Kk   0.43  Nn   0.40  jaw 0.26
        t=0240ms k   Kk   0.57  Nn   0.16  jaw 0.29
        t=0260ms k   Kk   0.51  Aa   0.26  jaw 0.34
        t=0280ms k   Aa   0.42  Kk   0.31  jaw 0.39
        t=0300ms ʌ   Aa   0.51  PP   0.20  jaw 0.41
        t=0320ms ʌ   Aa   0.45  PP   0.34  jaw 0.35
        t=0340ms ʌ   PP   0.70  Aa   0.21  jaw 0.16
        t=0360ms m   PP   1.00  Sil  0.00  jaw 0.00
        t=0380ms m   PP   1.00  Sil  0.00  jaw 0.00
        t=0400ms m   PP   1.00  Sil  0.00  jaw 0.00
        t=0420ms m   PP   1.00  Sil  0.00  jaw 0.00
        t=0440ms _   Sil  0.52  PP   0.48  jaw 0.00
        t=0460ms _   Sil  0.94  PP   0.06  jaw 0.00
        t=0480ms _   Sil  0.98  PP   0.02  jaw 0.00
    "#]],
    );
}
