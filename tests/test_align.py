"""scnotebook.align: the paper's GAN, the MUSE recipe, supervised Procrustes; bad input."""
import numpy as np
import pytest

from scnotebook.align import (METHODS, align, check_pair, csls_nn, gw_init, mutual_csls_pairs, normalizer, procrustes,
                              refine, rotated_pair, selection_criterion)
from scnotebook.metrics import label_transfer


@pytest.fixture(scope="module")
def pair():
    return rotated_pair(300, 8, seed=0)


def test_procrustes_recovers_a_rotation(pair):
    src, tgt, R = pair
    Z = normalizer().fit_transform(src.obsm["X_scn"])
    np.testing.assert_allclose(procrustes(Z, Z @ R.T), R, atol=1e-4)
    r = align(src, tgt, method="procrustes", copy=True); s, t = r.source, r.target
    assert np.linalg.norm(r.W - R) < 0.6
    assert label_transfer(s, t, use_rep="X_scn_aligned")["accuracy"] > 0.95


def test_csls_pairs_follow_the_true_map(pair):
    src, tgt, R = pair
    Zs, Zt = normalizer().fit_transform(src.obsm["X_scn"]), normalizer().fit_transform(tgt.obsm["X_scn"])
    i, j = mutual_csls_pairs(Zs @ R.T, Zt)
    assert len(i) > 20
    assert (src.obs.cell_type.to_numpy(str)[i] == tgt.obs.cell_type.to_numpy(str)[j]).mean() > 0.95
    idx, score, cos = csls_nn(Zs, Zt)
    assert idx.shape == score.shape == cos.shape == (len(Zs),) and np.all(cos <= 1 + 1e-5)
    assert selection_criterion(Zs @ R.T, Zt) > selection_criterion(Zs, Zt)


def test_align_writes_both_sides_and_is_deterministic(pair):
    src, tgt, _ = pair
    runs = [align(src, tgt, method="muse", seed=3, epochs=1, epoch_size=1000, restarts=2, copy=True) for _ in range(2)]
    r, r2 = runs; s, t = r.source, r.target
    np.testing.assert_array_equal(r.W, r2.W)
    assert "X_scn_aligned" in s.obsm and "X_scn_aligned" in t.obsm and "X_scn_aligned" not in src.obsm
    assert s.obsm["X_scn_aligned"].shape == src.obsm["X_scn"].shape
    np.testing.assert_allclose(s.obsm["X_scn_aligned"], r.transform(src.obsm["X_scn"]), atol=1e-5)
    np.testing.assert_allclose(r.W @ r.W.T, np.eye(8), atol=1e-4)          # refinement ends orthogonal
    assert len(r.restarts) == 2 and r.criterion == pytest.approx(r.restarts.criterion.max())
    assert s.uns["scnotebook"]["X_scn_aligned"]["method"] == "muse" and t.uns["scnotebook"]["X_scn_aligned"]["role"] == "target"
    assert set(r.history.stage) == {"adversarial", "refinement"}


@pytest.mark.parametrize("method", METHODS)
def test_every_method_runs(pair, method):
    src, tgt, _ = pair
    kw = dict(epochs=1, epoch_size=500) if method in ("muse", "paper") else {}
    if method == "seeded": kw = dict(anchors=["type0", "type1", "type2"])   # cell types known in both
    r = align(src, tgt, method=method, copy=True, **kw); s, t = r.source, r.target
    assert r.W.shape == (8, 8) and np.isfinite(s.obsm["X_scn_aligned"]).all()


def test_paper_method_follows_the_paper(pair):
    src, tgt, _ = pair
    r = align(src, tgt, method="paper", epochs=2, copy=True)
    p = r.params
    assert p["lr"] == 3e-5 and p["batch_size"] == 1024 and p["optimizer"] == "adam" and p["normalize"] is None
    assert p["label_smoothing"] == 0 and p["orthogonalize"] == 0


def test_gw_start_and_refinement(pair):
    src, tgt, _ = pair
    Zs, Zt = normalizer().fit_transform(src.obsm["X_scn"]), normalizer().fit_transform(tgt.obsm["X_scn"])
    W, loss = gw_init(Zs, Zt, n_cells=150, n_init=2)
    np.testing.assert_allclose(W @ W.T, np.eye(8), atol=1e-4)
    W2, c2, h = refine(Zs, Zt, W, n_iter=3)
    assert c2 >= selection_criterion(Zs @ W.T, Zt) - 1e-6
    r = align(src, tgt, method="muse", init="gw", epochs=0, gw_cells=150, copy=True)
    assert "gw" in set(r.history.stage)


def test_bad_input(pair):
    src, tgt, _ = pair
    nan = src.copy(); nan.obsm["X_scn"][5, 0] = np.nan
    with pytest.raises(ValueError, match="contains NaN or inf in 1 of 300 cells"): align(nan, tgt)
    inf = tgt.copy(); inf.obsm["X_scn"][0, 0] = np.inf
    with pytest.raises(ValueError, match="target.obsm\\['X_scn'\\] contains NaN or inf"): align(src, inf)
    small = tgt.copy(); small.obsm["X_scn"] = small.obsm["X_scn"][:, :5]
    with pytest.raises(ValueError, match="has 8 dimensions but target.obsm\\['X_scn'\\] has 5"): align(src, small)
    with pytest.raises(ValueError, match="source has no cells"): align(src[:0].copy(), tgt)
    with pytest.raises(ValueError, match="target has no cells"): check_pair(src, tgt[:0].copy(), "X_scn")
    with pytest.raises(KeyError, match="has no 'X_other'"): align(src, tgt, use_rep="X_other")
    with pytest.raises(ValueError, match="unknown method 'gan'"): align(src, tgt, method="gan")
    with pytest.raises(ValueError, match="restarts must be at least 1"): align(src, tgt, restarts=0)
    with pytest.raises(TypeError, match="unknown options"): align(src, tgt, method="muse", learning_rate=1)
    with pytest.raises(KeyError, match="no label column 'celltype'"): align(src, tgt, method="procrustes", label_key="celltype")
    other = src.copy(); other.obs["cell_type"] = "x"
    with pytest.raises(ValueError, match="share no cell-type label"): align(other, tgt, method="procrustes")
    with pytest.raises(ValueError, match="unknown normalisation step"): align(src, tgt, method="none", normalize="whiten")


