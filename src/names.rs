//! The names and values the plugin works with, checked once where they enter (the
//! command line, an editor buffer): a module name, a tag, a scan interval, an image
//! reference. Every layer may use them; they know nothing of the command line.

use std::fmt;
use std::time::Duration;

use crate::validate;

/// A module name, checked at parse time: a DNS-1123 label of at most 63 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModuleName(String);

/// An OCI tag, checked at parse time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag(String);

/// A `scanInterval` as the user wrote it (sent as is) and its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanInterval {
    pub text: String,
    pub duration: Duration,
}

/// `MODULE`, `MODULE:TAG` or `MODULE@sha256:DIGEST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageArg {
    pub module: ModuleName,
    pub tag: Option<Tag>,
    /// `sha256:` and 64 lower-case hex digits.
    pub digest: Option<String>,
}

impl ImageArg {
    /// The tag or the digest given, if any (the registry reads either).
    pub fn reference(&self) -> Option<String> {
        self.digest
            .clone()
            .or_else(|| self.tag.as_ref().map(|tag| tag.to_string()))
    }
}

macro_rules! string_newtype {
    ($name:ident) => {
        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
    };
}
string_newtype!(ModuleName);
string_newtype!(Tag);

/// A validation error as clap shows it: the message, then the hint.
pub(crate) fn shown(err: crate::error::Error) -> String {
    match err.hint {
        Some(hint) => format!("{}\n  hint: {hint}", err.message),
        None => err.message,
    }
}

pub fn parse_module_name(text: &str) -> Result<ModuleName, String> {
    validate::module_name(text).map_err(shown)?;
    Ok(ModuleName(text.to_string()))
}

pub fn parse_source_name(text: &str) -> Result<ModuleName, String> {
    validate::module_name(text).map_err(|err| shown(err.context("invalid ModuleSource name")))?;
    Ok(ModuleName(text.to_string()))
}

pub fn parse_tag(text: &str) -> Result<Tag, String> {
    validate::image_tag(text).map_err(shown)?;
    Ok(Tag(text.to_string()))
}

pub fn parse_scan_interval(text: &str) -> Result<ScanInterval, String> {
    let duration = validate::scan_interval(text).map_err(shown)?;
    Ok(ScanInterval {
        text: text.to_string(),
        duration,
    })
}

pub fn parse_image_arg(text: &str) -> Result<ImageArg, String> {
    if let Some((module, digest)) = text.split_once('@') {
        let hex = digest.strip_prefix("sha256:").unwrap_or_default();
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(format!(
                "{:?} is not a digest: sha256: and 64 lower-case hex digits, as in MODULE@sha256:…",
                crate::output::inline(digest)
            ));
        }
        return Ok(ImageArg {
            module: parse_module_name(module)?,
            tag: None,
            digest: Some(digest.to_string()),
        });
    }
    let (module, tag) = match text.split_once(':') {
        Some((module, tag)) => (module, Some(parse_tag(tag)?)),
        None => (text, None),
    };
    Ok(ImageArg {
        module: parse_module_name(module)?,
        tag,
        digest: None,
    })
}
