"""A night of the built-in text model imports no scikit-learn (issue 26): the models key
reads its version from the installed distribution, and the kept SGD fold models score new
rows with `linear.ovr_probabilities`, sklearn's ``predict_proba`` bit for bit."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import spec_dict

from labelgate.spec import parse_spec
from labelgate.stages.label_issues.linear import ovr_probabilities
from labelgate.stages.label_issues.models import FoldModel, fold_model_probabilities
from labelgate.store import reuse

ROOT = Path(__file__).resolve().parents[1]


def _fitted(k: int, d: int, *, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class codes, coef (c, d) and intercept (c,) as a fitted SGD model stores them (c = 1
    for two classes)."""
    rng = np.random.default_rng(seed)
    c = 1 if k == 2 else k
    return np.arange(k), rng.normal(0, 2, (c, d)), rng.normal(0, 1, c)


def _sklearn_proba(classes: np.ndarray, coef: np.ndarray, intercept: np.ndarray,
                   x: object) -> np.ndarray:
    from sklearn.linear_model import SGDClassifier

    sgd = SGDClassifier(loss="log_loss")
    sgd.classes_, sgd.coef_, sgd.intercept_ = classes, coef, intercept
    sgd.n_features_in_ = coef.shape[1]
    out: np.ndarray = sgd.predict_proba(x)
    return out


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("dense", [False, True])
def test_ovr_probabilities_are_sklearns_bit_for_bit(k: int, dense: bool) -> None:
    classes, coef, intercept = _fitted(k, 40, seed=k)
    x = sp.random(300, 40, density=0.2, format="csr", random_state=k, dtype=np.float64)
    x = x.toarray() if dense else x
    got = ovr_probabilities(x, coef, intercept)
    want = _sklearn_proba(classes, coef, intercept, x)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want)  # the same bits, not merely close
    model = FoldModel(classes, coef, intercept)
    assert np.array_equal(fold_model_probabilities(model, x), want)


def test_ovr_probabilities_of_an_all_zero_row_are_uniform_as_sklearns() -> None:
    classes, coef, _ = _fitted(3, 4, seed=1)
    intercept = np.full(3, -1e4)  # expit underflows to 0 for every class
    x = sp.csr_matrix(np.zeros((2, 4)))
    got = ovr_probabilities(x, coef, intercept)
    assert np.array_equal(got, _sklearn_proba(classes, coef, intercept, x))
    assert np.allclose(got, 1 / 3)


def test_models_key_is_the_key_computed_with_sklearn_imported(tmp_path: Path) -> None:
    """The version read from the distribution is ``sklearn.__version__``: a store kept by
    an earlier run (key computed after importing sklearn) is found again."""
    import sklearn

    spec = parse_spec(spec_dict(label_issues={"method": "cross_validated", "folds": 3}),
                      base_dir=tmp_path)
    settings = {**reuse._settings(spec), "sklearn": sklearn.__version__,
                "numpy": np.__version__, "kept_format": 1}
    assert spec.label_issues is not None
    settings["label_issues"] = spec.label_issues.model_dump(
        mode="json", exclude={"refresh", "top", "review_budget"})
    want = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:20]
    assert reuse.models_key(spec) == want


_NIGHT = r"""
import sys
from pathlib import Path
import numpy as np, polars as pl
sys.path.insert(0, sys.argv[1])
from conftest import spec_dict
from labelgate.spec import parse_spec
from labelgate.store import reuse, kept_models
from labelgate.stages import refresh
from labelgate.stages.label_issues.incremental import score_with_kept
from labelgate.stages.label_issues.models import FoldModel, KeptModels, TextVocabulary
spec = parse_spec(spec_dict(label_issues={"method": "cross_validated", "folds": 2}),
                  base_dir=Path(sys.argv[2]))
reuse.models_key(spec)
cols = np.arange(2**22, dtype=np.int64)[::4096]
vocab = TextVocabulary(0, cols, np.ones(len(cols)))
rng = np.random.default_rng(0)
fold = lambda: FoldModel(np.arange(3), rng.normal(size=(3, len(cols))), rng.normal(size=3))
models = KeptModels(vocabulary=vocab, passes=[[fold(), fold()]], n_classes=3, average=True)
new = pl.DataFrame({"id": ["a", "b", "c"], "text": ["so late again", "great crew", "lost bag"]})
probs = score_with_kept(new, models, ids=new.get_column("id"), text_columns=["text"])
assert probs.shape == (3, 3)
print("sklearn" in sys.modules)
"""


def test_a_night_of_the_text_model_imports_no_sklearn(tmp_path: Path) -> None:
    """What a night's label-issue stage runs (models key, kept models' module, scoring new
    rows with kept fold models) leaves scikit-learn unimported (it takes seconds)."""
    out = subprocess.run([sys.executable, "-c", _NIGHT, str(ROOT / "tests"), str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


_FIT = r"""
import sys
import numpy as np, polars as pl
from labelgate.stages.label_issues.models import out_of_fold
texts = ["so late again", "great crew", "lost my bag", "lovely seat", "delayed twice",
         "friendly staff"]
df = pl.DataFrame({"text": [f"{texts[i % 6]} {i % 7}" for i in range(60)]})
fitted = out_of_fold(df, np.arange(60) % 3, text_columns=["text"], folds=3, keep_models=True)
assert fitted.kept is not None
print("sklearn.ensemble" in sys.modules)
"""


def test_a_full_fit_of_the_text_model_imports_no_tree_models() -> None:
    """The tree models (`sklearn.ensemble`, most of a second to import) are imported by the
    tabular folds only, not by a text model's fit."""
    out = subprocess.run([sys.executable, "-c", _FIT], cwd=ROOT, capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
