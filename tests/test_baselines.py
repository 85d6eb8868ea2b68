"""Baselines (PCA, SAUCIE, autoencoder, VAE) through one interface, on real pancreas data, and the 08 pipeline stage."""
import json, zipfile
import numpy as np
import pandas as pd
import pytest
import anndata as ad
import torch

from scnotebook.baselines import embed_baseline, Saucie, Autoencoder, VAE, fit_module, embed_module, mmd
from scnotebook.taxonomy import table1
from scnotebook.stages import run_baselines
from test_affinity import toy, make_run

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def baron_mouse(tmp_path_factory):
    "Baron 2016 mouse pancreas (real counts from the shared zip), log1p + PCA 30 as obsm['X_intense']."
    from conftest import shared_data
    from sklearn.decomposition import PCA
    z = shared_data("baron_pancreas") / "came-0.1.13-sample_data.zip"
    d = tmp_path_factory.mktemp("baron")
    with zipfile.ZipFile(z) as f: f.extract("raw-Baron_mouse.h5ad", d)
    a = ad.read_h5ad(d / "raw-Baron_mouse.h5ad")
    a = a[:, np.asarray((a.X > 0).sum(0)).ravel() >= 20].copy()
    X = a.X.toarray(); X = np.log1p(X / X.sum(1, keepdims=True) * 1e4)
    a.obsm["X_intense"] = PCA(30, random_state=0).fit_transform(X - X.mean(0)).astype(np.float32)
    a.obs["cell_type"] = a.obs["cell_type1"].astype(str)
    return a


def test_every_baseline_on_baron_mouse(baron_mouse):
    a = baron_mouse.copy()
    for m, key, k in (("pca", "X_pca", 30), ("saucie", "X_saucie", 2), ("autoencoder", "X_ae", 32), ("vae", "X_vae", 32)):
        out = embed_baseline(a, m, epochs=3, seed=0)
        assert out is a and a.obsm[key].shape == (a.n_obs, k) and np.isfinite(a.obsm[key]).all()
        info = a.uns["scnotebook"]["baselines"][key]
        assert info["use_rep"] == "X_intense" and info["seed"] == 0
    assert "X_saucie_cluster" in a.obs and a.obs["X_saucie_cluster"].nunique() >= 1
    # the embeddings feed Table 1 side by side
    tax = pd.DataFrame({"grp": ["endocrine"] * 4 + ["other"] * 9},
                       index=["alpha", "beta", "delta", "gamma", "ductal", "endothelial", "quiescent_stellate", "macrophage",
                              "activated_stellate", "B_cell", "immune_other", "T_cell", "schwann"])
    df = table1(a, use_reps={"PCA": "X_pca", "SAUCIE": "X_saucie", "AE": "X_ae", "VAE": "X_vae"}, taxonomy=tax, n_bootstrap=0)
    assert list(df.index) == ["PCA", "SAUCIE", "AE", "VAE"] and df["n_types"].eq(13).all()
    k = df["L1 accuracy (%)"] * 13 / 100                 # every value is (types placed) / 13
    assert np.allclose(k, k.round()) and df["L1 accuracy (%)"].between(0, 100).all()


def test_training_is_deterministic_and_learns(baron_mouse):
    a = baron_mouse[:400].copy()
    e1 = embed_baseline(a, "ae", epochs=4, seed=7, copy=True).obsm["X_ae"]
    e2 = embed_baseline(a, "ae", epochs=4, seed=7, copy=True).obsm["X_ae"]
    e3 = embed_baseline(a, "ae", epochs=4, seed=8, copy=True).obsm["X_ae"]
    assert np.array_equal(e1, e2) and not np.allclose(e1, e3)
    X = (a.obsm["X_intense"] / a.obsm["X_intense"].std()).astype(np.float32)
    for mod in (Autoencoder(30, (32,), 8), VAE(30, (32,), 8), Saucie(30, (32, 16, 8))):
        h = fit_module(mod, X, epochs=15, seed=0)
        assert h[-1]["rec"] < h[0]["rec"], (type(mod).__name__, h[0], h[-1])
        assert embed_module(mod, X).shape[0] == len(X)


def test_saucie_mmd_removes_a_batch_shift():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (100, 20)) + rng.normal(0, 3, 20) * i for i in range(3)])
    X = np.vstack([X, X + rng.normal(0, 1, (1, 20)) * 4]).astype(np.float32)
    obs = pd.DataFrame({"batch": ["a"] * 300 + ["b"] * 300}, index=[str(i) for i in range(600)])
    a = ad.AnnData(np.zeros((600, 1), np.float32), obs=obs); a.obsm["X_intense"] = X
    def shift(E): return np.linalg.norm(E[:300].mean(0) - E[300:].mean(0)) / E.std(0).mean()
    plain = embed_baseline(a, "saucie", epochs=20, batch_key="batch", lambda_b=0.0, copy=True).obsm["X_saucie"]
    mixed = embed_baseline(a, "saucie", epochs=20, batch_key="batch", lambda_b=1.0, copy=True)
    assert shift(mixed.obsm["X_saucie"]) < 0.5 * shift(plain), (shift(mixed.obsm["X_saucie"]), shift(plain))
    assert "mmd" in mixed.uns["scnotebook"]["baselines"]["X_saucie"]["final_loss"]
    x = torch.randn(50, 3)
    assert mmd(x[:25], x[25:] + 3).item() > 10 * abs(mmd(x[:25], x[25:]).item())


def test_bad_input():
    a, _ = toy(n_types=3, n_cells=10); a.obsm["X_intense"] = a.obsm["X_emb"]
    with pytest.raises(ValueError, match="unknown baseline 'umap'"): embed_baseline(a, "umap")
    with pytest.raises(KeyError, match="adata.obsm has no 'X_scn'"): embed_baseline(a, "pca", use_rep="X_scn")
    with pytest.raises(KeyError, match="batch_key='donor'"): embed_baseline(a, "saucie", batch_key="donor", epochs=1)
    with pytest.raises(ValueError, match="at least 3 cells"): embed_baseline(a[:2].copy(), "ae", epochs=1)


def test_pipeline_stage(tmp_path):
    a, tax = toy(); a.obsm["X_intense"] = a.obsm.pop("X_emb").astype(np.float32)
    a.obsm["X_scn"] = a.obsm["X_intense"][:, :8] * 2
    run = make_run(tmp_path, {"mouse": a}, tax)
    m = run_baselines(run.path)
    st = run.path / "08_baselines"
    assert m["input_stage"] == "04_train"
    b = ad.read_h5ad(st / "mouse.h5ad")
    assert {"X_pca", "X_ae", "X_scn", "X_intense"} <= set(b.obsm)
    t = pd.read_csv(st / "table1.csv", index_col=0)
    assert {"Transformer", "PCA", "Autoencoder"} <= set(t.index) and "L2 accuracy (%)" in t.columns
    assert "Transformer (paper) | 86.7 | 66.7" in (st / "table1.md").read_text()
    assert json.loads((st / "metrics.json").read_text())["table1"]["dataset"] == "mouse"
    # with a 05_align folder the stage reads it instead
    c = a.copy(); c.obsm["X_scn_aligned"] = c.obsm["X_scn"] + 1
    run.write_adatas("05_align", {"mouse": c})
    m = run_baselines(run.path)
    assert m["input_stage"] == "05_align" and "Transformer (aligned)" in pd.read_csv(st / "table1.csv", index_col=0).index
