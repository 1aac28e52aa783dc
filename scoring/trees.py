"""LightGBM trees evaluated bit for bit as LightGBM does, in compiled loops.

``TreeEnsemble`` is built from ``booster.dump_model()`` and gives the raw score and the
SHAP contributions (``pred_contrib``) of a feature block exactly as ``booster.predict``
would (tests/scoring/test_tree_evaluator.py checks equality on random rows), without LightGBM's
per-call overhead; ``scoring.model.FastHead`` uses it for every scored lead. The splits are
decided and the trees walked by :mod:`scoring.tree_kernels` (numba). Trees too deep for it
are handed back to LightGBM.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import lightgbm as lgb
import numpy as np

from scoring.tree_kernels import pattern_raw, pattern_raw_rows, shap_sums, walk_raw
from scoring.treeshap import tree_shap

#: Trees with more internal nodes than this get their SHAP values from LightGBM itself
#: (the decision-pattern tables below grow as 2^nodes per tree).
_MAX_PATTERN_NODES = 6
#: New decision patterns one call may turn into SHAP tables before it asks LightGBM instead.
_PATTERN_BUDGET = 4096
#: Rows per block in :meth:`TreeEnsemble.contributions` (a block's tables stay in cache).
_CONTRIB_BLOCK = 512
#: Fewer rows than this are decided row by row (:func:`scoring.tree_kernels.pattern_raw_rows`).
_FEW_ROWS = 16
#: Deeper trees are walked by LightGBM itself.
MAX_NUMPY_DEPTH = 8


class Decided(NamedTuple):
    """A block evaluated by an ensemble: the raw scores, and (trees of at most
    :data:`_MAX_PATTERN_NODES` internal nodes) each tree's decision pattern per row, which
    :meth:`TreeEnsemble.contributions` reads."""

    raw: np.ndarray
    codes: np.ndarray | None  # (trees, rows) uint8: bit i = the tree's i-th node goes left


#: LightGBM's missing types, as the dump names them -> the code the split groups use
_MISSING_TYPES = {"None": 0, "Zero": 1, "NaN": 2}


class _ParsedTrees:
    """The trees of ``booster.dump_model()`` read into flat lists, node by node in the
    order of a depth-first walk (left child first): internal nodes and leaves are each
    numbered across all trees, a child is a node number or ``~leaf number``, and each
    tree keeps its root and its nodes and leaves in LightGBM's own index order."""

    def __init__(self) -> None:
        self.feat: list[int] = []
        self.thr: list[float] = []
        self.missing_type: list[int] = []
        self.default_left: list[bool] = []
        self.is_cat: list[bool] = []
        self.left: list[int] = []
        self.right: list[int] = []
        self.count: list[int] = []
        self.cat_sets: list[frozenset[int]] = []  # category codes going left, per split
        self.cat_slot: list[int] = []  # node -> its row in cat_sets (-1: numerical)
        self.leaf_value: list[float] = []
        self.leaf_count: list[int] = []
        self.roots: list[int] = []
        self.trees: list[dict[str, Any]] = []  # per tree: root, nodes, leaves

    def add(self, root: dict[str, Any]) -> None:
        """One tree (``tree_structure`` of the dump)."""
        node_ids: dict[int, int] = {}
        leaf_ids: dict[int, int] = {}
        r = self._walk(root, node_ids, leaf_ids)
        self.roots.append(r)
        nodes = [node_ids[k] for k in sorted(node_ids)]
        leaves = [leaf_ids[k] for k in sorted(leaf_ids)]
        self.trees.append({"root": r, "nodes": nodes, "leaves": leaves})

    def _walk(self, n: dict[str, Any], node_ids: dict[int, int], leaf_ids: dict[int, int]) -> int:
        if "leaf_value" in n:  # a leaf: encoded as ~global leaf id
            leaf_ids[int(n.get("leaf_index", 0))] = len(self.leaf_value)
            self.leaf_value.append(float(n["leaf_value"]))
            self.leaf_count.append(int(n.get("leaf_count", 0)))
            return ~(len(self.leaf_value) - 1)
        g = len(self.feat)
        node_ids[int(n["split_index"])] = g
        self.feat.append(int(n["split_feature"]))
        categorical = n["decision_type"] == "=="
        self.is_cat.append(categorical)
        if categorical:
            cats = frozenset(int(v) for v in str(n["threshold"]).split("||") if v != "")
            self.cat_slot.append(len(self.cat_sets))
            self.cat_sets.append(cats)
            self.thr.append(np.nan)
        else:
            self.cat_slot.append(-1)
            self.thr.append(float(n["threshold"]))
        self.missing_type.append(_MISSING_TYPES[str(n.get("missing_type", "None"))])
        self.default_left.append(bool(n.get("default_left", False)))
        self.count.append(int(n.get("internal_count", 0)))
        self.left.append(0)
        self.right.append(0)
        lc = self._walk(n["left_child"], node_ids, leaf_ids)
        rc = self._walk(n["right_child"], node_ids, leaf_ids)
        self.left[g], self.right[g] = lc, rc
        return g


