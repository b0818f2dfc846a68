#!/usr/bin/env python3
"""A tiny, randomly initialised Stable Diffusion 2.x (v-prediction) model and its reference outputs.

The fixture has the layout of fixtures/tiny-sd1/ (see fixtures/tiny-sd2-v/README.md), but the model
is shaped like SD 2.x, and differently from tiny-sd1 wherever that is possible, so that an engine
that silently assumes SD 1.x (or tiny-sd1's sizes) fails here:

  text encoder  OpenCLIP-style CLIPTextModel: GELU (erf), hidden 32 = 2 heads x 16, MLP 80,
                the real 49408-token vocabulary, padding with token 0 ("!").  The diffusers folder
                holds 4 layers; the single file holds the OpenCLIP model with 5 resblocks (SD 2.x
                drops the last one: 'penultimate' = diffusers' final_layer_norm(last layer)).
  UNet          3 levels (32, 32, 64), layers_per_block 1, CrossAttn, CrossAttn, plain;
                attention_head_dim [2, 2, 4] = head COUNTS (16-wide heads, num_head_channels 16),
                use_linear_projection, upcast_attention, cross_attention_dim 32.
  VAE           AutoencoderKL (32, 64), latent 4, scaling 0.18215.
  scheduler     SD 2.1's: DDIM, scaled_linear 0.00085..0.012, v_prediction, leading, offset 1.

Everything is computed with diffusers 0.42.1 / transformers 5.23 / torch 2.15, fp32, on the CPU.
Outputs in --out (default fixtures/tiny-sd2-v):
    diffusers/                      the pipeline, diffusers layout, fp16 weights
    tiny_sd2_v_fp16.safetensors     CompVis / A1111 single file (model.diffusion_model.*,
                                    first_stage_model.*, cond_stage_model.model.* OpenCLIP, DDPM buffers)
    tiny_sd2_v_inference.yaml       v2-inference-v.yaml-style config for it
    golden.safetensors, golden.json reference tensors and what each one is

Run from the repository root (any Python with torch 2.15, diffusers 0.42.1, transformers 5.23,
safetensors, pyyaml):
    python scripts/reference/make_tiny_sd2.py --out fixtures/tiny-sd2-v

Checks run before anything is reported done (a failure aborts): the single file read back with the
inverse of our key mapping equals the diffusers weights bit for bit; diffusers' own LDM converters
read it back to the same weights; the yaml reproduces the diffusers UNet/VAE configs; an independent
OpenCLIP forward written here from the single-file tensors gives the diffusers text encoder's output;
the UNet rebuilt from the single file reproduces unet.out_*; hand-written v-prediction DDIM / Euler /
Euler a loops reproduce the pipeline's latents; an epsilon run differs.
Two runs give byte-identical files (fixed seeds, deterministic algorithms, 2 CPU threads).
"""
import argparse
import json
import math
import os
import shutil
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import yaml  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import diffusers  # noqa: E402
import transformers  # noqa: E402
from diffusers import (  # noqa: E402
    AutoencoderKL,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
import diffusers.schedulers.scheduling_euler_ancestral_discrete as euler_a_module  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--out", default=os.path.join(REPO, "fixtures", "tiny-sd2-v"))
ap.add_argument("--clip-dir", default=os.path.join(REPO, "fixtures", "tiny-sd1", "diffusers", "tokenizer"),
                help="a folder with the CLIP BPE files vocab.json and merges.txt")
args = ap.parse_args()
OUT = os.path.abspath(args.out)

torch.set_grad_enabled(False)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(2)

# ------------------------------------------------------------------ sizes (SD 2.1 in comments)
TE_HIDDEN, TE_HEADS, TE_MLP, TE_LAYERS = 32, 2, 80, 4  # 1024, 16, 4096, 23 (+1 unused = OpenCLIP's 24)
TE_PROJ = 48  # OpenCLIP text_projection [width, embed_dim]: [1024, 1024]
UNET_CH = (32, 32, 64)  # (320, 640, 1280, 1280)
UNET_HEADS = (2, 2, 4)  # (5, 10, 20, 20): heads per level, 64 wide each
HEAD_WIDTH = 16  # num_head_channels: 64
UNET_DOWN = ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")
UNET_UP = ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")
UNET_LAYERS = 1  # 2
VAE_CH = (32, 64)  # (128, 256, 512, 512)
VAE_LAYERS = 1  # 2
LATENT = 32  # 96 for 768-v
SCALING = 0.18215
SINGLE = "tiny_sd2_v_fp16.safetensors"
YAML_NAME = "tiny_sd2_v_inference.yaml"
assert all(c // h == HEAD_WIDTH for c, h in zip(UNET_CH, UNET_HEADS))

# stabilityai/stable-diffusion-2-1 scheduler/scheduler_config.json (its timestep_spacing is unset,
# i.e. each class's default; the diffusers folder below stores DDIM's "leading" explicitly)
SD21_SCHED = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    steps_offset=1,
    clip_sample=False,
    set_alpha_to_one=False,
    trained_betas=None,
    skip_prk_steps=True,
    prediction_type="v_prediction",
)


def sched(cls, **over):
    return cls.from_config({**SD21_SCHED, **over})


GOLD = {}


def keep(name, t):
    t = t.detach().cpu().contiguous()
    GOLD[name] = (t.float() if t.is_floating_point() else t).clone()
    return GOLD[name]


def fail(msg):
    sys.exit(f"CHECK FAILED: {msg}")


def close(name, got, want, tol):
    err = (got.double() - want.double()).abs().max().item()
    scale = max(1.0, want.double().abs().max().item())
    if not err <= tol * scale:
        fail(f"{name}: max abs error {err:.3e} > {tol:.1e} x {scale:.3g}")
    return err


def exact(name, a, b):
    if a.shape != b.shape or not torch.equal(a.float(), b.float()):
        fail(f"{name}: not bit-identical ({tuple(a.shape)} vs {tuple(b.shape)})")


# ------------------------------------------------------------------ 1. the models
def jitter_and_round(model, gen, timestep_gain=None):
    """Give every constant tensor (norm weights 1, biases 0) noise so that wiring mistakes show,
    optionally scale the timestep path, then round everything to fp16-representable values."""
    for name, p in model.named_parameters():
        if p.numel() > 1 and bool((p == p.flatten()[0]).all()):
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
        if timestep_gain and ("time_emb_proj" in name or "time_embedding.linear_2" in name):
            p.mul_(timestep_gain)
        p.copy_(p.half().float())
    model.eval()


gen = torch.Generator().manual_seed(2024)

torch.manual_seed(10)
unet = UNet2DConditionModel(
    sample_size=LATENT,
    in_channels=4,
    out_channels=4,
    block_out_channels=UNET_CH,
    layers_per_block=UNET_LAYERS,
    down_block_types=UNET_DOWN,
    up_block_types=UNET_UP,
    cross_attention_dim=TE_HIDDEN,
    attention_head_dim=list(UNET_HEADS),  # SD 2.x diffusers naming: head counts per level
    use_linear_projection=True,
    upcast_attention=True,
    norm_num_groups=32,
)
jitter_and_round(unet, gen, timestep_gain=3.0)

torch.manual_seed(11)
vae = AutoencoderKL(
    in_channels=3,
    out_channels=3,
    block_out_channels=VAE_CH,
    layers_per_block=VAE_LAYERS,
    down_block_types=["DownEncoderBlock2D"] * len(VAE_CH),
    up_block_types=["UpDecoderBlock2D"] * len(VAE_CH),
    latent_channels=4,
    norm_num_groups=32,
    sample_size=LATENT * 2 ** (len(VAE_CH) - 1),
    scaling_factor=SCALING,
)
jitter_and_round(vae, gen)


def te_config(layers):
    # bos/eos/pad 0/2/1 and projection_dim as in stabilityai/stable-diffusion-2-1's text_encoder
    # config.json (the old CLIPTextConfig defaults it was converted with; SD 2.x tokenizes with
    # its own tokenizer: BOS 49406, EOS 49407, pad 0)
    return CLIPTextConfig(
        vocab_size=49408,
        hidden_size=TE_HIDDEN,
        intermediate_size=TE_MLP,
        num_hidden_layers=layers,
        num_attention_heads=TE_HEADS,
        max_position_embeddings=77,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,
        projection_dim=TE_PROJ,
    )


# The OpenCLIP text tower (TE_LAYERS + 1 resblocks); the diffusers text encoder is the same model
# without its last resblock, exactly like SD 2.x's 23-of-24 layers.
torch.manual_seed(12)
open_clip_full = CLIPTextModel(te_config(TE_LAYERS + 1))
jitter_and_round(open_clip_full, gen)
te = CLIPTextModel(te_config(TE_LAYERS))
te_sd = {k: v for k, v in open_clip_full.state_dict().items() if f"layers.{TE_LAYERS}." not in k}
te.load_state_dict(te_sd, strict=True)
te.eval()
last_block = {k.split(f"layers.{TE_LAYERS}.", 1)[1]: v for k, v in open_clip_full.state_dict().items()
              if f"layers.{TE_LAYERS}." in k}
text_projection = (torch.randn(TE_HIDDEN, TE_PROJ, generator=gen) * TE_HIDDEN ** -0.5).half().float()
logit_scale = torch.tensor(math.log(100.0)).half().float()  # trained SD 2.x value (exp = 100)

# the diffusers state-dict names of every real SD 2.x repo: "text_model.*"
TE_HF = {(k if k.startswith("text_model.") else "text_model." + k): v for k, v in te.state_dict().items()}
counts = {"unet": sum(p.numel() for p in unet.parameters()),
          "vae": sum(p.numel() for p in vae.parameters()),
          "text_encoder": sum(p.numel() for p in te.parameters())}
print("parameters", counts)

tok = CLIPTokenizer.from_pretrained(args.clip_dir, pad_token="!", model_max_length=77)
assert tok.pad_token_id == 0 and tok.bos_token_id == 49406 and tok.eos_token_id == 49407

# ------------------------------------------------------------------ 2. diffusers folder
DIFF = os.path.join(OUT, "diffusers")
os.makedirs(OUT, exist_ok=True)
for stale in ("golden.json", "golden.safetensors"):  # written last, only when every check passed
    if os.path.exists(os.path.join(OUT, stale)):
        os.remove(os.path.join(OUT, stale))
if os.path.isdir(DIFF):
    shutil.rmtree(DIFF)
pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet,
                               scheduler=sched(DDIMScheduler, timestep_spacing="leading"),
                               safety_checker=None, feature_extractor=None, requires_safety_checker=False)
