"""Agreement and consensus: library-backed coefficients against their libraries, hand-written
ones against published worked examples (irrCAC's README / weighting vignette, Krippendorff
2011, Fleiss 1971 via Wikipedia), Dawid-Skene on simulated annotators."""

from __future__ import annotations

import json
from pathlib import Path

import krippendorff
import numpy as np
import polars as pl
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from labelgate.errors import InputError
from labelgate.stages.agreement.annotations import Level
from labelgate.stages.agreement.core import (
    _alpha_features,
    _alpha_from_sums,
    agreement_weights,
    bootstrap_alpha,
    compute_agreement,
    crowdlab_consensus_frame,
    dawid_skene,
    encode_annotations,
    fleiss_kappa,
    fleiss_kappa_generalized,
    gwet_ac,
    krippendorff_alpha,
    majority_vote,
    pair_confusion,
    parse_label_studio_export,
    percent_agreement,
    read_label_studio_export,
    specific_agreement,
    to_cleanlab_multiannotator,
    wide_to_long,
)

FIXTURES = Path(__file__).parent / "fixtures" / "agreement"
NAN = np.nan

# Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 coders x 12 units,
# the same data as irrCAC's cac.raw4raters. Published: alpha nominal 0.743, ordinal 0.815,
# interval 0.849; irrCAC: percent agreement 0.8181818, AC1 0.77544 (pe 0.1903212), Fleiss
# (unequal raters) 0.76117, quadratic-weighted percent agreement 0.9753788, AC2 0.914.
RAW4 = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
])

# irrCAC distrib.6raters: 15 subjects x 5 categories, 6 raters each. irrCAC: AC1 0.4448007,
# Fleiss 0.4139265, alpha 0.4204384, AC2 (quadratic) 0.4837438.
DIST6 = np.array([
    [0, 0, 0, 6, 0], [0, 3, 0, 0, 3], [0, 1, 4, 0, 1], [0, 0, 0, 0, 6], [0, 3, 0, 3, 0],
    [2, 0, 4, 0, 0], [0, 0, 4, 0, 2], [2, 0, 3, 1, 0], [2, 0, 0, 4, 0], [0, 0, 0, 0, 6],
    [1, 0, 0, 5, 0], [1, 1, 0, 4, 0], [0, 3, 3, 0, 0], [1, 0, 0, 5, 0], [0, 2, 0, 3, 1],
])

# irrCAC cont3x3abstractors (2 raters, contingency table). irrCAC: Cohen 0.7964094,
# quadratic Cohen 0.8921569, AC1 0.8493305, quadratic AC2 0.9402369, alpha 0.7972585,
# percent agreement 0.89.
CONT3 = np.array([[13, 0, 0], [0, 20, 7], [0, 4, 56]])

# Fleiss (1971) as on Wikipedia: 10 subjects x 5 categories, 14 raters; kappa = 0.210.
FLEISS_WIKI = np.array([
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
])


def raters_to_long(r: np.ndarray) -> pl.DataFrame:
    """Raters x items matrix (NaN = missing) -> long frame."""
    rows = [(u, f"r{a}", int(r[a, u])) for a in range(r.shape[0]) for u in range(r.shape[1])
            if not np.isnan(r[a, u])]
    return pl.DataFrame(rows, schema=["item", "annotator", "label"], orient="row")


def dist_to_long(counts: np.ndarray, labels: list[int] | None = None) -> pl.DataFrame:
    """Items x categories counts -> long frame with made-up annotators a0, a1, ..."""
    labels = labels or list(range(1, counts.shape[1] + 1))
    rows = []
    for u, row in enumerate(counts):
        a = 0
        for k, n in enumerate(row):
            for _ in range(int(n)):
                rows.append((u, f"a{a}", labels[k]))
                a += 1
    return pl.DataFrame(rows, schema=["item", "annotator", "label"], orient="row")


