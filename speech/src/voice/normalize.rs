//! Text normalisation before speaking: markdown and emoji stripped, tatweel removed,
//! Arabic-Indic and Eastern digits made ASCII, and, inside Arabic text, numbers, decimals,
//! percentages, times, currency and phone/ID numbers written out as Arabic words. Numbers in
//! English text are left to espeak-ng, which reads them well.

use crate::text::is_arabic_letter;

/// Normalises `text` for the voice.
pub fn normalize_for_speech(text: &str) -> String {
    let text = strip_markup(text);
    let text: String = text
        .chars()
        .filter(|c| *c != '\u{0640}')
        .map(|c| match c {
            '٠'..='٩' => char::from(b'0' + (c as u32 - '٠' as u32) as u8),
            '۰'..='۹' => char::from(b'0' + (c as u32 - '۰' as u32) as u8),
            '٫' => '.',
            '٬' => ',',
            '٪' => '%',
            _ => c,
        })
        .collect();
    let text = text.replace("د.إ", "درهم").replace("ر.س", "ريال");
    verbalize_numbers(&text)
}

fn is_emoji(c: char) -> bool {
    matches!(c as u32, 0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0xFE0F | 0x200D)
}

/// Markdown emphasis, headings, code marks, list bullets and link targets go; link text stays.
fn strip_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut line_start = true;
    while i < chars.len() {
        let c = chars[i];
        if line_start {
            // "# ", "- ", "* ", "1. " at the start of a line.
            let rest: String = chars[i..].iter().take(4).collect();
            let skip = if rest.starts_with("- ") || rest.starts_with("* ") || rest.starts_with("• ") {
                2
            } else {
                chars[i..].iter().take_while(|c| **c == '#').count()
            };
            i += skip;
            line_start = false;
            continue;
        }
        match c {
            '*' | '_' | '`' | '~' if !(c == '_' && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric()) && i > 0 && chars[i - 1].is_alphanumeric()) => {}
            '[' => {
                // [text](url) → text
                if let Some(close) = chars[i..].iter().position(|c| *c == ']').map(|p| i + p)
                    && chars.get(close + 1) == Some(&'(')
                    && let Some(end) = chars[close..].iter().position(|c| *c == ')').map(|p| close + p)
                {
                    out.extend(&chars[i + 1..close]);
                    i = end + 1;
                    continue;
                }
                out.push(c);
            }
            '\n' => {
                out.push('\n');
                line_start = true;
            }
            c if is_emoji(c) => {}
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// Whether the number at `start..end` of `chars` sits in Arabic text (nearest letter).
fn in_arabic(chars: &[char], start: usize, end: usize) -> bool {
    let before = chars[..start].iter().rev().find(|c| c.is_alphabetic());
    let after = chars[end..].iter().find(|c| c.is_alphabetic());
    match before {
        Some(b) => is_arabic_letter(*b),
        None => after.is_some_and(|a| is_arabic_letter(*a)),
    }
}

fn verbalize_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() * 2);
    let mut i = 0;
    while i < chars.len() {
        let number_starts = chars[i].is_ascii_digit() || (chars[i] == '+' && chars.get(i + 1).is_some_and(char::is_ascii_digit));
        if !number_starts {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // The whole token: digits with inner . , : and spaces inside phone numbers.
        let start = i;
        let mut end = i + 1;
        while end < chars.len()
            && (chars[end].is_ascii_digit() || (matches!(chars[end], '.' | ',' | ':' | '-' | '/') && chars.get(end + 1).is_some_and(char::is_ascii_digit)))
        {
            end += 1;
        }
        let token: String = chars[start..end].iter().collect();
        if !in_arabic(&chars, start, end) {
            out.push_str(&token);
            i = end;
            continue;
        }
        let percent = chars.get(end) == Some(&'%');
        let mut words = arabic_token(&token);
        if out.trim_end().ends_with("الساعة") {
            // "الساعة 3:30" already names the hour.
            words = words.trim_start_matches("الساعة ").to_string();
        }
        out.push_str(&words);
        if percent {
            out.push_str(" بالمئة");
            end += 1;
        }
        i = end;
    }
    out
}

/// One numeric token in Arabic words.
fn arabic_token(token: &str) -> String {
    if let Some(date) = date_words(token) {
        return date;
    }
    let digits_only: String = token.chars().filter(char::is_ascii_digit).collect();
    // Phone numbers, IDs and anything with a leading zero or + are read digit by digit.
    if token.starts_with('+')
        || token.contains('-')
        || (digits_only.len() >= 7 && !token.contains(','))
        || (token.starts_with('0') && token.len() > 1 && !token.contains('.'))
    {
        return digits_only.chars().map(digit_word).collect::<Vec<_>>().join(" ");
    }
    if let Some((h, m)) = token.split_once(':')
        && let (Ok(h), Ok(m)) = (h.parse::<u32>(), m.parse::<u32>())
        && (1..=24).contains(&h)
        && m < 60
    {
        return time_words(h, m);
    }
    if let Some((whole, frac)) = token.split_once('.')
        && let Ok(w) = whole.replace(',', "").parse::<u64>()
    {
        let frac_words: Vec<&str> = frac.chars().map(digit_word).collect();
        return format!("{} فاصلة {}", cardinal(w), frac_words.join(" "));
    }
    token.replace(',', "").parse::<u64>().map_or_else(|_| token.to_string(), cardinal)
}

