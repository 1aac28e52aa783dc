"""Buyer personas from configuration: who a lead is, from its job title and its topics.

A persona (DOMAIN.md: subscriber, evaluator, marketer, ...) is defined in YAML, not in code:
each company has its own. ``load_personas`` reads the shipped ``personas.yaml`` or a
user's file into a frozen :class:`PersonaConfig`; a bad file raises :class:`ConfigError`
naming the file and the key (``personas[1] (evaluator).topics.fixes: ...``).

``assign_personas`` is a naive-Bayes classifier whose likelihoods come from the definitions:

    log posterior(p) = log prior(p) + title evidence(p)
                       + topic_event_weight x sum over topical events of log P(topic | p)

- P(topic | p) = motive_share x w(p, topic) / sum_t w(p, t) + (1 - motive_share) / V, with
  V the number of known topics (all persona topics plus ``general_topics``). Topics that no
  persona lists, and unknown topics, are equally likely under every persona: no signal.
- title evidence: log(role_likelihood_ratio) for each persona with a role pattern matching
  the normalised job title; only when no persona's role matched, log(
  department_likelihood_ratio) for each persona listing the title's department
  (``features.jobtitle``).
- Only events strictly before ``as_of`` count (a Timestamp, or a Series of per-lead
  timestamps indexed by lead_id): the assignment is point-in-time.

``persona_confidence`` is the posterior share of the chosen persona. A lead without any
evidence gets the persona with the highest prior, at that prior's share.

Everything runs on integer codes (one ``np.bincount`` over lead x topic, a small matrix
product, one regex pass per *distinct* job title), so 100k leads with 5M events take about a
second, and one lead a fraction of a millisecond.

``discover_personas`` proposes persona definitions from data (KMeans over topic profiles and
job-title features) as YAML text of the same schema, for a data scientist to review.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, NamedTuple, TypeVar

import numpy as np
import pandas as pd
import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

try:  # the job-title parser is optional: without it, titles are only lower-cased
    from features.jobtitle import normalize_title as _normalize_title
    from features.jobtitle import parse_job_title as _parse_job_title
except ImportError:  # pragma: no cover - exercised only when jobtitle.py is absent
    _normalize_title = None
    _parse_job_title = None

DEFAULT_PERSONAS_PATH = Path(__file__).with_name("personas.yaml")

AsOf = pd.Timestamp | pd.Series


# ---------------------------------------------------------------- configuration loading
class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


_M = TypeVar("_M", bound=BaseModel)


def _loc_label(loc: tuple[Any, ...], raw: Any) -> str:
    """``('personas', 1, 'topics', 'fixes')`` -> ``personas[1] (evaluator).topics.fixes``."""
    out = ""
    node = raw
    for key in loc:
        if isinstance(key, int):
            out += f"[{key}]"
            node = node[key] if isinstance(node, list) and 0 <= key < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                out += f" ({node['name']})"
        else:
            out += f".{key}" if out else str(key)
            node = node.get(key) if isinstance(node, dict) else None
    return out or "(top level)"


def _explain(source: str, err: ValidationError, raw: Any) -> ConfigError:
    lines = []
    for e in err.errors():
        msg = e["msg"].removeprefix("Value error, ")
        given = e.get("input")
        if isinstance(given, (str, int, float, bool)) and e["type"] != "missing":
            msg += f" (got {given!r})"
        lines.append(f"  {_loc_label(tuple(e['loc']), raw)}: {msg}")
    return ConfigError(f"{source}: {len(lines)} problem(s):\n" + "\n".join(lines))


def read_yaml_config(
    model: type[_M], data: str | Path | Mapping[str, Any], source: str | None = None
) -> _M:
    """Validate a YAML file (a Path), YAML text (a str) or a mapping into a frozen model.

    Raises ConfigError naming the source and the offending key."""
    if isinstance(data, Path):
        source = source or str(data)
        try:
            text = data.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read the file: {exc}") from None
    else:
        text = data
        source = source or "<configuration>"
    if isinstance(text, str):
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    else:
        raw = dict(text)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping of keys, not {type(raw).__name__}"
        )
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise _explain(source, exc, raw) from None


# ---------------------------------------------------------------- the persona schema
def _check_regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return pattern


_Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=60)]
_Weight = Annotated[float, Field(gt=0, allow_inf_nan=False)]
_Pattern = Annotated[str, Field(min_length=1), AfterValidator(_check_regex)]


class PersonaDefinition(BaseModel):
    """One persona: what it reads (topic weights) and who it is (job-title patterns)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: _Name
    description: str = ""
    prior: _Weight = 1.0
    topics: dict[Annotated[str, Field(min_length=1)], _Weight] = Field(min_length=1)
    roles: tuple[_Pattern, ...] = ()
    departments: tuple[str, ...] = ()


