"""GPT-2 small (124M parameters, random init from transformers' GPT2Config) quantized by torchao's
quantize_ the two ways LLMs are: int4 weight-only (PerGroup(32)) and int8 dynamic activations +
int8 weights. One table: conversion wall time and peak RSS (qonvert canonical and --speed,
torch.onnx's dynamo exporter on the same programs), latency per token of a 128-token prompt on
ORT CPU against the fp32 model (torch.onnx of the float model), and fidelity against torchao's own
exported program (max |logit diff|, next-token agreement over every position). A second latency
column runs a one-token step (the shape of a decoding step, without a KV cache): weight-only int4
pays off there, where the weights' bytes and not the arithmetic set the time.

    pip install transformers && python benchmarks/gpt2_torchao.py [--layers 12] [--rounds 5]

GPT-2's attention and MLP are transformers' Conv1D (x @ W + b), which quantize_ skips (it takes
nn.Linear): each is swapped for the nn.Linear that computes the same (weight transposed) first.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import interleaved_latency, run_measured

PROMPT = 128

_TORCH_ONNX = """
import sys, warnings, torch, torchao
warnings.filterwarnings("ignore")
program = torch.export.load(sys.argv[1])
torch.onnx.export(program, dynamo=True, f=sys.argv[2], optimize=False)
"""


def gpt2(layers: int) -> Any:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(0)
    config = GPT2Config(n_layer=layers, use_cache=False)
    config._attn_implementation = "sdpa"
    model = GPT2LMHeadModel(config).eval()

    def as_linears(module: torch.nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, Conv1D):
                linear = torch.nn.Linear(child.weight.shape[0], child.weight.shape[1])
                with torch.no_grad():
                    linear.weight.copy_(child.weight.T)
                    linear.bias.copy_(child.bias)
                setattr(module, name, linear)
            else:
                as_linears(child)

    as_linears(model)

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=input_ids, use_cache=False, return_dict=False)[0]

    return Logits().eval()


def quantized(module: Any, config: str) -> Any:
    import torch
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, IntxWeightOnlyConfig, quantize_
    from torchao.quantization.granularity import PerGroup

    chosen = {
        "int4 weight-only g32": IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(32)),
        "int8 dynamic + int8 weight": Int8DynamicActivationInt8WeightConfig(),
    }[config]
    module = copy.deepcopy(module)
    quantize_(module, chosen)
    return module


def main() -> None:
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    tmp = Path(tempfile.mkdtemp())
    ids = torch.from_numpy(np.random.default_rng(0).integers(0, 50257, (1, PROMPT)))
    prompts = [torch.from_numpy(np.random.default_rng(s).integers(0, 50257, (1, PROMPT))) for s in range(1, 5)]
    float_model = gpt2(args.layers)
    params = sum(p.numel() for p in float_model.parameters()) / 1e6
    torch.export.save(torch.export.export(float_model, (ids,)), str(tmp / "fp32.pt2"))
    rc, wall, rss, out = run_measured([sys.executable, "-c", _TORCH_ONNX, str(tmp / "fp32.pt2"), str(tmp / "fp32.onnx")])
    rows = [("fp32 (torch.onnx dynamo)", "-", f"{wall:.1f} s, {rss:.0f} MB" if rc == 0 else "failed", "-", "-")]
    models = {"fp32": str(tmp / "fp32.onnx")}
    fidelity: dict[str, str] = {}
    for config in ("int4 weight-only g32", "int8 dynamic + int8 weight"):
        key = "int4" if config.startswith("int4") else "int8"
        module = quantized(float_model, config)
        program = torch.export.export(module, (ids,))
        pt2 = tmp / f"{key}.pt2"
        torch.export.save(program, str(pt2))
        anchor = run_measured([sys.executable, "-c", _TORCH_ONNX, str(pt2), str(tmp / f"{key}_torch_onnx.onnx")])
        anchor_cell = f"{anchor[1]:.1f} s, {anchor[2]:.0f} MB" if anchor[0] == 0 else "fails: " + _last_error(anchor[3])
        for form, flags in (("canonical", []), ("speed", ["--speed"])):
            onnx_path = tmp / f"{key}_{form}.onnx"
            rc, wall, rss, out = run_measured(["qonvert", "convert", str(pt2), "-o", str(onnx_path), *flags])
            if rc != 0:
                rows.append((f"{config}, {form}", "failed: " + _last_error(out), anchor_cell, "-", "-"))
                continue
            models[f"{key} {form}"] = str(onnx_path)
            fidelity[f"{key} {form}"] = _fidelity(program.module(), onnx_path, prompts)
            rows.append((f"{config}, {form}", f"{wall:.1f} s, {rss:.0f} MB", anchor_cell, "", fidelity[f"{key} {form}"]))
    latency = interleaved_latency(models, rounds=args.rounds, runs=3, feed={"input_ids": ids.numpy()})
    step = interleaved_latency(_one_token_models(float_model, tmp), rounds=args.rounds, runs=20, feed={"input_ids": ids[:, :1].numpy()})
    base, step_base = latency["fp32"][0], step["fp32"][0]
    print(f"GPT-2 small shape, {args.layers} layers, {params:.0f}M parameters; ORT CPU")
    print(
        f"| model | qonvert convert (wall, peak RSS) | torch.onnx dynamo (wall, peak RSS) | ms / token, {PROMPT}-token prompt (min-max) | vs fp32 "
        "| ms, one-token step | vs fp32 | fidelity vs torchao |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, ours, anchor, _, fid in rows:
        key = "fp32" if name.startswith("fp32") else f"{'int4' if name.startswith('int4') else 'int8'} {name.rsplit(', ', 1)[1]}"
        ms, one = latency.get(key), step.get(key)
        cell = f"{ms[0] / PROMPT:.2f} ({ms[1] / PROMPT:.2f}-{ms[2] / PROMPT:.2f})" if ms else "-"
        ratio = f"{base / ms[0]:.2f}x" if ms else "-"
        one_cell, one_ratio = (f"{one[0]:.2f} ({one[1]:.2f}-{one[2]:.2f})", f"{step_base / one[0]:.2f}x") if one else ("-", "-")
        print(f"| {name} | {ours} | {anchor} | {cell} | {ratio} | {one_cell} | {one_ratio} | {fid or '-'} |")


def _one_token_models(float_model: Any, tmp: Path) -> dict[str, str]:
    """The same models exported for one token (torch.export fixes the sequence length)."""
    import torch

    one = (torch.zeros(1, 1, dtype=torch.int64),)
    torch.export.save(torch.export.export(float_model, one), str(tmp / "fp32_1.pt2"))
    run_measured([sys.executable, "-c", _TORCH_ONNX, str(tmp / "fp32_1.pt2"), str(tmp / "fp32_1.onnx")])
    models = {"fp32": str(tmp / "fp32_1.onnx")}
    for config in ("int4 weight-only g32", "int8 dynamic + int8 weight"):
        key = "int4" if config.startswith("int4") else "int8"
        torch.export.save(torch.export.export(quantized(float_model, config), one), str(tmp / f"{key}_1.pt2"))
        for form, flags in (("canonical", []), ("speed", ["--speed"])):
            out = tmp / f"{key}_{form}_1.onnx"
            if run_measured(["qonvert", "convert", str(tmp / f"{key}_1.pt2"), "-o", str(out), *flags])[0] == 0:
                models[f"{key} {form}"] = str(out)
    return models


def _fidelity(module: Any, onnx_path: Path, prompts: list[Any]) -> str:
    import torch

    from qonvert.runtime.ort import session

    sess = session(str(onnx_path))
    worst, agree, total, spread = 0.0, 0, 0, 0.0
    with torch.no_grad():
        for ids in prompts:
            ref = module(ids).numpy()
            ours = sess.run(None, {sess.get_inputs()[0].name: ids.numpy()})[0]
            worst = max(worst, float(np.abs(ref - ours).max()))
            spread = max(spread, float(ref.std()))
            agree += int((ref.argmax(-1) == ours.argmax(-1)).sum())
            total += ref.shape[1]
    return f"max {worst:.3g} (logit std {spread:.2f}), next token {100 * agree / total:.1f}%"


def _last_error(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if "Error" in line or "error" in line]
    return (lines[-1] if lines else text.strip().splitlines()[-1] if text.strip() else "no output")[:120]


if __name__ == "__main__":
    main()
