#!/usr/bin/env python3
"""Extra reference outputs for the tiny SD 1.x fixture (fixtures/tiny-sd1/).

golden.json / golden.safetensors (made by the shared fixtures tool make_golden.py) cover the text
encoder, UNet, VAE, scheduler tables and txt2img with DDIM / Euler / Euler a.  This script adds,
computed with diffusers 0.42.1 / transformers 5.23 / torch 2.15, fp32, on the CPU:

  1. a tiny randomly initialised TAESD (diffusers `AutoencoderTiny`, the real madebyollin/taesd
     architecture with 16 instead of 64 channels), saved to fixtures/taesd-tiny/ both in the
     diffusers layout and in the original single-file layout of madebyollin's `taesd.py`, with
     decoder / encoder reference outputs;
  2. txt2img on the tiny UNet with DPM++ 2M, DPM++ 2M Karras and LCM;
  3. img2img with DDIM (strength 0.5, 8 steps) and Euler (strength 0.75, 4 steps);
  4. A1111-style weighted and multi-chunk conditioning ("Original" emphasis, 75-token chunks,
     comma backtracking), also with CLIP skip 2;
  5. A1111 variation seeds (subseeds): slerp of two CPU-RNG noises, then Euler from that noise.

Outputs (fp32 tensors, int64 ids):
    fixtures/tiny-sd1/extras.safetensors  +  fixtures/tiny-sd1/extras.json  (what each tensor is)
    fixtures/taesd-tiny/{config.json, diffusion_pytorch_model.safetensors,
                         taesd_encoder.safetensors, taesd_decoder.safetensors}

Run from the repository root (any Python with torch 2.15, diffusers 0.42.1, transformers 5.23,
safetensors):
    /path/to/python scripts/reference/make_extras.py

Two runs give byte-identical files (fixed seeds, deterministic algorithms, 2 CPU threads: the thread
count changes float summation order; 2 reproduces golden.safetensors bit for bit).
Every part is checked against an independent hand-written loop (or against golden.safetensors)
and a failed check aborts the script before extras.* are written (fixtures/taesd-tiny/ is written
first, because its checks reload the saved files).
"""
import argparse
import json
import math
import os
import re
import shutil
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import diffusers.utils.logging  # noqa: E402
import transformers.utils.logging  # noqa: E402

import diffusers  # noqa: E402
import transformers  # noqa: E402
from diffusers import (  # noqa: E402
    AutoencoderTiny,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--fixture", default=os.path.join(ROOT, "fixtures", "tiny-sd1"),
                help="the tiny SD 1.x fixture directory (input: diffusers/, golden.safetensors; output: extras.*)")
ap.add_argument("--taesd-out", default=os.path.join(ROOT, "fixtures", "taesd-tiny"),
                help="where the tiny TAESD model files are written")
args = ap.parse_args()
FIX = args.fixture
DIFF_DIR = os.path.join(FIX, "diffusers")
TAESD_DIR = args.taesd_out
OUT_ST = os.path.join(FIX, "extras.safetensors")
OUT_JS = os.path.join(FIX, "extras.json")

# ------------------------------------------------------------------ determinism
diffusers.utils.logging.disable_progress_bar()
transformers.utils.logging.disable_progress_bar()
torch.set_grad_enabled(False)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(2)  # CPU reductions split by thread count; 2 reproduces golden.safetensors bit for bit
torch.manual_seed(0)      # nothing below should use the global RNG, but just in case

SCALING_FACTOR = 0.18215
PROMPT, NEGATIVE, GUIDANCE, STEPS = "a photo of a cat", "", 7.5, 4

T = {}     # name -> tensor            (extras.safetensors)
DESC = {}  # name -> one-line meaning  (extras.json "tensors")


def put(name, t, what):
    """Record a reference tensor (floats as float32) with a sentence saying what it is."""
    assert name not in T, name
    t = t.detach().cpu().contiguous()
    if t.is_floating_point():
        t = t.float()
    T[name] = t.clone()
    DESC[name] = what
    return t


CHECKS = {}  # name -> what was checked (JSON); the numbers are printed


def check(name, got, want, atol, what, rtol=0.0):
    """Abort unless got ≈ want; remember the check for the JSON."""
    got, want = got.double(), want.double()
    diff = (got - want).abs().max().item()
    scale = want.abs().max().item()
    ok = diff <= atol + rtol * scale
    print(f"  check {name:44s} max|diff| = {diff:.3e}  (max|ref| {scale:.3g}, tol {atol + rtol * scale:.1e})"
          f"  {'ok' if ok else 'FAILED'}")
    if not ok:
        sys.exit(f"self-check {name} failed")
    CHECKS[name] = f"{what} (max abs diff <= {atol + rtol * scale:.1e})"


def gen(seed):
    return torch.Generator().manual_seed(seed)


J = {
    "generator": "scripts/reference/make_extras.py",
    "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                 "transformers": transformers.__version__, "python": sys.version.split()[0]},
    "conventions": [
        "fp32 on the CPU; the tiny SD 1.x pipeline is loaded from diffusers/ (fp16 files, upcast exactly)",
        "context for 'a photo of a cat' / negative '' = text encoder last_hidden_state, ids padded to 77 "
        "with 49407 (SD 1.x); CFG batch order [uncond, cond]; eps = eps_u + g * (eps_c - eps_u)",
        "latents are decoded as vae.decode(latents / 0.18215) in [-1, 1], unclamped",
        "schedulers are built like diffusers does from the SD 1.5 scheduler_config.json: Cls.from_config(golden.json "
        "schedulers.config) (+ the stated overrides), so each class keeps its own default timestep_spacing "
        "(DDIM / LCM 'leading' with steps_offset 1, Euler / DPM++ 'linspace')",
        "timesteps: the UNet gets scheduler.timesteps[i] as given (int64 for DDIM/DPM/LCM, float for Euler); "
        "they are listed in this file and stored as float32 tensors '*.timesteps'",
    ],
}

# ================================================================== 0. the tiny SD 1.x pipeline
pipe = StableDiffusionPipeline.from_pretrained(DIFF_DIR, dtype=torch.float32, safety_checker=None,
                                               requires_safety_checker=False, local_files_only=True)
pipe.set_progress_bar_config(disable=True)
unet, vae, te, tok = pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer
for m in (unet, vae, te):
    m.eval()
GOLD = load_file(os.path.join(FIX, "golden.safetensors"))
# The SD 1.5 scheduler_config.json values make_golden.py used (golden.json -> schedulers.config). Not the saved
# diffusers/scheduler/scheduler_config.json: that one is a DDIMScheduler's and pins timestep_spacing "leading",
# which would turn Euler / DPM++ (diffusers default "linspace" for the SD 1.5 config) into "leading" too.
SCHED_CFG = json.load(open(os.path.join(FIX, "golden.json")))["schedulers"]["config"]
assert "timestep_spacing" not in SCHED_CFG
INIT_NOISE = GOLD["pipe.init_noise"].clone()  # [1,4,32,32], randn with torch.Generator().manual_seed(0)