def test_explicit_anchor_pairs(pair):
    src, tgt, R = pair
    Zs = normalizer().fit_transform(src.obsm["X_scn"]); Zt = normalizer().fit_transform(tgt.obsm["X_scn"])
    i, j = mutual_csls_pairs(Zs @ R.T, Zt)
    r = align(src, tgt, method="procrustes", anchors=(i, j), copy=True)
    assert np.linalg.norm(r.W - R) < 1.0 and r.params["anchors"] == len(i)


@pytest.fixture(scope="module")
def baron():
    from scnotebook.core import local_data
    if local_data("baron_pancreas") is None: pytest.skip("real dataset 'baron_pancreas' not found in ../shared/data or $SCNOTEBOOK_DATA")
    from scnotebook.peers import baron_pair
    mouse, human, _ = baron_pair(n_comps=50)
    return mouse, human


def test_baron_supervised_bound_and_no_alignment(baron):
    mouse, human = baron
    acc = {}
    for m in ("none", "procrustes"):
        r = align(mouse, human, use_rep="X_pca_species", method=m, label_map="baron", copy=True); s, t = r.source, r.target
        acc[m] = label_transfer(s, t, use_rep="X_scn_aligned", label_map="baron")["accuracy"]
    assert acc["procrustes"] > 0.95, acc
    assert acc["none"] < 0.7, acc


@pytest.mark.slow
def test_baron_muse_beats_no_alignment(baron):
    mouse, human = baron
    r = align(mouse, human, use_rep="X_pca_species", method="muse", epochs=2, epoch_size=5000, copy=True); s, t = r.source, r.target
    r0 = align(mouse, human, use_rep="X_pca_species", method="none", copy=True); s0, t0 = r0.source, r0.target
    assert r.criterion > r0.criterion
    a = label_transfer(s, t, use_rep="X_scn_aligned", label_map="baron")["accuracy"]
    a0 = label_transfer(s0, t0, use_rep="X_scn_aligned", label_map="baron")["accuracy"]
    assert a > a0, (a, a0)


def test_procrustes_needs_two_anchors(pair):
    "One shared type (or one anchor pair) fixes no rotation: refused with the type named, never fitted silently."
    src, tgt, _ = pair
    one = src.copy(); one.obs["cell_type"] = np.where(one.obs.cell_type == "type3", "type3", "mouse_only")
    with pytest.raises(ValueError, match=r"share only one cell type .*\('type3'\): a rotation from one anchor is arbitrary"):
        align(one, tgt, method="procrustes", copy=True)
    with pytest.raises(ValueError, match="at least 2 pairs, got 1"): align(src, tgt, method="procrustes", anchors=([0], [1]), copy=True)
    with pytest.raises(ValueError, match="one shared cell type"): align(src, tgt, anchors=["type3"], copy=True)
    with pytest.raises(ValueError, match="at least 2 pairs, got 1"): procrustes(np.ones((1, 3)), np.ones((1, 3)))
    r = align(src, tgt, method="procrustes", copy=True)
    assert r.params["anchor_rank"] == src.obsm["X_scn"].shape[1]       # 10 types span the 8 dimensions


def test_label_map_with_absent_types_warns_and_unlabelled_cells_are_no_type(pair, caplog):
    src, tgt, _ = pair
    with caplog.at_level("WARNING", logger="scnotebook"):
        align(src, tgt, method="procrustes", label_map={"type1": "type1", "tpye2": "type2"}, copy=True)
    assert "names type(s) absent from both datasets: ['tpye2']" in caplog.text
    na = src.copy(); lab = na.obs.cell_type.astype(object).to_numpy(); lab[:9] = np.nan; na.obs["cell_type"] = lab
    r = align(na, tgt, method="procrustes", copy=True)
    assert "nan" not in r.params["anchors"] and r.params["anchors"] == align(src, tgt, method="procrustes", copy=True).params["anchors"]


@pytest.mark.parametrize("kw, msg", [
    (dict(restarts=0), "restarts must be at least 1"), (dict(restarts=1.5), "restarts must be at least 1 (an integer)"),
    (dict(epochs=-2), "epochs must be at least 0"), (dict(csls_k=0), "csls_k must be at least 1"),
    (dict(refinement=-1), "refinement must be at least 0"), (dict(lr=-0.1), "lr must be more than 0"),
    (dict(label_smoothing=0.5), "label_smoothing must be at least 0 and below 0.5"), (dict(dis_steps=0), "dis_steps must be at least 1"),
    (dict(lr_decay=0), "lr_decay must be more than 0 and at most 1"), (dict(lr=float("nan")), "lr must be more than 0"),
])
def test_numeric_options_are_range_checked(pair, kw, msg):
    src, tgt, _ = pair
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        align(src, tgt, method="muse", epoch_size=200, copy=True, **kw)
