"""Tests of scnotebook.train and its engine: training lowers the loss, embed, NaN guard, exact resume, DDP equivalence, XLA,
and each piece of scnotebook.engine on its own (runtime, optimizer and schedule, step, loss meter, fitted model, resume)."""
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
from scnotebook.engine import (FittedEmbedder, LossMeter, Runtime, Schedule, lr_factor, make_optimizer, read_checkpoint,
                               resume_from, save_checkpoint, train_step)
from scnotebook.embedder import build


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
    "Every tensor of the two fitted models' modules (parameters and buffers) is bitwise equal."
    s1, s2 = m1.module.state_dict(), m2.module.state_dict()
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
        assert a.obsm["X_scn"].shape == (a.n_obs, model.module.config.d_model)
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
    for k, v in one.module.state_dict().items():
        np.testing.assert_allclose(two.module.state_dict()[k].numpy(), v.numpy(), rtol=1e-2, atol=2e-3, err_msg=k)


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


# -- the engine's pieces on their own -------------------------------------------------------------------

def _tiny_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = {"a": torch.randn(8, 6, generator=g), "b": torch.randn(8, 4, generator=g)}
    mk = {n: torch.zeros_like(x, dtype=torch.bool) for n, x in xs.items()}
    return xs, mk, {"a": torch.tensor(0.5 / 48), "b": torch.tensor(0.5 / 32)}


def test_train_is_composed_of_short_pieces():
    import inspect
    import scnotebook.train as tr
    assert len(inspect.getsourcelines(tr._train)[0]) < 60
    assert not hasattr(tr, "_get_rep")


def test_runtime_context(monkeypatch):
    rt = Runtime.start("cpu")
    assert (rt.device.type, rt.kind, rt.rank, rt.world, rt.main, rt.precision, rt.own_group) == ("cpu", "cpu", 0, 1, True, "fp32", False)
    assert Runtime.start("cpu", "bf16").autocast().fast_dtype == torch.bfloat16
    t = torch.ones(2)
    assert rt.sum(t) is t and rt.wrap(torch.nn.Linear(2, 2)).__class__ is torch.nn.Linear
    xs, mk, coef = _tiny_batch()
    moved = next(iter(rt.feed([(xs, mk, coef, [1, 2], 3)])))
    assert moved[3:] == ([1, 2], 3) and torch.equal(moved[0]["a"], xs["a"])
    with pytest.raises(ValueError, match="precision must be one of"): Runtime.start("cpu", "fp16")
    # an initialised process group (here of one process) gives rank and world, and sums through it; it is not ours to close
    import torch.distributed as dist
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    from scnotebook.train import _free_port
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        with Runtime.start("cpu") as rt1:
            assert (rt1.rank, rt1.world, rt1.own_group) == (0, 1, False)
            rt1.barrier()
        assert dist.is_initialized()
    finally:
        dist.destroy_process_group()


def test_optimizer_and_schedule():
    m = build("tiny", {"a": 6, "b": 4})
    opt = make_optimizer(m, 2e-3, weight_decay=0.05)
    named = dict(m.named_parameters())
    decayed = {id(p) for p in opt.param_groups[0]["params"]}
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    assert sum(len(g["params"]) for g in opt.param_groups) == len(named)
    assert id(named["proj.a.weight"]) in decayed and id(named["head.b.weight"]) in decayed
    assert not decayed & {id(named[n]) for n in ("proj.a.bias", "source.weight", "position", "enc_norm.weight")}
    sched = Schedule(2e-3, total=200, warmup=0.1)
    rates = [sched(s) for s in range(200)]
    assert rates == [2e-3 * lr_factor(s, 200, 0.1) for s in range(200)]
    assert np.argmax(rates) == 19 and rates[0] == pytest.approx(2e-3 / 20) and rates[-1] == pytest.approx(2e-4, rel=1e-3)
    assert all(a >= b for a, b in zip(rates[19:], rates[20:]))  # cosine decay after the warm-up
    assert sched.apply(opt, 7) == rates[7] and {g["lr"] for g in opt.param_groups} == {rates[7]}