def mk(cls, **over):
    """A scheduler as diffusers builds it from the SD 1.5 config (unknown keys are ignored)."""
    return cls.from_config({**SCHED_CFG, **over})


def encode_text(prompt):
    """SD 1.x context: tokenizer padded to 77 with 49407, text encoder last_hidden_state."""
    ids = tok(prompt, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    return te(ids).last_hidden_state


CTX_COND = encode_text(PROMPT)
CTX_UNCOND = encode_text(NEGATIVE)
CTX = torch.cat([CTX_UNCOND, CTX_COND])  # [2,77,32] in CFG order [uncond, cond]


def eps_cfg(x_in, t, guidance=GUIDANCE):
    """The UNet's CFG noise prediction for unet input x_in at timestep t (batch [uncond, cond])."""
    out = unet(torch.cat([x_in, x_in]), t, encoder_hidden_states=CTX).sample
    u, c = out.chunk(2)
    return u + guidance * (c - u)


def decode(lat):
    return vae.decode(lat / SCALING_FACTOR).sample


def run_pipe(p, scheduler, **kw):
    """Run a diffusers pipeline to latents; return (final latents, latents after each step, timesteps)."""
    if p is pipe:  # txt2img: 64x64 pixels = 32x32 latents with the tiny VAE (x2)
        kw = dict(height=64, width=64, **kw)
    p.scheduler = scheduler
    steps, ts = [], []

    def cb(_p, _i, t, cbkw):
        steps.append(cbkw["latents"].clone())
        ts.append(float(t))
        return cbkw

    out = p(prompt=PROMPT, output_type="latent", callback_on_step_end=cb,
            callback_on_step_end_tensor_inputs=["latents"], **kw)
    return out.images, torch.stack(steps), ts


print("reproducing golden txt2img (DDIM, Euler) with the reloaded pipeline")
for tag, cls in (("ddim", DDIMScheduler), ("euler", EulerDiscreteScheduler)):
    lat, _, _ = run_pipe(pipe, mk(cls), num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                         negative_prompt=None, latents=INIT_NOISE.clone())
    check(f"golden.pipe.{tag}.latents", lat, GOLD[f"pipe.{tag}.latents"], 1e-5, rtol=1e-5,
          what=f"the reloaded pipeline reproduces golden pipe.{tag}.latents")

# ================================================================== 1. TAESD (AutoencoderTiny)
print("TAESD")
TAESD_C = 16  # the real madebyollin/taesd uses 64 everywhere
TAESD_KW = dict(
    in_channels=3, out_channels=3,
    encoder_block_out_channels=(TAESD_C,) * 4, decoder_block_out_channels=(TAESD_C,) * 4,
    num_encoder_blocks=(1, 3, 3, 3), num_decoder_blocks=(3, 3, 3, 1),  # the real TAESD's values
    act_fn="relu", upsample_fn="nearest", latent_channels=4, upsampling_scaling_factor=2,
    latent_magnitude=3, latent_shift=0.5, scaling_factor=1.0, force_upcast=False,
)


def build_taesd():
    """Random AutoencoderTiny whose activations stay O(1) through all 4 stages.

    PyTorch's default conv init shrinks the signal ~20x through the decoder, so the convs are
    re-initialised: N(0, (g / sqrt(fan_in))^2) with g = sqrt(2) for the two input convs, 0.4 for the
    last conv of each residual Block (so the residual sums do not grow), 1.1 for all others (picked
    so activations stay O(0.3..1) through every stage); biases N(0, 0.05^2); the decoder's output
    conv gets +0.5 bias so the raw decoder output sits around [0, 1] like the real one.  Constant parameters (none here) would get noise as in
    make_golden.py; everything is rounded to fp16-representable values.
    """
    torch.manual_seed(0)
    m = AutoencoderTiny(**TAESD_KW).eval()
    g = gen(4321)
    for name, p in m.named_parameters():
        if name.endswith(".weight") and p.ndim == 4:
            fan_in = p.shape[1] * p.shape[2] * p.shape[3]
            if name.startswith(("encoder.layers.0.", "decoder.layers.0.")):
                gain = math.sqrt(2.0)  # the input convs (followed by ReLU)
            elif ".conv.4." in name:
                gain = 0.4  # last conv of a residual Block: keeps the residual sum from growing
            else:
                gain = 1.1
            p.copy_(torch.randn(p.shape, generator=g) * gain / math.sqrt(fan_in))
        elif name.endswith(".bias"):
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        if p.numel() > 1 and bool(p.max() == p.min()):
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    last = m.decoder.layers[-1]
    last.bias.add_(0.5)
    for p in m.parameters():
        p.copy_(p.half().float())
    return m


taesd = build_taesd()


# --- the original madebyollin/taesd.py layout, written from its description (nn.Sequential indices)
class OrigClamp(nn.Module):
    """taesd.py `Clamp`: tanh(x / 3) * 3 (index 0 of the original decoder; no parameters)."""

    def forward(self, x):
        return torch.tanh(x / 3) * 3


class OrigBlock(nn.Module):
    """taesd.py `Block(n, n)`: relu(conv(x) + x), conv = Sequential(conv3, ReLU, conv3, ReLU, conv3)."""

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1),
                                  nn.ReLU(), nn.Conv2d(c, c, 3, padding=1))
        self.skip = nn.Identity()
        self.fuse = nn.ReLU()

    def forward(self, x):
        return self.fuse(self.conv(x) + self.skip(x))


def orig_encoder(c, blocks=(1, 3, 3, 3), latent=4):
    """taesd.py `Encoder`: conv(3,c), Block; then per stage conv(c,c,stride 2,no bias) + Blocks; conv(c,4)."""
    layers = [nn.Conv2d(3, c, 3, padding=1)]
    for i, n in enumerate(blocks):
        if i > 0:
            layers.append(nn.Conv2d(c, c, 3, padding=1, stride=2, bias=False))
        layers += [OrigBlock(c) for _ in range(n)]
    layers.append(nn.Conv2d(c, latent, 3, padding=1))
    return nn.Sequential(*layers)


def orig_decoder(c, blocks=(3, 3, 3, 1), latent=4):
    """taesd.py `Decoder`: Clamp, conv(4,c), ReLU; per stage Blocks + (Upsample x2, conv no bias); conv(c,3)."""
    layers = [OrigClamp(), nn.Conv2d(latent, c, 3, padding=1), nn.ReLU()]
    for i, n in enumerate(blocks):
        layers += [OrigBlock(c) for _ in range(n)]
        if i < len(blocks) - 1:
            layers += [nn.Upsample(scale_factor=2), nn.Conv2d(c, c, 3, padding=1, bias=False)]
    layers.append(nn.Conv2d(c, 3, 3, padding=1))
    return nn.Sequential(*layers)