pipe.set_progress_bar_config(disable=True)
pipe.to(torch.float16).save_pretrained(DIFF, safe_serialization=True)
pipe.to(torch.float32)
tdir = os.path.join(DIFF, "tokenizer")  # like the SD repos: vocab.json + merges.txt + config
for fn in os.listdir(tdir):
    if fn != "tokenizer_config.json":
        os.remove(os.path.join(tdir, fn))
for fn in ("vocab.json", "merges.txt"):
    shutil.copyfile(os.path.join(args.clip_dir, fn), os.path.join(tdir, fn))
tcfg_path = os.path.join(tdir, "tokenizer_config.json")
tcfg = {k: v for k, v in json.load(open(tcfg_path)).items() if k not in ("is_local", "local_files_only")}
with open(tcfg_path, "w") as f:
    json.dump(tcfg, f, indent=2)
save_file({k: v.half().contiguous() for k, v in TE_HF.items()},
          os.path.join(DIFF, "text_encoder", "model.safetensors"), metadata={"format": "pt"})


# ------------------------------------------------------------------ 3. the CompVis single file
# Key maps diffusers -> ldm, written from the layouts of ldm's openaimodel.UNetModel,
# autoencoder.AutoencoderKL and open_clip's TextTransformer (FrozenOpenCLIPEmbedder).
RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
          "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}


def unet_ldm_name(key, cfg):
    per = cfg["layers_per_block"] + 1
    up_attn = [t.startswith("CrossAttn") for t in cfg["up_block_types"]]
    p = key.split(".")

    def rest(i, resnet=False):
        tail = p[i:]
        if resnet:
            tail = RESNET[tail[0]].split(".") + tail[1:]
        return ".".join(tail)

    if p[0] == "time_embedding":
        return f"time_embed.{ {'linear_1': 0, 'linear_2': 2}[p[1]] }.{rest(2)}"
    if p[0] == "conv_in":
        return f"input_blocks.0.0.{rest(1)}"
    if p[0] == "conv_norm_out":
        return f"out.0.{rest(1)}"
    if p[0] == "conv_out":
        return f"out.2.{rest(1)}"
    if p[0] == "mid_block":
        if p[1] == "resnets":
            return f"middle_block.{2 * int(p[2])}.{rest(3, True)}"
        return f"middle_block.1.{rest(3)}"  # attentions.0: the SpatialTransformer, same inner names
    lvl = int(p[1])
    if p[0] == "down_blocks":
        if p[2] == "resnets":
            return f"input_blocks.{1 + lvl * per + int(p[3])}.0.{rest(4, True)}"
        if p[2] == "attentions":
            return f"input_blocks.{1 + lvl * per + int(p[3])}.1.{rest(4)}"
        if p[2] == "downsamplers":  # downsamplers.0.conv
            return f"input_blocks.{(lvl + 1) * per}.0.op.{rest(5)}"
    if p[0] == "up_blocks":
        if p[2] == "resnets":
            return f"output_blocks.{lvl * per + int(p[3])}.0.{rest(4, True)}"
        if p[2] == "attentions":
            return f"output_blocks.{lvl * per + int(p[3])}.1.{rest(4)}"
        if p[2] == "upsamplers":  # upsamplers.0.conv
            return f"output_blocks.{lvl * per + per - 1}.{2 if up_attn[lvl] else 1}.conv.{rest(5)}"
    raise KeyError(key)


VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out": "proj_out"}


def vae_ldm_name(key, cfg):
    levels = len(cfg["block_out_channels"])
    p = key.split(".")
    if p[0] in ("quant_conv", "post_quant_conv"):
        return key
    part = p[0]  # encoder / decoder
    if p[1] in ("conv_in", "conv_out"):
        return key
    if p[1] == "conv_norm_out":
        return f"{part}.norm_out.{'.'.join(p[2:])}"
    if p[1] == "mid_block":
        if p[2] == "resnets":
            return f"{part}.mid.block_{int(p[3]) + 1}.{vae_resnet(p[4:])}"
        # attentions.0.<group_norm|to_q|to_k|to_v|to_out.0>.<weight|bias>
        name = VAE_ATTN[p[4]]
        return f"{part}.mid.attn_1.{name}.{p[-1]}"
    lvl = int(p[2])
    if p[1] == "down_blocks":
        if p[3] == "resnets":
            return f"encoder.down.{lvl}.block.{p[4]}.{vae_resnet(p[5:])}"
        return f"encoder.down.{lvl}.downsample.conv.{'.'.join(p[6:])}"  # downsamplers.0.conv.*
    if p[1] == "up_blocks":  # CompVis numbers decoder levels from the bottom: up.{levels-1-i}
        if p[3] == "resnets":
            return f"decoder.up.{levels - 1 - lvl}.block.{p[4]}.{vae_resnet(p[5:])}"
        return f"decoder.up.{levels - 1 - lvl}.upsample.conv.{'.'.join(p[6:])}"
    raise KeyError(key)


def vae_resnet(tail):
    return ".".join(["nin_shortcut" if tail[0] == "conv_shortcut" else tail[0]] + tail[1:])


def open_clip_tensors(hf, extra_block, proj, scale):
    """diffusers CLIPTextModel (text_model.*) + the unused last block -> OpenCLIP keys."""
    out = {"token_embedding.weight": hf["text_model.embeddings.token_embedding.weight"],
           "positional_embedding": hf["text_model.embeddings.position_embedding.weight"],
           "ln_final.weight": hf["text_model.final_layer_norm.weight"],
           "ln_final.bias": hf["text_model.final_layer_norm.bias"],
           "text_projection": proj,
           "logit_scale": scale}
    blocks = [{k.split(f"layers.{i}.", 1)[1]: v for k, v in hf.items() if f".layers.{i}." in k}
              for i in range(TE_LAYERS)] + [extra_block]
    for i, b in enumerate(blocks):
        r = f"transformer.resblocks.{i}."
        out[r + "ln_1.weight"], out[r + "ln_1.bias"] = b["layer_norm1.weight"], b["layer_norm1.bias"]
        out[r + "ln_2.weight"], out[r + "ln_2.bias"] = b["layer_norm2.weight"], b["layer_norm2.bias"]
        for kind in ("weight", "bias"):  # nn.MultiheadAttention: rows q, k, v
            out[r + f"attn.in_proj_{kind}"] = torch.cat([b[f"self_attn.{x}_proj.{kind}"] for x in "qkv"], 0)
            out[r + f"attn.out_proj.{kind}"] = b[f"self_attn.out_proj.{kind}"]
            out[r + f"mlp.c_fc.{kind}"] = b[f"mlp.fc1.{kind}"]
            out[r + f"mlp.c_proj.{kind}"] = b[f"mlp.fc2.{kind}"]
    return out


def ddpm_buffers():
    """LatentDiffusion.register_schedule's persistent buffers (float64 maths, stored float32)."""
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=np.float64) ** 2
    alphas = 1.0 - betas
    acp = np.cumprod(alphas)
    acp_prev = np.append(1.0, acp[:-1])
    post_var = betas * (1.0 - acp_prev) / (1.0 - acp)
    b = dict(
        betas=betas, alphas_cumprod=acp, alphas_cumprod_prev=acp_prev,
        sqrt_alphas_cumprod=np.sqrt(acp), sqrt_one_minus_alphas_cumprod=np.sqrt(1.0 - acp),
        log_one_minus_alphas_cumprod=np.log(1.0 - acp), sqrt_recip_alphas_cumprod=np.sqrt(1.0 / acp),
        sqrt_recipm1_alphas_cumprod=np.sqrt(1.0 / acp - 1.0), posterior_variance=post_var,
        posterior_log_variance_clipped=np.log(np.maximum(post_var, 1e-20)),
        posterior_mean_coef1=betas * np.sqrt(acp_prev) / (1.0 - acp),
        posterior_mean_coef2=(1.0 - acp_prev) * np.sqrt(alphas) / (1.0 - acp),
    )
    return {k: torch.from_numpy(v).float() for k, v in b.items()}


UNET_SD, VAE_SD = unet.state_dict(), vae.state_dict()
UNET_MAP = {k: unet_ldm_name(k, unet.config) for k in UNET_SD}
VAE_MAP = {k: vae_ldm_name(k, vae.config) for k in VAE_SD}
for name, m in (("unet", UNET_MAP), ("vae", VAE_MAP)):
    if len(set(m.values())) != len(m) or any(v is None or "None" in v for v in m.values()):
        fail(f"{name} key map is not one-to-one")
single = {}
for k, v in UNET_SD.items():
    single["model.diffusion_model." + UNET_MAP[k]] = v
for k, v in VAE_SD.items():
    ldm_k = VAE_MAP[k]
    if ".mid.attn_1." in ldm_k and v.ndim == 2:  # Linear -> 1x1 conv
        v = v[:, :, None, None]
    single["first_stage_model." + ldm_k] = v
OPEN_CLIP = open_clip_tensors(TE_HF, last_block, text_projection, logit_scale)
for k, v in OPEN_CLIP.items():
    single["cond_stage_model.model." + k] = v
single = {k: v.half().contiguous() for k, v in single.items()}
single.update(ddpm_buffers())
CKPT = os.path.join(OUT, SINGLE)
save_file(single, CKPT, metadata={"format": "pt"})

