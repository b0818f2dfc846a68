//! The Parseq sequencer beyond the conformance cases: document round trips, incremental
//! re-rendering, Deforum schedule strings, frame plans and typed errors.

use keyshift_core::parseq::bench::{BENCH_FIELDS, bench_document, render_bench};
use keyshift_core::parseq::deforum::{
    PromptPart, ScheduleVariant, field_schedule, prompt_schedule,
};
use keyshift_core::parseq::document::Document;
use keyshift_core::parseq::render::{RenderError, Sequencer, render};
use keyshift_core::plan::{FramePlan, PlanSource};
use keyshift_core::prompt::{Fidelity, ScheduleOptions};
use serde_json::{Value, json};

fn doc(v: Value) -> Document {
    match Document::from_json(v) {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    }
}

fn rendered(d: &Document) -> Sequencer {
    let mut s = match Sequencer::new(d.clone()) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    if let Err(e) = s.render_all() {
        panic!("{e}");
    }
    s
}

#[test]
fn documents_round_trip_through_export() {
    let cases: Value =
        serde_json::from_str(include_str!("data/parseq_render_cases.public.json")).unwrap();
    let mut n = 0;
    for case in cases["cases"].as_array().unwrap() {
        let Ok(d) = Document::from_json(case["input"].clone()) else {
            continue;
        };
        let again = Document::from_json(d.to_json()).unwrap();
        assert_eq!(again, d, "{}", case["id"]);
        n += 1;
    }
    assert!(n >= 36);
}

#[test]
fn legacy_prompts_become_v2_with_defaults() {
    let d = doc(json!({
        "prompts": {"positive": "cat", "negative": "dog"},
        "keyframes": [{"frame": 0}, {"frame": 8}]
    }));
    let p = &d.to_json()["prompts"];
    assert_eq!(p["format"], "v2");
    assert_eq!(p["commonPromptPos"], "append");
    assert_eq!(p["promptList"][0]["positive"], "cat");
    assert_eq!(p["promptList"][0]["to"], 8);
    assert_eq!(d.to_json()["options"]["output_fps"], 20);
    assert_eq!(d.managed_fields().len(), 63);
    assert_eq!(
        d.to_json()["displayedFields"].as_array().map(Vec::len),
        Some(5)
    );
}

#[test]
fn one_keyframe_is_refused_with_parseqs_message() {
    let d = doc(json!({"managedFields": ["zoom"], "keyframes": [{"frame": 0, "zoom": 1}]}));
    let err = Sequencer::new(d).err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("There must be at least 2 keyframes to render.")
    );
}