def test_train_step():
    torch.manual_seed(0)
    m, rt = build("tiny", {"a": 6, "b": 4}), Runtime.start("cpu")
    opt = make_optimizer(m, 3e-3)
    batch = _tiny_batch()
    with torch.no_grad():
        sse = m(batch[0], batch[1])
        expected = float(sum(batch[2][n] * sse[n] for n in sse))
    loss, sse2 = train_step(m, opt, batch, rt)
    assert float(loss.detach()) == pytest.approx(expected) and sorted(sse2) == ["a", "b"]
    assert all(p.grad is None for p in m.parameters())
    losses = [float(train_step(m, opt, batch, rt)[0].detach()) for _ in range(20)]
    assert losses[-1] < 0.5 * losses[0]
    # clipping bounds the update: a clip of 1e-8 with plain SGD barely moves the weights
    sgd = torch.optim.SGD(m.parameters(), lr=1.0)
    before = [p.detach().clone() for p in m.parameters()]
    train_step(m, sgd, batch, rt, clip_norm=1e-8)
    assert max(float((p.detach() - b).abs().max()) for p, b in zip(m.parameters(), before)) < 1e-7


def test_loss_meter_and_nan_guard():
    meter = LossMeter(["a", "b"], Runtime.start("cpu"))
    assert meter.flush(0) is None
    for sse_a, sse_b, loss in [(6.0, 2.0, 0.4), (12.0, 6.0, 0.6)]:
        meter.add({"a": torch.tensor(sse_a), "b": torch.tensor(sse_b)}, torch.tensor(loss), entries=[6, 4], cells=3)
    row = meter.flush(2, epoch=0.5, lr=1e-3)
    assert row == {"step": 2, "epoch": 0.5, "lr": 1e-3, "loss": pytest.approx(0.5), "loss_a": 1.5, "loss_b": 1.0}
    assert meter.history == [row] and meter.cells == 6 and meter.flush(3) is None  # reset after a flush
    meter.add({"a": torch.tensor(1.0), "b": torch.tensor(float("inf"))}, torch.tensor(float("inf")), [6, 4], 3)
    meter.add({"a": torch.tensor(1.0), "b": torch.tensor(1.0)}, torch.tensor(1.0), [6, 4], 3)
    with pytest.raises(FloatingPointError, match=r"non-finite loss, loss_b between steps 3 and 4 \(lr=0.01, precision=fp32\)"):
        meter.flush(4, lr=0.01)
    assert len(meter.history) == 1 and list(meter.frame().columns) == ["step", "epoch", "lr", "loss", "loss_a", "loss_b"]


def test_fitted_model_state_round_trip(adatas, tmp_path):
    model = fit(adatas, **KW)
    assert isinstance(model, FittedEmbedder) and model.use_rep == "X_intense" == model.fit_info["use_rep"]
    assert not hasattr(model.module, "history") and not hasattr(model.module, "fit_info")
    torch.save(model.to_state(), tmp_path / "state.pt")
    back = FittedEmbedder.from_state(torch.load(tmp_path / "state.pt", weights_only=True))
    assert _same_weights(model, back) and back.use_rep == model.use_rep and back.fit_info == model.fit_info
    assert back.history.values.tolist() == model.history.values.tolist()
    assert list(back.history.columns) == list(model.history.columns)
    e1, e2 = embed(model, adatas, copy=True), embed(back, adatas, copy=True)
    for n in adatas: np.testing.assert_array_equal(e1[n].obsm["X_scn"], e2[n].obsm["X_scn"])
    with pytest.raises(ValueError, match="not of this module"):
        FittedEmbedder.from_state(model.to_state(), module=build("tiny", {"human": 24}))


