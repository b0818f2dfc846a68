#!/usr/bin/env python3
"""A TAESD that fits the tiny SD 1.x fixture: its VAE scales 2x (one upsampling), so this TAESD
(diffusers `AutoencoderTiny`, randomly initialised) has two decoder stages (3 and 1 blocks, one 2x
nearest upsampling) instead of the real one's four, 16 channels, 4 latent channels. It lets the
render layer's tests decode the tiny model's frames with TAESD (`with_taesd_frames`); the decoder's
arithmetic is checked against diffusers with fixtures/taesd-tiny/ (crates/sd/tests/taesd.rs).

Written for keyshift with diffusers 0.42.1 / torch 2.15, fp32. Run from the repository root:
    python scripts/reference/make_taesd_x2.py
Output: fixtures/taesd-tiny-x2/{config.json, diffusion_pytorch_model.safetensors}
"""
import json
import os

os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import torch  # noqa: E402
from diffusers import AutoencoderTiny  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "fixtures", "taesd-tiny-x2")
torch.manual_seed(23)
model = AutoencoderTiny(encoder_block_out_channels=(16, 16), decoder_block_out_channels=(16, 16),
                        num_encoder_blocks=(1, 3), num_decoder_blocks=(3, 1)).eval()
with torch.no_grad():
    z = torch.randn(1, 4, 8, 8) * 2
    image = model.decode(z).sample
assert tuple(image.shape) == (1, 3, 16, 16), image.shape
model.save_pretrained(OUT, safe_serialization=True)
config_path = os.path.join(OUT, "config.json")
config = json.load(open(config_path))
config.pop("_name_or_path", None)
json.dump(config, open(config_path, "w"), indent=2, sort_keys=True)
print("wrote", OUT, "decode std", float(image.std()))
