//! Redaction of personal data from log lines: phone numbers, Emirates ID-like numbers and
//! e-mail addresses, in Western and Arabic-Indic digits alike. Applied to every line hiwar
//! logs, whatever wrote it, before it reaches a file or the journal.

/// A digit in any script people type or whisper writes: 0-9, ٠-٩ (Arabic-Indic), ۰-۹ (Eastern).
fn digit(c: char) -> bool {
    c.is_ascii_digit() || ('\u{660}'..='\u{669}').contains(&c) || ('\u{6F0}'..='\u{6F9}').contains(&c)
}

fn digit_value(c: char) -> u32 {
    match c {
        '0'..='9' => c as u32 - '0' as u32,
        '\u{660}'..='\u{669}' => c as u32 - 0x660,
        _ => c as u32 - 0x6F0,
    }
}

/// What may sit between the digits of one number as people write it.
fn joiner(c: char) -> bool {
    matches!(c, ' ' | '-' | '(' | ')' | '\u{a0}')
}

fn email_local(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-')
}

fn email_domain(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '-')
}

/// `line` with personal data replaced by `[phone]`, `[emirates-id]` and `[email]`. Numbers of
/// nine digits or more count as phone numbers (not the decimals of a measurement, as in
/// `took_ms=78.123456789`); fifteen starting 784 as an Emirates ID.
pub fn redact(line: &str) -> std::borrow::Cow<'_, str> {
    let chars: Vec<char> = line.chars().collect();
    if !chars.iter().any(|c| digit(*c) || *c == '@') {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '@' {
            // Back over the local part already copied, forward over the domain.
            let local = chars[..i].iter().rev().take_while(|c| email_local(**c)).count();
            let mut end = i + 1;
            while end < chars.len() && email_domain(chars[end]) {
                end += 1;
            }
            let domain: String = chars[i + 1..end].iter().collect();
            let domain = domain.trim_end_matches('.');
            if local > 0 && domain.contains('.') && !domain.starts_with('.') {
                for _ in 0..local {
                    out.pop();
                }
                out.push_str("[email]");
                i += 1 + domain.chars().count();
                continue;
            }
        }
        if digit(c) || (c == '+' && chars.get(i + 1).copied().is_some_and(digit)) {
            // A number as people write it: digits with single joiners between them.
            let mut end = i + usize::from(c == '+');
            let mut digits = Vec::new();
            loop {
                while end < chars.len() && digit(chars[end]) {
                    digits.push(digit_value(chars[end]));
                    end += 1;
                }
                let mut j = end;
                while j < chars.len() && joiner(chars[j]) && j - end < 2 {
                    j += 1;
                }
                if j > end && j < chars.len() && digit(chars[j]) {
                    end = j;
                } else {
                    break;
                }
            }
            // Part of a word or a hash (a1b2…), not a number someone said.
            let letter = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric() && !digit(*c));
            let glued_to_word = (i > 0 && letter(chars.get(i - 1))) || letter(chars.get(end));
            // The decimals of a measurement (0.981622934, took_ms=78.123456789), not a number
            // someone said: '.' joins no phone number here, so digits after "7." are a fraction.
            let fraction = i >= 2 && chars[i - 1] == '.' && digit(chars[i - 2]);
            if digits.len() >= 9 && !glued_to_word && !fraction {
                let id = digits.len() == 15 && digits[..3] == [7, 8, 4];
                out.push_str(if id { "[emirates-id]" } else { "[phone]" });
                i = end;
                continue;
            }
            out.extend(&chars[i..end.max(i + 1)]);
            i = end.max(i + 1);
            continue;
        }
        out.push(c);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn phone_numbers_in_every_way_people_write_them_are_hidden() {
        for (line, want) in [
            ("رقمي 0501234567 من فضلك", "رقمي [phone] من فضلك"),
            ("call +971 50 123 4567 now", "call [phone] now"),
            ("call (04) 123-4567", "call ([phone]"),
            ("رقمي ٠٥٠١٢٣٤٥٦٧", "رقمي [phone]"),
            ("رقمي ۰۵۰۱۲۳۴۵۶۷.", "رقمي [phone]."),
            ("tel:+97142345678", "tel:[phone]"),
        ] {
            assert_eq!(redact(line), want, "{line}");
        }
    }

    #[test]
    fn the_decimals_of_a_measurement_are_not_a_phone_number() {
        for line in ["end of turn judged complete=Some(0.981622934) took_ms=78.123456789", "p 0.123456789, 12.3456789012 s"] {
            assert_eq!(redact(line), line);
        }
        // A number said after a decimal is still hidden.
        assert_eq!(redact("0.5 then 0501234567"), "0.5 then [phone]");
    }

    #[test]
    fn an_emirates_id_is_named_as_one() {
        assert_eq!(redact("الهوية 784-1985-1234567-1 ضاعت"), "الهوية [emirates-id] ضاعت");
        assert_eq!(redact("id 784198512345671"), "id [emirates-id]");
        assert_eq!(redact("الهوية ٧٨٤١٩٨٥١٢٣٤٥٦٧١"), "الهوية [emirates-id]");
    }

    #[test]
    fn emails_are_hidden_and_at_signs_alone_are_not() {
        assert_eq!(redact("write to sara.k+hiwar@example.ae please"), "write to [email] please");
        assert_eq!(redact("بريدي: ali_99@mail.gov.ae."), "بريدي: [email].");
        assert_eq!(redact("meet @ 5 pm"), "meet @ 5 pm");
        assert_eq!(redact("user@localhost"), "user@localhost");
    }

    #[test]
    fn what_operators_need_in_logs_survives() {
        for line in [
            "2026-12-01T13:47:39.123456Z  INFO hiwar: turn 12 answered in 642 ms",
            "{\"ts\":\"2026-12-01T13:47:39.123Z\",\"level\":\"INFO\",\"message\":\"rss 362 MB, 35 fds\"}",
            "HTTP 429 from http://127.0.0.1:38211/v1/chat/completions",
            "model ggml-base-q5_1.bin sha256 9f3c1a22",
            "audible_after 1234567 frames",
            "llm at http://10.100.200.150:8000/v1",
            "sha256 e3b0c44298fc1c149afbf4c8996fb924 123456789abcdef0",
        ] {
            assert_eq!(redact(line), line);
        }
    }
}
