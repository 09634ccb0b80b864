//! Text normalisation before speaking: markdown and emoji stripped, tatweel removed,
//! Arabic-Indic and Eastern digits made ASCII, and, inside Arabic text, numbers, decimals,
//! percentages, negative amounts, times, currency and phone/ID numbers written out as Arabic
//! words, a number of 3–10 (or ending in one) agreeing with the noun it counts. Numbers in
//! English text are left to espeak-ng, which reads them well; "AED" is said as dirhams in
//! both languages.
//!
//! Every spoken character remembers the written word it came from ([`Normalized`]), so
//! captions and word timings can show "250" while the voice says «مئتان وخمسون».

use crate::text::is_arabic_letter;

/// Text ready for the voice, with the written word each of its characters came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Normalized {
    /// What is spoken.
    pub text: String,
    /// The words as written (markup stripped), in order.
    pub written: Vec<String>,
    /// For each character of `text`: the index in `written` it came from (None: a space).
    source: Vec<Option<usize>>,
}

impl Normalized {
    /// Each spoken word (split at whitespace) with the index of the written word it says.
    pub fn words(&self) -> Vec<(String, Option<usize>)> {
        let mut out: Vec<(String, Option<usize>)> = Vec::new();
        let mut current: Option<(String, Option<usize>)> = None;
        for (c, src) in self.text.chars().zip(&self.source) {
            if c.is_whitespace() {
                out.extend(current.take());
                continue;
            }
            let word = current.get_or_insert_with(|| (String::new(), *src));
            word.0.push(c);
            if word.1.is_none() {
                word.1 = *src;
            }
        }
        out.extend(current);
        out
    }
}

/// Normalises `text` for the voice.
pub fn normalize_for_speech(text: &str) -> String {
    normalize(text).text
}

/// Normalises `text` for the voice, keeping where each spoken character came from.
pub fn normalize(text: &str) -> Normalized {
    let stripped = strip_markup(text);
    let mut written: Vec<String> = Vec::new();
    let mut chars: Vec<(char, Option<usize>)> = Vec::with_capacity(stripped.len());
    let mut in_word = false;
    for c in stripped.chars() {
        if c.is_whitespace() {
            in_word = false;
            chars.push((c, None));
            continue;
        }
        if !in_word {
            written.push(String::new());
            in_word = true;
        }
        let k = written.len() - 1;
        written[k].push(c);
        let mapped = match c {
            '\u{0640}' => continue,
            '٠'..='٩' => char::from(b'0' + (c as u32 - '٠' as u32) as u8),
            '۰'..='۹' => char::from(b'0' + (c as u32 - '۰' as u32) as u8),
            '٫' => '.',
            '٬' => ',',
            '٪' => '%',
            _ => c,
        };
        chars.push((mapped, Some(k)));
    }
    let chars = replace_mapped(&chars, "د.إ", "درهم");
    let chars = replace_mapped(&chars, "ر.س", "ريال");
    let out = verbalize_numbers(&chars);
    Normalized { text: out.iter().map(|(c, _)| *c).collect(), written, source: out.into_iter().map(|(_, s)| s).collect() }
}

