"""Wasserstein affinity between cell types: real data (Zeisel 2015), exact vs sliced, bad input, the pipeline stage."""
import numpy as np
import pandas as pd
import pytest
import anndata as ad
from scipy.stats import spearmanr

from scnotebook.affinity import (wasserstein_affinity, affinity_agreement, taxonomy_distance, check_taxonomy,
                                 plot_affinity, write_affinity, read_affinity, run_affinity_stage)

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
    from scnotebook.config import Run
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
    m = run_affinity_stage(run.path)
    out = run.path / "06_affinity"
    for f in ("affinity_mouse.csv", "affinity_mouse.png", "affinity_other.csv", "metrics.json"):
        assert (out / f).exists(), f
    assert m["datasets"]["mouse"]["use_rep"] == "X_intense" and m["datasets"]["other"]["use_rep"] == "X_scn"
    assert m["datasets"]["mouse"]["spearman"] > 0.5 and "agreement_skipped" in m["datasets"]["other"]
    assert read_affinity(out / "affinity_mouse.csv").shape == (8, 8)