class PersonaScoring(BaseModel):
    """How strongly each kind of evidence counts (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    motive_share: float = Field(0.7, gt=0, lt=1)
    role_likelihood_ratio: float = Field(8.0, ge=1, allow_inf_nan=False)
    department_likelihood_ratio: float = Field(2.0, ge=1, allow_inf_nan=False)
    topic_event_weight: float = Field(1.0, gt=0, le=10)


class PersonaConfig(BaseModel):
    """All persona definitions of one company, plus the scoring settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = 1
    scoring: PersonaScoring = PersonaScoring()
    general_topics: tuple[str, ...] = ()
    personas: tuple[PersonaDefinition, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> PersonaConfig:
        seen: set[str] = set()
        for p in self.personas:
            if p.name in seen:
                raise ValueError(f"personas: persona name {p.name!r} is used twice")
            seen.add(p.name)
        motive = {t for p in self.personas for t in p.topics}
        both = sorted(motive.intersection(self.general_topics))
        if both:
            raise ValueError(
                f"general_topics: {both} are also persona topics; a topic is either a motive "
                "of some persona or general"
            )
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.personas)

    @cached_property
    def _compiled(self) -> _PersonaModel:
        return _PersonaModel.build(self)


def load_personas(path: str | Path | None = None) -> PersonaConfig:
    """Persona definitions from a YAML file; ``None`` = the shipped ``personas.yaml``."""
    return read_yaml_config(
        PersonaConfig, Path(path) if path is not None else DEFAULT_PERSONAS_PATH
    )


def parse_personas(text: str | Mapping[str, Any], source: str = "<personas>") -> PersonaConfig:
    """Persona definitions from YAML text or an already parsed mapping."""
    return read_yaml_config(PersonaConfig, text, source)


# ---------------------------------------------------------------- point-in-time helpers
# Below this many values, plain Python dict look-ups beat pandas' vectorised machinery,
# whose fixed cost per call dominates one-lead requests.
SMALL = 256


def lead_index(leads: pd.DataFrame | pd.Index | pd.Series) -> pd.Index:
    """The lead ids as a unique Index named ``lead_id`` (order kept)."""
    if isinstance(leads, pd.DataFrame):
        ids = leads["lead_id"] if "lead_id" in leads.columns else leads.index.to_series()
    else:
        ids = leads
    idx = ids.rename("lead_id") if isinstance(ids, pd.Index) else pd.Index(ids, name="lead_id")
    unique = len(set(idx)) == len(idx) if len(idx) <= SMALL else idx.is_unique
    if not unique:
        dup = idx[idx.duplicated()].unique()[:3].tolist()
        raise ValueError(f"lead_id must be unique; duplicated: {dup}")
    return idx