def test_resume_from_restores_module_optimizer_rng_and_meter(tmp_path):
    rt = Runtime.start("cpu")
    m = build("tiny", {"a": 6, "b": 4})
    opt, meter = make_optimizer(m, 1e-3), LossMeter(["a", "b"], rt)
    for _ in range(3):
        loss, sse = train_step(m, opt, _tiny_batch(), rt)
        meter.add(sse, loss, [48, 32], 16)
    meter.flush(3, lr=1e-3)
    fp = {"names": ["a", "b"], "lr": 1e-3}
    path = tmp_path / CHECKPOINT
    torch.manual_seed(7)
    save_checkpoint(path, FittedEmbedder(m, "X_pca", meter.frame(), {"seconds_total": 1.5}), opt, step=3, done=False,
                    fingerprint=fp, cells=meter.cells)
    expected_draw = torch.rand(4)
    m2 = build("tiny", {"a": 6, "b": 4})
    opt2, meter2 = make_optimizer(m2, 1e-3), LossMeter(["a", "b"], rt)
    assert resume_from(path, fp, m2, opt2, meter2, rt) == (3, 1.5)
    assert torch.equal(torch.rand(4), expected_draw)
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values()))
    assert (meter2.history, meter2.cells) == (meter.history, 48)
    # the next step of the restored run equals the next step of the original one
    l1, l2 = train_step(m, opt, _tiny_batch(1), rt)[0], train_step(m2, opt2, _tiny_batch(1), rt)[0]
    assert float(l1.detach()) == float(l2.detach()) and all(torch.equal(a, b) for a, b in zip(m.parameters(), m2.parameters()))
    assert resume_from(tmp_path / "absent.pt", fp, m2, opt2, meter2, rt) == (0, 0.0)
    with pytest.raises(ValueError, match="lr: checkpoint 0.001 != now 0.01"):
        resume_from(path, {**fp, "lr": 1e-2}, m2, opt2, meter2, rt)
    torch.save({"format": "scnotebook.train/1", "step": 3, "model": {}}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="not a checkpoint of this version"): read_checkpoint(tmp_path / "old.pt")
    with pytest.raises(ValueError, match="not a checkpoint of this version"): load_checkpoint(tmp_path / "old.pt")
    assert load_checkpoint(tmp_path).fit_info == {"seconds_total": 1.5}
    with pytest.raises(ValueError, match="beyond the 2 steps of this run"): resume_from(path, fp, m2, opt2, meter2, rt, total=2)
    other = build("tiny", {"a": 6, "b": 5})
    with pytest.raises(ValueError, match="do not fit this model.*delete"):
        resume_from(path, fp, other, make_optimizer(other, 1e-3), meter2, rt)



def _resave(path, **changes):
    "Rewrite the checkpoint at `path` with `changes`, its checksum recomputed (a consistent file with a wrong content)."
    from scnotebook.engine import _digest
    ck = torch.load(path, weights_only=True); ck.pop("sha256"); ck.update(changes); ck["sha256"] = _digest(ck)
    torch.save(ck, path)


def test_damaged_checkpoints_are_refused_with_path_and_recovery(adatas, tmp_path):
    "Corrupted tensor bytes, step=1e6, done too early, NaN weights, a truncated or garbage file: each refused, naming the file."
    kw = {**KW, "checkpoint_every": 4}
    fit(adatas, checkpoint_dir=tmp_path / "ok", max_steps=4, **kw)
    good = (tmp_path / "ok" / CHECKPOINT).read_bytes()
    ck = torch.load(tmp_path / "ok" / CHECKPOINT, weights_only=True)
    weight = max(ck["fitted"]["module"].values(), key=lambda t: t.numel())
    at = good.find(weight.numpy().tobytes()[:64]); assert at > 0

    def damaged(name, edit):
        d = tmp_path / name; d.mkdir(); f = d / CHECKPOINT; f.write_bytes(good); edit(f); return d, f
    nan_module = {k: (v.clone().fill_(float("nan")) if v.is_floating_point() else v) for k, v in ck["fitted"]["module"].items()}
    cases = {
        "bytes": (lambda f: f.write_bytes(good[:at + 64] + bytes(range(256)) + good[at + 320:]), "is corrupted"),
        "step": (lambda f: _resave(f, step=10**6), "step=1000000, outside [0, "),
        "nan": (lambda f: _resave(f, fitted={**ck["fitted"], "module": nan_module}), "non-finite values"),
        "truncated": (lambda f: f.write_bytes(good[:len(good) // 2]), "cannot be read"),
        "garbage": (lambda f: f.write_bytes(np.random.default_rng(0).bytes(len(good))), "cannot be read"),
    }
    for name, (edit, why) in cases.items():
        d, f = damaged(name, edit)
        for call in (lambda: fit(adatas, checkpoint_dir=d, **kw), lambda: load_checkpoint(d)):
            with pytest.raises(ValueError) as e: call()
            assert why in str(e.value) and f"delete {f}" in str(e.value) and "resume=False" in str(e.value), (name, str(e.value))
    # the untouched checkpoint still resumes, and a fresh start (resume=False) ignores a damaged one
    assert fit(adatas, checkpoint_dir=tmp_path / "ok", **kw).fit_info["resumed_from"] == 4
    assert fit(adatas, checkpoint_dir=tmp_path / "garbage", resume=False, **kw).fit_info["resumed_from"] == 0

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
