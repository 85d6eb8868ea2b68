"Tests of scnotebook.preprocess: the paper's preprocessing (scprep, log, [-50, 50], PCA to 1200) and its reconstruction."
import numpy as np
import pytest
import scipy.sparse as sp
import scprep

from scnotebook.core import local_data, save_h5ad
from scnotebook.data import baron_pancreas, synthetic
from scnotebook.preprocess import (filter_normalize_log, pca_sparse, preprocess, preprocess_all, reconstruct,
                                   scale_sparse)


@pytest.mark.skipif(local_data("baron_pancreas") is None, reason="no local Baron data (../shared/data/baron_pancreas)")
def test_baron_intense_1200(tmp_path, capsys):
    b = baron_pancreas()
    rows = {}
    for name, a in b.items():
        n0 = a.n_obs
        preprocess(a, n_components=1200)
        u = a.uns["scnotebook"]["preprocess"]
        assert a.obsm["X_intense"].shape == (n0, 1200)                   # Baron cells all have counts: none dropped
        assert a.varm["PCs_intense"].shape == (a.n_vars, 1200) and a.n_vars < u["n_genes_in"]
        lo, hi = u["value_range_before_pca"]
        assert lo >= -50 and hi <= 50 + 1e-3 and abs(hi - 50) < 1e-3
        assert a.X.data.min() >= 0 and a.X.data.max() <= 50 + 1e-3
        assert u["solver"] == "exact" and 0.5 < u["explained_variance"] < 1
        # the reported error is the real one, on a subset of cells too
        X = a.X.toarray(); Xh = reconstruct(a)
        assert abs(np.linalg.norm(X - Xh) / np.linalg.norm(X) - u["rel_frobenius_error"]) < 1e-3
        idx = np.arange(0, a.n_obs, 7)
        np.testing.assert_allclose(reconstruct(a, cells=idx), Xh[idx], atol=1e-3)
        # components are orthonormal, scores are uncorrelated with variance s^2/(n-1)
        V = a.varm["PCs_intense"]
        np.testing.assert_allclose(V.T @ V, np.eye(1200), atol=1e-3)
        rows[name] = (a.n_obs, a.n_vars, u["explained_variance"], u["rel_frobenius_error"], u["seconds"])
        save_h5ad(a, tmp_path / f"{name}.h5ad")                            # uns is writable for the pipeline
    with capsys.disabled():
        for k, (n, p, ev, err, sec) in rows.items():
            print(f"\nBaron {k}: {n} cells x {p} genes -> 1200 dims, explained variance {ev:.4f}, "
                  f"relative Frobenius error {err:.4f}, {sec:.1f}s")


def test_matches_scprep():
    raw = synthetic(300, 500, species="human", seed=1)
    a = raw.copy(); filter_normalize_log(a, min_library_size=80, min_cells_per_gene=5)
    Xs, cells = scprep.filter.filter_library_size(raw.X, np.arange(raw.n_obs)[:, None], cutoff=80)
    Xs, genes = scprep.filter.filter_rare_genes(Xs, np.arange(raw.n_vars)[None, :], min_cells=5)
    Xs = sp.csr_matrix(scprep.transform.log(scprep.normalize.library_size_normalize(Xs), pseudocount=1, base="e"))
    assert (a.obs_names == raw.obs_names[cells.ravel()]).all() and (a.var_names == raw.var_names[genes.ravel()]).all()
    np.testing.assert_allclose(a.X.toarray(), Xs.toarray(), rtol=1e-4, atol=1e-5)


def test_randomized_matches_exact():
    a = synthetic(3000, 2000, species="human", seed=0)
    filter_normalize_log(a); scale_sparse(a)
    ex = pca_sparse(a.X, 40, solver="exact")
    ra = pca_sparse(a.X, 40, solver="randomized", n_iter=3, chunk_size=500)
    np.testing.assert_allclose(ra["singular_values"][:4], ex["singular_values"][:4], rtol=1e-3)   # the signal
    np.testing.assert_allclose(ra["singular_values"], ex["singular_values"], rtol=0.1)           # the flat noise tail: close, not exact
    assert ra["explained_variance_ratio"].sum() > 0.97 * ex["explained_variance_ratio"].sum()   # flat spectrum: ~97% of the optimum
    for j in range(3):  # leading components agree up to numerical noise (signs are fixed)
        assert abs(ra["components"][:, j] @ ex["components"][:, j]) > 0.99


