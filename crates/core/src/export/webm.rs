//! WebM muxing of encoded video frames (VP8 or VP9 from the browser's `VideoEncoder`), and reading
//! a WebM back (its frame count and size), on the `webm-iterable` crate.
//!
//! The file is what a player needs and no more: the EBML header (`webm`), one video track, and
//! clusters of `SimpleBlock`s, a new cluster at each keyframe (and before a block's timestamp
//! would leave the 16-bit range relative to its cluster).

use std::io::Cursor;

use ebml_iterable::error::CorruptedFileError;
use webm_iterable::errors::TagIteratorError;
use webm_iterable::matroska_spec::{Master, MatroskaSpec, SimpleBlock};
use webm_iterable::{WebmIterator, WebmWriter};

/// A video codec `VideoEncoder` produces and WebM holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// VP8 (`V_VP8`).
    Vp8,
    /// VP9 (`V_VP9`).
    Vp9,
}

impl VideoCodec {
    /// The Matroska codec id.
    pub fn codec_id(self) -> &'static str {
        match self {
            Self::Vp8 => "V_VP8",
            Self::Vp9 => "V_VP9",
        }
    }

    /// The WebCodecs codec string.
    pub fn webcodecs(self) -> &'static str {
        match self {
            Self::Vp8 => "vp8",
            Self::Vp9 => "vp09.00.10.08",
        }
    }
}

/// One encoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// Presentation time in milliseconds.
    pub timestamp_ms: u64,
    /// Whether it decodes on its own.
    pub keyframe: bool,
    /// The codec's bytes.
    pub data: Vec<u8>,
}

/// Why a WebM could not be written or read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebmError {
    /// No frames, or the first is not a keyframe.
    #[error("a WebM needs at least one frame, starting with a keyframe")]
    NoKeyframe,
    /// The writer or reader failed.
    #[error("WebM: {0}")]
    Container(String),
    /// An element's length field claims more bytes than the whole file holds.
    #[error("WebM: an element claims {claimed} bytes, more than the whole file ({file} bytes)")]
    Oversized {
        /// The claimed length.
        claimed: usize,
        /// The file's length.
        file: usize,
    },
}

/// The track's video settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WebmVideo {
    /// The codec of the frames.
    pub codec: VideoCodec,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second (the frame duration written in the track).
    pub fps: f64,
}

/// Timestamps count milliseconds.
const TIMESTAMP_SCALE_NS: u64 = 1_000_000;
/// Largest block timestamp relative to its cluster.
const MAX_RELATIVE_MS: u64 = 30_000;

/// `frames` (in presentation order) as a WebM file.
pub fn mux_webm(video: WebmVideo, frames: &[EncodedFrame]) -> Result<Vec<u8>, WebmError> {
    if !frames.first().is_some_and(|f| f.keyframe) {
        return Err(WebmError::NoKeyframe);
    }
    let mut writer = WebmWriter::new(Cursor::new(Vec::new()));
    let mut put = |tag: MatroskaSpec| {
        writer
            .write(&tag)
            .map_err(|e| WebmError::Container(e.to_string()))
    };
    put(header())?;
    put(MatroskaSpec::Segment(Master::Start))?;
    put(info(video, frames))?;
    put(tracks(video))?;
    for cluster in clusters(frames) {
        put(cluster?)?;
    }
    put(MatroskaSpec::Segment(Master::End))?;
    writer
        .into_inner()
        .map(Cursor::into_inner)
        .map_err(|e| WebmError::Container(e.to_string()))
}

fn header() -> MatroskaSpec {
    MatroskaSpec::Ebml(Master::Full(vec![
        MatroskaSpec::EbmlVersion(1),
        MatroskaSpec::EbmlReadVersion(1),
        MatroskaSpec::EbmlMaxIdLength(4),
        MatroskaSpec::EbmlMaxSizeLength(8),
        MatroskaSpec::DocType("webm".to_owned()),
        MatroskaSpec::DocTypeVersion(4),
        MatroskaSpec::DocTypeReadVersion(2),
    ]))
}

