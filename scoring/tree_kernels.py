"""The compiled loops of :mod:`scoring.trees`: every split of a LightGBM tree decided for a
row exactly as ``Tree::NumericalDecision`` / ``Tree::CategoricalDecision`` decide it, and
the trees' values added in tree order (numba, compiled on first use and cached beside
this file; ~1 s the first time on a new machine, then read from the cache).

A feature value is read from the block ``M`` (rows x columns, float64) at column
``cols[feature]``; LightGBM's dense-row reader turns |x| <= 1e-35 into 0.0, and a split
whose missing type is not NaN reads NaN as 0.0. Nodes and leaves are numbered as
``scoring.trees.TreeEnsemble`` numbers them (a child >= 0 is a node, ``~leaf`` a leaf).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: LightGBM's kZeroThreshold (a float literal, 1e-35f, widened to double)
K_ZERO = float(np.float32(1e-35))
_INT_MIN = -(2.0**31)
_INT_END = 2.0**31


@njit(cache=True, nogil=True, inline="always")
def _goes_left(v, kind, thr, default_left, cat_base, cat_flat, cat_width):  # noqa: ANN001, ANN202
    """One split's decision for the value ``v`` (kind: 0 None, 1 Zero, 2 NaN, 3 categorical)."""
    if abs(v) <= K_ZERO:
        v = 0.0
    if kind == 3:  # static_cast<int>: truncation; NaN and out-of-range give INT_MIN (x86)
        code = math.trunc(v) if (v > _INT_MIN - 1.0 and v < _INT_END) else -1.0
        if code >= 0.0 and code < cat_width:
            return cat_flat[cat_base + int(code)]
        return cat_flat[cat_base + cat_width]  # negative, NaN, unseen: the "not found" column
    if kind == 2:  # NaN goes the default way
        if math.isnan(v):
            return default_left
        return v <= thr
    if math.isnan(v):  # None and Zero read NaN as 0.0
        v = 0.0
    if kind == 1 and v == 0.0:  # Zero: 0 goes the default way
        return default_left
    return v <= thr


@njit(cache=True, nogil=True)
def _node_bits(x, kind, thr, default_left, cat_base, cat_flat, cat_width, bit, out):  # noqa: ANN001, ANN202, PLR0913
    """``out[r] |= bit`` for every row whose value ``x[r]`` goes left at one split; a loop
    per kind, over contiguous values (feature-major)."""
    n = x.shape[0]
    if kind == 3:
        for r in range(n):
            if _goes_left(x[r], 3, thr, default_left, cat_base, cat_flat, cat_width):
                out[r] |= bit
        return
    dl = np.uint8(bit if default_left else 0)
    for r in range(n):  # branch-free: a select per case, the bit or 0
        v = x[r]
        missing = v != v
        zero = missing | (abs(v) <= K_ZERO)  # None and Zero read NaN as 0.0
        if kind == 0:
            b = bit if (0.0 if zero else v) <= thr else np.uint8(0)
        elif kind == 1:  # Zero: 0 (and NaN) go the default way
            b = dl if zero else (bit if v <= thr else np.uint8(0))
        else:  # NaN goes the default way; tiny values are 0.0
            b = dl if missing else (bit if (0.0 if zero else v) <= thr else np.uint8(0))
        out[r] |= b


@njit(cache=True, nogil=True)
def pattern_raw(MT, cols, feat, kind, thr, default_left, cat_base, cat_flat, cat_width,  # noqa: ANN001, ANN201, PLR0913
                code_nodes, code_n, value_by_code, codes):  # fmt: skip
    """Shallow trees: each tree's decision pattern per row (bit i = its i-th node goes
    left) into ``codes`` (trees x rows), and the raw scores: the pattern's leaf value of
    each tree, added in tree order from the first tree's. ``MT`` is the block transposed
    (columns x rows, contiguous rows), so a split reads one contiguous column."""
    n = MT.shape[1]
    raw = np.zeros(n)
    for t in range(code_nodes.shape[0]):
        row = codes[t]
        row[:] = 0
        for i in range(code_n[t]):
            g = code_nodes[t, i]
            _node_bits(MT[cols[feat[g]]], kind[g], thr[g], default_left[g], cat_base[g],
                       cat_flat, cat_width, np.uint8(1 << i), row)  # fmt: skip
        values = value_by_code[t]
        if t == 0:
            for r in range(n):
                raw[r] = values[row[r]]
        else:
            for r in range(n):
                raw[r] += values[row[r]]
    return raw


@njit(cache=True, nogil=True)
def pattern_raw_rows(M, cols, feat, kind, thr, default_left, cat_base, cat_flat, cat_width,  # noqa: ANN001, ANN201, PLR0913
                     code_nodes, code_n, value_by_code, codes):  # fmt: skip
    """:func:`pattern_raw` row by row, on ``M`` itself (rows x columns): for a few rows,
    where one pass per split would cost more than it saves."""
    n = M.shape[0]
    raw = np.empty(n)
    for r in range(n):
        total = 0.0
        for t in range(code_nodes.shape[0]):
            code = 0
            for i in range(code_n[t]):
                g = code_nodes[t, i]
                if _goes_left(M[r, cols[feat[g]]], kind[g], thr[g], default_left[g],
                              cat_base[g], cat_flat, cat_width):  # fmt: skip
                    code |= 1 << i
            codes[t, r] = code
            value = value_by_code[t, code]
            total = value if t == 0 else total + value
        raw[r] = total
    return raw


@njit(cache=True, nogil=True)
def walk_raw(M, cols, feat, kind, thr, default_left, cat_base, cat_flat, cat_width,  # noqa: ANN001, ANN201, PLR0913
             left, right, roots, leaf_value):  # fmt: skip
    """Any trees: each row walked down every tree to its leaf, the leaf values added in
    tree order from the first tree's."""
    n = M.shape[0]
    raw = np.empty(n)
    for r in range(n):
        total = 0.0
        for t in range(roots.shape[0]):
            node = roots[t]
            while node >= 0:
                v = M[r, cols[feat[node]]]
                if _goes_left(v, kind[node], thr[node], default_left[node], cat_base[node],
                              cat_flat, cat_width):  # fmt: skip
                    node = left[node]
                else:
                    node = right[node]
            value = leaf_value[~node]
            total = value if t == 0 else total + value
        raw[r] = total
    return raw


@njit(cache=True, nogil=True)
def shap_sums(starts, flat, slot_begin, slot_feat, bias, n_features):  # noqa: ANN001, ANN201
    """Per row, each feature's SHAP value: the additions of every tree's decision pattern
    (``flat[starts[t, r] + i]``, the i-th slot of tree t, on feature ``slot_feat[slot_begin[t]
    + i]``) summed from 0.0 in tree order, and ``bias`` in the last column. The additions
    to one feature come in the order of its levels (``TreeEnsemble._shap_init``: tree
    order, then j-th addition in the tree), so the sums are the level-by-level ones."""
    n_trees, n = starts.shape
    out = np.zeros((n, n_features + 1))
    for r in range(n):
        row = out[r]
        for t in range(n_trees):
            base = starts[t, r] - slot_begin[t]
            for s in range(slot_begin[t], slot_begin[t + 1]):
                row[slot_feat[s]] += flat[base + s]
        row[n_features] = bias
    return out


__all__ = ["K_ZERO", "pattern_raw", "pattern_raw_rows", "shap_sums", "walk_raw"]
