"""Taxonomy accuracy: the definition on hand-checked trees, Zeisel 2015, bootstrap, Table 1 files, bad input, the stage."""
import json
import numpy as np
import pandas as pd
import pytest
import anndata as ad
from scipy.cluster.hierarchy import linkage

from scnotebook.taxonomy import (level_scores, match_accuracy, taxonomy_accuracy, table1, table1_markdown, write_table1,
                                 cell_type_means, plot_taxonomy_tree, PAPER_TABLE1)
from scnotebook.stages import run_taxonomy
from test_affinity import zeisel, toy, make_run


def line(xs): return linkage(np.array(xs, float)[:, None], "average", "euclidean")


def points(xs, taxonomy_rows):
    "Cells at given 1-D positions (5 cells each, tiny jitter) with a taxonomy."
    rng = np.random.default_rng(0)
    X = np.concatenate([x + rng.normal(0, 0.01, 5) for x in xs])[:, None]
    types = [f"t{i}" for i in range(len(xs))]
    a = ad.AnnData(np.zeros((len(X), 1)), obs=pd.DataFrame({"cell_type": np.repeat(types, 5)}, index=[str(i) for i in range(len(X))]))
    a.obsm["E"] = X
    return a, pd.DataFrame(taxonomy_rows, index=types)


def test_definition_by_hand():
    assert level_scores(line([0, 1, 10, 11]), ["X", "X", "Y", "Y"])["accuracy"] == 1.0
    assert level_scores(line([0, 1, 10, 11]), ["X", "Y", "X", "Y"])["accuracy"] == 0.5
    s = level_scores(line([0, 1, 10, 11, 30]), ["A", "A", "A", "D", "E"])
    assert (s["n_correct"], s["n_types"], s["n_groups"]) == (4, 5, 3)
    # Hungarian matching is one-to-one: two clusters cannot both claim group X
    n, match = match_accuracy([0, 0, 1, 1, 2], ["X", "X", "X", "X", "Y"])
    assert n == 3 and sorted(match.values()) == ["X", "Y"]


def test_two_level_tree_known_answer():
    # 6 types: (t0 t1)(t2 t3) far from (t4 t5). Truth: level 1 {t0..t3 | t4 t5} exact; level 2 puts t3 with t4, t5.
    a, tax = points([0, 1, 10, 11, 100, 101],
                    {"mid": ["m0", "m0", "m1", "m2", "m2", "m2"], "top": ["A", "A", "A", "B", "B", "B"]})
    r = taxonomy_accuracy(a, use_rep="E", taxonomy=tax)
    L1, L2 = r["levels"]["top"], r["levels"]["mid"]
    assert L1["level"] == 1 and L2["level"] == 2
    # level 1 (2 groups): cut {t0..t3}{t4 t5}; t3 is in true group B -> 5/6
    assert L1["n_correct"] == 5 and L1["accuracy"] == pytest.approx(5 / 6)
    # level 2 (3 groups): cut {t0 t1}{t2 t3}{t4 t5}; matched m0, m1 (t2), m2 (t4 t5) -> 5/6
    assert L2["n_correct"] == 5
    assert r["n_types"] == 6 and r["linkage"].shape == (5, 4)


def test_zeisel_pca_recovers_neuron_split(shared):
    a, tax = zeisel(shared("zeisel2015_cortex"))
    r = taxonomy_accuracy(a, use_rep="X_pca20", taxonomy=tax, n_bootstrap=20, seed=0)
    top, mid = r["levels"]["neuron"], r["levels"]["level1class"]
    assert top["n_groups"] == 2 and mid["n_groups"] == 7 and r["n_types"] == 47
    assert top["accuracy"] >= 0.9, top
    assert 0.3 < mid["accuracy"] <= 1 and mid["ari"] > 0.2 and r["cophenetic"] > 0.6, (mid, r["cophenetic"])
    for d in (top, mid):
        assert d["accuracy_lo"] <= d["accuracy_hi"] and 0 <= d["accuracy_lo"] and d["accuracy_hi"] <= 1
    # bootstrap is seeded
    r2 = taxonomy_accuracy(a, use_rep="X_pca20", taxonomy=tax, n_bootstrap=20, seed=0)
    assert r2["levels"]["level1class"]["accuracy_lo"] == mid["accuracy_lo"]
    assert "X_pca20" in a.uns["scnotebook"]["taxonomy"]


