"""A night scores new rows with the kept fold models in NumPy (`linear.ovr_probabilities`):
the probabilities are sklearn's ``predict_proba`` on real text, and the night imports
neither scikit-learn nor scipy.special."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
from test_night_no_sklearn import _NIGHT

from labelgate.stages.label_issues.models import fold_model_probabilities, out_of_fold
from labelgate.stages.label_issues.text_features import joined_text, transform_text

ROOT = Path(__file__).resolve().parents[1]
TWEETS = ROOT / "data" / "examples" / "tweets" / "items"


def _tweets() -> pl.DataFrame:
    frame = pl.read_csv(sorted(TWEETS.glob("*.csv"))[0], infer_schema=False)
    text = next(c for c in frame.columns if "text" in c.lower())
    label = next(c for c in frame.columns if "sentiment" in c.lower() or "label" in c.lower())
    return frame.select(pl.col(text).alias("text"), pl.col(label).alias("label")).drop_nulls()


def test_kept_models_score_real_text_as_sklearns_predict_proba() -> None:
    from sklearn.linear_model import SGDClassifier

    tweets = _tweets()
    assert tweets.height >= 400
    train, new = tweets.head(300), tweets.slice(300, 100)
    classes = sorted(train.get_column("label").unique().to_list())
    codes = train.get_column("label").replace_strict(classes, list(range(len(classes))),
                                                     return_dtype=pl.Int64).to_numpy()
    fitted = out_of_fold(train.select("text"), codes, text_columns=["text"], folds=3,
                         keep_models=True, char_ngrams=True)
    assert fitted.kept is not None
    x = transform_text(joined_text(new.select("text"), ["text"]), fitted.kept.vocabulary)
    assert x.nnz > 0
    for models in fitted.kept.passes:
        for model in models:
            sgd = SGDClassifier(loss="log_loss")
            sgd.classes_, sgd.coef_, sgd.intercept_ = model.classes, model.coef, model.intercept
            sgd.n_features_in_ = model.coef.shape[1]
            want = sgd.predict_proba(x)
            got = fold_model_probabilities(model, x)
            assert got.shape == (new.height, len(model.classes))
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
            assert not np.allclose(got, 1 / len(model.classes))  # the text moved them


def test_a_night_imports_no_scipy_special(tmp_path: Path) -> None:
    night = _NIGHT.replace('print("sklearn" in sys.modules)',
                           'print("sklearn" in sys.modules or "scipy.special" in sys.modules)')
    out = subprocess.run([sys.executable, "-c", night, str(ROOT / "tests"), str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
