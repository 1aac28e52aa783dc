"""The compiled loop of :mod:`scoring.reasons`: per lead, which features' contributions
become its reasons (numba, compiled on first use and cached beside this file).

:func:`pick` gives, per row of contributions, the positions the stable descending sort
(``np.argsort(-c, kind="stable")``) puts first and last: the ``n`` largest positive
contributions (ties: the lower position first) and the ``n`` most negative ones read from
the end of that order (ties: the higher position first; NaN sorts last in it, so each NaN
of the row takes one of those ``n`` places), -1 where fewer are kept. A selection of a few
per row, where the sort ordered all ~60.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def pick(c, n):  # noqa: ANN001, ANN201
    """(rows, 2n) positions into each row of ``c`` (rows x features, float64): the kept
    up-pushing reasons, largest first, then the kept down-pushing ones, most negative
    first; -1 for places left empty (module docstring). One pass per row, each value
    compared with the few kept so far."""
    m, f = c.shape
    out = np.full((m, 2 * n), -1, dtype=np.intp)
    up_v = np.empty(n)
    down_v = np.empty(n)
    up_j = np.empty(n, dtype=np.intp)
    down_j = np.empty(n, dtype=np.intp)
    for r in range(m):
        row = c[r]
        n_up = n_down = nan = 0
        for j in range(f):
            v = row[j]
            if v > 0.0:  # kept largest first; an equal value of a later position after
                if n_up == n and v <= up_v[n - 1]:
                    continue
                k = min(n_up, n - 1)
                while k > 0 and up_v[k - 1] < v:
                    up_v[k], up_j[k] = up_v[k - 1], up_j[k - 1]
                    k -= 1
                up_v[k], up_j[k] = v, j
                n_up = min(n_up + 1, n)
            elif v < 0.0:  # most negative first; an equal value of a later position before
                if n_down == n and v > down_v[n - 1]:
                    continue
                k = min(n_down, n - 1)
                while k > 0 and down_v[k - 1] >= v:
                    down_v[k], down_j[k] = down_v[k - 1], down_j[k - 1]
                    k -= 1
                down_v[k], down_j[k] = v, j
                n_down = min(n_down + 1, n)
            elif v != v:
                nan += 1
        for k in range(n_up):
            out[r, k] = up_j[k]
        for k in range(min(n_down, max(n - nan, 0))):  # each NaN takes a place at the end
            out[r, n + k] = down_j[k]
    return out


__all__ = ["pick"]
