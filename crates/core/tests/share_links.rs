//! Share links: golden links per schema version, round trips, bounded and typed failures.
#![cfg(not(target_arch = "wasm32"))]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyshift_core::image::Border;
use keyshift_core::share::{
    self, Animation, AnimationMode, GenerationSettings, MAX_INFLATED_BYTES, ParseqSettings,
    Project, Sampler, Seed, ShareError, ShiftSettings, TravelSettings, Warning,
};
use keyshift_core::travel::easing::Easing;
use keyshift_core::travel::{
    Genesis, GradMethod, GradOptions, Interp, ReplaceDim, ReplaceOrder, TokenOrder, TravelMode,
};
use proptest::prelude::*;

/// A link written by schema v1. It must keep opening, unchanged, in every later version.
const GOLDEN_V1: &str = "v1.Pc7BisJADIDhVwk5KQ6lrdvqznX3tgh7XxaJbZwOtp0yEy0i-uzGi9fw_UluONLAaPGLBCRAGxwanGIYJtEpwaIhscUjXwKNLRD8qbB5Vv0bOFzBRXYQz3IKczp5LUd2JP7C-_eKQ3-O8Wpg0Yc5crJFVi4VJhbxo0tobzj7Vjq0m3prsGPvOu2qolQkPKlY5wabo9unhnr9tc6qV88t2qJcf1T1ZvupItEw9Rz15PfvbrWCcgc_FCMlvN-f";

fn golden_project() -> Project {
    Project {
        name: "Cat to dog".to_owned(),
        prompt: "a (cat:1~0) and a [dog:0.5], by greg rutkowski".to_owned(),
        negative_prompt: "blurry, (lowres:1.2)".to_owned(),
        settings: GenerationSettings {
            width_px: 768,
            height_px: 512,
            steps: 30,
            cfg_scale: 6.5,
            seed: Seed::Fixed(1_234_567_890),
            sampler: Sampler::DpmPp2mKarras,
        },
        animation: Animation::default(),
    }
}

/// A link written by schema v2: a shift-attention animation with every option set.
const GOLDEN_V2: &str = "v2.TZDBboMwEER_xdpTojgISCAp1_ZWReq9qpADG7CCbWQvjdKIfnsXmlS9rcYz-2Z9A6sMQgHPigQ5UbsGJPTemZ5YVWJRKSqS73gplK2FEu_sKOIo-5DieBWNx0b4gc7uEs6akxYbRfoTy78Vx27w_irFonMXj6FIonTJxoBE2jYBihtcdE0tFLt8L6FF3bScy5KUTYQ9OzaxhOrUlKFSHXfNo2zKYw1Fkm62Wb7bP7EjKNN36Bn58nZYrUR6EK_KexVglKCsNlzM2YlnXD2dHFp9orUiQju_yF9lcsxDecdPTU7TsN5GzOlQMXkjwWjvHfPIDyjBo3F89xd695CG_t44mRsHbUpq-Q9a1_GGONo_VKPtDJvEOE7-qX3FfXJWx3H8AQ";

fn golden_v2_project() -> Project {
    Project {
        animation: Animation {
            mode: AnimationMode::ShiftAttention,
            shift: ShiftSettings {
                shift_steps: 12,
                fps: -4.0,
                lead: 3,
                mirror: true,
                remove_zero: true,
                upscale: 1.5,
                ssim_threshold: 0.85,
                ssim_min_step: 0.001,
                ssim_min_pct: 60.0,
            },
            travel: TravelSettings::default(),
            parseq: ParseqSettings::default(),
            temporal: keyshift_core::temporal::Temporal::default(),
            video: keyshift_core::share::VideoSettings::default(),
        },
        ..golden_project()
    }
}

