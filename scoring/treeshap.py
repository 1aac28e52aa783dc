"""LightGBM's TreeSHAP for one tree and one decision pattern, as ``scoring.trees`` replays it.

Given the decision at every internal node of a tree (the "pattern"), LightGBM's TreeSHAP
is a fixed sequence of floating-point operations; this port makes the same operations in
the same order, so the additions to ``phi`` it lists are LightGBM's bit for bit.
``TreeEnsemble`` computes them once per (tree, pattern) and replays them per row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scoring.trees import TreeEnsemble


# A line-by-line port of LightGBM's TreeSHAP (src/io/tree.cpp: ExtendPath, UnwindPath,
# UnwoundPathSum, TreeSHAP); path elements are [feature, zero_fraction, one_fraction,
# pweight]. The operations and their order are LightGBM's, so the results are identical.
def _extend_path(path: list[list], d: int, z: float, o: float, f: int) -> None:
    path[d] = [f, z, o, 1.0 if d == 0 else 0.0]
    for i in range(d - 1, -1, -1):
        path[i + 1][3] += o * path[i][3] * (i + 1) / float(d + 1)
        path[i][3] = z * path[i][3] * (d - i) / float(d + 1)


def _unwind_path(path: list[list], d: int, k: int) -> None:
    o = path[k][2]
    z = path[k][1]
    nxt = path[d][3]
    for i in range(d - 1, -1, -1):
        if o != 0:
            tmp = path[i][3]
            path[i][3] = nxt * (d + 1) / float((i + 1) * o)
            nxt = tmp - path[i][3] * z * (d - i) / float(d + 1)
        else:
            path[i][3] = (path[i][3] * (d + 1)) / float(z * (d - i))
    for i in range(k, d):
        path[i][0], path[i][1], path[i][2] = path[i + 1][0], path[i + 1][1], path[i + 1][2]


def _unwound_path_sum(path: list[list], d: int, k: int) -> float:
    o = path[k][2]
    z = path[k][1]
    nxt = path[d][3]
    total = 0.0
    for i in range(d - 1, -1, -1):
        if o != 0:
            tmp = nxt * (d + 1) / float((i + 1) * o)
            total += tmp
            nxt = path[i][3] - tmp * z * ((d - i) / float(d + 1))
        else:
            total += (path[i][3] / z) / ((d - i) / float(d + 1))
    return total


def tree_shap(ens: TreeEnsemble, root: int, go_left: dict[int, bool]) -> list[tuple[int, float]]:
    """The additions ``phi[feature] += delta`` TreeSHAP makes for one tree, in order."""
    out: list[tuple[int, float]] = []
    if root < 0:
        return out

    def rec(node: int, d: int, parent: list[list], pz: float, po: float, pf: int) -> None:
        path = [list(e) for e in parent[:d]] + [None]
        _extend_path(path, d, pz, po, pf)
        if node < 0:
            value = float(ens.leaf_value[~node])
            for i in range(1, d + 1):
                w = _unwound_path_sum(path, d, i)
                el = path[i]
                out.append((el[0], w * (el[2] - el[1]) * value))
            return
        left, right = int(ens.left[node]), int(ens.right[node])
        hot, cold = (left, right) if go_left[node] else (right, left)
        w = float(_data_count(ens, node))
        hot_z = _data_count(ens, hot) / w
        cold_z = _data_count(ens, cold) / w
        inc_z = 1.0
        inc_o = 1.0
        f = int(ens.feat[node])
        k = 0
        while k <= d:
            if path[k][0] == f:
                break
            k += 1
        if k != d + 1:
            inc_z = path[k][1]
            inc_o = path[k][2]
            _unwind_path(path, d, k)
            d -= 1
            path = path[: d + 1]
        rec(hot, d + 1, path, hot_z * inc_z, inc_o, f)
        rec(cold, d + 1, path, cold_z * inc_z, 0.0, f)

    rec(root, 0, [], 1.0, 1.0, -1)
    return out


def _data_count(ens: TreeEnsemble, node: int) -> int:
    return int(ens.count[node]) if node >= 0 else int(ens.leaf_count[~node])
