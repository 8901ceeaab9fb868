//! The checks of single values: those the tables name for their settings
//! ([`super::table`]: `fn(&T) -> Result<(), String>`), and those of names
//! (SNI patterns, listener names, user names). Each message says what is
//! wrong; the caller says where.

use super::units::DurationValue;

/// No check.
#[allow(clippy::unnecessary_wraps)]
pub(crate) fn any<T>(_: &T) -> Result<(), String> {
    Ok(())
}

/// A string that is not empty (a path).
#[allow(clippy::ptr_arg)] // the tables' checks take `&T`
pub(crate) fn not_empty(s: &String) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty (a path, or `-` for stdout)".to_owned());
    }
    Ok(())
}

/// A name that is not empty (a user or group).
#[allow(clippy::ptr_arg)] // the tables' checks take `&T`
pub(crate) fn not_blank(s: &String) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err("must not be empty (a name or a numeric id)".to_owned());
    }
    Ok(())
}

/// A count of at least 1.
pub(crate) fn at_least_one(n: &usize) -> Result<(), String> {
    if *n == 0 {
        return Err("must be at least 1".to_owned());
    }
    Ok(())
}

/// A pool size of at least 1 pipe.
pub(crate) fn at_least_one_pipe(n: &usize) -> Result<(), String> {
    if *n == 0 {
        return Err(
            "must be at least 1 (use copy = \"userspace\" to turn splicing off)".to_owned(),
        );
    }
    Ok(())
}

/// A text with `\r \n \t \\ \xNN` escapes, not empty.
#[allow(clippy::ptr_arg)] // the table's checks take `&T`, here `&String`
pub(crate) fn escapes(text: &String) -> Result<(), String> {
    crate::upstream::decode_escapes(text).map(|_| ())
}

/// A duration that is not zero.
pub(crate) fn longer_than_zero(d: &DurationValue) -> Result<(), String> {
    if d.0.is_zero() {
        return Err("must be longer than zero".to_owned());
    }
    Ok(())
}

/// A `TCP_USER_TIMEOUT`: whole milliseconds up to `u32::MAX` ms (the
/// kernel's unit); 0 is off.
pub(crate) fn user_timeout(d: &DurationValue) -> Result<(), String> {
    let whole_ms = u32::try_from(d.0.as_millis())
        .is_ok_and(|ms| std::time::Duration::from_millis(u64::from(ms)) == d.0);
    if !whole_ms {
        return Err(format!(
            "must be whole milliseconds, at most {}ms (the kernel's unit and bound)",
            u32::MAX
        ));
    }
    Ok(())
}

/// Checks an SNI route's name: a DNS name, or `*.` and one; returned in
/// lower case.
pub(super) fn check_sni(s: &str) -> Result<String, String> {
    let name = s.trim().to_ascii_lowercase();
    let host = name.strip_prefix("*.").unwrap_or(&name);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(format!(
            "`{s}` is not a server name or `*.suffix` (e.g. api.example.com or *.example.com)"
        ));
    }
    Ok(name)
}

/// Checks a `user` name as far as can be without looking it up (the
/// caller does: [`Given::error`] reports an unknown one here).
pub(super) fn check_user_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the user name is empty".into());
    }
    if name.contains('\0') {
        return Err(format!("`{}` is not a user name", name.escape_debug()));
    }
    Ok(())
}

/// Checks a listener name: a metric label value and a log field, so no
/// control character (newline...), quote or backslash, and at most 128
/// characters.
pub(super) fn check_label(name: &str) -> Result<(), String> {
    if let Some(c) = name
        .chars()
        .find(|c| c.is_control() || matches!(c, '"' | '\\'))
    {
        return Err(format!(
            "`{}` holds {:?}: no quote, backslash or control character (it is a metric label)",
            name.escape_debug(),
            c
        ));
    }
    if name.chars().count() > 128 {
        return Err("longer than 128 characters".to_owned());
    }
    Ok(())
}
