//! The options several commands share (clap `Args` structs flattened into each command),
//! qemu-img's `-o KEY=VALUE,…` lists, and the one place where clap's parse errors become
//! this program's usage errors.

use crate::CliError;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::Args;
use std::path::{Path, PathBuf};
use vhd_core::{DiskType, Image, OpenOptions, ParentPath};

/// How to find, verify and lock an image's parents: every command that opens an image
/// flattens this struct, so each option has one spelling, one help line and one meaning
/// ([`OpenOptions`]).
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Chain and locking options")]
pub struct ChainArgs {
    /// Use PATH as the parent instead of the one the image's locators name; repeat for the
    /// grandparent and below (nearest first). Named parents are trusted, but their unique id
    /// must still be the one the child records
    #[arg(long = "parent", value_name = "PATH")]
    pub parents: Vec<PathBuf>,
    /// Use only parents found inside DIR (links and .. resolved); for untrusted images
    #[arg(long, value_name = "DIR")]
    pub parent_root: Option<PathBuf>,
    /// Accept a parent whose time stamp changed since the child was made (a copied parent)
    #[arg(long, alias = "ignore-timestamp")]
    pub ignore_parent_timestamp: bool,
    /// Windows: follow parent locators naming network paths (\\server\share)
    #[arg(long)]
    pub allow_remote_parents: bool,
    /// Take no lock on the image nor its parents (qemu-img's -U, --force-share)
    #[arg(short = 'U', long = "no-lock", visible_alias = "force-share")]
    pub no_lock: bool,
}

impl ChainArgs {
    /// The open options these flags say, with the defaults otherwise (read-write,
    /// checksums verified, locked). The one place a command gets them.
    pub fn open_options(&self) -> OpenOptions {
        self.open_options_with(&self.parents)
    }

    /// [`ChainArgs::open_options`] with `parents` as the named parents (nearest first):
    /// `create` and `rebase` take the first `--parent` as the new parent itself.
    pub fn open_options_with(&self, parents: &[PathBuf]) -> OpenOptions {
        OpenOptions {
            parents: parents.iter().cloned().map(ParentPath::Vhd).collect(),
            ignore_parent_timestamp: self.ignore_parent_timestamp,
            lock: !self.no_lock,
            parent_root: self.parent_root.clone(),
            allow_remote_parents: self.allow_remote_parents,
            ..OpenOptions::default()
        }
    }

    /// [`ChainArgs::open_options`] for opening an image only to read it (shared lock).
    pub fn read_only(&self) -> OpenOptions {
        OpenOptions {
            read_only: true,
            ..self.open_options()
        }
    }

    /// Opens the image at `path` read-only, as the command line says.
    pub fn open_read_only(&self, path: &Path) -> Result<Image, CliError> {
        Ok(Image::open(path, &self.read_only())?)
    }
}

/// `-f FMT`: qemu-img's input format. This program reads VHD only, so it is `vpc`
/// (qemu's name) or `vhd`; anything else is refused rather than misread.
#[derive(Args, Debug, Clone, Default)]
pub struct FormatArgs {
    /// The image format, as qemu-img names it: vpc (vhd is the same; no other is read)
    #[arg(short = 'f', long = "format", value_name = "FMT", value_parser = ["vpc", "vhd"])]
    pub format: Option<String>,
}

/// qemu-img's `-b`/`--backing` and `-F`/`--backing-format`, of `create` (the parent of the
/// new image, as `--parent`) and `rebase` (the new parent, as NEW_PARENT).
#[derive(Args, Debug, Clone, Default)]
pub struct BackingArgs {
    /// qemu-img's --backing: the parent (create: of the new image, as --parent; rebase: the
    /// new one, as NEW_PARENT)
    #[arg(short = 'b', long = "backing", value_name = "PARENT")]
    pub backing: Option<PathBuf>,
    /// qemu-img's --backing-format: the parent's format, vpc (the only one)
    #[arg(short = 'F', long = "backing-format", value_name = "FMT", value_parser = ["vpc", "vhd"])]
    pub backing_format: Option<String>,
}

/// `--partition N` of `cat`, `map` and `convert`: one partition of the disk instead of the
/// whole disk.
#[derive(Args, Debug, Clone, Default)]
pub struct PartitionArgs {
    /// Only partition N of the disk, by its number in 'vhd partitions' (MBR: 1-4 primary,
    /// 5 and up logical; GPT: the entry's slot)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub partition: Option<u32>,
}

/// `--json`, and qemu-img's `--output=json` / `--output json`.
#[derive(Args, Debug, Clone, Default)]
pub struct OutputArgs {
    /// Print JSON instead of text (the same as --output=json)
    #[arg(long)]
    json: bool,
    /// human (text, the default) or json, as qemu-img spells it
    #[arg(long, value_name = "FMT", value_parser = ["human", "json"])]
    output: Option<String>,
}

impl OutputArgs {
    /// Whether JSON was asked for.
    pub fn json(&self) -> bool {
        self.json || self.output.as_deref() == Some("json")
    }
}

/// qemu-img's `-o` options of its vpc driver that this program supports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VpcOptions {
    /// `subformat=fixed|dynamic`.
    pub subformat: Option<DiskType>,
    /// `size=SIZE` (create only), the text as given.
    pub size: Option<String>,
}

