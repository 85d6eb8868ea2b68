"""The annotation peers (scnotebook.transfer_peers): scoring by hand, the real panel pairs, each peer's figures on them."""
import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

from scnotebook.data import synthetic
from scnotebook.transfer_peers import (PANEL_PAIRS, celltypist_transfer, centroid_correlation, harmony_transfer,
                                       panel_missing, panel_pairs, scanvi_transfer, score_annotation)


def _data_dir():
    from conftest import shared_data
    return shared_data("cross_species_panel").parent


@pytest.fixture(scope="module")
def panel():
    d = _data_dir()
    if panel_missing(d): pytest.skip(f"panel pairs missing: {panel_missing(d)}")
    return {p.name: p for p in panel_pairs(d)}


@pytest.fixture(scope="module")
def toy():
    pair = synthetic(n_cells=200, n_genes=300, branching=(2, 3), effect_sizes=(3.0, 2.5), density=0.2, seed=0)
    return pair["mouse"], pair["human"]


def _hidden(q):
    return AnnData(X=q.X, obs=pd.DataFrame(index=q.obs_names), var=pd.DataFrame(index=q.var_names))


def _score(peer, pair, **kw):
    name, r, q, rk, qk, rm, qm = pair
    out = peer(r, _hidden(q), label_key=rk, **kw)
    assert out.index.equals(q.obs_names) and list(out.columns) == ["label", "score"]
    assert set(out.label) <= set(r.obs[rk].astype(str)) and out.score.between(0, 1).all()
    return score_annotation(out.label, q.obs[qk], reference_labels=r.obs[rk], ref_map=rm, query_map=qm, abstains=False)


def test_score_annotation_by_hand():
    s = score_annotation(["A", "A", "beta", "unassigned", "unassigned", "A", "beta"],
                         ["alpha", "alpha", "alpha", "beta", "epsilon", "epsilon", None],
                         reference_labels=["A", "beta"], ref_map={"A": "alpha"})
    assert (s["n_cells"], s["n_shared"], s["n_query_only"]) == (6, 4, 2)
    assert s["accuracy"] == pytest.approx(0.5)                       # 2 of the 4 alpha/beta cells; unassigned is wrong
    assert s["balanced_accuracy"] == pytest.approx((2 / 3 + 0) / 2)  # alpha 2/3, beta 0/1
    assert s["unassigned_recall"] == pytest.approx(0.5)              # 1 of the 2 epsilon cells
    assert s["unassigned_shared"] == pytest.approx(0.25)
    # the built-in Baron map: human t_cell and mouse T_cell are one type
    s = score_annotation(["T_cell", "beta"], ["t_cell", "beta"], reference_labels=["T_cell", "beta"], ref_map="baron",
                         query_map="baron", abstains=False)
    assert s["accuracy"] == 1.0 and np.isnan(s["unassigned_recall"]) and s["n_query_only"] == 0
    with pytest.raises(ValueError, match="3 predictions for 2"): score_annotation(["a"] * 3, ["a"] * 2, reference_labels=["a"])


def test_panel_pairs(panel):
    assert list(panel) == list(PANEL_PAIRS)
    sizes = {"baron_m2h": (1886, 2142, 1900), "baron_h2m": (2142, 1886, 1886 - 18), "pancreas": (180, 181, 153),
             "liver": (100, 148, 100), "brain": (180, 154, 94)}
    for name, (nr, nq, ns) in sizes.items():
        _, r, q, rk, qk, rm, qm = panel[name]
        s = score_annotation(q.obs[qk].astype(str), q.obs[qk], reference_labels=r.obs[rk], ref_map=rm, query_map=qm)
        assert (r.n_obs, q.n_obs) == (nr, nq), name
        assert s["n_shared"] == ns, (name, s)   # Baron h2m: mouse B_cell and immune_other have no human partner
    assert panel["liver"].ref_map["endothelial cell of hepatic sinusoid"] == "LSEC"
    assert panel["pancreas"].query_map == {}   # Enge's names are the shared ones already


def test_panel_missing_folder(tmp_path):
    assert set(panel_missing(tmp_path)) == set(PANEL_PAIRS)
    assert list(panel_pairs(tmp_path)) == []
    with pytest.raises(ValueError, match="unknown panel pair"): panel_missing(tmp_path, pairs=["kidney"])


