//! Command-line parsing, by hand: long options (`--x value`, `--x=value`), short flags
//! (`-q`), `--` to end the options, and positional arguments anywhere.

use crate::CliError;

/// An option a command accepts.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    /// The long name, without the dashes.
    pub long: &'static str,
    /// A one-letter alias.
    pub short: Option<char>,
    /// The value's name in the help (`SIZE`), or `None` for a flag.
    pub value: Option<&'static str>,
    /// One line for the help.
    pub help: &'static str,
}

/// The `-h`/`--help` flag every command accepts.
pub const HELP: OptionSpec = OptionSpec {
    long: "help",
    short: Some('h'),
    value: None,
    help: "print this help and exit",
};

/// A command line parsed against a command's options.
#[derive(Debug, Default)]
pub struct Parsed {
    options: Vec<(&'static str, Option<String>)>,
    positionals: Vec<String>,
}

impl Parsed {
    /// Whether the flag (or option) was given.
    pub fn flag(&self, long: &str) -> bool {
        self.options.iter().any(|(name, _)| *name == long)
    }

    /// The value of an option; the last one wins when it is repeated.
    pub fn value(&self, long: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(name, _)| *name == long)
            .and_then(|(_, value)| value.as_deref())
    }

    /// The positional arguments, which must be the `required` ones, then at most the
    /// `optional` ones (names for messages).
    pub fn positionals(
        &self,
        command: &'static str,
        required: &[&str],
        optional: &[&str],
    ) -> Result<&[String], CliError> {
        let given = self.positionals.len();
        if given < required.len() {
            return Err(CliError::usage(
                command,
                format!("missing argument {}", required[given]),
            ));
        }
        if given > required.len() + optional.len() {
            let extra = &self.positionals[required.len() + optional.len()];
            return Err(CliError::usage(
                command,
                format!("unexpected argument '{extra}'"),
            ));
        }
        Ok(&self.positionals)
    }
}

/// Parses `args` (the words after the command name) against `specs`.
pub fn parse(
    command: &'static str,
    specs: &[OptionSpec],
    args: &[String],
) -> Result<Parsed, CliError> {
    let mut parsed = Parsed::default();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        if word == "--" {
            parsed.positionals.extend(words.by_ref().cloned());
        } else if let Some(long) = word.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (long, None),
            };
            let spec = find(specs, |s| s.long == name)
                .ok_or_else(|| CliError::usage(command, format!("unknown option '--{name}'")))?;
            let value = take_value(command, spec, inline, &mut words)?;
            parsed.options.push((spec.long, value));
        } else if word.len() > 1 && word.starts_with('-') && !is_negative_number(word) {
            // Short options may be grouped (`-qp`); one taking a value must come last and
            // takes the next word (`-bVALUE` is not supported).
            let letters: Vec<char> = word[1..].chars().collect();
            for (i, letter) in letters.iter().enumerate() {
                let spec = find(specs, |s| s.short == Some(*letter)).ok_or_else(|| {
                    CliError::usage(command, format!("unknown option '-{letter}'"))
                })?;
                if spec.value.is_some() && i + 1 < letters.len() {
                    return Err(CliError::usage(
                        command,
                        format!("option '-{letter}' needs a value and must come last in '{word}'"),
                    ));
                }
                let value = take_value(command, spec, None, &mut words)?;
                parsed.options.push((spec.long, value));
            }
        } else {
            // `-` alone is a positional (a file named so), as are `-1M` and all other words.
            parsed.positionals.push(word.clone());
        }
    }
    Ok(parsed)
}

/// `-1M` (a size relative to the current one, for `resize`) is an argument: no option is
/// a digit.
fn is_negative_number(word: &str) -> bool {
    word[1..].starts_with(|c: char| c.is_ascii_digit())
}

fn find(specs: &[OptionSpec], matches: impl Fn(&OptionSpec) -> bool) -> Option<&OptionSpec> {
    specs
        .iter()
        .chain(std::iter::once(&HELP))
        .find(|s| matches(s))
}

/// The value of `spec`: given inline (`--x=v`) or the next word; a flag takes none.
fn take_value<'a>(
    command: &'static str,
    spec: &OptionSpec,
    inline: Option<String>,
    words: &mut impl Iterator<Item = &'a String>,
) -> Result<Option<String>, CliError> {
    match (spec.value, inline) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(CliError::usage(
            command,
            format!("option '--{}' takes no value", spec.long),
        )),
        (Some(_), Some(value)) => Ok(Some(value)),
        (Some(name), None) => words.next().cloned().map(Some).ok_or_else(|| {
            CliError::usage(
                command,
                format!("option '--{}' needs a value {name}", spec.long),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[OptionSpec] = &[
        OptionSpec {
            long: "json",
            short: None,
            value: None,
            help: "",
        },
        OptionSpec {
            long: "type",
            short: Some('t'),
            value: Some("TYPE"),
            help: "",
        },
        OptionSpec {
            long: "quiet",
            short: Some('q'),
            value: None,
            help: "",
        },
    ];

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn long_short_inline_and_end_of_options() {
        let p = parse(
            "x",
            SPECS,
            &words(&[
                "a",
                "--type",
                "fixed",
                "--json",
                "-q",
                "--type=dynamic",
                "--",
                "--json",
                "-",
            ]),
        )
        .unwrap();
        assert!(p.flag("json") && p.flag("quiet") && !p.flag("help"));
        assert_eq!(p.value("type"), Some("dynamic"));
        assert_eq!(
            p.positionals("x", &["A"], &["B", "C", "D"]).unwrap(),
            ["a", "--json", "-"]
        );
    }

    #[test]
    fn refuses_unknown_options_and_missing_values() {
        let message = |list: &[&str]| parse("x", SPECS, &words(list)).unwrap_err().to_string();
        assert!(message(&["--nope"]).contains("unknown option '--nope'"));
        assert!(message(&["-z"]).contains("unknown option '-z'"));
        assert!(message(&["--type"]).contains("needs a value TYPE"));
        assert!(message(&["--json=1"]).contains("takes no value"));
        assert!(message(&["-tq", "x"]).contains("must come last"));
    }

    #[test]
    fn counts_positionals() {
        let p = parse("x", SPECS, &words(&["a", "b", "c"])).unwrap();
        let err = p.positionals("x", &["FILE"], &["SIZE"]).unwrap_err();
        assert!(err.to_string().contains("unexpected argument 'c'"));
        let p = parse("x", SPECS, &words(&[])).unwrap();
        let err = p.positionals("x", &["FILE"], &[]).unwrap_err();
        assert!(err.to_string().contains("missing argument FILE"));
    }
}
