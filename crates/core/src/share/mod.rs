//! Share links: a whole Keyshift project in the URL fragment.
//!
//! The format is `#v<N>.<payload>`, where the payload is `base64url(deflate(json))` (raw deflate,
//! URL-safe alphabet, no padding) of the wire schema of version `N`. Layers, as in ruff:
//! wire ([`wire::ProjectV1`], [`wire::ProjectV2`]: version 1 and the animation,
//! [`wire::ProjectV3`]: version 2 and prompt travel, [`wire::ProjectV4`]: version 3 and the Parseq
//! mode) → migrated to the
//! newest wire type → normalised runtime type ([`Project`]). Decoding is bounded, never
//! panics, names what is wrong with a typed [`ShareError`], and migrates older versions forward.

mod animation;
mod parseq;
mod project;
pub mod wire;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use miniz_oxide::inflate::DecompressError;

pub use animation::{
    Animation, AnimationMode, ShiftCounts, ShiftSettings, TravelCounts, TravelSettings,
    VideoSettings,
};
pub use parseq::{ParseqSettings, parse_frames};
pub use project::{
    GenerationSettings, MAX_CFG, MAX_SIZE_PX, MAX_STEPS, MAX_TEXT_CHARS, MIN_SIZE_PX, Project,
    SIZE_STEP, Sampler, Seed,
};

/// The schema version this build writes.
pub const CURRENT_VERSION: u32 = 4;
/// The most bytes a payload may inflate to.
pub const MAX_INFLATED_BYTES: usize = 1 << 20;
/// The most characters of a link fragment we look at (deflate packs at most ~1000:1, so a larger
/// fragment cannot be a valid link).
pub const MAX_FRAGMENT_CHARS: usize = 2 << 20;
/// Compression level for deflate (0..=10 in miniz_oxide; 9 is zlib's "best").
const DEFLATE_LEVEL: u8 = 9;

/// Why a link could not be opened.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ShareError {
    /// The fragment is empty: there is no link to open.
    #[error("the link holds no project (its part after '#' is empty)")]
    Empty,
    /// The fragment does not start with a version such as `v1.`.
    #[error("the link does not start with a version such as \"v1.\"")]
    MissingVersion,
    /// A version tag that is not a number.
    #[error("the link's version \"{0}\" is not a version this app knows")]
    UnknownVersion(String),
    /// Made by a newer Keyshift.
    #[error(
        "the link was made by a newer version of Keyshift (schema v{found}; this app reads up to v{supported}); reload to update the app"
    )]
    NewerVersion {
        /// The version found.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The fragment is far too long to be a link.
    #[error("the link is too long ({chars} characters; the limit is {limit})")]
    TooLong {
        /// Its length.
        chars: usize,
        /// The limit.
        limit: usize,
    },
    /// A character outside base64url.
    #[error("the link is damaged: character {position} of its data is not valid base64url")]
    BadBase64 {
        /// Character offset in the payload (0-based).
        position: usize,
    },
    /// The payload's length is impossible for base64url: the link was cut short.
    #[error("the link is damaged: its data ends early (was it cut short when copied?)")]
    Truncated,
    /// The payload is not valid deflate data (typically: the link was cut short).
    #[error("the link is damaged: its data does not decompress (was it cut short when copied?)")]
    BadCompression,
    /// The payload inflates past [`MAX_INFLATED_BYTES`].
    #[error("the link's data decompresses to more than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The JSON inside is malformed or has a field of the wrong type.
    #[error("the link's project data is invalid at line {line}, column {column}: {message}")]
    BadJson {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What serde_json said.
        message: String,
    },
    /// Serialising the project failed (cannot happen for the types used; kept typed).
    #[error("the project could not be encoded: {0}")]
    Encode(String),
}

/// Something in a link that was changed or ignored while opening it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Warning {
    /// A field this version does not know; it was ignored.
    #[error("ignored unknown field \"{field}\"")]
    UnknownField {
        /// Dotted path of the field.
        field: String,
    },
    /// A value out of range was adjusted.
    #[error("{field} was {from}, changed to {to}")]
    Adjusted {
        /// Dotted path of the field.
        field: &'static str,
        /// The value in the link.
        from: String,
        /// The value used.
        to: String,
    },
    /// An unknown sampler name.
    #[error("unknown sampler \"{name}\", using {used}")]
    UnknownSampler {
        /// The name in the link.
        name: String,
        /// The sampler used instead.
        used: &'static str,
    },
    /// An unknown animation mode.
    #[error("unknown animation mode \"{name}\", using {used}")]
    UnknownMode {
        /// The name in the link.
        name: String,
        /// The mode used instead.
        used: &'static str,
    },
    /// A text longer than allowed was cut.
    #[error("{field} was longer than {max_chars} characters and was cut")]
    Truncated {
        /// The field.
        field: &'static str,
        /// The limit.
        max_chars: usize,
    },
}

