"""Property-based: schemathesis generates requests from /docs.json (>= 500 in all); no
answer is a 5xx and every answer matches the published schema. Runs the schemathesis CLI
against the session's real server (its pytest plugin does not load under pytest 9)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from serving_helpers import API_TOKEN

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 170  # 3 operations -> 510 generated cases


def test_generated_requests_never_5xx_and_match_the_schema(api_server):
    st = Path(sys.executable).parent / "schemathesis"
    res = subprocess.run(
        [
            str(st),
            "run",
            f"{api_server.url}/docs.json",
            "--url",
            api_server.url,
            "--header",
            f"Authorization: Bearer {API_TOKEN}",
            "--include-path-regex",
            "^/(score|outcomes|model)$",
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance",
            "--max-examples",
            str(EXAMPLES_PER_OPERATION),
            "--phases",
            "examples,fuzzing",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
