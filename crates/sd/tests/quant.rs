//! int8 weights on the tiny model: the image stays close to f32 (PSNR), a saved int8 model loads
//! again to the same bits from both checkpoint layouts, it is about half an fp16 model, and a
//! damaged quantized file is refused with the tensor named.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "tests fail by panicking and read fixtures from disk"
)]

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use keyshift_core::pngtext::psnr;
use keyshift_core::schedule::{KMethod, Sampler, ScheduleConfig};
use keyshift_core::tokens::ClipTokenizer;
use keyshift_sd::Device;
use keyshift_sd::config::ClipConfig;
use keyshift_sd::generate::{Generated, Request, generate};
use keyshift_sd::hooks::NoHook;
use keyshift_sd::model::{DirFolder, Folder, SdModel};
use keyshift_sd::weights::{
    ByteSource, Dtype, LoadError, MemorySource, Precision, Q8, SafetensorsFile, safetensors,
};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-sd1")
}

fn request() -> Request {
    Request {
        prompt: "a watercolor fox in the snow".into(),
        negative: "blurry".into(),
        steps: 4,
        sampler: Sampler::KDiffusion {
            method: KMethod::Euler,
            karras: false,
        },
        cfg: 7.0,
        seed: 1234,
        subseed: None,
        width: 64,
        height: 64,
        clip_skip: 0,
        init: None,
        schedule: ScheduleConfig::sd15(),
    }
}

fn render(model: &SdModel, device: &Device) -> Generated {
    let tokenizer = ClipTokenizer::embedded().unwrap();
    let mut on_step = |_: &keyshift_sd::pipeline::StepOutput| ControlFlow::Continue(());
    pollster::block_on(generate(
        model,
        &tokenizer,
        &request(),
        device,
        &mut NoHook,
        &mut on_step,
    ))
    .unwrap()
    .unwrap()
}

/// Files held in memory, as a [`Folder`].
struct MemFolder(BTreeMap<String, Vec<u8>>);

impl Folder for MemFolder {
    fn read_text(&self, path: &str) -> Option<String> {
        String::from_utf8(self.0.get(path)?.clone()).ok()
    }

    fn open(&self, path: &str) -> Option<Box<dyn ByteSource>> {
        Some(Box::new(MemorySource::new(self.0.get(path)?.clone())))
    }
}

/// The tiny single file with what the weights cannot tell (its yaml, the text encoder's config).
fn single_file(bytes: Vec<u8>, device: &Device) -> Result<SdModel, LoadError> {
    let (yaml, clip) = single_file_hints();
    SdModel::load_single_file(open_bytes("s", bytes)?, Some(&yaml), Some(&clip), device)
}

fn single_file_hints() -> (String, ClipConfig) {
    let yaml = std::fs::read_to_string(fixture().join("tiny_sd1_inference.yaml")).unwrap();
    let path = fixture().join("diffusers/text_encoder/config.json");
    let clip =
        ClipConfig::from_json("config.json", &std::fs::read_to_string(path).unwrap()).unwrap();
    (yaml, clip)
}

fn quantize_single_file(device: &Device) -> keyshift_sd::model::Int8Model {
    let (yaml, clip) = single_file_hints();
    let bytes = std::fs::read(fixture().join("tiny_sd1_fp16.safetensors")).unwrap();
    let file = open_bytes("tiny_sd1_fp16.safetensors", bytes).unwrap();
    SdModel::quantize_single_file(file, Some(&yaml), Some(&clip), device).unwrap()
}

fn open_bytes(name: &str, bytes: Vec<u8>) -> Result<SafetensorsFile, LoadError> {
    SafetensorsFile::open(name, Box::new(MemorySource::new(bytes)))
}