def test_lossless_with_all_components():
    a = synthetic(80, 300, species="mouse", seed=2)
    out = preprocess(a, n_components=79, min_cells_per_gene=1, copy=True)
    assert out.uns["scnotebook"]["preprocess"]["rel_frobenius_error"] < 1e-3
    np.testing.assert_allclose(reconstruct(out, space="log"), out.X.toarray() / out.var["intense_scale"].values, atol=1e-3)
    counts = reconstruct(out, space="counts")
    ref = a[out.obs_names, out.var_names].X.toarray()
    np.testing.assert_allclose(counts, ref, atol=0.05 * ref.max())


def test_copy_semantics_and_gene_scale():
    raw = synthetic(200, 300, species="human", seed=0)
    before = raw.X.copy()
    out = preprocess(raw, n_components=10, scale="gene", copy=True)
    assert (raw.X != before).nnz == 0 and "X_intense" not in raw.obsm
    assert np.allclose(np.asarray(out.X.max(0).toarray()).ravel(), 50, atol=1e-3)
    assert preprocess(raw, n_components=10, scale="gene") is None and raw.obsm["X_intense"].shape[1] == 10
    np.testing.assert_allclose(raw.obsm["X_intense"], out.obsm["X_intense"], atol=1e-4)


def test_bad_inputs():
    a = synthetic(30, 100, species="human", seed=0)
    with pytest.raises(ValueError, match=r"n_components=1200 is more than the 29 principal components that 30 cells x \d+ genes"):
        preprocess(a.copy(), n_components=1200)
    c = preprocess(a.copy(), n_components=1200, cap_components=True, copy=True)
    assert c.obsm["X_intense"].shape[1] == 29 and c.uns["scnotebook"]["preprocess"]["n_components_requested"] == 1200
    bad = a.copy(); bad.X.data[0] = np.nan
    with pytest.raises(ValueError, match="1 NaN and 0 inf values"):
        preprocess(bad, n_components=5)
    bad = a.copy(); bad.X.data[3] = -1
    with pytest.raises(ValueError, match="negative values"):
        preprocess(bad, n_components=5)
    with pytest.raises(ValueError, match="unknown scale 'unit'"):
        preprocess(a.copy(), n_components=5, scale="unit")
    with pytest.raises(ValueError, match="unknown solver 'arpack'"):
        preprocess(a.copy(), n_components=5, solver="arpack")
    with pytest.raises(ValueError, match="no gene is expressed in at least min_cells_per_gene=1000"):
        preprocess(a.copy(), n_components=5, min_cells_per_gene=1000)
    with pytest.raises(ValueError, match=r"no cell has a library size above min_library_size=1000000000.0 \(largest: \d+\)"):
        preprocess(a.copy(), n_components=5, min_library_size=1e9)
    with pytest.raises(KeyError, match=r"obsm\['X_intense'\] is missing: run preprocess"):
        reconstruct(a)
    with pytest.raises(TypeError, match="expects an AnnData"):
        preprocess(a.X, n_components=5)


def test_preprocess_all_config():
    d = synthetic(150, 200, seed=0)
    m = preprocess_all(d, {"n_components": 12, "min_cells_per_gene": 3, "scale": "global", "unrelated": 1}, seed=0)
    assert set(m) == {"human", "mouse"} and all(d[k].obsm["X_intense"].shape == (150, 12) for k in d)
    assert all(0 < m[k]["explained_variance"] < 1 for k in m)