#[allow(
    clippy::cast_precision_loss,
    reason = "millisecond timestamps of a video are far below 2^52"
)]
fn info(video: WebmVideo, frames: &[EncodedFrame]) -> MatroskaSpec {
    let last = frames.last().map_or(0, |f| f.timestamp_ms) as f64;
    let frame_ms = if video.fps > 0.0 {
        1000.0 / video.fps
    } else {
        0.0
    };
    MatroskaSpec::Info(Master::Full(vec![
        MatroskaSpec::TimestampScale(TIMESTAMP_SCALE_NS),
        MatroskaSpec::Duration(last + frame_ms),
        MatroskaSpec::MuxingApp("Keyshift".to_owned()),
        MatroskaSpec::WritingApp("Keyshift".to_owned()),
    ]))
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a frame duration in nanoseconds, rounded"
)]
fn tracks(video: WebmVideo) -> MatroskaSpec {
    let mut entry = vec![
        MatroskaSpec::TrackNumber(1),
        MatroskaSpec::TrackUID(1),
        MatroskaSpec::TrackType(1),
        MatroskaSpec::FlagLacing(0),
        MatroskaSpec::CodecID(video.codec.codec_id().to_owned()),
    ];
    if video.fps > 0.0 {
        entry.push(MatroskaSpec::DefaultDuration(
            (1e9 / video.fps).round() as u64
        ));
    }
    entry.push(MatroskaSpec::Video(Master::Full(vec![
        MatroskaSpec::PixelWidth(u64::from(video.width)),
        MatroskaSpec::PixelHeight(u64::from(video.height)),
    ])));
    MatroskaSpec::Tracks(Master::Full(vec![MatroskaSpec::TrackEntry(Master::Full(
        entry,
    ))]))
}

/// The clusters: one from each keyframe, split further where timestamps run too far.
fn clusters(frames: &[EncodedFrame]) -> Vec<Result<MatroskaSpec, WebmError>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut blocks: Vec<MatroskaSpec> = Vec::new();
    for frame in frames {
        let relative = frame.timestamp_ms.saturating_sub(start);
        if frame.keyframe || relative > MAX_RELATIVE_MS || blocks.is_empty() {
            if !blocks.is_empty() {
                out.push(Ok(cluster(start, std::mem::take(&mut blocks))));
            }
            start = frame.timestamp_ms;
        }
        let relative = i16::try_from(frame.timestamp_ms - start)
            .map_err(|_| WebmError::Container("timestamps out of order".into()));
        match relative {
            Ok(t) => blocks.push(
                SimpleBlock::new_uncheked(&frame.data, 1, t, false, None, false, frame.keyframe)
                    .into(),
            ),
            Err(e) => out.push(Err(e)),
        }
    }
    if !blocks.is_empty() {
        out.push(Ok(cluster(start, blocks)));
    }
    out
}

fn cluster(start_ms: u64, blocks: Vec<MatroskaSpec>) -> MatroskaSpec {
    let mut children = vec![MatroskaSpec::Timestamp(start_ms)];
    children.extend(blocks);
    MatroskaSpec::Cluster(Master::Full(children))
}

/// The tags of `bytes`. No tag may claim more bytes than the file holds: the reader sizes its
/// buffer from a tag's claimed length before reading it, so a forged length would otherwise
/// allocate gigabytes from a few bytes of input.
fn tags(bytes: &[u8]) -> WebmIterator<Cursor<&[u8]>> {
    let mut tags = WebmIterator::new(Cursor::new(bytes), &[]);
    tags.set_max_allowable_tag_size(Some(bytes.len()));
    tags
}

/// A reading error of [`tags`] over a file of `file` bytes.
fn read_error(e: TagIteratorError, file: usize) -> WebmError {
    match e {
        TagIteratorError::CorruptedFileData(CorruptedFileError::InvalidTagSize {
            size, ..
        }) => WebmError::Oversized {
            claimed: size,
            file,
        },
        e => WebmError::Container(e.to_string()),
    }
}

