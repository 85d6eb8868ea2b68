"""Training throughput of the multitask embedder (prints figures; no assertions).

CPU: cells/s of the `tiny` and `small` presets on two synthetic 1200-dim datasets (like the Baron pair after
preprocessing). CUDA (when a GPU is visible): cells/s and model FLOP utilisation (MFU) of the `paper` preset
(about 300M parameters) in bf16 at batch 1024, with and without torch.compile.

    python bench/train_throughput.py [--threads 2] [--steps 40] [--cells 4000] [--skip-cpu] [--gpu-steps 30]
    python bench/train_throughput.py --sizes 160796 25000 --presets small --steps 200   # the atlas's shapes, in memory

    python bench/train_throughput.py --from-run runs/atlas_scale1 --steps 400        # the stage's own data beside them

`--from-run` times `fit` on the `X_intense` of a run folder's 02_preprocess (what stage 04_train trains on), with and
without the stage's checkpoints, beside in-memory arrays of the same shapes, all in this process.
`--sizes` gives each dataset's cell count (the atlas pair: 160,796 mouse and 25,000 human cells), so the figure can
be set beside stage 04_train's `cells_per_s` on the same shapes read from the run folder.
"""
import argparse, time

import anndata as ad
import numpy as np
import torch

from scnotebook.core import peak_rss_gb, versions
from scnotebook.embedder import flops_per_cell, get_config
from scnotebook.train import fit

# dense bf16 peak of common accelerators (TFLOP/s, without sparsity)
PEAK_BF16 = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12,
             "A10": 125e12, "B200": 2250e12, "RTX 4090": 165e12, "A6000": 155e12}


def synthetic_intense(n_cells, dim=1200, seed=0, sizes=None):
    "Two datasets with PCA-like columns (decaying variance) in obsm['X_intense']; `sizes`: cells of each (default half each)."
    r = np.random.default_rng(seed)
    out = {}
    for k, name in enumerate(["human", "mouse"]):
        n = n_cells // 2 if sizes is None else sizes[k]
        a = ad.AnnData(np.zeros((n, 1), dtype=np.float32))
        a.obsm["X_intense"] = (r.normal(size=(n, dim)) * 30 / np.sqrt(np.arange(1, dim + 1))).astype(np.float32)
        out[name] = a
    return out


def timed_fit(adatas, steps, warm, **kw):
    "Cells/s over steps warm..steps (the first `warm` steps include start-up and compilation)."
    marks = {}
    def on_step(s):
        if s in (warm, steps):
            if torch.cuda.is_available() and kw.get("device", "cpu") != "cpu": torch.cuda.synchronize()
            marks[s] = time.perf_counter()
    model = fit(adatas, max_steps=steps, on_step=on_step, progress_bar=False, **kw)
    bs = model.fit_info["batch_size"]
    return model, (steps - warm) * bs / (marks[steps] - marks[warm])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--cells", type=int, default=4000)
    ap.add_argument("--sizes", type=int, nargs=2, default=None, metavar=("N1", "N2"), help="cells of each dataset (overrides --cells)")
    ap.add_argument("--presets", nargs="+", default=["tiny", "small"])
    ap.add_argument("--from-run", default=None, help="a run folder: time on its 02_preprocess X_intense too")
    ap.add_argument("--checkpoint-every", type=int, default=200, help="checkpoint interval of the --from-run variant with checkpoints")
    ap.add_argument("--skip-cpu", action="store_true")
    ap.add_argument("--gpu-steps", type=int, default=30)
    ap.add_argument("--gpu-batch", type=int, default=1024)
    args = ap.parse_args()
    v = versions()
    print(f"torch {v['torch']}, scnotebook {v['scnotebook']}")

    if args.from_run:
        import tempfile
        from scnotebook.stages import Run
        torch.set_num_threads(args.threads)
        run = Run.of(args.from_run)
        real = run.read_adatas("02_preprocess", x=False)
        sizes = [a.n_obs for a in real.values()]
        dim = next(iter(real.values())).obsm["X_intense"].shape[1]
        fake = synthetic_intense(sum(sizes), dim=dim, sizes=sizes)
        preset = run.config["embedder"]["preset"]
        print(f"\nCPU ({args.threads} threads), {preset} preset, {args.steps} steps (timed from step 5): "
              f"{' + '.join(f'{n:,}' for n in sizes)} cells x {dim} dims")
        with tempfile.TemporaryDirectory() as tmp:
            for label, data, ck in (("in-memory synthetic arrays", fake, {}), ("the run's X_intense", real, {}),
                                    (f"the run's X_intense, checkpoint every {args.checkpoint_every} steps", real,
                                     {"checkpoint_dir": tmp, "checkpoint_every": args.checkpoint_every, "resume": False})):
                _, cps = timed_fit(data, args.steps, 5, preset=preset, device="cpu", epochs=100, **ck)
                print(f"  {label:60s} {cps:8.0f} cells/s")
        return

    if not args.skip_cpu:
        torch.set_num_threads(args.threads)
        adatas = synthetic_intense(args.cells, sizes=args.sizes)
        shape = " + ".join(f"{a.n_obs:,}" for a in adatas.values())
        print(f"\nCPU ({args.threads} threads), {shape} cells x 1200 dims in memory, 2 datasets, fp32")
        for preset in args.presets:
            model, cps = timed_fit(adatas, args.steps, 5, preset=preset, device="cpu", epochs=100)
            cfg = get_config(preset)
            gflops = cps * flops_per_cell(cfg, 1200) / 1e9
            print(f"  {preset:5s}: {cps:8.0f} cells/s  (batch {cfg.batch_size}, {model.fit_info['n_params'] / 1e6:.2f}M params, "
                  f"{gflops:.1f} GFLOP/s, peak RSS {peak_rss_gb():.2f} GiB)")

    if not torch.cuda.is_available():
        print("\nGPU: skipped (torch sees no CUDA device); the paper preset's MFU needs a GPU.")
        return
    name = torch.cuda.get_device_name()
    peak = next((p for k, p in PEAK_BF16.items() if k in name), None)
    adatas = synthetic_intense(max(4 * args.gpu_batch, 8192))
    cfg = get_config("paper")
    print(f"\nGPU {name}: paper preset, bf16 autocast, batch {args.gpu_batch}")
    for compile_ in (False, True):
        torch.cuda.reset_peak_memory_stats()
        try:
            model, cps = timed_fit(adatas, args.gpu_steps, 10, preset="paper", device="cuda", epochs=1000,
                                   batch_size=args.gpu_batch, compile=compile_)
        except Exception as e:  # e.g. torch.compile without a working toolchain: report and go on
            print(f"  compile={compile_!s:5s}: failed: {type(e).__name__}: {str(e)[:300]}")
            continue
        fl = cps * flops_per_cell(cfg, 1200)
        mfu = f"MFU {100 * fl / peak:.1f}% of {peak / 1e12:.0f} TFLOP/s bf16" if peak else "MFU: peak of this GPU unknown"
        print(f"  compile={compile_!s:5s}: {cps:8.0f} cells/s, {fl / 1e12:.1f} TFLOP/s, {mfu}, "
              f"{model.fit_info['n_params'] / 1e6:.0f}M params, GPU memory peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
