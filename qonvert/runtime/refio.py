"""The .npz format for recorded inputs and reference outputs, so verification runs where the
source framework is not installed (e.g. a GPU machine).

Keys: ``input/<name>/<sample>`` and ``output/<index>/<sample>``; ``meta/outputs`` lists output names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError

Samples = list[dict[str, np.ndarray]]


def save(path: Path, inputs: Samples, outputs: list[list[np.ndarray]] | None, output_names: list[str]) -> None:
    arrays: dict[str, np.ndarray] = {"meta/outputs": np.asarray(output_names)}
    for i, feed in enumerate(inputs):
        for name, arr in feed.items():
            arrays[f"input/{name}/{i}"] = arr
    for i, outs in enumerate(outputs or []):
        for j, arr in enumerate(outs):
            arrays[f"output/{j}/{i}"] = arr
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(path)


def load(path: Path) -> tuple[Samples, list[list[np.ndarray]], list[str]]:
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable .npz file ({exc})") from None
    inputs: dict[int, dict[str, np.ndarray]] = {}
    outputs: dict[int, dict[int, np.ndarray]] = {}
    names = [str(n) for n in data["meta/outputs"]] if "meta/outputs" in data else []
    for key in data.files:
        parts = key.split("/")
        if parts[0] == "input" and len(parts) == 3:
            inputs.setdefault(int(parts[2]), {})[parts[1]] = data[key]
        elif parts[0] == "output" and len(parts) == 3:
            outputs.setdefault(int(parts[2]), {})[int(parts[1])] = data[key]
        elif len(parts) == 1 and key not in ("meta",):  # plain {name: batch} npz: one sample per row
            for i, row in enumerate(data[key]):
                inputs.setdefault(i, {})[key] = row[None]
    in_list = [inputs[i] for i in sorted(inputs)]
    out_list = [[outputs[i][j] for j in sorted(outputs[i])] for i in sorted(outputs)]
    return in_list, out_list, names