/// What a WebM file holds, as read back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WebmSummary {
    /// The `DocType` (`webm`).
    pub doc_type: String,
    /// The first track's codec id.
    pub codec_id: String,
    /// Width and height of the first video track.
    pub size: (u64, u64),
    /// `SimpleBlock`s and `Block`s: one per video frame.
    pub frames: usize,
    /// How many of them are keyframes.
    pub keyframes: usize,
}

/// Reads `bytes` as WebM.
pub fn read_webm(bytes: &[u8]) -> Result<WebmSummary, WebmError> {
    let mut summary = WebmSummary::default();
    for tag in tags(bytes) {
        match tag.map_err(|e| read_error(e, bytes.len()))? {
            MatroskaSpec::DocType(t) => summary.doc_type = t,
            MatroskaSpec::CodecID(c) if summary.codec_id.is_empty() => summary.codec_id = c,
            MatroskaSpec::PixelWidth(w) => summary.size.0 = w,
            MatroskaSpec::PixelHeight(h) => summary.size.1 = h,
            MatroskaSpec::SimpleBlock(data) => {
                summary.frames += 1;
                summary.keyframes += usize::from(block_header(&data)?.keyframe);
            }
            MatroskaSpec::Block(_) => summary.frames += 1,
            _ => {}
        }
    }
    Ok(summary)
}

/// The header of a `SimpleBlock`'s bytes, read here rather than by `webm-iterable`, whose block
/// reader indexes past the end of a short block (a panic, which aborts the browser's worker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BlockHeader<'a> {
    track: u64,
    /// Relative to the block's cluster.
    timestamp: i16,
    keyframe: bool,
    /// Whether the payload holds several frames (lacing, used by audio tracks).
    laced: bool,
    payload: &'a [u8],
}

fn block_header(data: &[u8]) -> Result<BlockHeader<'_>, WebmError> {
    let short = || WebmError::Container(format!("a block of {} bytes is cut short", data.len()));
    let (track, len) = vint(data).ok_or_else(short)?;
    let Some([t0, t1, flags, payload @ ..]) = data.get(len..) else {
        return Err(short());
    };
    Ok(BlockHeader {
        track,
        timestamp: i16::from_be_bytes([*t0, *t1]),
        keyframe: flags & 0x80 != 0,
        laced: flags & 0x06 != 0,
        payload,
    })
}

/// An EBML variable-length integer at the start of `data`: its value and its length in bytes
/// (`None` when cut short or longer than 8 bytes).
fn vint(data: &[u8]) -> Option<(u64, usize)> {
    ebml_iterable::tools::read_vint(data).ok().flatten()
}

/// A WebM's video track as a decoder takes it (WebCodecs' `VideoDecoder` in the browser).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WebmTrack {
    /// `V_VP8`, `V_VP9`, `V_AV1`…
    pub codec_id: String,
    /// Width in pixels.
    pub width: u64,
    /// Height in pixels.
    pub height: u64,
    /// The frames in decoding order.
    pub frames: Vec<DemuxedFrame>,
}

/// One encoded frame of a [`WebmTrack`].
#[derive(Debug, Clone, PartialEq)]
pub struct DemuxedFrame {
    /// When it is shown, in microseconds.
    pub timestamp_us: i64,
    /// Whether it decodes alone.
    pub keyframe: bool,
    /// The codec's bytes.
    pub data: Vec<u8>,
}

/// The frame size a WebM's first video track header claims, read without touching any frame
/// (to refuse a decode bomb before a browser decodes it); `None` when the header is unreadable.
pub fn webm_claimed_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let (mut width, mut height) = (None, None);
    for tag in tags(bytes) {
        match tag.ok()? {
            MatroskaSpec::PixelWidth(w) => width = width.or(Some(w)),
            MatroskaSpec::PixelHeight(h) => height = height.or(Some(h)),
            MatroskaSpec::Cluster(_) => break,
            _ => {}
        }
        if let (Some(w), Some(h)) = (width, height) {
            let side = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
            return Some((side(w), side(h)));
        }
    }
    None
}

