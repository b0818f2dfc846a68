#!/usr/bin/env python3
"""Prompt-travel reference tensors for the tiny SD 1.x fixture (fixtures/tiny-sd1/).

Written from the prompt-travel description (seeds.md section 2.3), with diffusers 0.42.1 /
transformers 5.23 / torch 2.15, fp32 on the CPU:

  1. the encoded conditioning of two stages (text encoder last_hidden_state, ids padded to 77 with
     49407), their lerp and slerp at several alpha (slerp per token row: normalise along the last
     dimension, omega = acos(dot), rows with dot > 0.9995 are lerped);
  2. a 77-token stage against a 154-token stage (extras' A1111 long prompt): the short one padded on
     the token axis with the empty prompt's chunk, then lerped;
  3. replace mode: the L1 distance per token row (mean over channels), per channel (mean over tokens)
     and per element; the units replaced after each of 3 rounds (3 travel steps: floor(n_diff/4)+1
     per round) for the orders similar (np.argsort ascending, stable), different (descending,
     stable) and random (np.random.RandomState(42).choice(remaining, count, replace=False) per
     round); one mixed conditioning;
  4. embryo genesis: Euler (linspace, 4 steps, CFG 7.5, negative "") from golden's pipe.init_noise
     with the stages lerped at 0.5; the latent before step 2 is the embryo; then a frame at
     alpha 0.25 whose latent is replaced by the embryo before step 2, its final latent and image;
  5. grad mode: the gradient of loss_latent + loss_cond with respect to stage a's conditioning
     (torch autograd), the losses, and one clip step.

Outputs: fixtures/tiny-sd1/travel.safetensors + travel.json (what each tensor is).
Run from the repository root:  /path/to/python scripts/reference/make_travel.py
"""
import json
import math
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import diffusers  # noqa: E402
import transformers  # noqa: E402
from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "fixtures", "tiny-sd1")
torch.set_grad_enabled(False)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(2)

STAGE_A, STAGE_B = "a photo of a cat", "a painting of a dog"
ALPHAS = [0.0, 0.25, 0.5, 0.9, 1.0]
STEPS, GUIDANCE, EMBRYO_STEP, FRAME_ALPHA = 4, 7.5, 2, 0.25
REPLACE_STEPS, REPLACE_SEED = 3, 42
T, DESC = {}, {}


def put(name, t, what):
    assert name not in T, name
    T[name] = torch.as_tensor(t).detach().float().contiguous().clone()
    DESC[name] = what


pipe = StableDiffusionPipeline.from_pretrained(os.path.join(FIX, "diffusers"), dtype=torch.float32,
                                               safety_checker=None, requires_safety_checker=False,
                                               local_files_only=True)
unet, vae, te, tok = pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer
GOLD = load_file(os.path.join(FIX, "golden.safetensors"))
EXTRAS = load_file(os.path.join(FIX, "extras.safetensors"))
EXTRAS_J = json.load(open(os.path.join(FIX, "extras.json")))
SCHED_CFG = json.load(open(os.path.join(FIX, "golden.json")))["schedulers"]["config"]


