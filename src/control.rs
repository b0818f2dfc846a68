//! The ControlNet panel's state: which ControlNet is offered and loaded, how it guides (strength,
//! guess mode, steps, and for single images whether the control image's canny edges or the image
//! itself is the hint), and the jobs' [`ControlJob`] built from it. Plain types, tested natively.

use keyshift_core::control::ControlSettings;
use keyshift_web::protocol::{
    ControlJob, FromWorker, ImageSize, ModelFile, ModelLayout, ModelPrecision, ModelSpec, Stage,
    ToWorker,
};

use crate::studio::InitPick;

/// A ControlNet the panel offers.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlChoice {
    /// Stable id (cache key); its last part names the net in records.
    pub id: String,
    /// What the picker shows.
    pub label: String,
    /// One sentence about it.
    pub note: &'static str,
    /// Base URL of its files.
    pub base: String,
    /// Loaded at this precision.
    pub precision: ModelPrecision,
}

impl ControlChoice {
    /// The load request: `config.json` and the weights (fp16, else the full-precision file).
    pub fn spec(&self) -> ModelSpec {
        let url = |path: &str| format!("{}/{path}", self.base);
        let weights = "diffusion_pytorch_model.fp16.safetensors";
        let full = "diffusion_pytorch_model.safetensors";
        ModelSpec {
            id: self.id.clone(),
            label: self.label.clone(),
            layout: ModelLayout::Diffusers,
            files: vec![
                ModelFile {
                    path: "config.json".into(),
                    url: url("config.json"),
                    fallback: None,
                },
                ModelFile {
                    path: weights.into(),
                    url: url(weights),
                    fallback: Some((full.into(), url(full))),
                },
            ],
            precision: self.precision,
            pins: Vec::new(),
        }
    }
}

/// The ControlNets offered: `lllyasviel/control_v11p_sd15_canny` (Attention-Interpolation's
/// canny net, for SD 1.5 and its fine-tunes); and, when the site is served from this machine,
/// the tiny test ControlNet for the tiny test model.
pub fn controlnet_choices(local: bool, origin: &str) -> Vec<ControlChoice> {
    let mut choices = vec![ControlChoice {
        id: "control_v11p_sd15_canny".into(),
        label: "Canny edges for SD 1.5 (lllyasviel/control_v11p_sd15_canny)".into(),
        note: "Guides the image with the edges of a control image or of each video frame. \
               723 MB to download (fp16). OpenRAIL.",
        base: "https://huggingface.co/lllyasviel/control_v11p_sd15_canny/resolve/main".into(),
        precision: ModelPrecision::Int8,
    }];
    if local {
        choices.push(ControlChoice {
            id: "tiny-controlnet".into(),
            label: "tiny test ControlNet (random weights)".into(),
            note: "For the tiny test model, served by the local server.",
            base: format!(
                "{}/fixtures/tiny-controlnet/diffusers",
                origin.trim_end_matches('/')
            ),
            precision: ModelPrecision::F32,
        });
    }
    choices
}

/// Where the ControlNet is.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ControlStatus {
    /// None loaded.
    #[default]
    None,
    /// Fetching or preparing.
    Loading {
        /// What is loading.
        label: String,
    },
    /// Ready to guide.
    Ready {
        /// What is loaded.
        label: String,
        /// How long it took and where it came from.
        detail: String,
    },
    /// Loading failed.
    Failed {
        /// What failed.
        label: String,
        /// Why.
        message: String,
    },
}

/// The panel.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlPanel {
    /// The ControlNet.
    pub status: ControlStatus,
    /// Guide images and video frames with it (when it is loaded).
    pub on: bool,
    /// Strength, guess mode, steps.
    pub settings: ControlSettings,
    /// Single images: the hint is the control image's canny edges (otherwise the image itself).
    pub canny: bool,
    /// Single images: the control image (without one, the init image is used).
    pub image: Option<InitPick>,
}

impl Default for ControlPanel {
    fn default() -> Self {
        Self {
            status: ControlStatus::None,
            on: true,
            settings: ControlSettings::default(),
            canny: true,
            image: None,
        }
    }
}

/// A field of the panel typed into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlField {
    /// The strength.
    Scale,
    /// Where it starts, as a fraction of the steps.
    Start,
    /// Where it ends.
    End,
}

