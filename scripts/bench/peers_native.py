"""Native CPU peers for `cargo xtask bench peers`: one UNet step with CFG (batch 2) of the tiny
fixture model, timed in torch (diffusers' UNet2DConditionModel) and in onnxruntime (an ONNX export
of the same module, made here with torch.onnx), on the same inputs as `keyshift bench unet --shape
tiny --sizes 64`. Prints one JSON object with the medians in milliseconds.

Dev-only: needs torch, diffusers, onnx, onnxscript and onnxruntime from PyPI; nothing here ships.

usage: python3 scripts/bench/peers_native.py FIXTURE_DIR WORK_DIR [--runs N]
"""

import json
import os
import statistics
import sys
import time

import numpy as np
import onnxruntime
import torch
from diffusers import UNet2DConditionModel


class Step(torch.nn.Module):
    """The UNet as a plain function of tensors, for export."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, context):
        return self.unet(sample, timestep, encoder_hidden_states=context, return_dict=False)[0]


def median_ms(run, runs):
    run()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def main():
    fixture, work = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 20
    unet = UNet2DConditionModel.from_pretrained(os.path.join(fixture, "unet")).eval()
    side = unet.config.sample_size
    width = unet.config.cross_attention_dim
    sample = torch.full((2, 4, side, side), 0.1)
    timestep = torch.tensor(900.0)
    context = torch.full((2, 77, width), 0.01)
    step = Step(unet)
    with torch.inference_mode():
        torch_ms = median_ms(lambda: step(sample, timestep, context), runs)
        expected = step(sample, timestep, context).numpy()
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, "tiny_unet.onnx")
    torch.onnx.export(
        step,
        (sample, timestep, context),
        path,
        input_names=["sample", "timestep", "context"],
        output_names=["out"],
        opset_version=18,
        dynamo=False,
    )
    # The inputs' shapes and fill values, for the browser half (scripts/bench/web/peers_web.mjs).
    shapes = {
        "sample": {"dims": list(sample.shape), "value": 0.1},
        "timestep": {"dims": [], "value": 900.0},
        "context": {"dims": list(context.shape), "value": 0.01},
    }
    with open(os.path.join(work, "tiny_unet_inputs.json"), "w") as f:
        json.dump(shapes, f)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds = {
        "sample": sample.numpy(),
        "timestep": timestep.numpy(),
        "context": context.numpy(),
    }
    got = session.run(None, feeds)[0]
    ort_ms = median_ms(lambda: session.run(None, feeds), runs)
    print(
        json.dumps(
            {
                "torch_native_cpu_unet_ms": round(torch_ms, 2),
                "onnxruntime_native_cpu_unet_ms": round(ort_ms, 2),
                "onnx_max_abs_diff": float(np.abs(got - expected).max()),
                "torch_version": torch.__version__,
                "onnxruntime_version": onnxruntime.__version__,
                "torch_threads": torch.get_num_threads(),
                "runs": runs,
                "onnx_model": path,
                "onnx_inputs": os.path.join(work, "tiny_unet_inputs.json"),
                "onnx_checksum": float(expected.reshape(-1)[:16].sum()),
            }
        )
    )


if __name__ == "__main__":
    main()
