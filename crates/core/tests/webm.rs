//! Demuxing a WebM made by a browser's encoder (`fixtures/video/tiny-6f-10fps.webm`): the frames
//! WebCodecs' `VideoDecoder` is fed in the browser.

use keyshift_core::export::{demux_webm, read_webm};

#[allow(clippy::disallowed_methods, reason = "test data")]
fn fixture() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/video/tiny-6f-10fps.webm"
    );
    std::fs::read(path).unwrap_or_default()
}

#[test]
fn a_browser_made_webm_demuxes_to_its_six_frames_a_tenth_of_a_second_apart() {
    let bytes = fixture();
    let summary = read_webm(&bytes).unwrap_or_default();
    let Ok(track) = demux_webm(&bytes) else {
        panic!("the fixture demuxes");
    };
    assert_eq!(track.codec_id, summary.codec_id);
    assert_eq!((track.width, track.height), summary.size);
    assert_eq!(track.frames.len(), 6);
    assert!(track.frames[0].keyframe, "it starts with a keyframe");
    let times: Vec<i64> = track.frames.iter().map(|f| f.timestamp_us).collect();
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!((90_000..=110_000).contains(&gap), "{times:?}");
    }
}
