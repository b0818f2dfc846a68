#!/usr/bin/env python3
"""A tiny SD 1.x ControlNet with random weights and its reference values (seeds.md section 4).

Written for keyshift with diffusers 0.42.1 / torch 2.15, fp32 on the CPU:

  1. The ControlNet: `ControlNetModel.from_unet` of the tiny SD 1.x UNet (fixtures/tiny-sd1/),
     with a 2-level hint encoder (8, 16 channels: the tiny VAE halves the image, so the hint must
     be halved once), then every weight perturbed with seeded noise (the zero convolutions get
     weights of their own, else every residual would be zero and nothing tested).
     Saved twice: the diffusers folder (config.json + diffusion_pytorch_model.safetensors) and
     the single-file layout of the original ControlNet (`control_model.input_blocks...`,
     `input_hint_block`, `zero_convs`, `middle_block_out`), checked to convert back to the same
     weights with diffusers' own `convert_controlnet_checkpoint` (its hint encoder's conv_out
     is fixed at input_hint_block.14, the real six-block encoder's; the tiny one's follows the
     same rule, 2 x (blocks + 1)).
  2. The hint: OpenCV's Canny(50, 200) of extras' 64x64 test image (RGB -> grey by cv2), as three
     equal channels in [0, 1], as Attention-Interpolation's CannyProcessor makes it.
  3. The residuals of one ControlNet call (golden's init noise x 2 as the sample, timestep 500,
     the prompt's context, conditioning scale 0.8), with and without guess mode.
  4. Two-step runs of diffusers' StableDiffusionControlNetPipeline (Euler linspace, CFG 7.5,
     negative "", golden's init noise, scale 0.8): plain; guess mode; guess mode with
     control_guidance_start 0.5 (the ControlNet runs at step 1 only). The final latents.

Outputs: fixtures/tiny-controlnet/{diffusers/, tiny_controlnet.safetensors, reference.safetensors,
reference.json, hint.png}. Run from the repository root: python scripts/reference/make_controlnet.py
"""
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import diffusers  # noqa: E402
from diffusers import (ControlNetModel, EulerDiscreteScheduler, StableDiffusionControlNetPipeline,  # noqa: E402
                       StableDiffusionPipeline)
from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING, convert_controlnet_checkpoint  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "fixtures", "tiny-sd1")
OUT = os.path.join(ROOT, "fixtures", "tiny-controlnet")
torch.set_grad_enabled(False)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(2)

PROMPT = "a photo of a cat"
SCALE = 0.8
T, DESC = {}, {}


def put(name, t, what):
    assert name not in T, name
    T[name] = torch.as_tensor(t).detach().float().contiguous().clone()
    DESC[name] = what


pipe = StableDiffusionPipeline.from_pretrained(os.path.join(FIX, "diffusers"), dtype=torch.float32,
                                               safety_checker=None, requires_safety_checker=False,
                                               local_files_only=True)
GOLD = load_file(os.path.join(FIX, "golden.safetensors"))
EXTRAS = load_file(os.path.join(FIX, "extras.safetensors"))
SCHED_CFG = json.load(open(os.path.join(FIX, "golden.json")))["schedulers"]["config"]

# 1. The ControlNet.
net = ControlNetModel.from_unet(pipe.unet, conditioning_embedding_out_channels=(8, 16))
gen = torch.Generator().manual_seed(20261205)
for name, p in net.named_parameters():
    zero = name.startswith(("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding.conv_out"))
    noise = torch.randn(p.shape, generator=gen)
    if zero:
        p.copy_(noise * 0.1)
    else:
        p.add_(noise * 0.02)
net.eval()
os.makedirs(OUT, exist_ok=True)
net.save_pretrained(os.path.join(OUT, "diffusers"), safe_serialization=True)

PER = net.config.layers_per_block + 1
RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
          "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}


def resnet(rest):
    head, _, tail = rest.partition(".")
    return f"{RESNET.get(head, head)}.{tail}"


def ldm_name(key):
    """diffusers ControlNetModel key -> the original ControlNet's (without `control_model.`)."""
    parts = key.split(".")
    n = lambda i: int(parts[i])  # noqa: E731
    rest = lambda i: ".".join(parts[i:])  # noqa: E731
    if parts[0] == "time_embedding":
        return f"time_embed.{0 if parts[1] == 'linear_1' else 2}.{rest(2)}"
    if parts[0] == "conv_in":
        return f"input_blocks.0.0.{rest(1)}"
    if parts[0] == "down_blocks" and parts[2] == "resnets":
        return f"input_blocks.{1 + n(1) * PER + n(3)}.0.{resnet(rest(4))}"
    if parts[0] == "down_blocks" and parts[2] == "attentions":
        return f"input_blocks.{1 + n(1) * PER + n(3)}.1.{rest(4)}"
    if parts[0] == "down_blocks" and parts[2] == "downsamplers":
        return f"input_blocks.{(n(1) + 1) * PER}.0.op.{rest(5)}"
    if parts[0] == "mid_block" and parts[1] == "resnets":
        return f"middle_block.{2 * n(2)}.{resnet(rest(3))}"
    if parts[0] == "mid_block" and parts[1] == "attentions":
        return f"middle_block.1.{rest(3)}"
    if parts[0] == "controlnet_cond_embedding":
        blocks = len(net.controlnet_cond_embedding.blocks)
        if parts[1] == "conv_in":
            return f"input_hint_block.0.{rest(2)}"
        if parts[1] == "blocks":
            return f"input_hint_block.{2 * (n(2) + 1)}.{rest(3)}"
        return f"input_hint_block.{2 * (blocks + 1)}.{rest(2)}"
    if parts[0] == "controlnet_down_blocks":
        return f"zero_convs.{n(1)}.0.{rest(2)}"
    if parts[0] == "controlnet_mid_block":
        return f"middle_block_out.0.{rest(1)}"
    raise KeyError(key)


