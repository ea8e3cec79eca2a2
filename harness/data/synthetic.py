"""Synthetic data with known ground truth."""
from __future__ import annotations

import numpy as np

from harness.component import require
from harness.data.base import Dataset, Shape, Table, rng


class Synthetic(Dataset):
    """Drawn by our own code from a validated config: nothing in the data itself can be wrong,
    and the config fixes its shape (n_train, n_test, d, n_classes), so sweep validation need
    not build it (a 54,000-run sweep has 1,500 distinct draws)."""

    @classmethod
    def shape(cls, section):
        return Shape(section["n_train"], section["n_test"], section.get("d", 1), section.get("n_classes"))

    @classmethod
    def public(cls, section):
        return False


class Linear(Synthetic):
    """Linear regression with known weights.

        x ~ N(0, S),  S_ij = correlation^|i-j|   (Toeplitz: neighbouring features correlated)
        w* ~ N(0, I_d),  b* = 0
        y = x . w* + noise * e,  e ~ N(0, 1)

    `nonzero` null (default): every w*_j as drawn. An integer k (0 <= k <= d): a sparse truth,
    w*_j as drawn for j < k and exactly 0 for j >= k (the first k features carry the signal;
    with correlation 0 the features are exchangeable, so which k does not matter). The same
    numbers are drawn in the same order either way, so X and e are those of the dense draw
    and only w* (hence y) differs.

    A fresh draw per data seed; the test split (n_test rows) is drawn clean."""

    name, task, card = "linear", "regression", "datasets/linear.md"
    schema = {**Dataset.schema, "n_train": int, "n_test": int, "d": int, "noise": float, "correlation": float,
              "nonzero": None}

    @classmethod
    def check(cls, s, group):
        super().check(s, group)
        for k in ("n_train", "n_test", "d"):
            require(s[k] >= 1, f"{group}.{k}", s[k], "an integer >= 1")
        require(s["noise"] >= 0, f"{group}.noise", s["noise"], "a number >= 0")
        require(-1 < s["correlation"] < 1, f"{group}.correlation", s["correlation"], "a number in (-1, 1)")
        k = s["nonzero"]
        require(k is None or (isinstance(k, int) and not isinstance(k, bool) and 0 <= k <= s["d"]),
                f"{group}.nonzero", k, f"null (every weight nonzero) or an integer in [0, d={s['d']}]")

    @classmethod
    def build(cls, s, seed):
        g = rng(seed, "data")
        d, n = s["d"], s["n_train"] + s["n_test"]
        i = np.arange(d)
        cov = s["correlation"] ** np.abs(i[:, None] - i[None, :])
        X = g.standard_normal((n, d)) @ np.linalg.cholesky(cov).T
        w = g.standard_normal(d)
        if s["nonzero"] is not None:
            w[s["nonzero"]:] = 0.0
        y = X @ w + s["noise"] * g.standard_normal(n)
        k = s["n_train"]
        return Table(X=X[:k], y=y[:k], X_test=X[k:], y_test=y[k:], task="regression",
                     w_true=w, b_true=0.0, source="synthetic:linear")


class Friedman1(Synthetic):
    """Friedman #1 (sklearn.datasets.make_friedman1), nonlinear regression:
    y = 10 sin(pi x1 x2) + 20 (x3 - 0.5)^2 + 10 x4 + 5 x5 + noise * e, x ~ U[0, 1]^d (d >= 5)."""

    name, task, card = "friedman1", "regression", "datasets/friedman1.md"
    schema = {**Dataset.schema, "n_train": int, "n_test": int, "d": int, "noise": float}

    @classmethod
    def check(cls, s, group):
        super().check(s, group)
        require(s["d"] >= 5, f"{group}.d", s["d"], "an integer >= 5")
        require(s["n_train"] >= 1 and s["n_test"] >= 1, f"{group}.n_train", s["n_train"], "n_train, n_test >= 1")

    @classmethod
    def build(cls, s, seed):
        from sklearn.datasets import make_friedman1

        k = s["n_train"]
        X, y = make_friedman1(n_samples=k + s["n_test"], n_features=s["d"], noise=s["noise"],
                              random_state=int(rng(seed, "data").integers(2**31 - 1)))
        return Table(X=X[:k], y=y[:k], X_test=X[k:], y_test=y[k:], task="regression", source="sklearn:make_friedman1")


