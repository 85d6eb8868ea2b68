"Tests of scnotebook.atlas: the atlas-shaped synthetic pair, its cache, and the atlas config's built-in datasets."
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scnotebook.atlas import HUMAN_ONLY, HUMAN_TYPES, RANKS, atlas_dataset, atlas_pair, mba_clusters
from scnotebook.config import load_config, resolve_config
from scnotebook.data import load_datasets, read_dataset

SMALL = dict(n_genes=(1500, 2500), n_orthologs=900)


@pytest.fixture(scope="module")
def clusters(request):
    from conftest import shared_data
    return mba_clusters(shared_data("mousebrain_l5_taxonomy"))


def test_clusters_are_the_atlas(clusters):
    assert len(clusters) == 265 and int(clusters.NCells.sum()) == 160_796
    assert [clusters[r].nunique() for r in RANKS] == [4, 6, 16, 39, 265]
    assert set(HUMAN_TYPES) <= set(clusters.TaxonomyRank3)


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


def test_builtin_ids_read_through_the_cache(clusters, tmp_path, monkeypatch, shared):
    monkeypatch.setenv("SCNOTEBOOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SCNOTEBOOK_DATA", str(shared("mousebrain_l5_taxonomy").parent))
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