/// `from` replaced by `to`, the replacement keeping the source of the first replaced character.
fn replace_mapped(chars: &[(char, Option<usize>)], from: &str, to: &str) -> Vec<(char, Option<usize>)> {
    let from: Vec<char> = from.chars().collect();
    let mut out = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i..].iter().map(|(c, _)| *c).take(from.len()).eq(from.iter().copied()) {
            out.extend(to.chars().map(|c| (c, chars[i].1)));
            i += from.len();
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
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

/// Whether the span `start..end` of `chars` sits in Arabic text (nearest letter, before first;
/// the letters of "AED" do not count: it is said in the text's language).
fn in_arabic(chars: &[char], start: usize, end: usize) -> bool {
    let in_aed = |j: usize| (j.saturating_sub(2)..=j).any(|k| aed_at(chars, k) && j < k + 3);
    // Tashkeel counts as alphabetic in Unicode but is no letter: skip it (an answer asked for
    // full marks puts one after every Arabic letter).
    let letter = |j: usize| chars[j].is_alphabetic() && !super::is_tashkeel(chars[j]) && !in_aed(j);
    let before = (0..start).rev().find(|&j| letter(j)).map(|j| chars[j]);
    let after = (end..chars.len()).find(|&j| letter(j)).map(|j| chars[j]);
    match before {
        Some(b) => is_arabic_letter(b),
        None => after.is_some_and(is_arabic_letter),
    }
}

/// The word (letters) starting at `i`, if any.
fn word_at(chars: &[char], i: usize) -> String {
    chars[i.min(chars.len())..].iter().take_while(|c| c.is_alphabetic() || matches!(**c, '\u{064B}'..='\u{0652}')).collect()
}

/// "AED" as a whole word at `i`.
fn aed_at(chars: &[char], i: usize) -> bool {
    chars.get(i..).is_some_and(|rest| rest.starts_with(&['A', 'E', 'D']))
        && (i == 0 || !chars[i - 1].is_alphanumeric())
        && chars.get(i + 3).is_none_or(|c| !c.is_alphanumeric())
}

/// The index of the next non-space character at or after `i`.
fn skip_spaces(chars: &[char], mut i: usize) -> usize {
    while chars.get(i).is_some_and(|c| *c == ' ') {
        i += 1;
    }
    i
}

fn verbalize_numbers(mapped: &[(char, Option<usize>)]) -> Vec<(char, Option<usize>)> {
    let chars: Vec<char> = mapped.iter().map(|(c, _)| *c).collect();
    let mut out: Vec<(char, Option<usize>)> = Vec::with_capacity(mapped.len() * 2);
    let push = |out: &mut Vec<(char, Option<usize>)>, s: &str, src: Option<usize>| out.extend(s.chars().map(|c| (c, if c == ' ' { None } else { src })));
    let mut i = 0;
    while i < chars.len() {
        // "AED 150" in either language: the amount, then the currency.
        if aed_at(&chars, i) {
            let aed_src = mapped[i].1;
            let n = skip_spaces(&chars, i + 3);
            let arabic = in_arabic(&chars, i, i + 3);
            if chars.get(n).is_some_and(char::is_ascii_digit) {
                let (spoken, end, value) = number_here(&chars, n, arabic);
                push(&mut out, &spoken, mapped[n].1);
                out.push((' ', None));
                push(&mut out, currency(arabic, value), aed_src);
                i = end;
            } else {
                push(&mut out, if arabic { "درهم" } else { "dirhams" }, aed_src);
                i += 3;
            }
            continue;
        }
        let negative = chars[i] == '-'
            && chars.get(i + 1).is_some_and(char::is_ascii_digit)
            && (i == 0 || chars[i - 1].is_whitespace() || chars[i - 1] == '(')
            && in_arabic(&chars, i, i + 1);
        let number_starts = chars[i].is_ascii_digit() || (chars[i] == '+' && chars.get(i + 1).is_some_and(char::is_ascii_digit));
        if !number_starts && !negative {
            out.push(mapped[i]);
            i += 1;
            continue;
        }
        let src = mapped[i].1;
        let start = if negative { i + 1 } else { i };
        let (number, end, value) = number_here(&chars, start, true);
        if !in_arabic(&chars, start, end) {
            // English: the token as written; "150 AED" becomes "150 dirhams".
            out.extend(&mapped[i..end]);
            i = end;
            let next = skip_spaces(&chars, i);
            if aed_at(&chars, next) {
                out.push((' ', None));
                push(&mut out, if value == Some(1) { "dirham" } else { "dirhams" }, mapped[next].1);
                i = next + 3;
            }
            continue;
        }
        let percent = chars.get(end) == Some(&'%');
        let mut words = number;
        let tail: String = out.iter().rev().take(12).map(|(c, _)| *c).collect::<Vec<_>>().into_iter().rev().collect();
        if super::strip_tashkeel(tail.trim_end()).ends_with("الساعة") {
            // "الساعة 3:30" already names the hour.
            words = words.trim_start_matches("الساعة ").to_string();
        }
        // A counted noun after the number (3–10, or ending in 1–9 above ten) decides its gender.
        let next = skip_spaces(&chars, end);
        let noun = word_at(&chars, next);
        if let Some(v) = value
            && !percent
            && noun_gender(&noun) == Some(Gender::Feminine)
        {
            words = feminine_count(&words, v);
        }
        if negative {
            push(&mut out, "سالب ", src);
        }
        push(&mut out, &words, src);
        let mut end = end;
        if percent {
            push(&mut out, " بالمئة", src);
            end += 1;
        } else if aed_at(&chars, next) {
            out.push((' ', None));
            push(&mut out, currency(true, value), mapped[next].1);
            end = next + 3;
        }
        i = end;
    }
    out
}

/// The numeric token at `start` in words (Arabic words when `arabic`, else as written), where
/// it ends, and its value when it is a plain whole number.
fn number_here(chars: &[char], start: usize, arabic: bool) -> (String, usize, Option<u64>) {
    // The whole token: digits with inner . , : and spaces inside phone numbers.
    let mut end = start + 1;
    while end < chars.len()
        && (chars[end].is_ascii_digit() || (matches!(chars[end], '.' | ',' | ':' | '-' | '/') && chars.get(end + 1).is_some_and(char::is_ascii_digit)))
    {
        end += 1;
    }
    let token: String = chars[start..end].iter().collect();
    let value = token.replace(',', "").parse::<u64>().ok().filter(|_| !token.starts_with('0') || token.len() == 1);
    let spoken = if arabic { arabic_token(&token) } else { token };
    (spoken, end, value)
}

/// The currency after an amount: دراهم after 3–10, درهمًا after 11–99 (and what ends in them).
fn currency(arabic: bool, value: Option<u64>) -> &'static str {
    match (arabic, value) {
        (false, Some(1)) => "dirham",
        (false, _) => "dirhams",
        (true, Some(v)) if (3..=10).contains(&(v % 100)) && v < 100 => "دراهم",
        (true, Some(v)) if (11..=99).contains(&(v % 100)) => "درهمًا",
        (true, _) => "درهم",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gender {
    Masculine,
    Feminine,
}

/// The grammatical gender of a counted noun's singular, where the word tells it: plurals in
/// ـات of a feminine singular and the common broken plurals of feminine nouns; singulars in
/// ة. Masculine nouns with an ـات plural (طلبات، ملفات) are listed.
fn noun_gender(word: &str) -> Option<Gender> {
    const MASCULINE_AT: [&str; 14] =
        ["طلبات", "ملفات", "مستندات", "اختبارات", "امتحانات", "حسابات", "اجتماعات", "تطبيقات", "مستويات", "مشروعات", "إجراءات", "اشتراكات", "تصاريح", "حمامات"];
    const FEMININE_BROKEN: [&str; 10] = ["دقائق", "صور", "نسخ", "سنين", "ليال", "غرف", "مرات", "ساعات", "سنوات", "بطاقات"];
    const MASCULINE: [&str; 14] = ["أيام", "كتب", "دراهم", "درهم", "أسابيع", "أشهر", "شهور", "أعوام", "رجال", "طلاب", "مكاتب", "أطفال", "أشخاص", "موظفين"];
    let word: String = word.chars().filter(|c| !matches!(c, '\u{064B}'..='\u{0652}')).collect();
    let bare = word.strip_prefix("ال").unwrap_or(&word);
    if MASCULINE_AT.contains(&bare) || MASCULINE.contains(&bare) {
        return Some(Gender::Masculine);
    }
    if FEMININE_BROKEN.contains(&bare) || (bare.ends_with("ات") && bare.chars().count() > 3) || bare.ends_with('ة') || bare.ends_with("ةً") {
        return Some(Gender::Feminine);
    }
    None
}

/// A cardinal's words made to count a feminine noun: the units 3–9 and 10 lose their ة, one and
/// two become إحدى/اثنتا(ن) in compounds, and عشر of 11–19 takes ة (ثلاث سيارات، ثلاث عشرة
/// سيارة، ثلاث وعشرون سيارة). Hundreds and thousands do not change.
fn feminine_count(words: &str, value: u64) -> String {
    let rest = value % 100;
    if rest < 3 {
        return words.to_string();
    }
    let unit_f = |w: &str| -> Option<&'static str> {
        Some(match w {
            "ثلاثة" => "ثلاث",
            "أربعة" => "أربع",
            "خمسة" => "خمس",
            "ستة" => "ست",
            "سبعة" => "سبع",
            "ثمانية" => "ثماني",
            "تسعة" => "تسع",
            _ => return None,
        })
    };
    // Only the last group (below a hundred) changes: it is the end of the words (the tens and
    // hundreds are joined by و, the teens by a space).
    let mut parts: Vec<String> = words.split(' ').map(String::from).collect();
    let n = parts.len();
    let mut change = |k: usize, f: &dyn Fn(&str) -> Option<&'static str>| {
        let joined = k > 0 && parts[k] != "واحد" && parts[k].chars().count() > 2 && parts[k].starts_with('و');
        let (prefix, word) = if joined { ("و", parts[k].strip_prefix('و').unwrap_or(&parts[k]).to_string()) } else { ("", parts[k].clone()) };
        if let Some(new) = f(&word) {
            parts[k] = format!("{prefix}{new}");
        }
    };
    match rest {
        3..=9 => change(n - 1, &unit_f),
        10 => change(n - 1, &|w| (w == "عشرة").then_some("عشر")),
        11..=19 if n >= 2 => {
            change(n - 1, &|_| Some("عشرة"));
            change(n - 2, &|w| match w {
                "أحد" => Some("إحدى"),
                "اثنا" => Some("اثنتا"),
                u => unit_f(u),
            });
        }
        21..=99 if !rest.is_multiple_of(10) && n >= 2 => change(n - 2, &|w| match w {
            "واحد" => Some("إحدى"),
            "اثنان" => Some("اثنتان"),
            u => unit_f(u),
        }),
        _ => {}
    }
    parts.join(" ")
}