def _at_least(s, group, low, *keys):
    for k in keys:
        require(s[k] >= low, f"{group}.{k}", s[k], f"an integer >= {low}")


def _seed_for_sklearn(seed: int) -> int:
    """An int random_state for sklearn's generators, drawn from the data stream."""
    return int(rng(seed, "data").integers(2**31 - 1))


def _binary_or_multiclass(section) -> str:
    return "binary" if section.get("n_classes", 2) == 2 else "multiclass"


class Blobs(Synthetic):
    """Gaussian blobs (sklearn.datasets.make_blobs): C isotropic Gaussian classes,

        centre_c ~ U[-10, 10]^d,   x | class c ~ N(centre_c, cluster_std^2 I_d),

    equal class sizes. `cluster_std` sets the overlap: with d=10, 4 classes, a linear
    classifier reaches ~100% at cluster_std=2, ~90-99% at 5, ~70-90% at 8 (it depends on
    how far apart the drawn centres fall). Binary when n_classes=2, else multiclass."""

    name, card = "blobs", "datasets/blobs.md"
    schema = {**Dataset.schema, "n_train": int, "n_test": int, "d": int, "n_classes": int, "cluster_std": float}

    @classmethod
    def task_of(cls, section):
        return _binary_or_multiclass(section)

    @classmethod
    def check(cls, s, group):
        super().check(s, group)
        _at_least(s, group, 1, "n_train", "n_test", "d")
        _at_least(s, group, 2, "n_classes")
        require(s["cluster_std"] > 0, f"{group}.cluster_std", s["cluster_std"], "a number > 0")

    @classmethod
    def build(cls, s, seed):
        from sklearn.datasets import make_blobs

        k = s["n_train"]
        X, y = make_blobs(n_samples=k + s["n_test"], n_features=s["d"], centers=s["n_classes"],
                          cluster_std=s["cluster_std"], random_state=_seed_for_sklearn(seed))
        y = y.astype(np.int64)
        return Table(X=X[:k], y=y[:k], X_test=X[k:], y_test=y[k:], task=cls.task_of(s),
                     n_classes=s["n_classes"], source="sklearn:make_blobs")


