"""The operator's manual's screenshots: docs/shots.py drives the system's Chromium against a running demo and
fails when the UI lacks what docs/operations.md says (every asset, every schedule and sensor running,
a count check on every entity, a planted mismatch as a failed check)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "shots.py"


def shots_module():
    spec = importlib.util.spec_from_file_location("docs_shots", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_ui_shows_what_the_manual_says_and_is_photographed(tmp_path):
    shots = shots_module()
    if not Path(shots.CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"no Chromium at {shots.CHROMIUM}: .ci/run installs Debian's chromium package")
        pytest.skip(f"no Chromium at {shots.CHROMIUM} (Debian's chromium package; or set TDS_CHROMIUM)")
    pictures = shots.take_shots(tmp_path)
    assert [p.name for p in pictures] == [
        "backfill.png",
        "asset-graph.png",
        "schedules-and-sensors.png",
        "failed-statistics-check.png",
        "run-metadata.png",
    ]
    assert all(p.stat().st_size > 10_000 for p in pictures)  # a rendered page, not a blank one
    manual = (SCRIPT.parent / "operations.md").read_text()
    for picture in pictures:
        assert f"screenshots/{picture.name}" in manual, f"docs/operations.md does not show {picture.name}"