def diffusers_to_orig(sd):
    """diffusers AutoencoderTiny keys -> (taesd_encoder, taesd_decoder) state dicts.

    encoder.layers.{i}.rest -> {i}.rest      (same Sequential indices)
    decoder.layers.{i}.rest -> {i+1}.rest    (the original decoder has Clamp() at index 0; diffusers
                                              applies the clamp in DecoderTiny.forward instead)
    This is the inverse of diffusers' scripts/convert_tiny_autoencoder_to_diffusers.py.
    """
    enc, dec = {}, {}
    for k, v in sd.items():
        part, layers, idx, rest = k.split(".", 3)
        assert layers == "layers", k
        if part == "encoder":
            enc[f"{int(idx)}.{rest}"] = v
        elif part == "decoder":
            dec[f"{int(idx) + 1}.{rest}"] = v
        else:
            raise KeyError(k)
    return enc, dec


if os.path.isdir(TAESD_DIR):
    shutil.rmtree(TAESD_DIR)
os.makedirs(TAESD_DIR)
taesd.to(torch.float16).save_pretrained(TAESD_DIR, safe_serialization=True)
taesd.to(torch.float32)
# drop loader-only bookkeeping from config.json, as the real madebyollin/taesd config has none
_cfg_path = os.path.join(TAESD_DIR, "config.json")
_cfg = json.load(open(_cfg_path))
for _k in ("_use_default_values", "_name_or_path"):
    _cfg.pop(_k, None)
with open(_cfg_path, "w") as f:
    json.dump(_cfg, f, indent=2, sort_keys=True)
    f.write("\n")
enc_sd, dec_sd = diffusers_to_orig({k: v.half().contiguous() for k, v in taesd.state_dict().items()})
save_file(enc_sd, os.path.join(TAESD_DIR, "taesd_encoder.safetensors"), metadata={"format": "pt"})
save_file(dec_sd, os.path.join(TAESD_DIR, "taesd_decoder.safetensors"), metadata={"format": "pt"})

# reload both layouts from disk and use the reloaded models from here on
taesd = AutoencoderTiny.from_pretrained(TAESD_DIR, dtype=torch.float32).eval()
o_enc, o_dec = orig_encoder(TAESD_C).eval(), orig_decoder(TAESD_C).eval()
o_enc.load_state_dict({k: v.float() for k, v in load_file(os.path.join(TAESD_DIR, "taesd_encoder.safetensors")).items()},
                      strict=True)
o_dec.load_state_dict({k: v.float() for k, v in load_file(os.path.join(TAESD_DIR, "taesd_decoder.safetensors")).items()},
                      strict=True)

# fixed inputs: a latent (decoder) and an image in [-1, 1] (encoder, also used by img2img)
taesd_z = torch.randn(1, 4, 16, 16, generator=gen(11)) * 2.0  # x2 so that the tanh clamp matters


def fixed_image():
    """A smooth 64x64 RGB test pattern, quantised to 8 bits like a decoded PNG, mapped to [-1, 1]."""
    y, x = torch.meshgrid(torch.arange(64, dtype=torch.float64), torch.arange(64, dtype=torch.float64), indexing="ij")
    chans = []
    for c in range(3):
        v = 0.5 + 0.35 * torch.sin(0.13 * (c + 1) * x + 0.07 * (3 - c) * y + c) + 0.15 * torch.cos(0.05 * (x - y) * (c + 2))
        chans.append(torch.round(v.clamp(0, 1) * 255))
    u8 = torch.stack(chans)[None]
    return (u8 / 127.5 - 1.0).float()


IMAGE = fixed_image()  # [1,3,64,64]

dec_raw = o_dec(taesd_z)                 # original layout: [0,1]-ish, no final clamp
dec_api = taesd.decode(taesd_z).sample   # diffusers: tanh clamp + layers, then *2-1
enc_api = taesd.encode(IMAGE).latents    # diffusers: layers((x+1)/2)
enc_raw = o_enc((IMAGE + 1) / 2)         # original layout: expects [0,1] input
check("taesd.decode_vs_original_layout", dec_api, dec_raw * 2 - 1, 1e-6,
      what="diffusers AutoencoderTiny.decode(z) == 2 * taesd.py Decoder(z) - 1 with the single-file weights")
check("taesd.encode_vs_original_layout", enc_api, enc_raw, 1e-6,
      what="diffusers AutoencoderTiny.encode(x).latents == taesd.py Encoder((x + 1) / 2) with the single-file weights")
check("taesd.decoder_module", taesd.decoder(taesd_z), dec_api, 0.0,
      what="AutoencoderTiny.decode(z).sample == DecoderTiny(z) (no scaling_factor / shift inside decode)")
print(f"  taesd decode_out std {dec_api.std():.3f} range [{dec_api.min():.2f}, {dec_api.max():.2f}];"
      f" encode_out std {enc_api.std():.3f}")

put("taesd.decode_in", taesd_z, "[1,4,16,16] latent = randn(generator seed 11) * 2.0 (SD latent space as the UNet "
    "sees it: TAESD has scaling_factor 1.0, so a pipeline decodes UNet latents directly, no / 0.18215)")
put("taesd.decoder_raw", dec_raw, "[1,3,128,128] original taesd.py Decoder(z) = Sequential(Clamp=tanh(z/3)*3, "
    "conv, ReLU, ...): image in ~[0, 1], not clamped; taesd_decoder.safetensors weights")
put("taesd.decode_out", dec_api, "[1,3,128,128] diffusers AutoencoderTiny.decode(z).sample = DecoderTiny(z) = "
    "layers(tanh(z/3)*3) * 2 - 1 = decoder_raw * 2 - 1 (image in ~[-1, 1], not clamped)")
put("taesd.encode_in", IMAGE, "[1,3,64,64] image in [-1, 1] (the fixed 8-bit test pattern, = img2img.image)")
put("taesd.encode_out", enc_api, "[1,4,8,8] diffusers AutoencoderTiny.encode(x).latents = EncoderTiny(x) = "
    "layers((x + 1) / 2) = original taesd.py Encoder((x + 1) / 2); already in UNet latent space (no * 0.18215, "
    "no scale_latents)")

