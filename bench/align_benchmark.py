"""Cross-species alignment on Baron human <-> mouse pancreas: every method side by side, over seeds.

Mouse (source) is aligned onto human (target). The ortholog-free methods start from per-species PCA-50
embeddings (computed separately from each species' own genes: the stand-in for a per-species X_scn), or
from an h5ad pair given with --source-h5ad/--target-h5ad and --use-rep. The ortholog peer uses the raw counts
and the 1:1 ortholog table. Prints the comparison table (mean ± sd over seeds), the check of the unsupervised
criterion across restarts, seconds and peak RSS.

    python bench/align_benchmark.py                     # full size: 5 seeds, 3 restarts, 3 epochs of 10,000 cells
    python bench/align_benchmark.py --seeds 1 --quick   # a minute or two
"""
import argparse
import os
import time

os.environ.setdefault("SCNOTEBOOK_PROGRESS", "0")

import numpy as np
import pandas as pd
import torch

from scnotebook.core import local_data, peak_rss_gb, seed_everything
from scnotebook.peers import DEFAULT_METHODS, baron_pair, compare_methods, criterion_vs_accuracy, summarize

SHOW = ["criterion", "accuracy", "balanced_accuracy", "logreg_accuracy", "reverse_accuracy", "majority_accuracy",
        "max_reachable", "ari", "nmi", "label_asw", "batch_asw", "graph_connectivity", "knn_mixing", "open_set_auc", "seconds"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--restarts", type=int, default=3, help="restarts per seed for paper/muse/muse_gw")
    p.add_argument("--epochs", type=int, default=3, help="adversarial epochs (muse); the paper method uses --paper-epochs")
    p.add_argument("--epoch-size", type=int, default=10000)
    p.add_argument("--paper-epochs", type=int, default=50)
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    p.add_argument("--n-comps", type=int, default=50)
    p.add_argument("--k", type=int, default=15)
    p.add_argument("--criterion-restarts", type=int, default=4, help="restarts per seed in the criterion check (0: skip)")
    p.add_argument("--criterion-seeds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="1 epoch of 4000 cells, 2 restarts")
    p.add_argument("--out", default=None, help="write the per-run rows to this CSV")
    a = p.parse_args(argv)
    if a.quick: a.epochs, a.epoch_size, a.restarts, a.paper_epochs, a.criterion_restarts = 1, 4000, 2, 10, 3
    if local_data("baron_pancreas") is None:
        try:
            from scnotebook.data import baron_zip
            baron_zip()
        except Exception as e:
            print(f"skipped: Baron pancreas data not available ({e})"); return
    torch.set_num_threads(1); seed_everything(0)
    t0 = time.perf_counter()
    mouse, human, orth = baron_pair(n_comps=a.n_comps)
    print(f"data: mouse {mouse.n_obs} cells x {mouse.n_vars} genes, human {human.n_obs} x {human.n_vars}, "
          f"{len(orth)} 1:1 orthologs; per-species PCA-{a.n_comps} in {time.perf_counter() - t0:.1f}s")
    methods = [m for m in a.methods.split(",") if m]
    opts = {"muse": {"epoch_size": a.epoch_size}, "muse_gw": {"epoch_size": a.epoch_size}, "paper": {"epochs": a.paper_epochs}}
    t1 = time.perf_counter()
    df = compare_methods(mouse, human, use_rep="X_pca_species", label_map="baron", methods=methods, seeds=range(a.seeds),
                         k=a.k, epochs=a.epochs, restarts=a.restarts, orthologs=orth, method_options=opts)
    print(f"\n## Mouse -> human, {a.seeds} seeds (mean ± sd), kNN k={a.k}; compare_methods {time.perf_counter() - t1:.0f}s\n")
    print(summarize(df, SHOW, formatted=True).to_markdown())
    if a.out: df.to_csv(a.out, index=False); print(f"rows written to {a.out}")
    for m in [m for m in ("muse",) if m in methods]:
        if a.criterion_restarts <= 0: break
        t2 = time.perf_counter()
        kw = dict(epochs=a.epochs, epoch_size=a.epoch_size) | ({"init": "gw"} if m == "muse_gw" else {})
        cands, summ = criterion_vs_accuracy(mouse, human, use_rep="X_pca_species", label_map="baron", k=a.k,
                                            seeds=range(a.criterion_seeds), restarts=a.criterion_restarts, **kw)
        print(f"\n## Unsupervised criterion vs transfer accuracy across restarts ({m}, {a.criterion_seeds} seeds x "
              f"{a.criterion_restarts} restarts, {time.perf_counter() - t2:.0f}s)\n")
        print(cands.round(4).to_markdown(index=False))
        print("\n" + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in summ.items()))
    print(f"\ntotal {time.perf_counter() - t0:.0f}s, peak RSS {peak_rss_gb():.2f} GiB")


if __name__ == "__main__":
    main()
