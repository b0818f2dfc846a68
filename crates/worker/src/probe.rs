//! Visualize Cross-Attention on the loaded model: encode the prompt, one UNet forward on the
//! image's clean latent, the chosen layer's map of the chosen tokens drawn over the image.

use keyshift_sd::conditioning::TextEncoder;
use keyshift_sd::generate::family;
use keyshift_sd::taps::cross::probe;
use keyshift_sd::taps::{Filter, VaeInput};
use keyshift_web::protocol::{FromWorker, ProbeJob};
use keyshift_web::worker::scope;

use crate::job::{png_bytes, probe_plan};
use crate::state::WorkerState;

/// Runs `job`; posts `Probed`, or returns the message of a failure.
pub async fn run(state: &WorkerState, job: ProbeJob) -> Result<(), String> {
    let Some(loaded) = state.loaded() else {
        return Err("no model is loaded: pick one and load it first".into());
    };
    let image = job.image.as_deref().ok_or("no image to probe")?;
    let layers = loaded.model.unet.attention_layers();
    let (layer, config, mode) = probe_plan(&job, &layers)?;
    let encoder = TextEncoder {
        clip: &loaded.model.clip,
        tokenizer: &loaded.tokenizer,
        family: family(&loaded.model),
        clip_skip: loaded.model.info.native_clip_skip.max(1),
    };
    let conditioning = encoder.prompt(&job.prompt, 1).map_err(|e| e.to_string())?;
    let context = conditioning
        .at_step(0)
        .first()
        .map(|(c, _)| c.clone())
        .ok_or("the prompt has nothing to encode")?;
    let input = if job.unit_input {
        VaeInput::Unit
    } else {
        VaeInput::Signed
    };
    let maps = probe(&loaded.model, image, &context, job.time, config, input)
        .await
        .map_err(|e| e.to_string())?;
    let map = maps.maps.first().ok_or("no map was made")?;
    let drawn = map.overlay(image, mode, Filter::Nearest);
    scope::post(&FromWorker::Probed {
        job: job.job,
        png: png_bytes(&drawn, None)?,
        layer: layer.vxa_name(),
        width: maps.width,
        height: maps.height,
    });
    Ok(())
}
