"""Each idea lives once (issue 15): the word lists of the domain are written out only in
crm/vocabulary.py, the ceiling AUC and the UTC normalisation of moments have one
definition, a LeadScoringModel is unwrapped from a pyfunc in one place, and no private API
of another library is used. A search of the tree, not a promise."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from architecture.sizes import PACKAGES
from crm.vocabulary import (
    CONTENT_PHASES,
    EVENT_TYPES,
    LIFECYCLE_STAGES,
    NO_WORDS,
    QUADRANTS,
    STAGES,
    YES_WORDS,
)

ROOT = Path(__file__).resolve().parents[2]
VOCABULARY = "crm/vocabulary.py"


def sources() -> dict[str, str]:
    return {
        str(p.relative_to(ROOT)): p.read_text()
        for package in PACKAGES
        for p in sorted((ROOT / package).rglob("*.py"))
    }


def literal_word_sets(text: str) -> list[frozenset[str]]:
    """The string sets written out as tuple, list or set literals (``frozenset({...})``
    and ``Literal[...]`` included). Tables keyed by the words (a phrase per event type, a
    label per quadrant) are data about the words, not another list of them."""
    found = []
    for node in ast.walk(ast.parse(text)):
        elements = None
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            elements = node.elts
        if elements and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in elements
        ):
            found.append(frozenset(e.value for e in elements))
    return found


def homes(covers) -> list[str]:
    return sorted(
        path for path, text in sources().items() if any(covers(s) for s in literal_word_sets(text))
    )


def test_the_domain_words_are_written_out_once():
    lists = {
        "funnel stages": lambda s: set(STAGES) <= s,
        "lifecycle stages": lambda s: set(LIFECYCLE_STAGES) <= s,
        "quadrant names": lambda s: set(QUADRANTS) <= s,
        "content phases": lambda s: set(CONTENT_PHASES) <= s,
        "event types": lambda s: set(EVENT_TYPES) <= s,
        "yes words": lambda s: {"yes", "true", "y"} <= s and s <= YES_WORDS | NO_WORDS,
        "no words": lambda s: {"no", "false", "n"} <= s and s <= YES_WORDS | NO_WORDS,
    }
    written = {name: homes(covers) for name, covers in lists.items()}
    assert written == {name: [VOCABULARY] for name in lists}


def definitions(pattern: str) -> list[str]:
    rx = re.compile(pattern, re.M)
    return sorted(f"{path}" for path, text in sources().items() if rx.search(text))


def test_one_definition_each():
    assert len(definitions(r"^\s*def ceiling_auc\b")) == 1, definitions(r"^\s*def ceiling_auc\b")
    utc = definitions(r"^\s*def \w*(utc_naive|naive_utc)\w*\(")
    assert len(utc) == 1, utc
    assert definitions(r"unwrap_python_model\(") == ["scoring/registry.py"]


#: Private modules of BentoML we still reach into, each a workaround with no public route
#: (BentoML 1.4.40); the test fails if one goes away (drop it here) or a new one appears.
BENTOML_WORKAROUNDS = {
    # BentoML empties $BENTOML_HOME/prometheus_multiproc_dir whenever a server starts,
    # freezing the metrics of any other server on the machine; its own pytest plugin sets
    # the folder the same way.
    "serving/bentoml_serve.py": "bentoml._internal.configuration.containers",
    # BentoML's HTTP metrics middlewares label requests by raw path (unbounded label
    # cardinality from unknown paths); they are outside every middleware of ours.
    "serving/metrics.py": "bentoml._internal.server.http",
}


def test_no_private_api_of_another_library():
    libraries = r"(sklearn|pandas|numpy|mlflow|bentoml|lightgbm|pyspark|pydantic|typer|click)"
    private = re.compile(
        rf"^\s*(?:from|import)\s+({libraries}[\w.]*\._\w+[\w.]*)"  # a private module
        rf"|^\s*from\s+({libraries}[\w.]*)\s+import\s+\(?\s*(_[A-Za-z]\w*)",  # a private name
        re.M,
    )
    found = {}
    for path, text in sources().items():
        for m in private.finditer(text):
            found[path] = m.group(1) or f"{m.group(3)}.{m.group(5)}"
    assert found == BENTOML_WORKAROUNDS
    assert definitions(r"_SigmoidCalibration") == []
