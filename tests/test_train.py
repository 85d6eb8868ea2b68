"Tests of scnotebook.train: training lowers the loss, embed, NaN guard, exact resume, DDP equivalence, XLA."
import os
import signal
import subprocess
import sys
import textwrap
import time

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

from scnotebook.core import local_data

torch.set_num_threads(1)  # the same threads as the child processes below: bitwise comparisons need the same kernels
from scnotebook.train import CHECKPOINT, Sampler, embed, evaluate, fit, fit_distributed, knn_cv_accuracy, load_checkpoint


@pytest.fixture(scope="module")
def adatas():
    "Realistic small input: the package's synthetic cross-species counts, preprocessed to a few components."
    from scnotebook.data import synthetic
    from scnotebook.preprocess import preprocess
    out = synthetic(n_cells=[160, 110], n_genes=[400, 300], seed=0, show_progress=False)
    for a, k in zip(out.values(), (24, 16)): preprocess(a, n_components=k, show_progress=False)
    return out


KW = dict(preset="tiny", epochs=2, device="cpu", seed=3, progress_bar=False)


def _same_weights(m1, m2):
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert list(s1) == list(s2)
    return all(torch.equal(s1[k], s2[k]) for k in s1)


def test_fit_lowers_loss_and_embeds(adatas):
    model = fit(adatas, **{**KW, "epochs": 6})
    h = model.history
    assert len(h) == model.fit_info["total_steps"]
    for n in adatas:
        assert h[f"loss_{n}"].tail(5).mean() < 0.8 * h[f"loss_{n}"].head(5).mean()
    ev = evaluate(model, adatas)
    assert (ev["loss"] < ev["mean_baseline"]).all()
    embed(model, adatas)
    for n, a in adatas.items():
        assert a.obsm["X_scn"].shape == (a.n_obs, model.config.d_model)
        assert knn_cv_accuracy(a.obsm["X_scn"], a.obs["cell_type"]) > 2.5 / a.obs["cell_type"].nunique()  # chance: 1/8


def test_fit_is_deterministic_and_seed_matters(adatas):
    assert _same_weights(fit(adatas, **KW), fit(adatas, **KW))
    assert not _same_weights(fit(adatas, **KW), fit(adatas, **{**KW, "seed": 4}))


def test_proportional_sampling(adatas):
    model = fit(adatas, **{**KW, "sampling": "proportional", "batch_size": 50})
    assert model.fit_info["steps_per_epoch"] == int(np.ceil(sum(a.n_obs for a in adatas.values()) / 50))
    assert np.isfinite(model.history["loss"]).all()


def test_nan_guard(adatas):
    with pytest.raises(FloatingPointError, match="training diverged"):
        fit(adatas, **{**KW, "lr": 1e30, "clip_norm": 0})


def test_bad_input(adatas):
    with pytest.raises(KeyError, match="obsm has no 'X_nope'"): fit(adatas, **KW, use_rep="X_nope")
    bad = adatas["human"].copy(); bad.obsm["X_intense"][3, 2] = np.inf
    with pytest.raises(ValueError, match="contains NaN or inf"): fit({"human": bad}, **KW)
    with pytest.raises(ValueError, match="sampling must be one of"): fit(adatas, **KW, sampling="x")


def test_resume_after_interruption_gives_identical_weights(adatas, tmp_path):
    kw = {**KW, "epochs": 3, "checkpoint_every": 4}
    straight = fit(adatas, **kw)

    def interrupt(step):
        if step == 10: raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        fit(adatas, checkpoint_dir=tmp_path, on_step=interrupt, **kw)
    ck = torch.load(tmp_path / CHECKPOINT, weights_only=True)  # loads without pickled code
    assert ck["step"] == 8 and not ck["done"]
    resumed = fit(adatas, checkpoint_dir=tmp_path, **kw)
    assert resumed.fit_info["resumed_from"] == 8
    assert _same_weights(straight, resumed)
    assert resumed.history.values.tolist() == straight.history.values.tolist()
    assert _same_weights(straight, load_checkpoint(tmp_path))
    with pytest.raises(ValueError, match="different run"):
        fit(adatas, checkpoint_dir=tmp_path, **{**kw, "lr": 1e-2})
    fresh = fit(adatas, checkpoint_dir=tmp_path, resume=False, **kw)
    assert fresh.fit_info["resumed_from"] == 0 and _same_weights(straight, fresh)


def test_resume_after_sigkill_with_dropout(adatas, tmp_path):
    "A training process killed with SIGKILL mid-run resumes to the weights of an uninterrupted run (dropout on)."
    for n, a in adatas.items(): a.write_h5ad(tmp_path / f"{n}.h5ad")
    kw = {**KW, "epochs": 24, "checkpoint_every": 5, "model_overrides": {"dropout": 0.1}}
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(f"""
        import anndata as ad, torch, time
        torch.set_num_threads(1)
        from scnotebook.train import fit
        adatas = {{n: ad.read_h5ad(r"{tmp_path}/" + n + ".h5ad") for n in {list(adatas)!r}}}
        fit(adatas, checkpoint_dir=r"{tmp_path / 'ck'}", on_step=lambda s: time.sleep(0.02), **{kw!r})
    """))
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck_file = tmp_path / "ck" / CHECKPOINT
    t0 = time.time()
    try:
        while time.time() - t0 < 120:
            if ck_file.exists() and torch.load(ck_file, weights_only=True)["step"] >= 10: break
            if p.poll() is not None: break
            time.sleep(0.2)
        assert p.poll() is None, "the child finished before it could be killed"
        os.kill(p.pid, signal.SIGKILL)
    finally:
        p.wait()
    step = torch.load(ck_file, weights_only=True)["step"]
    torch.set_num_threads(1)  # the child ran on one thread: the same reduction order, bit for bit
    total = fit(adatas, **{**kw, "max_steps": 1}).fit_info["total_steps"]
    assert 10 <= step < total
    resumed = fit(adatas, checkpoint_dir=tmp_path / "ck", **kw)
    assert resumed.fit_info["resumed_from"] == step
    assert _same_weights(resumed, fit(adatas, **kw))


