"""What the service reads from the environment, read once when it starts.

Every variable is ``LEADSCORE_<FIELD>`` (``bento_model`` is ``LEADSCORE_BENTO_MODEL``). An
empty variable counts as unset. :func:`load_settings` builds the frozen
:class:`ServiceSettings` at start-up (``bentoml serve`` asking :mod:`serving.service` for
its service, or the entry module of a built bento, :mod:`serving.bento_entry`); the service
and its parts get that object passed in and never read the environment themselves. A bad
value stops the start with :class:`InvalidSettings`, whose message names the variable (and
never echoes a secret).

The limits per request (body bytes, events, leads, outcomes: :mod:`serving.limits`,
:mod:`serving.schemas`) are fixed in code, not settings: the API documents them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from crm.vocabulary import NO_WORDS, YES_WORDS
from serving.auth import TOKENS_ENV, TOKENS_FILE_ENV, load_tokens
from serving.limits import DEFAULT_DEADLINE_S

ENV_PREFIX = "LEADSCORE_"
#: BentoML's own request timeout (it answers 504 but lets the worker thread run on).
REQUEST_TIMEOUT_S = 30
#: The model served when LEADSCORE_BENTO_MODEL is not set.
DEFAULT_MODEL_TAG = "lead-scorer:latest"
#: Fields whose value an error message never shows.
_SECRET_FIELDS = frozenset({"api_tokens", "db_url", "lead_key_secret"})


class InvalidSettings(ValueError):
    """A LEADSCORE_* variable has a value the service cannot run with."""


class ServiceSettings(BaseSettings):
    """The service's settings (module docstring): one frozen object per start."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, env_ignore_empty=True, extra="forbid"
    )

    bento_model: str = Field(
        DEFAULT_MODEL_TAG, description="Tag of the BentoML model served (a bento pins its own)"
    )
    max_concurrency: int = Field(
        32, gt=0, description="Requests in progress (all workers) before new ones get 429"
    )
    workers: int = Field(2, gt=0, description="Worker processes of `bentoml serve`")
    request_deadline_s: float = Field(
        DEFAULT_DEADLINE_S,
        gt=0,
        allow_inf_nan=False,
        description="Seconds a request may run before its work stops (see deadline_s)",
    )
    insecure_dev: bool = Field(
        False, description="Serve without API tokens: loopback only, never in a built bento"
    )
    built_bento: bool = Field(
        False, description="Running from a bento built by `leadscore build` (any value: yes)"
    )
    api_tokens: SecretStr | None = Field(None, description="Bearer tokens, comma-separated")
    api_tokens_file: Path | None = Field(None, description="A file of bearer tokens, one a line")
    db_url: str | None = Field(
        None, repr=False, description="Prediction log database (default: a SQLite file)"
    )
    lead_key_secret: SecretStr | None = Field(
        None, description="HMAC secret that pseudonymises lead ids in the prediction log"
    )
    lead_key_secret_file: Path | None = Field(None, description="A file holding that secret")
    history_days: int = Field(
        365,
        ge=0,
        description="Days of answers a lead's history keeps (GET /leads/{id}/history, "
        "changed_because); older ones are deleted daily. 0: keep them forever",
    )
    monitor_interval_s: float = Field(
        3600.0,
        ge=0,
        allow_inf_nan=False,
        description="Seconds between two computations of the monitor's Prometheus gauges "
        "(drift, realised calibration) by the first worker; 0: only when GET /monitor is "
        "called",
    )
    monitor_days: int = Field(
        90, gt=0, description="Days of answers GET /monitor and the gauges look at by default"
    )

    shadow_model: str | None = Field(
        None,
        description="Tag of a BentoML model scored beside the served one on every /score "
        "request, logged to shadow_predictions, never returned (`leadscore serve` sets it "
        "when the registry has a `shadow` alias). Unset: no shadow",
    )
    shadow_queue_size: int = Field(
        64,
        gt=0,
        description="Requests waiting for the shadow model (per worker) before "
        "further ones are not shadowed (counted as dropped)",
    )
    shadow_cpu_share: float = Field(
        0.2,
        gt=0,
        le=1,
        description="The most of one CPU core each worker's shadow process uses (0.2: a "
        "fifth), besides running on idle CPU only; past it the shadow waits, and requests "
        "that find its queue full are not shadowed (counted as dropped)",
    )

    @field_validator("insecure_dev", mode="before")
    @classmethod
    def _yes_or_no(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, str):
            return value
        word = value.strip().lower()
        if word in YES_WORDS:
            return True
        if word in NO_WORDS or not word:
            return False
        raise ValueError(f"expected yes or no ({', '.join(sorted(YES_WORDS | NO_WORDS))})")

    @field_validator("built_bento", mode="before")
    @classmethod
    def _set_means_yes(cls, value: Any) -> Any:
        # the variable marks a built bento by being there: any value, even "0", is a yes
        return bool(value.strip()) if isinstance(value, str) else value

    @field_validator("lead_key_secret", mode="after")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        from serving.predlog.keys import MIN_SECRET_BYTES

        if value is None or not value.get_secret_value().strip():
            return None
        text = value.get_secret_value().strip()
        if len(text.encode("utf-8")) < MIN_SECRET_BYTES:
            raise ValueError(f"the lead-key secret is shorter than {MIN_SECRET_BYTES} bytes")
        return SecretStr(text)

    @property
    def deadline_s(self) -> float:
        """The request deadline in force: LEADSCORE_REQUEST_DEADLINE_S, but at least 2 s
        below BentoML's request timeout, so a request stops before BentoML gives up on it."""
        return min(self.request_deadline_s, REQUEST_TIMEOUT_S - 2.0)

    @property
    def lead_key_secret_bytes(self) -> bytes | None:
        secret = self.lead_key_secret
        return None if secret is None else secret.get_secret_value().encode("utf-8")

    def api_token_set(self) -> frozenset[str]:
        """The bearer tokens (:func:`serving.auth.load_tokens` rules); ValueError for an
        unreadable file or a malformed or short token."""
        env = {}
        if self.api_tokens is not None:
            env[TOKENS_ENV] = self.api_tokens.get_secret_value()
        if self.api_tokens_file is not None:
            env[TOKENS_FILE_ENV] = str(self.api_tokens_file)
        return load_tokens(env)


def env_name(field: str) -> str:
    """The environment variable behind a settings field."""
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(**overrides: Any) -> ServiceSettings:
    """The settings from the environment (``overrides`` win): call once, at start-up.

    Raises :class:`InvalidSettings` naming every variable with a bad value."""
    try:
        return ServiceSettings(**overrides)
    except ValidationError as e:
        raise InvalidSettings(_describe(e)) from None


def _describe(err: ValidationError) -> str:
    problems = []
    for item in err.errors(include_url=False):
        field = str(item["loc"][0]) if item["loc"] else "?"
        message = str(item["msg"]).removeprefix("Value error, ")
        shown = ""
        if field not in _SECRET_FIELDS and isinstance(item.get("input"), str | int | float):
            shown = f"={item['input']!r}"
        problems.append(f"{env_name(field)}{shown}: {message}")
    return "bad setting(s): " + "; ".join(problems)


__all__ = [
    "DEFAULT_MODEL_TAG",
    "ENV_PREFIX",
    "REQUEST_TIMEOUT_S",
    "InvalidSettings",
    "ServiceSettings",
    "env_name",
    "load_settings",
]