fn digit_word(d: char) -> &'static str {
    ["صفر", "واحد", "اثنان", "ثلاثة", "أربعة", "خمسة", "ستة", "سبعة", "ثمانية", "تسعة"][d.to_digit(10).unwrap_or(0) as usize]
}

const ONES: [&str; 20] = [
    "صفر",
    "واحد",
    "اثنان",
    "ثلاثة",
    "أربعة",
    "خمسة",
    "ستة",
    "سبعة",
    "ثمانية",
    "تسعة",
    "عشرة",
    "أحد عشر",
    "اثنا عشر",
    "ثلاثة عشر",
    "أربعة عشر",
    "خمسة عشر",
    "ستة عشر",
    "سبعة عشر",
    "ثمانية عشر",
    "تسعة عشر",
];
const TENS: [&str; 10] = ["", "", "عشرون", "ثلاثون", "أربعون", "خمسون", "ستون", "سبعون", "ثمانون", "تسعون"];
const HUNDREDS: [&str; 10] = ["", "مئة", "مئتان", "ثلاثمئة", "أربعمئة", "خمسمئة", "ستمئة", "سبعمئة", "ثمانمئة", "تسعمئة"];

fn below_thousand(n: u64) -> String {
    let (h, rest) = (n / 100, n % 100);
    let rest_words = match rest {
        0 => String::new(),
        1..=19 => ONES[rest as usize].to_string(),
        _ if rest % 10 == 0 => TENS[(rest / 10) as usize].to_string(),
        _ => format!("{} و{}", ONES[(rest % 10) as usize], TENS[(rest / 10) as usize]),
    };
    match (h, rest_words.is_empty()) {
        (0, _) => rest_words,
        (_, true) => HUNDREDS[h as usize].to_string(),
        _ => format!("{} و{}", HUNDREDS[h as usize], rest_words),
    }
}

/// A scale word with the count before it: (one, two, 3–10 plural, 11–99 accusative, else).
fn scaled(count: u64, forms: [&str; 5]) -> String {
    match count {
        1 => forms[0].to_string(),
        2 => forms[1].to_string(),
        3..=10 => format!("{} {}", below_thousand(count), forms[2]),
        _ if count % 100 >= 11 => format!("{} {}", below_thousand(count), forms[3]),
        _ => format!("{} {}", below_thousand(count), forms[4]),
    }
}

/// A cardinal number in Modern Standard Arabic (masculine, as read aloud in isolation).
pub fn cardinal(n: u64) -> String {
    if n < 1000 {
        return if n == 0 { ONES[0].to_string() } else { below_thousand(n) };
    }
    if n >= 1_000_000_000_000 {
        return n.to_string().chars().map(digit_word).collect::<Vec<_>>().join(" ");
    }
    let mut parts = Vec::new();
    let billions = n / 1_000_000_000;
    let millions = (n / 1_000_000) % 1000;
    let thousands = (n / 1000) % 1000;
    let rest = n % 1000;
    if billions > 0 {
        parts.push(scaled(billions, ["مليار", "ملياران", "مليارات", "مليارًا", "مليار"]));
    }
    if millions > 0 {
        parts.push(scaled(millions, ["مليون", "مليونان", "ملايين", "مليونًا", "مليون"]));
    }
    if thousands > 0 {
        parts.push(scaled(thousands, ["ألف", "ألفان", "آلاف", "ألفًا", "ألف"]));
    }
    if rest > 0 {
        parts.push(below_thousand(rest));
    }
    parts.join(" و")
}

/// "25/11/2026" or "2026-11-25" → "الخامس والعشرون من نوفمبر ألفين وستة وعشرين".
fn date_words(token: &str) -> Option<String> {
    const MONTHS: [&str; 12] = ["يناير", "فبراير", "مارس", "أبريل", "مايو", "يونيو", "يوليو", "أغسطس", "سبتمبر", "أكتوبر", "نوفمبر", "ديسمبر"];
    let parts: Vec<u32> = token.split(['/', '-']).map(str::parse).collect::<Result<_, _>>().ok()?;
    let (d, m, y) = match (parts.as_slice(), token.contains('-')) {
        ([y, m, d], true) if *y > 31 => (*d, *m, Some(*y)),
        ([d, m, y], false) => (*d, *m, Some(*y)),
        ([d, m], false) => (*d, *m, None),
        _ => return None,
    };
    if !(1..=31).contains(&d) || !(1..=12).contains(&m) {
        return None;
    }
    let mut out = format!("{} من {}", ordinal_day(d), MONTHS[m as usize - 1]);
    if let Some(y) = y.filter(|y| (1000..=2999).contains(y)) {
        out.push(' ');
        out.push_str(&year_words(u64::from(y)));
    }
    Some(out)
}

