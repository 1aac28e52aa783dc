"""LightGBM trees evaluated with NumPy, bit for bit as LightGBM does.

``TreeEnsemble`` is built from ``booster.dump_model()`` and gives the raw score and the
SHAP contributions (``pred_contrib``) of a feature block exactly as ``booster.predict``
would (tests/scoring/test_tree_evaluator.py checks equality on random rows), without LightGBM's
per-call overhead; ``scoring.model.FastHead`` uses it for every scored lead. Trees too
deep for it are handed back to LightGBM.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np

from scoring.treeshap import tree_shap

#: LightGBM's kZeroThreshold (a float literal, 1e-35f, widened to double)
_K_ZERO = float(np.float32(1e-35))
_INT_MIN = -(2**31)
#: Trees with more internal nodes than this get their SHAP values from LightGBM itself
#: (the decision-pattern tables below grow as 2^nodes per tree).
_MAX_PATTERN_NODES = 6
#: New decision patterns one call may turn into SHAP tables before it asks LightGBM instead.
_PATTERN_BUDGET = 4096
#: Rows per block in :meth:`TreeEnsemble.decisions`.
_DECIDE_BLOCK = 2048
#: Rows per block in :meth:`TreeEnsemble.contributions` (a block's tables stay in cache).
_CONTRIB_BLOCK = 512
#: Deeper trees are walked by LightGBM itself (a NumPy step per level costs more there).
MAX_NUMPY_DEPTH = 8


class Prepared:
    """A feature block as LightGBM's dense-row reader sees it, one row per feature
    (features x rows, so a split's column is a contiguous read): ``values`` with
    |x| <= 1e-35 read as 0.0, ``zeroed`` with NaN read as 0.0 as well (what a split whose
    missing type is not NaN compares)."""

    __slots__ = ("n", "values", "zeroed")

    def __init__(self, M: np.ndarray | None) -> None:
        if M is None:
            return
        T = np.asarray(M, dtype=np.float64).T
        self.n = T.shape[1]
        self.values = np.where(np.abs(T) <= _K_ZERO, 0.0, T)
        self.zeroed = np.where(np.isnan(self.values), 0.0, self.values)

    def rows(self, a: int, b: int) -> Prepared:
        """Rows a:b of the block (views)."""
        part = Prepared(None)
        part.values = self.values[:, a:b]
        part.zeroed = self.zeroed[:, a:b]
        part.n = part.values.shape[1]
        return part


def prepare(M: np.ndarray) -> Prepared:
    return Prepared(M)


def _ordered_sum(values: np.ndarray) -> np.ndarray:
    """Column sums of (k, rows), adding the rows one at a time from 0.0, top to bottom,
    exactly as a C loop ``out += v[j]`` does (NumPy's ``sum`` may regroup additions)."""
    k, n = values.shape
    if k == 0:
        return np.zeros(n)
    if n < 16:
        return np.cumsum(values, axis=0)[-1]
    out = values[0].copy()
    for j in range(1, k):
        out += values[j]
    return out


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


class TreeEnsemble:
    """A LightGBM booster's trees evaluated with NumPy, bit for bit as LightGBM does.

    Built from ``booster.dump_model()`` (thresholds and leaf values are printed with 17
    significant digits, so they round-trip exactly). Any number of leaves, numerical and
    categorical splits, ``missing_type`` None/Zero/NaN with ``default_left`` (which is how
    ``zero_as_missing`` and ``use_missing`` show in a model) are decided exactly like
    ``Tree::NumericalDecision`` / ``Tree::CategoricalDecision``, including LightGBM's
    zeroing of |x| <= 1e-35 when a dense row is read.

    * :meth:`raw` adds the trees' leaf values in tree order, one addition at a time (a
      cumulative sum), as ``GBDT::PredictRaw`` does, so the raw score is identical, not
      merely close.
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
        self._split_groups(parsed)
        # depth of the deepest leaf: how many steps from the roots reach every leaf
        self.depth = max((_depth(self, int(r)) for r in self.roots), default=0)
        if self.depth <= 1:
            self._stump_values()
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

    def _split_groups(self, parsed: _ParsedTrees) -> None:
        """The splits :meth:`decisions` evaluates together: numerical nodes grouped by
        missing type (None: NaN read as 0, Zero: 0 is missing, NaN), and the categorical
        nodes with a (category set x code) membership table."""
        self._groups = []
        for kind in (0, 1, 2):
            idx = np.flatnonzero(~self.is_cat & (self.missing_type == kind))
            if len(idx):
                self._groups.append(
                    (kind, idx, self.feat[idx], self.thr[idx], self.default_left[idx])
                )
        cat = np.flatnonzero(self.is_cat)
        self._cat = cat
        self._cat_feat = self.feat[cat]
        cat_sets = parsed.cat_sets
        width = max((max(s) + 1 for s in cat_sets if s), default=1)
        table = np.zeros((len(cat_sets), width + 1), dtype=bool)  # last column: not found
        for i, s in enumerate(cat_sets):
            table[i, sorted(s)] = True
        self._cat_table = table
        self._cat_width = width
        self._cat_row = np.asarray([parsed.cat_slot[i] for i in cat], dtype=np.intp)
        # the few features the categorical splits read: codes are made once per feature
        self._cat_ufeat, inverse = np.unique(self._cat_feat, return_inverse=True)
        self._cat_inv = inverse.ravel().astype(np.intp)
        # (category set, code) -> goes left, flat: row r of the table starts at r * (width + 1)
        self._cat_flat = table.ravel()
        self._cat_start = (self._cat_row * (width + 1))[:, None]

    def _stump_values(self) -> None:
        """Stumps (and one-leaf trees): each tree's leaf values by its root's decision."""
        r = self.roots
        self._stump_node = np.where(r >= 0, r, 0)
        self._stump_left = np.zeros(len(r))
        self._stump_right = np.zeros(len(r))
        split = r >= 0
        self._stump_left[split] = self.leaf_value[~self.left[r[split]]]
        self._stump_right[split] = self.leaf_value[~self.right[r[split]]]
        self._stump_left[~split] = self._stump_right[~split] = self.leaf_value[~r[~split]]

    # --------------------------------------------------------------- decisions
    def decisions(self, M: np.ndarray | Prepared, cols: np.ndarray | None = None) -> np.ndarray:
        """(internal nodes, rows) bool: True where a row goes to the node's left child.

        ``M`` is the feature block (rows x features) or :func:`prepare` of it (to share
        that work between ensembles); ``cols`` maps this ensemble's feature i to column
        ``cols[i]`` of M."""
        P = M if isinstance(M, Prepared) else prepare(M)
        go_left = np.empty((self.n_nodes, P.n), dtype=bool)
        if P.n > _DECIDE_BLOCK:  # rows are independent: blocks keep the temporaries in cache
            for a in range(0, P.n, _DECIDE_BLOCK):
                go_left[:, a : a + _DECIDE_BLOCK] = self.decisions(
                    P.rows(a, a + _DECIDE_BLOCK), cols
                )
            return go_left
        for kind, idx, feat, thr, dleft in self._groups:
            f = feat if cols is None else cols[feat]
            if kind == 0:  # None: NaN is read as 0.0
                go_left[idx] = P.zeroed[f] <= thr[:, None]
            elif kind == 1:  # Zero: 0 (and NaN, read as 0) go the default way
                x = P.zeroed[f]
                go_left[idx] = np.where(x == 0.0, dleft[:, None], x <= thr[:, None])
            else:  # NaN: NaN goes the default way
                x = P.values[f]
                with np.errstate(invalid="ignore"):
                    go_left[idx] = np.where(np.isnan(x), dleft[:, None], x <= thr[:, None])
        if len(self._cat):
            f = self._cat_ufeat if cols is None else cols[self._cat_ufeat]
            x = P.values[f]  # (categorical features, rows)
            with np.errstate(invalid="ignore"):
                # static_cast<int>: truncation; NaN and out-of-range give INT_MIN (x86)
                inrange = (x > _INT_MIN - 1) & (x < 2**31)
                code = np.trunc(np.where(inrange, x, -1.0))
            ok = code >= 0  # negative (and NaN, out of range): right (the last column)
            code = np.where(ok & (code < self._cat_width), code, self._cat_width).astype(np.intp)
            go_left[self._cat] = self._cat_flat[self._cat_start + code[self._cat_inv]]
        return go_left

    def leaves(self, go_left: np.ndarray) -> np.ndarray:
        """(trees, rows) global leaf id reached in each tree."""
        roots = self.roots
        inner = (roots >= 0)[:, None]
        first = np.where(roots >= 0, roots, 0)
        # one step from every root (all rows start there)
        cur = np.where(go_left[first], self.left[first][:, None], self.right[first][:, None])
        cur = np.where(inner, cur, roots[:, None])
        for _ in range(self.depth - 1):
            inner = cur >= 0
            if not inner.any():
                break
            node = np.where(inner, cur, 0)
            step = np.take_along_axis(go_left, node, axis=0)
            cur = np.where(inner, np.where(step, self.left[node], self.right[node]), cur)
        return ~cur

    def raw(self, M: np.ndarray | Prepared, go_left: np.ndarray | None = None) -> np.ndarray:
        """Raw scores (log-odds for binary): ``booster.predict(M, raw_score=True)``."""
        if go_left is None:
            go_left = self.decisions(M)
        n = go_left.shape[1]
        if self.n_trees == 0:
            return np.zeros(n)
        if self.n_nodes == 0:
            values = np.repeat(self._stump_left[:, None], n, axis=1)
        elif self.depth <= 1:  # stumps: each tree's value straight from its root's decision
            values = np.where(
                go_left[self._stump_node], self._stump_left[:, None], self._stump_right[:, None]
            )
        elif self.shap_native:  # shallow trees: the leaf value by decision pattern
            # tree by tree: look-up and addition fused, in tree order (as _ordered_sum)
            codes = self._codes(go_left)
            table = self._value_by_code
            if n < 16:  # a few rows: one gather and an in-order sum, not a call per tree
                return _ordered_sum(np.take_along_axis(table, codes, axis=1))
            out = table[0].take(codes[0])
            for t in range(1, self.n_trees):
                out += table[t].take(codes[t])
            return out
        else:
            values = self.leaf_value[self.leaves(go_left)]
        return _ordered_sum(values)

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
        self._slot_tree = np.asarray([s[0] for s in slots], dtype=np.intp)
        self._slot_feat = np.asarray([s[1] for s in slots], dtype=np.intp)
        self._slot_local = np.asarray(
            [self._tree_slots[s[0]][(s[1], s[2])] for s in slots], dtype=np.intp
        )
        self._tree_width = np.asarray([len(x) for x in self._tree_slots], dtype=np.intp)
        # level k of feature f = its k-th addition over all trees, in tree order
        seen: dict[int, int] = {}
        level = np.empty(len(slots), dtype=np.intp)
        for s, (_, f, _) in enumerate(slots):
            level[s] = seen.get(f, 0)
            seen[f] = level[s] + 1
        self._n_levels = int(level.max(initial=-1)) + 1
        # features ordered by how many additions they get (most first): the features
        # still adding at level k are then the first few, and the slots of level k can be
        # laid out as one contiguous block of rows that adds onto phi[:count] at once
        used, n_adds = np.unique(self._slot_feat, return_counts=True)
        by_adds = used[np.argsort(-n_adds, kind="stable")]
        rank = np.empty(self.n_features, dtype=np.intp)
        rank[by_adds] = np.arange(len(by_adds))
        order = np.lexsort((rank[self._slot_feat], level))  # level-major, then by rank
        self._order = order
        self._perm_feat = by_adds
        self._level_bounds = np.searchsorted(level[order], np.arange(self._n_levels + 1))
        self._slot_rank = rank[self._slot_feat][order]
        self._slot_level = level[order]
        # pattern code = bits of the tree's decisions, node i of the tree = bit i
        width = max(sizes)
        self._code_bits = np.zeros((self.n_trees, max(width, 1)), dtype=np.intp)
        self._code_nodes = np.zeros((self.n_trees, max(width, 1)), dtype=np.intp)
        self._code_used = np.zeros((self.n_trees, max(width, 1)), dtype=bool)
        for t, tr in enumerate(self._trees):
            for i, g in enumerate(tr["nodes"]):
                self._code_nodes[t, i] = g
                self._code_bits[t, i] = 1 << i
                self._code_used[t, i] = True
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

    def _codes(self, go_left: np.ndarray) -> np.ndarray:
        """(trees, rows) pattern code (uint8: at most _MAX_PATTERN_NODES bits): bit i =
        decision at the tree's i-th internal node."""
        if self.n_nodes == 0:
            return np.zeros((self.n_trees, go_left.shape[1]), dtype=np.uint8)
        code = (go_left[self._code_nodes[:, 0]] & self._code_used[:, :1]).view(np.uint8)
        for i in range(1, self._code_nodes.shape[1]):
            bit = (go_left[self._code_nodes[:, i]] & self._code_used[:, i, None]).view(np.uint8)
            bit <<= i
            code |= bit
        return code

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
        self, M: np.ndarray, go_left: np.ndarray | None = None, threads: int = 1
    ) -> np.ndarray:
        """``booster.predict(M, pred_contrib=True)``: per-feature SHAP values + bias column."""
        M = np.asarray(M, dtype=np.float64)
        n = len(M)
        if not self.shap_native:
            return self._lgb_contrib(M, threads)
        if go_left is None:
            go_left = self.decisions(M)
        if n > _CONTRIB_BLOCK:  # rows are independent: blocks keep the (slots, rows) in cache
            return np.concatenate(
                [
                    self.contributions(
                        M[a : a + _CONTRIB_BLOCK], go_left[:, a : a + _CONTRIB_BLOCK]
                    )
                    for a in range(0, n, _CONTRIB_BLOCK)
                ]
            )
        if self._fill_all:
            with self._lock:
                if self._fill_all:
                    sizes = [len(tr["nodes"]) for tr in self._trees]
                    self._fill([(t, c) for t in range(self.n_trees) for c in range(1 << sizes[t])])
                    self._fill_all = False
        codes = self._codes(go_left)
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
        order = self._order
        # (slots, rows), level-major: the additions of level k are rows bounds[k]:bounds[k+1]
        values = flat[starts[self._slot_tree[order]] + self._slot_local[order][:, None]]
        if n <= 8:
            # few rows: (feature, level) side by side, zero-padded past a feature's last
            # addition (x + 0.0 == x), and summed in order along the levels
            dense = np.zeros((len(self._perm_feat), self._n_levels, n))
            dense[self._slot_rank, self._slot_level] = values
            phi = np.cumsum(dense, axis=1)[:, -1] if self._n_levels else np.zeros((0, n))
        else:
            phi = np.zeros((len(self._perm_feat), n))
            bounds = self._level_bounds.tolist()
            for k in range(self._n_levels):
                a, b = bounds[k], bounds[k + 1]
                phi[: b - a] += values[a:b]
        out = np.zeros((n, self.n_features + 1))
        out[:, self._perm_feat] = phi.T
        out[:, -1] = self.bias
        return out

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
