//! The offline model cache's bookkeeping (plain types, tested natively): which files a cached
//! model has, their sizes and checksums, and how file paths become names in the browser's
//! origin-private file system (OPFS), which has no `/` in names.

use serde::{Deserialize, Serialize};

/// The manifest's file name inside a model's folder.
pub const MANIFEST: &str = "manifest.json";
/// The files of an unfinished download that are complete (a [`Manifest`] of them), so that a
/// later load resumes instead of starting over.
pub const PARTIAL: &str = "partial.json";

/// One cached file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedFile {
    /// Path inside the model (`unet/diffusion_pytorch_model.fp16.safetensors`).
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the contents (lowercase hex): what a publisher's pin is compared with.
    pub sha256: String,
    /// SHA-256 of each [`BLOCK_BYTES`] block of the contents, in order (the last may be
    /// shorter): checked before every use, block by block with the browser's native digest,
    /// several times faster than hashing the whole file in wasm. Empty in manifests written
    /// before block digests, whose files are checked against [`CachedFile::sha256`] instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<String>,
}

/// The size of the blocks [`CachedFile::blocks`] digests.
pub const BLOCK_BYTES: u64 = 16 << 20;

impl CachedFile {
    /// Whether [`Self::blocks`] has one digest per block of [`Self::bytes`] (a file cached
    /// before block digests, or an empty file, has none and is checked whole).
    pub fn has_blocks(&self) -> bool {
        !self.blocks.is_empty() && self.blocks.len() as u64 == self.bytes.div_ceil(BLOCK_BYTES)
    }
}

/// What a model's cache folder holds; written last, so a folder without one is incomplete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The model's id (`tiny-sd1@f32`).
    pub id: String,
    /// What the user sees.
    pub label: String,
    /// The files.
    pub files: Vec<CachedFile>,
}

impl Manifest {
    /// Total bytes.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    /// The file cached for `path`, or for its fallback.
    pub fn file(&self, path: &str) -> Option<&CachedFile> {
        self.files.iter().find(|f| f.path == path)
    }

