"""Gene-seeded alignment (scnotebook.homology, align(genes=..., anchors=...)): real Baron figures and bad input."""
import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

from scnotebook.align import align
from scnotebook.homology import gene_pairs, ortholog_table, symbol_pairs, table_pairs
from scnotebook.metrics import label_transfer


@pytest.fixture(scope="module")
def baron():
    from conftest import shared_data
    shared_data("baron_pancreas")
    from scnotebook.peers import baron_pair
    mouse, human, orth = baron_pair(n_comps=50)
    return mouse, human, orth


def _acc(s, t):
    r = label_transfer(s, t, use_rep="X_scn_aligned", label_map="baron", k=15, classifiers=("knn",))
    return r["accuracy"], r["balanced_accuracy"]


def test_baron_symbols_table_and_anchors(baron):
    mouse, human, orth = baron
    # per-species PCA of the counts stands in for X_scn; the gene signal comes from the raw counts in .X
    r = align(mouse, human, use_rep="X_pca_species", genes="symbols", copy=True, show_progress=False); s, t = r.source, r.target
    acc, bal = _acc(s, t)
    assert r.method == "seeded" and r.params["n_seeds"] > 300
    assert acc > 0.95 and bal > 0.7, (acc, bal)
    r = align(mouse, human, use_rep="X_pca_species", genes=orth, copy=True, show_progress=False); s, t = r.source, r.target
    assert _acc(s, t)[0] > 0.95
    r = align(mouse, human, use_rep="X_pca_species", genes="symbols", anchors=["alpha", "beta", "ductal"],
              copy=True, show_progress=False, label_map="baron"); s, t = r.source, r.target
    assert _acc(s, t)[0] > 0.95
    r = align(human, mouse, use_rep="X_pca_species", genes="symbols", copy=True, show_progress=False); s, t = r.source, r.target
    assert _acc(s, t)[0] > 0.93


def test_builtin_tables_cover_baron(baron):
    mouse, human, _ = baron
    tab = ortholog_table("biomart")
    assert list(tab.columns) == ["human", "mouse"] and len(tab) > 15000
    pairs = table_pairs(tab, mouse.var_names, human.var_names)
    ins = pairs[pairs.target == "INS"]
    assert {"Ins1", "Ins2"} <= set(ins.source) and ins.feature.nunique() == 1   # one-to-many summed into one feature
    assert len(symbol_pairs(mouse.var_names, human.var_names)) > 12000


def _toy(genes_s, genes_t, n=40, seed=0):
    rng = np.random.default_rng(seed)
    def make(genes, sp):
        a = AnnData(rng.poisson(2, (n, len(genes))).astype(np.float32))
        a.var_names = genes; a.obs_names = [f"{sp}{i}" for i in range(n)]
        a.obs["cell_type"] = pd.Categorical(rng.choice(["a", "b"], n)); a.obsm["X_scn"] = rng.normal(size=(n, 4)).astype(np.float32)
        return a
    return make(genes_s, "m"), make(genes_t, "h")


def test_bad_input_says_what_to_do():
    s, t = _toy(["Abc", "Def"], ["XYZ", "UVW"])
    with pytest.raises(ValueError, match="share no symbol.*ortholog table"):
        align(s, t, genes="symbols")
    with pytest.raises(ValueError, match="match neither gene list"):
        align(s, t, genes=pd.DataFrame({"h": ["P", "Q"], "m": ["R", "S"]}))
    s2, t2 = _toy(["Abc", "Abc"], ["ABC", "DEF"])
    with pytest.raises(ValueError, match="duplicated gene name"):
        align(s2, t2, genes="symbols")
    s3, t3 = _toy(["Abc", "Def"], ["ABC", "DEF"])
    with pytest.raises(ValueError, match=r"anchor type\(s\) \['c'\] are absent from the source"):
        align(s3, t3, anchors=["a", "c"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        gene_pairs(s3, t3, "no_such_table.csv")
    with pytest.raises(ValueError, match="needs a gene signal"):
        align(s3, t3, method="seeded")
    with pytest.raises(ValueError, match="genes= is used by method='seeded'"):
        align(s3, t3, method="muse", genes="symbols")
    with pytest.raises(ValueError, match="same AnnData"):
        align(s3, s3, genes="symbols")
    with pytest.raises(ValueError, match="unknown ortholog table"):
        ortholog_table("ensembl")


def test_too_few_genes_fall_back_to_muse(caplog):
    s, t = _toy(["Abc", "Def", "Ghi"], ["ABC", "DEF", "GHI"])
    r = align(s, t, genes="symbols", epochs=1, copy=True, show_progress=False); s2, t2 = r.source, r.target
    assert r.method == "muse" and r.params["fallback"] == "muse" and r.params["genes"] == "symbols"
    assert s2.uns["scnotebook"]["X_scn_aligned"]["fallback"] == "muse" and "X_scn_aligned" in t2.obsm
    assert "falls back to the unsupervised MUSE recipe" in caplog.text