taesd_params = sum(p.numel() for p in taesd.parameters())
J["taesd"] = {
    "model_dir": os.path.relpath(TAESD_DIR, FIX),
    "files": {
        "config.json + diffusion_pytorch_model.safetensors": "diffusers AutoencoderTiny layout (fp16), keys "
        "encoder.layers.{i}.* / decoder.layers.{i}.*",
        "taesd_encoder.safetensors": "original madebyollin/taesd.py Encoder() nn.Sequential state dict (fp16): "
        "key 'encoder.layers.{i}.X' -> '{i}.X'",
        "taesd_decoder.safetensors": "original taesd.py Decoder() nn.Sequential state dict (fp16): "
        "key 'decoder.layers.{i}.X' -> '{i+1}.X' (index 0 of the original is the parameter-free Clamp)",
    },
    "architecture": {
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in TAESD_KW.items()},
        "channels_note": "16 channels in every stage instead of the real 64; everything else as madebyollin/taesd",
        "params": taesd_params,
        "block": "Block(c): relu(conv3(relu(conv3(relu(conv3(x))))) + x); keys conv.0 / conv.2 / conv.4 "
                 "(weight, bias); skip is Identity (no key) since in == out channels",
        "encoder_sequence": "0 conv3(3->c) | 1 Block | 2 conv3 stride 2 no bias | 3-5 Block | 6 conv3 s2 nb | 7-9 Block "
                            "| 10 conv3 s2 nb | 11-13 Block | 14 conv3(c->4)   (/8 downscale)",
        "decoder_sequence": "0 Clamp tanh(x/3)*3 | 1 conv3(4->c) | 2 ReLU | 3-5 Block | 6 Upsample nearest x2 | "
                            "7 conv3 no bias | 8-10 Block | 11 Up | 12 conv3 nb | 13-15 Block | 16 Up | 17 conv3 nb "
                            "| 18 Block | 19 conv3(c->3)   (x8 upscale); diffusers' decoder.layers index = original - 1",
        "init": "convs N(0, (g/sqrt(fan_in))^2): g = sqrt(2) for the input convs, 0.4 for each Block's conv.4, "
                "1.1 otherwise; biases N(0, 0.05^2); "
                "decoder output conv bias + 0.5; all values fp16-representable",
    },
    "decode": "diffusers AutoencoderTiny.decode(z) = DecoderTiny(z): x = tanh(z / 3) * 3, x = layers(x), return x * 2 - 1. "
              "No scaling_factor / shift inside decode (the pipeline divides by scaling_factor = 1.0). "
              "The original taesd.py Decoder returns layers(Clamp(z)) in [0, 1] (its own demo clamps to [0, 1] afterwards).",
    "encode": "diffusers AutoencoderTiny.encode(x) = EncoderTiny(x) = layers((x + 1) / 2) for x in [-1, 1]; the original "
              "taesd.py Encoder takes x in [0, 1] directly. The output is already in the UNet's latent space. "
              "scale_latents (z / 6 + 0.5 clamped to [0,1]) / unscale_latents are only for storing latents as 8-bit "
              "images (used by AutoencoderTiny.forward) and are not part of encode/decode.",
}

# ================================================================== 2. more txt2img samplers
print("txt2img: DPM++ 2M, DPM++ 2M Karras, LCM")
sched_desc = {}


def record_txt2img(tag, lat, steps, ts, desc, sched):
    put(f"pipe.{tag}.step_latents", steps, f"[{len(ts)},1,4,32,32] latents after each {tag} step")
    put(f"pipe.{tag}.latents", lat, f"[1,4,32,32] final {tag} latent")
    put(f"pipe.{tag}.image", decode(lat), f"[1,3,64,64] vae.decode(pipe.{tag}.latents / 0.18215)")
    put(f"pipe.{tag}.timesteps", torch.tensor(ts, dtype=torch.float32),
        f"[{len(ts)}] timestep given to the UNet at each {tag} step")
    entry = {"description": desc, "timesteps": ts}
    if hasattr(sched, "sigmas"):
        entry["sigmas"] = [float(s) for s in sched.sigmas]
    sched_desc[tag] = entry


def dpm_hand_loop(sigmas, timesteps, x):
    """DPM-Solver++(2M), diffusers' formulation in VP form, written out (lower_order_final at the end).

    sigma = sqrt((1 - acp) / acp) (the VE sigma); alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma * alpha_t,
    lambda = log(alpha_t / sigma_t) = -log(sigma).  x0 = (x - sigma_t * eps) / alpha_t.
    1st order: x' = (sigma_t' / sigma_t) x - alpha_t' (exp(-h) - 1) x0,            h = lambda' - lambda
    2nd order: x' = (sigma_t' / sigma_t) x - alpha_t' (exp(-h) - 1) (x0 + 0.5 (x0 - x0_prev) / r), r = h_prev / h
    Last step to sigma = 0 is first order and returns x0.
    """
    sig = [float(s) for s in sigmas]
    prev_x0, prev_h = None, None
    n = len(timesteps)
    for i, t in enumerate(timesteps):
        s, s_next = sig[i], sig[i + 1]
        a_t, sg_t = 1.0 / math.sqrt(s * s + 1), s / math.sqrt(s * s + 1)
        eps = eps_cfg(x, t)  # DPM: no input scaling (x is already VP-scaled), init_noise_sigma = 1
        x0 = (x - sg_t * eps) / a_t
        if s_next == 0.0:
            x = x0
            continue
        a_n, sg_n = 1.0 / math.sqrt(s_next ** 2 + 1), s_next / math.sqrt(s_next ** 2 + 1)
        h = math.log(a_n / sg_n) - math.log(a_t / sg_t)
        if prev_x0 is None or (i == n - 1):
            d = x0
        else:
            r = prev_h / h
            d = x0 + 0.5 * (x0 - prev_x0) / r
        x = (sg_n / sg_t) * x - a_n * (math.exp(-h) - 1.0) * d
        prev_x0, prev_h = x0, h
    return x


for tag, over, desc in (
    ("dpmpp_2m", {}, "DPMSolverMultistepScheduler defaults from the SD 1.5 config: algorithm_type dpmsolver++, "
     "solver_order 2 (midpoint), linspace spacing, final_sigmas_type zero, lower_order_final (the last step is "
     "1st order). UNet input = latents (no scaling), timestep = scheduler.timesteps[i] (int64); init = noise * 1.0"),
    ("dpmpp_2m_karras", {"use_karras_sigmas": True}, "as dpmpp_2m with use_karras_sigmas=True: Karras sigmas (rho 7, "
     "from sigma_max = 14.6146 to sigma_min = 0.0292 of the 1000-step table); the UNet timestep is the Karras sigma "
     "mapped back to t by log-sigma interpolation and ROUNDED to an integer, while the solver uses the exact Karras "
     "sigma"),
):
    sch = mk(DPMSolverMultistepScheduler, **over)
    lat, steps, ts = run_pipe(pipe, sch, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                              negative_prompt=None, latents=INIT_NOISE.clone())
    ref_s = mk(DPMSolverMultistepScheduler, **over)
    ref_s.set_timesteps(STEPS)
    hand = dpm_hand_loop(ref_s.sigmas, ref_s.timesteps, INIT_NOISE.clone())
    check(f"pipe.{tag}.hand_loop", lat, hand, 1e-5, rtol=1e-5,
          what=f"{tag}: the pipeline equals a hand-written DPM-Solver++(2M) loop (formulas in the description)")
    record_txt2img(tag, lat, steps, ts, desc, sch)

# --- LCM: cond only (guidance 1.0), fresh noise between steps, replayed from pipe.lcm.step_noise
import diffusers.schedulers.scheduling_lcm as lcm_mod  # noqa: E402

lcm_noise = torch.randn(STEPS - 1, 1, 4, 32, 32, generator=gen(2))
_orig_randn = lcm_mod.randn_tensor
_it = iter(lcm_noise)
lcm_mod.randn_tensor = lambda shape, **kw: next(_it).reshape(shape).to(kw.get("dtype") or torch.float32)
sch = mk(LCMScheduler)
lat, steps, ts = run_pipe(pipe, sch, num_inference_steps=STEPS, guidance_scale=1.0, negative_prompt=None,
                          latents=INIT_NOISE.clone())
