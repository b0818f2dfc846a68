//! Exporting an animation's frames: the video's frame sequence (mirror is in the order already;
//! lead in/out padding added here), animated GIF, and a zip of the PNG frames. Pure Rust, shared
//! by the CLI and the browser.

mod crc32;
mod gif;
mod webm;
mod zip;

pub use crc32::Crc32;
pub use gif::{GifError, encode_gif, gif_delay_cs};
pub use webm::{
    DemuxedFrame, EncodedFrame, VideoCodec, WebmError, WebmSummary, WebmTrack, WebmVideo,
    demux_webm, mux_webm, read_webm, webm_claimed_size,
};
pub use zip::StoredZip;

/// The video's frames: the first frame `lead` more times at the start, the last `lead` more
/// times at the end (shift-attention's "Lead in/out").
pub fn with_lead<T: Clone>(frames: &[T], lead: usize) -> Vec<T> {
    let (Some(first), Some(last)) = (frames.first(), frames.last()) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(frames.len() + 2 * lead);
    out.extend(std::iter::repeat_n(first.clone(), lead));
    out.extend_from_slice(frames);
    out.extend(std::iter::repeat_n(last.clone(), lead));
    out
}

#[cfg(test)]
mod tests {
    use super::with_lead;

    #[test]
    fn lead_repeats_the_ends() {
        assert_eq!(with_lead(&[1, 2, 3], 2), [1, 1, 1, 2, 3, 3, 3]);
        assert_eq!(with_lead(&[1, 2], 0), [1, 2]);
        assert_eq!(with_lead::<u8>(&[], 3), Vec::<u8>::new());
    }
}