    /// The JSON text stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads a stored manifest; `None` if it is damaged.
    pub fn from_json(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// A name usable in OPFS for `text` (a model id or a file path): `/`, `\`, `:`, `%` and control
/// characters are percent-encoded, so distinct texts give distinct names.
pub fn opfs_name(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '/' | '\\' | ':' | '%' | '*' | '?' | '"' | '<' | '>' | '|'
        ) || c.is_control()
        {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The inverse of [`opfs_name`].
pub fn from_opfs_name(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// SHA-256 of a file computed as its bytes stream past, as lowercase hex.
#[derive(Debug, Clone, Default)]
pub struct Sha256Digest(sha2::Sha256);

impl Sha256Digest {
    /// Adds `bytes` to the digest.
    pub fn update(&mut self, bytes: &[u8]) {
        sha2::Digest::update(&mut self.0, bytes);
    }

    /// The digest of everything added, as 64 lowercase hex digits.
    pub fn finish(self) -> String {
        hex_digest(&sha2::Digest::finalize(self.0))
    }
}

/// A digest's bytes as lowercase hex digits, the form [`CachedFile`] records.
pub fn hex_digest(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The digests of a file as its bytes stream past: the whole file's SHA-256 and each
/// [`BLOCK_BYTES`] block's, for a [`CachedFile`].
#[derive(Debug, Clone, Default)]
pub struct FileDigest {
    whole: Sha256Digest,
    block: Sha256Digest,
    in_block: u64,
    blocks: Vec<String>,
}

impl FileDigest {
    /// Adds `bytes`, however the file is split into calls.
    pub fn update(&mut self, mut bytes: &[u8]) {
        self.whole.update(bytes);
        while !bytes.is_empty() {
            let room = usize::try_from(BLOCK_BYTES - self.in_block).unwrap_or(usize::MAX);
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.block.update(now);
            self.in_block += now.len() as u64;
            if self.in_block == BLOCK_BYTES {
                self.blocks.push(std::mem::take(&mut self.block).finish());
                self.in_block = 0;
            }
            bytes = rest;
        }
    }

    /// The whole file's digest and the blocks' (a short last block included).
    pub fn finish(mut self) -> (String, Vec<String>) {
        if self.in_block > 0 {
            self.blocks.push(self.block.finish());
        }
        (self.whole.finish(), self.blocks)
    }
}

/// Whether `text` is a SHA-256 digest as [`Sha256Digest::finish`] writes it.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A byte count for people: `1.5 GB`, `12 MB`, `900 B`.
pub fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_naturally() {
        assert_eq!(bytes_text(900), "900 B");
        assert_eq!(bytes_text(1_500_000_000), "1.5 GB");
        assert_eq!(bytes_text(12_000_000), "12 MB");
    }

    #[test]
    fn names_round_trip_and_never_contain_a_slash() {
        for text in [
            "tiny-sd1@f32",
            "unet/diffusion_pytorch_model.fp16.safetensors",
            "custom:https://example.org/a%2Fb/m",
            "ünïcode/π",
        ] {
            let name = opfs_name(text);
            assert!(!name.contains('/') && !name.contains(':'), "{name}");
            assert_eq!(from_opfs_name(&name), text);
        }
        assert_ne!(opfs_name("a/b"), opfs_name("a%2Fb"));
    }

    #[test]
    fn sha256_matches_the_standard_vectors_however_the_bytes_are_split() {
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let mut whole = Sha256Digest::default();
        whole.update(b"abc");
        assert_eq!(whole.finish(), abc);
        let mut split = Sha256Digest::default();
        split.update(b"a");
        split.update(b"");
        split.update(b"bc");
        assert_eq!(split.finish(), abc);
        let empty = Sha256Digest::default().finish();
        assert_eq!(
            empty,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(is_sha256(&empty) && !is_sha256(&empty.to_uppercase()) && !is_sha256("abc"));
        assert_eq!(hex_digest(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
    }

    fn sha256(bytes: &[u8]) -> String {
        let mut d = Sha256Digest::default();
        d.update(bytes);
        d.finish()
    }

    #[test]
    fn file_digests_are_the_whole_files_and_each_blocks_however_the_bytes_are_split() {
        let block = usize::try_from(BLOCK_BYTES).unwrap_or(usize::MAX);
        // Two full blocks and a short third: digests of the slices, not of the calls.
        let file: Vec<u8> = (0..2 * block + 1000).map(|i| (i % 251) as u8).collect();
        let expected: Vec<String> = file.chunks(block).map(sha256).collect();
        for split in [4093, block - 1, block, block + 7, file.len()] {
            let mut digest = FileDigest::default();
            for part in file.chunks(split) {
                digest.update(part);
            }
            let (whole, blocks) = digest.finish();
            assert_eq!(whole, sha256(&file), "split {split}");
            assert_eq!(blocks, expected, "split {split}");
        }
        let entry = |bytes: u64, blocks: usize| CachedFile {
            path: "w".into(),
            bytes,
            sha256: String::new(),
            blocks: vec![String::new(); blocks],
        };
        assert!(entry(file.len() as u64, 3).has_blocks());
        assert!(entry(BLOCK_BYTES, 1).has_blocks());
        assert!(!entry(file.len() as u64, 2).has_blocks());
        assert!(!entry(BLOCK_BYTES + 1, 1).has_blocks());
        // An empty file has no blocks: it is checked whole.
        assert_eq!(FileDigest::default().finish().1, Vec::<String>::new());
        assert!(!entry(0, 0).has_blocks());
    }

    #[test]
    fn manifests_round_trip_and_damaged_ones_are_refused() {
        let m = Manifest {
            id: "tiny-sd1@f32".into(),
            label: "tiny".into(),
            files: vec![
                CachedFile {
                    path: "unet/config.json".into(),
                    bytes: 10,
                    sha256: "7".repeat(64),
                    blocks: Vec::new(),
                },
                CachedFile {
                    path: "unet/w.safetensors".into(),
                    bytes: 90,
                    sha256: "8".repeat(64),
                    blocks: vec!["9".repeat(64)],
                },
            ],
        };
        assert_eq!(Manifest::from_json(&m.to_json()), Some(m.clone()));
        assert_eq!(m.bytes(), 100);
        assert_eq!(
            m.file("unet/config.json").map(|f| f.sha256.as_str()),
            Some("7".repeat(64).as_str())
        );
        assert_eq!(Manifest::from_json("{\"id\": 3"), None);
        // A manifest from before SHA-256 (CRC-32 entries) is not trusted: the model is fetched
        // again rather than used unverified.
        let old = m
            .to_json()
            .replace("\"sha256\": \"7777", "\"crc32\": 7, \"x\": \"7777");
        assert_eq!(Manifest::from_json(&old), None);
    }
}