state = {k: v.contiguous() for k, v in net.state_dict().items()}
ldm = {"control_model." + ldm_name(k): v for k, v in state.items()}
back = convert_controlnet_checkpoint(ldm, dict(net.config))
# diffusers' converter knows the hint encoder of the real ControlNets only: conv_out is fixed at
# input_hint_block.14 (= 2 x (6 blocks + 1)), blocks.k at input_hint_block.2(k+1). The tiny net's
# conv_out sits at 2 x (2 blocks + 1) = 6 by the same rule; everything else must convert back.
table = DIFFUSERS_TO_LDM_MAPPING["controlnet"]["layers"]
assert table["controlnet_cond_embedding.conv_out.weight"] == "input_hint_block.14.weight"
body = {k for k in state if not k.startswith("controlnet_cond_embedding.conv_out")}
assert body <= set(back), body - set(back)
for k in body:
    assert torch.equal(back[k].reshape(state[k].shape), state[k]), k
assert ldm_name("controlnet_cond_embedding.conv_out.weight") == "input_hint_block.6.weight"
save_file(ldm, os.path.join(OUT, "tiny_controlnet.safetensors"))

# 2. The hint.
image = EXTRAS["img2img.image"][0]  # [3, 64, 64] in [-1, 1]
rgb = ((image.permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
edges = cv2.Canny(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 50, 200)
hint_rgb = np.repeat(edges[:, :, None], 3, axis=2)
Image.fromarray(hint_rgb).save(os.path.join(OUT, "hint.png"))
hint = torch.from_numpy(hint_rgb).permute(2, 0, 1)[None].float() / 255.0
put("hint", hint, "Canny(50, 200) of extras' img2img.image, [1, 3, 64, 64] in [0, 1] (hint.png)")
print("hint edge pixels:", int((edges > 0).sum()))


def encode(prompt):
    ids = pipe.tokenizer(prompt, padding="max_length", max_length=77, truncation=True,
                         return_tensors="pt").input_ids
    return pipe.text_encoder(ids).last_hidden_state


# 3. Residuals.
ctx = encode(PROMPT)
sample = GOLD["pipe.init_noise"] * 2.0
for guess in (False, True):
    down, mid = net(sample, 500, encoder_hidden_states=ctx, controlnet_cond=hint,
                    conditioning_scale=SCALE, guess_mode=guess, return_dict=False)
    tag = "guess" if guess else "plain"
    for i, d in enumerate(down):
        put(f"residuals.{tag}.down.{i}", d, f"down residual {i}, {tuple(d.shape)}")
    put(f"residuals.{tag}.mid", mid, f"mid residual, {tuple(mid.shape)}")

# 4. Two-step pipeline runs.
cn_pipe = StableDiffusionControlNetPipeline(
    vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, unet=pipe.unet,
    controlnet=net, scheduler=EulerDiscreteScheduler.from_config(SCHED_CFG), safety_checker=None,
    feature_extractor=None, requires_safety_checker=False)
cn_pipe.set_progress_bar_config(disable=True)
RUNS = {"plain": dict(guess_mode=False), "guess": dict(guess_mode=True),
        "guess_start_half": dict(guess_mode=True, control_guidance_start=0.5)}
for tag, kw in RUNS.items():
    out = cn_pipe(prompt=PROMPT, negative_prompt="", image=Image.fromarray(hint_rgb), height=64, width=64,
                  num_inference_steps=2, guidance_scale=7.5, latents=GOLD["pipe.init_noise"].clone(),
                  output_type="latent", controlnet_conditioning_scale=SCALE, **kw)
    put(f"run.{tag}", out.images, f"final latent of a 2-step Euler run, {kw}")
pipe.scheduler = EulerDiscreteScheduler.from_config(SCHED_CFG)
no_control = pipe(prompt=PROMPT, negative_prompt="", height=64, width=64, num_inference_steps=2,
                  guidance_scale=7.5, latents=GOLD["pipe.init_noise"].clone(), output_type="latent")
put("run.none", no_control.images, "the same run without ControlNet")

save_file(T, os.path.join(OUT, "reference.safetensors"))
json.dump({"generator": "scripts/reference/make_controlnet.py",
           "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                        "opencv": cv2.__version__},
           "prompt": PROMPT, "conditioning_scale": SCALE, "timestep": 500, "tensors": DESC},
          open(os.path.join(OUT, "reference.json"), "w"), indent=1)
print("wrote", len(T), "tensors")