lcm_mod.randn_tensor = _orig_randn
assert next(_it, None) is None, "LCM must draw exactly STEPS - 1 noises"


def lcm_hand_loop(ts_, x, noise):
    """LCM multistep sampling with the consistency boundary conditions, cond-only UNet."""
    acp = mk(LCMScheduler).alphas_cumprod
    for i, t in enumerate(ts_):
        t = int(t)
        eps = unet(x, torch.tensor(t), encoder_hidden_states=CTX_COND).sample
        a, b = acp[t], 1 - acp[t]
        x0 = (x - b.sqrt() * eps) / a.sqrt()
        st = t * 10.0  # timestep_scaling
        c_skip = 0.5 ** 2 / (st ** 2 + 0.5 ** 2)
        c_out = st / (st ** 2 + 0.5 ** 2) ** 0.5
        den = c_out * x0 + c_skip * x
        if i < len(ts_) - 1:
            a_prev = acp[int(ts_[i + 1])]
            x = a_prev.sqrt() * den + (1 - a_prev).sqrt() * noise[i]
        else:
            x = den
    return x


check("pipe.lcm.hand_loop", lat, lcm_hand_loop(ts, INIT_NOISE.clone(), lcm_noise), 1e-5, rtol=1e-5,
      what="lcm: the pipeline equals a hand-written LCM loop with the recorded step noise")
put("pipe.lcm.step_noise", lcm_noise, f"[{STEPS - 1},1,4,32,32] LCM's fresh noise: step_noise[i] is drawn after "
    "step i (i = 0..steps-2; none after the last step) = torch.randn(generator seed 2)")
record_txt2img("lcm", lat, steps, ts, "LCMScheduler from the SD 1.5 config with its own defaults "
               "(original_inference_steps 50, timestep_scaling 10, sigma_data 0.5): timesteps = "
               "(arange(1, 51) * 20 - 1) taken every len/steps from the end. Run at guidance 1.0: NO CFG, batch 1 "
               "with the cond context only (the tiny UNet has no guidance embedding / time_cond_proj_dim). "
               "UNet input = latents (no scaling), timestep int64; init = noise * 1.0. Per step: "
               "x0 = (x - sqrt(1-acp[t]) eps) / sqrt(acp[t]); c_skip = 0.25 / ((10t)^2 + 0.25), "
               "c_out = 10t / sqrt((10t)^2 + 0.25); den = c_out x0 + c_skip x; "
               "x = sqrt(acp[t_next]) den + sqrt(1 - acp[t_next]) step_noise[i], and the last step returns den", sch)

J["pipeline"] = {
    "prompt": PROMPT, "negative_prompt": NEGATIVE, "guidance_scale": GUIDANCE, "num_inference_steps": STEPS,
    "height": 64, "width": 64, "init_noise": "golden.safetensors 'pipe.init_noise' [1,4,32,32]",
    "outputs": "pipe.<s>.step_latents latents after each step, pipe.<s>.latents final latent, pipe.<s>.image = "
               "vae.decode(latents / 0.18215), pipe.<s>.timesteps the UNet timesteps",
    "schedulers": sched_desc,
}

# ================================================================== 3. img2img
print("img2img")
i2i = StableDiffusionImg2ImgPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=mk(DDIMScheduler),
                                     safety_checker=None, feature_extractor=None, requires_safety_checker=False)
i2i.set_progress_bar_config(disable=True)
import diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img as i2i_mod  # noqa: E402

moments = vae.quant_conv(vae.encoder(IMAGE))
INIT_LATENT = vae.encode(IMAGE).latent_dist.mean * SCALING_FACTOR
check("img2img.init_latent_is_mean", INIT_LATENT, moments[:, :4] * SCALING_FACTOR, 0.0,
      what="init latent = vae.encode(image).latent_dist.mean * 0.18215 = quant_conv(encoder(image))[:, :4] * 0.18215")
I2I_NOISE = torch.randn(1, 4, 32, 32, generator=gen(3))


def run_i2i(scheduler, init_latent, noise, strength, steps):
    """diffusers img2img with a given init latent (4-channel input skips the VAE) and a given add_noise noise."""
    orig = i2i_mod.randn_tensor
    i2i_mod.randn_tensor = lambda shape, **kw: noise.clone().reshape(shape)
    try:
        return run_pipe(i2i, scheduler, image=init_latent.clone(), strength=strength, num_inference_steps=steps,
                        guidance_scale=GUIDANCE, negative_prompt=None)
    finally:
        i2i_mod.randn_tensor = orig


def ddim_hand_loop(x0_lat, noise, strength, steps):
    """img2img DDIM (eta 0, leading, steps_offset 1) written out."""
    s = mk(DDIMScheduler)
    s.set_timesteps(steps)
    acp = s.alphas_cumprod
    t_start = steps - min(int(steps * strength), steps)
    ts_ = [int(t) for t in s.timesteps[t_start:]]
    a0 = acp[ts_[0]]
    x = a0.sqrt() * x0_lat + (1 - a0).sqrt() * noise  # add_noise
    start = x.clone()
    ratio = 1000 // steps
    for t in ts_:
        eps = eps_cfg(x, torch.tensor(t))
        a_t = acp[t]
        a_prev = acp[t - ratio] if t - ratio >= 0 else acp[0]  # set_alpha_to_one = False
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    return x, start, ts_


def euler_hand_loop(x0_lat, noise, strength, steps):
    """img2img Euler (linspace) written out."""
    s = mk(EulerDiscreteScheduler)
    s.set_timesteps(steps)
    sig = [float(v) for v in s.sigmas]
    t_start = steps - min(int(steps * strength), steps)
    x = x0_lat + noise * sig[t_start]  # add_noise
    start = x.clone()
    for i in range(t_start, steps):
        x_in = x / math.sqrt(sig[i] ** 2 + 1)
        eps = eps_cfg(x_in, s.timesteps[i])
        x = x + (sig[i + 1] - sig[i]) * eps  # epsilon: derivative d = eps
    return x, start, [float(t) for t in s.timesteps[t_start:]]


put("img2img.image", IMAGE, "[1,3,64,64] init image in [-1, 1]: a smooth 8-bit test pattern u8 / 127.5 - 1 "
    "(same tensor as taesd.encode_in)")
put("img2img.init_latent", INIT_LATENT, "[1,4,32,32] vae.encode(img2img.image).latent_dist.mean * 0.18215 "
    "(= quant_conv(encoder(x))[:, :4] * 0.18215; no sampling)")
put("img2img.noise", I2I_NOISE, "[1,4,32,32] the noise given to scheduler.add_noise by both img2img runs "
    "= torch.randn(generator seed 3)")