def positions(
    values: pd.Series | np.ndarray, index: pd.Index, lookup: Mapping[Any, int] | None = None
) -> np.ndarray:
    """Position of each value in ``index`` (-1 when absent or missing).

    Categoricals map their categories only; long columns are factorised first (hashing
    each distinct value once is ~5x faster than ``get_indexer`` on 5M Arrow strings);
    short ones use a dict (``lookup``, built from ``index`` when not given)."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        cats = values.cat.categories
        if lookup is not None and len(cats) <= SMALL:
            cat_pos = np.array([*(lookup.get(c, -1) for c in cats), -1], dtype=np.int64)
        else:
            cat_pos = np.append(index.get_indexer(cats), -1)
        return cat_pos[values.cat.codes.to_numpy()]  # code -1 (missing) reads the -1 slot
    if len(values) <= SMALL and (lookup is not None or len(index) <= SMALL):
        if lookup is None:
            lookup = {v: i for i, v in enumerate(index)}
        return np.fromiter((lookup.get(v, -1) for v in values), dtype=np.int64, count=len(values))
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return np.append(index.get_indexer(uniques), -1)[codes]


def _naive_utc(ts: pd.Timestamp) -> pd.Timestamp:
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def resolve_as_of(as_of: AsOf, leads: pd.Index) -> np.datetime64 | np.ndarray:
    """One naive-UTC datetime64 for all leads, or one per lead (a Series indexed by lead_id)."""
    if isinstance(as_of, pd.Series):
        if not as_of.index.is_unique:
            raise ValueError("as_of: the Series index (lead_id) has duplicates")
        values = as_of.reindex(leads)
        if values.isna().any():
            missing = leads[values.isna().to_numpy()][:3].tolist()
            n = int(values.isna().sum())
            raise ValueError(f"as_of has no timestamp for {n} lead(s), e.g. {missing}")
        values = pd.to_datetime(values)
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        return values.to_numpy(dtype="datetime64[ns]")
    ts = pd.Timestamp(as_of)
    if pd.isna(ts):
        raise ValueError("as_of must be a timestamp, not missing")
    return _naive_utc(ts).as_unit("ns").to_datetime64()


def _times(s: pd.Series) -> np.ndarray:
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    elif not pd.api.types.is_datetime64_dtype(s.dtype):
        s = pd.to_datetime(s)
    return s.to_numpy(dtype="datetime64[ns]")


class EventsBefore(NamedTuple):
    """Events of known leads strictly before their as_of."""

    rows: np.ndarray  # row positions in the events frame
    lead_pos: np.ndarray  # position of each row's lead in the lead index
    at: np.ndarray  # datetime64[ns] of each row


def events_before(
    events: pd.DataFrame, leads: pd.Index, as_of: AsOf | np.datetime64 | np.ndarray
) -> EventsBefore:
    """The events of ``leads`` strictly before ``as_of`` (rows, lead positions, times).

    The one place where funnel-intelligence functions cut events in time: nothing at or
    after ``as_of`` passes. ``as_of`` may already be resolved by :func:`resolve_as_of`."""
    if not isinstance(as_of, (np.datetime64, np.ndarray)):
        as_of = resolve_as_of(as_of, leads)
    lead_pos = positions(events["lead_id"], leads)
    at = _times(events["at"])
    known = lead_pos >= 0
    if isinstance(as_of, np.ndarray):
        keep = known & (at < as_of[np.where(known, lead_pos, 0)])
    else:
        keep = known & (at < as_of)
    rows = np.flatnonzero(keep)
    return EventsBefore(rows, lead_pos[rows], at[rows])


def normalize_title(title: object) -> str:
    """Lower-case ASCII words separated by single spaces ("" when missing)."""
    if _normalize_title is not None:
        return _normalize_title(title)
    if not isinstance(title, str):
        return ""
    return re.sub(r"[^a-z0-9]+", " ", title.lower().replace(".", "")).strip()


def _department(title: object) -> str:
    if _parse_job_title is None or not isinstance(title, str):
        return "unknown"
    return _parse_job_title(title)[1]


# ---------------------------------------------------------------- the classifier
@dataclass(frozen=True)
class _PersonaModel:
    """Arrays compiled once per PersonaConfig (cached on it)."""

    names: np.ndarray
    vocab: pd.Index
    topic_loglik: np.ndarray  # (V, P), centred per topic
    log_prior: np.ndarray  # (P,)
    patterns: tuple[re.Pattern[str] | None, ...]
    departments: tuple[frozenset[str], ...]
    log_role: float
    log_department: float
    event_weight: float
    no_evidence: np.ndarray
    vocab_lookup: dict[str, int]
    title_cache: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the title cache: its keys are the raw job titles this process has
        seen (in training, the training leads'), which must not travel inside a registered
        model. It fills again as titles are scored."""
        return {**self.__dict__, "title_cache": {}}

    @classmethod
    def build(cls, cfg: PersonaConfig) -> _PersonaModel:
        vocab: list[str] = []
        for p in cfg.personas:
            vocab += [t for t in p.topics if t not in vocab]
        vocab += [t for t in cfg.general_topics if t not in vocab]
        s = cfg.scoring.motive_share
        lik = np.full((len(vocab), len(cfg.personas)), (1.0 - s) / len(vocab))
        for j, p in enumerate(cfg.personas):
            total = sum(p.topics.values())
            for t, w in p.topics.items():
                lik[vocab.index(t), j] += s * w / total
        loglik = np.log(lik)
        loglik -= loglik.mean(axis=1, keepdims=True)
        prior = np.array([p.prior for p in cfg.personas])
        return cls(
            names=np.array(cfg.names, dtype=object),
            vocab=pd.Index(vocab),
            topic_loglik=loglik,
            log_prior=np.log(prior / prior.sum()),
            patterns=tuple(
                re.compile("|".join(f"(?:{r})" for r in p.roles)) if p.roles else None
                for p in cfg.personas
            ),
            departments=tuple(frozenset(p.departments) for p in cfg.personas),
            log_role=math.log(cfg.scoring.role_likelihood_ratio),
            log_department=math.log(cfg.scoring.department_likelihood_ratio),
            event_weight=cfg.scoring.topic_event_weight,
            no_evidence=np.zeros(len(cfg.personas)),
            vocab_lookup={t: i for i, t in enumerate(vocab)},
        )

    def title_evidence(self, titles: pd.Series) -> np.ndarray:
        """(n, P) log-likelihood ratios from the job titles; each distinct title parsed once
        per process (a bounded cache on the compiled model)."""
        n_p = len(self.names)
        if len(titles) <= SMALL:
            return np.array([self._title_row(t) for t in titles]).reshape(len(titles), n_p)
        codes, uniques = pd.factorize(titles, use_na_sentinel=True)
        ev = np.zeros((len(uniques) + 1, n_p))  # the last row serves missing titles
        for i, title in enumerate(uniques):
            ev[i] = self._title_row(title)
        return ev[codes]

    def _title_row(self, title: object) -> np.ndarray:
        if not isinstance(title, str):
            return self.no_evidence
        row = self.title_cache.get(title)
        if row is not None:
            return row
        row = self.no_evidence
        text = normalize_title(title)
        if text:
            hit = [rx is not None and rx.search(text) is not None for rx in self.patterns]
            if any(hit):
                row = np.where(hit, self.log_role, 0.0)
            elif self.log_department > 0 and any(self.departments):
                dep = _department(title)
                row = np.array([self.log_department if dep in d else 0.0 for d in self.departments])
        if len(self.title_cache) >= 100_000:
            self.title_cache.clear()
        self.title_cache[title] = row
        return row

    def topic_counts(self, events: pd.DataFrame, leads: pd.Index, as_of: AsOf) -> np.ndarray:
        """(n, V) counts of topical events before as_of per lead and known topic."""
        n, v = len(leads), len(self.vocab)
        if len(events) == 0 or "topic" not in events.columns:
            return np.zeros((n, v))
        rows, lead_pos, _ = events_before(events, leads, as_of)
        topic_pos = positions(events["topic"], self.vocab, self.vocab_lookup)[rows]
        ok = topic_pos >= 0
        flat = lead_pos[ok] * v + topic_pos[ok]
        return np.bincount(flat, minlength=n * v).reshape(n, v).astype(float)

    def posterior(self, titles: pd.Series, counts: np.ndarray) -> np.ndarray:
        logit = (
            self.log_prior
            + self.title_evidence(titles)
            + self.event_weight * (counts @ self.topic_loglik)
        )
        logit -= logit.max(axis=1, keepdims=True)
        p = np.exp(logit)
        return p / p.sum(axis=1, keepdims=True)