/// A saved int8 file with every int8 tensor replaced by its f32 dequantization.
fn dequantize_file(bytes: &[u8]) -> Vec<u8> {
    let mut file = open_bytes("int8", bytes.to_vec()).unwrap();
    let entries = file.entries().clone();
    let mut parts = Vec::new();
    for (key, entry) in &entries {
        if key.ends_with(".q8scale") {
            continue;
        }
        let (_, data) = file.read_bytes(key).unwrap();
        if entry.dtype == Dtype::I8 {
            let scale_key = format!("{key}.q8scale");
            let scales = file.read_f32(&scale_key).unwrap();
            let values = data.iter().map(|&b| b as i8).collect();
            let q = Q8::from_parts(
                entry.shape.clone(),
                values,
                &entries[&scale_key].shape,
                scales,
            )
            .unwrap();
            let data = q
                .dequantize()
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            parts.push((key.clone(), Dtype::F32, entry.shape.clone(), data));
        } else {
            parts.push((key.clone(), entry.dtype, entry.shape.clone(), data));
        }
    }
    let refs: Vec<(&str, Dtype, &[usize], &[u8])> = parts
        .iter()
        .map(|(k, d, s, b)| (k.as_str(), *d, s.as_slice(), b.as_slice()))
        .collect();
    safetensors::encode(&refs)
}

/// Bytes of every float tensor of a safetensors file stored as f16.
fn fp16_bytes(path: &Path) -> usize {
    let file = open_bytes("f", std::fs::read(path).unwrap()).unwrap();
    file.entries()
        .values()
        .filter(|e| e.dtype.is_float())
        .map(|e| e.shape.iter().product::<usize>() * 2)
        .sum()
}

#[test]
fn int8_is_close_to_f32_saves_at_about_half_of_fp16_and_loads_again_exactly() {
    let device = Device::flex();
    let folder = DirFolder(fixture().join("diffusers"));
    let f32_model = SdModel::load_diffusers(&folder, &device).unwrap();
    assert_eq!(f32_model.info.precision, Precision::F32);
    let reference = render(&f32_model, &device);

    let quantized = SdModel::quantize_diffusers(&folder, &device).unwrap();
    assert_eq!(quantized.model.info.precision, Precision::Int8);
    let int8 = render(&quantized.model, &device);
    let db = psnr(&reference.image.data, &int8.image.data).unwrap();
    println!("int8 vs f32, 4 Euler steps 64x64: PSNR {db:.2} dB");
    assert!(db.is_finite(), "int8 changed nothing");
    assert!(db > 40.0, "int8 image too far from f32: {db:.2} dB");

    // The same precision asked of the loader gives the same model as the saving path.
    let direct = SdModel::load_diffusers_at(&folder, Precision::Int8, &device).unwrap();
    assert_eq!(render(&direct, &device).latent, int8.latent);

    // Saved and loaded again (without asking for int8: the file says so): the same bits.
    let files: BTreeMap<String, Vec<u8>> = quantized.files.into_iter().collect();
    assert!(files.contains_key("unet/config.json"));
    let again = SdModel::load_diffusers(&MemFolder(files.clone()), &device).unwrap();
    assert_eq!(again.info.precision, Precision::Int8);
    let reloaded = render(&again, &device);
    assert_eq!(reloaded.latent, int8.latent);
    assert_eq!(reloaded.image, int8.image);

    // The int8 model computes what an f32 model holding the dequantized weights computes: the
    // quantized matmul reads the blocks as we wrote them.
    let dequantized: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|(path, bytes)| {
            let bytes = if path.ends_with(".safetensors") {
                dequantize_file(bytes)
            } else {
                bytes.clone()
            };
            (path.clone(), bytes)
        })
        .collect();
    let float = SdModel::load_diffusers(&MemFolder(dequantized), &device).unwrap();
    assert_eq!(float.info.precision, Precision::F32);
    let float = render(&float, &device);
    let scale = int8.latent.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let worst = int8
        .latent
        .iter()
        .zip(&float.latent)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(worst <= 1e-5 * scale, "{worst} on a scale of {scale}");

    // Size against the same model in fp16.
    let mut int8_bytes = 0;
    let mut half_bytes = 0;
    for (dir, saved) in [
        ("text_encoder", "text_encoder/model.safetensors"),
        ("unet", "unet/diffusion_pytorch_model.safetensors"),
        ("vae", "vae/diffusion_pytorch_model.safetensors"),
    ] {
        let source = fixture().join("diffusers").join(dir);
        let source = std::fs::read_dir(&source)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .unwrap();
        let ours = files[saved].len();
        let theirs = fp16_bytes(&source);
        println!(
            "{dir}: int8 {ours} bytes, fp16 {theirs} bytes, ratio {:.3}",
            ours as f64 / theirs as f64
        );
        int8_bytes += ours;
        half_bytes += theirs;
    }
    let ratio = int8_bytes as f64 / half_bytes as f64;
    println!("whole model: int8 {int8_bytes} bytes, fp16 {half_bytes} bytes, ratio {ratio:.3}");
    assert!(ratio < 0.6, "int8 model is {ratio:.3} of fp16");
}