#[test]
fn a_bad_formula_names_field_and_frame() {
    let d = doc(json!({"managedFields": ["zoom"],
        "keyframes": [{"frame": 0, "zoom": 1}, {"frame": 3, "zoom_i": "1 +"}, {"frame": 6}]}));
    match render(&d) {
        Err(RenderError::Parse { field, frame, .. }) => {
            assert_eq!((field.as_str(), frame), ("zoom", 3));
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn editing_one_keyframe_equals_a_full_render() {
    let base = bench_document().unwrap();
    let mut seq = rendered(&base);
    // `scale` uses only local formulas: the edit re-renders from the formula in force at the
    // previous keyframe to the next keyframe formula.
    let touched = seq.set_value(4200, "scale", Some(3.5)).unwrap();
    assert_eq!(touched, vec![("scale".to_owned(), 4000..5000)]);
    // `zoom` uses `C`, which reads every keyframe: the whole field.
    let touched = seq.set_value(4200, "zoom", Some(3.5)).unwrap();
    assert_eq!(touched, vec![("zoom".to_owned(), 0..10_000)]);
    for (frame, field, value) in [
        (0, "scale", Some(9.0)),
        (9999, "scale", Some(-2.0)),
        (5100, "scale", None),
        (5100, "angle", None),
        (300, "fov", Some(70.0)),
    ] {
        seq.set_value(frame, field, value).unwrap();
    }
    let touched = seq
        .set_formula(4200, "prompt_weight_1", Some("sin(p=13) + S"))
        .unwrap();
    assert_eq!(touched, vec![("prompt_weight_1".to_owned(), 0..10_000)]);
    assert!(matches!(
        seq.set_value(4201, "zoom", Some(1.0)),
        Err(RenderError::NoKeyframeAt(4201))
    ));
    // A field the document does not manage changes the document but re-renders nothing.
    assert_eq!(
        seq.set_value(4200, "cn_1_weight", Some(0.5)).ok(),
        Some(Vec::new())
    );
    let fresh = rendered(seq.document());
    assert_eq!(seq.rendered(), fresh.rendered());
    assert_ne!(rendered(&base).rendered(), fresh.rendered());
    assert_eq!(seq.rendered().fields.len(), BENCH_FIELDS.len());
}

#[test]
fn edits_re_render_prompts_that_mention_the_field() {
    let d = doc(json!({
        "managedFields": ["angle", "zoom"],
        "prompts": {"positive": "a (cat:${angle})", "negative": "blur"},
        "keyframes": [{"frame": 0, "angle": 1, "zoom": 1}, {"frame": 4, "angle": 0},
                      {"frame": 8, "angle": 2, "zoom": 2}]
    }));
    let mut seq = rendered(&d);
    let touched = seq.set_value(4, "angle", Some(5.0)).unwrap();
    assert_eq!(touched, vec![("angle".to_owned(), 0..9)]);
    let fresh = rendered(seq.document());
    assert_eq!(seq.rendered(), fresh.rendered());
    assert_eq!(
        fresh.rendered().prompts.as_ref().map(|p| p[4].clone()),
        Some("a (cat:5.00000) --neg blur".to_owned())
    );
}

#[test]
fn bench_render_is_deterministic() {
    let d = bench_document().unwrap();
    let a = render_bench(&d).unwrap();
    assert_eq!(a.frames, 10_000);
    assert_eq!(a.fields, 20);
    assert_eq!(Some(a), render_bench(&d).ok());
}

fn small() -> Sequencer {
    rendered(&doc(json!({
        "managedFields": ["angle", "seed", "scale", "strength", "zoom"],
        "prompts": {"positive": "a (cat:${angle})", "negative": "blur"},
        "keyframes": [
            {"frame": 0, "angle": 1, "seed": 10.5, "scale": 7, "strength": 0.5, "zoom": 1},
            {"frame": 4, "angle": 0, "seed": 10.5, "scale": 9, "strength": 0.7, "zoom": 1.2}
        ]
    })))
}

#[test]
fn deforum_schedules_are_written_as_parseq_writes_them() {
    let s = small();
    let r = s.rendered();
    assert_eq!(
        field_schedule(r, "angle", ScheduleVariant::Absolute).as_deref(),
        Some("0: (1), 1: (0.75), 2: (0.5), 3: (0.25), 4: (0)")
    );
    assert_eq!(
        field_schedule(r, "angle", ScheduleVariant::Delta).as_deref(),
        Some("0: (1), 1: (-0.25), 2: (-0.25), 3: (-0.25), 4: (-0.25)")
    );
    let prompts = prompt_schedule(r, PromptPart::Full).unwrap_or_default();
    assert!(
        prompts.starts_with("\"0\": \"a (cat:1.00000) --neg blur\",\n\"1\": \"a (cat:0.75000)")
    );
    let neg = prompt_schedule(r, PromptPart::Negative).unwrap_or_default();
    assert!(neg.starts_with("\"0\": \" blur\""));
    assert_eq!(field_schedule(r, "nope", ScheduleVariant::Delta), None);
}

#[test]
fn frame_plans_carry_prompts_seeds_cfg_denoise_and_motion() {
    let s = small();
    let plan = FramePlan::from_parseq(
        s.rendered(),
        20.0,
        ScheduleOptions::steps(20),
        Fidelity::Keyshift,
    )
    .unwrap();
    assert_eq!(plan.source, PlanSource::Parseq { fps: 20.0 });
    assert_eq!(plan.frames.len(), 5);
    let f = &plan.frames[2];
    assert_eq!(f.positive.text, "a (cat:0.50000)");
    assert_eq!(f.negative.text, "blur");
    assert_eq!((f.seed, f.subseed, f.subseed_strength), (10, 11, 0.5));
    assert_eq!(f.cfg_scale, 8.0);
    assert_eq!(f.denoise_strength, Some(0.6));
    assert_eq!(f.motion.0.get("zoom"), Some(&1.1));
    assert_eq!(f.motion.0.get("angle"), Some(&0.5));
}

#[test]
fn option_strings_stay_strings_in_variables_but_not_in_arithmetic() {
    let s = rendered(&doc(json!({
        "managedFields": ["angle", "zoom"],
        "options": {"output_fps": "30", "bpm": 120},
        "prompts": {"format": "v2", "enabled": false, "promptList": []},
        "keyframes": [{"frame": 0, "angle_i": "fps + 1", "zoom_i": "1s + 0"}, {"frame": 2}]
    })));
    let r = s.rendered();
    // JS: "30" + 1 = "301", then Number("301").
    assert_eq!(r.field("angle").map(|f| f.values[0]), Some(301.0));
    assert_eq!(r.field("zoom").map(|f| f.values[0]), Some(30.0));
}

#[test]
fn malformed_documents_are_typed_errors() {
    use keyshift_core::parseq::document::DocumentError;
    assert!(matches!(
        Document::from_json_str("[1, 2]"),
        Err(DocumentError::NotAnObject)
    ));
    assert!(matches!(
        Document::from_json_str("{"),
        Err(DocumentError::Json(_))
    ));
    assert!(matches!(
        Document::from_json(json!({"keyframes": {"frame": 0}})),
        Err(DocumentError::Shape {
            part: "keyframes",
            ..
        })
    ));
    let no_fps = doc(json!({"options": {"output_fps": 0},
        "keyframes": [{"frame": 0}, {"frame": 2}]}));
    assert_eq!(
        Sequencer::new(no_fps)
            .err()
            .map(|e| e.to_string())
            .as_deref(),
        Some("No output_fps found.")
    );
    let no_bpm = doc(json!({"options": {"bpm": null},
        "keyframes": [{"frame": 0}, {"frame": 2}]}));
    assert_eq!(
        Sequencer::new(no_bpm)
            .err()
            .map(|e| e.to_string())
            .as_deref(),
        Some("No bpm found.")
    );
    let late = doc(
        json!({"managedFields": ["zoom"], "prompts": {"format": "v2", "enabled": false},
        "keyframes": [{"frame": 3, "zoom": 1}, {"frame": 5}]}),
    );
    assert!(matches!(render(&late), Err(RenderError::FirstFrameNotZero(f)) if f == "zoom"));
    let huge = doc(
        json!({"managedFields": ["zoom"], "keyframes": [{"frame": 0}, {"frame": 1_000_000_000}]}),
    );
    assert!(matches!(
        Sequencer::new(huge),
        Err(RenderError::TooManyFrames { .. })
    ));
}

#[test]
fn a_missing_prompt_text_reads_as_undefined_as_in_parseq() {
    let d = doc(json!({
        "managedFields": ["zoom"],
        "prompts": {"positive": "cat"},
        "keyframes": [{"frame": 0, "zoom": 1}, {"frame": 1}]
    }));
    assert!(
        d.to_json()["prompts"]["promptList"][0]
            .get("negative")
            .is_none()
    );
    let s = rendered(&d);
    assert_eq!(
        s.rendered().prompts.as_deref(),
        Some(
            &[
                "cat --neg undefined".to_owned(),
                "cat --neg undefined".to_owned()
            ][..]
        )
    );
}

#[test]
fn retiming_keeps_seconds_or_beats_when_locked() {
    let mut d = doc(json!({
        "keyframeLock": "seconds",
        "options": {"output_fps": 10, "bpm": 120},
        "prompts": [{"name": "a", "positive": "x", "negative": "", "allFrames": false,
                     "from": 0, "to": 5, "overlap": {"type": "linear", "inFrames": 3, "outFrames": 0, "custom": ""}}],
        "keyframes": [{"frame": 0}, {"frame": 7}, {"frame": 10}]
    }));
    d.retime(24.0, 120.0);
    let frames: Vec<i64> = d
        .keyframes()
        .iter()
        .filter_map(|k| k["frame"].as_i64())
        .collect();
    assert_eq!(frames, vec![0, 17, 24]);
    let p = &d.to_json()["prompts"]["promptList"][0];
    assert_eq!(
        (p["to"].as_i64(), p["overlap"]["inFrames"].as_i64()),
        (Some(12), Some(7))
    );
    assert_eq!(d.option("output_fps"), Some(&json!(24)));

    let mut beats = doc(
        json!({"keyframeLock": "beats", "options": {"output_fps": 20, "bpm": 120},
        "keyframes": [{"frame": 0}, {"frame": 10}]}),
    );
    beats.retime(20.0, 60.0);
    assert_eq!(beats.keyframes()[1]["frame"], json!(20));
    let mut frames_lock = doc(json!({"keyframes": [{"frame": 0}, {"frame": 10}]}));
    frames_lock.retime(60.0, 100.0);
    assert_eq!(frames_lock.keyframes()[1]["frame"], json!(10));
}

#[test]
fn reverse_render_plans_frames_backwards() {
    let d = doc(json!({
        "managedFields": ["angle"],
        "reverseRender": true,
        "prompts": {"positive": "x", "negative": ""},
        "keyframes": [{"frame": 0, "angle": 0}, {"frame": 2, "angle": 2}]
    }));
    let s = rendered(&d);
    let plan = FramePlan::from_parseq(
        s.rendered(),
        20.0,
        ScheduleOptions::steps(20),
        Fidelity::Keyshift,
    )
    .unwrap();
    let angles: Vec<f64> = plan.frames.iter().map(|f| f.motion.0["angle"]).collect();
    assert_eq!(angles, vec![2.0, 1.0, 0.0]);
    assert_eq!(plan.frames[0].generation_index, 0);
    assert_eq!(s.rendered().frame_json(0)["angle_delta"], json!(-1));
}

#[test]
fn fractional_keyframes_are_points_but_the_ends_must_be_whole() {
    let s = rendered(&doc(json!({
        "managedFields": ["zoom"],
        "prompts": {"format": "v2", "enabled": false},
        "keyframes": [{"frame": 0, "zoom": 0}, {"frame": 2.5, "zoom": 5, "zoom_i": "S"},
                      {"frame": 5, "zoom": 0}]
    })));
    let zoom = s.rendered().field("zoom").map(|f| f.values.clone());
    // The formula on frame 2.5 never starts (no whole frame equals it); `L` runs throughout.
    assert_eq!(zoom, Some(vec![0.0, 2.0, 4.0, 4.0, 2.0, 0.0]));
    let d = doc(json!({"keyframes": [{"frame": 0}, {"frame": 4.5}]}));
    assert!(matches!(Sequencer::new(d), Err(RenderError::BadFrame(_))));
}
