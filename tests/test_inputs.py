"""Random and hostile inputs: small matrices thrown at `validate` / `preprocess` (hypothesis), and output file modes."""
import os, stat

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st

from scnotebook.core import current_umask, save_h5ad, save_json
from scnotebook.data import validate
from scnotebook.preprocess import preprocess

VALUES = [0, 0, 0, 1, 1, 2, 3, 7, 0.5, 250, -1, np.nan, np.inf, -np.inf]


@st.composite
def matrices(draw):
    "A small matrix: int/float32/float64, dense or CSR/CSC (optionally with duplicate stored entries), odd values and empty rows/columns."
    n, p = draw(st.integers(1, 3)), draw(st.integers(1, 6))
    dtype = draw(st.sampled_from([np.int32, np.int64, np.float32, np.float64]))
    odd = draw(st.booleans())   # allow NaN / inf / negative values
    pool = VALUES if odd else [v for v in VALUES if np.isfinite(v) and v >= 0]
    if np.dtype(dtype).kind == "i": pool = [int(v) for v in pool if np.isfinite(v)]
    density = draw(st.sampled_from([0.0, 0.2, 0.5, 1.0]))
    mask = np.array(draw(st.lists(st.floats(0, 1), min_size=n * p, max_size=n * p))).reshape(n, p) < density
    vals = np.array(draw(st.lists(st.sampled_from(pool), min_size=n * p, max_size=n * p)), dtype=np.float64).reshape(n, p)
    D = np.where(mask, vals, 0)
    if draw(st.booleans()): D[draw(st.integers(0, n - 1))] = 0           # an all-zero cell
    if draw(st.booleans()): D[:, draw(st.integers(0, p - 1))] = 0        # an all-zero gene
    D = D.astype(dtype)
    kind = draw(st.sampled_from(["dense", "csr", "csc", "csr_dup", "csc_dup"]))
    if kind == "dense": return D
    X = sp.csr_matrix(D) if kind.startswith("csr") else sp.csc_matrix(D)
    if kind.endswith("dup") and X.nnz:   # split some stored entries into two (the same total for integers and floats)
        k = draw(st.integers(1, X.nnz))
        cls = sp.csr_matrix if kind.startswith("csr") else sp.csc_matrix
        isint = np.dtype(dtype).kind == "i"
        data, ind, indptr = [], [], [0]
        for r in range(len(X.indptr) - 1):
            for q in range(X.indptr[r], X.indptr[r + 1]):
                v = X.data[q]
                if q < k:   # v stored as two entries that sum to v
                    h = v // 2 if isint else v / 2
                    data += [h, v - h]; ind += [X.indices[q]] * 2
                else: data.append(v); ind.append(X.indices[q])
            indptr.append(len(data))
        X = cls((np.array(data, dtype=dtype), np.array(ind), indptr), shape=X.shape)
    return X


def _adata(X):
    a = ad.AnnData(X=X)
    a.obs_names = [f"c{i}" for i in range(a.n_obs)]; a.var_names = [f"g{j}" for j in range(a.n_vars)]
    return a


@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(X=matrices(), n_components=st.integers(1, 2), min_cells_per_gene=st.integers(0, 2),
       min_library_size=st.sampled_from([None, 0, 1]), solver=st.sampled_from(["auto", "exact", "randomized"]))
def test_random_matrices_validate_and_preprocess(X, n_components, min_cells_per_gene, min_library_size, solver):
    "Either a clear ValueError or a finite result, never another exception."
    dense = X.toarray() if sp.issparse(X) else X
    try:
        rep = validate(_adata(X.copy()))
    except ValueError as e:
        assert str(e)
    else:
        assert rep["n_cells"] == dense.shape[0] and np.isfinite(rep["density"])
        assert rep["nnz"] == np.count_nonzero(dense)                   # duplicates are summed, not counted twice
    try:
        out = preprocess(_adata(X.copy()), n_components=n_components, min_cells_per_gene=min_cells_per_gene,
                         min_library_size=min_library_size, solver=solver, copy=True)
    except ValueError as e:
        assert str(e)
    else:
        u = out.uns["scnotebook"]["preprocess"]
        assert np.isfinite(out.obsm["X_intense"]).all() and out.obsm["X_intense"].shape == (out.n_obs, u["n_components"])
        assert np.isfinite(u["explained_variance"]) and (out.obs["library_size"] > 0).all()
        assert np.isfinite(out.X.toarray()).all()


@pytest.mark.parametrize("bad", [np.zeros((3, 3)), None, "counts.h5ad", [[1, 2]]])
def test_non_anndata_is_a_type_error(bad):
    with pytest.raises((TypeError, FileNotFoundError)): preprocess(bad, n_components=1)
    if not isinstance(bad, str):
        with pytest.raises(TypeError): validate(bad)


# ---------------------------------------------------------------- output file modes
@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_output_files_follow_umask(tmp_path, umask, mode):
    "Atomic writes give the file the mode a plain open() would, not mkstemp's 0600."
    old = os.umask(umask)
    try:
        assert current_umask() == umask
        save_json({"a": 1}, tmp_path / "x.json")
        save_h5ad(ad.AnnData(np.ones((2, 2), np.float32)), tmp_path / "x.h5ad")
        with open(tmp_path / "plain.txt", "w") as f: f.write("x")
        for f in ("x.json", "x.h5ad", "plain.txt"):
            assert stat.S_IMODE((tmp_path / f).stat().st_mode) == mode, f
        os.chmod(tmp_path / "x.json", 0o640)                  # rewriting an existing file keeps its mode, as open() does
        save_json({"a": 2}, tmp_path / "x.json")
        assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o640
        assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.txt", "x.h5ad", "x.json"]   # no temporary left
    finally:
        os.umask(old)
