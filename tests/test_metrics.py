"""scnotebook.metrics and scnotebook.peers: label transfer, integration metrics, open-set AUC, the comparison table."""
import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

from scnotebook.align import align, rotated_pair
from scnotebook.metrics import (BARON_LABEL_MAP, balanced_accuracy, evaluate, harmonize_labels, integration_metrics,
                                label_transfer, open_set_auc, resolve_label_map)
from scnotebook.peers import compare_methods, criterion_vs_accuracy, ortholog_pairs, summarize


def _ad(X, labels, sp):
    a = AnnData(np.zeros((len(X), 1), np.float32), obsm={"X_e": np.asarray(X, np.float32)})
    a.obs_names = [f"{sp}{i}" for i in range(len(X))]
    a.obs["cell_type"] = pd.Categorical(labels); return a


@pytest.fixture(scope="module")
def toy():
    src, tgt, R = rotated_pair(300, 8, seed=1)
    align(src, tgt, method="procrustes", key_added="X_good")
    align(src, tgt, method="none", key_added="X_none")
    return src, tgt


def test_label_transfer_separates_good_from_none(toy):
    src, tgt = toy
    g, n = label_transfer(src, tgt, use_rep="X_good"), label_transfer(src, tgt, use_rep="X_none")
    assert g["accuracy"] > 0.95 and g["logreg_accuracy"] > 0.9 and n["accuracy"] < 0.5
    assert g["target_only_types"] == ["type10"] and 0 < g["max_reachable"] < 1
    assert g["knn_accuracy_all"] == pytest.approx(g["accuracy"] * g["max_reachable"])
    assert g["majority_accuracy"] < 0.3 and g["n_evaluated"] < g["n_target"]


def test_label_transfer_exact_cases():
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, .1, (20, 3)), rng.normal(5, .1, (20, 3)), rng.normal(-5, .1, (5, 3))]
    s = _ad(X[:40], ["a"] * 20 + ["T_cell"] * 20, "m")
    t = _ad(X, ["a"] * 20 + ["t_cell"] * 20 + ["acinar"] * 5, "h")
    r = label_transfer(s, t, use_rep="X_e", label_map="baron", k=3)
    assert r["accuracy"] == 1 and r["balanced_accuracy"] == 1 and r["max_reachable"] == pytest.approx(40 / 45)
    assert r["majority_accuracy"] == 0.5 and r["majority_balanced_accuracy"] == 0.5
    assert r["shared_types"] == ["T_cell", "a"] and r["target_only_types"] == ["acinar"]
    with pytest.raises(ValueError, match="share no 'cell_type' label"): label_transfer(_ad(X[:40], ["x"] * 40, "m"), t, use_rep="X_e")
    assert balanced_accuracy(np.array(["a", "a", "b"]), np.array(["a", "b", "b"])) == pytest.approx(0.75)


def test_label_map():
    assert list(harmonize_labels(["t_cell", "T_cell", "beta"], "baron")) == ["T_cell", "T_cell", "beta"]
    assert resolve_label_map(None) == {} and resolve_label_map({"a": 1}) == {"a": "1"}
    assert resolve_label_map("baron") is BARON_LABEL_MAP
    with pytest.raises(ValueError, match="unknown label map 'pancreas'"): resolve_label_map("pancreas")
    with pytest.raises(TypeError, match="label_map must be a dict"): resolve_label_map(["a"])


def test_bad_input(toy):
    src, tgt = toy
    with pytest.raises(KeyError, match="no label column 'celltype'"): label_transfer(src, tgt, use_rep="X_good", label_key="celltype")
    b = src.copy(); b.obsm["X_good"] = b.obsm["X_good"][:, :3]
    with pytest.raises(ValueError, match="needs both species in one space"): label_transfer(b, tgt, use_rep="X_good")
    with pytest.raises(ValueError, match="differ in dimension"): integration_metrics(b, tgt, use_rep="X_good")
    n = src.copy(); n.obsm["X_good"][0, 0] = np.nan
    with pytest.raises(ValueError, match="contains NaN or inf"): label_transfer(n, tgt, use_rep="X_good")
    with pytest.raises(ValueError, match="target has no cells"): evaluate(src, tgt[:0].copy(), use_rep="X_good")
    with pytest.raises(ValueError, match="unknown classifier 'svm'"): label_transfer(src, tgt, use_rep="X_good", classifiers=("svm",))


def test_integration_and_open_set(toy):
    src, tgt = toy
    g, n = integration_metrics(src, tgt, use_rep="X_good"), integration_metrics(src, tgt, use_rep="X_none")
    for key in ("nmi", "label_asw", "batch_asw", "graph_connectivity", "knn_mixing"):
        assert 0 <= g[key] <= 1 and 0 <= n[key] <= 1, key
    assert g["ari"] > n["ari"] and g["knn_mixing"] > n["knn_mixing"] + 0.1 and g["batch_asw"] > n["batch_asw"]
    o = open_set_auc(src, tgt, use_rep="X_good")
    assert o["open_set_auc_target"] > 0.9 and o["n_open_target"] > 0 and np.isnan(o["open_set_auc_source"])
    e = evaluate(src, tgt, use_rep="X_good")
    assert {"accuracy", "reverse_accuracy", "ari", "knn_mixing", "open_set_auc"} <= set(e)


