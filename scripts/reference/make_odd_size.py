#!/usr/bin/env python3
"""UNet outputs at latent sizes not divisible by 2^(levels-1), as diffusers runs them.

diffusers' UNet2DConditionModel passes `upsample_size` (the skip connection's size) to each
upsampler when a latent side is not divisible by the overall up factor, so a 9x10 latent of the tiny
SD 1.x model (2 levels: 9x10 -> 5x5 -> back to 9x10) works. Written for keyshift with
diffusers 0.42.1 / torch 2.15, fp32 on the CPU: seeded inputs, the context of "a photo of a cat",
timestep 500, two sizes (9x10 and 7x7); and one UNet call at 9x10 with the tiny ControlNet's
residuals (hint 18x20).

Outputs: fixtures/tiny-sd1/odd.safetensors + odd.json. Run from the repository root:
python scripts/reference/make_odd_size.py
"""
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import diffusers  # noqa: E402
from diffusers import ControlNetModel, StableDiffusionPipeline  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "fixtures", "tiny-sd1")
torch.set_grad_enabled(False)
torch.use_deterministic_algorithms(True)

pipe = StableDiffusionPipeline.from_pretrained(os.path.join(FIX, "diffusers"), dtype=torch.float32,
                                               safety_checker=None, requires_safety_checker=False,
                                               local_files_only=True)
net = ControlNetModel.from_pretrained(os.path.join(ROOT, "fixtures", "tiny-controlnet", "diffusers"))
ids = pipe.tokenizer("a photo of a cat", padding="max_length", max_length=77, truncation=True,
                     return_tensors="pt").input_ids
ctx = pipe.text_encoder(ids).last_hidden_state
gen = torch.Generator().manual_seed(11)
T, DESC = {}, {}
for h, w in ((9, 10), (7, 7)):
    x = torch.randn(1, 4, h, w, generator=gen)
    T[f"x.{h}x{w}"] = x
    T[f"out.{h}x{w}"] = pipe.unet(x, 500, encoder_hidden_states=ctx).sample
    DESC[f"out.{h}x{w}"] = f"UNet output at a {h}x{w} latent, timestep 500"
hint = torch.rand(1, 3, 18, 20, generator=gen)
down, mid = net(T["x.9x10"], 500, encoder_hidden_states=ctx, controlnet_cond=hint,
                conditioning_scale=1.0, return_dict=False)
T["hint.18x20"] = hint
T["controlled.9x10"] = pipe.unet(T["x.9x10"], 500, encoder_hidden_states=ctx,
                                 down_block_additional_residuals=down,
                                 mid_block_additional_residual=mid).sample
DESC["controlled.9x10"] = "the 9x10 UNet call with the tiny ControlNet's residuals (hint.18x20)"
save_file({k: v.contiguous() for k, v in T.items()}, os.path.join(FIX, "odd.safetensors"))
json.dump({"generator": "scripts/reference/make_odd_size.py",
           "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__},
           "prompt": "a photo of a cat", "timestep": 500, "tensors": DESC},
          open(os.path.join(FIX, "odd.json"), "w"), indent=1)
print("wrote", len(T), "tensors")
