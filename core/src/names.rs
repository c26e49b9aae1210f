//! The names of image types and formats ("fixed", "raw", "vhd"…) as options, the command
//! line and messages spell them: each type's names are listed once, beside its
//! `FromStr`/`Display`, and parsed here, so that the binding and the command line accept
//! the same words and say the same thing about the others.

use std::fmt;

/// A name that is none of the expected ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// What was given.
    pub received: String,
    /// The names that are accepted (aliases not listed).
    pub expected: Vec<&'static str>,
}

impl UnknownName {
    /// "expected 'raw', 'fixed' or 'dynamic'".
    pub fn expectation(&self) -> String {
        let quoted: Vec<String> = self.expected.iter().map(|n| format!("'{n}'")).collect();
        match quoted.split_last() {
            Some((last, [])) => format!("expected {last}"),
            Some((last, rest)) => format!("expected {} or {last}", rest.join(", ")),
            None => "expected nothing".to_string(),
        }
    }
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, received {:?}", self.expectation(), self.received)
    }
}

impl std::error::Error for UnknownName {}

/// The value that `value` names (exact, lower-case words), or an error listing the names.
pub(crate) fn parse<T: Named>(value: &str) -> Result<T, UnknownName> {
    T::NAMES
        .iter()
        .find(|(name, _)| *name == value)
        .map(|&(_, v)| v)
        .ok_or_else(|| UnknownName {
            received: value.to_string(),
            expected: T::names(),
        })
}

/// The first name of `value` in `names` (its own name; aliases come after it).
pub(crate) fn name_of<T: PartialEq>(value: &T, names: &[(&'static str, T)]) -> &'static str {
    names
        .iter()
        .find(|(_, v)| v == value)
        .map(|&(name, _)| name)
        .expect("every value is named")
}

/// A type whose values have names (its [`FromStr`](std::str::FromStr) and `Display`).
pub trait Named: Sized + Copy + PartialEq + 'static {
    /// Every accepted name with its value; a value's first name is its own, later ones are
    /// aliases.
    const NAMES: &'static [(&'static str, Self)];

    /// The values' own names, in order, without aliases: what messages list and what the
    /// binding hands to JavaScript (`names()`), so that no other layer keeps its own list.
    fn names() -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|&&(name, value)| name_of(&value, Self::NAMES) == name)
            .map(|&(name, _)| name)
            .collect()
    }
}

/// `FromStr` and `Display` for `$type` from its table of names (and [`Named`]).
macro_rules! named {
    ($type:ty, $names:expr) => {
        impl $crate::names::Named for $type {
            const NAMES: &'static [(&'static str, $type)] = &$names;
        }

        impl std::str::FromStr for $type {
            type Err = $crate::names::UnknownName;
            fn from_str(value: &str) -> Result<$type, Self::Err> {
                $crate::names::parse::<$type>(value)
            }
        }

        impl std::fmt::Display for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($crate::names::name_of(
                    self,
                    <$type as $crate::names::Named>::NAMES,
                ))
            }
        }
    };
}
pub(crate) use named;

named!(
    crate::FooterSource,
    [
        ("end", crate::FooterSource::End),
        ("end511", crate::FooterSource::End511),
        ("copy", crate::FooterSource::Copy),
    ]
);

#[cfg(test)]
mod tests {
    use crate::ops::{OutputFormat, SourceFormat};
    use crate::DiskType;

    #[test]
    fn every_name_parses_back_and_others_are_refused_with_the_list() {
        for t in [DiskType::Fixed, DiskType::Dynamic, DiskType::Differencing] {
            assert_eq!(t.to_string().parse::<DiskType>(), Ok(t));
        }
        for f in [
            OutputFormat::Raw,
            OutputFormat::Fixed,
            OutputFormat::Dynamic,
        ] {
            assert_eq!(f.to_string().parse::<OutputFormat>(), Ok(f));
        }
        for f in [SourceFormat::Auto, SourceFormat::Raw, SourceFormat::Vhd] {
            assert_eq!(f.to_string().parse::<SourceFormat>(), Ok(f));
        }
        assert_eq!("vpc".parse::<SourceFormat>(), Ok(SourceFormat::Vhd));
        for s in [
            crate::FooterSource::End,
            crate::FooterSource::End511,
            crate::FooterSource::Copy,
        ] {
            assert_eq!(s.to_string().parse::<crate::FooterSource>(), Ok(s));
        }
        assert_eq!(crate::FooterSource::End511.to_string(), "end511");
        let e = "qcow2".parse::<OutputFormat>().unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"expected 'raw', 'fixed' or 'dynamic', received "qcow2""#
        );
        assert!("Fixed".parse::<DiskType>().is_err(), "names are lower case");
    }
}
