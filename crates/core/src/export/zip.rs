//! A zip archive of stored (uncompressed) entries: PNG frames are compressed already, and a
//! stored zip opens everywhere. (The `zip` crate would do this too, but its dependencies turn
//! on features of crates the burn stack shares, which rebuilds that stack.)

use super::Crc32;

/// A zip archive being written in memory.
#[derive(Debug, Default)]
pub struct StoredZip {
    bytes: Vec<u8>,
    central: Vec<u8>,
    entries: u16,
}

/// Why an archive cannot hold more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ZipError(String);

fn u16le(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn u32le(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

impl StoredZip {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file (names use `/` and UTF-8). Archives are limited to 4 GiB and 65,535 entries
    /// (no zip64).
    pub fn add(&mut self, name: &str, data: &[u8]) -> Result<(), ZipError> {
        let too_large = || ZipError(format!("{name}: the zip would pass 4 GiB"));
        let size = u32::try_from(data.len()).map_err(|_| too_large())?;
        let offset = u32::try_from(self.bytes.len()).map_err(|_| too_large())?;
        let name_len =
            u16::try_from(name.len()).map_err(|_| ZipError(format!("{name}: name too long")))?;
        self.entries = self
            .entries
            .checked_add(1)
            .ok_or_else(|| ZipError("more than 65,535 files".into()))?;
        let crc = Crc32::of(data);
        // Local file header.
        let b = &mut self.bytes;
        u32le(b, 0x0403_4b50);
        Self::common(b, crc, size, name_len);
        b.extend_from_slice(name.as_bytes());
        b.extend_from_slice(data);
        // Central directory entry.
        let c = &mut self.central;
        u32le(c, 0x0201_4b50);
        u16le(c, 20); // made by: version 2.0
        Self::common(c, crc, size, name_len);
        u16le(c, 0); // comment length
        u16le(c, 0); // disk number
        u16le(c, 0); // internal attributes
        u32le(c, 0); // external attributes
        u32le(c, offset);
        c.extend_from_slice(name.as_bytes());
        if self.bytes.len() + self.central.len() > u32::MAX as usize {
            return Err(too_large());
        }
        Ok(())
    }

    /// The fields local headers and central entries share, from "version needed" to "extra
    /// field length".
    fn common(out: &mut Vec<u8>, crc: u32, size: u32, name_len: u16) {
        u16le(out, 20); // version needed
        u16le(out, 1 << 11); // flags: UTF-8 names
        u16le(out, 0); // method: stored
        u16le(out, 0); // time 00:00
        u16le(out, (46 << 9) | (1 << 5) | 1); // date 2026-01-01 (fixed: reproducible archives)
        u32le(out, crc);
        u32le(out, size);
        u32le(out, size);
        u16le(out, name_len);
        u16le(out, 0); // extra field length
    }

    /// The archive's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        let offset = u32::try_from(self.bytes.len()).unwrap_or(u32::MAX);
        let size = u32::try_from(self.central.len()).unwrap_or(u32::MAX);
        self.bytes.append(&mut self.central);
        let b = &mut self.bytes;
        u32le(b, 0x0605_4b50);
        u16le(b, 0);
        u16le(b, 0);
        u16le(b, self.entries);
        u16le(b, self.entries);
        u32le(b, size);
        u32le(b, offset);
        u16le(b, 0);
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_its_files_stored() {
        let mut zip = StoredZip::new();
        assert!(zip.add("a.txt", b"hello").is_ok());
        assert!(zip.add("dir/b.bin", &[0, 1, 2]).is_ok());
        let bytes = zip.finish();
        assert_eq!(&bytes[..4], b"PK\x03\x04");
        // The end record names 2 entries.
        let end = bytes.len() - 22;
        assert_eq!(&bytes[end..end + 4], b"PK\x05\x06");
        assert_eq!(u16::from_le_bytes([bytes[end + 10], bytes[end + 11]]), 2);
        // The first entry's CRC is zlib's CRC-32 of "hello".
        assert_eq!(&bytes[14..18], &0x3610_a686u32.to_le_bytes());
        let at = bytes.windows(5).position(|w| w == b"hello");
        assert_eq!(at, Some(30 + 5));
    }
}