def table_to_long(table: np.ndarray) -> pl.DataFrame:
    """Two-rater contingency table -> long frame (rater A = row, rater B = column)."""
    rows = []
    u = 0
    for i in range(table.shape[0]):
        for j in range(table.shape[1]):
            for _ in range(int(table[i, j])):
                rows += [(u, "A", i + 1), (u, "B", j + 1)]
                u += 1
    return pl.DataFrame(rows, schema=["item", "annotator", "label"], orient="row")


def random_long(seed: int, n_items: int = 300, n_ann: int = 5, k: int = 4,
                missing: float = 0.4) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n_items)
    noise = rng.random((n_ann, n_items)) < 0.3
    r = np.where(noise, rng.integers(0, k, (n_ann, n_items)), truth[None, :]).astype(float)
    r[rng.random(r.shape) < missing] = np.nan
    return raters_to_long(r)


def metrics(df: pl.DataFrame, **kw: object) -> dict[str, float | int | None]:
    kw.setdefault("n_boot", 0)
    kw.setdefault("min_shared_items", 2)
    return compute_agreement(df, **kw).metrics  # type: ignore[arg-type]


# --------------------------------------------------------------------- published references


@pytest.mark.parametrize(
    ("level", "expected"),
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)],
)
def test_alpha_krippendorff_published_example(level: Level, expected: float) -> None:
    m = metrics(raters_to_long(RAW4), level=level)
    assert m["krippendorff_alpha"] == pytest.approx(expected, abs=5e-4)
    ref = krippendorff.alpha(reliability_data=RAW4, level_of_measurement=level)
    assert m["krippendorff_alpha"] == pytest.approx(ref, abs=1e-12)


def test_raw4raters_matches_irrcac() -> None:
    df = raters_to_long(RAW4)
    m = metrics(df)
    assert m["percent_agreement"] == pytest.approx(0.8181818, abs=1e-7)
    assert m["gwet_ac1"] == pytest.approx(0.77544, abs=5e-6)
    assert m["fleiss_kappa_generalized"] == pytest.approx(0.76117, abs=5e-6)
    # statsmodels' Fleiss needs equal counts: the 8 items rated by all 4 coders.
    assert m["fleiss_kappa_n_items"] == 8
    assert m["fleiss_kappa_labels_per_item"] == 4
    counts = encode_annotations(df).counts()
    sub = counts[counts.sum(axis=1) == 4]
    assert m["fleiss_kappa"] == pytest.approx(sm_fleiss_kappa(sub), abs=1e-12)
    quad = agreement_weights(np.arange(1.0, 6.0), "quadratic")
    assert percent_agreement(counts, weights=quad) == pytest.approx(0.9753788, abs=1e-7)
    assert gwet_ac(counts, weights=quad) == pytest.approx(0.914, abs=5e-4)
    mi = metrics(df, level="interval")  # AC2 with quadratic weights by default
    assert mi["gwet_ac2"] == pytest.approx(0.9140007, abs=5e-4)


def test_distrib_6raters_matches_irrcac() -> None:
    assert gwet_ac(DIST6) == pytest.approx(0.4448007, abs=1e-7)
    assert fleiss_kappa_generalized(DIST6) == pytest.approx(0.4139265, abs=1e-7)
    kappa, n_items, n_raters = fleiss_kappa(DIST6)
    assert kappa == pytest.approx(0.4139265, abs=1e-7)
    assert (n_items, n_raters) == (15, 6)
    assert krippendorff_alpha(DIST6, level="nominal") == pytest.approx(0.4204384, abs=1e-7)
    quad = agreement_weights(np.arange(1.0, 6.0), "quadratic")
    assert gwet_ac(DIST6, weights=quad) == pytest.approx(0.4837438, abs=1e-7)
    m = metrics(dist_to_long(DIST6))
    assert m["gwet_ac1"] == pytest.approx(0.4448007, abs=1e-7)
    assert m["fleiss_kappa"] == pytest.approx(m["fleiss_kappa_generalized"], abs=1e-12)


