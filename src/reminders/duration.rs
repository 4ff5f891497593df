//! Reminder offsets as ISO 8601 durations: weeks, days, hours, minutes and seconds
//! (`P1W`, `P1D`, `PT1H`, `P1DT12H`). Years and months are refused: their length depends
//! on the calendar.

/// The offset in seconds, or why it is not one.
pub fn parse(raw: &str) -> Result<i64, &'static str> {
    const HINT: &str =
        "Enter a duration in weeks, days, hours, minutes or seconds, e.g. \"P1D\" or \"PT1H\".";
    let s = raw.trim().to_ascii_uppercase();
    let rest = s.strip_prefix('P').ok_or(HINT)?;
    if rest.is_empty() || rest == "T" {
        return Err(HINT);
    }
    let (date_part, time_part) = match rest.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return Err(HINT),
        None => (rest, None),
    };
    let mut total: i64 = 0;
    let mut add = |part: &str, units: &[(char, i64)]| -> Result<(), &'static str> {
        let mut number = String::new();
        let mut next_unit = 0;
        for c in part.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            // Each unit at most once, largest first.
            let Some(i) = units[next_unit..].iter().position(|(u, _)| *u == c) else {
                return Err(HINT);
            };
            if number.is_empty() || number.len() > 7 {
                return Err(HINT);
            }
            let n: i64 = number.parse().map_err(|_| HINT)?;
            total = total.saturating_add(n.saturating_mul(units[next_unit + i].1));
            next_unit += i + 1;
            number.clear();
        }
        if number.is_empty() { Ok(()) } else { Err(HINT) }
    };
    add(date_part, &[('W', 7 * 86_400), ('D', 86_400)])?;
    if let Some(t) = time_part {
        add(t, &[('H', 3_600), ('M', 60), ('S', 1)])?;
    }
    Ok(total)
}

/// The canonical form: days, then hours, minutes and seconds (`P1DT2H`, `PT30M`).
pub fn format(seconds: i64) -> String {
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (h, m, s) = (rest / 3_600, rest % 3_600 / 60, rest % 60);
    let mut out = String::from("P");
    if days > 0 {
        out.push_str(&format!("{days}D"));
    }
    if rest > 0 {
        out.push('T');
        for (n, unit) in [(h, 'H'), (m, 'M'), (s, 'S')] {
            if n > 0 {
                out.push_str(&format!("{n}{unit}"));
            }
        }
    }
    out
}

/// In words, for a mail subject: "1 day", "2 hours 30 minutes".
pub fn describe(seconds: i64) -> String {
    let parts = [
        (seconds / 86_400, "day"),
        (seconds % 86_400 / 3_600, "hour"),
        (seconds % 3_600 / 60, "minute"),
        (seconds % 60, "second"),
    ];
    let words: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n} {unit}{}", if *n == 1 { "" } else { "s" }))
        .collect();
    if words.is_empty() {
        "no time".into()
    } else {
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for (raw, seconds, canonical) in [
            ("P1D", 86_400, "P1D"),
            ("PT1H", 3_600, "PT1H"),
            ("pt90m", 5_400, "PT1H30M"),
            ("P1W", 604_800, "P7D"),
            ("P1DT12H", 129_600, "P1DT12H"),
            ("PT45S", 45, "PT45S"),
        ] {
            assert_eq!(parse(raw), Ok(seconds), "{raw}");
            assert_eq!(format(seconds), canonical);
        }
    }

    #[test]
    fn described_in_words() {
        assert_eq!(describe(86_400), "1 day");
        assert_eq!(describe(9_000), "2 hours 30 minutes");
    }

    #[test]
    fn calendar_units_and_junk_are_refused() {
        for raw in [
            "P1Y", "P1M", "1D", "P", "PT", "P1DT", "PT1H1H", "PTH", "P-1D", "PT1.5H", "P1D2W", "",
        ] {
            assert!(parse(raw).is_err(), "{raw} accepted");
        }
    }
}