def assign_personas(
    leads: pd.DataFrame,
    events: pd.DataFrame,
    as_of: AsOf,
    definitions: PersonaConfig | None = None,
    probabilities: bool = False,
) -> pd.DataFrame:
    """Persona and persona_confidence per lead (index lead_id, in the order of ``leads``).

    Uses the job title and the topics of events strictly before ``as_of`` (a Timestamp or a
    Series of per-lead timestamps indexed by lead_id). With ``probabilities=True`` the
    posterior of every persona is added as ``p_<name>`` columns."""
    cfg = definitions if definitions is not None else _default_personas()
    model = cfg._compiled
    ids = lead_index(leads)
    titles = (
        leads["job_title"]
        if "job_title" in leads.columns
        else pd.Series([None] * len(ids), dtype=object)
    )
    post = model.posterior(titles, model.topic_counts(events, ids, as_of))
    best = post.argmax(axis=1)
    out = pd.DataFrame(
        {
            "persona": model.names[best],
            "persona_confidence": post[np.arange(len(ids)), best],
        },
        index=ids,
    )
    if probabilities:
        for j, name in enumerate(model.names):
            out[f"p_{name}"] = post[:, j]
    return out


_DEFAULT: list[PersonaConfig] = []


def _default_personas() -> PersonaConfig:
    """The shipped definitions, read once per process."""
    if not _DEFAULT:
        _DEFAULT.append(load_personas())
    return _DEFAULT[0]


