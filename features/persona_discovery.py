"""Proposing persona definitions from data, for a data scientist to review.

``discover_personas`` clusters leads by what they read and who they are, and writes the
clusters as persona YAML of the ``personas.yaml`` schema (``features.personas``). The steps:

1. topic profile per lead: TF-IDF of its topic counts before ``as_of``;
2. role profile per lead: the most frequent job-title words and the department from
   ``features.jobtitle``, one-hot, l2-normalised;
3. KMeans on the leads with enough topical events; every lead gets its nearest centre and
   clusters are named by size (``cluster_1`` is the largest);
4. each cluster described: the topics with the highest lift become its motives, title
   words and departments over-represented in it its roles;
5. the proposal as YAML text, checked to load with ``parse_personas``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import yaml

from features.encoding import lead_index
from features.personas import PersonaScoring, department_of, normalize_title, parse_personas
from features.pointintime import AsOf, Moment, events_before

# Words that say how senior someone is, not what they do: no persona signal.
_LEVEL_WORDS = frozenset(
    "of and the for in to at m w d f senior sr junior jr lead head vp vice president director "
    "manager chief officer intern working student team principal staff associate assistant "
    "global emea dach germany europe group executive".split()
)


@dataclass(frozen=True)
class _Profiles:
    """Per-lead inputs of the clustering and of the cluster descriptions."""

    counts: np.ndarray  # (n, topics) topical events before as_of
    topics: pd.Index  # topic names (sorted)
    words: pd.Index  # the job-title words kept as features
    word_x: np.ndarray  # (n, words) 0/1
    departments: list[str]  # department names (not unknown / other)
    dep_x: np.ndarray  # (n, departments) 0/1


def _topic_counts(
    leads: pd.DataFrame, events: pd.DataFrame, as_of: Moment | AsOf
) -> tuple[np.ndarray, pd.Index]:
    """(n, topics) counts of topical events strictly before ``as_of``, and the topics."""
    ids = lead_index(leads)
    n = len(ids)
    rows, lead_pos, _, _ = events_before(events, ids, as_of)
    topic_col = events["topic"].iloc[rows] if "topic" in events.columns else pd.Series([])
    has_topic = topic_col.notna().to_numpy()
    topic_codes, topics = pd.factorize(topic_col[has_topic].astype(str), sort=True)
    n_t = len(topics)
    if n_t == 0:
        raise ValueError("discover_personas: no events with a topic before as_of")
    flat = lead_pos[has_topic] * n_t + topic_codes
    return np.bincount(flat, minlength=n * n_t).reshape(n, n_t), topics


def _role_profiles(leads: pd.DataFrame) -> tuple[pd.Index, np.ndarray, list[str], np.ndarray]:
    """Job-title words (those used by at least 5 leads or 0.5%, at most 200) and departments,
    one-hot per lead."""
    n = len(leads)
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
    deps = np.array([department_of(t) for t in titles], dtype=object)
    dep_names = sorted(set(deps) - {"unknown", "other"})
    dep_x = (deps[:, None] == np.array(dep_names, dtype=object)[None, :]).astype(float)
    return vocab, word_x, dep_names, dep_x


def _features(profiles: _Profiles, role_weight: float) -> np.ndarray:
    """The clustering input: topic TF-IDF beside the role one-hots (l2-normalised, weighted)."""
    from sklearn.feature_extraction.text import TfidfTransformer

    topic_x = TfidfTransformer(sublinear_tf=True).fit_transform(profiles.counts).toarray()
    role_x = np.hstack([profiles.word_x, profiles.dep_x])
    norms = np.linalg.norm(role_x, axis=1, keepdims=True)
    role_x = np.divide(role_x, norms, out=np.zeros_like(role_x), where=norms > 0)
    return np.hstack([topic_x, role_weight * role_x])


def _cluster(x: np.ndarray, fit_rows: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """Cluster number per lead, 0 = the largest cluster among the fitted leads."""
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=n_clusters, random_state=seed, n_init=10).fit(x[fit_rows])
    raw_label = km.predict(x)
    order = np.argsort(-np.bincount(km.labels_, minlength=n_clusters), kind="stable")
    rank = np.empty(n_clusters, dtype=int)
    rank[order] = np.arange(n_clusters)
    return rank[raw_label]


def _describe(
    profiles: _Profiles,
    members: np.ndarray,
    fit_rows: np.ndarray,
    name: str,
    top_topics: int,
    top_roles: int,
) -> dict[str, Any]:
    """One cluster as a persona definition (a plain dict of the YAML schema)."""
    p = profiles
    share = p.counts / np.maximum(p.counts.sum(axis=1, keepdims=True), 1)
    overall_topic = share[fit_rows].mean(axis=0)
    fitted = members & fit_rows
    c_topic = share[fitted].mean(axis=0) if fitted.any() else overall_topic
    lift = c_topic / np.maximum(overall_topic, 1e-12)
    top = [i for i in np.argsort(-lift) if lift[i] > 1.25][:top_topics] or [int(lift.argmax())]
    weights = c_topic[top] / c_topic[top].max()
    topic_map = {
        str(p.topics[i]): round(float(w), 2) or 0.01 for i, w in zip(top, weights, strict=True)
    }
    overall_word = p.word_x.mean(axis=0)
    c_word = p.word_x[members].mean(axis=0) if members.any() else overall_word
    w_lift = c_word / np.maximum(overall_word, 1e-12)
    good = [i for i in np.argsort(-w_lift) if w_lift[i] >= 1.5 and c_word[i] >= 0.03]
    overall_dep = p.dep_x.mean(axis=0)
    c_dep = p.dep_x[members].mean(axis=0) if members.any() else overall_dep
    d_lift = c_dep / np.maximum(overall_dep, 1e-12)
    top_words = ", ".join(str(p.words[i]) for i in good[:3]) or "-"
    return {
        "name": name,
        "description": (
            f"Proposed from data: {int(members.sum())} leads; reads most "
            f"{', '.join(topic_map)}; title words {top_words}. Review and rename."
        ),
        "prior": round(max(float(members.mean()), 0.001), 3),
        "topics": topic_map,
        "roles": [rf"\b{re.escape(str(p.words[i]))}\b" for i in good[:top_roles]],
        "departments": [
            p.departments[i] for i in np.argsort(-c_dep) if c_dep[i] >= 0.1 and d_lift[i] >= 1.5
        ],
    }


def _proposal_yaml(personas: list[dict[str, Any]], topics: pd.Index, header: str) -> str:
    """The persona YAML text; a topic chosen by no cluster is general (clusters may share a
    motive topic). The proposal must load."""
    chosen = {t for p in personas for t in p["topics"]}
    doc = {
        "version": 1,
        "scoring": PersonaScoring().model_dump(),
        "general_topics": [str(t) for t in topics if str(t) not in chosen],
        "personas": personas,
    }
    text = header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    parse_personas(text, source="discover_personas output")
    return text


def discover_personas(
    leads: pd.DataFrame,
    events: pd.DataFrame,
    as_of: Moment | AsOf,
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
    counts, topics = _topic_counts(leads, events, as_of)
    profiles = _Profiles(counts, topics, *_role_profiles(leads))
    x = _features(profiles, role_weight)
    fit_rows = counts.sum(axis=1) >= min_topic_events
    if fit_rows.sum() < n_clusters:
        raise ValueError(
            f"discover_personas: only {int(fit_rows.sum())} leads have {min_topic_events}+ "
            f"topical events; need at least n_clusters={n_clusters}"
        )
    label = _cluster(x, fit_rows, n_clusters, seed)
    names = [f"cluster_{k + 1}" for k in range(n_clusters)]
    assignments = pd.DataFrame(
        {"cluster": np.array(names, dtype=object)[label]}, index=lead_index(leads)
    )
    personas = [
        _describe(profiles, label == k, fit_rows, name, top_topics, top_roles)
        for k, name in enumerate(names)
    ]
    header = (
        f"# Personas proposed by discover_personas (KMeans, {n_clusters} clusters, seed {seed})\n"
        f"# from {int(fit_rows.sum())} leads with {min_topic_events}+ topical events.\n"
        "# Review the topics and roles, rename the clusters, then use it with load_personas.\n"
    )
    return assignments, _proposal_yaml(personas, topics, header)