/// Parses qemu-img's `-o KEY=VALUE[,KEY=VALUE…]` (every `-o` given, in order) for the vpc
/// driver: `subformat` (fixed or dynamic), `force_size` (on: the size is used exactly,
/// which this program always does; off, qemu-img's rounding to a CHS geometry, is refused)
/// and, where `size_allowed`, `size`.
pub fn vpc_options(
    command: &'static str,
    lists: &[String],
    size_allowed: bool,
) -> Result<VpcOptions, CliError> {
    let mut options = VpcOptions::default();
    let keys = if size_allowed {
        "subformat, force_size and size"
    } else {
        "subformat and force_size"
    };
    for item in lists.iter().flat_map(|list| list.split(',')) {
        let (key, value) = item.split_once('=').unwrap_or((item, ""));
        match key {
            "subformat" => {
                options.subformat = Some(match value {
                    "fixed" => DiskType::Fixed,
                    "dynamic" => DiskType::Dynamic,
                    _ => {
                        return Err(CliError::usage(
                            command,
                            format!("-o subformat={value}: expected 'fixed' or 'dynamic'"),
                        ))
                    }
                })
            }
            "force_size" => match value {
                "" | "on" | "true" | "yes" => {}
                "off" | "false" | "no" => {
                    return Err(CliError::usage(
                        command,
                        "-o force_size=off: this program never rounds a size to a CHS geometry (it always uses the size given, as force_size=on does)",
                    ))
                }
                _ => {
                    return Err(CliError::usage(
                        command,
                        format!("-o force_size={value}: expected 'on' or 'off'"),
                    ))
                }
            },
            "size" if size_allowed => options.size = Some(value.to_string()),
            _ => {
                return Err(CliError::usage(
                    command,
                    format!("unknown -o option '{key}' (the vpc options supported are {keys})"),
                ))
            }
        }
    }
    Ok(options)
}

/// The names of the commands, as clap knows them (checked by a test), for the help hint of
/// a usage error.
pub const COMMAND_NAMES: &[&str] = &[
    "info",
    "create",
    "convert",
    "map",
    "partitions",
    "check",
    "compact",
    "resize",
    "commit",
    "rebase",
    "snapshot",
    "cat",
    "serve",
    "completions",
];

/// A clap parse error as this program reports usage errors: `unknown option '--nope'
/// (did you mean '--to'?)`, `missing argument FILE`, and the help of the command it was
/// about. `args` are the words parsed (after the program name).
pub fn usage_error(error: &clap::Error, args: &[String]) -> CliError {
    let command = args
        .first()
        .and_then(|word| COMMAND_NAMES.iter().find(|name| *name == word))
        .copied()
        .unwrap_or("");
    let context = |kind| error.get(kind).map(context_text);
    let invalid = context(ContextKind::InvalidArg).unwrap_or_default();
    let mut message = match error.kind() {
        ErrorKind::InvalidSubcommand => format!(
            "unknown command '{}'",
            context(ContextKind::InvalidSubcommand).unwrap_or_default()
        ),
        // As with qemu-img, a command's options (--parent-root…) follow the command.
        ErrorKind::UnknownArgument if invalid.starts_with('-') && command.is_empty() => format!(
            "unknown option '{invalid}' (a command's options go after it: vhd COMMAND [options] FILE)"
        ),
        ErrorKind::UnknownArgument if invalid.starts_with('-') => {
            format!("unknown option '{invalid}'")
        }
        ErrorKind::UnknownArgument => format!("unexpected argument '{invalid}'"),
        ErrorKind::MissingRequiredArgument => format!(
            "missing argument {}",
            invalid.replace(['<', '>'], "").replace("...", "")
        ),
        ErrorKind::InvalidValue | ErrorKind::NoEquals => {
            match context(ContextKind::InvalidValue).filter(|v| !v.is_empty()) {
                None => format!("option '{invalid}' needs a value"),
                Some(value) => {
                    let mut text = format!("invalid value '{value}' for '{invalid}'");
                    if let Some(valid) = context(ContextKind::ValidValue) {
                        text += &format!(" (expected one of: {valid})");
                    }
                    text
                }
            }
        }
        ErrorKind::ArgumentConflict => match context(ContextKind::PriorArg) {
            Some(prior) => format!("'{invalid}' cannot be used with '{prior}'"),
            None => clap_line(error),
        },
        _ => clap_line(error),
    };
    let suggestion = context(ContextKind::SuggestedSubcommand)
        .or_else(|| context(ContextKind::SuggestedArg))
        .or_else(|| context(ContextKind::SuggestedValue));
    if let Some(suggestion) = suggestion {
        message += &format!(" (did you mean '{suggestion}'?)");
    }
    CliError::usage(command, message)
}

fn context_text(value: &ContextValue) -> String {
    match value {
        ContextValue::String(s) => s.clone(),
        ContextValue::Strings(list) => list.join(", "),
        other => other.to_string(),
    }
}

/// clap's own message, first line, without its `error: ` prefix.
fn clap_line(error: &clap::Error) -> String {
    let rendered = error.to_string();
    let line = rendered.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vpc_options_take_qemu_img_keys() {
        let words = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let parsed = vpc_options(
            "create",
            &words(&["subformat=fixed,force_size=on", "size=1M"]),
            true,
        )
        .unwrap();
        assert_eq!(parsed.subformat, Some(DiskType::Fixed));
        assert_eq!(parsed.size.as_deref(), Some("1M"));
        let message = |list: &[&str], size| {
            vpc_options("convert", &words(list), size)
                .unwrap_err()
                .to_string()
        };
        assert!(message(&["subformat=sparse"], false).contains("'fixed' or 'dynamic'"));
        assert!(message(&["force_size=off"], false).contains("never rounds"));
        assert!(message(&["size=1M"], false).contains("unknown -o option 'size'"));
        assert!(message(&["cluster_size=2M"], true).contains("unknown -o option"));
    }
}
