"""The quickstart: config.example.yaml works as shipped, on the sample CSV."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from service.cli import app
from service.logconfig import reset_logging

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> str:
    try:
        result = CliRunner().invoke(app, list(args))
    finally:
        reset_logging()
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_example_config_syncs_the_sample_csv(tmp_path: Path) -> None:
    shutil.copy(ROOT / "config.example.yaml", tmp_path)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    config = str(tmp_path / "config.example.yaml")
    assert "OK" in cli("check-config", "--config", config)
    out = cli("sync", "--config", config)
    assert "created 19" in out and "failed 1" in out
    assert (tmp_path / "var" / "leadsync.db").exists()  # next to the config file
    leads = [
        json.loads(line)
        for line in cli("export", "--config", config).split("\n")
        if line
    ]
    ada = next(lead for lead in leads if lead["lead_id"] == "C-1001")
    assert ada["name"] == "Ada Lovelace" and ada["phone"] == "+14155552000"
