//! Module checks: text encoder, UNet (with the timestep embedding), VAE decode and encode.

use std::collections::BTreeMap;

use burn::tensor::{Device, Tensor, TensorData};

use super::{Check, Golden, GoldenReport, MODULE_TOLERANCE, compare};
use crate::hooks::NoHook;
use crate::model::SdModel;

/// The module checks (text encoder, UNet, VAE) for one loaded model.
pub fn check_model(
    model: &SdModel,
    golden: &mut Golden,
    label: &str,
    device: &Device,
    report: &mut GoldenReport,
) {
    check_text_encoder(model, golden, label, device, report);
    check_unet(model, golden, label, device, report);
    check_vae(model, golden, label, device, report);
}

/// One section of checks for one loaded layout.
pub(super) type Section = fn(&SdModel, &mut Golden, &str, &Device, &mut GoldenReport);

pub(super) fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default()
}

pub(super) fn check_text_encoder(
    model: &SdModel,
    golden: &mut Golden,
    label: &str,
    _device: &Device,
    report: &mut GoldenReport,
) {
    let Some(ids) = golden.json["text_encoder"]["input_ids"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    r.as_array()
                        .map(|t| {
                            t.iter()
                                .filter_map(|v| v.as_u64())
                                .map(|v| v as u32)
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect::<Vec<Vec<u32>>>()
        })
    else {
        return;
    };
    check_token_ids(model, golden, label, &ids, report);
    // A single file can hold more text-encoder layers than the diffusers model uses (OpenCLIP's 24
    // vs 23): the reference "last" layer is then the model's native CLIP-skip layer.
    let offset = model.info.native_clip_skip.saturating_sub(1);
    let layers = model.clip.num_layers().saturating_sub(offset);
    let states = model.clip.hidden_states(&ids, layers);
    let n = states.len();
    let (Some(first), Some(last)) = (states.first(), states.last()) else {
        report.fail(format!("{label}/te"), "the text encoder returned no states");
        return;
    };
    let (first, last) = (first.clone(), model.clip.final_norm(last.clone()));
    let mut outputs: BTreeMap<&str, Vec<f32>> = BTreeMap::new();
    outputs.insert("te.embeddings", to_vec(first));
    outputs.insert("te.last_hidden_state", to_vec(last.clone()));
    if n >= 2 {
        outputs.insert("te.penultimate_hidden_state", to_vec(states[n - 2].clone()));
        outputs.insert(
            "te.penultimate_final_ln",
            to_vec(model.clip.final_norm(states[n - 2].clone())),
        );
    }
    outputs.insert("te.pooler_output", to_vec(model.clip.pooled(last, &ids)));
    // Only the outputs this fixture has references for (another model's fixture may have fewer).
    for (name, got) in outputs {
        if let Some((want, _)) = golden.tensor(name) {
            let check_name = format!("{label}/{name}");
            report.push(compare(&check_name, &got, &want, MODULE_TOLERANCE));
        }
    }
}

/// Keyshift's tokenizer gives the fixture's token ids for its prompts (`text_encoder.prompts`
/// against `text_encoder.input_ids` and the `te.input_ids` tensor).
fn check_token_ids(
    model: &SdModel,
    golden: &mut Golden,
    label: &str,
    ids: &[Vec<u32>],
    report: &mut GoldenReport,
) {
    let name = format!("{label}/te.input_ids");
    let want: Vec<i64> = ids.iter().flatten().map(|&i| i64::from(i)).collect();
    if golden.has("te.input_ids") && golden.ints("te.input_ids").as_ref() != Some(&want) {
        report.fail(
            &name,
            "golden.json's input_ids differ from the te.input_ids tensor",
        );
        return;
    }
    let Some(prompts) = golden.json["text_encoder"]["prompts"].as_array().cloned() else {
        report.skip(name, "the fixture lists no prompts for its input_ids");
        return;
    };
    let Ok(tokenizer) = keyshift_core::tokens::ClipTokenizer::embedded() else {
        report.fail(name, "the embedded tokenizer did not load");
        return;
    };
    let family = crate::generate::family(model);
    let mismatch = prompts.iter().zip(ids).find_map(|(prompt, want_row)| {
        let text = prompt.as_str().unwrap_or_default();
        let got = tokenizer.context_ids(text, family).ok();
        (got.as_deref() != Some(want_row.as_slice()))
            .then(|| format!("{text:?} tokenizes to {got:?}; the fixture has {want_row:?}"))
    });
    let mismatch = mismatch.or_else(|| {
        (prompts.len() != ids.len())
            .then(|| format!("{} prompts for {} rows of ids", prompts.len(), ids.len()))
    });
    report.push(Check {
        name,
        passed: mismatch.is_none(),
        detail: mismatch.unwrap_or_else(|| format!("{} prompts tokenized", prompts.len())),
    });
}

pub(super) fn tensor4(values: Vec<f32>, shape: &[usize], device: &Device) -> Option<Tensor<4>> {
    let shape: [usize; 4] = shape.try_into().ok()?;
    Some(Tensor::<4>::from_data(
        TensorData::new(values, shape),
        device,
    ))
}

pub(super) fn tensor3(values: Vec<f32>, shape: &[usize], device: &Device) -> Option<Tensor<3>> {
    let shape: [usize; 3] = shape.try_into().ok()?;
    Some(Tensor::<3>::from_data(
        TensorData::new(values, shape),
        device,
    ))
}

pub(super) fn check_unet(
    model: &SdModel,
    golden: &mut Golden,
    label: &str,
    device: &Device,
    report: &mut GoldenReport,
) {
    let Some(cases) = golden.json["unet"]["cases"].as_object().cloned() else {
        return;
    };
    for (name, case) in cases {
        let check_name = format!("{label}/{name}");
        let (Some(sample), Some(context), Some(t)) = (
            case["sample"].as_str(),
            case["context"].as_str(),
            case["timestep"].as_f64(),
        ) else {
            let why = "the case lacks its sample, context or timestep";
            report.cannot_run(&case, check_name, why);
            golden.excuse(name.clone());
            continue;
        };
        let inputs = golden
            .tensor(sample)
            .zip(golden.tensor(context))
            .zip(golden.tensor(&name));
        let Some((((x, xs), (c, cs)), (want, _))) = inputs else {
            let why = "a reference tensor of the case is missing from golden.safetensors";
            report.cannot_run(&case, check_name, why);
            golden.excuse(name.clone());
            continue;
        };
        let (Some(x), Some(c)) = (tensor4(x, &xs, device), tensor3(c, &cs, device)) else {
            report.push(Check {
                name: check_name,
                passed: false,
                detail: "reference has an unexpected rank".into(),
            });
            continue;
        };
        let mut got = None;
        super::guarded(report, &check_name, |_| {
            got = Some(to_vec(model.unet.forward(x, t, &c, &mut NoHook)));
        });
        let Some(got) = got else {
            // Its timestep embeddings are not checked either: the panic is the report.
            golden.excuse(format!("unet.time_proj_t{}", t as i64));
            golden.excuse(format!("unet.time_emb_t{}", t as i64));
            continue;
        };
        report.push(compare(&check_name, &got, &want, MODULE_TOLERANCE));
        check_time(model, golden, label, t, report);
    }
}

fn check_time(
    model: &SdModel,
    golden: &mut Golden,
    label: &str,
    t: f64,
    report: &mut GoldenReport,
) {
    let suffix = format!("t{}", t as i64);
    if let Some((want, _)) = golden.tensor(&format!("unet.time_proj_{suffix}")) {
        let got = to_vec(model.unet.time_projection(&[t]));
        report.push(compare(
            &format!("{label}/unet.time_proj_{suffix}"),
            &got,
            &want,
            MODULE_TOLERANCE,
        ));
    }
    if let Some((want, _)) = golden.tensor(&format!("unet.time_emb_{suffix}")) {
        let got = to_vec(model.unet.time_embedding(&[t]));
        report.push(compare(
            &format!("{label}/unet.time_emb_{suffix}"),
            &got,
            &want,
            MODULE_TOLERANCE,
        ));
    }
}

pub(super) fn check_vae(
    model: &SdModel,
    golden: &mut Golden,
    label: &str,
    device: &Device,
    report: &mut GoldenReport,
) {
    let pairs = [
        ("vae.decode_in", "vae.decode_out"),
        ("vae.encode_in", "vae.encode_moments"),
    ];
    for (input, output) in pairs {
        if !golden.has(input) && !golden.has(output) {
            continue;
        }
        let name = format!("{label}/{output}");
        let Some(((x, shape), (want, _))) = golden.tensor(input).zip(golden.tensor(output)) else {
            report.fail(
                name,
                format!("{input} and {output} come as a pair; one is missing"),
            );
            continue;
        };
        let Some(x) = tensor4(x, &shape, device) else {
            report.fail(name, format!("{input} is not a 4-d tensor"));
            continue;
        };
        let got = if output == "vae.decode_out" {
            Some(model.vae.decode(x))
        } else {
            model.vae.encode_moments(x)
        };
        match got {
            Some(got) => report.push(compare(&name, &to_vec(got), &want, MODULE_TOLERANCE)),
            None => report.fail(name, "this VAE has no encoder"),
        }
    }
}
