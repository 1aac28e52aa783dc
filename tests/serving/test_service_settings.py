"""The service's settings are read once, at start-up, from LEADSCORE_* variables with the
names and defaults documented in the README; a bad value names its variable; importing the
service module reads nothing and builds nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from serving.settings import InvalidSettings, ServiceSettings, load_settings
from serving.timestamps import checked_moment

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("LEADSCORE_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_defaults_are_todays(clean_env) -> None:
    s = load_settings()
    assert s.bento_model == "lead-scorer:latest"
    assert (s.max_concurrency, s.workers, s.request_deadline_s) == (32, 2, 25.0)
    assert not s.insecure_dev and not s.built_bento
    assert s.db_url is None and s.lead_key_secret is None and s.api_token_set() == frozenset()


def test_every_variable_is_read(clean_env, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("file-token-0123456789abcdef\n")
    for name, value in {
        "BENTO_MODEL": "lead-scorer:abc",
        "MAX_CONCURRENCY": "8",
        "WORKERS": "1",
        "REQUEST_DEADLINE_S": "0.2",
        "INSECURE_DEV": "1",
        "BUILT_BENTO": "1",
        "API_TOKENS": "inline-token-0123456789abcdef",
        "API_TOKENS_FILE": str(tokens),
        "DB_URL": "sqlite:////tmp/x.db",
        "LEAD_KEY_SECRET": "  a-secret-of-at-least-16-bytes  ",
    }.items():
        clean_env.setenv(f"LEADSCORE_{name}", value)
    s = load_settings()
    assert (s.bento_model, s.max_concurrency, s.workers) == ("lead-scorer:abc", 8, 1)
    assert s.deadline_s == 0.2 and s.insecure_dev and s.built_bento
    assert s.api_token_set() == {"inline-token-0123456789abcdef", "file-token-0123456789abcdef"}
    assert s.db_url == "sqlite:////tmp/x.db"
    assert s.lead_key_secret_bytes == b"a-secret-of-at-least-16-bytes"
    assert "a-secret" not in repr(s) and "inline-token" not in repr(s) and "x.db" not in repr(s)
    with pytest.raises(ValidationError):
        s.workers = 3  # type: ignore[misc]  # frozen


def test_deadline_stays_below_bentomls_timeout(clean_env) -> None:
    clean_env.setenv("LEADSCORE_REQUEST_DEADLINE_S", "300")
    assert load_settings().deadline_s == 28.0


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("LEADSCORE_WORKERS", "two", True),
        ("LEADSCORE_MAX_CONCURRENCY", "0", True),
        ("LEADSCORE_REQUEST_DEADLINE_S", "nan", True),
        ("LEADSCORE_INSECURE_DEV", "maybe", True),
        ("LEADSCORE_LEAD_KEY_SECRET", "short-secret", False),
    ],
)
def test_a_bad_value_names_its_variable(clean_env, name: str, value: str, shown: bool) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(InvalidSettings) as err:
        load_settings()
    assert name in str(err.value)
    assert (value in str(err.value)) == shown  # a secret is never echoed


def test_yes_and_no_words_and_empty_variables(clean_env) -> None:
    for word, expected in (("yes", True), ("TRUE", True), ("0", False), ("no", False)):
        clean_env.setenv("LEADSCORE_INSECURE_DEV", word)
        assert load_settings().insecure_dev is expected
    clean_env.setenv("LEADSCORE_WORKERS", "")  # empty counts as unset
    assert load_settings().workers == 2
    clean_env.setenv("LEADSCORE_BUILT_BENTO", "0")  # the mark is being set at all
    assert load_settings().built_bento


def test_overrides_win_over_the_environment(clean_env) -> None:
    clean_env.setenv("LEADSCORE_BENTO_MODEL", "lead-scorer:inherited")
    s = load_settings(bento_model="lead-scorer:pinned", built_bento=True)
    assert s.bento_model == "lead-scorer:pinned" and s.built_bento
    assert isinstance(s, ServiceSettings)


def test_importing_the_service_reads_nothing_and_builds_nothing() -> None:
    # a read counts when our code makes it (libraries iterate the whole environment)
    probe = (
        "import os, sys, json\n"
        "seen = []\n"
        "ours = os.path.join(os.getcwd(), 'serving')\n"
        "class Env(type(os.environ)):\n"
        "    def __getitem__(self, k):\n"
        "        if sys._getframe(1).f_code.co_filename.startswith(ours): seen.append(k)\n"
        "        return super().__getitem__(k)\n"
        "    def get(self, k, default=None):\n"
        "        if sys._getframe(1).f_code.co_filename.startswith(ours): seen.append(k)\n"
        "        return super().get(k, default)\n"
        "os.environ = Env(os.environ._data, os.environ.encodekey, os.environ.decodekey,\n"
        "                 os.environ.encodevalue, os.environ.decodevalue)\n"
        "import serving.service as s, serving.bento_entry as b\n"
        "print(json.dumps([seen, 'LeadScoringService' in vars(s),"
        " 'LeadScoringService' in vars(b)]))\n"
    )
    env = {**os.environ, "LEADSCORE_WORKERS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [[], False, False]


def test_the_service_is_built_on_first_use_with_the_settings(clean_env) -> None:
    import serving.service as module

    clean_env.setenv("LEADSCORE_WORKERS", "3")
    clean_env.setenv("LEADSCORE_BENTO_MODEL", "lead-scorer:some-version")
    clean_env.delitem(module.__dict__, "LeadScoringService", raising=False)
    service = module.LeadScoringService
    assert module.LeadScoringService is service  # built once
    assert service.config["workers"] == 3
    assert service.inner.settings.bento_model == "lead-scorer:some-version"
    assert str(service.models[0].tag) == "lead-scorer:some-version"
    assert service.import_string == "serving.service:LeadScoringService"
    clean_env.delitem(module.__dict__, "LeadScoringService")
    with pytest.raises(AttributeError):
        module.NoSuchService  # noqa: B018


def test_one_timestamp_rule() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert checked_moment(datetime(2026, 1, 1, 12, tzinfo=plus_two)) == datetime(2026, 1, 1, 10)
    assert checked_moment(datetime(2026, 1, 1, 12)) == datetime(2026, 1, 1, 12)  # naive is UTC
    assert checked_moment("2026-01-01T12:00:00Z", "at") == datetime(2026, 1, 1, 12)
    with pytest.raises(ValueError, match="^at: not an ISO-8601"):
        checked_moment("last tuesday", "at")
    with pytest.raises(ValueError, match="out of range"):
        checked_moment(datetime(1900, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="out of range"):
        checked_moment(datetime(1, 1, 1, tzinfo=plus_two))  # overflows on the way to UTC


def test_a_prediction_log_starts_its_writer_only_when_asked(tmp_path: Path) -> None:
    from serving.predlog import PredictionLog

    before = {t.name for t in threading.enumerate()}
    log = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}", secret=b"s" * 20, interval=0.01)
    assert "leadscore-predlog" not in {t.name for t in threading.enumerate()} - before
    log.log_answers([{"lead_id": "L1", "p_convert": 0.5}], request_id="r", model_name="m",
                    model_version="1")  # fmt: skip
    assert not log.flush(timeout=0.2)  # nothing writes yet
    with log:
        assert log.flush(timeout=5) and log.written == 1
    assert log.close() and log.pending() == 0
