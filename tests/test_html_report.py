"""The HTML report: one self-contained page (nothing from the network), opened in headless
Chromium (Debian's chromium + chromium-driver through selenium; nothing downloads a browser):
no console errors, the per-layer plot rendered and non-empty, the verdict as the JSON says. The
screenshot is kept as a test artifact (test-artifacts/)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import qonvert
from qonvert.verify.html import render_html, write_html
from qonvert.verify.render import verdict_word

# MTCNN's ONet with its trained weights, FX-quantized for x86 (fixtures/torch/real/make_real.py),
# verified per layer on face crops by the spread bar: the README's picture is of a real model.
REAL = Path(__file__).resolve().parents[1] / "fixtures" / "torch" / "real"
FIXTURE = REAL / "onet_fx_x86.pt"
KINDS = {"50": "regression", "52": "regression"}  # box and landmark regressions; "55" the face classifier
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
)


@pytest.fixture(scope="module")
def report() -> qonvert.VerifyReport:
    pytest.importorskip("torch")
    result = qonvert.convert(FIXTURE, input_shapes={"x": [1, 3, 48, 48]}, engine="x86")
    return qonvert.verify(FIXTURE, result.model, inputs=REAL / "faces.npz", bar="spread", output_kinds=KINDS, engine="x86")


def test_page_is_self_contained(report: qonvert.VerifyReport) -> None:
    page = render_html(report)
    assert not re.search(r"""<script[^>]+src=|<link[^>]+href=["']?https?:""", page), "nothing may load from the network"
    embedded = json.loads(re.search(r'<script type="application/json" id="qonvert-report">(.*?)</script>', page, re.S).group(1))  # type: ignore[union-attr]
    assert embedded["schema"] == "qonvert.verify/1" and embedded == json.loads(json.dumps(report.as_dict()))


@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None, reason="Debian's chromium and chromium-driver are not installed")
def test_page_renders_in_headless_chromium(report: qonvert.VerifyReport, tmp_path: Path) -> None:
    pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = tmp_path / "report.html"
    write_html(report, page)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, "--window-size=1200,1600"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.get(page.as_uri())
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#layer-plot .main-svg"))
        points = driver.find_elements(By.CSS_SELECTOR, "#layer-plot .scatterlayer .point")
        assert len(points) == len(report.layers or []), "one marker per quantized tensor"
        box = driver.find_element(By.CSS_SELECTOR, "#layer-plot").rect
        assert box["width"] > 300 and box["height"] > 200
        verdict = driver.find_element(By.ID, "verdict").text
        assert verdict == verdict_word(report.as_dict())
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == [], errors
        ARTIFACTS.mkdir(exist_ok=True)
        assert driver.save_screenshot(str(ARTIFACTS / "report.png"))
    finally:
        driver.quit()