class Classification(Synthetic):
    """sklearn.datasets.make_classification (Guyon 2003, the Madelon design): each class is
    `n_clusters_per_class` Gaussian clusters on the vertices of a hypercube of side
    2 * class_sep in the `n_informative` dimensions; `n_redundant` features are random linear
    combinations of those, the rest are N(0, 1) noise. flip_y=0: label noise is added by
    `outliers` (flip / symmetric / pairwise), not here. Binary when n_classes=2."""

    name, card = "classification", "datasets/classification.md"
    schema = {**Dataset.schema, "n_train": int, "n_test": int, "d": int, "n_informative": int,
              "n_redundant": int, "n_classes": int, "n_clusters_per_class": int, "class_sep": float}

    @classmethod
    def task_of(cls, section):
        return _binary_or_multiclass(section)

    @classmethod
    def check(cls, s, group):
        super().check(s, group)
        _at_least(s, group, 1, "n_train", "n_test", "d", "n_informative", "n_clusters_per_class")
        _at_least(s, group, 0, "n_redundant")
        _at_least(s, group, 2, "n_classes")
        require(s["n_informative"] + s["n_redundant"] <= s["d"], f"{group}.d", s["d"],
                f"at least n_informative + n_redundant = {s['n_informative'] + s['n_redundant']}")
        cells = s["n_classes"] * s["n_clusters_per_class"]
        require(cells <= 2 ** s["n_informative"], f"{group}.n_informative", s["n_informative"],
                f"2^n_informative >= n_classes * n_clusters_per_class = {cells} (one hypercube vertex per cluster)")
        require(s["class_sep"] > 0, f"{group}.class_sep", s["class_sep"], "a number > 0")

    @classmethod
    def build(cls, s, seed):
        from sklearn.datasets import make_classification

        k = s["n_train"]
        X, y = make_classification(
            n_samples=k + s["n_test"], n_features=s["d"], n_informative=s["n_informative"],
            n_redundant=s["n_redundant"], n_repeated=0, n_classes=s["n_classes"],
            n_clusters_per_class=s["n_clusters_per_class"], class_sep=s["class_sep"], flip_y=0.0,
            random_state=_seed_for_sklearn(seed))
        y = y.astype(np.int64)
        return Table(X=X[:k], y=y[:k], X_test=X[k:], y_test=y[k:], task=cls.task_of(s),
                     n_classes=s["n_classes"], source="sklearn:make_classification")


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def sample_rows(p: np.ndarray, g: np.random.Generator) -> np.ndarray:
    """One class label per row of the row-stochastic matrix p [n, C] (inverse CDF)."""
    u = g.random((len(p), 1))
    return np.minimum((np.cumsum(p, axis=1) < u).sum(axis=1), p.shape[1] - 1).astype(np.int64)


# public classification sets that `soft_targets` can distil a teacher from (harness/data/public.py)
PUBLIC_BASES = ("digits", "iris", "wine", "breast_cancer", "mnist1d")


class SoftTargets(Synthetic):
    """Soft targets from a softmax teacher (task `distribution`).

    base=synthetic (default): a known random linear teacher,

        W_t ~ N(0, 1) [d, C],   x ~ N(0, I_d),
        y = softmax(x W_t / temperature)            float [n, C], rows sum to 1
        extra["y_hard"] ~ Categorical(y)            int [n], one label drawn per row

    base=<a public classification set> (PUBLIC_BASES): knowledge distillation on public data.
    The set is split as it would be on its own (prepare.split: seeded by stream "split",
    stratified; mnist1d keeps its published split), the teacher, scikit-learn's multinomial
    LogisticRegression (C=1, on standardized features), is fitted to the true labels of the
    training rows only, and y = softmax(teacher logits / temperature) on both splits, with
    y_hard drawn per row (stream "data") and X the set's own features. extra["y_true"] keeps
    the set's labels. n_train, n_test, d and n_classes are ignored (the set fixes them).

    Training on `y` (KL / soft cross-entropy) and on `y_hard` (cross-entropy) can be compared
    on the same inputs. Higher temperature = softer rows (synthetic, d=10, C=5: mean
    max-probability ~0.70 at T=1, ~0.53 at T=2, ~0.45 at T=3)."""

    name, task, card = "soft_targets", "distribution", "datasets/soft_targets.md"
    schema = {**Dataset.schema, "base": str, "n_train": int, "n_test": int, "d": int, "n_classes": int,
              "temperature": float}

    @classmethod
    def shape(cls, section):
        return super().shape(section) if section["base"] == "synthetic" else None   # a public set fixes it

    @classmethod
    def public(cls, section):
        return section["base"] != "synthetic"

    @classmethod
    def examples(cls):
        return [{"base": "synthetic"}, {"base": "digits"}]

    @classmethod
    def check(cls, s, group):
        super().check(s, group)
        require(s["base"] in ("synthetic", *PUBLIC_BASES), f"{group}.base", s["base"],
                "synthetic or a public classification set: " + ", ".join(PUBLIC_BASES))
        _at_least(s, group, 1, "n_train", "n_test", "d")
        _at_least(s, group, 2, "n_classes")
        require(s["temperature"] > 0, f"{group}.temperature", s["temperature"], "a number > 0")

    @classmethod
    def build(cls, s, seed):
        if s["base"] != "synthetic":
            return cls.distil(s, seed)
        g = rng(seed, "data")
        d, C, k = s["d"], s["n_classes"], s["n_train"]
        W = g.standard_normal((d, C))
        X = g.standard_normal((k + s["n_test"], d))
        p = softmax(X @ W / s["temperature"])
        hard = sample_rows(p, g)
        return Table(X=X[:k], y=p[:k], X_test=X[k:], y_test=p[k:], task="distribution", n_classes=C,
                     source="synthetic:soft_targets", extra={"y_hard": hard[:k]}, extra_test={"y_hard": hard[k:]})

    @classmethod
    def distil(cls, s, seed):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        from harness.data import public
        from harness.data.prepare import split

        base = next(c for c in public.DATASETS if c.name == s["base"])
        t = base.build(base.normalize({}, "dataset"), seed)
        X, lab, Xt, lab_t, _, _ = split(t, s["test_size"], seed)
        teacher = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=10_000))
        teacher.fit(X, lab)
        z = teacher.decision_function(np.concatenate([X, Xt]))
        if z.ndim == 1:                                    # binary: one logit, softmax([0, z]) = sigmoid(z)
            z = np.stack([np.zeros_like(z), z], axis=1)
        p = softmax(z / s["temperature"])
        hard = sample_rows(p, rng(seed, "data"))
        k, C = len(X), p.shape[1]
        return Table(X=X, y=p[:k], X_test=Xt, y_test=p[k:], task="distribution", n_classes=C,
                     source=f"{t.source} + LogisticRegression teacher",
                     extra={"y_hard": hard[:k], "y_true": lab}, extra_test={"y_hard": hard[k:], "y_true": lab_t})