UNET_MULT = [c // UNET_CH[0] for c in UNET_CH]
VAE_MULT = [c // VAE_CH[0] for c in VAE_CH]
ATTN_RES = sorted((2 ** i for i, t in enumerate(UNET_DOWN) if t.startswith("CrossAttn")), reverse=True)
assert [UNET_CH[0] * m for m in UNET_MULT] == list(UNET_CH) and [VAE_CH[0] * m for m in VAE_MULT] == list(VAE_CH)
YAML_TEXT = f"""\
# CompVis-style config for the tiny random SD 2.x v-prediction checkpoint {SINGLE}
# (the structure of Stability-AI/stablediffusion configs/stable-diffusion/v2-inference-v.yaml;
# only sizes differ, SD 2.x values in comments). Written by scripts/reference/make_tiny_sd2.py.
model:
  base_learning_rate: 1.0e-4
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
    parameterization: "v"
    linear_start: 0.00085
    linear_end: 0.0120
    num_timesteps_cond: 1
    log_every_t: 200
    timesteps: 1000
    first_stage_key: "jpg"
    cond_stage_key: "txt"
    image_size: {LATENT}                 # 96
    channels: 4
    cond_stage_trainable: false
    conditioning_key: crossattn
    monitor: val/loss_simple_ema
    scale_factor: {SCALING}
    use_ema: False # we set this to false because this is an inference only config

    unet_config:
      target: ldm.modules.diffusionmodules.openaimodel.UNetModel
      params:
        use_checkpoint: True           # as in v2-inference-v.yaml; the references are fp32
        use_fp16: True
        image_size: 32 # unused
        in_channels: 4
        out_channels: 4
        model_channels: {UNET_CH[0]}              # 320
        attention_resolutions: {ATTN_RES}   # [ 4, 2, 1 ]
        num_res_blocks: {UNET_LAYERS}              # 2
        channel_mult: {UNET_MULT}        # [ 1, 2, 4, 4 ]
        num_head_channels: {HEAD_WIDTH}          # 64: heads = channels / num_head_channels
        use_spatial_transformer: True
        use_linear_in_transformer: True
        transformer_depth: 1
        context_dim: {TE_HIDDEN}                # 1024
        legacy: False

    first_stage_config:
      target: ldm.models.autoencoder.AutoencoderKL
      params:
        embed_dim: 4
        monitor: val/rec_loss
        ddconfig:
          #attn_type: "vanilla-xformers"
          double_z: true
          z_channels: 4
          resolution: {LATENT * 2 ** (len(VAE_CH) - 1)}                # 256
          in_channels: 3
          out_ch: 3
          ch: {VAE_CH[0]}                       # 128
          ch_mult: {VAE_MULT}            # [ 1, 2, 4, 4 ]
          num_res_blocks: {VAE_LAYERS}           # 2
          attn_resolutions: []
          dropout: 0.0
        lossconfig:
          target: torch.nn.Identity

    cond_stage_config:
      # OpenCLIP text tower: vocab 49408, width {TE_HIDDEN}, {TE_LAYERS + 1} resblocks ({TE_LAYERS} used),
      # {TE_HEADS} heads, MLP {TE_MLP}, GELU, 77 positions
      # (SD 2.x: ViT-H/14 text, 1024 wide, 24 resblocks, 16 heads, MLP 4096)
      target: ldm.modules.encoders.modules.FrozenOpenCLIPEmbedder
      params:
        freeze: True
        layer: "penultimate"
"""
YAML = os.path.join(OUT, YAML_NAME)
with open(YAML, "w") as f:
    f.write(YAML_TEXT)

# ------------------------------------------------------------------ 4. read the single file back
back = load_file(CKPT)
if back.keys() != single.keys():
    fail("single file keys")
INV_UNET = {v: k for k, v in UNET_MAP.items()}
INV_VAE = {v: k for k, v in VAE_MAP.items()}
u_back, v_back, t_back, leftover = {}, {}, {}, []
oc = "cond_stage_model.model."
w = back[oc + "token_embedding.weight"].shape[1]  # width: in_proj rows are q | k | v, w each
for k, v in back.items():
    if k.startswith("model.diffusion_model."):
        u_back[INV_UNET[k[len("model.diffusion_model."):]]] = v
    elif k.startswith("first_stage_model."):
        dk = INV_VAE[k[len("first_stage_model."):]]
        v_back[dk] = v.reshape(VAE_SD[dk].shape)
    elif k.startswith(oc):
        n = k[len(oc):]
        simple = {"token_embedding.weight": "embeddings.token_embedding.weight",
                  "positional_embedding": "embeddings.position_embedding.weight",
                  "ln_final.weight": "final_layer_norm.weight", "ln_final.bias": "final_layer_norm.bias"}
        if n in simple:
            t_back["text_model." + simple[n]] = v
        elif n.startswith("transformer.resblocks."):
            i, sub = n[len("transformer.resblocks."):].split(".", 1)
            if int(i) >= TE_LAYERS:  # the last OpenCLIP layer: not part of SD 2.x's text encoder
                continue
            base = f"text_model.encoder.layers.{i}."
            ren = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
                   "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
            mod, kind = sub.rsplit(".", 1)
            if mod == "attn":  # in_proj_weight / in_proj_bias
                kind = kind.split("_")[-1]
                for j, x in enumerate("qkv"):
                    t_back[f"{base}self_attn.{x}_proj.{kind}"] = v[j * w:(j + 1) * w]
            else:
                t_back[f"{base}{ren[mod]}.{kind}"] = v
        elif n not in ("text_projection", "logit_scale"):
            leftover.append(k)
    elif k not in ddpm_buffers():
        leftover.append(k)
if leftover:
    fail(f"unmapped single-file keys {leftover[:5]}")
for name, ref, got in (("unet", UNET_SD, u_back), ("vae", VAE_SD, v_back), ("text_encoder", TE_HF, t_back)):
    if ref.keys() != got.keys():
        fail(f"{name}: inverse mapping keys differ: {sorted(set(ref) ^ set(got))[:5]}")
    for k in ref:
        exact(f"{name}/{k}", got[k], ref[k])
print("single file -> inverse key map -> diffusers weights: bit-identical")

# diffusers' own LDM converters (independent of our map). Its OpenCLIP converter hard-codes SD 2.x's
# 24-layer tower (it skips resblocks.23 by name), so hand it the tiny tower's last block under that name.
from diffusers.loaders.single_file_utils import (  # noqa: E402
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    convert_open_clip_checkpoint,
    create_unet_diffusers_config_from_ldm,
    create_vae_diffusers_config_from_ldm,
)

d_unet = convert_ldm_unet_checkpoint(back, dict(unet.config))
d_vae = convert_ldm_vae_checkpoint(back, dict(vae.config))
as24 = {k.replace(f"resblocks.{TE_LAYERS}.", "resblocks.23."): v for k, v in back.items()}
d_te = convert_open_clip_checkpoint(te, as24)
for name, ref, got in (("unet", UNET_SD, d_unet), ("vae", VAE_SD, d_vae), ("text_encoder", TE_HF, d_te)):
    if ref.keys() != got.keys():
        fail(f"diffusers converter, {name}: keys differ: {sorted(set(ref) ^ set(got))[:5]}")
    for k in ref:
        exact(f"diffusers converter {name}/{k}", got[k].reshape(ref[k].shape), ref[k])
print("single file -> diffusers' convert_ldm_unet/vae/open_clip_checkpoint: bit-identical")

orig_cfg = yaml.safe_load(YAML_TEXT)
uc = create_unet_diffusers_config_from_ldm(orig_cfg, back)
vc = create_vae_diffusers_config_from_ldm(orig_cfg, back)


def norm(v):
    return list(v) if isinstance(v, (list, tuple)) else v


for src, cfg, ref in (("unet", uc, unet.config), ("vae", vc, vae.config)):
    for k, v in cfg.items():
        if k in ref and k != "sample_size" and not (k == "upcast_attention" and v is None):
            if norm(v) != norm(ref[k]):
                fail(f"yaml -> diffusers {src} config: {k} = {v!r}, model has {ref[k]!r}")
if uc.get("attention_head_dim") != list(UNET_HEADS) or not uc.get("use_linear_projection"):
    fail(f"yaml -> heads {uc.get('attention_head_dim')}")
print("yaml -> diffusers UNet / VAE configs: match (attention_head_dim", uc["attention_head_dim"], ")")

# diffusers' full single-file loader
single_file_note = None
try:
    sf_pipe = StableDiffusionPipeline.from_single_file(
        CKPT, original_config=YAML, local_files_only=True, torch_dtype=torch.float32)
    single_file_note = "from_single_file(original_config=yaml) loaded offline"
except Exception as e:  # noqa: BLE001
    print(f"from_single_file(ckpt, original_config=yaml, offline) failed: {type(e).__name__}: {str(e)[:200]}")
    sf_pipe = None
if sf_pipe is None:
    try:
        sf_pipe = StableDiffusionPipeline.from_single_file(
            CKPT, config=DIFF, original_config=YAML, local_files_only=True, torch_dtype=torch.float32,
            safety_checker=None, requires_safety_checker=False)
        single_file_note = "from_single_file(config=diffusers dir, original_config=yaml) loaded"
    except Exception as e:  # noqa: BLE001
        print(f"from_single_file(ckpt, config=dir) failed: {type(e).__name__}: {str(e)[:300]}")
print("diffusers from_single_file:", single_file_note)

# the diffusers folder reloads to the same weights, a v-prediction scheduler and a pad-0 tokenizer
dir_pipe = StableDiffusionPipeline.from_pretrained(DIFF, torch_dtype=torch.float32)
for comp, ref in (("unet", UNET_SD), ("vae", VAE_SD), ("text_encoder", TE_HF)):
    got = {(k if comp != "text_encoder" or k.startswith("text_model.") else "text_model." + k): v
           for k, v in getattr(dir_pipe, comp).state_dict().items()}
    if got.keys() != ref.keys():
        fail(f"from_pretrained {comp}: keys differ")
    for k in ref:
        exact(f"from_pretrained {comp}/{k}", got[k], ref[k])
if dir_pipe.scheduler.config.prediction_type != "v_prediction" or dir_pipe.tokenizer.pad_token_id != 0:
    fail("from_pretrained: scheduler prediction_type / tokenizer padding")
del dir_pipe
print("from_pretrained(diffusers dir): same weights, v_prediction DDIM, pad id 0")

# ------------------------------------------------------------------ 5. text encoder goldens
prompts = ["a photo of a cat", "photo of (cat:1.2) or dog, masterpiece, 4k", ""]
ids = tok(prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
for row, p in zip(ids.tolist(), prompts):  # open_clip.tokenize form: BOS, tokens, EOS, 0 ...
    body = [49406] + tok(p, add_special_tokens=False).input_ids[:75] + [49407]
    if row != body + [0] * (77 - len(body)):
        fail(f"token ids of {p!r}")
keep("te.input_ids", ids)
o = te(ids, output_hidden_states=True)
final_ln = getattr(te, "text_model", te).final_layer_norm
keep("te.last_hidden_state", o.last_hidden_state)
keep("te.penultimate_hidden_state", o.hidden_states[-2])
keep("te.penultimate_final_ln", final_ln(o.hidden_states[-2]))
keep("te.pooler_output", o.pooler_output)
keep("te.embeddings", o.hidden_states[0])


def open_clip_encode(sd, ids, skip_last):
    """FrozenOpenCLIPEmbedder.encode_with_transformer, from the single-file tensors alone."""
    def get(n):
        return sd[oc + n].float()

    x = get("token_embedding.weight")[ids] + get("positional_embedding")
    n_blocks = sum(1 for k in sd if k.startswith(oc + "transformer.resblocks.") and k.endswith(".ln_1.weight"))
    mask = torch.full((77, 77), float("-inf")).triu(1)
    heads = TE_HEADS
    for i in range(n_blocks - (1 if skip_last else 0)):
        r = f"transformer.resblocks.{i}."
        h = F.layer_norm(x, (w,), get(r + "ln_1.weight"), get(r + "ln_1.bias"), 1e-5)
        q, k, v = (h @ get(r + "attn.in_proj_weight").T + get(r + "attn.in_proj_bias")).chunk(3, -1)
        B, T, _ = q.shape
        q, k, v = (t.reshape(B, T, heads, w // heads).transpose(1, 2) for t in (q, k, v))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(w // heads) + mask, -1) @ v
        x = x + a.transpose(1, 2).reshape(B, T, w) @ get(r + "attn.out_proj.weight").T + get(r + "attn.out_proj.bias")
        h = F.layer_norm(x, (w,), get(r + "ln_2.weight"), get(r + "ln_2.bias"), 1e-5)
        h = F.gelu(h @ get(r + "mlp.c_fc.weight").T + get(r + "mlp.c_fc.bias"))
        x = x + h @ get(r + "mlp.c_proj.weight").T + get(r + "mlp.c_proj.bias")
    return F.layer_norm(x, (w,), get("ln_final.weight"), get("ln_final.bias"), 1e-5)


e = close("OpenCLIP penultimate (single file) vs diffusers last_hidden_state",
          open_clip_encode(back, ids, True), o.last_hidden_state, 1e-5)
full = open_clip_encode(back, ids, False)
if (full - o.last_hidden_state).abs().max() < 1e-2:
    fail("the last OpenCLIP block does not change the output")
print(f"independent OpenCLIP forward from the single file: penultimate matches ({e:.1e}); all layers differ")

J = {
    "generator": "make_tiny_sd2.py",
    "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                 "transformers": transformers.__version__, "python": sys.version.split()[0]},
    "notes": [
        "SD 2.x-style v-prediction model (OpenCLIP-style text encoder, linear-projection transformers, "
        "per-level head counts); random weights.",
        f"The single file's OpenCLIP text tower has {TE_LAYERS + 1} resblocks; SD 2.x uses the first "
        f"{TE_LAYERS} ('penultimate') and ln_final, which is exactly the {TE_LAYERS}-layer diffusers text "
        "encoder with final_layer_norm. The last resblock holds random weights and must not be used.",
        "diffusers/text_encoder/config.json keeps stable-diffusion-2-1's legacy token ids (bos 0, eos 2, "
        "pad 1): the real ids are BOS 49406, EOS 49407, pad 0 (tokenizer pad_token '!').",
        "The single file has no position_ids (OpenCLIP has none) but holds text_projection "
        f"[{TE_HIDDEN}, {TE_PROJ}] and a 0-d logit_scale, unused by SD, as real SD 2.x checkpoints do.",
    ],
    "tiny_param_counts": counts,
    "text_encoder": {
        "prompts": prompts,
        "input_ids": ids.tolist(),
        "tensors": {
            "te.input_ids": "int64 [3,77], tokenizer(padding='max_length', max_length=77, truncation=True), "
                            "pad=0 ('!', the SD 2.x / open_clip.tokenize convention: BOS, tokens, EOS, then 0s)",
            "te.embeddings": "token_embedding + position_embedding (hidden_states[0])",
            "te.last_hidden_state": f"after final_layer_norm: what SD 2.x uses as context (= OpenCLIP ln_final of "
                                    f"resblock {TE_LAYERS - 1}'s output, FrozenOpenCLIPEmbedder layer='penultimate')",
            "te.penultimate_hidden_state": f"hidden_states[-2] of the diffusers model (output of its layer "
                                           f"{TE_LAYERS - 1} of {TE_LAYERS}, no final LN)",
            "te.penultimate_final_ln": "final_layer_norm(hidden_states[-2]) (CLIP skip 2 on top of SD 2.x's own "
                                       "penultimate choice)",
            "te.pooler_output": "last_hidden_state at first eos (49407) position",
        },
        "attention": "causal mask, no padding mask (padding 0 tokens are ordinary tokens); activation gelu "
                     "(erf): 0.5*x*(1+erf(x/sqrt(2))); layer_norm eps 1e-5",
    },
}

# ------------------------------------------------------------------ 6. UNet goldens
g = torch.Generator().manual_seed(42)
x = torch.randn(2, 4, LATENT, LATENT, generator=g)
ctx = o.last_hidden_state[[2, 0]]  # [uncond "", cond "a photo of a cat"]
keep("unet.sample", x)
keep("unet.context", ctx)
cases = {}
for t in (999, 500, 1):
    tt = torch.tensor(t)
    keep(f"unet.out_t{t}", unet(x, tt, encoder_hidden_states=ctx).sample)
    tp = unet.time_proj(tt[None])
    keep(f"unet.time_proj_t{t}", tp)
    keep(f"unet.time_emb_t{t}", unet.time_embedding(tp))
    cases[f"unet.out_t{t}"] = {"sample": "unet.sample", "timestep": t, "context": "unet.context"}
xs = torch.randn(1, 4, 16, 24, generator=g)  # non-square, H 16, W 24 (divisible by 2^(levels-1) = 4)
keep("unet.sample_16x24", xs)
keep("unet.out_16x24_t250", unet(xs, torch.tensor(250), encoder_hidden_states=ctx[1:]).sample)
cases["unet.out_16x24_t250"] = {"sample": "unet.sample_16x24", "timestep": 250, "context": "unet.context[1:2]"}
tdim = UNET_CH[0]
J["unet"] = {
    "cases": cases,
    "time_proj": f"sinusoidal, flip_sin_to_cos=True (cos first), freq_shift=0, dim={tdim}, max_period=10000",
    "time_embedding": f"linear_1({tdim}->{4 * tdim}) -> SiLU -> linear_2({4 * tdim}->{4 * tdim})",
    "heads": f"attention_head_dim={list(UNET_HEADS)} in diffusers' SD 2.x config means the NUMBER of heads per "
             f"level (SD 2.1: [5, 10, 20, 20]), so every head is {HEAD_WIDTH} wide (= num_head_channels in the "
             f"yaml; 64 in SD 2.x); the mid block uses the last entry ({UNET_HEADS[-1]} heads at {UNET_CH[-1]} ch), "
             "up blocks the list reversed",
    "transformer": "use_linear_projection=True: proj_in / proj_out are Linear [C, C] on [B, H*W, C] after the "
                   "GroupNorm (rank 2 in the single file too); upcast_attention=True (fp32 softmax: no effect "
                   "on these fp32 references)",
    "prediction": "the UNet predicts v (v_prediction); unet.out_* are raw outputs",
}

# the UNet rebuilt from the single file (our inverse map) gives the same numbers
unet2 = UNet2DConditionModel.from_config(unet.config).eval()
unet2.load_state_dict({k: v.float() for k, v in u_back.items()}, strict=True)
exact("single-file UNet t=500", unet2(x, torch.tensor(500), encoder_hidden_states=ctx).sample, GOLD["unet.out_t500"])
if sf_pipe is not None:
    exact("from_single_file UNet t=500", sf_pipe.unet(x, torch.tensor(500), encoder_hidden_states=ctx).sample,
          GOLD["unet.out_t500"])
    exact("from_single_file VAE decode", sf_pipe.vae.decode(ctx.new_ones(1, 4, 8, 8) * 0.3).sample,
          vae.decode(ctx.new_ones(1, 4, 8, 8) * 0.3).sample)
    exact("from_single_file text encoder", sf_pipe.text_encoder(ids).last_hidden_state, o.last_hidden_state)
    if sf_pipe.scheduler.config.prediction_type != "v_prediction":
        fail("from_single_file: scheduler is not v_prediction")
    single_file_note += ": text encoder, UNet t=500 and VAE decode outputs bit-identical"
    print(single_file_note)
    del sf_pipe
print("UNet rebuilt from the single file reproduces unet.out_t500 bit for bit")

# ------------------------------------------------------------------ 7. VAE goldens
down = 2 ** (len(VAE_CH) - 1)
z = torch.randn(1, 4, LATENT, LATENT, generator=g)
keep("vae.decode_in", z)
keep("vae.decode_out", vae.decode(z).sample)
img = torch.rand(1, 3, LATENT * down, LATENT * down, generator=g) * 2 - 1
keep("vae.encode_in", img)
keep("vae.encode_moments", vae.quant_conv(vae.encoder(img)))
J["vae"] = {
    "decode": f"vae.decode_out = post_quant_conv -> decoder (no scaling; pipeline divides latents by {SCALING} first)",
    "encode": f"vae.encode_moments = quant_conv(encoder(x)) [1,8,{LATENT},{LATENT}]: mean = [:, :4], logvar = "
              f"[:, 4:] (diffusers clamps logvar to [-30, 20]); latents = mean * {SCALING} (or sample)",
    "scaling_factor": SCALING,
    "downscale": f"{down} for this tiny VAE ({len(VAE_CH)} levels); 8 for the real one",
}

# ------------------------------------------------------------------ 8. scheduler tables
base = sched(DDIMScheduler)
keep("sched.alphas_cumprod", base.alphas_cumprod)
keep("sched.betas", base.betas)
tables = {}
for n in (20, 4):
    d = {}
    s = sched(DDIMScheduler)
    s.set_timesteps(n)
    d["ddim_leading"] = {"timesteps": s.timesteps.tolist(), "final_alpha_cumprod": float(s.final_alpha_cumprod)}
    s = sched(PNDMScheduler)
    s.set_timesteps(n)
    d["pndm_plms_leading"] = {"timesteps": s.timesteps.tolist()}
    for spacing in ("linspace", "leading", "trailing"):
        s = sched(EulerDiscreteScheduler, timestep_spacing=spacing)
        s.set_timesteps(n)
        d[f"euler_{spacing}"] = {"timesteps": s.timesteps.tolist(), "sigmas": s.sigmas.tolist(),
                                 "init_noise_sigma": float(s.init_noise_sigma)}
    s = sched(EulerDiscreteScheduler, use_karras_sigmas=True)
    s.set_timesteps(n)
    d["euler_karras"] = {"timesteps": s.timesteps.tolist(), "sigmas": s.sigmas.tolist()}
    s = sched(EulerAncestralDiscreteScheduler)
    s.set_timesteps(n)
    sg = s.sigmas.double()
    s_up = (sg[1:] ** 2 * (sg[:-1] ** 2 - sg[1:] ** 2) / sg[:-1] ** 2).sqrt()
    s_down = (sg[1:] ** 2 - s_up ** 2).sqrt()
    d["euler_ancestral_linspace"] = {"timesteps": s.timesteps.tolist(), "sigmas": s.sigmas.tolist(),
                                     "sigma_up": s_up.tolist(), "sigma_down": s_down.tolist()}
    s = sched(DPMSolverMultistepScheduler)
    s.set_timesteps(n)
    d["dpmpp_2m_linspace"] = {"timesteps": s.timesteps.tolist(), "sigmas": s.sigmas.tolist()}
    # k-diffusion (A1111): float32 model sigmas, interpolation of log sigma, appended 0
    ms = ((1 - base.alphas_cumprod) / base.alphas_cumprod) ** 0.5
    ls = ms.log()
    pos = torch.linspace(len(ms) - 1, 0, n)
    lo, hi, frac = pos.floor().long(), pos.ceil().long(), pos.frac()
    d["kdiffusion_default"] = {"sigmas": torch.cat([((1 - frac) * ls[lo] + frac * ls[hi]).exp(),
                                                    torch.zeros(1)]).tolist(),
                               "model_sigma_min": float(ms[0]), "model_sigma_max": float(ms[-1])}
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo_r, hi_r = float(ms[0]) ** (1 / 7), float(ms[-1]) ** (1 / 7)
    d["kdiffusion_karras"] = {"sigmas": torch.cat([(hi_r + ramp * (lo_r - hi_r)) ** 7,
                                                   torch.zeros(1, dtype=torch.float64)]).tolist()}
    tables[str(n)] = d
J["schedulers"] = {
    "config": SD21_SCHED,
    "notes": "diffusers defaults when loaded from the SD 2.1 config (timestep_spacing unset): DDIM/PNDM 'leading' "
             "(+steps_offset 1), Euler/EulerA/DPM++ 'linspace'. sigma(t) = sqrt((1-acp[t])/acp[t]); diffusers "
             "interpolates sigma linearly in t, k-diffusion interpolates log(sigma). sched.alphas_cumprod holds "
             "the 1000 values. The tables do not depend on prediction_type.",
    "steps": tables,
}

# ------------------------------------------------------------------ 9. txt2img, 4 steps, fixed noise
PROMPT, CFG, STEPS = "a photo of a cat", 7.5, 4
H = W = LATENT * down
noise = torch.randn(1, 4, LATENT, LATENT, generator=torch.Generator().manual_seed(0))
keep("pipe.init_noise", noise)
ea_noise = torch.randn(STEPS, 1, 4, LATENT, LATENT, generator=torch.Generator().manual_seed(1))


class InjectedNoise:
    """Replaces Euler a's per-step randn_tensor with pre-drawn noise."""

    def __init__(self, steps):
        self.steps, self.used = list(steps), 0

    def __enter__(self):
        self.saved = euler_a_module.randn_tensor
        euler_a_module.randn_tensor = self.draw
        return self

    def draw(self, shape, **kw):
        t = self.steps[self.used].reshape(shape)
        self.used += 1
        return t.to(kw.get("dtype") or torch.float32)

    def __exit__(self, *exc):
        euler_a_module.randn_tensor = self.saved


def run_pipeline(scheduler, step_noise=None):
    pipe.scheduler = scheduler
    steps = []

    def on_step(_p, _i, _t, kw):
        steps.append(kw["latents"].clone())
        return kw

    def call():
        return pipe(PROMPT, negative_prompt=None, num_inference_steps=STEPS, guidance_scale=CFG, height=H, width=W,
                    latents=noise.clone(), output_type="latent", callback_on_step_end=on_step,
                    callback_on_step_end_tensor_inputs=["latents"]).images

    if step_noise is None:
        lat = call()
    else:
        with InjectedNoise(step_noise) as inj:
            lat = call()
        if inj.used != STEPS:
            fail(f"Euler a drew {inj.used} noises, expected {STEPS}")
    return lat, torch.stack(steps)


# the context the pipeline builds must be te.last_hidden_state of ["", prompt]
pe, ne = pipe.encode_prompt(PROMPT, "cpu", 1, True, negative_prompt=None)
exact("pipeline prompt embedding", pe[0], o.last_hidden_state[0])
exact("pipeline negative embedding", ne[0], o.last_hidden_state[2])


def guided(latent_in, t):
    out = unet(torch.cat([latent_in] * 2), t, encoder_hidden_states=ctx).sample
    u, c = out.chunk(2)
    return u + CFG * (c - u)


def by_hand(kind, step_noise=None):
    """v-prediction samplers written out here, on the UNet directly (only the tables come from diffusers)."""
    if kind == "ddim":
        s = sched(DDIMScheduler)
        s.set_timesteps(STEPS)
        acp = s.alphas_cumprod.double()
        lat, out = noise.double(), []
        for t in s.timesteps.tolist():
            v = guided(lat.float(), torch.tensor(t)).double()
            a = acp[t]
            a_prev = acp[t - 1000 // STEPS] if t - 1000 // STEPS >= 0 else acp[0]
            x0 = a.sqrt() * lat - (1 - a).sqrt() * v
            eps = a.sqrt() * v + (1 - a).sqrt() * lat
            lat = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
            out.append(lat.float())
        return lat.float(), torch.stack(out)
    s = sched(EulerDiscreteScheduler if kind == "euler" else EulerAncestralDiscreteScheduler)
    s.set_timesteps(STEPS)
    sig, ts = s.sigmas.double(), s.timesteps
    lat, out = noise.double() * sig[0], []
    for i in range(STEPS):
        si, sn = sig[i], sig[i + 1]
        v = guided((lat / (si ** 2 + 1).sqrt()).float(), ts[i]).double()
        denoised = lat / (si ** 2 + 1) - v * si / (si ** 2 + 1).sqrt()
        d = (lat - denoised) / si
        if kind == "euler":
            lat = lat + d * (sn - si)
        else:
            up = (sn ** 2 * (si ** 2 - sn ** 2) / si ** 2).sqrt()
            dn = (sn ** 2 - up ** 2).sqrt()
            lat = lat + d * (dn - si) + step_noise[i].double() * up
        out.append(lat.float())
    return lat.float(), torch.stack(out)


for tag, make, step_noise in (("ddim", lambda: sched(DDIMScheduler), None),
                              ("euler", lambda: sched(EulerDiscreteScheduler), None),
                              ("euler_a", lambda: sched(EulerAncestralDiscreteScheduler), ea_noise)):
    if step_noise is not None:
        keep(f"pipe.{tag}.step_noise", step_noise)
    lat, steps = run_pipeline(make(), step_noise)
    keep(f"pipe.{tag}.latents", lat)
    keep(f"pipe.{tag}.step_latents", steps)
    keep(f"pipe.{tag}.image", vae.decode(lat / SCALING).sample)
    exact(f"pipe.{tag}: last step == final latent", steps[-1], lat)
    _, h_steps = by_hand(tag, step_noise)
    e = close(f"pipe.{tag} vs hand-written v-prediction loop", h_steps, steps, 2e-5)
    eps_lat, _ = run_pipeline(make().__class__.from_config({**make().config, "prediction_type": "epsilon"}),
                              step_noise)
    gap = (eps_lat - lat).abs().max().item()
    if gap < 0.05 * max(1.0, lat.abs().max().item()):
        fail(f"pipe.{tag}: an epsilon run gives nearly the same latents ({gap:.3g})")
    print(f"pipe.{tag}: hand-written v loop agrees to {e:.1e}; an epsilon run differs by {gap:.3g}")

J["pipeline"] = {
    "prompt": PROMPT,
    "negative_prompt": "",
    "guidance_scale": CFG,
    "num_inference_steps": STEPS,
    "height": H,
    "width": W,
    "cfg": "batch [uncond, cond]; v = v_u + g * (v_c - v_u) (guidance on the UNet's v output)",
    "prediction": "v_prediction. DDIM: x0 = sqrt(acp_t)*x - sqrt(1-acp_t)*v, eps = sqrt(acp_t)*v + sqrt(1-acp_t)*x; "
                  "Euler/EulerA: denoised = x/(sigma^2+1) - v*sigma/sqrt(sigma^2+1) (x = unscaled latents)",
    "init": "latents = pipe.init_noise * scheduler.init_noise_sigma (1.0 for DDIM; for Euler/EulerA sigma_max "
            "(=14.6146) with 'linspace'/'trailing', sqrt(sigma_max^2+1) with 'leading')",
    "euler_input_scaling": "unet input = latents / sqrt(sigma^2 + 1); timestep = scheduler.timesteps[i] (float)",
    "euler_a": "step noise i = pipe.euler_a.step_noise[i]; x = x + d*(sigma_down - sigma) + noise*sigma_up, "
               "d = (x - denoised)/sigma",
    "outputs": f"pipe.<s>.latents final latent; pipe.<s>.step_latents latents after each step; "
               f"pipe.<s>.image = vae.decode(latents / {SCALING}) in [-1, 1] (unclamped)",
    "schedulers": {"ddim": "DDIM eta=0, leading, steps_offset=1, v_prediction",
                   "euler": "Euler linspace, v_prediction",
                   "euler_a": "Euler ancestral linspace, v_prediction"},
}

# ------------------------------------------------------------------ 10. write
save_file(GOLD, os.path.join(OUT, "golden.safetensors"), metadata={"generator": "make_tiny_sd2.py"})
J["tensors"] = {k: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")} for k, v in GOLD.items()}
J["files"] = {
    "diffusers": "diffusers",
    "single_file": SINGLE,
    "original_config": YAML_NAME,
    "weights_note": "all weights are fp16-representable; diffusers files are fp16, the single file is fp16 "
                    "(+ float32 DDPM buffers; no position_ids: OpenCLIP has none)",
}
J["tolerance_hint"] = ("fp32 CPU reference; expect ~1e-5 relative agreement for single modules, "
                      "~1e-4 for the full pipeline")
with open(os.path.join(OUT, "golden.json"), "w") as f:
    json.dump(J, f, indent=1)
    f.write("\n")

total = 0
for fn in (SINGLE, "golden.safetensors"):  # safetensors writes 0600
    os.chmod(os.path.join(OUT, fn), 0o644)
for root, _, files in sorted(os.walk(OUT)):
    for fn in sorted(files):
        p = os.path.join(root, fn)
        total += os.path.getsize(p)
        print(f"{os.path.getsize(p) / 1e6:9.3f} MB  {os.path.relpath(p, OUT)}")
print(f"{total / 1e6:9.3f} MB  total")