def encode(prompt):
    ids = tok(prompt, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    return te(ids).last_hidden_state


def lerp(a, b, t):
    return (1 - t) * a + t * b


def slerp(a, b, t, threshold=0.9995):
    """Per token row; a, b [1, T, D]."""
    out = torch.empty_like(a)
    for i in range(a.shape[1]):
        v0, v1 = a[0, i].double(), b[0, i].double()
        dot = float((v0 / v0.norm() * v1 / v1.norm()).sum())
        if dot > threshold:
            out[0, i] = lerp(v0, v1, t).float()
        else:
            omega = math.acos(dot)
            so = math.sin(omega)
            out[0, i] = (math.sin((1 - t) * omega) / so * v0 + math.sin(t * omega) / so * v1).float()
    return out


A, B, E = encode(STAGE_A), encode(STAGE_B), encode("")
put("cond.a", A, f"[1,77,32] encoded stage a {STAGE_A!r}")
put("cond.b", B, f"[1,77,32] encoded stage b {STAGE_B!r}")
for t in ALPHAS:
    put(f"lerp.{t}", lerp(A, B, t), f"[1,77,32] (1 - {t}) a + {t} b")
    put(f"slerp.{t}", slerp(A, B, t), f"[1,77,32] slerp(a, b, {t}) per token row (lerp where dot > 0.9995)")

# 2. token-axis padding: a (77) against the long A1111 prompt (154)
LONG = EXTRAS_J["a1111_conditioning"]["prompts"]["long"]["prompt"]
long_cond = EXTRAS["a1111.long.cond"]
padded = torch.cat([A, E], dim=1)
put("pad.a", padded, "[1,154,32] stage a padded with the empty prompt's [1,77,32] chunk")
put("pad.lerp.0.5", lerp(padded, long_cond, 0.5), "[1,154,32] lerp(pad.a, extras a1111.long.cond, 0.5)")

# 3. replace mode
l1 = (A - B).abs()[0].numpy()  # [77, 32]
dists = {"token": l1.mean(axis=1), "channel": l1.mean(axis=0), "random": l1.reshape(-1)}
for dim, dist in dists.items():
    put(f"replace.{dim}.dist", dist, f"[{dist.size}] L1 distance per {dim} unit")
    n_diff = int((dist > 1e-6).sum())
    count = n_diff // (REPLACE_STEPS + 1) + 1
    for order in ("similar", "different", "random"):
        d = dist.astype(np.float32).copy()
        mask = np.zeros(d.size, dtype=np.float32)
        rng = np.random.RandomState(REPLACE_SEED)
        for r in range(1, REPLACE_STEPS + 1):
            remaining = np.nonzero(d > 1e-6)[0]
            if remaining.size <= count:
                chosen = remaining
            elif order == "random":
                chosen = rng.choice(remaining, count, replace=False)
            elif order == "similar":
                chosen = remaining[np.argsort(d[remaining], kind="stable")[:count]]
            else:
                chosen = remaining[np.argsort(-d[remaining], kind="stable")[:count]]
            d[chosen] = 0
            mask[chosen] = 1
            put(f"replace.{dim}.{order}.r{r}", mask.copy(),
                f"[{d.size}] 1 where the unit takes b's value after round {r} of {REPLACE_STEPS} "
                f"({count} per round of {n_diff} differing units; order {order}, seed {REPLACE_SEED})")
m = torch.from_numpy(T["replace.token.random.r2"].numpy()).reshape(1, 77, 1)
put("replace.token.random.r2.cond", A * (1 - m) + B * m, "[1,77,32] a with the token rows of round 2 taken from b")

# 4. embryo genesis
sched = EulerDiscreteScheduler.from_config(SCHED_CFG)
sched.set_timesteps(STEPS)
sig = [float(v) for v in sched.sigmas]
noise = GOLD["pipe.init_noise"].clone()


def euler(cond, x, first, last, uncond=E):
    ctx = torch.cat([uncond, cond])
    for i in range(first, last):
        x_in = x / math.sqrt(sig[i] ** 2 + 1)
        out = unet(torch.cat([x_in, x_in]), sched.timesteps[i], encoder_hidden_states=ctx).sample
        u, c = out.chunk(2)
        x = x + (sig[i + 1] - sig[i]) * (u + GUIDANCE * (c - u))
    return x


x0 = noise * sched.init_noise_sigma
embryo = euler(lerp(A, B, 0.5), x0, 0, EMBRYO_STEP)
put("embryo.latent", embryo, f"[1,4,32,32] x before step {EMBRYO_STEP} of Euler ({STEPS} steps, CFG {GUIDANCE}) "
    "from golden pipe.init_noise * init_noise_sigma, cond lerp(a, b, 0.5), negative ''")
frame = euler(lerp(A, B, FRAME_ALPHA), embryo, EMBRYO_STEP, STEPS)
put("embryo.frame_latent", frame, f"[1,4,32,32] a frame at alpha {FRAME_ALPHA}: the embryo swapped in before step "
    f"{EMBRYO_STEP}, then the remaining steps with cond lerp(a, b, {FRAME_ALPHA})")
put("embryo.frame_image", vae.decode(frame / 0.18215).sample, "[1,3,64,64] vae.decode(frame / 0.18215), unclamped")

# 5. grad mode: one gradient of w_latent * loss_latent + w_cond * loss_cond with respect to c
GRAD_T, GRAD_SEED, GRAD_ALPHA = 500, 5, 0.01
acp = torch.cumprod(1 - torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2, 0)
z0 = EXTRAS["img2img.init_latent"].clone()
eps = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(GRAD_SEED))
with torch.enable_grad():
    c = A.detach().clone().requires_grad_(True)
    a_t = float(acp[GRAD_T])
    noisy = z0 * math.sqrt(a_t) + eps * math.sqrt(1 - a_t)
    pred = unet(noisy, GRAD_T, encoder_hidden_states=c).sample
    loss_latent = ((pred - eps) ** 2).mean()
    loss_cond = (c - B).abs().mean()
    (grad,) = torch.autograd.grad(loss_latent + loss_cond, c)
put("grad.noise", eps, f"[1,4,32,32] torch.randn(generator seed {GRAD_SEED}): the noise of the latent loss")
put("grad.gradient", grad, f"[1,77,32] d(loss_latent + loss_cond)/dc at c = cond.a, t = {GRAD_T}: loss_latent = "
    "MSE(unet(sqrt(acp[t]) z0 + sqrt(1 - acp[t]) noise, t, c), noise) with z0 = extras img2img.init_latent "
    "and acp the SD 1.5 scaled_linear alphas_cumprod (float64); loss_cond = mean |c - cond.b|")
put("grad.losses", torch.tensor([float(loss_latent), float(loss_cond)]), "[2] loss_latent, loss_cond at c = cond.a")
clip = (grad > 1e-5).float() * grad.clamp(0.2, 1) + (grad < -1e-5).float() * grad.clamp(-1, -0.2)
put("grad.clip_step", A - GRAD_ALPHA * clip, f"[1,77,32] cond.a - {GRAD_ALPHA} * clip(gradient)")

J = {
    "generator": "scripts/reference/make_travel.py",
    "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                 "transformers": transformers.__version__, "numpy": np.__version__},
    "stages": [STAGE_A, STAGE_B], "long_prompt": LONG, "alphas": ALPHAS,
    "replace": {"steps": REPLACE_STEPS, "seed": REPLACE_SEED},
    "grad": {"t": GRAD_T, "alpha": GRAD_ALPHA, "w_latent": 1.0, "w_cond": 1.0},
    "embryo": {"steps": STEPS, "guidance": GUIDANCE, "embryo_step": EMBRYO_STEP, "frame_alpha": FRAME_ALPHA,
               "sigmas": sig},
    "tensors": {k: {"shape": list(v.shape), "what": DESC[k]} for k, v in T.items()},
}
save_file(T, os.path.join(FIX, "travel.safetensors"), metadata={"generator": "make_travel.py"})
with open(os.path.join(FIX, "travel.json"), "w") as f:
    json.dump(J, f, indent=1)
    f.write("\n")
for p in ("travel.safetensors", "travel.json"):
    os.chmod(os.path.join(FIX, p), 0o644)
    print(f"{os.path.getsize(os.path.join(FIX, p)) / 1e3:8.1f} kB  fixtures/tiny-sd1/{p}")