i2i_desc = {}
for tag, cls, strength, steps, desc in (
    ("ddim", DDIMScheduler, 0.5, 8,
     "DDIM eta 0, leading, steps_offset 1, 8 steps, strength 0.5: t_start = 8 - int(8 * 0.5) = 4, the last 4 of "
     "[876, 751, 626, 501, 376, 251, 126, 1] run; start = sqrt(acp[t0]) init_latent + sqrt(1 - acp[t0]) noise; "
     "UNet input = latents (no scaling), timestep int; prev alpha of t = 1 is acp[0] (set_alpha_to_one False)"),
    ("euler", EulerDiscreteScheduler, 0.75, 4,
     "Euler (linspace), 4 steps, strength 0.75: t_start = 4 - int(4 * 0.75) = 1, timesteps[1:] run (3 steps); "
     "start = init_latent + noise * sigmas[1] (NOT divided by anything); UNet input = x / sqrt(sigma^2 + 1), "
     "timestep = timesteps[i] (float); x += (sigma[i+1] - sigma[i]) * eps"),
):
    lat, stp, ts = run_i2i(mk(cls), INIT_LATENT, I2I_NOISE, strength, steps)
    hand = ddim_hand_loop if cls is DDIMScheduler else euler_hand_loop
    h_lat, start, h_ts = hand(INIT_LATENT, I2I_NOISE, strength, steps)
    assert [float(t) for t in h_ts] == ts, (tag, h_ts, ts)
    check(f"img2img.{tag}.hand_loop", lat, h_lat, 1e-5, rtol=1e-5,
          what=f"img2img {tag}: the pipeline equals a hand-written loop from the same init latent and noise")
    put(f"img2img.{tag}.start_latent", start, f"[1,4,32,32] scheduler.add_noise(init_latent, noise, timesteps[0] "
        f"of the run): the latent the {tag} loop starts from")
    put(f"img2img.{tag}.timesteps", torch.tensor(ts, dtype=torch.float32), f"[{len(ts)}] the timesteps that run")
    put(f"img2img.{tag}.step_latents", stp, f"[{len(ts)},1,4,32,32] latents after each step that runs")
    put(f"img2img.{tag}.latents", lat, "[1,4,32,32] final latent")
    put(f"img2img.{tag}.image", decode(lat), f"[1,3,64,64] vae.decode(img2img.{tag}.latents / 0.18215)")
    i2i_desc[tag] = {"strength": strength, "num_inference_steps": steps, "timesteps_run": ts, "description": desc}

# strength 1.0 sanity checks against the txt2img goldens:
#  Euler: add_noise(0, n, t=999) = n * sigma_max = the txt2img start, so img2img(strength 1, init 0, noise = init
#         noise) must reproduce golden pipe.euler.latents;
#  DDIM:  add_noise(0, n, t=751) = sqrt(1 - acp[751]) n, so with n = init_noise / sqrt(1 - acp[751]) it starts
#         from the txt2img latent (up to rounding) and must reproduce golden pipe.ddim.latents.
zero = torch.zeros_like(INIT_LATENT)
lat, _, _ = run_i2i(mk(EulerDiscreteScheduler), zero, INIT_NOISE, 1.0, STEPS)
check("img2img.euler.strength1_equals_txt2img", lat, GOLD["pipe.euler.latents"], 1e-5, rtol=1e-5,
      what="Euler img2img at strength 1.0 from a zero latent with noise = pipe.init_noise equals golden pipe.euler.latents")
_d = mk(DDIMScheduler)
_d.set_timesteps(STEPS)
lat, _, _ = run_i2i(mk(DDIMScheduler), zero, INIT_NOISE / (1 - _d.alphas_cumprod[int(_d.timesteps[0])]).sqrt(), 1.0, STEPS)
check("img2img.ddim.strength1_equals_txt2img", lat, GOLD["pipe.ddim.latents"], 1e-5, rtol=1e-5,
      what="DDIM img2img at strength 1.0 from a zero latent with noise = init_noise / sqrt(1 - acp[751]) equals "
           "golden pipe.ddim.latents")

J["img2img"] = {
    "prompt": PROMPT, "negative_prompt": NEGATIVE, "guidance_scale": GUIDANCE, "cfg": "batch [uncond, cond]",
    "how": "StableDiffusionImg2ImgPipeline given the 4-channel init latent directly (so diffusers skips its own "
           "vae.encode, which would sample the latent distribution), with scheduler.add_noise's randn replaced "
           "by img2img.noise. init_timestep = min(int(steps * strength), steps), t_start = steps - init_timestep, "
           "timesteps = scheduler.timesteps[t_start:]",
    "runs": i2i_desc,
}

# ================================================================== 4. A1111 conditioning
print("A1111 weighted / multi-chunk conditioning")
BOS, EOS = tok.bos_token_id, tok.eos_token_id
assert (BOS, EOS) == (49406, 49407)
COMMA = tok.get_vocab()[",</w>"]
CHUNK = 75
COMMA_BACKTRACK = 20  # A1111 option comma_padding_backtrack, default 20

# A1111 modules/prompt_parser.py parse_prompt_attention: the token regex, in the same order of alternatives
RE_ATTENTION = re.compile(r"\\\(|\\\)|\\\[|\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|]|[^\\()\[\]:]+|:")
RE_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


def parse_attention(text):
    """A1111 emphasis: '(x)' x1.1, '[x]' /1.1 (i.e. * (1/1.1)), '(x:w)' xw, '\\(' literal, 'BREAK' -> ('BREAK', -1);
    unclosed brackets apply to the rest; neighbours with equal weights are merged."""
    res, rounds, squares = [], [], []

    def mul(start, m):
        for p in range(start, len(res)):
            res[p][1] *= m

    for m in RE_ATTENTION.finditer(text):
        s, w = m.group(0), m.group(1)
        if s.startswith("\\"):
            res.append([s[1:], 1.0])
        elif s == "(":
            rounds.append(len(res))
        elif s == "[":
            squares.append(len(res))
        elif w is not None and rounds:
            mul(rounds.pop(), float(w))
        elif s == ")" and rounds:
            mul(rounds.pop(), 1.1)
        elif s == "]" and squares:
            mul(squares.pop(), 1 / 1.1)
        else:
            for i, part in enumerate(RE_BREAK.split(s)):
                if i > 0:
                    res.append(["BREAK", -1])
                res.append([part, 1.0])
    for p in rounds:
        mul(p, 1.1)
    for p in squares:
        mul(p, 1 / 1.1)
    if not res:
        res = [["", 1.0]]
    i = 0
    while i + 1 < len(res):
        if res[i][1] == res[i + 1][1]:
            res[i][0] += res[i + 1][0]
            res.pop(i + 1)
        else:
            i += 1
    return res


