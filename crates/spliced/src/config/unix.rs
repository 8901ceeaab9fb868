//! `unix_mode`: the permission bits of a Unix listener's socket file,
//! written as an octal string (`"0660"`, `"660"`), as `chmod` takes them.
//! (`unix_owner` and `unix_group` are names or ids, looked up at bind:
//! [`crate::unix_socket`].)

use std::fmt;

use serde::de::{self, Deserialize, Deserializer};

/// Permission bits of a socket file (at most `0o777`: no setuid, setgid
/// or sticky bit, which mean nothing on a socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnixMode(pub(crate) u32);

impl fmt::Display for UnixMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

/// Parses an octal mode, `"0660"` or `"660"` (a flag's value, or the
/// file's string).
///
/// # Errors
/// A message naming the text: not octal, or above `0777`.
pub(crate) fn parse(text: &str) -> Result<UnixMode, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "`{}` is not an octal mode from 0000 to 0777 (e.g. \"0660\")",
            text.escape_debug()
        )
    };
    if t.is_empty() || t.len() > 4 {
        return Err(bad());
    }
    match u32::from_str_radix(t, 8) {
        Ok(m) if m <= 0o777 => Ok(UnixMode(m)),
        _ => Err(bad()),
    }
}

impl<'de> Deserialize<'de> for UnixMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(de::Error::custom)
    }
}

impl super::table::Shown for UnixMode {
    fn shown(&self) -> Option<String> {
        Some(self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_modes() {
        assert_eq!(parse("0660").unwrap(), UnixMode(0o660));
        assert_eq!(parse("600").unwrap(), UnixMode(0o600));
        assert_eq!(parse("0").unwrap(), UnixMode(0));
        assert_eq!(UnixMode(0o660).to_string(), "0660");
        for bad in ["", "0888", "1777", "rw-rw----", "0o660", "-600", "07777"] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("octal"), "{bad}: {e}");
        }
    }
}