def transposed(M: np.ndarray) -> np.ndarray | None:
    """``M.T`` as one contiguous float64 block (columns x rows), where :meth:`TreeEnsemble.
    decide` reads a block column by column (``_FEW_ROWS`` rows or more); else None."""
    if len(M) < _FEW_ROWS:
        return None
    return np.ascontiguousarray(np.asarray(M, dtype=np.float64).T)


class TreeEnsemble:
    """A LightGBM booster's trees evaluated in compiled loops, bit for bit as LightGBM does.

    Built from ``booster.dump_model()`` (thresholds and leaf values are printed with 17
    significant digits, so they round-trip exactly). Any number of leaves, numerical and
    categorical splits, ``missing_type`` None/Zero/NaN with ``default_left`` (which is how
    ``zero_as_missing`` and ``use_missing`` show in a model) are decided exactly like
    ``Tree::NumericalDecision`` / ``Tree::CategoricalDecision``, including LightGBM's
    zeroing of |x| <= 1e-35 when a dense row is read.

    * :meth:`decide` evaluates a block once (:mod:`scoring.tree_kernels`): trees of at most
      :data:`_MAX_PATTERN_NODES` internal nodes give each row's decision pattern and their
      leaf value by pattern, deeper ones are walked; either way the leaf values are added
      in tree order, one addition at a time, as ``GBDT::PredictRaw`` does, so the raw
      score (:meth:`raw`) is identical, not merely close. Blocks of a few rows are decided
      row by row, larger ones split by split over a transposed block.
    * :meth:`contributions` gives ``pred_contrib`` exactly: LightGBM's TreeSHAP is a fixed
      sequence of floating-point operations once the decision at every internal node of a
      tree is known (the "pattern"), so each tree's additions to ``phi`` are computed once
      per pattern by a line-by-line port of ``Tree::TreeSHAP`` (scoring/treeshap.py) and
      replayed per row in the same order. Stumps have two patterns per tree; deeper trees
      fill the tables lazily, and trees beyond :data:`_MAX_PATTERN_NODES` internal nodes
      (or a call that would need too many new patterns) are handed to LightGBM's own
      ``pred_contrib``.

    Models this does not cover (several trees per iteration, averaged output, linear trees)
    set :attr:`supported` False; callers then use the booster.
    """

    def __init__(self, booster: lgb.Booster) -> None:
        self.booster = booster
        n_iter = booster.best_iteration if booster.best_iteration > 0 else None
        self.num_iteration = n_iter
        dump = booster.dump_model(num_iteration=n_iter)
        self.n_features = int(dump["max_feature_idx"]) + 1
        trees = dump["tree_info"]
        self.supported = (
            int(dump.get("num_tree_per_iteration", 1)) == 1
            and not dump.get("average_output", False)
            and not any(_has_linear(t["tree_structure"]) for t in trees)
        )
        self.n_trees = len(trees)
        parsed = _ParsedTrees()
        for t in trees:
            parsed.add(t["tree_structure"])
        self._trees = parsed.trees
        self._node_arrays(parsed)
        self._split_kinds(parsed)
        self._identity = np.arange(self.n_features, dtype=np.intp)
        # depth of the deepest leaf: how many steps from the roots reach every leaf
        self.depth = max((_depth(self, int(r)) for r in self.roots), default=0)
        # the expected value of each tree, added up in order (pred_contrib's bias column)
        bias = 0.0
        for tr in self._trees:
            bias += _expected_value(self, tr)
        self.bias = bias
        self._shap_init()

    def _node_arrays(self, parsed: _ParsedTrees) -> None:
        """The parsed trees as flat arrays: internal nodes (split feature, threshold,
        missing type, default direction, children: a node id, or ~leaf id for a leaf) and
        leaves (value, training count), numbered across all trees."""
        self.feat = np.asarray(parsed.feat, dtype=np.intp)
        self.thr = np.asarray(parsed.thr, dtype=np.float64)
        self.missing_type = np.asarray(parsed.missing_type, dtype=np.int8)
        self.default_left = np.asarray(parsed.default_left, dtype=bool)
        self.is_cat = np.asarray(parsed.is_cat, dtype=bool)
        self.left = np.asarray(parsed.left, dtype=np.intp)
        self.right = np.asarray(parsed.right, dtype=np.intp)
        self.count = np.asarray(parsed.count, dtype=np.int64)
        self.leaf_value = np.asarray(parsed.leaf_value, dtype=np.float64)
        self.leaf_count = np.asarray(parsed.leaf_count, dtype=np.int64)
        self.roots = np.asarray(parsed.roots, dtype=np.intp)
        self.n_nodes = len(parsed.feat)

    def _split_kinds(self, parsed: _ParsedTrees) -> None:
        """Per internal node what the kernels read: its kind (missing type None 0, Zero 1,
        NaN 2; categorical 3) and, for a categorical split, where its row starts in the
        flat (category set x code) membership table, whose last column (``width``) is
        "not found" (goes right)."""
        self.kind = np.where(self.is_cat, 3, self.missing_type).astype(np.int8)
        cat_sets = parsed.cat_sets
        width = max((max(s) + 1 for s in cat_sets if s), default=1)
        table = np.zeros((max(len(cat_sets), 1), width + 1), dtype=np.bool_)
        for i, s in enumerate(cat_sets):
            table[i, sorted(s)] = True
        self._cat_flat = table.ravel()
        self._cat_width = width
        slot = np.asarray(parsed.cat_slot, dtype=np.intp)
        self._cat_base = np.where(slot >= 0, slot * (width + 1), 0).astype(np.intp)

    # --------------------------------------------------------------- evaluation
    def decide(
        self, M: np.ndarray, cols: np.ndarray | None = None, MT: np.ndarray | None = None
    ) -> Decided:
        """The block's raw scores, with the decision patterns when the trees are shallow
        enough for the SHAP tables (:class:`Decided`). ``M`` is the feature block (rows x
        columns); ``cols`` maps this ensemble's feature i to column ``cols[i]`` of M
        (default: column i); ``MT``: :func:`transposed` of M, when the caller has it (heads
        reading one block transpose it once: ~15 ms for 50,000 rows)."""
        M = np.ascontiguousarray(M, dtype=np.float64)
        if cols is None:
            cols = self._identity
        else:
            cols = np.ascontiguousarray(cols, dtype=np.intp)
        split = (self.feat, self.kind, self.thr, self.default_left, self._cat_base,
                 self._cat_flat, self._cat_width)  # fmt: skip
        if self.shap_native:
            codes = np.empty((self.n_trees, len(M)), dtype=np.uint8)
            tables = (self._code_nodes, self._code_n, self._value_by_code, codes)
            if len(M) < _FEW_ROWS:
                raw = pattern_raw_rows(M, cols, *split, *tables)
            else:
                raw = pattern_raw(transposed(M) if MT is None else MT, cols, *split, *tables)
            return Decided(raw, codes)
        raw = walk_raw(M, cols, *split, self.left, self.right, self.roots, self.leaf_value)
        return Decided(raw, None)

    def compile(self) -> None:
        """Compile (or read from numba's cache) the loops :meth:`decide` runs, for a few
        rows and for a block, and those of :meth:`contributions`, now rather than at the
        first call: forked batch workers then inherit them, and a server's first large
        request does not wait for them."""
        for rows in (1, _FEW_ROWS):
            self.decide(np.zeros((rows, self.n_features)))
        if self.shap_native:  # and the sums of the contributions (on a table of zeros)
            starts = np.zeros((self.n_trees, 1), dtype=np.int64)
            flat = np.zeros(int(self._tree_width.max(initial=0)))
            shap_sums(starts, flat, self._slot_begin, self._slot_feat, self.bias, self.n_features)

    def raw(self, M: np.ndarray | None, decided: Decided | None = None) -> np.ndarray:
        """Raw scores (log-odds for binary): ``booster.predict(M, raw_score=True)``."""
        return (self.decide(M) if decided is None else decided).raw

    # ------------------------------------------------------------------- SHAP
    def _shap_init(self) -> None:
        import threading

        self._lock = threading.Lock()
        sizes = [len(tr["nodes"]) for tr in self._trees]
        self.shap_native = bool(self._trees) and max(sizes, default=0) <= _MAX_PATTERN_NODES
        if not self.shap_native:
            return
        # how many additions each tree makes to each feature (the same for every pattern):
        # one per leaf whose root path splits on that feature
        slots: list[tuple[int, int, int]] = []  # (tree, feature, j-th addition in the tree)
        self._tree_slots: list[dict[tuple[int, int], int]] = []
        for t, tr in enumerate(self._trees):
            per_feature: dict[int, int] = {}
            for leaf_path in _leaf_paths(self, tr["root"]):
                for f in dict.fromkeys(leaf_path):
                    per_feature[f] = per_feature.get(f, 0) + 1
            local: dict[tuple[int, int], int] = {}
            for f in sorted(per_feature):
                for j in range(per_feature[f]):
                    local[(f, j)] = len(local)
                    slots.append((t, f, j))
            self._tree_slots.append(local)
        self._slot_feat = np.asarray([s[1] for s in slots], dtype=np.intp)
        self._tree_width = np.asarray([len(x) for x in self._tree_slots], dtype=np.intp)
        # tree t's slots are slots[slot_begin[t]:slot_begin[t + 1]], in the order of their
        # columns in its table rows; a feature's k-th addition over all trees, in tree order,
        # is its level k: shap_sums adds in that order
        self._slot_begin = np.concatenate([[0], np.cumsum(self._tree_width)]).astype(np.intp)
        # pattern code = bits of the tree's decisions, node i of the tree = bit i
        width = max(sizes)
        self._code_nodes = np.zeros((self.n_trees, max(width, 1)), dtype=np.intp)
        self._code_n = np.asarray(sizes, dtype=np.intp)
        for t, tr in enumerate(self._trees):
            self._code_nodes[t, : len(tr["nodes"])] = tr["nodes"]
        # start of each (tree, pattern) row in the flat table; -1 = not computed yet
        start = np.full((self.n_trees, 1 << width), -1, dtype=np.int64)
        self._table = (np.zeros(0), start)
        # stumps and tiny trees: every pattern at the first call of contributions (not
        # here: a head whose contributions are never asked for never pays for them)
        self._fill_all = width <= 3
        # each tree's leaf value for every pattern: the raw score of shallow trees is then
        # one look-up per tree instead of a walk down the levels
        self._value_by_code = np.zeros((self.n_trees, 1 << width))
        for t, tr in enumerate(self._trees):
            for code in range(1 << len(tr["nodes"])):
                node = tr["root"]
                bit = {g: i for i, g in enumerate(tr["nodes"])}
                while node >= 0:
                    go = code >> bit[node] & 1
                    node = int(self.left[node] if go else self.right[node])
                self._value_by_code[t, code] = self.leaf_value[~node]

    def _fill(self, pairs: list[tuple[int, int]]) -> None:
        """Compute and append the SHAP additions of (tree, pattern code) pairs."""
        flat, start = self._table
        start = start.copy()
        parts = [flat]
        pos = len(flat)
        for t, code in pairs:
            tr = self._trees[t]
            decide = {g: bool(code >> i & 1) for i, g in enumerate(tr["nodes"])}
            row = np.zeros(self._tree_width[t])
            local = self._tree_slots[t]
            counter: dict[int, int] = {}
            for f, delta in tree_shap(self, tr["root"], decide):
                j = counter.get(f, 0)
                counter[f] = j + 1
                row[local[(f, j)]] = delta
            start[t, code] = pos
            pos += len(row)
            parts.append(row)
        self._table = (np.concatenate(parts), start)

    def contributions(
        self, M: np.ndarray, decided: Decided | None = None, threads: int = 1
    ) -> np.ndarray:
        """``booster.predict(M, pred_contrib=True)``: per-feature SHAP values + bias column
        (``decided``: :meth:`decide` of the same block, when already made)."""
        M = np.asarray(M, dtype=np.float64)
        n = len(M)
        if not self.shap_native:
            return self._lgb_contrib(M, threads)
        codes = (self.decide(M) if decided is None else decided).codes
        if n > _CONTRIB_BLOCK:  # rows are independent: blocks keep the (slots, rows) in cache
            return np.concatenate(
                [
                    self._contributions(
                        M[a : a + _CONTRIB_BLOCK], codes[:, a : a + _CONTRIB_BLOCK], threads
                    )
                    for a in range(0, n, _CONTRIB_BLOCK)
                ]
            )
        return self._contributions(M, codes, threads)

    def _contributions(self, M: np.ndarray, codes: np.ndarray, threads: int) -> np.ndarray:
        if self._fill_all:
            with self._lock:
                if self._fill_all:
                    sizes = [len(tr["nodes"]) for tr in self._trees]
                    self._fill([(t, c) for t in range(self.n_trees) for c in range(1 << sizes[t])])
                    self._fill_all = False
        trees = np.arange(self.n_trees)[:, None]
        flat, start = self._table
        starts = start[trees, codes]  # (trees, rows)
        if (starts < 0).any():
            with self._lock:
                flat, start = self._table
                starts = start[trees, codes]
                todo = starts < 0
                missing = np.unique(np.column_stack([np.nonzero(todo)[0], codes[todo]]), axis=0)
                if len(missing) > _PATTERN_BUDGET:
                    return self._lgb_contrib(M, threads)
                self._fill([(int(t), int(c)) for t, c in missing])
                flat, start = self._table
                starts = start[trees, codes]
        slots = (self._slot_begin, self._slot_feat)
        return shap_sums(starts, flat, *slots, self.bias, self.n_features)

    def _lgb_contrib(self, M: np.ndarray, threads: int = 1) -> np.ndarray:
        return self.booster.predict(
            M, pred_contrib=True, num_iteration=self.num_iteration, num_threads=threads
        )


