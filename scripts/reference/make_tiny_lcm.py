#!/usr/bin/env python3
"""Reference outputs for Latent Consistency Model guidance in the UNet (fixtures/tiny-lcm/).

An LCM-distilled UNet (e.g. SimianLuo/LCM_Dreamshaper_v7) takes the guidance scale as an input:
diffusers' `LatentConsistencyModelPipeline` embeds w = guidance_scale - 1 with
`get_guidance_scale_embedding` (a sinusoidal embedding of w * 1000 of `time_cond_proj_dim`
values) and passes it as `timestep_cond`; `TimestepEmbedding` adds `cond_proj(timestep_cond)`
(a linear layer without bias) to the projected timestep before `linear_1`.

This script builds the tiny SD 1.x UNet of fixtures/tiny-sd1/ with `time_cond_proj_dim` = 16,
randomly initialised (seed 7), and records one forward pass with diffusers 0.42.1 / torch 2.15,
fp32, on the CPU:

    fixtures/tiny-lcm/unet/{config.json, diffusion_pytorch_model.safetensors}
    fixtures/tiny-lcm/golden.safetensors: lcm.sample_in [2,4,8,8], lcm.context [2,77,32],
        lcm.w_embedding [2,16] (w = 6.5, i.e. guidance scale 7.5), lcm.out [2,4,8,8]
        (timestep 499); and a whole `LatentConsistencyModelPipeline` run, 4 steps at guidance
        7.5 with the SD 1.5 scheduler config (LCMScheduler defaults otherwise), from
        pipe.init [1,4,8,8] with prompt embeddings pipe.context [1,77,32] (so no text encoder or
        VAE is involved), the scheduler's fresh noise replayed from pipe.step_noise [3,1,4,8,8]:
        pipe.step_latents [4,1,4,8,8] (latents after each step) and pipe.latents (the result)

Run from the repository root:
    /path/to/python scripts/reference/make_tiny_lcm.py
"""
import json
import os

import torch
from diffusers import LatentConsistencyModelPipeline, UNet2DConditionModel
from safetensors.torch import save_file

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
SRC = os.path.join(ROOT, "fixtures", "tiny-sd1", "diffusers", "unet", "config.json")
OUT = os.path.join(ROOT, "fixtures", "tiny-lcm")

with open(SRC) as f:
    config = json.load(f)
for key in [k for k in config if k.startswith("_")]:
    del config[key]
config["time_cond_proj_dim"] = 16

torch.manual_seed(7)
unet = UNet2DConditionModel.from_config(config).eval()
assert unet.time_embedding.cond_proj is not None
unet.save_pretrained(os.path.join(OUT, "unet"), safe_serialization=True)

g = torch.Generator().manual_seed(11)
sample = torch.randn(2, 4, 8, 8, generator=g)
context = torch.randn(2, 77, 32, generator=g)
w = torch.tensor([7.5 - 1.0] * 2)
w_embedding = LatentConsistencyModelPipeline.get_guidance_scale_embedding(
    None, w, embedding_dim=config["time_cond_proj_dim"]
)

# An independent check of the embedding: sin/cos of w*1000 times geometric frequencies.
half = config["time_cond_proj_dim"] // 2
freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(torch.log(torch.tensor(10000.0)) / (half - 1)))
args = (w * 1000.0)[:, None] * freqs[None, :]
assert torch.equal(w_embedding, torch.cat([torch.sin(args), torch.cos(args)], dim=1))

with torch.no_grad():
    out = unet(sample, 499, encoder_hidden_states=context, timestep_cond=w_embedding).sample
    plain = unet(sample, 499, encoder_hidden_states=context).sample
assert (out - plain).abs().max() > 1e-3, "the guidance embedding must change the output"

# --- The whole pipeline: no unconditional pass, w = guidance - 1 embedded every step.
import diffusers.schedulers.scheduling_lcm as lcm_mod  # noqa: E402
from diffusers import AutoencoderKL, LCMScheduler  # noqa: E402
from transformers import CLIPTextModel, CLIPTokenizer  # noqa: E402

TINY = os.path.join(ROOT, "fixtures", "tiny-sd1")
with open(os.path.join(TINY, "golden.json")) as f:
    sched_cfg = json.load(f)["schedulers"]["config"]
g = torch.Generator().manual_seed(12)
init = torch.randn(1, 4, 8, 8, generator=g)
pipe_context = torch.randn(1, 77, 32, generator=g)
step_noise = torch.randn(3, 1, 4, 8, 8, generator=g)
it = iter(step_noise)
orig = lcm_mod.randn_tensor
lcm_mod.randn_tensor = lambda shape, **kw: next(it).reshape(shape)
pipe = LatentConsistencyModelPipeline(
    vae=AutoencoderKL.from_pretrained(os.path.join(TINY, "diffusers", "vae")).float(),
    text_encoder=CLIPTextModel.from_pretrained(os.path.join(TINY, "diffusers", "text_encoder")).float(),
    tokenizer=CLIPTokenizer.from_pretrained(os.path.join(TINY, "diffusers", "tokenizer")),
    unet=unet,
    scheduler=LCMScheduler.from_config(sched_cfg),
    safety_checker=None,
    feature_extractor=None,
    requires_safety_checker=False,
)
steps = []


def on_step(_p, _i, _t, kw):
    steps.append(kw["latents"].clone())
    return kw


with torch.no_grad():
    result = pipe(
        prompt_embeds=pipe_context,
        num_inference_steps=4,
        guidance_scale=7.5,
        latents=init.clone(),
        output_type="latent",
        callback_on_step_end=on_step,
    ).images
lcm_mod.randn_tensor = orig
assert next(it, None) is None, "LCM draws exactly steps - 1 noises"
assert len(steps) == 4
print("pipeline timesteps:", [int(t) for t in pipe.scheduler.timesteps])

save_file(
    {
        "pipe.init": init.contiguous(),
        "pipe.context": pipe_context.contiguous(),
        "pipe.step_noise": step_noise.contiguous(),
        "pipe.step_latents": torch.stack(steps).contiguous(),
        "pipe.latents": result.contiguous(),
        "lcm.sample_in": sample.contiguous(),
        "lcm.context": context.contiguous(),
        "lcm.w_embedding": w_embedding.contiguous(),
        "lcm.out": out.contiguous(),
    },
    os.path.join(OUT, "golden.safetensors"),
)
print("max |out - out without guidance| =", float((out - plain).abs().max()))
