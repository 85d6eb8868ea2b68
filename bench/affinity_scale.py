"""Exact vs sliced Wasserstein affinity at scale: wall time of each and their rank agreement.

    python bench/affinity_scale.py                       # 16 types x 2,000 cells in 64 dims (minutes on 1 core)
    python bench/affinity_scale.py --cells 300 --dim 32  # quick

Cell types come from a three-level Gaussian hierarchy (4 coarse groups x 2 mid groups x 2 types), so both
matrices can also be scored against the known taxonomy. `sliced` is the package's fast path, `sliced-pot`
the same distance through `ot.sliced_wasserstein_distance`. Prints figures; asserts nothing about time.
"""
import argparse, os, time

import numpy as np
import pandas as pd
import anndata as ad
from scipy.stats import spearmanr

from scnotebook.core import peak_rss_gb, versions
from scnotebook.affinity import wasserstein_affinity, affinity_agreement


def hierarchy(n_types=16, n_cells=2000, dim=64, seed=0):
    rng = np.random.default_rng(seed)
    coarse = [f"C{i * 4 // n_types}" for i in range(n_types)]
    mid = [f"{c}.M{(i * 8 // n_types) % 2}" for i, c in enumerate(coarse)]
    cc = {c: rng.normal(0, 6, dim) for c in dict.fromkeys(coarse)}
    mc = {m: cc[c] + rng.normal(0, 3, dim) for m, c in zip(mid, coarse)}
    X = np.vstack([mc[m] + rng.normal(0, 1.5, dim) + rng.normal(0, 1, (n_cells, dim)) * rng.uniform(0.5, 1.5, dim)
                   for m in mid]).astype(np.float32)
    types = [f"T{i:02d}" for i in range(n_types)]
    a = ad.AnnData(np.zeros((len(X), 1), np.float32),
                   obs=pd.DataFrame({"cell_type": np.repeat(types, n_cells)}, index=[f"c{i}" for i in range(len(X))]))
    a.obsm["X_emb"] = X
    return a, pd.DataFrame({"mid": mid, "coarse": coarse}, index=types)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--types", type=int, default=16); p.add_argument("--cells", type=int, default=2000)
    p.add_argument("--dim", type=int, default=64); p.add_argument("--projections", type=int, default=200)
    p.add_argument("--max-cells", type=int, default=None, help="cap for the exact method (default: all cells)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        import torch; torch.set_num_threads(1)
    except ImportError: pass
    a, tax = hierarchy(args.types, args.cells, args.dim, args.seed)
    cap = args.max_cells or args.cells
    print(f"{args.types} types x {args.cells} cells in {args.dim} dims; exact cap {cap} cells/type, "
          f"sliced {args.projections} projections; POT {versions()['POT']}, {os.cpu_count()} cpus")
    res = {}
    runs = (("sliced", "sliced", dict(n_projections=args.projections, max_cells=args.cells)),
            ("sliced-pot", "sliced", dict(n_projections=args.projections, max_cells=args.cells, backend="pot")),
            ("exact-300", "exact", dict(max_cells=min(300, cap))),
            ("exact", "exact", dict(max_cells=cap)))
    for method, m, kw in runs:
        t0 = time.perf_counter()
        A = wasserstein_affinity(a, use_rep="X_emb", method=m, seed=args.seed, show_progress=False, **kw)
        res[method] = (A, time.perf_counter() - t0)
        npairs = args.types * (args.types - 1) // 2
        ag = affinity_agreement(A, tax, n_permutations=999, seed=args.seed)
        print(f"{method:>10}: {res[method][1]:8.2f} s  ({res[method][1] / npairs * 1000:.1f} ms/pair, {npairs} pairs)  "
              f"spearman with tree distance {ag['spearman']:.3f} (p={ag['p_value']:.3g})", flush=True)
    iu = np.triu_indices(args.types, 1)
    (E, te), (S, ts) = res["exact"], res["sliced"]
    rho = spearmanr(E.values[iu], S.values[iu]).correlation
    print(f"rank agreement exact vs sliced (Spearman of upper triangles): {rho:.4f}")
    C = res["exact-300"][0]
    print(f"rank agreement exact (all cells) vs exact capped at 300 cells/type (the default): "
          f"{spearmanr(E.values[iu], C.values[iu]).correlation:.4f}; vs sliced: {spearmanr(C.values[iu], S.values[iu]).correlation:.4f}")
    print(f"sliced (numpy) vs sliced (POT ot.sliced_wasserstein_distance): max abs difference "
          f"{np.abs(S.values - res['sliced-pot'][0].values).max():.2e}, POT time {res['sliced-pot'][1]:.2f} s")
    print(f"speed-up sliced vs exact: {te / ts:.1f}x; sliced/exact value ratio: median {np.median(S.values[iu] / E.values[iu]):.3f}")
    print(f"peak RSS: {peak_rss_gb():.2f} GiB")


if __name__ == "__main__":
    main()