#[test]
fn the_single_file_quantizes_to_the_same_model_as_the_folder() {
    let device = Device::flex();
    let folder = SdModel::quantize_diffusers(&DirFolder(fixture().join("diffusers")), &device)
        .unwrap()
        .model;
    let single = quantize_single_file(&device);
    let from_folder = render(&folder, &device);
    assert_eq!(render(&single.model, &device).latent, from_folder.latent);

    let (_, bytes) = single.files.into_iter().next().unwrap();
    let again = single_file(bytes, &device).unwrap();
    assert_eq!(again.info.precision, Precision::Int8);
    assert_eq!(render(&again, &device).latent, from_folder.latent);
}

/// The saved single file with one tensor replaced.
fn tampered(replace: &str, with: Option<(Dtype, Vec<usize>, Vec<u8>)>) -> Vec<u8> {
    let (_, bytes) = quantize_single_file(&Device::flex())
        .files
        .into_iter()
        .next()
        .unwrap();
    let mut file = open_bytes("saved.safetensors", bytes).unwrap();
    let entries = file.entries().clone();
    let mut parts = Vec::new();
    for (key, entry) in entries {
        let (_, data) = file.read_bytes(&key).unwrap();
        if key == replace {
            if let Some(part) = with.clone() {
                parts.push((key, part.0, part.1, part.2));
            }
        } else {
            parts.push((key, entry.dtype, entry.shape, data));
        }
    }
    let refs: Vec<(&str, Dtype, &[usize], &[u8])> = parts
        .iter()
        .map(|(k, d, s, b)| (k.as_str(), *d, s.as_slice(), b.as_slice()))
        .collect();
    safetensors::encode(&refs)
}

#[test]
fn a_damaged_int8_file_is_refused_with_the_tensor_named() {
    let device = Device::flex();
    let key = "model.diffusion_model.input_blocks.0.0.weight";
    let scales = format!("{key}.q8scale");

    let bytes = tampered(&scales, None);
    let err = single_file(bytes, &device).unwrap_err();
    assert!(
        matches!(&err, LoadError::MissingKey { key: k, .. } if *k == scales),
        "{err}"
    );

    let bytes = tampered(&scales, Some((Dtype::F32, vec![3], vec![0; 12])));
    let err = single_file(bytes, &device).unwrap_err();
    assert!(matches!(err, LoadError::BadHeader { .. }), "{err}");
    assert!(err.to_string().contains(key), "{err}");
}

/// The GPU path multiplies by the quantized linear weights in WGSL (burn's quantized matmul);
/// it gives the CPU's numbers.
#[test]
#[cfg(feature = "wgpu")]
fn int8_on_wgpu_gives_the_cpu_numbers() {
    let instance = keyshift_sd::wgpu::Instance::default();
    if let Err(e) = keyshift_sd::wgpu_adapter(&instance) {
        panic!("{e}");
    }
    let folder = DirFolder(fixture().join("diffusers"));
    let cpu = Device::flex();
    let gpu = keyshift_sd::wgpu_device();
    let a = SdModel::load_diffusers_at(&folder, Precision::Int8, &cpu).unwrap();
    let b = SdModel::load_diffusers_at(&folder, Precision::Int8, &gpu).unwrap();
    let want = render(&a, &cpu);
    let got = render(&b, &gpu);
    let scale = want.latent.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let worst = want
        .latent
        .iter()
        .zip(&got.latent)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    println!("int8 wgpu vs cpu: max latent difference {worst:e} on a scale of {scale}");
    assert!(worst <= 1e-4 * scale, "{worst} on a scale of {scale}");
    let db = psnr(&want.image.data, &got.image.data).unwrap();
    assert!(db > 50.0, "{db} dB");
}