class Mixture(Synthetic):
    """A 1-D two-mode Gaussian mixture (task `density`), samples y [n, 1]:

        p(y) = weight N(y; mean1, sd1^2) + (1 - weight) N(y; mean2, sd2^2)

    There is no input: X is a column of ones [n, 1], so a model's output comes from its bias
    alone. `extra["mixture"]` (and extra_test) = dict(weights, means, sds) for exact
    log-likelihoods and KL. standardize defaults to false: X is constant and a density's y is
    never scaled, so there is nothing to scale."""

    name, task, card = "mixture", "density", "datasets/mixture.md"
    schema = {**Dataset.schema, "n_train": int, "n_test": int,
              "weight": float, "mean1": float, "mean2": float, "sd1": float, "sd2": float}

    @classmethod
    def check(cls, s, group):
        super().check(s, group)
        _at_least(s, group, 1, "n_train", "n_test")
        require(0 < s["weight"] < 1, f"{group}.weight", s["weight"], "a number in (0, 1): the weight of mode 1")
        for k in ("sd1", "sd2"):
            require(s[k] > 0, f"{group}.{k}", s[k], "a number > 0")

    @classmethod
    def build(cls, s, seed):
        g = rng(seed, "data")
        n, k = s["n_train"] + s["n_test"], s["n_train"]
        means, sds = np.array([s["mean1"], s["mean2"]]), np.array([s["sd1"], s["sd2"]])
        mode = (g.random(n) >= s["weight"]).astype(np.int64)   # 0 = mode 1 with prob. weight
        y = (means[mode] + sds[mode] * g.standard_normal(n))[:, None]
        X = np.ones((n, 1))
        mix = dict(weights=[s["weight"], 1.0 - s["weight"]], means=means.tolist(), sds=sds.tolist())
        return Table(X=X[:k], y=y[:k], X_test=X[k:], y_test=y[k:], task="density", source="synthetic:mixture",
                     extra={"mixture": mix}, extra_test={"mixture": dict(mix)})


DATASETS = [Linear, Friedman1, Blobs, Classification, SoftTargets, Mixture]
