"""``bentoml serve`` with a Prometheus folder of its own.

BentoML keeps a server's multiprocess metrics in ``$BENTOML_HOME/prometheus_multiproc_dir``
and empties that folder whenever a server starts. A second server on the same machine
(the same ``BENTOML_HOME``: two models, a canary, or the test suite's servers) so wiped the
first one's metric files, and the first server's ``/metrics`` froze: requests were still
answered but no longer counted. Every server that ``leadscore`` starts gets a fresh folder,
removed when the server exits.

Run as ``python -m serving.bentoml_serve TARGET --host H --port P`` (the arguments of
``bentoml serve``); ``serving.process.start_server`` does.
"""

from __future__ import annotations

import shutil
import sys
import tempfile


def main(argv: list[str]) -> None:
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml_cli.cli import cli

    folder = tempfile.mkdtemp(prefix="leadscore-metrics-")
    BentoMLContainer.prometheus_multiproc_dir.set(folder)
    try:
        cli.main(args=["serve", *argv], prog_name="bentoml")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