/// A successfully opened link.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The project, normalised.
    pub project: Project,
    /// The schema version the link was written in.
    pub version: u32,
    /// What was adjusted or ignored.
    pub warnings: Vec<Warning>,
}

/// Encodes a project as a link fragment (without the leading `#`), e.g. `v2.q1YqzsnP…`.
pub fn encode(project: &Project) -> Result<String, ShareError> {
    let wire = wire::ProjectV4::from(project);
    let json = serde_json::to_vec(&wire).map_err(|e| ShareError::Encode(e.to_string()))?;
    let packed = miniz_oxide::deflate::compress_to_vec(&json, DEFLATE_LEVEL);
    Ok(format!(
        "v{CURRENT_VERSION}.{}",
        URL_SAFE_NO_PAD.encode(packed)
    ))
}

/// Decodes a link. Accepts a bare fragment (`v1.…`), one with its `#`, or a whole URL.
pub fn decode(link: &str) -> Result<Decoded, ShareError> {
    let fragment = link.split_once('#').map_or(link, |(_, f)| f).trim();
    if fragment.is_empty() {
        return Err(ShareError::Empty);
    }
    if fragment.len() > MAX_FRAGMENT_CHARS {
        return Err(ShareError::TooLong {
            chars: fragment.len(),
            limit: MAX_FRAGMENT_CHARS,
        });
    }
    let (tag, payload) = fragment.split_once('.').ok_or(ShareError::MissingVersion)?;
    let version = parse_version(tag)?;
    let json = inflate(payload)?;
    decode_payload(version, &json)
}

/// Reads a link's inflated JSON written in schema `version`: migrated to the newest schema, then
/// normalised.
pub fn decode_payload(version: u32, json: &[u8]) -> Result<Decoded, ShareError> {
    let latest = migrate(version, json)?;
    let mut warnings = Vec::new();
    let project = latest.normalise(&mut warnings);
    Ok(Decoded {
        project,
        version,
        warnings,
    })
}

fn parse_version(tag: &str) -> Result<u32, ShareError> {
    let version = tag
        .strip_prefix('v')
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|&n| n >= 1)
        .ok_or_else(|| ShareError::UnknownVersion(tag.chars().take(16).collect()))?;
    if version > CURRENT_VERSION {
        return Err(ShareError::NewerVersion {
            found: version,
            supported: CURRENT_VERSION,
        });
    }
    Ok(version)
}

fn inflate(payload: &str) -> Result<Vec<u8>, ShareError> {
    if let Some(position) = payload
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        return Err(ShareError::BadBase64 { position });
    }
    let packed = URL_SAFE_NO_PAD
        .decode(payload)
        // Every character is in the alphabet (checked above), so what is left is a length or
        // trailing-bits error: the link lost its end.
        .map_err(|_| ShareError::Truncated)?;
    miniz_oxide::inflate::decompress_to_vec_with_limit(&packed, MAX_INFLATED_BYTES).map_err(
        |DecompressError { status, .. }| match status {
            miniz_oxide::inflate::TINFLStatus::HasMoreOutput => ShareError::TooLarge {
                limit: MAX_INFLATED_BYTES,
            },
            _ => ShareError::BadCompression,
        },
    )
}

fn json_error(e: serde_json::Error) -> ShareError {
    ShareError::BadJson {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    }
}

/// Brings a document of any supported version to the newest wire schema. Each future version adds
/// one arm that converts from the version before it, so old links keep opening forever.
/// Each version's JSON is read straight into its own wire type, so errors keep their position.
fn migrate(version: u32, json: &[u8]) -> Result<wire::ProjectV4, ShareError> {
    match version {
        1 => serde_json::from_slice::<wire::ProjectV1>(json)
            .map(wire::ProjectV2::from)
            .map(wire::ProjectV3::from)
            .map(wire::ProjectV4::from)
            .map_err(json_error),
        2 => serde_json::from_slice::<wire::ProjectV2>(json)
            .map(wire::ProjectV3::from)
            .map(wire::ProjectV4::from)
            .map_err(json_error),
        3 => serde_json::from_slice::<wire::ProjectV3>(json)
            .map(wire::ProjectV4::from)
            .map_err(json_error),
        4 => serde_json::from_slice(json).map_err(json_error),
        found => Err(ShareError::NewerVersion {
            found,
            supported: CURRENT_VERSION,
        }),
    }
}