def _has_linear(node: dict[str, Any]) -> bool:
    if "leaf_value" in node:
        return "leaf_coeff" in node or "leaf_features" in node
    return _has_linear(node["left_child"]) or _has_linear(node["right_child"])


def _depth(ens: TreeEnsemble, node: int) -> int:
    if node < 0:
        return 0
    return 1 + max(_depth(ens, int(ens.left[node])), _depth(ens, int(ens.right[node])))


def _leaf_paths(ens: TreeEnsemble, node: int, path: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    """The split features on the way to each leaf (leaves in any fixed order)."""
    if node < 0:
        return [path]
    f = int(ens.feat[node])
    return [
        *_leaf_paths(ens, int(ens.left[node]), (*path, f)),
        *_leaf_paths(ens, int(ens.right[node]), (*path, f)),
    ]


def _expected_value(ens: TreeEnsemble, tree: dict[str, Any]) -> float:
    """``Tree::ExpectedValue``: leaves in leaf-index order, weighted by their counts."""
    leaves = tree["leaves"]
    if len(leaves) == 1:
        return float(ens.leaf_value[leaves[0]])
    total = float(ens.count[tree["root"]])
    value = 0.0
    for g in leaves:
        value += (int(ens.leaf_count[g]) / total) * float(ens.leaf_value[g])
    return value
