"""Charts as PNGs: a matplotlib ``Figure`` drawn on directly (no pyplot, no backend
switch: the figure gets its own Agg canvas), embedded in a page as base64 or saved as a
file (the model card's and the drift report's charts)."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any, Literal

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from reports.html import esc


def figure(
    width: float, height: float, layout: Literal["constrained"] | None = "constrained"
) -> Figure:
    """A figure of ``width`` x ``height`` inches at 100 dpi, on its own Agg canvas; laid
    out by matplotlib's constrained layout, or (``layout=None``) by ``save_png``'s tight
    layout."""
    fig = Figure(figsize=(width, height), dpi=100, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def embedded_img(fig: Figure, alt: str) -> str:
    """An ``<img>`` element carrying the figure as a base64 PNG on a white background."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img class="chart" src="data:image/png;base64,{data}" alt="{esc(alt)}">'


def save_png(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Lay the figure out tightly and write it to ``path`` as a PNG."""
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    return path


def style_axes(ax: Any) -> None:
    """No top or right frame line, small tick labels."""
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=9)
