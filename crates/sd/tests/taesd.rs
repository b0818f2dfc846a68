//! TAESD against diffusers' `AutoencoderTiny` and the original `taesd.py` (references in
//! `fixtures/tiny-sd1/extras.*`, made by `scripts/reference/make_extras.py`), loaded from both
//! layouts of `fixtures/taesd-tiny/`, on the CPU backend; and the load errors of wrong files.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a test fails by panicking and reports what it compared"
)]

use std::path::PathBuf;

use burn::tensor::{Tensor, TensorData};
use keyshift_sd::Device;
use keyshift_sd::golden::compare;
use keyshift_sd::model::{DirFolder, Folder};
use keyshift_sd::taesd::{OriginalLayout, Taesd, TaesdConfig};
use keyshift_sd::weights::safetensors::encode;
use keyshift_sd::weights::{
    Dtype, FileSource, LoadError, Loader, MemorySource, Prefixed, SafetensorsFile, WeightStore,
};

const TOLERANCE: f32 = 2e-5;

fn taesd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/taesd-tiny")
}

fn open(path: PathBuf) -> SafetensorsFile {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    SafetensorsFile::open(&name, Box::new(FileSource::open(&path).unwrap())).unwrap()
}

fn store(name: &str) -> WeightStore {
    WeightStore::new(vec![open(taesd_dir().join(name))])
}

fn bytes(name: &str) -> Vec<u8> {
    let mut source = FileSource::open(&taesd_dir().join(name)).unwrap();
    let mut buf = vec![0; usize::try_from(keyshift_sd::weights::ByteSource::len(&source)).unwrap()];
    keyshift_sd::weights::ByteSource::read_exact_at(&mut source, 0, &mut buf).unwrap();
    buf
}

fn config() -> TaesdConfig {
    let text = DirFolder(taesd_dir()).read_text("config.json").unwrap();
    TaesdConfig::from_json("config.json", &text).unwrap()
}

/// The diffusers folder: one file, names as the blocks ask for them; every tensor used.
fn load_diffusers(device: &Device) -> Taesd {
    let mut s = store("diffusion_pytorch_model.safetensors");
    let taesd = Taesd::load(
        &mut Loader::new(&mut s, &Prefixed::default(), device),
        &config(),
        true,
    )
    .unwrap();
    s.check_all_used("", |_| false).unwrap();
    taesd
}

/// The original two files through `OriginalLayout`; every tensor of both used.
fn load_original(device: &Device) -> Taesd {
    let (mut dec, mut enc) = (
        store("taesd_decoder.safetensors"),
        store("taesd_encoder.safetensors"),
    );
    let mut enc_loader = Loader::new(&mut enc, &OriginalLayout, device);
    let taesd = Taesd::load_split(
        &mut Loader::new(&mut dec, &OriginalLayout, device),
        Some(&mut enc_loader),
        &config(),
    )
    .unwrap();
    dec.check_all_used("", |_| false).unwrap();
    enc.check_all_used("", |_| false).unwrap();
    taesd
}

struct Refs {
    file: SafetensorsFile,
    device: Device,
}

impl Refs {
    fn load() -> Self {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/tiny-sd1/extras.safetensors");
        Self {
            file: open(path),
            device: Device::flex(),
        }
    }