def test_two_rater_table_matches_irrcac() -> None:
    df = table_to_long(CONT3)
    m = metrics(df)
    assert m["percent_agreement"] == pytest.approx(0.89)
    assert m["mean_cohen_kappa"] == pytest.approx(0.7964094, abs=1e-7)
    assert m["gwet_ac1"] == pytest.approx(0.8493305, abs=1e-7)
    assert m["krippendorff_alpha"] == pytest.approx(0.7972585, abs=1e-7)
    mq = metrics(df, level="interval")  # quadratic weights
    assert mq["mean_cohen_kappa"] == pytest.approx(0.8921569, abs=1e-7)
    assert mq["gwet_ac2"] == pytest.approx(0.9402369, abs=1e-7)


def test_fleiss_wikipedia_example() -> None:
    kappa, n_items, n_raters = fleiss_kappa(FLEISS_WIKI)
    assert kappa == pytest.approx(0.210, abs=5e-4)
    assert (n_items, n_raters) == (10, 14)
    assert fleiss_kappa_generalized(FLEISS_WIKI) == pytest.approx(kappa, abs=1e-12)
    assert metrics(dist_to_long(FLEISS_WIKI))["fleiss_kappa"] == pytest.approx(kappa, abs=1e-12)


def test_specific_agreement_two_raters_is_positive_negative_agreement() -> None:
    # Two raters, 2x2 table a=40 (both yes), b=5, c=10, d=45 (both no):
    # positive agreement 2a/(2a+b+c), negative agreement 2d/(2d+b+c).
    df = table_to_long(np.array([[45, 10], [5, 40]]))  # category 1 = no, 2 = yes
    counts = encode_annotations(df).counts()
    spec = specific_agreement(counts)
    assert spec[0] == pytest.approx(90 / 105)
    assert spec[1] == pytest.approx(80 / 95)
    report = compute_agreement(df, n_boot=0)
    assert report.per_class["specific_agreement"].to_list() == pytest.approx([90 / 105, 80 / 95])


# --------------------------------------------------------------------- against the libraries


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
@pytest.mark.parametrize("seed", [1, 2])
def test_alpha_and_vectorised_alpha_match_krippendorff(level: Level, seed: int) -> None:
    df = random_long(seed)
    enc = encode_annotations(df, level=level)
    wide = to_cleanlab_multiannotator(enc).T  # annotators x items, NaN missing
    ref = krippendorff.alpha(reliability_data=wide, level_of_measurement=level)
    assert metrics(df, level=level)["krippendorff_alpha"] == pytest.approx(ref, abs=1e-12)
    counts = enc.counts().astype(float)
    keep = counts.sum(axis=1) >= 2
    feats = _alpha_features(counts[keep], counts[keep].sum(axis=1), level, enc.values)
    ones = feats.sum(axis=0, keepdims=True)
    assert _alpha_from_sums(ones, level, enc.n_categories)[0] == pytest.approx(ref, abs=1e-10)


def test_cohen_kappa_pairs_match_sklearn() -> None:
    df = random_long(3, n_items=200, n_ann=3)
    report = compute_agreement(df, n_boot=0, min_shared_items=5)
    wide = df.pivot(on="annotator", index="item", values="label")
    for a, b, n_shared, kappa in report.pairs.select(
        "annotator_a", "annotator_b", "n_shared", "cohen_kappa"
    ).iter_rows():
        both = wide.drop_nulls([a, b])
        assert n_shared == both.height
        assert kappa == pytest.approx(cohen_kappa_score(both[a], both[b]), abs=1e-12)
    assert report.metrics["mean_cohen_kappa"] == pytest.approx(report.pairs["cohen_kappa"].mean())


def test_fleiss_equal_counts_matches_statsmodels() -> None:
    rng = np.random.default_rng(5)
    r = rng.integers(1, 4, size=(4, 50)).astype(float)  # every item rated by all 4
    df = raters_to_long(r)
    table, _ = aggregate_raters(r.T.astype(int))
    m = metrics(df)
    assert m["fleiss_kappa"] == pytest.approx(sm_fleiss_kappa(table), abs=1e-12)
    assert m["fleiss_kappa_generalized"] == pytest.approx(m["fleiss_kappa"], abs=1e-12)
    assert m["fleiss_kappa_n_items"] == 50