def test_ddp_two_processes_match_one_process(adatas):
    "Two gloo processes with the same global batch follow the loss curve of one process."
    kw = dict(preset="tiny", epochs=2, batch_size=32, seed=0, progress_bar=False)
    one = fit(adatas, device="cpu", **kw)
    two = fit_distributed(adatas, nprocs=2, device="cpu", **kw)
    assert two.fit_info["world_size"] == 2
    cols = [c for c in one.history if c.startswith("loss")]
    np.testing.assert_allclose(two.history[cols].values, one.history[cols].values, rtol=1e-4, atol=1e-5)
    # weights agree to Adam's amplification of rounding noise (attention key biases get a gradient of ~0 in theory)
    for k, v in one.state_dict().items():
        np.testing.assert_allclose(two.state_dict()[k].numpy(), v.numpy(), rtol=1e-2, atol=2e-3, err_msg=k)


def test_sampler_shards_partition_the_global_batch():
    s = Sampler({"a": 50, "b": 20}, {"a": 3, "b": 2}, 16, seed=0)
    idx = s.indices(5)
    for n in idx:
        shards = [idx[n][r::2] for r in range(2)]
        assert sorted(np.concatenate(shards).tolist()) == sorted(idx[n].tolist())


def test_bf16_autocast_step_runs(adatas):
    "precision='bf16' (the default on cuda and xla) trains: the autocast context is entered each step."
    model = fit(adatas, **{**KW, "precision": "bf16"})
    assert model.fit_info["precision"] == "bf16"
    assert np.isfinite(model.history["loss"]).all()
    assert model.history["loss"].iloc[-1] < model.history["loss"].iloc[0]


@pytest.mark.tpu
def test_xla_path(adatas, tmp_path):
    """fit_distributed, fit and embed on an XLA device (PJRT_DEVICE=CPU needs no TPU), in a fresh process: torch-xla
    spawns workers only before its runtime starts, and backward on XLA fails once a CPU backward ran first (pytorch/xla#4174)."""
    import importlib.util
    if importlib.util.find_spec("torch_xla") is None: pytest.skip("torch-xla is not installed (it needs torch==2.9.0)")
    if not os.environ.get("PJRT_DEVICE"): pytest.skip("PJRT_DEVICE is not set: no XLA device configured")
    for n, a in adatas.items(): a.write_h5ad(tmp_path / f"{n}.h5ad")
    kw = {k: v for k, v in KW.items() if k != "device"}
    script = tmp_path / "xla_child.py"
    script.write_text(textwrap.dedent(f"""
        import anndata as ad, numpy as np
        from scnotebook.train import embed, fit, fit_distributed
        if __name__ == "__main__":  # torch-xla's workers re-import this file
            adatas = {{n: ad.read_h5ad(r"{tmp_path}/" + n + ".h5ad") for n in {list(adatas)!r}}}
            m2 = fit_distributed(adatas, device="xla", **{kw!r})  # first: before this process starts the XLA runtime
            assert m2.fit_info["world_size"] >= 1 and np.isfinite(m2.history["loss"]).all()
            m = fit(adatas, device="xla", **{kw!r})
            assert m.fit_info["device"].startswith("xla") and np.isfinite(m.history["loss"]).all()
            embed(m, adatas)
            assert all(np.isfinite(a.obsm["X_scn"]).all() for a in adatas.values())
            print("xla ok", m.history["loss"].round(4).tolist())
    """))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "xla ok" in r.stdout, r.stderr[-4000:]


@pytest.mark.slow
def test_baron_small_preset_beats_mean_and_separates_types():
    "Full size: small preset on the Baron pair; kNN on X_scn vs the first 50 PCs (printed)."
    if local_data("baron_pancreas") is None: pytest.skip("Baron pancreas data not found (../shared/data/baron_pancreas)")
    from scnotebook.data import baron_pancreas
    from scnotebook.preprocess import preprocess
    torch.set_num_threads(1)
    adatas = baron_pancreas()
    for a in adatas.values(): preprocess(a, n_components=1200, show_progress=False)
    model = fit(adatas, preset="small", device="cpu", seed=0, progress_bar=False)
    embed(model, adatas)
    ev = evaluate(model, adatas)
    print(ev)
    h = model.history
    for n in adatas:
        assert ev.loc[n, "loss"] < 0.8 * ev.loc[n, "mean_baseline"]
        assert h[f"loss_{n}"].iloc[-20:].mean() < 0.8 * h[f"loss_{n}"].iloc[:5].mean()
        scn = knn_cv_accuracy(adatas[n].obsm["X_scn"], adatas[n].obs["cell_type"])
        pca = knn_cv_accuracy(adatas[n].obsm["X_intense"][:, :50], adatas[n].obs["cell_type"])
        print(n, f"kNN accuracy X_scn {scn:.4f}  PCA-50 {pca:.4f}")
        assert scn > 0.9