    fn values(&mut self, name: &str) -> Vec<f32> {
        self.file
            .read_f32(name)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn tensor(&mut self, name: &str) -> Tensor<4> {
        let shape: Vec<usize> = self.file.entries()[name].shape.clone();
        let shape: [usize; 4] = shape.try_into().unwrap();
        Tensor::<4>::from_data(TensorData::new(self.values(name), shape), &self.device)
    }
}

/// The original decoder's output, diffusers' decode and encode.
struct Outputs {
    raw: Vec<f32>,
    decoded: Vec<f32>,
    encoded: Vec<f32>,
}

fn values(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn run(taesd: &Taesd, refs: &mut Refs) -> Outputs {
    let z = refs.tensor("taesd.decode_in");
    let x = refs.tensor("taesd.encode_in");
    Outputs {
        raw: values(taesd.decoder.forward(z.clone())),
        decoded: values(taesd.decode(z)),
        encoded: values(taesd.encode(x).unwrap()),
    }
}

fn check(name: &str, got: &[f32], want: &[f32]) {
    let c = compare(name, got, want, TOLERANCE);
    println!("{}: {}", c.name, c.detail);
    assert!(c.passed, "{}: {}", c.name, c.detail);
}

fn check_all(layout: &str, out: &Outputs, refs: &mut Refs) {
    check(
        &format!("{layout}/taesd.decoder_raw"),
        &out.raw,
        &refs.values("taesd.decoder_raw"),
    );
    check(
        &format!("{layout}/taesd.decode_out"),
        &out.decoded,
        &refs.values("taesd.decode_out"),
    );
    check(
        &format!("{layout}/taesd.encode_out"),
        &out.encoded,
        &refs.values("taesd.encode_out"),
    );
}

#[test]
fn both_layouts_match_the_references_and_each_other() {
    let mut refs = Refs::load();
    let diffusers = run(&load_diffusers(&refs.device), &mut refs);
    check_all("diffusers", &diffusers, &mut refs);
    let original = run(&load_original(&refs.device), &mut refs);
    check_all("original", &original, &mut refs);
    assert_eq!(diffusers.raw, original.raw);
    assert_eq!(diffusers.decoded, original.decoded);
    assert_eq!(diffusers.encoded, original.encoded);
}

#[test]
fn decode_only_loads_no_encoder_and_leaves_its_tensors_unused() {
    let device = Device::flex();
    let mut s = store("diffusion_pytorch_model.safetensors");
    let taesd = Taesd::load(
        &mut Loader::new(&mut s, &Prefixed::default(), &device),
        &config(),
        false,
    )
    .unwrap();
    assert!(
        taesd
            .encode(Tensor::<4>::zeros([1, 3, 8, 8], &device))
            .is_none()
    );
    s.check_all_used("decoder.", |_| false).unwrap();
    let err = s.check_all_used("", |_| false).unwrap_err();
    assert!(
        matches!(err, LoadError::UnexpectedKeys { ref first, .. } if first.starts_with("encoder.layers.")),
        "{err}"
    );
}

#[test]
fn a_config_of_other_channel_counts_names_the_first_tensor() {
    let device = Device::flex();
    let mut dec = store("taesd_decoder.safetensors");
    let mut l = Loader::new(&mut dec, &OriginalLayout, &device);
    let err = Taesd::load_split(&mut l, None, &TaesdConfig::sd()).unwrap_err();
    println!("{err}");
    let want = LoadError::ShapeMismatch {
        file: "taesd_decoder.safetensors".into(),
        key: "1.weight".into(),
        expected: vec![64, 4, 3, 3],
        found: vec![16, 4, 3, 3],
    };
    assert_eq!(err, want);
}

#[test]
fn a_file_with_one_wrong_tensor_names_it() {
    let device = Device::flex();
    let mut file = open(taesd_dir().join("taesd_decoder.safetensors"));
    let keys: Vec<String> = file.entries().keys().cloned().collect();
    let mut tensors = Vec::new();
    for key in keys {
        let (mut shape, data) = (
            file.entries()[&key].shape.clone(),
            file.read_f32(&key).unwrap(),
        );
        let mut data: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        if key == "12.weight" {
            shape = vec![16, 16, 1, 1];
            data.truncate(16 * 16 * 4);
        }
        tensors.push((key, shape, data));
    }
    let refs: Vec<(&str, Dtype, &[usize], &[u8])> = tensors
        .iter()
        .map(|(k, s, d)| (k.as_str(), Dtype::F32, s.as_slice(), d.as_slice()))
        .collect();
    let bad = SafetensorsFile::open(
        "bad.safetensors",
        Box::new(MemorySource::new(encode(&refs))),
    )
    .unwrap();
    let mut s = WeightStore::new(vec![bad]);
    let err = Taesd::load_split(
        &mut Loader::new(&mut s, &OriginalLayout, &device),
        None,
        &config(),
    )
    .unwrap_err();
    println!("{err}");
    assert!(
        matches!(err, LoadError::ShapeMismatch { ref key, ref found, .. } if key == "12.weight" && found == &vec![16, 16, 1, 1]),
        "{err}"
    );
}

#[test]
fn a_truncated_file_is_refused_with_its_sizes() {
    let mut b = bytes("taesd_decoder.safetensors");
    let full = b.len() as u64;
    b.truncate(b.len() - 100);
    let err = SafetensorsFile::open("taesd_decoder.safetensors", Box::new(MemorySource::new(b)))
        .unwrap_err();
    println!("{err}");
    assert_eq!(
        err,
        LoadError::Truncated {
            file: "taesd_decoder.safetensors".into(),
            needed_bytes: full,
            len_bytes: full - 100
        }
    );
}

#[test]
fn the_encoder_file_is_not_a_decoder() {
    let device = Device::flex();
    let mut enc = store("taesd_encoder.safetensors");
    let err = Taesd::load_split(
        &mut Loader::new(&mut enc, &OriginalLayout, &device),
        None,
        &config(),
    )
    .unwrap_err();
    println!("{err}");
    assert!(
        matches!(err, LoadError::MissingKey { ref key, .. } if key == "1.weight"),
        "{err}"
    );
}

/// A folder that hides some of its files.
struct Without<'a>(DirFolder, &'a [&'a str]);

impl Folder for Without<'_> {
    fn read_text(&self, path: &str) -> Option<String> {
        (!self.1.contains(&path)).then(|| self.0.read_text(path))?
    }

    fn open(&self, path: &str) -> Option<Box<dyn keyshift_sd::weights::ByteSource>> {
        (!self.1.contains(&path)).then(|| self.0.open(path))?
    }
}

#[test]
fn a_published_folder_loads_in_either_layout_decode_only() {
    let mut refs = Refs::load();
    let z = refs.tensor("taesd.decode_in");
    let want = refs.values("taesd.decode_out");
    let diffusers = Taesd::load_folder(&DirFolder(taesd_dir()), false, &refs.device).unwrap();
    assert!(diffusers.encoder.is_none());
    check(
        "folder/diffusers",
        &values(diffusers.decode(z.clone())),
        &want,
    );
    // Without the diffusers file the original decoder is read, its encoder only on request.
    let original = Without(
        DirFolder(taesd_dir()),
        &["diffusion_pytorch_model.safetensors"],
    );
    let taesd = Taesd::load_folder(&original, true, &refs.device).unwrap();
    assert!(taesd.encoder.is_some());
    check("folder/original", &values(taesd.decode(z.clone())), &want);
    // A preview is the first image of the batch as 8-bit RGB at image size.
    let image = pollster::block_on(taesd.preview(z.clone())).unwrap();
    let [_, _, h, w] = z.dims();
    assert_eq!((image.width, image.height), (w * 8, h * 8));
    let first = &want[..3 * image.width * image.height];
    let plane = image.width * image.height;
    for (i, px) in image.data.chunks(3).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            let expected = ((first[c * plane + i] + 1.0) / 2.0).clamp(0.0, 1.0) * 255.0;
            assert!((f32::from(v) - expected).abs() <= 1.0, "pixel {i}/{c}");
        }
    }
    let empty = Without(
        DirFolder(taesd_dir()),
        &[
            "diffusion_pytorch_model.safetensors",
            "taesd_decoder.safetensors",
        ],
    );
    let err = Taesd::load_folder(&empty, false, &refs.device).unwrap_err();
    assert!(
        err.to_string().contains("taesd_decoder.safetensors"),
        "{err}"
    );
    let no_encoder = Without(
        DirFolder(taesd_dir()),
        &[
            "diffusion_pytorch_model.safetensors",
            "taesd_encoder.safetensors",
        ],
    );
    let err = Taesd::load_folder(&no_encoder, true, &refs.device).unwrap_err();
    assert!(
        err.to_string().contains("taesd_encoder.safetensors"),
        "{err}"
    );
}
