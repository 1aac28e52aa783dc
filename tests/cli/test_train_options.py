"""`leadscore train`'s flags become one TrainConfig, checked before any data is read: a
missing or invalid `--personas` file is one clear error naming the file (exit code 2, no
traceback), and a good one reaches ``TrainConfig.personas_path``. Training itself is
replaced, so these tests take a second."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadscore.cli import app

SHIPPED_PERSONAS = Path(__file__).resolve().parents[2] / "features" / "personas.yaml"


@pytest.fixture
def configs(monkeypatch: pytest.MonkeyPatch) -> list:
    """The TrainConfig of every `train` call; training is replaced by a stub."""
    import training.train

    seen: list = []

    class Result:
        def to_json(self) -> dict:
            return {"stub": True}

    def fake_train(data, config, *, progress, warn):
        seen.append(config)
        return Result()

    monkeypatch.setattr(training.train, "train", fake_train)
    return seen


def run_train(tmp_path: Path, *args: str):
    return CliRunner().invoke(app, ["train", "--data", str(tmp_path / "data"), *args])


def test_missing_personas_file_is_a_clear_error(tmp_path: Path, configs: list) -> None:
    missing = tmp_path / "nowhere" / "personas.yaml"
    res = run_train(tmp_path, "--personas", str(missing))
    assert res.exit_code == 2, res.output
    assert "--personas" in res.output and str(missing) in res.output
    assert "cannot read the file" in res.output
    assert isinstance(res.exception, SystemExit)  # a clean exit, no exception escaped
    assert configs == []  # stopped before training


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("personas: [unclosed\n", "not valid YAML"),
        ("- just a list\n", "top level must be a mapping"),
        ("personas:\n  - name: x\n    topics: 3\n", "problem(s)"),
    ],
    ids=["bad-yaml", "not-a-mapping", "bad-schema"],
)
def test_invalid_personas_file_is_a_clear_error(
    tmp_path: Path, configs: list, text: str, words: str
) -> None:
    bad = tmp_path / "personas.yaml"
    bad.write_text(text, encoding="utf-8")
    res = run_train(tmp_path, "--personas", str(bad))
    assert res.exit_code == 2, res.output
    assert str(bad) in res.output and words in res.output
    assert isinstance(res.exception, SystemExit)
    assert configs == []


def test_flags_become_one_train_config(tmp_path: Path, configs: list) -> None:
    res = run_train(
        tmp_path,
        "--personas", str(SHIPPED_PERSONAS),
        "--target", "mql",
        "--horizon-days", "30",
        "--allow-leaky", "a", "--allow-leaky", "b",
        "--calibration-prior", "slice",
        "--model-name", "other-set",
        "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    (cfg,) = configs
    assert cfg.personas_path == SHIPPED_PERSONAS
    assert (cfg.target, cfg.horizon_days, cfg.seed) == ("mql", 30, 7)
    assert cfg.allow_leaky == ("a", "b")
    assert cfg.calibration_prior == "recent"  # the old name of `recent`
    assert cfg.model_name == "other-set"
    assert res.stdout.strip() == '{"stub": true}'


def test_a_setting_train_config_refuses_is_a_clear_error(tmp_path: Path, configs: list) -> None:
    res = run_train(tmp_path, "--horizon-days", "0")
    assert res.exit_code == 2
    assert "error: the horizon must be at least 1 day, got 0" in res.output
    assert isinstance(res.exception, SystemExit)
    assert configs == []
