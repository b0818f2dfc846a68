#!/usr/bin/env python3
"""Cross-attention reference maps for the tiny SD 1.x fixture (fixtures/tiny-sd1/).

Written from the descriptions of Visualize Cross-Attention and DAAM-style aggregation (seeds.md
section 3), with diffusers 0.42.1 / transformers 5.23 / torch 2.15, fp32 on the CPU:

  1. VXA probe: the clean latent of extras' 64x64 test image (VAE encoder mean x 0.18215, no
     noise), one UNet forward at timestep 1.0 (VXA's default) and 500 with the context of
     "a photo of a cat" (text encoder last_hidden_state, ids padded to 77 with 49407); the
     attention probabilities of one cross-attention layer, softmax(q k^T * scale) per head,
     summed over the chosen token positions and the heads, divided by the maximum. Two layers
     (mid_block.attentions.0 and down_blocks.1.attentions.1) x two token sets ([2, 5]: "photo",
     "cat"; and VXA's blank field: every position but 0). The image goes to the VAE in [-1, 1];
     one more map feeds it in [0, 1] as VXA's original does (its quirk).
  2. DAAM over a generation: Euler (linspace, 4 steps, CFG 7.5, negative "") from golden's
     pipe.init_noise; at every step and every cross-attention layer, the conditional batch row's
     probabilities averaged over the heads, summed over the token set; all layers are 16x16 here,
     so the maps add as they are; the sum over layers and steps is divided by its maximum. Token
     sets [2, 5] and [5].

  3. Attention interpolation (section 4.2): three frames (prompts below, the same noise, DDIM 4
     steps, CFG 7.5), every self-attention layer blending value, probabilities and the output after
     to_out[0] with what earlier frames stored per step (ema 0.625, eta 0.875, steps 0 < s < 4,
     weight updated after each step), and the latents after each scheduler step (ema 0.35, eta
     0.75); slerp per row of the last dimension, lerp where |cos| > 0.9995.

Outputs: fixtures/tiny-sd1/attention.safetensors + attention.json (what each tensor is).
Run from the repository root:  /path/to/python scripts/reference/make_attention.py
"""
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

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

PROMPT = "a photo of a cat"
STEPS, GUIDANCE = 4, 7.5
VXA_LAYERS = ["mid_block.attentions.0", "down_blocks.1.attentions.1"]
TOKEN_SETS = {"photo_cat": [2, 5], "blank": None}
DAAM_SETS = {"photo_cat": [2, 5], "cat": [5]}
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
SCHED_CFG = json.load(open(os.path.join(FIX, "golden.json")))["schedulers"]["config"]


def encode(prompt):
    ids = tok(prompt, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    return te(ids).last_hidden_state


class Recorder:
    """An attention processor that computes attention as diffusers' AttnProcessor does and keeps
    the probabilities [(batch * heads), queries, keys] of every call."""

    def __init__(self, name, log):
        self.name, self.log = name, log

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None):
        is_cross = encoder_hidden_states is not None
        context = encoder_hidden_states if is_cross else hidden_states
        q = attn.head_to_batch_dim(attn.to_q(hidden_states))
        k = attn.head_to_batch_dim(attn.to_k(context))
        v = attn.head_to_batch_dim(attn.to_v(context))
        probs = attn.get_attention_scores(q, k, None)
        self.log.append((self.name, is_cross, attn.heads, probs.clone()))
        h = attn.batch_to_head_dim(torch.bmm(probs, v))
        return attn.to_out[1](attn.to_out[0](h))


LOG = []
unet.set_attn_processor({n: Recorder(n.rsplit(".transformer_blocks", 1)[0], LOG)
                         for n in unet.attn_processors})


def cross_calls():
    return [(name, heads, p) for name, is_cross, heads, p in LOG if is_cross]


def token_sum(p, tokens):
    """[(b*heads), n, keys] -> [(b*heads), n], the chosen positions summed (VXA's blank: 1..)."""
    return p[:, :, 1:].sum(-1) if tokens is None else p[:, :, tokens].sum(-1)


