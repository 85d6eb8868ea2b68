"""Wasserstein affinity between cell types: real data (Zeisel 2015, Baron across species), exact vs sliced, bad input, the pipeline stage."""
import json

import numpy as np
import pandas as pd
import pytest
import anndata as ad
from scipy.stats import spearmanr

from scnotebook.affinity import (wasserstein_affinity, affinity_agreement, taxonomy_distance, check_taxonomy,
                                 plot_affinity, write_affinity, read_affinity, cross_affinity,
                                 score_cross_affinity, cross_affinity_summary, plot_cross_affinity)
from scnotebook.stages import run_affinity

NEURONS = {"interneurons", "pyramidal SS", "pyramidal CA1"}


def zeisel(path, n_pcs=20, max_per_type=None):
    "Zeisel 2015 (200 genes) with a quick log1p + PCA in obsm['X_pca20'] and its 3-level taxonomy (without '(none)')."
    from sklearn.decomposition import PCA
    a = ad.read_h5ad(path / "zeisel2015_cortex_200genes.h5ad")
    a = a[a.obs["level2class"].astype(str) != "(none)"].copy()
    a.obs["cell_type"] = a.obs["level2class"].astype(str)
    if max_per_type:
        idx = a.obs.groupby("cell_type", observed=True).head(max_per_type).index
        a = a[idx].copy()
    X = a.X.toarray(); X = np.log1p(X / X.sum(1, keepdims=True) * 1e4)
    a.obsm["X_pca20"] = PCA(n_pcs, random_state=0).fit_transform(X - X.mean(0))
    tax = a.obs.groupby("cell_type", observed=True)["level1class"].first().astype(str).to_frame()
    tax["neuron"] = np.where(tax["level1class"].isin(NEURONS), "neuron", "non-neuron")
    return a, tax