/// The browser's path: the int8 model written tensor by tensor while it loads. The files hold
/// the tensors `keyshift quantize` saves, and load again to the same model.
#[test]
fn preparing_while_loading_writes_what_quantize_saves() {
    use keyshift_sd::model::PREPARED_WEIGHTS;
    use keyshift_sd::weights::stream::{MemoryWriteAt, StreamingWriter};
    let device = Device::flex();
    let folder = DirFolder(fixture().join("diffusers"));
    let outputs: Vec<MemoryWriteAt> = (0..3).map(|_| MemoryWriteAt::default()).collect();
    let writers = ["text_encoder", "unet", "vae"]
        .iter()
        .zip(&outputs)
        .map(|(dir, out)| {
            let source = SdModel::component_file(&folder, dir).unwrap();
            StreamingWriter::new(
                dir,
                Box::new(out.clone()),
                StreamingWriter::reserve_for(&source),
            )
        })
        .collect();
    let (prepared, writers) = SdModel::load_diffusers_preparing(&folder, writers, &device).unwrap();
    assert_eq!(prepared.info.precision, Precision::Int8);
    assert_eq!(writers.len(), 3);
    for (writer, out) in writers.into_iter().zip(&outputs) {
        let len = writer.finish().unwrap();
        assert_eq!(len as usize, out.bytes().len());
    }
    // Tensor for tensor what the saving path writes (in another order).
    let saved: BTreeMap<String, Vec<u8>> = SdModel::quantize_diffusers(&folder, &device)
        .unwrap()
        .files
        .into_iter()
        .collect();
    let mut files: BTreeMap<String, Vec<u8>> = saved
        .iter()
        .filter(|(path, _)| path.ends_with(".json"))
        .map(|(p, b)| (p.clone(), b.clone()))
        .collect();
    for ((path, out), saved_path) in PREPARED_WEIGHTS.iter().zip(&outputs).zip([
        "text_encoder/model.safetensors",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
    ]) {
        let mut ours = open_bytes(path, out.bytes()).unwrap();
        let mut theirs = open_bytes(saved_path, saved[saved_path].clone()).unwrap();
        let keys: Vec<String> = theirs.entries().keys().cloned().collect();
        assert_eq!(
            ours.entries().keys().cloned().collect::<Vec<_>>(),
            keys,
            "{path}"
        );
        for key in keys {
            let (a_entry, a) = ours.read_bytes(&key).unwrap();
            let (b_entry, b) = theirs.read_bytes(&key).unwrap();
            assert_eq!(
                (a_entry.dtype, &a_entry.shape),
                (b_entry.dtype, &b_entry.shape),
                "{key}"
            );
            assert!(a == b, "{path}: {key} differs");
        }
        files.insert((*path).to_owned(), out.bytes());
    }
    // The prepared folder loads (int8 variant first) and draws what the int8 model draws.
    let again = SdModel::load_diffusers(&MemFolder(files), &device).unwrap();
    assert_eq!(again.info.precision, Precision::Int8);
    assert_eq!(
        render(&again, &device).latent,
        render(&prepared, &device).latent
    );
    // A reserve too small for the header is an error, not a broken file.
    let source = SdModel::component_file(&folder, "vae").unwrap();
    let out = MemoryWriteAt::default();
    let mut small = StreamingWriter::new("vae", Box::new(out), 16);
    small
        .put("a.weight", Dtype::F16, &[2], &[0, 0, 0, 0])
        .unwrap();
    let err = small.finish().unwrap_err();
    assert!(err.to_string().contains("reserved"), "{err}");
    assert!(StreamingWriter::reserve_for(&source) > 1000);
}