/// Days of the month as masculine ordinals (اليوم الخامس والعشرون).
fn ordinal_day(d: u32) -> String {
    const UNITS: [&str; 10] = ["", "الحادي", "الثاني", "الثالث", "الرابع", "الخامس", "السادس", "السابع", "الثامن", "التاسع"];
    match d {
        1 => "الأول".into(),
        2..=9 => UNITS[d as usize].into(),
        10 => "العاشر".into(),
        11..=19 => format!("{} عشر", UNITS[(d - 10) as usize]),
        20 => "العشرون".into(),
        30 => "الثلاثون".into(),
        _ => format!("{} و{}", UNITS[(d % 10) as usize], if d < 30 { "العشرون" } else { "الثلاثون" }),
    }
}

/// Years as read aloud: "ألفين وستة وعشرين" (the genitive/accusative form that follows a month).
fn year_words(y: u64) -> String {
    cardinal(y).replace("ألفان", "ألفين").replace("عشرون", "عشرين").replace("ثلاثون", "ثلاثين").replace("مئتان", "مئتين")
}

/// "3:30" → "الساعة الثالثة والنصف".
fn time_words(h: u32, m: u32) -> String {
    const HOURS: [&str; 12] =
        ["الثانية عشرة", "الواحدة", "الثانية", "الثالثة", "الرابعة", "الخامسة", "السادسة", "السابعة", "الثامنة", "التاسعة", "العاشرة", "الحادية عشرة"];
    let hour = |h: u32| HOURS[(h % 12) as usize];
    match m {
        0 => format!("الساعة {}", hour(h)),
        15 => format!("الساعة {} والربع", hour(h)),
        30 => format!("الساعة {} والنصف", hour(h)),
        45 => format!("الساعة {} إلا ربعًا", hour(h + 1)),
        _ => format!("الساعة {} و{} دقيقة", hour(h), cardinal(u64::from(m))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arabic_numbers_are_written_out() {
        let cases = [
            (0, "صفر"),
            (7, "سبعة"),
            (12, "اثنا عشر"),
            (21, "واحد وعشرون"),
            (100, "مئة"),
            (250, "مئتان وخمسون"),
            (1000, "ألف"),
            (2000, "ألفان"),
            (3000, "ثلاثة آلاف"),
            (11_000, "أحد عشر ألفًا"),
            (1250, "ألف ومئتان وخمسون"),
            (2_500_000, "مليونان وخمسمئة ألف"),
            (2026, "ألفان وستة وعشرون"),
        ];
        for (n, words) in cases {
            assert_eq!(cardinal(n), words, "{n}");
        }
    }

    #[test]
    fn speech_text_in_arabic_and_english() {
        let cases = [
            ("الرسوم ٣٥٠ درهم", "الرسوم ثلاثمئة وخمسون درهم"),
            ("الرسوم 3.5 د.إ فقط", "الرسوم ثلاثة فاصلة خمسة درهم فقط"),
            ("خصم 15% اليوم", "خصم خمسة عشر بالمئة اليوم"),
            ("نفتح الساعة 3:30 صباحاً", "نفتح الساعة الثالثة والنصف صباحاً"),
            ("موعدك 9:45", "موعدك الساعة العاشرة إلا ربعًا"),
            ("اتصل على 0501234567", "اتصل على صفر خمسة صفر واحد اثنان ثلاثة أربعة خمسة ستة سبعة"),
            ("The fee is 1,250 dirhams", "The fee is 1,250 dirhams"),
            ("**مرحبا** بك 👋 في [المركز](https://x.ae)", "مرحبا بك  في المركز"),
            ("# العنوان\n- البند الأول", " العنوان\nالبند الأول"),
            ("الـــخدمة", "الخدمة"),
            ("موعدك 25/11/2026 صباحاً", "موعدك الخامس والعشرون من نوفمبر ألفين وستة وعشرين صباحاً"),
            ("تاريخ الانتهاء 2027-01-01", "تاريخ الانتهاء الأول من يناير ألفين وسبعة وعشرين"),
            ("يوم 3/5 فقط", "يوم الثالث من مايو فقط"),
            ("اتصل على 050-123-4567", "اتصل على صفر خمسة صفر واحد اثنان ثلاثة أربعة خمسة ستة سبعة"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize_for_speech(input), expected, "{input}");
        }
    }
}