def toy(n_types=8, n_cells=60, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    tax = pd.DataFrame({"mid": [f"M{i // 2}" for i in range(n_types)], "coarse": [f"C{i // 4}" for i in range(n_types)]},
                       index=[f"T{i}" for i in range(n_types)])
    cc = {c: rng.normal(0, 10, dim) for c in tax.coarse.unique()}
    mc = {m: cc[c] + rng.normal(0, 4, dim) for m, c in zip(tax.mid, tax.coarse)}
    X = np.vstack([mc[m] + rng.normal(0, 1.5, dim) + rng.normal(0, 1, (n_cells, dim)) for m in tax.mid])
    a = ad.AnnData(np.zeros((len(X), 1), np.float32),
                   obs=pd.DataFrame({"cell_type": np.repeat(tax.index, n_cells)}, index=[f"c{i}" for i in range(len(X))]))
    a.obsm["X_emb"] = X
    return a, tax


def test_zeisel_affinity_follows_taxonomy(shared):
    a, tax = zeisel(shared("zeisel2015_cortex"))
    A = wasserstein_affinity(a, use_rep="X_pca20", max_cells=60, show_progress=False)
    assert A.shape == (47, 47) and list(A.index) == sorted(a.obs.cell_type.unique())
    assert np.allclose(A.values, A.values.T) and np.all(np.diag(A.values) == 0) and (A.values[~np.eye(47, dtype=bool)] > 0).all()
    agree = affinity_agreement(A, tax, n_permutations=199)
    assert agree["spearman"] > 0.6 and agree["p_value"] <= 0.01, agree
    # neurons are further from non-neurons than from each other (the paper's Fig. 5 observation)
    T = taxonomy_distance(tax).loc[A.index, A.index].values
    assert A.values[T == 3].mean() > A.values[T == 2].mean() > A.values[T == 1].mean()
    assert a.uns["scnotebook"]["affinity"]["X_pca20"]["method"] == "exact"


def test_exact_and_sliced_agree_and_are_seeded():
    a, tax = toy()
    ex = wasserstein_affinity(a, use_rep="X_emb", show_progress=False)
    sl = wasserstein_affinity(a, use_rep="X_emb", method="sliced", n_projections=100, show_progress=False)
    iu = np.triu_indices(len(ex), 1)
    assert spearmanr(ex.values[iu], sl.values[iu]).correlation > 0.9
    assert (sl.values[iu] <= ex.values[iu] + 1e-9).all()          # sliced W1 never exceeds W1
    pot = wasserstein_affinity(a, use_rep="X_emb", method="sliced", n_projections=100, backend="pot", show_progress=False)
    assert np.allclose(sl.values, pot.values, atol=1e-9)            # the fast path equals ot.sliced_wasserstein_distance
    # the subsample above the cap is seeded: same seed same matrix, another seed another
    s0 = wasserstein_affinity(a, use_rep="X_emb", max_cells=20, seed=0, show_progress=False)
    s0b = wasserstein_affinity(a, use_rep="X_emb", max_cells=20, seed=0, show_progress=False)
    s1 = wasserstein_affinity(a, use_rep="X_emb", max_cells=20, seed=1, show_progress=False)
    assert np.array_equal(s0.values, s0b.values) and not np.array_equal(s0.values, s1.values)


def test_known_distances_and_normalisations():
    x = np.random.default_rng(0).normal(size=(30, 2))
    a = ad.AnnData(np.zeros((90, 1)), obs=pd.DataFrame({"t": ["a"] * 30 + ["b"] * 30 + ["c"] * 30}, index=[str(i) for i in range(90)]))
    a.obsm["E"] = np.vstack([x, x + [6.0, 8.0], 3 * x])
    A = wasserstein_affinity(a, use_rep="E", label_key="t", show_progress=False)
    assert A.loc["a", "b"] == pytest.approx(10.0)
    C = wasserstein_affinity(a, use_rep="E", label_key="t", normalize="center", show_progress=False)
    assert C.loc["a", "b"] == pytest.approx(0.0, abs=1e-6) and C.loc["a", "c"] > 0
    S = wasserstein_affinity(a, use_rep="E", label_key="t", normalize="standardize", show_progress=False)
    assert S.loc["a", "c"] == pytest.approx(0.0, abs=1e-6)


def test_bad_input_errors():
    a, tax = toy(n_types=4, n_cells=10)
    one = a[np.r_[0:10, 10:11, 20:40]].copy()                    # T1 keeps one cell
    with pytest.raises(ValueError, match=r"fewer than 2 cells.*'T1' \(1 cell\)"):
        wasserstein_affinity(one, use_rep="X_emb")
    A = wasserstein_affinity(a, use_rep="X_emb", show_progress=False)
    with pytest.raises(ValueError, match=r"missing from the taxonomy: \['T3'\]"):
        affinity_agreement(A, tax.drop("T3"))
    bad = tax.copy(); bad.loc["T1", "coarse"] = "elsewhere"
    with pytest.raises(ValueError, match="levels do not nest: group 'M0'"):
        affinity_agreement(A, bad)
    with pytest.raises(KeyError, match="label_key='nope'"):
        wasserstein_affinity(a, use_rep="X_emb", label_key="nope")
    a.obsm["X_nan"] = a.obsm["X_emb"].copy(); a.obsm["X_nan"][3, 2] = np.nan
    with pytest.raises(ValueError, match="contains NaN or inf"):
        wasserstein_affinity(a, use_rep="X_nan")
    with pytest.raises(ValueError, match="normalize='zscore'"):
        wasserstein_affinity(a, use_rep="X_emb", normalize="zscore")


def test_permutation_pvalue_is_not_significant_for_random_matrix():
    _, tax = toy(n_types=8)
    rng = np.random.default_rng(3); M = rng.random((8, 8)); M = M + M.T; np.fill_diagonal(M, 0)
    A = pd.DataFrame(M, index=tax.index, columns=tax.index)
    r = affinity_agreement(A, tax, n_permutations=199, seed=0)
    assert r["p_value"] > 0.05 and -1 <= r["spearman"] <= 1


def test_plot_and_csv_roundtrip(tmp_path):
    import matplotlib.pyplot as plt
    a, tax = toy()
    A = wasserstein_affinity(a, use_rep="X_emb", show_progress=False)
    fig = plot_affinity(A, tax)
    assert fig is not None and not list(tmp_path.iterdir())          # nothing written unless asked
    plot_affinity(A, tax, path=tmp_path / "a.png"); plt.close("all")
    assert (tmp_path / "a.png").stat().st_size > 1000
    B = read_affinity(write_affinity(A, tmp_path / "a.csv"))
    assert np.allclose(B.values, A.values, rtol=1e-5) and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def make_run(tmp_path, adatas, taxonomy=None, **evaluation):
    from scnotebook.stages import Run
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = {"seed": 0, "device": "cpu", "figures": {"formats": ["png"]},
           "datasets": {n: {"source": n, "species": "mouse", "label_key": "cell_type"} for n in adatas},
           "evaluation": {"affinity_max_cells": 30, "bootstrap": 5, **evaluation},
           "baselines": {"methods": ["pca", "autoencoder"], "epochs": 2}}
    if taxonomy is not None:
        taxonomy.to_csv(tmp_path / "tax.csv")
        cfg["evaluation"].update(taxonomy=str(tmp_path / "tax.csv"), taxonomy_dataset=next(iter(adatas)))
    run = Run(tmp_path / "run", config=cfg)
    run.write_adatas("04_train", adatas)
    return run


def test_pipeline_stage(tmp_path):
    a, tax = toy(); a.obsm["X_intense"] = a.obsm.pop("X_emb")
    b, _ = toy(seed=1); b.obsm["X_scn"] = b.obsm.pop("X_emb")
    run = make_run(tmp_path, {"mouse": a, "other": b}, tax)
    m = run_affinity(run.path)
    out = run.path / "06_affinity"
    for f in ("affinity_mouse.csv", "affinity_mouse.png", "affinity_other.csv", "metrics.json"):
        assert (out / f).exists(), f
    assert m["datasets"]["mouse"]["use_rep"] == "X_intense" and m["datasets"]["other"]["use_rep"] == "X_scn"
    assert m["datasets"]["mouse"]["spearman"] > 0.5 and "agreement_skipped" in m["datasets"]["other"]
    assert read_affinity(out / "affinity_mouse.csv").shape == (8, 8)
    assert "05_align" in m["cross_species"]["skipped"] and not (out / "cross_affinity.csv").exists()


def aligned_pair(n_cells=200, dim=6, n_types=5, seed=0):
    "A source/target pair (target-only 'type<n_types>') put into one space with the known rotation."
    from scnotebook.align import rotated_pair
    src, tgt, R = rotated_pair(n_cells=n_cells, dim=dim, n_types=n_types, seed=seed)
    src.obsm["X_scn_aligned"] = src.obsm["X_scn"] @ R.T; tgt.obsm["X_scn_aligned"] = tgt.obsm["X_scn"].copy()
    return src, tgt


def test_baron_cross_species_map(shared, monkeypatch):
    "Baron mouse -> human: every shared human type's nearest mouse type is its partner; the human-only types stand out."
    monkeypatch.setenv("SCNOTEBOOK_DATA", str(shared("baron_pancreas").parent))
    from scnotebook.peers import baron_pair, ortholog_harmony
    from scnotebook.align import align
    mouse, human, orth = baron_pair()
    align(mouse, human, use_rep="X_pca_species", method="procrustes", label_map="baron")   # supervised: X_scn_aligned
    ortholog_harmony(mouse, human, orth)                                                    # X_ortho_harmony
    uns = (dict(mouse.uns["scnotebook"]), dict(human.uns["scnotebook"]))
    D = cross_affinity(mouse, human, label_map="baron", show_progress=False)
    assert D.shape == (13, 14) and "T_cell" in D.index and "T_cell" in D.columns and "t_cell" not in D.columns
    assert (dict(mouse.uns["scnotebook"]), dict(human.uns["scnotebook"])) == uns     # nothing written
    sc = score_cross_affinity(D)
    s, so = cross_affinity_summary(sc), cross_affinity_summary(sc, "source")
    assert (s["n_shared"], s["n_partner_nearest"], s["mean_partner_rank"]) == (11, 11, 1.0), s
    assert s["open_set_flagged"] == s["open_set_truth"] == ["acinar", "epsilon", "mast"], s
    assert so["open_set_flagged"] == so["open_set_truth"] == ["B_cell", "immune_other"], so
    # orthologs + Harmony: the partners are found too; the scale-free median rule is not clean there (see the notebook)
    O = cross_affinity(mouse, human, use_rep="X_ortho_harmony", label_map="baron", show_progress=False)
    assert cross_affinity_summary(score_cross_affinity(O))["n_partner_nearest"] == 11


def test_cross_affinity_matches_within_and_is_seeded():
    a, _ = toy()
    A = wasserstein_affinity(a, use_rep="X_emb", max_cells=20, seed=3, show_progress=False)
    X = cross_affinity(a, a, use_rep="X_emb", max_cells=20, seed=3, show_progress=False)
    assert np.allclose(X.values, A.values, atol=1e-6) and list(X.index) == list(A.index)   # same samples, same distance
    src, tgt = aligned_pair()
    sl = cross_affinity(src, tgt, method="sliced", n_projections=50, show_progress=False)
    pot = cross_affinity(src, tgt, method="sliced", n_projections=50, backend="pot", show_progress=False)
    ex = cross_affinity(src, tgt, show_progress=False)
    assert np.allclose(sl.values, pot.values, atol=1e-9) and (sl.values <= ex.values + 1e-9).all()
    assert [sl.loc[t].idxmin() for t in sl.index] == list(sl.index)
    s0, s0b = (cross_affinity(src, tgt, max_cells=10, seed=0, show_progress=False) for _ in range(2))
    s1 = cross_affinity(src, tgt, max_cells=10, seed=1, show_progress=False)
    assert np.array_equal(s0.values, s0b.values) and not np.array_equal(s0.values, s1.values)
    assert ex.attrs["max_cells"] == 300 and sl.attrs["max_cells"] == 5000 and sl.attrs["n_projections"] == 50
    assert ex.attrs["source_species"] == "mouse" and ex.attrs["target_species"] == "human"


def test_cross_affinity_errors():
    src, tgt = aligned_pair(n_cells=120, dim=4, n_types=3)
    with pytest.raises(KeyError, match=r"source.obsm has no 'X_nope'"):
        cross_affinity(src, tgt, use_rep="X_nope")
    t2 = tgt.copy(); t2.obsm["X_scn_aligned"] = t2.obsm["X_scn_aligned"][:, :3]
    with pytest.raises(ValueError, match=r"has 4 dimensions but target.obsm\['X_scn_aligned'\] has 3.*align them first"):
        cross_affinity(src, t2)
    with pytest.raises(KeyError, match="label_key='kind' is not a column of source.obs"):
        cross_affinity(src, tgt, label_key="kind")
    with pytest.raises(KeyError, match="is not a column of target.obs"):
        cross_affinity(src, tgt, target_label_key="kind")
    with pytest.raises(ValueError, match="expected 'exact' or 'sliced'"):
        cross_affinity(src, tgt, method="fast")
    with pytest.raises(ValueError, match="unknown label map 'nope'"):
        cross_affinity(src, tgt, label_map="nope")
    one = tgt[(tgt.obs.cell_type != "type3").to_numpy() | (np.arange(tgt.n_obs) == np.flatnonzero(tgt.obs.cell_type == "type3")[0])].copy()
    with pytest.raises(ValueError, match=r"fewer than 2 cells in target.obs\['cell_type'\]: 'type3' \(1 cell\)"):
        cross_affinity(src, one)
    D = cross_affinity(src, tgt, show_progress=False)
    with pytest.raises(ValueError, match="rule='nearest'"):
        score_cross_affinity(D, rule="nearest")
    with pytest.raises(ValueError, match="needs within_source and within_target"):
        score_cross_affinity(D, rule="within")
    with pytest.raises(ValueError, match="merges types of one species"):
        score_cross_affinity(D, label_map={"type1": "type0"})
    merged = cross_affinity(src, tgt, label_map={"type1": "type0"}, show_progress=False)   # a label map may pool types
    assert list(merged.index) == ["type0", "type2"] and merged.attrs["label_map"] == {"type1": "type0"}


def test_score_and_plot_cross_affinity(tmp_path):
    import matplotlib.pyplot as plt
    src, tgt = aligned_pair()
    D = cross_affinity(src, tgt, show_progress=False)
    sc = score_cross_affinity(D)
    assert sc.loc[("target", "type5"), "open_set"] and not sc.loc[("target", "type0"), "open_set"]
    assert sc.xs("source", level="side").partner_nearest.all() and np.isnan(sc.loc[("target", "type5"), "partner_rank"])
    s = cross_affinity_summary(sc)
    assert s["open_set_precision"] == s["open_set_recall"] == 1.0 and s["partner_not_nearest"] == []
    # no type flagged, no type missing: precision and recall are undefined, not zero
    s2 = cross_affinity_summary(score_cross_affinity(D.drop(columns="type5")))
    assert s2["open_set_flagged"] == [] and s2["open_set_precision"] is None and s2["open_set_recall"] is None
    Ws = wasserstein_affinity(src.copy(), use_rep="X_scn_aligned", show_progress=False)
    Wt = wasserstein_affinity(tgt.copy(), use_rep="X_scn_aligned", show_progress=False)
    w = score_cross_affinity(D, rule="within", within_source=Ws, within_target=Wt)
    assert cross_affinity_summary(w)["open_set_flagged"] == ["type5"] and w.attrs["rule"] == "within"
    assert w.loc[("target", "type5"), "open_set_score"] > 0.85 > w.xs("target", level="side").open_set_score.drop("type5").max()
    tax = pd.DataFrame({"group": ["b", "a", "b", "a", "b"]}, index=[f"type{i}" for i in range(5)])
    fig = plot_cross_affinity(D, tax, tax, scores=sc)
    assert not list(tmp_path.iterdir())                                                   # nothing written unless asked
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["type1", "type3", "type0", "type2", "type4"]
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "type5"                    # not in the taxonomy: last
    plot_cross_affinity(D, path=tmp_path / "x.pdf"); plt.close("all")
    assert (tmp_path / "x.pdf").stat().st_size > 1000 and [p.name for p in tmp_path.iterdir()] == ["x.pdf"]


def test_pipeline_stage_cross_species(tmp_path):
    src, tgt = aligned_pair()
    run = make_run(tmp_path, {"mouse": src, "human": tgt})
    run.write_adatas("05_align", {"mouse": src, "human": tgt})
    run.save_metrics("05_align", {"source": "mouse", "target": "human", "method": "procrustes"})
    m = run_affinity(run.path)
    out = run.path / "06_affinity"
    for f in ("cross_affinity.csv", "cross_affinity.md", "cross_affinity.png", "affinity_mouse.csv"):
        assert (out / f).exists(), f
    cs = m["cross_species"]
    assert (cs["source"], cs["target"], cs["use_rep"]) == ("mouse", "human", "X_scn_aligned")
    assert (cs["n_shared"], cs["n_partner_nearest"], cs["mean_partner_rank"]) == (5, 5, 1.0)
    assert cs["open_set_flagged"] == cs["open_set_truth"] == ["type5"] and cs["source_side"]["open_set_flagged"] == []
    assert len(cs["types"]) == 11 and {"side", "type", "nearest", "partner_rank", "open_set"} <= set(cs["types"][0])
    assert json.loads((out / "metrics.json").read_text())["cross_species"]["open_set_flagged"] == ["type5"]
    D = read_affinity(out / "cross_affinity.csv")
    assert D.shape == (5, 6) and list(D.columns) == [f"type{i}" for i in range(6)]
    md = (out / "cross_affinity.md").read_text()
    assert "| type5 | no | " in md and "5 of 5 shared human types" in md


@pytest.mark.parametrize("kw, msg", [
    (dict(method="sliced", n_projections=0), "n_projections must be an integer >= 1, got 0"),
    (dict(method="sliced", n_projections=-3), "n_projections must be an integer >= 1, got -3"),
    (dict(max_cells=1), "max_cells must be an integer >= 2, got 1"), (dict(max_cells=2.5), "max_cells must be an integer >= 2"),
    (dict(min_cells=0), "min_cells must be an integer >= 1"), (dict(num_itermax=0), "num_itermax must be an integer >= 1"),
    (dict(method="fast"), "expected 'exact' or 'sliced'"), (dict(normalize="zscore"), "normalize='zscore': expected one of"),
    (dict(backend="torch"), "backend='torch'"),
])
def test_affinity_options_are_range_checked_never_nan(kw, msg):
    "A bad option is a ValueError naming it and its range, before any work (n_projections=0 used to give a NaN matrix)."
    a, _ = toy(n_types=3, n_cells=20, dim=4)
    with pytest.raises(ValueError, match=msg.replace("(", r"\(")): wasserstein_affinity(a, use_rep="X_emb", **kw)
    src, tgt = aligned_pair(n_cells=120, dim=4, n_types=3)
    with pytest.raises(ValueError, match=msg.replace("(", r"\(")): cross_affinity(src, tgt, **kw)
    A = wasserstein_affinity(a, use_rep="X_emb", method="sliced", n_projections=1, show_progress=False)
    assert np.isfinite(A.values).all()


@pytest.mark.parametrize("missing", [np.nan, None, "nan"])
def test_unlabelled_cells_are_no_type(missing, caplog):
    "NaN labels: left out of both affinities with a WARNING that counts them; the result is the labelled cells' alone."
    a, _ = toy(n_types=4, n_cells=30, dim=4)
    na = a.copy(); lab = na.obs.cell_type.astype(object).to_numpy(); lab[[0, 40, 100]] = missing; na.obs["cell_type"] = lab
    keep = np.setdiff1d(np.arange(na.n_obs), [0, 40, 100])
    with caplog.at_level("WARNING", logger="scnotebook"):
        A = wasserstein_affinity(na, use_rep="X_emb", show_progress=False)
    assert "3 of 120 cells of adata have no 'cell_type' label (NaN): left out" in caplog.text
    assert "nan" not in [t.lower() for t in A.index]
    pd.testing.assert_frame_equal(A, wasserstein_affinity(na[keep].copy(), use_rep="X_emb", show_progress=False))
    src, tgt = aligned_pair(n_cells=120, dim=4, n_types=3)
    t2 = tgt.copy(); lab = t2.obs.cell_type.astype(object).to_numpy(); lab[:5] = missing; t2.obs["cell_type"] = lab
    caplog.clear()
    with caplog.at_level("WARNING", logger="scnotebook"):
        X = cross_affinity(src, t2, show_progress=False)
    assert "5 of 120 cells of target have no 'cell_type' label" in caplog.text and "nan" not in list(X.columns)
    pd.testing.assert_frame_equal(X, cross_affinity(src, t2[5:].copy(), show_progress=False), check_exact=False)


def test_cross_affinity_label_map_naming_absent_types_warns(caplog):
    src, tgt = aligned_pair(n_cells=120, dim=4, n_types=3)
    with caplog.at_level("WARNING", logger="scnotebook"):
        cross_affinity(src, tgt, label_map={"type1": "type0", "typo9": "type2"}, show_progress=False)
    assert "names type(s) absent from both datasets: ['typo9']" in caplog.text