def a1111_chunks(text, backtrack=COMMA_BACKTRACK):
    """A1111 FrozenCLIPEmbedderWithCustomWordsBase.tokenize_line (no textual inversion): each parsed piece is
    tokenized on its own (no BOS/EOS, no truncation); 75 tokens per chunk; when a chunk is full and the next token
    is not a comma, everything after the chunk's last comma (if it is at most `backtrack` tokens back) moves to the
    next chunk; every chunk becomes [BOS] + tokens + EOS padding to 75 + [EOS], weights 1.0 on BOS/EOS/padding."""
    parsed = parse_attention(text)
    toks = tok([t for t, _ in parsed], truncation=False, add_special_tokens=False)["input_ids"]
    chunks = []
    cur_t, cur_w = [], []
    last_comma = -1

    def close():
        nonlocal cur_t, cur_w, last_comma
        pad = CHUNK - len(cur_t)
        chunks.append(([BOS] + cur_t + [EOS] * pad + [EOS], [1.0] + cur_w + [1.0] * pad + [1.0]))
        cur_t, cur_w, last_comma = [], [], -1

    for ids, (piece, weight) in zip(toks, parsed):
        if piece == "BREAK" and weight == -1:
            close()
            continue
        for t in ids:
            if t == COMMA:
                last_comma = len(cur_t)
            elif backtrack and len(cur_t) == CHUNK and last_comma != -1 and len(cur_t) - last_comma <= backtrack:
                cut = last_comma + 1
                moved_t, moved_w = cur_t[cut:], cur_w[cut:]
                cur_t, cur_w = cur_t[:cut], cur_w[:cut]
                close()
                cur_t, cur_w = moved_t, moved_w
            if len(cur_t) == CHUNK:
                close()
            cur_t.append(t)
            cur_w.append(weight)
    if cur_t or not chunks:
        close()
    return parsed, chunks


def text_model_final_ln():
    return getattr(te, "text_model", te).final_layer_norm


def a1111_encode(chunks, clip_skip=1):
    """Per chunk: encoder (no attention mask), optional CLIP skip (hidden_states[-n] + final LN), then A1111
    'Original' emphasis: z *= weight per token; z *= mean_before / mean_after (means over the whole chunk tensor);
    chunks are concatenated along the token axis."""
    zs, raws = [], []
    for ids, weights in chunks:
        ids_t = torch.tensor([ids], dtype=torch.int64)
        out = te(ids_t, output_hidden_states=True)
        z = out.last_hidden_state if clip_skip == 1 else text_model_final_ln()(out.hidden_states[-clip_skip])
        raws.append(z)
        w = torch.tensor([weights], dtype=torch.float32)
        mean0 = z.mean()
        z = z * w[..., None]
        z = z * (mean0 / z.mean())
        zs.append(z)
    return torch.cat(zs, dim=1), torch.cat(raws, dim=1)


def flat(chunks):
    ids = torch.tensor([sum((c[0] for c in chunks), [])], dtype=torch.int64)
    w = torch.tensor([sum((c[1] for c in chunks), [])], dtype=torch.float32)
    return ids, w


cond_j = {}
# (a) weighted prompt, one chunk
WEIGHTED = "a (photo:1.3) of a [cat]"
parsed, chunks = a1111_chunks(WEIGHTED)
assert [[p, round(w, 6)] for p, w in parsed] == [["a ", 1.0], ["photo", 1.3], [" of a ", 1.0], ["cat", 0.909091]], parsed
ids, w = flat(chunks)
z, raw = a1111_encode(chunks)
# with all weights 1 the A1111 path must equal the plain SD 1.x encoding of the same prompt text
plain_chunks = [(c[0], [1.0] * len(c[1])) for c in chunks]
check("a1111.unweighted_equals_plain", a1111_encode(plain_chunks)[0], encode_text("a photo of a cat"), 1e-6,
      what="A1111 path with all weights 1 on 'a photo of a cat' ids equals the plain SD 1.x context")
put("a1111.weighted.ids", ids, "int64 [1,77] A1111 chunk ids of 'a (photo:1.3) of a [cat]': BOS, a, photo, of, a, "
    "cat, EOS x 72 (padding with EOS 49407, then the closing EOS)")
put("a1111.weighted.weights", w, "[1,77] per-token multipliers: photo 1.3, cat 1/1.1 = 0.9090909, all others "
    "(BOS, EOS, padding) 1.0")
put("a1111.weighted.raw", raw, "[1,77,32] text encoder last_hidden_state of those ids, before emphasis")
put("a1111.weighted.cond", z, "[1,77,32] A1111 'Original' emphasis: raw * weights[..., None], then * (raw.mean() / "
    "weighted.mean()) with means over the whole [1,77,32] chunk")
z2, raw2 = a1111_encode(chunks, clip_skip=2)
put("a1111.weighted_clip_skip2.raw", raw2, "[1,77,32] CLIP skip 2: final_layer_norm(hidden_states[-2]) of the same "
    "ids, before emphasis")
put("a1111.weighted_clip_skip2.cond", z2, "[1,77,32] CLIP skip 2 + the same emphasis / mean restoration")
cond_j["weighted"] = {"prompt": WEIGHTED, "parsed": [[p, wt] for p, wt in parsed], "ids": ids[0].tolist(),
                      "weights": sum((c[1] for c in chunks), [])}  # Python floats (float64) before the float32 tensor

# (b) long prompt: two chunks, comma backtracking, emphasis in the 2nd chunk
LONG = ", ".join(["a red fox in the snow"] * 13) + ", (best quality:1.2), [blurry], masterpiece"
parsed_l, chunks_l = a1111_chunks(LONG)
n_tok = sum(len(x) for x in tok([p for p, _ in parsed_l], truncation=False, add_special_tokens=False)["input_ids"])
assert len(chunks_l) == 2 and 75 < n_tok <= 150, (len(chunks_l), n_tok)
first_len = chunks_l[0][0].index(EOS) - 1  # prompt tokens in chunk 1
_, chunks_nb = a1111_chunks(LONG, backtrack=0)
assert first_len < 75 and chunks_nb[0][0][76] == EOS and chunks_nb[0][0][75] != EOS, "backtracking should matter"
ids_l, w_l = flat(chunks_l)
zl, rawl = a1111_encode(chunks_l)
check("a1111.long.chunkwise", zl[:, 77:], a1111_encode([chunks_l[1]])[0], 0.0,
      what="the long prompt's emphasis is applied per chunk (chunk 2 alone gives the same second half)")
put("a1111.long.ids", ids_l, f"int64 [1,154] the two 77-token chunks of the long prompt, concatenated: chunk 1 = BOS + "
    f"its first {first_len} tokens (up to and including the comma that comma backtracking moved the break to) + EOS "
    f"padding + EOS; chunk 2 = BOS + the remaining {n_tok - first_len} tokens + EOS padding + EOS")
put("a1111.long.weights", w_l, "[1,154] per-token multipliers (best quality 1.2, blurry 1/1.1, others 1.0)")
put("a1111.long.raw", rawl, "[1,154,32] last_hidden_state of each chunk (encoded separately), concatenated")
put("a1111.long.cond", zl, "[1,154,32] per chunk: emphasis + mean restoration over that chunk's [1,77,32], "
    "then the chunks concatenated along the token axis")