impl ControlPanel {
    /// Starts loading `choice` (replacing a loaded ControlNet).
    pub fn load(&mut self, choice: &ControlChoice) -> ToWorker {
        self.status = ControlStatus::Loading {
            label: choice.label.clone(),
        };
        ToWorker::LoadControlNet {
            controlnet: choice.spec(),
        }
    }

    /// Frees the loaded ControlNet.
    pub fn unload(&mut self) -> ToWorker {
        self.status = ControlStatus::None;
        ToWorker::UnloadControlNet
    }

    /// Whether a ControlNet is loaded.
    pub fn is_ready(&self) -> bool {
        matches!(self.status, ControlStatus::Ready { .. })
    }

    /// Follows the worker.
    pub fn apply(&mut self, message: &FromWorker) {
        match message {
            FromWorker::ControlNetReady {
                load_ms,
                from_cache,
                fetched_bytes,
                ..
            } => {
                let label = match &self.status {
                    ControlStatus::Loading { label } => label.clone(),
                    _ => String::new(),
                };
                let source = if *from_cache {
                    "from the offline cache".to_owned()
                } else {
                    format!(
                        "{} downloaded",
                        keyshift_web::cache::bytes_text(*fetched_bytes)
                    )
                };
                self.status = ControlStatus::Ready {
                    label,
                    detail: format!("{source}, ready in {:.1} s", load_ms / 1000.0),
                };
            }
            FromWorker::ControlNetUnloaded => self.status = ControlStatus::None,
            FromWorker::Failed { stage, message } => self.failed(*stage, message),
            _ => {}
        }
    }

    fn failed(&mut self, stage: Stage, message: &str) {
        match stage {
            Stage::ControlNet => {
                let label = match &self.status {
                    ControlStatus::Loading { label } | ControlStatus::Ready { label, .. } => {
                        label.clone()
                    }
                    _ => String::new(),
                };
                self.status = ControlStatus::Failed {
                    label,
                    message: message.to_owned(),
                };
            }
            // A fresh worker holds no ControlNet.
            Stage::Crashed => self.status = ControlStatus::None,
            _ => {}
        }
    }

    /// One line about the ControlNet.
    pub fn text(&self) -> String {
        match &self.status {
            ControlStatus::None => "No ControlNet loaded.".into(),
            ControlStatus::Loading { label } => format!("Loading {label}…"),
            ControlStatus::Ready { label, detail } => format!("{label}: {detail}."),
            ControlStatus::Failed { label, message } => {
                format!("{label} did not load: {message}")
            }
        }
    }