/// A link written by schema v3: a prompt travel with every option set.
const GOLDEN_V3: &str = "v3.bVLNitswEH4Vo9MuqxjbiZ3E0FNbKJQtPfRYMIo0sUX1YyQl6XbJu3fGcczC7sFI-jSj78fzypywwFr2WaQs-Uz5nnE2Bm_HhKjIJOK_vn398RAB1Kf68bcTVETLQQeFxQ56kfQZuqXrYE4hvPDswfhLgNiWefWIhRFS0q6PrH1lF63SwNpts-NsAN0P2FeXFRYlGLFiXXAmj30XpTAor8lr6gfF2rJab-pmu9tjRRR2NBCQ8svP56enrHrOvosQRGRXzoTTFoV5R3zWK3J5k7hKQZzBkKRBHxPdT5tuJicdR9qsNjmyGBDIu-bM6hA8sqVwAs4CWI-u_0Hwd-g0znrLSW_UtksDJjB4gy8U-e6OWu0mMgKLonyDjhL1NIiig1kmybsJYxueNSh7dhNgNEICAtolCPgai4ZWzkBEjBqBIl_zIi_x2_KS8XtPp7TFWzkI56Yk7rgPagpU6eMRAriEdz04iJr440lKQK1nIlXgvI5AHhpktIfw4hdXG5wiio1-qdGS5JZtW7E52bKiZD9I6KOA3uVTF0s3zRqyLGcZPDbtpoI-CNXpRH7W80mYcRDTo9WMWEiDR26WhBvYDF46IxKZx8p6waR3auZK_g-4JSy6X1nxlybqdLjN6X6_HNAJJtnTwBd5VV-v1_8";

fn golden_v3_project() -> Project {
    let mut project = golden_v2_project();
    project.prompt = "a cat THEN(seed=5)\na dog\na bird".into();
    project.animation.mode = AnimationMode::PromptTravel;
    project.animation.travel = TravelSettings {
        steps: "4, 6".into(),
        mode: TravelMode::Replace,
        interp: Interp::Slerp,
        easing: Easing::Bezier {
            x1: 0.3,
            y1: 0.1,
            x2: 0.7,
            y2: 1.0,
        },
        replace_dim: ReplaceDim::Channel,
        replace_order: ReplaceOrder::Different,
        genesis: Genesis::Successive,
        denoise: 0.6,
        embryo_step: 0.4,
        pad: 2,
        slice: "1::2".into(),
        fps: 12.0,
        ssim_threshold: 0.8,
        ssim_min_step: 0.01,
        ssim_min_pct: 50.0,
        ssim_blur: 2.0,
        ssim_crop: 80.0,
        grad: GradOptions {
            iterations: 3,
            alpha: 0.02,
            method: GradMethod::Tanh,
            w_latent: 0.5,
            w_cond: 2.0,
        },
        token_order: TokenOrder::GradMax,
        subseed: 99,
        subseed_strength: 0.25,
    };
    project
}

/// A link written by schema v4: a Parseq document with every render option set.
const GOLDEN_V4: &str = "v4.bVNfb5swEP8q6J5a1UVAQpoi9WmbNGnqNGl72ybkwAWsYpvZplka8d13Rwid1D4gzM93_v3xcQIjNUIBH2SIgo1q24CA3lndB0JlVBH-4_Onr1cesX7Ir38ZyUX82ilXU7HBRgb1jOXStesG544iuurswaEv0ji7pkKPISjTeChOcFB1aKG422wFtKialvryNKOigD1VrBIB1b4pfSU7kreJc-7HGoo0W63zzd32niq81H2Hjig_fnu8uYmyx-iLdE56GAVIozQJs4b5tK3ZZS-dxz-spVX7wBvTopxZWcCeF7frmI7vUBLhSoBWzlmiCW5AAQ61Jbsv6OwFGvpZaDoJ9UqXoSXrre3ohCTeXlCtzETGYJKk_6F9RXo2hJL04OQzdpO8szBYi2hDsmcbDvtOVkiAMgEdnQa-47cAlJ4yJiCJVyKJU3ruRAri0lPWStNu1UpjiOIVt66ekqzVfo8OTaC9Bg16xfx-qCokrc9MWqOxyiN72BCj3rmjXVytaXw4Nr7LTlUsNy2KDOZk04yTfSeh9wJ6k0-eLN08ZMSyfFfOUtN2KmicrEsV2M9q_pJd38rp0GxGNIbWEjcEaVqYwUPZycDmqTJfsMqaeuYK9gnNEhbv32r5lydq2J0H9P5--SAnlGTDk57EWT6KywDSzda2GvTEdIInPO4d_YeUz88TTEvqEPBiLV1WOooFTF_RODsvS0VCvsP4W4Dted6nH2zXc01G5XYI_RDKc_rJSCIuXDQj8cOatO8ufg5O8hBVtrOOXLc8CNMVGmsQxnH8Bw";