cond_j["long"] = {"prompt": LONG, "prompt_tokens": n_tok, "chunk1_prompt_tokens": first_len,
                  "parsed": [[p, wt] for p, wt in parsed_l], "ids": ids_l[0].tolist(),
                  "weights": sum((c[1] for c in chunks_l), []),
                  "without_backtracking_chunk1_ids": chunks_nb[0][0],
                  "note": f"the 76th token is not a comma and the last comma is {75 - first_len} tokens back "
                          f"(<= {COMMA_BACKTRACK}), so the rest of the phrase moves to chunk 2; with "
                          "comma_padding_backtrack = 0 chunk 1 would be the first 75 tokens "
                          "(without_backtracking_chunk1_ids)"}
J["a1111_conditioning"] = {
    "source": "AUTOMATIC1111 modules/sd_hijack_clip.py FrozenCLIPEmbedderWithCustomWords + modules/prompt_parser.py "
              "parse_prompt_attention + sd_emphasis 'Original' (the default), re-implemented here on the tiny "
              "text encoder (transformers CLIPTextModel, no attention mask)",
    "tokenize": "each parsed piece is tokenized separately (add_special_tokens=False, no truncation)",
    "chunking": f"{CHUNK} prompt tokens per chunk -> [BOS 49406] + tokens + EOS 49407 padding + [EOS]; "
                f"comma_padding_backtrack = {COMMA_BACKTRACK} (default): when a chunk holds 75 tokens and the next "
                "token is not ',' (id " + str(COMMA) + "), the tokens after the chunk's last comma, if it is <= 20 "
                "tokens back, move to the next chunk",
    "emphasis": "per chunk: z = encoder(ids); m0 = z.mean(); z = z * w[:, :, None]; z = z * (m0 / z.mean()) "
                "(means over all elements of that chunk); chunks concatenated along tokens",
    "clip_skip_2": "z = final_layer_norm(hidden_states[-2]) instead of last_hidden_state, then the same emphasis",
    "weights": "'(x)' x1.1, '[x]' x(1/1.1), '(x:w)' xw, multiplied in Python float64 then stored as float32",
    "prompts": cond_j,
}

# ================================================================== 5. A1111 variation seeds (subseeds)
print("A1111 subseeds")
SEED, SUBSEED, SUB_STRENGTH = 1234, 5678, 0.3


def a1111_slerp(val, low, high):
    """modules/processing.py slerp. NOTE: for the [C, H, W] noise A1111 passes, dim 1 is H: the norms/dots are
    per (channel, column) over the rows; and its near-parallel fallback is low*val + high*(1-val) (sic)."""
    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * val + high * (1 - val)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - val) * omega) / so).unsqueeze(1) * low + (torch.sin(val * omega) / so).unsqueeze(1) * high


seed_noise = torch.randn([4, 32, 32], generator=torch.manual_seed(SEED))
sub_noise = torch.randn([4, 32, 32], generator=torch.manual_seed(SUBSEED))
mixed = a1111_slerp(SUB_STRENGTH, seed_noise, sub_noise)
# sanity: strength 0 gives the seed noise, the result is not simply a lerp
check("subseed.strength0_is_seed", a1111_slerp(0.0, seed_noise, sub_noise), seed_noise, 1e-6,
      what="slerp(0, seed, sub) == seed noise")
put("subseed.seed_noise", seed_noise, "[4,32,32] torch.randn([4,32,32], generator=torch.manual_seed(1234)) "
    "(A1111 randn with the CPU RNG source, one image, no batch axis)")
put("subseed.subseed_noise", sub_noise, "[4,32,32] torch.randn([4,32,32], generator=torch.manual_seed(5678))")
put("subseed.noise", mixed, "[4,32,32] A1111 slerp(0.3, seed_noise, subseed_noise) on the [C,H,W] tensors "
    "(norms and dots over dim 1 = H)")
sub_lat, sub_steps, sub_ts = run_pipe(pipe, mk(EulerDiscreteScheduler), num_inference_steps=STEPS,
                                      guidance_scale=GUIDANCE, negative_prompt=None, latents=mixed[None].clone())
put("subseed.euler.step_latents", sub_steps, "[4,1,4,32,32] Euler (linspace, 4 steps, CFG 7.5, 'a photo of a cat') "
    "from subseed.noise[None] * sigma_max (14.6146): latents after each step")
put("subseed.euler.latents", sub_lat, "[1,4,32,32] the final latent of that run")
J["subseed"] = {
    "seed": SEED, "subseed": SUBSEED, "subseed_strength": SUB_STRENGTH,
    "rng": "torch CPU generator: A1111 with Settings > 'Random number generator source' = CPU "
           "(A1111's default source is the GPU's RNG, which gives other numbers for the same seed)",
    "noise": "A1111 processing.py / rng.py: subnoise = randn(subseed, [C,H/8,W/8]); noise = randn(seed, same); "
             "noise = slerp(subseed_strength, noise, subnoise)",
    "slerp": "low_n = low / ||low||_dim1, high_n = high / ||high||_dim1, dot = (low_n * high_n).sum(1); "
             "if dot.mean() > 0.9995: low * val + high * (1 - val); else omega = acos(dot), "
             "res = sin((1-val) omega)/sin(omega) [unsqueeze(1)] * low + sin(val omega)/sin(omega) [unsqueeze(1)] * high. "
             "dim 1 of the per-image [C,H,W] tensor is H",
    "euler_run": "diffusers Euler linspace 4 steps, latents = subseed.noise[None] * init_noise_sigma (14.6146); "
                 "unet input x / sqrt(sigma^2 + 1), timestep float; CFG 7.5 [uncond, cond]",
    "timesteps": sub_ts,
}

# ================================================================== write
J["self_checks"] = CHECKS
J["tensors"] = {k: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", ""), "what": DESC[k]}
                for k, v in T.items()}
J["files"] = {
    "golden": "golden.json / golden.safetensors (pipe.init_noise and the DDIM / Euler goldens are inputs/checks here)",
    "diffusers": "diffusers",
    "taesd_diffusers": os.path.relpath(TAESD_DIR, FIX),
    "taesd_encoder_single_file": os.path.relpath(os.path.join(TAESD_DIR, "taesd_encoder.safetensors"), FIX),
    "taesd_decoder_single_file": os.path.relpath(os.path.join(TAESD_DIR, "taesd_decoder.safetensors"), FIX),
}
J["tolerance_hint"] = "fp32 CPU reference: ~1e-5 relative for single modules, ~1e-4 for whole sampler runs"
save_file(T, OUT_ST, metadata={"generator": "make_extras.py"})
with open(OUT_JS, "w") as f:
    json.dump(J, f, indent=1)
    f.write("\n")


# plain 0644 files like the rest of fixtures/ (some writers create 0600 files)
for p in [OUT_ST, OUT_JS] + [os.path.join(TAESD_DIR, fn) for fn in sorted(os.listdir(TAESD_DIR))]:
    os.chmod(p, 0o644)


def size(p):
    if os.path.isfile(p):
        return os.path.getsize(p)
    return sum(os.path.getsize(os.path.join(r, fn)) for r, _, fs in os.walk(p) for fn in fs)


for p in (OUT_ST, OUT_JS, TAESD_DIR):
    print(f"{size(p) / 1e6:8.3f} MB  {os.path.relpath(p, ROOT)}")