/// The first video track of `bytes` (a WebM of `SimpleBlock`s, as browsers and encoders write).
pub fn demux_webm(bytes: &[u8]) -> Result<WebmTrack, WebmError> {
    let mut track = WebmTrack::default();
    let (mut scale_ns, mut cluster) = (1_000_000i64, 0i64);
    let (mut number, mut kind, mut codec) = (0u64, 0u64, String::new());
    let mut video: Option<u64> = None;
    for tag in tags(bytes) {
        match tag.map_err(|e| read_error(e, bytes.len()))? {
            MatroskaSpec::TimestampScale(s) => scale_ns = i64::try_from(s).unwrap_or(1_000_000),
            MatroskaSpec::TrackNumber(n) => number = n,
            MatroskaSpec::TrackType(t) => kind = t,
            MatroskaSpec::CodecID(c) => codec = c,
            MatroskaSpec::TrackEntry(Master::End) if kind == 1 && video.is_none() => {
                video = Some(number);
                track.codec_id = std::mem::take(&mut codec);
            }
            MatroskaSpec::PixelWidth(w) if track.width == 0 => track.width = w,
            MatroskaSpec::PixelHeight(h) if track.height == 0 => track.height = h,
            MatroskaSpec::Timestamp(t) => cluster = i64::try_from(t).unwrap_or(i64::MAX),
            MatroskaSpec::SimpleBlock(data) => {
                let block = block_header(&data)?;
                if Some(block.track) != video {
                    continue;
                }
                if block.laced {
                    return Err(WebmError::Container(
                        "the video track's blocks are laced (several frames in one block)".into(),
                    ));
                }
                let ticks = cluster.saturating_add(i64::from(block.timestamp));
                track.frames.push(DemuxedFrame {
                    timestamp_us: ticks.saturating_mul(scale_ns) / 1000,
                    keyframe: block.keyframe,
                    data: block.payload.to_vec(),
                });
            }
            MatroskaSpec::Block(_) => {
                return Err(WebmError::Container(
                    "block groups are not read (only simple blocks)".into(),
                ));
            }
            _ => {}
        }
    }
    if video.is_none() || track.frames.is_empty() {
        return Err(WebmError::NoKeyframe);
    }
    Ok(track)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_muxed_video_demuxes_to_its_frames_and_times() {
        let made = frames(7, 4, 3);
        let bytes = mux_webm(VIDEO, &made).expect("muxes");
        let track = demux_webm(&bytes).expect("demuxes");
        assert_eq!(
            (track.codec_id.as_str(), track.width, track.height),
            ("V_VP9", 64, 48)
        );
        assert_eq!(track.frames.len(), 7);
        for (got, want) in track.frames.iter().zip(&made) {
            assert_eq!(
                got.timestamp_us,
                i64::try_from(want.timestamp_ms * 1000).unwrap_or(0)
            );
            assert_eq!((got.keyframe, &got.data), (want.keyframe, &want.data));
        }
        assert!(demux_webm(b"not a webm").is_err());
        assert_eq!(webm_claimed_size(&bytes), Some((64, 48)));
        assert_eq!(webm_claimed_size(b"not a webm"), None);
    }

    #[test]
    fn a_tag_claiming_more_bytes_than_the_file_is_refused_before_allocating() {
        // An EBML header of unknown size, then a `DocType` whose length field claims 1 GiB.
        let mut bytes = vec![0x1a, 0x45, 0xdf, 0xa3, 0xff, 0x42, 0x82];
        bytes.extend([0x01, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00]);
        bytes.extend(b"webm");
        for read in [read_webm(&bytes).err(), demux_webm(&bytes).err()] {
            assert_eq!(
                read,
                Some(WebmError::Oversized {
                    claimed: 1 << 30,
                    file: bytes.len()
                })
            );
        }
        assert_eq!(webm_claimed_size(&bytes), None);
    }

    #[test]
    fn block_headers_are_read_without_indexing_past_their_end() {
        assert_eq!(vint(&[0x81]), Some((1, 1)));
        assert_eq!(vint(&[0x40, 0x02]), Some((2, 2)));
        assert_eq!(vint(&[0x01, 0, 0, 0, 0, 0, 0, 0x05]), Some((5, 8)));
        assert_eq!(vint(&[0x00, 0, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(vint(&[0x40]), None);
        assert_eq!(vint(&[]), None);
        let block = block_header(&[0x81, 0xff, 0xfe, 0x80, 9, 9]).expect("a block");
        assert_eq!(
            block,
            BlockHeader {
                track: 1,
                timestamp: -2,
                keyframe: true,
                laced: false,
                payload: &[9, 9]
            }
        );
        for short in [&[][..], &[0x81], &[0x81, 0, 0], &[0x40, 0x01, 0, 0]] {
            assert!(block_header(short).is_err(), "{short:?}");
        }
        // A block whose track number's length runs past its end (the fuzz finding kept in
        // fuzz/regressions/webm_demux made the crate's block reader index past a block's end).
        assert!(block_header(&[0x28, 0x28, 0x28]).is_err());
    }

    #[test]
    fn a_video_track_of_laced_blocks_is_refused_by_name() {
        let bytes = mux_webm(VIDEO, &frames(2, 4, 1)).expect("muxes");
        // The first block's flags byte: set Xiph lacing on it.
        let at = bytes
            .windows(4)
            .position(|w| w == [0x81, 0x00, 0x00, 0x80])
            .expect("the first block's header");
        let mut laced = bytes.clone();
        laced[at + 3] |= 0x02;
        let error = demux_webm(&laced).expect_err("laced");
        assert!(error.to_string().contains("laced"), "{error}");
    }

    fn frames(n: u64, fps: u64, key_every: u64) -> Vec<EncodedFrame> {
        (0..n)
            .map(|i| EncodedFrame {
                timestamp_ms: i * 1000 / fps,
                keyframe: i % key_every == 0,
                data: vec![u8::try_from(i % 251).unwrap_or(0); 10 + (i as usize % 7)],
            })
            .collect()
    }

    const VIDEO: WebmVideo = WebmVideo {
        codec: VideoCodec::Vp9,
        width: 64,
        height: 48,
        fps: 12.0,
    };

    #[test]
    fn muxed_frames_read_back_in_number_size_and_keyframes() {
        let bytes = mux_webm(VIDEO, &frames(25, 12, 10)).expect("muxes");
        assert_eq!(&bytes[..4], &[0x1a, 0x45, 0xdf, 0xa3], "EBML magic");
        let summary = read_webm(&bytes).expect("reads");
        assert_eq!(summary.doc_type, "webm");
        assert_eq!(summary.codec_id, "V_VP9");
        assert_eq!(summary.size, (64, 48));
        assert_eq!(summary.frames, 25);
        assert_eq!(summary.keyframes, 3);
    }

    #[test]
    fn long_videos_split_clusters_before_the_16_bit_limit() {
        // One keyframe, 100 s at 1 fps: blocks more than 32.767 s from a cluster start would not fit.
        let bytes = mux_webm(VIDEO, &frames(100, 1, 1000)).expect("muxes");
        assert_eq!(read_webm(&bytes).expect("reads").frames, 100);
    }

    #[test]
    fn a_video_must_start_with_a_keyframe() {
        let mut f = frames(3, 12, 1);
        f[0].keyframe = false;
        assert!(matches!(mux_webm(VIDEO, &f), Err(WebmError::NoKeyframe)));
        assert!(matches!(mux_webm(VIDEO, &[]), Err(WebmError::NoKeyframe)));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [
            &[0x1a, 0x45, 0xdf, 0xa3, 0xff, 0x00][..],
            b"not a webm at all",
        ] {
            assert!(read_webm(bytes).map_or(true, |s| s.frames == 0));
        }
    }
}
