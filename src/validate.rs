//! Validation of user input before any request is sent. Pure functions.

use std::time::Duration;

use crate::error::{Error, Result};

/// Longest module name: it becomes a Kubernetes object name and a registry path
/// component, so the DNS-1123 label rules apply.
const MAX_MODULE_NAME: usize = 63;
const MAX_TAG: usize = 128;

/// A module name: a DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63).
pub fn module_name(name: &str) -> Result<()> {
    let bytes = name.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= MAX_MODULE_NAME
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    if valid {
        Ok(())
    } else {
        Err(Error::usage(format!("invalid module name \"{}\"", crate::output::inline(name))).with_hint(
            "module names are lowercase letters, digits and '-', start and end with a letter or digit, at most 63 characters (e.g. hello-world)",
        ))
    }
}

/// An OCI tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn image_tag(tag: &str) -> Result<()> {
    let bytes = tag.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= MAX_TAG
        && bytes
            .first()
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(Error::usage(format!("invalid image tag \"{}\"", crate::output::inline(tag))).with_hint(
            "tags are letters, digits, '_', '.' and '-', start with a letter, digit or '_', at most 128 characters",
        ))
    }
}

/// A `scanInterval`: the CRD pattern `^(\d+h)?(\d+m)?(\d+s)?$`, but not empty and not
/// zero (the controller would never re-scan).
pub fn scan_interval(text: &str) -> Result<Duration> {
    let invalid = || {
        Error::usage(format!(
            "invalid scan interval \"{}\"",
            crate::output::inline(text)
        ))
        .with_hint(
            "use hours, minutes and seconds in that order, greater than zero: 15s, 1m, 1h30m",
        )
    };
    let mut rest = text;
    let mut total: u64 = 0;
    let mut last_unit = 0usize;
    for (index, unit) in ['h', 'm', 's'].into_iter().enumerate() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || rest.as_bytes().get(digits) != Some(&(unit as u8)) {
            continue;
        }
        let value: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        let seconds = match unit {
            'h' => value.checked_mul(3600),
            'm' => value.checked_mul(60),
            _ => Some(value),
        };
        total = seconds
            .and_then(|s| total.checked_add(s))
            .ok_or_else(invalid)?;
        rest = &rest[digits + 1..];
        last_unit = index + 1;
    }
    if text.is_empty() || !rest.is_empty() || last_unit == 0 || total == 0 {
        return Err(invalid());
    }
    Ok(Duration::from_secs(total))
}

/// A duration for our own flags (`--timeout`, `--request-timeout`): like
/// `scan_interval` but also accepts `ms`, and, when `allow_zero` (`--request-timeout`,
/// as kubectl), bare seconds and `0` for "no limit".
pub fn duration(text: &str, allow_zero: bool) -> Result<Duration> {
    let invalid = || {
        Error::usage(format!(
            "invalid duration \"{}\"",
            crate::output::inline(text)
        ))
        .with_hint("use a duration such as 30s, 2m or 1m30s")
    };
    if allow_zero && !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map(Duration::from_secs).map_err(|_| invalid());
    }
    if let Some(millis) = text.strip_suffix("ms") {
        let value: u64 = millis.parse().map_err(|_| invalid())?;
        if value == 0 && !allow_zero {
            return Err(invalid());
        }
        return Ok(Duration::from_millis(value));
    }
    match scan_interval(text) {
        Ok(duration) => Ok(duration),
        Err(_) if allow_zero && matches!(text, "0s" | "0m" | "0h") => Ok(Duration::ZERO),
        Err(_) => Err(invalid()),
    }
}

/// A byte size as kubectl writes quantities: `1048576`, `512Ki`, `64Mi`, `2Gi`, `1Ti`,
/// or decimal `500K`, `100M`, `1G`, `1T`. Zero is refused: a cap of nothing reads
/// nothing. (A clap value parser: errors become exit 2.)
pub fn byte_size(text: &str) -> std::result::Result<u64, String> {
    let invalid =
        || format!("{text:?} is not a size: use bytes or a quantity such as 512Ki, 64Mi, 2Gi");
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits.parse().map_err(|_| invalid())?;
    let multiplier: u64 = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "K" | "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        _ => return Err(invalid()),
    };
    match number.checked_mul(multiplier) {
        Some(0) => Err(format!("{text:?}: the size must be more than zero")),
        Some(bytes) => Ok(bytes),
        None => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(byte_size("512Mi"), Ok(512 << 20));
        assert_eq!(byte_size("2Gi"), Ok(2 << 30));
        assert_eq!(byte_size("100M"), Ok(100_000_000));
        assert_eq!(byte_size("4096"), Ok(4096));
        for bad in [
            "",
            "Mi",
            "1.5Gi",
            "-1",
            "0",
            "0Mi",
            "1MB",
            "99999999999Ti",
            " 1Mi",
        ] {
            assert!(byte_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn module_names() {
        for good in ["echo", "hello-world", "a", "m1", &"a".repeat(63)] {
            assert!(module_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Echo",
            "-echo",
            "echo-",
            "echo_1",
            "echo.x",
            "a/b",
            "ехо",
            &"a".repeat(64),
            "echo ",
        ] {
            assert!(module_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tags() {
        for good in [
            "main-patch-03354",
            "pr333",
            "v1.2.3",
            "_x",
            "A.b-c_d",
            &"a".repeat(128),
        ] {
            assert!(image_tag(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".v1",
            "-x",
            "a:b",
            "a/b",
            "a b",
            "sha256@x",
            &"a".repeat(129),
            "тег",
        ] {
            assert!(image_tag(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn intervals() {
        assert_eq!(scan_interval("15s").ok(), Some(Duration::from_secs(15)));
        assert_eq!(
            scan_interval("1h2m3s").ok(),
            Some(Duration::from_secs(3723))
        );
        assert_eq!(scan_interval("5m").ok(), Some(Duration::from_secs(300)));
        assert_eq!(scan_interval("1h0s").ok(), Some(Duration::from_secs(3600)));
        for bad in [
            "",
            "0s",
            "0h0m0s",
            "1.5s",
            "100ms",
            "-1s",
            "1s1m",
            "15",
            "s",
            "1d",
            " 1s",
            "99999999999999999999h",
        ] {
            assert!(scan_interval(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn duration_flags() {
        assert_eq!(
            duration("500ms", false).ok(),
            Some(Duration::from_millis(500))
        );
        assert_eq!(duration("2m", false).ok(), Some(Duration::from_secs(120)));
        assert_eq!(duration("0", true).ok(), Some(Duration::ZERO));
        assert!(duration("0", false).is_err());
        assert!(duration("abc", false).is_err());
    }
}

/// Any input, however hostile, gives a value or a usage error: never a panic.
#[cfg(test)]
mod hostile_input {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn validators_never_panic(text in any::<String>()) {
            let _ = super::module_name(&text);
            let _ = super::image_tag(&text);
            let _ = super::scan_interval(&text);
            let _ = super::duration(&text, true);
        }

        #[test]
        fn accepted_intervals_are_h_m_s_and_positive(text in "[0-9hms.-]{0,8}") {
            if super::scan_interval(&text).is_ok() {
                prop_assert!(!text.is_empty() && !text.contains('.') && !text.contains('-'));
            }
        }
    }
}