    /// Sets a typed field, or says why the text is refused (the old value stays).
    pub fn set(&mut self, field: ControlField, text: &str) -> Result<(), String> {
        let value: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("\"{text}\" is not a number"))?;
        let mut settings = self.settings.clone();
        match field {
            ControlField::Scale => settings.scale = value,
            ControlField::Start => settings.start = value,
            ControlField::End => settings.end = value,
        }
        settings.check().map_err(|e| e.to_string())?;
        self.settings = settings;
        Ok(())
    }

    /// Whether jobs are guided (on, and a ControlNet is loaded).
    pub fn guides(&self) -> bool {
        self.on && self.is_ready()
    }

    /// A single image's ControlNet: `None` when the panel is off or nothing is loaded. The
    /// control image travels attached (its size is in the job).
    pub fn image_job(&self) -> Option<Box<ControlJob>> {
        self.guides().then(|| {
            Box::new(ControlJob {
                settings: self.settings.clone(),
                canny: self.canny,
                image: self.image.as_ref().map(|i| ImageSize {
                    width: i.width,
                    height: i.height,
                }),
                image_data: None,
                frames: Vec::new(),
            })
        })
    }

    /// A video render's ControlNet: each frame's canny edges, or (hint kind "the image itself")
    /// the frames of a hint video of frame size `hint_video`, which must then be picked.
    pub fn video_job(
        &self,
        hint_video: Option<ImageSize>,
    ) -> Result<Option<Box<ControlJob>>, String> {
        if !self.guides() {
            return Ok(None);
        }
        if !self.canny && hint_video.is_none() {
            return Err(
                "Pick a hint video (depth, pose…) for the ControlNet, or choose canny edges."
                    .into(),
            );
        }
        Ok(Some(Box::new(ControlJob {
            settings: self.settings.clone(),
            canny: self.canny,
            image: hint_video.filter(|_| !self.canny),
            image_data: None,
            frames: Vec::new(),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready() -> ControlPanel {
        let mut panel = ControlPanel::default();
        let choices = controlnet_choices(true, "http://127.0.0.1:8080/");
        let ToWorker::LoadControlNet { controlnet } = panel.load(&choices[1]) else {
            panic!("a load request");
        };
        assert_eq!(
            controlnet.files[1].url,
            "http://127.0.0.1:8080/fixtures/tiny-controlnet/diffusers/diffusion_pytorch_model.fp16.safetensors"
        );
        assert!(
            controlnet.files[1].fallback.is_some(),
            "the f32 file where fp16 is missing"
        );
        panel.apply(&FromWorker::ControlNetReady {
            id: controlnet.id,
            fetched_bytes: 2_000_000,
            from_cache: false,
            load_ms: 1500.0,
        });
        panel
    }

    #[test]
    fn a_loaded_controlnet_guides_jobs_until_it_is_turned_off_or_dropped() {
        let mut panel = ready();
        assert_eq!(
            panel.text(),
            "tiny test ControlNet (random weights): 2.0 MB downloaded, ready in 1.5 s."
        );
        let job = panel.image_job().unwrap_or_else(|| panic!("a job"));
        assert!(job.canny && job.image.is_none());
        panel.on = false;
        assert!(panel.image_job().is_none());
        panel.on = true;
        // Loading another model drops the ControlNet in the worker, which says so.
        panel.apply(&FromWorker::ControlNetUnloaded);
        assert_eq!(panel.video_job(None), Ok(None));
        assert_eq!(panel.text(), "No ControlNet loaded.");
    }

    #[test]
    fn a_control_image_guides_single_images_and_a_hint_video_videos() {
        let mut panel = ready();
        panel.canny = false;
        panel.image =
            Some(InitPick::new("edges.png", 2, 1, vec![0; 6]).unwrap_or_else(|e| panic!("{e}")));
        let size = ImageSize {
            width: 2,
            height: 1,
        };
        let single = panel.image_job().unwrap_or_else(|| panic!("a job"));
        assert_eq!((single.image, single.canny), (Some(size), false));
        let err = panel.video_job(None).err().unwrap_or_default();
        assert!(err.contains("Pick a hint video"), "{err}");
        let video = panel.video_job(Some(size)).ok().flatten();
        assert_eq!(video.map(|v| (v.image, v.canny)), Some((Some(size), false)));
        panel.canny = true;
        let video = panel.video_job(Some(size)).ok().flatten();
        assert_eq!(
            video.map(|v| (v.image, v.canny)),
            Some((None, true)),
            "canny: the hint video is not used"
        );
    }

    #[test]
    fn a_loaded_controlnet_asks_for_the_cache_list_it_joined() {
        let mut studio = crate::studio::Studio::default();
        let ready = FromWorker::ControlNetReady {
            id: "tiny-controlnet".into(),
            fetched_bytes: 0,
            from_cache: true,
            load_ms: 10.0,
        };
        assert_eq!(studio.apply(&ready), Some(ToWorker::ListCache));
        assert!(studio.control.is_ready());
    }

    #[test]
    fn typed_fields_are_checked_and_failures_named() {
        let mut panel = ControlPanel::default();
        assert!(panel.set(ControlField::Scale, "0.6").is_ok());
        assert_eq!(panel.settings.scale, 0.6);
        let err = panel.set(ControlField::End, "0").err().unwrap_or_default();
        assert!(err.contains("start 0 and end 0"), "{err}");
        assert_eq!(panel.settings.end, 1.0, "the old value stays");
        assert!(panel.set(ControlField::Start, "x").is_err());
        panel.status = ControlStatus::Loading {
            label: "Canny".into(),
        };
        panel.apply(&FromWorker::Failed {
            stage: Stage::ControlNet,
            message: "it was made for another model".into(),
        });
        assert_eq!(
            panel.text(),
            "Canny did not load: it was made for another model"
        );
        panel.apply(&FromWorker::Failed {
            stage: Stage::Crashed,
            message: "lost".into(),
        });
        assert_eq!(panel.status, ControlStatus::None);
    }
}