fn golden_v4_project() -> Project {
    let mut project = golden_v3_project();
    project.animation.mode = AnimationMode::Parseq;
    project.animation.parseq = ParseqSettings {
        document: r#"{"keyframes":[{"frame":0,"zoom":1},{"frame":10,"zoom":1.2,"zoom_i":"S"}],"options":{"bpm":120,"output_fps":10}}"#.into(),
        frames: "0..=4".into(),
        border: Border::Wrap,
        colour_coherence: false,
    };
    project
}

/// The JSON inside a link.
fn unpack(link: &str) -> String {
    let payload = link.split_once('.').map_or("", |(_, p)| p);
    let packed = URL_SAFE_NO_PAD.decode(payload).unwrap_or_default();
    let json = miniz_oxide::inflate::decompress_to_vec(&packed).unwrap_or_default();
    String::from_utf8(json).unwrap_or_default()
}

fn pack(version: &str, json: &str) -> String {
    let packed = miniz_oxide::deflate::compress_to_vec(json.as_bytes(), 9);
    format!("{version}.{}", URL_SAFE_NO_PAD.encode(packed))
}

#[test]
fn golden_v1_link_opens_to_its_project() {
    let decoded = share::decode(GOLDEN_V1).expect("golden link opens");
    assert_eq!(decoded.version, 1);
    assert_eq!(decoded.warnings, vec![]);
    assert_eq!(decoded.project, golden_project());
}

#[test]
fn golden_v2_link_opens_to_its_animation() {
    let decoded = share::decode(GOLDEN_V2).expect("golden link opens");
    assert_eq!(decoded.version, 2);
    assert_eq!(decoded.warnings, vec![]);
    assert_eq!(decoded.project, golden_v2_project());
}

#[test]
fn encoding_the_golden_project_gives_the_golden_link() {
    assert_eq!(
        share::encode(&golden_v4_project()).expect("encodes"),
        GOLDEN_V4
    );
}

#[test]
fn golden_v4_link_opens_to_its_parseq_document() {
    let decoded = share::decode(GOLDEN_V4).expect("golden link opens");
    assert_eq!(decoded.version, 4);
    assert_eq!(decoded.warnings, vec![]);
    assert_eq!(decoded.project, golden_v4_project());
}

#[test]
fn a_v3_link_migrates_without_a_document() {
    let decoded = share::decode(GOLDEN_V3).expect("opens");
    assert_eq!(decoded.project.animation.parseq, ParseqSettings::default());
    let again = share::encode(&decoded.project).expect("encodes");
    assert!(again.starts_with("v4."));
}

#[test]
fn golden_v3_link_opens_to_its_travel() {
    let decoded = share::decode(GOLDEN_V3).expect("golden link opens");
    assert_eq!(decoded.version, 3);
    assert_eq!(decoded.warnings, vec![]);
    assert_eq!(decoded.project, golden_v3_project());
}

#[test]
fn a_v2_link_migrates_with_default_travel_options() {
    let decoded = share::decode(GOLDEN_V2).expect("opens");
    assert_eq!(decoded.project.animation.travel, TravelSettings::default());
    let again = share::encode(&decoded.project).expect("encodes");
    assert!(again.starts_with("v4."));
    assert_eq!(
        share::decode(&again).expect("opens").project,
        golden_v2_project()
    );
}

#[test]
fn unknown_travel_names_fall_back_with_a_warning() {
    let link = pack(
        "v3",
        r#"{"animation":{"mode":"prompt-travel","travel":{"interp":"cubic","easing":"wobble","slice":"::0","fps":0}}}"#,
    );
    let decoded = share::decode(&link).expect("opens");
    let t = &decoded.project.animation.travel;
    assert_eq!(
        (t.interp, t.easing, t.slice.as_str()),
        (Interp::Lerp, Easing::Linear, "")
    );
    assert!((t.fps - 0.1).abs() < 1e-12);
    let text: Vec<String> = decoded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "animation.travel.easing was wobble, changed to linear",
            "animation.travel.slice was ::0, changed to ",
            "animation.travel.fps was 0, changed to 0.1",
            "animation.travel.interp was cubic, changed to lerp",
        ]
    );
}

#[test]
fn a_v1_link_migrates_to_a_single_image_project() {
    let decoded = share::decode(GOLDEN_V1).expect("opens");
    assert_eq!(decoded.project.animation, Animation::default());
    assert_eq!(decoded.project.animation.mode, AnimationMode::Single);
    let again = share::encode(&decoded.project).expect("encodes");
    assert!(again.starts_with("v4."));
    assert_eq!(
        share::decode(&again).expect("opens").project,
        golden_project()
    );
}

