"""The .npz format for recorded inputs and reference outputs, so verification runs where the
source framework is not installed (e.g. a GPU machine).

Keys: ``input/<name>/<sample>`` and ``output/<index>/<sample>``; ``meta/outputs`` lists output names.
"""

from __future__ import annotations

import io
import mmap
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import InputError, first_line

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


def load(path: Path, mapped: bool = False) -> tuple[Samples, list[list[np.ndarray]], list[str]]:
    """The samples, reference outputs and output names. mapped: the arrays a file stores
    uncompressed (np.savez) are read-only views of the file mapped, which the system pages in and
    out (calibration reads a model's segments one after another over all of its samples)."""
    try:
        if not zipfile.is_zipfile(path):  # np.load would try it as a pickle and say so
            raise InputError(f"{path}: not a .npz file (not a zip archive)")
        data = np.load(path, allow_pickle=False)
        views = _mapped_members(path) if mapped else {}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a readable .npz file ({exc})") from None

    def read(key: str) -> np.ndarray:
        if key in views:
            return views[key]
        try:
            return data[key]
        except Exception as exc:  # numpy's reader: a corrupt member (CRC, header, object arrays)
            raise InputError(f"{path}: member {key!r} is not a readable array ({first_line(exc, 200)})") from None

    return _samples(data.files, read)


def _samples(keys: list[str], read: Callable[[str], np.ndarray]) -> tuple[Samples, list[list[np.ndarray]], list[str]]:
    inputs: dict[int, dict[str, np.ndarray]] = {}
    outputs: dict[int, dict[int, np.ndarray]] = {}
    names = [str(n) for n in read("meta/outputs")] if "meta/outputs" in keys else []
    for key in keys:
        parts = key.split("/")
        if parts[0] == "input" and len(parts) == 3:
            inputs.setdefault(int(parts[2]), {})[parts[1]] = read(key)
        elif parts[0] == "output" and len(parts) == 3:
            outputs.setdefault(int(parts[2]), {})[int(parts[1])] = read(key)
        elif len(parts) == 1 and key not in ("meta",):  # plain {name: batch} npz: one sample per row
            for i, row in enumerate(read(key)):
                inputs.setdefault(i, {})[key] = row[None]
    in_list = [inputs[i] for i in sorted(inputs)]
    out_list = [[outputs[i][j] for j in sorted(outputs[i])] for i in sorted(outputs)]
    return in_list, out_list, names


def _mapped_members(path: Path) -> dict[str, np.ndarray]:
    """The .npy members that the zip stores uncompressed, as arrays over the file mapped read-only
    (np.load reads a member whole); others are left to np.load."""
    with zipfile.ZipFile(path) as archive:
        stored = [i for i in archive.infolist() if i.compress_type == zipfile.ZIP_STORED and i.filename.endswith(".npy")]
    if not stored:
        return {}
    with path.open("rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    view = memoryview(mapped)
    members = {}
    for info in stored:
        at = info.header_offset  # the member's local header, then its name and extra field
        if bytes(view[at : at + 4]) != b"PK\x03\x04":
            continue
        start = at + 30 + int.from_bytes(view[at + 26 : at + 28], "little") + int.from_bytes(view[at + 28 : at + 30], "little")
        if zlib.crc32(view[start : start + info.file_size]) != info.CRC:
            continue  # np.load reports the corrupt member
        head = io.BytesIO(bytes(view[start : start + min(info.file_size, 1 << 16)]))
        try:
            version = np.lib.format.read_magic(head)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}[version]
            shape, fortran, dtype = read_header(head)
            if dtype.hasobject:
                continue
            count = int(np.prod(shape, dtype=np.int64))
            array = np.frombuffer(view, dtype, count, start + head.tell()).reshape(shape, order="F" if fortran else "C")
        except Exception:  # a corrupt header or an unknown version: np.load says what is wrong with it
            continue
        members[info.filename[: -len(".npy")]] = array
    mapped.madvise(mmap.MADV_DONTNEED)  # the check read every page: the system pages them in again as used
    return members
