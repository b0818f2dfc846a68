//! A damaged or mismatched checkpoint fails with a typed error naming the problem, never a panic.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "tests read fixtures and fail by panicking"
)]

use std::path::PathBuf;

use keyshift_sd::Device;
use keyshift_sd::model::{Folder, SdModel};
use keyshift_sd::weights::{ByteSource, LoadError, MemorySource, SafetensorsFile};

fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/tiny-sd1")
        .join(path)
}

fn single_file(bytes: Vec<u8>) -> Result<SdModel, LoadError> {
    let file = SafetensorsFile::open("model.safetensors", Box::new(MemorySource::new(bytes)))?;
    let yaml = std::fs::read_to_string(fixture("tiny_sd1_inference.yaml")).unwrap();
    let clip = keyshift_sd::config::ClipConfig::from_json(
        "c",
        &std::fs::read_to_string(fixture("diffusers/text_encoder/config.json")).unwrap(),
    )
    .unwrap();
    SdModel::load_single_file(file, Some(&yaml), Some(&clip), &Device::flex())
}

#[test]
fn a_truncated_checkpoint_is_named_as_truncated() {
    let mut bytes = std::fs::read(fixture("tiny_sd1_fp16.safetensors")).unwrap();
    bytes.truncate(bytes.len() / 2);
    let err = single_file(bytes).unwrap_err();
    assert!(matches!(err, LoadError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("model.safetensors"), "{err}");
}

#[test]
fn a_renamed_tensor_is_a_missing_key_and_the_stray_one_is_reported() {
    let mut bytes = std::fs::read(fixture("tiny_sd1_fp16.safetensors")).unwrap();
    // Rename one UNet tensor in the header, keeping its length.
    let from = b"model.diffusion_model.out.2.weight";
    let to = b"model.diffusion_model.out.2.wEIGHT";
    let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
    bytes[at..at + from.len()].copy_from_slice(to);
    let err = single_file(bytes).unwrap_err();
    assert!(err.to_string().contains("out.2.weight"), "{err}");
}

/// The diffusers folder, with one config value changed.
struct Patched {
    dir: PathBuf,
    path: &'static str,
    from: &'static str,
    to: &'static str,
}

impl Folder for Patched {
    fn read_text(&self, path: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.dir.join(path)).ok()?;
        Some(if path == self.path {
            text.replace(self.from, self.to)
        } else {
            text
        })
    }
    fn open(&self, path: &str) -> Option<Box<dyn ByteSource>> {
        Some(Box::new(
            keyshift_sd::weights::FileSource::open(&self.dir.join(path)).ok()?,
        ))
    }
}

#[test]
fn a_config_that_does_not_fit_the_weights_names_the_tensor_and_both_shapes() {
    let folder = Patched {
        dir: fixture("diffusers"),
        path: "unet/config.json",
        from: "\"cross_attention_dim\": 32",
        to: "\"cross_attention_dim\": 48",
    };
    let err = SdModel::load_diffusers(&folder, &Device::flex()).unwrap_err();
    let LoadError::ShapeMismatch {
        key,
        expected,
        found,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert!(key.ends_with("attn2.to_k.weight"), "{err}");
    assert_eq!(
        (expected.as_slice(), found.as_slice()),
        (&[64, 48][..], &[64, 32][..])
    );
}

#[test]
fn a_config_with_fewer_layers_leaves_unexpected_keys_named() {
    let folder = Patched {
        dir: fixture("diffusers"),
        path: "text_encoder/config.json",
        from: "\"num_hidden_layers\": 5",
        to: "\"num_hidden_layers\": 4",
    };
    let err = SdModel::load_diffusers(&folder, &Device::flex()).unwrap_err();
    assert!(
        matches!(err, LoadError::UnexpectedKeys { ref first, .. } if first.contains("layers.4.")),
        "{err}"
    );
}

#[test]
fn garbage_and_unsupported_dtypes_are_refused() {
    let err =
        single_file(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!".to_vec()).unwrap_err();
    assert!(matches!(err, LoadError::BadHeader { .. }), "{err}");
    let header = br#"{"model.diffusion_model.input_blocks.0.0.weight":{"dtype":"F8_E5M2","shape":[1],"data_offsets":[0,1]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.push(0);
    let err = single_file(bytes).unwrap_err();
    assert!(err.to_string().contains("F8_E5M2"), "{err}");
}