#[test]
fn animation_values_out_of_range_are_adjusted_with_warnings() {
    let json = r#"{"animation":{"mode":"deforum","shift":{"shift_steps":0,"fps":1000,
        "lead":-2,"upscale":0,"ssim_threshold":2,"ssim_min_pct":150,"rife":2},"travel":{}}}"#;
    let decoded = share::decode(&pack("v2", json)).expect("opens");
    let a = &decoded.project.animation;
    assert_eq!(a.mode, AnimationMode::Single);
    assert_eq!(
        (a.shift.shift_steps, a.shift.fps, a.shift.lead),
        (1, 240.0, 0)
    );
    assert_eq!(
        (
            a.shift.upscale,
            a.shift.ssim_threshold,
            a.shift.ssim_min_pct
        ),
        (0.1, 1.0, 100.0)
    );
    let text: Vec<String> = decoded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        vec![
            "ignored unknown field \"animation.travel\"",
            "ignored unknown field \"animation.shift.rife\"",
            "unknown animation mode \"deforum\", using single",
            "animation.shift.fps was 1000, changed to 240",
            "animation.shift.upscale was 0, changed to 0.1",
            "animation.shift.ssim_threshold was 2, changed to 1",
            "animation.shift.ssim_min_pct was 150, changed to 100",
            "animation.shift.shift_steps was 0, changed to 1",
            "animation.shift.lead was -2, changed to 0",
        ]
    );
}

#[test]
fn a_whole_url_or_a_hash_prefixed_fragment_opens_too() {
    let url = format!("https://example.org/keyshift/#{GOLDEN_V1}");
    assert_eq!(share::decode(&url).expect("url").project, golden_project());
    let hashed = format!("#{GOLDEN_V1}");
    assert_eq!(
        share::decode(&hashed).expect("hash").project,
        golden_project()
    );
}

#[test]
fn typed_errors_for_bad_links() {
    assert_eq!(share::decode(""), Err(ShareError::Empty));
    assert_eq!(share::decode("https://x/#"), Err(ShareError::Empty));
    assert_eq!(share::decode("hello"), Err(ShareError::MissingVersion));
    assert_eq!(
        share::decode("x1.abc"),
        Err(ShareError::UnknownVersion("x1".to_owned()))
    );
    assert_eq!(
        share::decode("v0.abc"),
        Err(ShareError::UnknownVersion("v0".to_owned()))
    );
    assert_eq!(
        share::decode("v5.abc"),
        Err(ShareError::NewerVersion {
            found: 5,
            supported: 4
        })
    );
    assert_eq!(
        share::decode("v1.ab$cd"),
        Err(ShareError::BadBase64 { position: 2 })
    );
    // Cut at a length base64 cannot have.
    assert_eq!(share::decode("v1.abcde"), Err(ShareError::Truncated));
    // A link cut short while copying: valid base64 but truncated deflate data.
    let cut = &GOLDEN_V1[..GOLDEN_V1.len() - 12];
    assert_eq!(share::decode(cut), Err(ShareError::BadCompression));
    assert!(matches!(
        share::decode(&pack("v1", "{\"name\": 3}")),
        Err(ShareError::BadJson { line: 1, .. })
    ));
    assert!(matches!(
        share::decode(&pack("v1", "{\"name\": \"a\",")),
        Err(ShareError::BadJson { line: 1, .. })
    ));
}

#[test]
fn a_decompression_bomb_is_rejected_at_the_limit() {
    let big = format!("{{\"name\":\"{}\"}}", "a".repeat(MAX_INFLATED_BYTES + 10));
    let link = pack("v1", &big);
    assert!(link.len() < 10_000, "the bomb is small: {}", link.len());
    assert_eq!(
        share::decode(&link),
        Err(ShareError::TooLarge {
            limit: MAX_INFLATED_BYTES
        })
    );
}