# ---------------------------------------------------------------- hardening (issue 13)
@pytest.mark.parametrize("kw,msg", [
    (dict(scale=0), r"scale=0 is out of range: expected a finite number > 0"),
    (dict(scale=-3.0), r"scale=-3.0 is out of range"),
    (dict(scale=float("nan")), r"scale=nan is out of range"),
    (dict(rescale=0), r"rescale=0 is out of range: expected a finite number > 0"),
    (dict(rescale=-10), r"rescale=-10 is out of range"),
    (dict(scale_max=0), r"scale_max=0 is out of range"),
    (dict(n_components=0), r"n_components=0 is out of range: expected an integer >= 1"),
    (dict(n_components=-5), r"n_components=-5 is out of range"),
    (dict(min_library_size=-1), r"min_library_size=-1 is out of range: expected a finite number >= 0 or None"),
    (dict(min_cells_per_gene=-1), r"min_cells_per_gene=-1 is out of range: expected an integer >= 0"),
    (dict(n_iter=-1), r"n_iter=-1 is out of range"),
])
def test_option_ranges_refused(kw, msg):
    a = synthetic(40, 60, species="human", seed=0)
    with pytest.raises(ValueError, match=msg):
        preprocess(a, **{"n_components": 3, **kw})
    assert "X_intense" not in a.obsm                      # refused before any work
    with pytest.raises(TypeError, match="n_components='3' is not valid"):
        preprocess(a, n_components="3")


def _with_duplicates(X):
    "The same matrix with each stored value split into two stored entries (x/2 + x/2)."
    X = X.tocsr()
    return sp.csr_matrix((np.repeat(X.data / 2, 2), np.repeat(X.indices, 2), X.indptr * 2), shape=X.shape)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_duplicate_entries_summed(fmt, caplog):
    raw = synthetic(120, 200, species="human", seed=3)
    dup = raw.copy()
    if fmt == "csr": dup.X = _with_duplicates(raw.X)
    else:   # a CSC with duplicates, built from the arrays of the transposed CSR
        t = _with_duplicates(raw.X.T.tocsr()); dup.X = sp.csc_matrix((t.data, t.indices, t.indptr), shape=raw.shape)
    assert not dup.X.has_canonical_format
    ref = preprocess(raw, n_components=8, copy=True)
    with caplog.at_level("WARNING", logger="scnotebook"):
        out = preprocess(dup, n_components=8, copy=True)
    assert "duplicate stored entries of the sparse matrix summed" in caplog.text
    np.testing.assert_allclose(out.obsm["X_intense"], ref.obsm["X_intense"], atol=1e-3)
    # check=False: filter_normalize_log sums them too
    out2 = preprocess(dup, n_components=8, copy=True, check=False)
    np.testing.assert_allclose(out2.obsm["X_intense"], ref.obsm["X_intense"], atol=1e-3)


@pytest.mark.parametrize("min_library_size", [None, 0, 5])
def test_zero_count_cells_always_removed(min_library_size, caplog):
    a = synthetic(60, 80, species="mouse", seed=1)
    X = a.X.tolil(); X[[0, 7, 9]] = 0; a.X = X.tocsr()
    with caplog.at_level("WARNING", logger="scnotebook"):
        out = preprocess(a, n_components=4, min_library_size=min_library_size, min_cells_per_gene=1, copy=True)
    assert "3 of 60 cells have zero counts and are removed" in caplog.text
    assert not {"mouse_0", "mouse_7", "mouse_9"} & set(out.obs_names)
    assert out.uns["scnotebook"]["preprocess"]["zero_count_cells"] >= 3
    assert (out.obs["library_size"] > 0).all() and np.isfinite(out.obsm["X_intense"]).all()
    m = preprocess_all({"x": a.copy()}, {"n_components": 4, "min_library_size": min_library_size, "min_cells_per_gene": 1})
    assert m["x"]["zero_count_cells"] >= 3 and m["x"]["n_cells"] <= 57
    with pytest.raises(ValueError, match="all 2 cells have zero counts"):
        filter_normalize_log(a[[0, 7]].copy(), min_library_size=min_library_size)