# 1. VXA
ctx = encode(PROMPT)
image = EXTRAS["img2img.image"]  # [1, 3, 64, 64] in [-1, 1]
for input_name, x in (("signed", image), ("unit", (image + 1) / 2)):
    latent = vae.encode(x).latent_dist.mean * 0.18215
    for t in (1.0, 500.0):
        if input_name == "unit" and t != 1.0:
            continue
        LOG.clear()
        unet(latent, torch.tensor([t]), encoder_hidden_states=ctx)
        calls = {name: p for name, _, p in cross_calls()}
        for layer in VXA_LAYERS:
            if input_name == "unit" and layer != VXA_LAYERS[0]:
                continue
            for set_name, tokens in TOKEN_SETS.items():
                if input_name == "unit" and set_name != "blank":
                    continue
                m = token_sum(calls[layer], tokens).sum(0)
                m = m / m.max()
                side = int(round(m.numel() ** 0.5))
                put(f"vxa.{input_name}.t{int(t)}.{layer}.{set_name}", m.reshape(side, side),
                    f"[{side},{side}] VXA map: image in [{'-1' if input_name == 'signed' else '0'}, 1], "
                    f"t = {t}, layer {layer}, tokens {tokens or 'blank (1..77)'}; summed over heads, / max")

# 2. DAAM over a 4-step Euler run
sched = EulerDiscreteScheduler.from_config(SCHED_CFG)
sched.set_timesteps(STEPS)
uncond = encode("")
both = torch.cat([uncond, ctx])
latents = GOLD["pipe.init_noise"] * sched.init_noise_sigma
sums = {k: torch.zeros(16, 16) for k in DAAM_SETS}
calls_total = 0
for t in sched.timesteps:
    LOG.clear()
    x = sched.scale_model_input(torch.cat([latents] * 2), t)
    eps = unet(x, t, encoder_hidden_states=both).sample
    eu, ec = eps.chunk(2)
    latents = sched.step(eu + GUIDANCE * (ec - eu), t, latents).prev_sample
    for name, heads, p in cross_calls():
        calls_total += 1
        cond_rows = p[heads:2 * heads]  # batch row 1 = the conditional prompt
        for k, tokens in DAAM_SETS.items():
            m = token_sum(cond_rows, tokens).mean(0)
            side = int(round(m.numel() ** 0.5))
            assert side == 16, (name, side)
            sums[k] += m.reshape(side, side)
for k, tokens in DAAM_SETS.items():
    put(f"daam.{k}", sums[k] / sums[k].max(),
        f"[16,16] DAAM: Euler {STEPS} steps, CFG {GUIDANCE}, from golden pipe.init_noise; the cond row's "
        f"probabilities averaged over heads, tokens {tokens} summed, over every cross-attention layer "
        f"and step ({calls_total} calls), / max")
    put(f"daam.{k}.peak", sums[k].max().reshape(1), f"[1] the maximum daam.{k} was divided by")
put("daam.latents", latents, "[1,4,32,32] the run's final latents (a check that the run is the golden Euler run)")

# 3. Attention interpolation (seeds.md section 4.2), 3 frames x 4 DDIM steps
INTERP_PROMPTS = ["a photo of a cat", "a photo of a dog", "a watercolour of a fox"]
UNET_CFG = dict(ema=0.625, eta=0.875, start_step=0, end_step=STEPS, const_steps=0, total_steps=STEPS,
                attention_res=32, use={"query": False, "key": False, "value": True,
                                       "attention_probs": True, "out_linear": True})
PIPE_CFG = dict(ema=0.35, eta=0.75, start_step=0, end_step=STEPS, const_steps=0, total_steps=STEPS)
PROBE_LAYER, PROBE_STEP = "mid_block.attentions.0", 2


def slerp_rows(t, v0, v1, threshold=0.9995):
    """Spherical interpolation of each row (last dimension) from v0 (t = 0) to v1 (t = 1); rows
    whose directions nearly agree (|cos| > threshold) or that are zero are lerped."""
    cos = ((v0 / v0.norm(dim=-1, keepdim=True)) * (v1 / v1.norm(dim=-1, keepdim=True))).sum(-1, keepdim=True)
    straight = cos.isnan() | (cos.abs() > threshold)
    theta = torch.arccos(cos.clamp(-1, 1))
    curved = (torch.sin((1 - t) * theta) * v0 + torch.sin(t * theta) * v1) / torch.sin(theta)
    return torch.where(straight, (1 - t) * v0 + t * v1, curved)


def ema_weight(cfg, index):
    return cfg["ema"] * cfg["eta"] ** index


