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
    check_text_encoder(model, golden, label, report);
    check_unet(model, golden, label, device, report);
    check_vae(model, golden, label, device, report);
}

pub(super) fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default()
}

pub(super) fn missing(name: String) -> Check {
    Check {
        name,
        passed: false,
        detail: "reference tensor missing from golden.safetensors".into(),
    }
}

fn check_text_encoder(
    model: &SdModel,
    golden: &mut Golden,
    label: &str,
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
    // A single file can hold more text-encoder layers than the diffusers model uses (OpenCLIP's 24
    // vs 23): the reference "last" layer is then the model's native CLIP-skip layer.
    let offset = model.info.native_clip_skip.saturating_sub(1);
    let layers = model.clip.num_layers().saturating_sub(offset);
    let states = model.clip.hidden_states(&ids, layers);
    let n = states.len();
    let last = model.clip.final_norm(states[n - 1].clone());
    let mut outputs: BTreeMap<&str, Vec<f32>> = BTreeMap::new();
    outputs.insert("te.embeddings", to_vec(states[0].clone()));
    outputs.insert("te.last_hidden_state", to_vec(last.clone()));
    if n >= 2 {
        outputs.insert("te.penultimate_hidden_state", to_vec(states[n - 2].clone()));
        outputs.insert(
            "te.penultimate_final_ln",
            to_vec(model.clip.final_norm(states[n - 2].clone())),
        );
    }
    outputs.insert("te.pooler_output", to_vec(model.clip.pooled(last, &ids)));
    for (name, got) in outputs {
        let check_name = format!("{label}/{name}");
        match golden.tensor(name) {
            Some((want, _)) => report.push(compare(&check_name, &got, &want, MODULE_TOLERANCE)),
            None => report.push(missing(check_name)),
        }
    }
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

fn check_unet(
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
            continue;
        };
        let inputs = golden
            .tensor(sample)
            .zip(golden.tensor(context))
            .zip(golden.tensor(&name));
        let Some((((x, xs), (c, cs)), (want, _))) = inputs else {
            report.push(missing(check_name));
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
        let got = to_vec(model.unet.forward(x, t, &c, &mut NoHook));
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

fn check_vae(
    model: &SdModel,
    golden: &mut Golden,
    label: &str,
    device: &Device,
    report: &mut GoldenReport,
) {
    let decode = golden
        .tensor("vae.decode_in")
        .zip(golden.tensor("vae.decode_out"));
    if let Some(((z, zs), (want, _))) = decode
        && let Some(z) = tensor4(z, &zs, device)
    {
        let got = to_vec(model.vae.decode(z));
        let name = format!("{label}/vae.decode_out");
        report.push(compare(&name, &got, &want, MODULE_TOLERANCE));
    }
    let encode = golden
        .tensor("vae.encode_in")
        .zip(golden.tensor("vae.encode_moments"));
    if let Some(((x, xs), (want, _))) = encode
        && let Some(moments) = tensor4(x, &xs, device).and_then(|x| model.vae.encode_moments(x))
    {
        let got = to_vec(moments);
        let name = format!("{label}/vae.encode_moments");
        report.push(compare(&name, &got, &want, MODULE_TOLERANCE));
    }
}