#[test]
fn out_of_range_values_are_adjusted_with_warnings() {
    let json = r#"{"name":"x","settings":{"width":1000,"height":20,"steps":0,"cfg_scale":99,
        "seed":-7,"sampler":"Heun","hires":true},"future_field":1}"#;
    let decoded = share::decode(&pack("v1", json)).expect("opens");
    let s = &decoded.project.settings;
    assert_eq!((s.width_px, s.height_px, s.steps), (1000, 64, 1));
    assert_eq!(s.cfg_scale, 30.0);
    assert_eq!(s.seed, Seed::Random);
    assert_eq!(s.sampler, Sampler::EulerAncestral);
    let text: Vec<String> = decoded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        vec![
            "ignored unknown field \"future_field\"",
            "ignored unknown field \"settings.hires\"",
            "settings.height was 20, changed to 64",
            "settings.steps was 0, changed to 1",
            "settings.cfg_scale was 99, changed to 30",
            "settings.seed was -7, changed to -1 (random)",
            "unknown sampler \"Heun\", using Euler a",
        ]
    );
    assert!(matches!(decoded.warnings[0], Warning::UnknownField { .. }));
}

#[test]
fn sizes_round_to_multiples_of_eight() {
    let decoded =
        share::decode(&pack("v1", r#"{"settings":{"width":515,"height":3000}}"#)).expect("opens");
    assert_eq!(decoded.project.settings.width_px, 512);
    assert_eq!(decoded.project.settings.height_px, 2048);
}

#[test]
fn missing_fields_take_defaults() {
    let decoded = share::decode(&pack("v1", "{}")).expect("opens");
    assert_eq!(decoded.warnings, vec![]);
    assert_eq!(
        decoded.project,
        Project {
            name: String::new(),
            ..Project::default()
        }
    );
}

fn any_settings() -> impl Strategy<Value = GenerationSettings> {
    (
        8u32..=256,
        8u32..=256,
        1u32..=150,
        0u32..=300,
        prop_oneof![Just(Seed::Random), any::<u32>().prop_map(Seed::Fixed)],
        prop::sample::select(Sampler::ALL.to_vec()),
    )
        .prop_map(
            |(w, h, steps, cfg_tenths, seed, sampler)| GenerationSettings {
                width_px: w * 8,
                height_px: h * 8,
                steps,
                cfg_scale: f64::from(cfg_tenths) / 10.0,
                seed,
                sampler,
            },
        )
}

fn any_animation() -> impl Strategy<Value = Animation> {
    (
        prop::sample::select(AnimationMode::ALL.to_vec()),
        (
            1u32..=1000,
            -3600i32..=240,
            0u32..=1000,
            any::<bool>(),
            any::<bool>(),
        ),
        (1u32..=80, 0u32..=100, 1u32..=1000, 0u32..=100),
        any_travel(),
        any_parseq(),
    )
        .prop_map(
            |(
                mode,
                (shift_steps, fps, lead, mirror, remove_zero),
                (up, thr, step, pct),
                travel,
                parseq,
            )| {
                Animation {
                    travel,
                    parseq,
                    temporal: keyshift_core::temporal::Temporal::default(),
                    video: keyshift_core::share::VideoSettings::default(),
                    mode,
                    shift: ShiftSettings {
                        shift_steps,
                        fps: f64::from(fps) / 2.0,
                        lead,
                        mirror,
                        remove_zero,
                        upscale: f64::from(up) / 10.0,
                        ssim_threshold: f64::from(thr) / 100.0,
                        ssim_min_step: f64::from(step) / 1000.0,
                        ssim_min_pct: f64::from(pct),
                    },
                }
            },
        )
}

fn any_parseq() -> impl Strategy<Value = ParseqSettings> {
    (
        prop_oneof![
            Just(String::new()),
            Just(
                r#"{"keyframes":[{"frame":0,"seed":-1},{"frame":119}],"managedFields":["seed"]}"#
                    .to_owned()
            ),
        ],
        prop_oneof![
            Just(String::new()),
            Just("0..4".to_owned()),
            Just("3".to_owned())
        ],
        prop::sample::select(vec![Border::Replicate, Border::Wrap]),
        any::<bool>(),
    )
        .prop_map(
            |(document, frames, border, colour_coherence)| ParseqSettings {
                document,
                frames,
                border,
                colour_coherence,
            },
        )
}

fn any_travel() -> impl Strategy<Value = TravelSettings> {
    (
        (
            prop::sample::select(vec!["1", "30", "2, 3", "4,4,4"]),
            prop::sample::select(TravelMode::ALL.iter().map(|(v, _)| *v).collect::<Vec<_>>()),
            prop::sample::select(Interp::ALL.iter().map(|(v, _)| *v).collect::<Vec<_>>()),
            prop::sample::select(vec![
                Easing::Linear,
                Easing::EaseInOut,
                Easing::Bezier {
                    x1: 0.25,
                    y1: -0.5,
                    x2: 1.0,
                    y2: 2.0,
                },
            ]),
        ),
        (
            prop::sample::select(ReplaceDim::ALL.iter().map(|(v, _)| *v).collect::<Vec<_>>()),
            prop::sample::select(
                ReplaceOrder::ALL
                    .iter()
                    .map(|(v, _)| *v)
                    .collect::<Vec<_>>(),
            ),
            prop::sample::select(Genesis::ALL.iter().map(|(v, _)| *v).collect::<Vec<_>>()),
        ),
        (
            1u32..=100,
            1u32..=200,
            0u32..=1000,
            prop::sample::select(vec!["", "::2", "1:-1", "5"]),
            1u32..=240,
        ),
    )
        .prop_map(
            |(
                (steps, mode, interp, easing),
                (replace_dim, replace_order, genesis),
                (denoise, embryo, pad, slice, fps),
            )| {
                TravelSettings {
                    steps: steps.into(),
                    mode,
                    interp,
                    easing,
                    replace_dim,
                    replace_order,
                    genesis,
                    denoise: f64::from(denoise) / 100.0,
                    embryo_step: f64::from(embryo) / 10.0,
                    pad,
                    slice: slice.into(),
                    fps: f64::from(fps),
                    ..TravelSettings::default()
                }
            },
        )
}

fn any_project() -> impl Strategy<Value = Project> {
    (
        any::<String>(),
        any::<String>(),
        any::<String>(),
        any_settings(),
        any_animation(),
    )
        .prop_map(
            |(name, prompt, negative_prompt, settings, animation)| Project {
                name,
                prompt,
                negative_prompt,
                settings,
                animation,
            },
        )
}

proptest! {
    #[test]
    fn round_trip(project in any_project()) {
        let link = share::encode(&project).expect("encodes");
        prop_assert!(link.starts_with("v4."));
        prop_assert!(link.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
        let decoded = share::decode(&link).expect("decodes");
        prop_assert_eq!(decoded.warnings, vec![]);
        prop_assert_eq!(decoded.project, project);
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        let _ = share::decode(&text);
        let _ = share::decode(&format!("v1.{text}"));
    }

    #[test]
    fn corrupting_a_link_gives_an_error_or_a_project(pos in 3usize..60, byte in b'0'..=b'z') {
        let mut link = share::encode(&golden_project()).expect("encodes").into_bytes();
        let at = pos.min(link.len() - 1);
        link[at] = byte;
        let text = String::from_utf8_lossy(&link).into_owned();
        let _ = share::decode(&text);
    }
}

#[test]
fn temporal_consistency_travels_in_the_link_and_is_absent_while_off() {
    use keyshift_core::image::ColourSpace;
    use keyshift_core::temporal::{Interpolation, Temporal};
    let off = Project::default();
    let link = share::encode(&off).expect("encodes");
    assert_eq!(share::decode(&link).expect("opens").project, off);
    // While off, the wire has no `temporal` (links stay as they were).
    let inflated = unpack(&link);
    assert!(!inflated.contains("temporal"), "{inflated}");
    let mut interpolation = Interpolation::default();
    interpolation.unet_config.ema = 0.5;
    interpolation.unet_config.use_interpolation.value = true;
    let mut on = Project::default();
    on.animation.temporal = Temporal {
        interpolation: Some(interpolation),
        colour: Some(ColourSpace::Hsv),
    };
    let link = share::encode(&on).expect("encodes");
    assert!(unpack(&link).contains("\"temporal\""));
    let decoded = share::decode(&link).expect("opens");
    assert_eq!(decoded.project, on);
    let mut video = Project::default();
    video.animation.video.fps = 29.97;
    video.animation.video.stride = 2;
    video.animation.mode = AnimationMode::Video;
    let link = share::encode(&video).expect("encodes");
    assert_eq!(share::decode(&link).expect("opens").project, video);
    assert_eq!(
        video.animation.video.frame_indices(1.0),
        (0..29).step_by(2).collect::<Vec<_>>()
    );
    assert!((video.animation.video.output_fps() - 14.985).abs() < 1e-9);
    assert!(decoded.warnings.is_empty(), "{:?}", decoded.warnings);
}