# the centroid baseline exactly as specified (log CP10k over every gene, shared symbols, 2,000 seurat HVG of the
# reference, mean centroids, Pearson) measures these figures; it is deterministic
CENTROID = {"pancreas": 0.824, "liver": 0.860, "brain": 0.809, "baron_m2h": 0.869, "baron_h2m": 0.916}


@pytest.mark.parametrize("name", list(CENTROID))
def test_centroid_on_panel(panel, name):
    s = _score(centroid_correlation, panel[name])
    assert s["accuracy"] == pytest.approx(CENTROID[name], abs=0.006), s
    assert s["unassigned_shared"] == 0 and np.isnan(s["unassigned_recall"])


def test_centroid_ortholog_table(panel):
    from scnotebook.data import baron_orthologs
    orth = baron_orthologs(_data_dir() / "baron_pancreas")
    # 11,674 one-to-one pairs instead of 12,473 identical symbols, so other HVG: 0.758 against 0.869
    assert _score(centroid_correlation, panel["baron_m2h"], genes=orth)["accuracy"] == pytest.approx(0.758, abs=0.006)


def test_harmony_on_panel(panel):
    assert _score(harmony_transfer, panel["liver"], seed=0)["accuracy"] > 0.9
    assert _score(harmony_transfer, panel["baron_m2h"], seed=0)["accuracy"] > 0.93


def test_cpm_and_unlabelled_reference(toy):
    ref, qry = toy
    base = centroid_correlation(ref, qry, label_key="cell_type")
    assert (base.label.to_numpy() == qry.obs["cell_type"].astype(str).to_numpy()).mean() > 0.9
    cpm = qry.copy(); cpm.X = sp.csr_matrix(sp.diags(1e6 / np.asarray(qry.X.sum(1)).ravel()) @ qry.X)
    assert centroid_correlation(ref, cpm, label_key="cell_type").label.tolist() == base.label.tolist()
    part = ref.copy(); part.obs["cell_type"] = part.obs["cell_type"].astype(object)
    part.obs.loc[part.obs["cell_type"] == "A1", "cell_type"] = np.nan   # a type with no labelled cell is never predicted
    assert "A1" not in set(harmony_transfer(part, qry, label_key="cell_type", n_comps=20).label)
    with pytest.raises(KeyError, match="no label column"): centroid_correlation(ref, qry, label_key="celltype")


@pytest.mark.parametrize("peer, module", [(celltypist_transfer, "celltypist"), (scanvi_transfer, "scvi")])
def test_missing_extra(toy, monkeypatch, peer, module):
    monkeypatch.setitem(sys.modules, module, None)   # as if not installed
    with pytest.raises(ImportError, match=r"scnotebook\[peers\]"): peer(*toy, label_key="cell_type")


def test_celltypist(toy, panel):
    pytest.importorskip("celltypist", reason="celltypist not installed (pip install scnotebook[peers])")
    ref, qry = toy
    out = celltypist_transfer(ref, qry, label_key="cell_type")
    assert (out.label.to_numpy() == qry.obs["cell_type"].astype(str).to_numpy()).mean() > 0.9
    assert _score(celltypist_transfer, panel["liver"])["accuracy"] > 0.8


def test_scanvi(toy):
    pytest.importorskip("scvi", reason="scvi-tools not installed (pip install scnotebook[peers])")
    ref, qry = toy
    a = scanvi_transfer(ref, qry, label_key="cell_type", seed=0, scvi_steps=150, scanvi_steps=50)
    assert set(a.label) <= set(ref.obs["cell_type"].astype(str)) and a.score.between(0, 1).all()
    assert (a.label.to_numpy() == qry.obs["cell_type"].astype(str).to_numpy()).mean() > 0.8
    b = scanvi_transfer(ref, qry, label_key="cell_type", seed=0, scvi_steps=150, scanvi_steps=50)
    assert a.label.tolist() == b.label.tolist()   # seeded


@pytest.mark.slow
def test_scanvi_on_liver(panel):
    pytest.importorskip("scvi", reason="scvi-tools not installed (pip install scnotebook[peers])")
    assert _score(scanvi_transfer, panel["liver"], seed=0)["accuracy"] > 0.6
