"Tests of scnotebook.atlas: the atlas-shaped synthetic pair, its cache, and the atlas config's built-in datasets."
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scnotebook.atlas import (HUMAN_ONLY, HUMAN_TYPES, MBA_CACHE, MBA_COLUMNS, MBA_TABLE_SHA256, RANKS, atlas_dataset,
                              atlas_pair, mba_clusters, mba_download, mba_standin, table_sha256)
from scnotebook.config import load_config, resolve_config
from scnotebook.data import load_datasets, read_dataset

SMALL = dict(n_genes=(1500, 2500), n_orthologs=900)


@pytest.fixture(scope="module")
def real_clusters(request):
    from conftest import shared_data
    return mba_clusters(shared_data("mousebrain_l5_taxonomy"))


@pytest.fixture(scope="module")
def clusters():
    "The real cluster table when it is here, else the stand-in (the pair's properties hold for both)."
    from conftest import shared_data
    try: return mba_clusters(shared_data("mousebrain_l5_taxonomy"))
    except pytest.skip.Exception: return mba_standin()


@pytest.fixture
def no_local_data(tmp_path, monkeypatch):
    "A bare machine: no SCNOTEBOOK_DATA, no ../shared beside the working directory, an empty cache."
    monkeypatch.delenv("SCNOTEBOOK_DATA", raising=False)
    monkeypatch.setenv("SCNOTEBOOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "cache" / "mousebrain_l5_taxonomy"


def _write_loom(tab, path):
    "The column attributes of an aggregated loom, as loompy writes them (strings as fixed-length bytes)."
    import h5py
    with h5py.File(path, "w") as f:
        f["matrix"] = np.zeros((2, len(tab)), np.float32)
        for c in MBA_COLUMNS: f[f"col_attrs/{c}"] = tab[c].to_numpy() if c == "NCells" else tab[c].to_numpy().astype("S")
    return path


def test_clusters_are_the_atlas(real_clusters):
    clusters = real_clusters
    assert len(clusters) == 265 and int(clusters.NCells.sum()) == 160_796
    assert [clusters[r].nunique() for r in RANKS] == [4, 6, 16, 39, 265]
    assert set(HUMAN_TYPES) <= set(clusters.TaxonomyRank3)
    assert table_sha256(clusters) == MBA_TABLE_SHA256


def test_real_table_passes_the_download_check(real_clusters, tmp_path):
    "The real table, written in the aggregated loom's layout, is read back, matches MBA_TABLE_SHA256 and is cached."
    loom = _write_loom(real_clusters.reset_index(drop=True), tmp_path / "l5_all.agg.loom")
    cached = mba_download(loom.as_uri(), cache_dir=tmp_path / "cache")
    assert cached == tmp_path / "cache" / MBA_CACHE and not (tmp_path / "cache" / "l5_all.agg.loom").exists()
    got = mba_clusters(cached)
    assert table_sha256(got) == MBA_TABLE_SHA256 and (got.NCells == real_clusters.NCells).all()


def test_bare_machine_cache_then_download(no_local_data):
    "No local data: mba_clusters reads the cache, else downloads; offline the error says what to do."
    with pytest.raises(FileNotFoundError, match="no Mouse Brain Atlas cluster table"):
        mba_clusters(download=False)
    with pytest.raises(ConnectionError, match="Offline\\?.*SCNOTEBOOK_DATA"):
        mba_clusters(url="http://127.0.0.1:9/l5_all.agg.loom")
    s = mba_standin(2)
    loom = _write_loom(s.reset_index(drop=True), no_local_data.parent.parent / "standin.agg.loom")
    with pytest.raises(ValueError, match="not the published table"):   # only the real table passes by default
        mba_clusters(url=loom.as_uri())
    mba_download(loom.as_uri(), sha256=table_sha256(s))
    assert (no_local_data / MBA_CACHE).is_file() and table_sha256(mba_clusters(download=False)) == table_sha256(s)


def test_standin_is_labelled_and_nested():
    s = mba_standin()
    assert s.attrs["standin"] and s.ClusterName.str.startswith("STANDIN").all() and len(s) == 48
    assert [s[r].nunique() for r in RANKS[:3]] == [4, 6, 16] and set(HUMAN_TYPES) <= set(s.TaxonomyRank3)
    assert table_sha256(s) != MBA_TABLE_SHA256
    with pytest.raises(ValueError, match="at least 1"):
        mba_standin(0)


def test_mba_clusters_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="mousebrain_agg_L5"):
        mba_clusters(tmp_path)
    pd.DataFrame({"ClusterName": ["a"], "NCells": [3]}).to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(ValueError, match="lacks the columns"):
        mba_clusters(tmp_path / "x.csv")