def test_bad_input_errors():
    a, tax = toy(n_types=4, n_cells=10)
    with pytest.raises(ValueError, match=r"missing from the taxonomy: \['T2'\]"):
        taxonomy_accuracy(a, use_rep="X_emb", taxonomy=tax.drop("T2"))
    bad = tax.copy(); bad.loc["T3", "coarse"] = "C9"
    with pytest.raises(ValueError, match="do not nest"):
        taxonomy_accuracy(a, use_rep="X_emb", taxonomy=bad)
    one = a[np.r_[0:31]].copy()
    with pytest.raises(ValueError, match=r"'T3' \(1 cell\)"):
        taxonomy_accuracy(one, use_rep="X_emb", taxonomy=tax)
    with pytest.raises(TypeError, match="taxonomy must be a pandas DataFrame"):
        taxonomy_accuracy(a, use_rep="X_emb", taxonomy={"T0": "C0"})
    dup = pd.concat([tax, tax.iloc[:1]])
    with pytest.raises(ValueError, match="more than once"):
        taxonomy_accuracy(a, use_rep="X_emb", taxonomy=dup)
    with pytest.raises(KeyError, match="are not in adata.obsm"):
        table1(a, use_reps=["X_pca"], taxonomy=tax)


def test_table1_files(tmp_path):
    a, tax = toy()
    a.obsm["X_noise"] = np.random.default_rng(0).normal(size=a.obsm["X_emb"].shape)
    df = table1(a, use_reps={"good": "X_emb", "noise": "X_noise"}, taxonomy=tax, n_bootstrap=10)
    assert df.loc["good", "L1 accuracy (%)"] == 100 and df.loc["good", "L2 accuracy (%)"] == 100
    assert df.loc["noise", "cophenetic"] < df.loc["good", "cophenetic"]
    csv, md = write_table1(df, tmp_path / "table1", title="toy")
    back = pd.read_csv(csv, index_col=0)
    assert list(back.index) == ["good", "noise"] and "L2 FM hi" in back.columns
    text = md.read_text()
    assert "| good | 8 | 100.0 [100.0, 100.0]" in text and "SAUCIE (paper) | 66.7 | 53.3" in text and "PCA (paper) | 80.0 | 60.0" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table1.csv", "table1.md"]   # no temp files left
    assert PAPER_TABLE1.loc["Transformer (paper)"].tolist() == [86.7, 66.7]


def test_dendrogram_plot(tmp_path):
    import matplotlib.pyplot as plt
    a, tax = toy()
    fig = plot_taxonomy_tree(a, use_rep="X_emb", taxonomy=tax, path=tmp_path / "f4.png"); plt.close("all")
    assert len(fig.axes) == 2 and (tmp_path / "f4.png").stat().st_size > 1000


def test_pipeline_stage_skips_and_runs(tmp_path):
    a, tax = toy(); a.obsm["X_scn"] = a.obsm.pop("X_emb")
    run = make_run(tmp_path / "no_tax", {"mouse": a})
    m = run_taxonomy(run.path)
    assert json.loads((run.path / "07_taxonomy" / "metrics.json").read_text())["skipped"][0]["why"].startswith("no taxonomy")
    u = a.copy(); del u.obs["cell_type"]   # the taxonomy dataset without labels: skipped, with the reason
    m = run_taxonomy(make_run(tmp_path / "unlabelled", {"mouse": u}, tax).path)
    assert m["skipped"] == [{"measure": "taxonomy", "dataset": "mouse", "why": "the taxonomy dataset 'mouse' has no labels "
                                                                              "(label_key null, or absent and no cell_type column)"}]
    run = make_run(tmp_path / "tax", {"mouse": a}, tax)
    m = run_taxonomy(run.path)
    assert m["use_rep"] == "X_scn" and m["levels"]["coarse"]["accuracy"] == 1.0 and "accuracy_lo" in m["levels"]["coarse"]
    assert (run.path / "07_taxonomy" / "taxonomy.csv").exists() and (run.path / "07_taxonomy" / "dendrogram_mouse.png").exists()


@pytest.mark.parametrize("missing", [np.nan, None, "nan"])
def test_unlabelled_cells_are_left_out(missing, caplog):
    a, tax = points([0, 1, 10, 11, 100, 101],
                    {"mid": ["m0", "m0", "m1", "m2", "m2", "m2"], "top": ["A", "A", "A", "B", "B", "B"]})
    b = ad.concat([a, a[:3].copy()], index_unique="-")            # 3 more cells near t0, without a label
    b.obsm["E"][-3:] = 50.0                                       # far away: they would move a mean if counted
    lab = b.obs["cell_type"].astype(object).to_numpy(); lab[-3:] = missing; b.obs["cell_type"] = lab
    with caplog.at_level("WARNING", logger="scnotebook"):
        r, m = taxonomy_accuracy(b, use_rep="E", taxonomy=tax), cell_type_means(b, use_rep="E")
    r0 = taxonomy_accuracy(a, use_rep="E", taxonomy=tax)
    assert r["n_types"] == 6 and r["levels"]["mid"]["n_correct"] == r0["levels"]["mid"]["n_correct"]
    assert "nan" not in m.index and np.allclose(m.to_numpy(), cell_type_means(a, use_rep="E").to_numpy())
    assert "3 of 33 cells" in caplog.text