# ---------------------------------------------------------------- discovery
# Words that say how senior someone is, not what they do: no persona signal.
_LEVEL_WORDS = frozenset(
    "of and the for in to at m w d f senior sr junior jr lead head vp vice president director "
    "manager chief officer intern working student team principal staff associate assistant "
    "global emea dach germany europe group executive".split()
)


def discover_personas(
    leads: pd.DataFrame,
    events: pd.DataFrame,
    as_of: AsOf,
    n_clusters: int = 3,
    seed: int = 0,
    min_topic_events: int = 3,
    role_weight: float = 0.5,
    top_topics: int = 4,
    top_roles: int = 6,
) -> tuple[pd.DataFrame, str]:
    """Cluster leads by what they read and who they are; propose persona YAML.

    Features per lead: TF-IDF of topic counts before ``as_of`` (sub-linear, l2-normalised)
    and, weighted by ``role_weight``, a one-hot department from ``features.jobtitle`` plus
    the most frequent job-title words. KMeans is fitted on leads with at least
    ``min_topic_events`` topical events and assigns every lead to its nearest centre.

    Returns ``(assignments, yaml_text)``: assignments is indexed by lead_id with a
    ``cluster`` column (``cluster_1`` is the largest); yaml_text follows the schema of
    ``personas.yaml`` (topics with the highest lift per cluster as motives, title words and
    departments over-represented in the cluster as roles) and loads with
    ``parse_personas``. Rename the clusters before using it."""
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import TfidfTransformer

    ids = lead_index(leads)
    n = len(ids)
    rows, lead_pos, _ = events_before(events, ids, as_of)
    topic_col = events["topic"].iloc[rows] if "topic" in events.columns else pd.Series([])
    has_topic = topic_col.notna().to_numpy()
    topic_codes, topics = pd.factorize(topic_col[has_topic].astype(str), sort=True)
    n_t = len(topics)
    if n_t == 0:
        raise ValueError("discover_personas: no events with a topic before as_of")
    counts = np.bincount(lead_pos[has_topic] * n_t + topic_codes, minlength=n * n_t).reshape(n, n_t)
    topic_x = TfidfTransformer(sublinear_tf=True).fit_transform(counts).toarray()

    titles = leads["job_title"] if "job_title" in leads.columns else pd.Series([None] * n)
    norm = np.array([normalize_title(t) for t in titles], dtype=object)
    words = pd.Series([sorted(set(t.split()) - _LEVEL_WORDS) for t in norm], dtype=object)
    word_counts = words.explode().dropna().value_counts()
    vocab = word_counts[word_counts >= max(5, 0.005 * n)].index[:200]
    word_x = np.zeros((n, len(vocab)))
    word_pos = {w: i for i, w in enumerate(vocab)}
    for i, ws in enumerate(words):
        for w in ws:
            if w in word_pos:
                word_x[i, word_pos[w]] = 1.0
    deps = np.array([_department(t) for t in titles], dtype=object)
    dep_names = sorted(set(deps) - {"unknown", "other"})
    dep_x = (deps[:, None] == np.array(dep_names, dtype=object)[None, :]).astype(float)
    role_x = np.hstack([word_x, dep_x])
    norms = np.linalg.norm(role_x, axis=1, keepdims=True)
    role_x = np.divide(role_x, norms, out=np.zeros_like(role_x), where=norms > 0)
    x = np.hstack([topic_x, role_weight * role_x])

    fit_rows = counts.sum(axis=1) >= min_topic_events
    if fit_rows.sum() < n_clusters:
        raise ValueError(
            f"discover_personas: only {int(fit_rows.sum())} leads have {min_topic_events}+ "
            f"topical events; need at least n_clusters={n_clusters}"
        )
    km = KMeans(n_clusters=n_clusters, random_state=seed, n_init=10).fit(x[fit_rows])
    raw_label = km.predict(x)
    # name clusters by size (cluster_1 = largest among the fitted leads)
    order = np.argsort(-np.bincount(km.labels_, minlength=n_clusters), kind="stable")
    rank = np.empty(n_clusters, dtype=int)
    rank[order] = np.arange(n_clusters)
    label = rank[raw_label]
    names = [f"cluster_{k + 1}" for k in range(n_clusters)]
    assignments = pd.DataFrame({"cluster": np.array(names, dtype=object)[label]}, index=ids)

    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    overall_topic = share[fit_rows].mean(axis=0)
    overall_word = word_x.mean(axis=0)
    overall_dep = dep_x.mean(axis=0)
    personas: list[dict[str, Any]] = []
    chosen_topics: set[str] = set()
    for k, name in enumerate(names):
        members = label == k
        fitted = members & fit_rows
        c_topic = share[fitted].mean(axis=0) if fitted.any() else overall_topic
        lift = c_topic / np.maximum(overall_topic, 1e-12)
        top = [i for i in np.argsort(-lift) if lift[i] > 1.25][:top_topics] or [int(lift.argmax())]
        weights = c_topic[top] / c_topic[top].max()
        topic_map = {
            str(topics[i]): round(float(w), 2) or 0.01 for i, w in zip(top, weights, strict=True)
        }
        chosen_topics.update(topic_map)
        c_word = word_x[members].mean(axis=0) if members.any() else overall_word
        w_lift = c_word / np.maximum(overall_word, 1e-12)
        good = [i for i in np.argsort(-w_lift) if w_lift[i] >= 1.5 and c_word[i] >= 0.03]
        roles = [rf"\b{re.escape(str(vocab[i]))}\b" for i in good[:top_roles]]
        c_dep = dep_x[members].mean(axis=0) if members.any() else overall_dep
        d_lift = c_dep / np.maximum(overall_dep, 1e-12)
        departments = [
            dep_names[i] for i in np.argsort(-c_dep) if c_dep[i] >= 0.1 and d_lift[i] >= 1.5
        ]
        top_words = ", ".join(str(vocab[i]) for i in good[:3]) or "-"
        personas.append(
            {
                "name": name,
                "description": (
                    f"Proposed from data: {int(members.sum())} leads; reads most "
                    f"{', '.join(topic_map)}; title words {top_words}. Review and rename."
                ),
                "prior": round(max(float(members.mean()), 0.001), 3),
                "topics": topic_map,
                "roles": roles,
                "departments": departments,
            }
        )
    # a topic chosen by no cluster is general; clusters may share a motive topic
    general = [str(t) for t in topics if str(t) not in chosen_topics]
    doc = {
        "version": 1,
        "scoring": PersonaScoring().model_dump(),
        "general_topics": general,
        "personas": personas,
    }
    header = (
        f"# Personas proposed by discover_personas (KMeans, {n_clusters} clusters, seed {seed})\n"
        f"# from {int(fit_rows.sum())} leads with {min_topic_events}+ topical events.\n"
        "# Review the topics and roles, rename the clusters, then use it with load_personas.\n"
    )
    text = header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    parse_personas(text, source="discover_personas output")  # the proposal must load
    return assignments, text