/// One numeric token in Arabic words.
fn arabic_token(token: &str) -> String {
    if let Some(date) = date_words(token) {
        return date;
    }
    // A range: "3-5 أيام" → «ثلاثة إلى خمسة أيام».
    if let Some((sa, sb)) = token.split_once('-')
        && !sa.starts_with('0')
        && !sb.starts_with('0')
        && let (Ok(a), Ok(b)) = (sa.parse::<u64>(), sb.parse::<u64>())
        && a < b
        && b < 10_000
        && (sa.len() == sb.len() || b <= 100)
    {
        return format!("{} إلى {}", cardinal(a), cardinal(b));
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

    #[test]
    fn numbers_agree_with_the_noun_they_count() {
        let cases = [
            ("عندي 3 سيارات", "عندي ثلاث سيارات"),
            ("اشتريت 5 كتب", "اشتريت خمسة كتب"),
            ("انتظر 10 دقائق", "انتظر عشر دقائق"),
            ("خلال 3 أيام", "خلال ثلاثة أيام"),
            ("أحضر 4 صور", "أحضر أربع صور"),
            ("مدة 8 ساعات", "مدة ثماني ساعات"),
            ("قدمت 3 طلبات", "قدمت ثلاثة طلبات"),
            ("خلال 13 دقيقة", "خلال ثلاث عشرة دقيقة"),
            ("خلال 11 ساعة", "خلال إحدى عشرة ساعة"),
            ("خلال 12 سنة", "خلال اثنتا عشرة سنة"),
            ("خلال 15 يوما", "خلال خمسة عشر يوما"),
            ("لدينا 23 سيارة", "لدينا ثلاث وعشرون سيارة"),
            ("لدينا 21 سيارة", "لدينا إحدى وعشرون سيارة"),
            ("لدينا 103 سيارات", "لدينا مئة وثلاث سيارات"),
            ("لدينا 120 سيارة", "لدينا مئة وعشرون سيارة"),
            ("الرسوم 250 درهماً", "الرسوم مئتان وخمسون درهماً"),
            ("في 7 مكاتب", "في سبعة مكاتب"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize_for_speech(input), expected, "{input}");
        }
    }

    #[test]
    fn minus_signs_and_aed_are_said() {
        let cases = [
            ("الرصيد -150 درهم", "الرصيد سالب مئة وخمسون درهم"),
            ("الرسوم 150 AED", "الرسوم مئة وخمسون درهمًا"),
            ("الرسوم AED 5 فقط", "الرسوم خمسة دراهم فقط"),
            ("الرسوم AED 100", "الرسوم مئة درهم"),
            ("The fee is AED 150.", "The fee is 150 dirhams."),
            ("It costs 150 AED today", "It costs 150 dirhams today"),
            ("Only 1 AED", "Only 1 dirham"),
            ("Prices in AED", "Prices in dirhams"),
            ("Emirates ID 2026-2027 فترة", "Emirates ID 2026-2027 فترة"),
            ("من 3-5 أيام", "من ثلاثة إلى خمسة أيام"),
            // A fully diacritised answer (what the persona asks the LLM for).
            ("الرُّسُومُ 250 دِرْهَمًا", "الرُّسُومُ مئتان وخمسون دِرْهَمًا"),
            ("الرَّصِيدُ -150 دِرْهَمٍ", "الرَّصِيدُ سالب مئة وخمسون دِرْهَمٍ"),
            ("فِي السَّاعَةِ 3:30", "فِي السَّاعَةِ الثالثة والنصف"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize_for_speech(input), expected, "{input}");
        }
    }

    #[test]
    fn every_spoken_word_knows_the_word_written() {
        let n = normalize("الرسوم 250 درهماً لـ **الـ** Emirates ID، موعدك 3:30 فقط");
        let pairs: Vec<(String, String)> = n.words().into_iter().map(|(s, k)| (s, k.map(|k| n.written[k].clone()).unwrap_or_default())).collect();
        let expected = [
            ("الرسوم", "الرسوم"),
            ("مئتان", "250"),
            ("وخمسون", "250"),
            ("درهماً", "درهماً"),
            ("ل", "لـ"),
            ("ال", "الـ"),
            ("Emirates", "Emirates"),
            ("ID،", "ID،"),
            ("موعدك", "موعدك"),
            ("الساعة", "3:30"),
            ("الثالثة", "3:30"),
            ("والنصف", "3:30"),
            ("فقط", "فقط"),
        ];
        let expected: Vec<(String, String)> = expected.iter().map(|(a, b)| ((*a).to_string(), (*b).to_string())).collect();
        assert_eq!(pairs, expected);
    }
}