class Blender:
    """Per-step storage of one module (or of the latents): blend x with what the frames before
    stored at this step, store the result; the weight is updated after each step as section 4.2
    describes, and reset after the last."""

    def __init__(self, cfg):
        self.cfg, self.store, self.step, self.weight = cfg, {}, 0, cfg["ema"]

    def blend(self, x, name, step):
        c = self.cfg
        if not c["start_step"] < step < c["end_step"]:
            return x
        key = (step, name)
        out = x if key not in self.store else slerp_rows(self.weight, x, self.store[key])
        self.store[key] = out.clone()
        return out

    def after(self, step):
        c = self.cfg
        if c["start_step"] + c["const_steps"] < step:
            self.weight = ema_weight(c, step - c["const_steps"] - c["start_step"])
        if step == c["total_steps"] - 1:
            self.weight = c["ema"]


PROBES = {}


class Interpolating:
    """Self-attention with the previous frames blended in (query/key/value after the head
    split, probabilities where keys <= attention_res^2, output after to_out[0])."""

    def __init__(self, name):
        self.name, self.b, self.calls = name, Blender(UNET_CFG), 0

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None):
        step = self.calls % STEPS
        is_cross = encoder_hidden_states is not None
        ctx = encoder_hidden_states if is_cross else hidden_states
        q = attn.head_to_batch_dim(attn.to_q(hidden_states))
        k = attn.head_to_batch_dim(attn.to_k(ctx))
        v = attn.head_to_batch_dim(attn.to_v(ctx))
        on = not is_cross
        use = UNET_CFG["use"]
        if on:
            q = self.b.blend(q, "query", step) if use["query"] else q
            k = self.b.blend(k, "key", step) if use["key"] else k
            v = self.b.blend(v, "value", step) if use["value"] else v
        p = attn.get_attention_scores(q, k, None)
        if on and use["attention_probs"] and p.shape[-1] <= UNET_CFG["attention_res"] ** 2:
            p = self.b.blend(p, "attention_probs", step)
        h = attn.to_out[0](attn.batch_to_head_dim(torch.bmm(p, v)))
        if on and use["out_linear"]:
            h = self.b.blend(h, "out_linear", step)
        if on and self.name == PROBE_LAYER and step == PROBE_STEP:
            # The first 64 queries of every (batch, head) row keep the file small.
            PROBES["attention_probs"], PROBES["out_linear"] = p[:, :64].clone(), h.clone()
        self.b.after(step)
        self.calls += 1
        return attn.to_out[1](h)


unet.set_attn_processor({n: Interpolating(n.rsplit(".transformer_blocks", 1)[0]) for n in unet.attn_processors})
ddim = diffusers.DDIMScheduler.from_config(SCHED_CFG)
latent_blend = Blender(PIPE_CFG)
for f, prompt in enumerate(INTERP_PROMPTS):
    ddim.set_timesteps(STEPS)
    ctx2 = torch.cat([uncond, encode(prompt)])
    x = GOLD["pipe.init_noise"] * ddim.init_noise_sigma
    steps_out = []
    for i, t in enumerate(ddim.timesteps):
        eps = unet(ddim.scale_model_input(torch.cat([x] * 2), t), t, encoder_hidden_states=ctx2).sample
        eu, ec = eps.chunk(2)
        x = ddim.step(eu + GUIDANCE * (ec - eu), t, x).prev_sample
        x = latent_blend.blend(x, "latents", i)
        latent_blend.after(i)
        steps_out.append(x.clone())
    put(f"interp.frame{f}.step_latents", torch.stack(steps_out),
        f"[{STEPS},1,4,32,32] frame {f} ({prompt!r}): the latents after each DDIM step and its latent blend")
    if f == 2:
        for name, t in PROBES.items():
            put(f"interp.frame2.{PROBE_LAYER}.{name}.step{PROBE_STEP}", t,
                f"{list(t.shape)} frame 2, {PROBE_LAYER} self-attention, step {PROBE_STEP}: {name} after blending")

save_file(T, os.path.join(FIX, "attention.safetensors"), metadata={"generator": "make_attention.py"})
J = {
    "generator": "scripts/reference/make_attention.py",
    "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                 "transformers": transformers.__version__},
    "prompt": PROMPT,
    "daam_calls": calls_total,
    "interpolation": {"prompts": INTERP_PROMPTS, "negative": "", "guidance": GUIDANCE,
                      "scheduler": "DDIM (golden.json config)", "steps": STEPS,
                      "noise": "golden pipe.init_noise, every frame", "unet_config": UNET_CFG,
                      "pipe_config": PIPE_CFG},
    "tensors": {k: {"shape": list(T[k].shape), "what": DESC[k]} for k in sorted(T)},
}
with open(os.path.join(FIX, "attention.json"), "w") as f:
    json.dump(J, f, indent=1)
    f.write("\n")
print(f"wrote {len(T)} tensors")