def test_compare_methods_and_criterion_check(toy):
    src, tgt = toy
    df = compare_methods(src, tgt, methods=["none", "procrustes", "muse"], seeds=[0, 1], epochs=1,
                         method_options={"muse": {"epoch_size": 500}}, show_progress=False)
    assert len(df) == 6 and set(df.method) == {"none", "procrustes", "muse"}
    s = summarize(df)
    assert s.loc["procrustes", ("accuracy", "mean")] > 0.95 > s.loc["none", ("accuracy", "mean")]
    f = summarize(df, ["accuracy"], formatted=True)
    assert f.loc["none", "seeds"] == 2 and "±" in f.loc["none", "accuracy"]
    assert "X_peer" not in src.obsm
    with pytest.raises(ValueError, match="unknown method 'cca'"): compare_methods(src, tgt, methods=["cca"])
    cands, summ = criterion_vs_accuracy(src, tgt, seeds=[0], restarts=2, epochs=1, epoch_size=500)
    assert len(cands) == 2 and cands.chosen.sum() == 1 and summ["best_accuracy"] >= summ["chosen_accuracy"]


def test_ortholog_pairs_picks_columns_and_drops_duplicates():
    orth = pd.DataFrame({"human.gene.name": ["A", "B", "C", "C"], "gene.name": ["a", "b", "c", "c2"], "x": [1, 2, 3, 4]})
    p = ortholog_pairs(orth, ["a", "b", "c", "c2"], ["A", "B", "C"])
    assert list(p.source) == ["a", "b"] and list(p.target) == ["A", "B"]
    with pytest.raises(ValueError, match="no ortholog pair"): ortholog_pairs(orth, ["q"], ["r"])


def test_baron_ortholog_peer_is_strong(shared):
    shared("baron_pancreas")
    from scnotebook.data import baron_pancreas, baron_orthologs
    from scnotebook.peers import ortholog_harmony
    d = baron_pancreas(); m, h = d["mouse"], d["human"]
    pairs = ortholog_harmony(m, h, baron_orthologs(), seed=0)
    assert len(pairs) > 10000
    r = label_transfer(m, h, use_rep="X_ortho_harmony", label_map="baron")
    assert r["accuracy"] > 0.93, r["accuracy"]
    assert r["max_reachable"] == pytest.approx((h.obs.cell_type.isin(["acinar", "mast", "epsilon"]) == False).mean())


def _with_missing(a, n, value):
    "A copy of `a` whose first `n` cells have the label `value` (NaN, None...)."
    a = a.copy(); lab = a.obs["cell_type"].astype(object).to_numpy(); lab[:n] = value
    a.obs["cell_type"] = lab; return a


@pytest.mark.parametrize("missing", [np.nan, None, "nan"])
def test_unlabelled_cells_are_left_out_with_a_count(toy, missing, caplog):
    "NaN / None / 'nan' labels are no cell type: every label-based measure equals the one on the labelled cells alone."
    src, tgt = toy
    s, t = _with_missing(src, 6, missing), _with_missing(tgt, 4, missing)
    with caplog.at_level("WARNING", logger="scnotebook"):
        got = evaluate(s, t, use_rep="X_good")
    assert "6 of 300 cells of source have no 'cell_type' label (NaN): left out" in caplog.text
    assert "4 of 300 cells of target have no 'cell_type' label" in caplog.text
    assert caplog.text.count("6 of 300 cells of source") == 1            # logged once by evaluate, not per measure
    assert pd.Series(got).equals(pd.Series(evaluate(s[6:].copy(), t[4:].copy(), use_rep="X_good")))
    lt = label_transfer(s, t, use_rep="X_good")
    assert lt["n_source"] == 294 and not any("nan" in str(x).lower() for k in ("shared_types", "source_only_types",
                                                                              "target_only_types") for x in lt[k])
    assert list(harmonize_labels(["alpha", missing], "baron")) == ["alpha", None]


def test_label_map_naming_absent_types_warns(toy, caplog):
    src, tgt = toy
    with caplog.at_level("WARNING", logger="scnotebook"):
        label_transfer(src, tgt, use_rep="X_good", label_map={"type1": "type1", "tpye2": "type2", "ghost": "type3"})
    assert "names type(s) absent from both datasets: ['ghost', 'tpye2']" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="scnotebook"):
        label_transfer(src, tgt, use_rep="X_good", label_map={"type1": "type1"})
    assert "absent from both" not in caplog.text


@pytest.mark.parametrize("call, msg", [
    (lambda s, t: label_transfer(s, t, use_rep="X_good", k=0), "k must be an integer >= 1, got 0"),
    (lambda s, t: label_transfer(s, t, use_rep="X_good", k=2.5), "k must be an integer >= 1, got 2.5"),
    (lambda s, t: label_transfer(s, t, use_rep="X_good", classifiers=()), "classifiers must be a non-empty"),
    (lambda s, t: integration_metrics(s, t, use_rep="X_good", k=0), "k must be an integer >= 1"),
    (lambda s, t: integration_metrics(s, t, use_rep="X_good", max_cells=1), "max_cells must be an integer >= 2"),
    (lambda s, t: open_set_auc(s, t, use_rep="X_good", k=-3), "k must be an integer >= 1, got -3"),
])
def test_numeric_options_are_range_checked(toy, call, msg):
    with pytest.raises(ValueError, match=msg.replace("(", r"\(")): call(*toy)
