//! Sizes on the command line (`64M`, `10G`, `512`) and in output (`64 MiB`).

/// Parses a size: a whole number of bytes, optionally followed by a unit `K`, `M`, `G` or
/// `T` (powers of 1024, any case) and an optional `B` or `iB` (`64M`, `64MiB`, `64mb`).
/// A plain `B` suffix means bytes. Garbage, fractions, negative numbers and values that do
/// not fit in 64 bits are refused with a message saying why.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!(
            "invalid size '{text}': expected a number of bytes, optionally with a suffix K, M, G or T"
        ));
    }
    let shift = match unit_shift(suffix) {
        Some(shift) => shift,
        None => {
            return Err(format!(
            "invalid size '{text}': unknown suffix '{suffix}' (use K, M, G or T, powers of 1024)"
        ))
        }
    };
    let too_large = || format!("invalid size '{text}': too large");
    let number: u64 = digits.parse().map_err(|_| too_large())?;
    number.checked_mul(1u64 << shift).ok_or_else(too_large)
}

/// The power of two a suffix stands for, or `None` when it is not a unit.
fn unit_shift(suffix: &str) -> Option<u32> {
    let lower = suffix.to_ascii_lowercase();
    let (unit, rest) = match lower.chars().next() {
        None => return Some(0),
        Some('b') if lower.len() == 1 => return Some(0),
        Some(c) => (c, &lower[1..]),
    };
    if !matches!(rest, "" | "b" | "ib") {
        return None;
    }
    match unit {
        'k' => Some(10),
        'm' => Some(20),
        'g' => Some(30),
        't' => Some(40),
        _ => None,
    }
}

/// A size the way qemu-img prints one: at most three significant digits in the largest
/// unit that keeps the number at or above 1 (`64 MiB`, `1.5 GiB`, `512 B`, `5 MiB` for
/// 5 MiB + 512 bytes).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut unit = 0;
    while unit + 1 < UNITS.len() && bytes >= 1u64 << (10 * (unit + 1)) {
        unit += 1;
    }
    let value = bytes as f64 / (1u64 << (10 * unit)) as f64;
    let decimals = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{value:.decimals$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    format!("{text} {}", UNITS[unit])
}

/// `64 MiB (67108864 bytes)`, as qemu-img prints a virtual size.
pub fn size_with_bytes(bytes: u64) -> String {
    format!("{} ({bytes} bytes)", human_size(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_in_any_case() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64mb"), Ok(64 << 20));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
    }

    #[test]
    fn refuses_garbage_and_overflow() {
        for bad in [
            "", "M", "abc", "1.5G", "-1", "10X", "10MM", "10 M", "0x10", "10Bi", "10iB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_size("18446744073709551616")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_size("16777216T").unwrap_err().contains("too large"));
        assert_eq!(parse_size("16777215T"), Ok(16_777_215 << 40));
    }

    #[test]
    fn prints_like_qemu_img() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(64 << 20), "64 MiB");
        assert_eq!(human_size((5 << 20) + 512), "5 MiB");
        assert_eq!(human_size(3 << 29), "1.5 GiB");
        assert_eq!(human_size(4096), "4 KiB");
        assert_eq!(human_size(0), "0 B");
        assert_eq!(size_with_bytes(64 << 20), "64 MiB (67108864 bytes)");
    }
}
