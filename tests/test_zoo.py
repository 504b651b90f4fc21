"""The zoo harness: the repository's own manifest passes; bad manifests are one-line errors (exit 2);
a crashing or hanging entry marks only itself; golden reports catch regressions."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from qonvert.cli import main
from qonvert.errors import InputError
from qonvert.verify.render import verdict_word
from qonvert.zoo.manifest import load_manifest

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "fixtures" / "zoo.toml"
SMALL = "tflite/small_cnn_int8io.tflite"


def _manifest(tmp_path: Path, body: str) -> Path:
    (tmp_path / "tflite").symlink_to(ROOT / "fixtures" / "tflite")
    path = tmp_path / "zoo.toml"
    path.write_text(body)
    return path


@pytest.mark.slow
def test_repository_zoo_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "zoo.json"
    pages = tmp_path / "pages"
    code = main(["zoo", "run", str(ZOO), "--jobs", "2", "--report", str(report), "--report-html", str(pages)])
    data = json.loads(report.read_text())
    failing = [(m["name"], m["status"], m.get("error"), m.get("failures")) for m in data["models"] if m["status"] != "pass"]
    assert code == 0 and not failing, failing
    assert data["schema"] == 1
    names = {m["name"] for m in data["models"]}
    assert {"ppocrv4_rec_qdq", "ppocr_cls_fake", "mobilenet_v2_int8", "op_topk_v2_int8"} <= names  # real weights included
    for m in data["models"]:
        assert {"name", "status", "error", "verify", "fusion", "convert_s", "peak_rss_mb"} <= set(m)
    assert "qonvert zoo" in capsys.readouterr().out
    # one page per model (sharing one local plotly.min.js), linked from the index
    index = (pages / "index.html").read_text()
    assert (pages / "plotly.min.js").stat().st_size > 1_000_000
    for m in data["models"]:
        page = (pages / f"{m['name']}.html").read_text()
        assert f'href="{m["name"]}.html"' in index and 'src="plotly.min.js"' in page
        word = verdict_word(m["verify"])  # EQUIVALENT, or EXACT by a litert-exact entry's bar
        assert f'<span class="ok" id="verdict">{word}</span>' in page or m["verify"]["equivalent"] is False


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[[models]]\nsource = 'x.tflite'\n", "entry 1: key 'name' is required"),
        ("[[models]]\nname = 'a'\n", "entry 'a': key 'source' is required"),
        ("[[models]]\nname = 'a'\nsource = 'x'\ncolour = 1\n", "entry 'a': unknown key 'colour'"),
        ("[[models]]\nname = 'a'\nsource = 'x'\nexpect = { max_lsb = 'one' }\n", "entry 'a': key 'expect.max_lsb' must be float"),
        ("[[models]]\nname = 'a'\nsource = 'x'\n[[models]]\nname = 'a'\nsource = 'y'\n", "entry 'a': the name is used twice"),
        ("models = 3\n", "expected one or more [[models]] tables"),
        ("[[models]\n", "not valid TOML"),
    ],
)
def test_bad_manifest_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, message: str) -> None:
    path = tmp_path / "zoo.toml"
    path.write_text(body)
    assert main(["zoo", "run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("fan_out", [["--jobs", "2"], pytest.param(["--ray", "local"], marks=pytest.mark.slow, id="ray")], ids=str)
def test_crash_and_hang_mark_only_their_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str], fan_out: list[str]) -> None:
    """Locally and on a Ray cluster (a local Ray instance here) alike: the same isolated worker."""
    path = _manifest(
        tmp_path,
        f"""
[[models]]
name = "good"
source = "{SMALL}"
samples = 2
expect = {{ max_lsb = 5.0, min_exact = 0.0 }}

[[models]]
name = "hangs"
source = "{SMALL}"
make = "sleep 30"
timeout_s = 2

[[models]]
name = "dies"
source = "{SMALL}"
make = "kill -KILL $PPID"

