//! Reads through a few large blocks. In the browser each read of a Blob costs about 3 ms
//! whatever its size (a `FileReaderSync` call), and a model is hundreds of small tensors: the
//! tiny test model's 524 reads took 1.7 s of its 1.9 s load. Small reads are served from the
//! blocks, which hold neighbouring tensors; large ones go straight through.

use super::ByteSource;

/// Blocks kept at once: the loader takes tensors in module order, which wanders between nearby
/// parts of the file.
const BLOCKS: usize = 4;

/// A [`ByteSource`] that reads `inner` in blocks of `block` bytes, keeping the last [`BLOCKS`].
#[derive(Debug)]
pub struct ReadAhead<S> {
    inner: S,
    block: usize,
    /// Most recently used first: each block's offset and bytes.
    blocks: Vec<(u64, Vec<u8>)>,
}

impl<S: ByteSource> ReadAhead<S> {
    /// Reads `inner` in blocks of `block` bytes (reads of at least that size go straight to it).
    pub fn new(inner: S, block: usize) -> Self {
        Self {
            inner,
            block: block.max(1),
            blocks: Vec::new(),
        }
    }

    /// The block holding `offset..end` (its offset and bytes), read when no kept block does.
    fn block_for(&mut self, offset: u64, end: u64) -> std::io::Result<(u64, &[u8])> {
        let held = self
            .blocks
            .iter()
            .position(|(at, bytes)| *at <= offset && end <= *at + bytes.len() as u64);
        let index = match held {
            Some(index) => index,
            None => self.read_block(offset)?,
        };
        let entry = self.blocks.remove(index);
        self.blocks.insert(0, entry);
        let (at, bytes) = self.blocks.first().ok_or_else(super::eof)?;
        Ok((*at, bytes))
    }

    /// Reads the block starting at `offset` (up to the end of the source); returns its index.
    fn read_block(&mut self, offset: u64) -> std::io::Result<usize> {
        let left = self.inner.len().saturating_sub(offset);
        let len = usize::try_from(left).map_or(self.block, |left| left.min(self.block));
        // The least recently used block's buffer is reused once all are taken.
        let mut bytes = match self.blocks.len() {
            n if n >= BLOCKS => self.blocks.pop().map(|(_, b)| b).unwrap_or_default(),
            _ => Vec::new(),
        };
        bytes.resize(len, 0);
        self.inner.read_exact_at(offset, &mut bytes)?;
        self.blocks.push((offset, bytes));
        Ok(self.blocks.len() - 1)
    }
}

impl<S: ByteSource> ByteSource for ReadAhead<S> {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or_else(super::eof)?;
        if buf.is_empty() && end <= self.len() {
            return Ok(());
        }
        if buf.len() >= self.block || end > self.len() {
            return self.inner.read_exact_at(offset, buf);
        }
        let (block_start, bytes) = self.block_for(offset, end)?;
        let from = usize::try_from(offset - block_start).map_err(|_| super::eof())?;
        let src = bytes.get(from..from + buf.len()).ok_or_else(super::eof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::MemorySource;

    /// A memory source that counts the reads that reach it.
    struct Counted(MemorySource, usize);

    impl ByteSource for Counted {
        fn len(&self) -> u64 {
            self.0.len()
        }
        fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
            self.1 += 1;
            self.0.read_exact_at(offset, buf)
        }
    }

    fn source(n: usize) -> (Vec<u8>, ReadAhead<Counted>) {
        let bytes: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
        let counted = Counted(MemorySource::new(bytes.clone()), 0);
        (bytes, ReadAhead::new(counted, 100))
    }

    fn read(source: &mut ReadAhead<Counted>, offset: usize, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        source
            .read_exact_at(offset as u64, &mut buf)
            .expect("in range");
        buf
    }

    #[test]
    fn every_read_returns_the_source_bytes() {
        let (bytes, mut ahead) = source(1000);
        // In order, backwards, across block ends, large, at the very end, nearby again.
        for (offset, len) in [
            (0, 10),
            (10, 30),
            (95, 10),
            (500, 250),
            (990, 10),
            (5, 3),
            (0, 0),
        ] {
            assert_eq!(read(&mut ahead, offset, len), bytes[offset..offset + len]);
        }
    }

    #[test]
    fn small_reads_share_blocks_and_large_reads_pass_through() {
        let (_, mut ahead) = source(1000);
        for offset in (0..100).step_by(10) {
            read(&mut ahead, offset, 10);
        }
        assert_eq!(
            ahead.inner.1, 1,
            "ten reads inside one block: one read of the source"
        );
        read(&mut ahead, 200, 150);
        assert_eq!(ahead.inner.1, 2);
        // Four blocks are kept, the least recently used goes first.
        for offset in [300, 400, 500, 0, 600] {
            read(&mut ahead, offset, 5);
        }
        assert_eq!(ahead.inner.1, 6);
        read(&mut ahead, 1, 5);
        assert_eq!(
            ahead.inner.1, 6,
            "the block at 0 was used recently and is still held"
        );
        read(&mut ahead, 301, 5);
        assert_eq!(
            ahead.inner.1, 7,
            "the block at 300 was the least recently used"
        );
    }

    #[test]
    fn reads_past_the_end_fail_and_the_last_block_is_short() {
        let (bytes, mut ahead) = source(150);
        assert_eq!(read(&mut ahead, 120, 30), bytes[120..150]);
        let mut buf = [0; 10];
        assert!(ahead.read_exact_at(145, &mut buf).is_err());
        assert!(ahead.read_exact_at(u64::MAX - 2, &mut buf).is_err());
    }
}