def test_pair_shapes_taxonomy_and_sparsity(clusters):
    pair = atlas_pair(0.02, 600, clusters=clusters, seed=1, **SMALL)
    m, h = pair["mouse"], pair["human"]
    sizes = np.maximum(1, np.round(clusters.NCells * 0.02)).astype(int)
    assert m.n_obs == sizes.sum() and h.shape == (600, 2500) and m.n_vars == 1500
    # every cluster at its scaled atlas size
    got = m.obs.ClusterName.value_counts()
    assert (got.reindex(clusters.index).values == sizes.values).all()
    for a in (m, h):
        assert sp.isspmatrix_csr(a.X) and a.X.dtype == np.float32 and np.allclose(a.X.data, np.round(a.X.data))
        assert 0.08 < a.X.nnz / np.prod(a.shape) < 0.2                          # 80-90% zeros
        for fine, coarse in zip(RANKS[1:], RANKS[:-1]):                          # the ranks nest
            assert (a.obs.groupby(fine, observed=True)[coarse].nunique() == 1).all()
    # types of one species only: 10 mouse-only, 1 human-only, about HUMAN_ONLY['share'] of the human cells
    assert set(h.obs.TaxonomyRank3) == set(HUMAN_TYPES) | {HUMAN_ONLY["TaxonomyRank3"]}
    assert len(set(m.obs.TaxonomyRank3) - set(h.obs.TaxonomyRank3)) == 10
    assert abs((h.obs.TaxonomyRank3 == HUMAN_ONLY["TaxonomyRank3"]).mean() - HUMAN_ONLY["share"]) < 0.01
    # orthologs: the same genes under human and mouse spellings
    assert set(h.var_names[h.var.ortholog].str.lower()) == set(m.var_names[m.var.ortholog].str.lower())
    assert h.var.ortholog.sum() == m.var.ortholog.sum() == 900


def test_pair_is_seeded_and_sides_are_independent(clusters):
    a = atlas_pair(0.01, 300, clusters=clusters, seed=2, **SMALL)
    b = atlas_pair(0.03, 300, clusters=clusters, seed=2, species=("human",), **SMALL)
    assert (a["human"].X != b["human"].X).nnz == 0 and "mouse" not in b
    c = atlas_pair(0.01, 300, clusters=clusters, seed=3, species=("human",), **SMALL)
    assert (a["human"].X != c["human"].X).nnz > 0
    with pytest.raises(ValueError, match="scale must be > 0"):
        atlas_pair(-1, clusters=clusters)
    with pytest.raises(ValueError, match="one value per rank"):
        atlas_pair(0.01, clusters=clusters, effects=(1, 2))


def test_builtin_ids_read_through_the_cache(clusters, tmp_path, monkeypatch):
    monkeypatch.setenv("SCNOTEBOOK_CACHE", str(tmp_path / "cache"))
    # the cluster table (real or stand-in) as the cached copy, with no local data: the ids read it from the cache
    monkeypatch.delenv("SCNOTEBOOK_DATA", raising=False); monkeypatch.chdir(tmp_path)
    (tmp_path / "cache" / "mousebrain_l5_taxonomy").mkdir(parents=True)
    clusters.to_csv(tmp_path / "cache" / "mousebrain_l5_taxonomy" / MBA_CACHE, index=False)
    a = read_dataset("atlas_mouse", label_key="TaxonomyRank3", species="mouse", scale=0.01, **SMALL)
    assert a.obs.cell_type.nunique() == 16 and set(a.obs.species) == {"mouse"}
    files = sorted(p.name for p in (tmp_path / "cache" / "atlas").iterdir())
    assert len(files) == 1 and files[0].startswith("mouse_scale0.01_seed0")
    b = read_dataset("atlas_mouse", label_key="TaxonomyRank3", species="mouse", scale=0.01, **SMALL)   # from the cache
    assert (a.X != b.X).nnz == 0
    adatas, _ = load_datasets({"human": {"source": "atlas_human", "label_key": "TaxonomyRank3", "species": "human",
                                         "options": {"human_cells": 200, **SMALL}}})
    assert adatas["human"].shape == (200, 2500)


def test_atlas_config_validates():
    cfg = load_config(resolve_config("atlas"), ["datasets.mouse.options.scale=0.25"])
    assert cfg["datasets"]["mouse"]["source"] == "atlas_mouse" and cfg["datasets"]["mouse"]["options"] == {"scale": 0.25}
    assert cfg["datasets"]["human"]["options"]["human_cells"] == 25_000
    assert cfg["evaluation"]["taxonomy"] == "mouse_brain_atlas" and cfg["datasets"]["mouse"]["label_key"] == "TaxonomyRank3"