[[models]]
name = "missing"
source = "nowhere.tflite"
""",
    )
    report = tmp_path / "r.json"
    assert main(["zoo", "run", str(path), *fan_out, "--report", str(report)]) == 1
    models = {m["name"]: m for m in json.loads(report.read_text())["models"]}
    assert all(("ray_node" in m) == ("--ray" in fan_out) for m in models.values())
    assert models["good"]["status"] == "pass"
    assert models["hangs"]["status"] == "error" and "timed out" in models["hangs"]["error"]
    assert models["dies"]["status"] == "error" and "worker died" in models["dies"]["error"]
    assert models["missing"]["status"] == "error" and "nowhere.tflite" in models["missing"]["error"]
    out = capsys.readouterr().out
    assert out.index("missing") < out.index("good")  # the table is sorted by status: errors first


def greedy(entry: object) -> dict[str, object]:
    """A zoo entry runner that allocates 512 MB (module level: the spawned worker imports it)."""
    return {"data": bytearray(512 << 20)}


def test_memory_cap_marks_the_entry() -> None:
    """An entry that allocates past its memory_mb ends as an out-of-memory error, not a dead run."""
    from qonvert.zoo import run
    from qonvert.zoo.manifest import ZooEntry

    (result,) = run.run_all([ZooEntry(name="greedy", source=ROOT / SMALL, memory_mb=64)], runner=greedy)
    assert result["status"] == "error" and result["error"] == "out of memory (cap 64 MB)", result


def test_unreachable_ray_cluster_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo", "run", str(ZOO), "--ray", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--ray 127.0.0.1:1: no Ray cluster answers there" in err and len(err.splitlines()) == 1, err


def test_golden_regression_is_caught(tmp_path: Path) -> None:
    path = _manifest(tmp_path, f'[[models]]\nname = "m"\nsource = "{SMALL}"\nsamples = 2\nexpect = {{ max_lsb = 5.0, min_exact = 0.0 }}\n')
    golden = tmp_path / "golden"
    assert main(["zoo", "run", str(path), "--golden", str(golden), "--update-golden"]) == 0
    assert main(["zoo", "run", str(path), "--golden", str(golden)]) == 0
    saved = json.loads((golden / "m.json").read_text())
    for o in saved["verify"]["outputs"]:  # pretend the golden run was better than today's
        o["max_diff_lsb"], o["pct_exact"] = -1.0, 100.0
    saved["fusion"]["float_ops"] = []
    saved["fusion"]["coverage"] = 2.0
    (golden / "m.json").write_text(json.dumps(saved))
    report = tmp_path / "r.json"
    assert main(["zoo", "run", str(path), "--golden", str(golden), "--report", str(report)]) == 1
    (m,) = json.loads(report.read_text())["models"]
    assert any("LSB" in r for r in m["regressions"]) and any("integer kernels" in r for r in m["regressions"]), m["regressions"]


def test_update_golden_needs_a_folder(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo", "run", os.fspath(ZOO), "--update-golden"]) == 2
    assert "--golden" in capsys.readouterr().err


def test_an_entry_can_name_a_target_and_is_judged_by_its_bar(tmp_path: Path) -> None:
    """target = "litert-exact": converted to that form, verified by its exact bar (every tensor)."""
    body = f'[[models]]\nname = "m"\nsource = "{SMALL}"\ntarget = "litert-exact"\nsamples = 4\nexpect = {{ max_lsb = 0 }}\n'
    report = tmp_path / "r.json"
    assert main(["zoo", "run", str(_manifest(tmp_path, body)), "--report", str(report)]) == 0
    (model,) = json.loads(report.read_text())["models"]
    assert model["status"] == "pass" and model["verify"]["bar"] == "exact" and model["verify"]["bit_exact"]
    bad = tmp_path / "bad"
    bad.mkdir()
    with pytest.raises(InputError, match="target 'nope': expected one of tensorrt, ort-speed, litert-exact"):
        load_manifest(_manifest(bad, body.replace("litert-exact", "nope")))