# --------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_contains_estimate_and_is_seeded() -> None:
    df = random_long(7, n_items=500)
    a = compute_agreement(df, n_boot=300, seed=11).metrics
    b = compute_agreement(df, n_boot=300, seed=11).metrics
    c = compute_agreement(df, n_boot=300, seed=12).metrics
    low, high = a["krippendorff_alpha_ci_low"], a["krippendorff_alpha_ci_high"]
    assert isinstance(low, float) and isinstance(high, float)
    assert low < a["krippendorff_alpha"] < high  # type: ignore[operator]
    assert high - low < 0.2
    assert (low, high) == (b["krippendorff_alpha_ci_low"], b["krippendorff_alpha_ci_high"])
    assert (low, high) != (c["krippendorff_alpha_ci_low"], c["krippendorff_alpha_ci_high"])
    assert a["krippendorff_alpha_n_boot"] == 300


def test_bootstrap_chunks_do_not_change_result() -> None:
    counts = encode_annotations(random_long(8, n_items=400)).counts()
    one = bootstrap_alpha(counts, level="nominal", n_boot=50, seed=3)
    assert one == bootstrap_alpha(counts, level="nominal", n_boot=50, seed=3)
    assert one[2] == 50


# --------------------------------------------------------------------- consensus


def simulate(seed: int, n_items: int = 1500, k: int = 3) -> tuple[pl.DataFrame, np.ndarray]:
    """3 decent annotators, 1 random, 1 adversarial (says the next class 85% of the time)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n_items)
    rows = []
    for acc in [0.75, 0.7, 0.65]:
        right = rng.random(n_items) < acc
        wrong = (truth + rng.integers(1, k, n_items)) % k
        rows.append(np.where(right, truth, wrong))
    rows.append(rng.integers(0, k, n_items))
    rows.append(np.where(rng.random(n_items) < 0.85, (truth + 1) % k, truth))
    r = np.array(rows, dtype=float)
    r[rng.random(r.shape) < 0.2] = np.nan
    return raters_to_long(r), truth


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dawid_skene_beats_majority_with_adversarial_annotator(seed: int) -> None:
    df, truth = simulate(seed)
    gold = pl.DataFrame({"item": np.arange(truth.size), "label": truth})
    report = compute_agreement(df, gold=gold, n_boot=0, min_gold_items=5,
                               min_annotator_agreement=None, min_annotator_gold_accuracy=0.5)
    m = report.metrics
    assert m["dawid_skene_gold_accuracy"] >= m["majority_gold_accuracy"]  # type: ignore[operator]
    assert m["dawid_skene_gold_accuracy"] > 0.85  # type: ignore[operator]
    ann = report.annotators.sort("annotator")
    # DS learns that r4 is systematically wrong and r3 is random.
    ds_acc = ann["dawid_skene_accuracy"].to_list()
    assert ds_acc[4] < 0.25 and ds_acc[3] < 0.5 and min(ds_acc[:3]) > 0.55
    assert ann.filter(pl.col("flagged"))["annotator"].to_list() == ["r3", "r4"]
    assert m["min_annotator_gold_accuracy"] == pytest.approx(ann["gold_accuracy"].min())


def test_dawid_skene_is_deterministic_and_exact_on_perfect_annotators() -> None:
    r = np.tile(np.array([0, 1, 2, 1, 0, 2, 2], dtype=float), (3, 1))
    enc = encode_annotations(raters_to_long(r))
    first, second = dawid_skene(enc), dawid_skene(enc)
    assert first.label_idx.tolist() == [0, 1, 2, 1, 0, 2, 2]
    assert first.converged
    np.testing.assert_array_equal(first.posterior, second.posterior)


def test_majority_tie_rule() -> None:
    df = pl.DataFrame({
        "item": ["x", "x", "y", "y", "z", "z", "z"],
        "annotator": ["good", "bad", "good", "bad", "good", "bad", "other"],
        "label": ["b", "a", "a", "c", "c", "c", "a"],
    })
    # Without gold: ties go to the first label in category order.
    report = compute_agreement(df, categories=["c", "b", "a"], n_boot=0)
    cons = report.consensus.sort("item")
    assert cons["majority"].to_list() == ["b", "c", "c"]
    assert cons["majority_tie_broken_by"].to_list() == ["category_order", "category_order",
                                                        "none"]
    # With gold: the label of the annotator with the best gold accuracy wins.
    gold = pl.DataFrame({"item": ["z"], "label": ["c"]})
    df2 = df.with_columns(
        pl.when(pl.col("annotator") == "bad").then(pl.lit("a")).otherwise(pl.col("label"))
        .alias("label")
    ).filter(~((pl.col("item") == "z") & (pl.col("annotator") == "bad")))
    report = compute_agreement(df2, categories=["c", "b", "a"], gold=gold, min_gold_items=1,
                               n_boot=0)
    cons = report.consensus.sort("item")
    # x: good=b vs bad=a; y: good=a vs bad=a (no tie); z: good=c vs other=a.
    assert cons["majority"].to_list() == ["b", "a", "c"]
    assert cons["majority_tie_broken_by"].to_list() == ["gold_accuracy", "none", "gold_accuracy"]
    assert cons["gold"].to_list() == [None, None, "c"]
    assert report.metrics["n_majority_ties"] == 2


def test_majority_vote_gold_tie_break_direct() -> None:
    enc = encode_annotations(pl.DataFrame(
        {"item": [1, 1], "annotator": ["p", "q"], "label": [0, 1]}
    ))
    assert majority_vote(enc).label_idx.tolist() == [0]
    assert majority_vote(enc, annotator_gold_accuracy=np.array([0.2, 0.9])).label_idx.tolist() \
        == [1]
    assert majority_vote(enc, annotator_gold_accuracy=np.array([NAN, NAN])).tie_broken_by \
        == ["category_order"]


def test_consensus_frame_and_crowdlab_comparison() -> None:
    df, truth = simulate(4, n_items=200)
    enc = encode_annotations(df)
    crowd = crowdlab_consensus_frame(enc.items, truth, categories=enc.categories,
                                     quality=np.full(truth.size, 0.9))
    report = compute_agreement(df, crowdlab=crowd, n_boot=0)
    cons = report.consensus
    assert cons.columns[:4] == ["item", "majority", "dawid_skene", "n_labels"]
    assert {"crowdlab", "crowdlab_quality", "agreement"} <= set(cons.columns)
    agree = cons.join(df, on="item").group_by("item").agg(
        (pl.col("label") == pl.col("majority")).mean().alias("share"), pl.len().alias("n")
    ).sort("item")
    assert agree["share"].to_list() == pytest.approx(cons.sort("item")["agreement"].to_list())
    assert agree["n"].to_list() == cons.sort("item")["n_labels"].to_list()
    comp = report.consensus_comparison
    assert comp.select("method_a", "method_b").rows() == [
        ("majority", "dawid_skene"), ("majority", "crowdlab"), ("dawid_skene", "crowdlab")
    ]
    mv_vs_crowd = comp.filter(pl.col("method_b") == "crowdlab", pl.col("method_a") == "majority")
    expected = (cons["majority"] != cons["crowdlab"]).cast(pl.Float64).mean()
    assert mv_vs_crowd["share_differ"][0] == pytest.approx(expected)
    with pytest.raises(InputError, match="outside"):
        crowdlab_consensus_frame([1], [5], categories=[0, 1])


# --------------------------------------------------------------------- per annotator


def test_leave_one_out_consensus_agreement_and_confusion() -> None:
    df = pl.DataFrame({
        "item": [1, 1, 1, 2, 2, 2, 3, 3, 4],
        "annotator": ["a", "b", "c", "a", "b", "c", "a", "b", "a"],
        "label": ["x", "x", "y", "x", "y", "y", "x", "y", "y"],
    })
    report = compute_agreement(df, n_boot=0, min_shared_items=2)
    ann = report.annotators.sort("annotator")
    # a: item1 others {x,y} tie -> 1/2; item2 others {y,y} -> 0; item3 others {y} -> 0;
    # item 4 is single-labelled (not counted). b: 1/2, 1/2, 0. c: 0, 1/2.
    assert ann["consensus_agreement"].to_list() == pytest.approx([1 / 6, 1 / 3, 1 / 4])
    assert ann["n_items_shared"].to_list() == [3, 3, 2]
    assert ann["n_labels"].to_list() == [4, 3, 2]
    assert ann["flagged"].to_list() == [True, True, True]
    assert ann["flag_reasons"][0] == "consensus_agreement < 0.5"
    assert report.metrics["n_items_single_label"] == 1
    conf = encode_annotations(df).counts()
    table = pair_confusion(conf)
    assert (table == table.T).all()
    m = conf.sum(axis=1)
    assert table.sum() == int((m * (m - 1))[m >= 2].sum())
    long = report.confusion.filter(pl.col("label_a") == "x", pl.col("label_b") == "y")
    assert long["n_pairs"][0] == table[0, 1] == 5


# --------------------------------------------------------------------- readers


def test_label_studio_export() -> None:
    export = parse_label_studio_export(FIXTURES / "label_studio_export.json", item_field="tweet_id")
    assert (export.n_tasks, export.n_annotations, export.n_cancelled, export.n_without_choice) \
        == (4, 7, 1, 1)
    df = export.annotations
    assert df.select("item", "annotator", "label").rows() == [
        ("t1", "7", "positive"), ("t1", "8", "positive"), ("t2", "7", "neutral"),
        ("t2", "c@example.com", "negative"), ("t3", "7", "negative"),
    ]
    assert df["timestamp"].dtype == pl.Datetime("us", "UTC")
    by_task = read_label_studio_export(FIXTURES / "label_studio_export.json")
    assert by_task["item"].unique().sort().to_list() == ["101", "102", "103"]
    report = compute_agreement(df, n_boot=0, min_shared_items=1)
    assert report.metrics["n_items_multi_label"] == 2
    assert report.metrics["percent_agreement"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("payload", "kwargs", "match"),
    [
        ({"not": "a list"}, {}, "expected a JSON list"),
        ([{"id": 1, "data": {}, "annotations": []}], {"item_field": "tweet_id"},
         "no field 'tweet_id'"),
        ([{"id": 1, "annotations": [{"completed_by": 1, "result": [
            {"type": "choices", "from_name": "s", "value": {"choices": ["a", "b"]}}]}]}], {},
         "expected one"),
        ([{"id": 1, "annotations": [{"completed_by": 1, "result": [
            {"type": "choices", "from_name": "s", "value": {"choices": ["a"]}},
            {"type": "choices", "from_name": "t", "value": {"choices": ["b"]}}]}]}], {},
         "pass from_name"),
    ],
)
def test_label_studio_bad_input(tmp_path: Path, payload: object, kwargs: dict[str, str],
                                match: str) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(InputError, match=match) as info:
        parse_label_studio_export(path, **kwargs)
    assert str(path) in str(info.value)


def test_wide_to_long() -> None:
    wide = pl.DataFrame({"id": [1, 2], "ann1": ["a", None], "ann2": ["b", "b"]})
    long = wide_to_long(wide, item_column="id").sort("id", "annotator")
    assert long.rows() == [(1, "ann1", "a"), (1, "ann2", "b"), (2, "ann2", "b")]
    with pytest.raises(InputError, match="ann3"):
        wide_to_long(wide, item_column="id", annotator_columns=["ann3"])


# --------------------------------------------------------------------- edge cases


def test_all_agree_alpha_is_one_when_defined_and_nan_when_not() -> None:
    agree = pl.DataFrame({"item": [1, 1, 2, 2], "annotator": ["a", "b"] * 2,
                          "label": ["x", "x", "y", "y"]})
    m = metrics(agree)
    assert m["krippendorff_alpha"] == 1.0
    assert m["percent_agreement"] == 1.0
    one_value = pl.DataFrame({"item": [1, 1, 2, 2], "annotator": ["a", "b"] * 2,
                              "label": ["x"] * 4})
    report = compute_agreement(one_value, n_boot=100, min_shared_items=1)
    assert np.isnan(report.metrics["krippendorff_alpha"])  # type: ignore[arg-type]
    assert np.isnan(report.metrics["fleiss_kappa"])  # type: ignore[arg-type]
    assert report.metrics["percent_agreement"] == 1.0
    assert any("undefined" in n for n in report.notes)
    out = report.to_dict()
    assert out["metrics"]["krippendorff_alpha"] is None
    json.dumps(out, allow_nan=False)


def test_single_annotator_and_single_label_items() -> None:
    df = pl.DataFrame({"item": [1, 2, 3], "annotator": ["a"] * 3, "label": [0, 1, 1]})
    report = compute_agreement(df, n_boot=100)
    m = report.metrics
    assert m["n_items_single_label"] == 3 and m["n_items_multi_label"] == 0
    for key in ("percent_agreement", "krippendorff_alpha", "fleiss_kappa", "gwet_ac1",
                "mean_cohen_kappa"):
        assert np.isnan(m[key])  # type: ignore[arg-type]
    assert report.pairs.height == 0
    assert report.consensus["majority"].to_list() == [0, 1, 1]
    assert report.consensus["dawid_skene"].to_list() == [0, 1, 1]
    json.dumps(report.to_dict(), allow_nan=False)


def test_annotator_with_one_label_and_skipped_pairs() -> None:
    df = random_long(9, n_items=60, n_ann=3, missing=0.0).vstack(
        pl.DataFrame({"item": [0], "annotator": ["lonely"], "label": [1]})
    )
    report = compute_agreement(df, n_boot=0, min_shared_items=10)
    lonely = report.annotators.filter(pl.col("annotator") == "lonely")
    assert lonely["n_labels"][0] == 1 and lonely["n_kappa_pairs"][0] == 0
    assert report.metrics["n_cohen_pairs_skipped"] == 3
    assert report.pairs.filter(pl.col("n_shared") < 10)["cohen_kappa"].null_count() == 3
    assert any("fewer than 10" in n for n in report.notes)


def test_ordinal_string_labels_use_declared_order() -> None:
    order = ["low", "mid", "high"]
    df = pl.DataFrame({
        "item": [1, 1, 2, 2, 3, 3, 4, 4],
        "annotator": ["a", "b"] * 4,
        "label": ["low", "mid", "mid", "high", "high", "high", "low", "low"],
    })
    report = compute_agreement(df, level="ordinal", categories=order, n_boot=0,
                               min_shared_items=1)
    codes = {c: i for i, c in enumerate(order)}
    a = [codes[x] for x in df.filter(pl.col("annotator") == "a")["label"]]
    b = [codes[x] for x in df.filter(pl.col("annotator") == "b")["label"]]
    assert report.metrics["mean_cohen_kappa"] == pytest.approx(
        cohen_kappa_score(a, b, weights="linear")
    )
    ref = krippendorff.alpha(reliability_data=np.array([a, b], dtype=float),
                             level_of_measurement="ordinal")
    assert report.metrics["krippendorff_alpha"] == pytest.approx(ref)
    assert report.per_class["category"].to_list() == order
    with pytest.raises(InputError, match="needs the category order"):
        compute_agreement(df, level="ordinal")


@pytest.mark.parametrize(
    ("frame", "kwargs", "match"),
    [
        (pl.DataFrame({"item": [], "annotator": [], "label": []}), {}, "no annotation rows"),
        (pl.DataFrame({"item": [1], "annotator": ["a"], "label": ["x"]}), {"label_column": "y"},
         r"missing column\(s\) \['y'\]"),
        (pl.DataFrame({"item": [1, 2], "annotator": ["a", "a"], "label": ["x", "zz"]}),
         {"categories": ["x", "y"]}, r"column 'label': 1 label value\(s\) not in .*\['zz'\]"),
        (pl.DataFrame({"item": [1, None], "annotator": ["a", "a"], "label": ["x", "x"]}), {},
         "column 'item' has 1 null"),
        (pl.DataFrame({"item": [1, 1], "annotator": ["a", "a"], "label": ["x", "y"]}), {},
         "label an item twice"),
        (pl.DataFrame({"item": [1], "annotator": ["a"], "label": ["x"]}), {"level": "interval"},
         "needs numeric labels"),
        (pl.DataFrame({"item": [1], "annotator": ["a"], "label": [None]}, schema_overrides={
            "label": pl.String}), {}, "all null"),
    ],
)
def test_bad_input_names_the_problem(frame: pl.DataFrame, kwargs: dict[str, object],
                                     match: str) -> None:
    with pytest.raises(InputError, match=match):
        compute_agreement(frame, n_boot=0, **kwargs)  # type: ignore[arg-type]


def test_gold_labels_outside_categories_are_named() -> None:
    df = pl.DataFrame({"item": [1, 1], "annotator": ["a", "b"], "label": ["x", "y"]})
    gold = pl.DataFrame({"item": [1], "label": ["nope"]})
    with pytest.raises(InputError, match=r"gold: column 'label'.*\['nope'\]"):
        compute_agreement(df, gold=gold, n_boot=0)


def test_duplicates_keep_latest_and_null_labels_are_counted() -> None:
    df = pl.DataFrame({
        "item": [1, 1, 1, 2, 2],
        "annotator": ["a", "a", "b", "a", "b"],
        "label": ["x", "y", "y", None, "x"],
        "timestamp": [1, 2, 1, 1, 1],
    })
    report = compute_agreement(df, n_boot=0, min_shared_items=1)
    m = report.metrics
    assert (m["n_input_rows"], m["n_labels"], m["n_null_labels"], m["n_duplicates_dropped"]) \
        == (5, 3, 1, 1)
    assert m["percent_agreement"] == 1.0  # item 1: a's latest label y == b's y
    assert report.consensus.sort("item")["majority"].to_list() == ["y", "x"]


def test_integer_labels_match_string_categories_and_gold_item_dtype() -> None:
    df = pl.DataFrame({"item": ["1", "1", "2", "2"], "annotator": ["a", "b"] * 2,
                       "label": [1, 1, 2, 1]})
    gold = pl.DataFrame({"item": [1, 2], "label": ["1", "2"]})
    report = compute_agreement(df, categories=[1, 2], gold=gold, min_gold_items=1, n_boot=0)
    assert report.annotators.sort("annotator")["gold_accuracy"].to_list() == [1.0, 0.5]


def test_interval_string_numbers_are_ordered_by_value() -> None:
    df = pl.DataFrame({"item": [1, 1, 2, 2, 3, 3], "annotator": ["a", "b"] * 3,
                       "label": ["9", "10", "2", "2", "10", "9"]})
    report = compute_agreement(df, level="interval", n_boot=0, min_shared_items=1)
    assert report.categories == ["2", "9", "10"]
    a, b = [9.0, 2.0, 10.0], [10.0, 2.0, 9.0]
    ref = krippendorff.alpha(reliability_data=np.array([a, b]), level_of_measurement="interval")
    assert report.metrics["krippendorff_alpha"] == pytest.approx(ref)
    assert report.metrics["mean_cohen_kappa"] == pytest.approx(
        cohen_kappa_score([1, 0, 2], [2, 0, 1], weights="quadratic")
    )
