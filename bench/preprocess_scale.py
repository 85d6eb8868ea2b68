"""Benchmark: the paper's preprocessing at Mouse Brain Atlas scale on CPU.

Generates a synthetic sparse count matrix (default 160,000 cells x 25,000 genes, ~10% non-zeros, negative
binomial, 16 cell types) with `scnotebook.data.synthetic`, then runs `scnotebook.preprocess.preprocess`
(scprep filters, library-size normalisation, log1p, scaling to [-50, 50], PCA to 1200 components with the
randomized sparse solver) in place, and prints wall time, peak RSS and the reconstruction error.

Memory is bounded by the CSR matrix (nnz x 8 bytes: float32 values + int32 indices, 3.2 GB at 400M non-zeros),
one transient copy of it when filtering removes cells or genes, the dense (cells x (k + oversampling)) float32
PCA output and sketch, and one dense ~256 MB row block; never by cells x genes.

    python bench/preprocess_scale.py                                     # full scale (minutes)
    python bench/preprocess_scale.py --cells 20000 --genes 5000 --components 200   # quick run
"""
import argparse, json, os, sys, time

import numpy as np


def rss_gb() -> float:
    try:
        import psutil
        return psutil.Process().memory_info().rss / 2**30
    except ImportError:
        return float("nan")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=160_000)
    ap.add_argument("--genes", type=int, default=25_000)
    ap.add_argument("--components", type=int, default=1200)
    ap.add_argument("--density", type=float, default=0.10)
    ap.add_argument("--n-iter", type=int, default=2, help="power iterations of the randomized PCA")
    ap.add_argument("--solver", default="auto", choices=["auto", "exact", "randomized"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    a = ap.parse_args(argv)

    from scnotebook.core import peak_rss_gb, versions
    from scnotebook.data import synthetic
    from scnotebook.preprocess import preprocess

    print(f"preprocess_scale: {a.cells:,} cells x {a.genes:,} genes, density {a.density}, {a.components} components, "
          f"n_iter {a.n_iter}; {os.cpu_count()} CPUs; numpy {versions()['numpy']}", flush=True)
    t0 = time.perf_counter()
    adata = synthetic(a.cells, a.genes, species="mouse", branching=(2, 2, 4), density=a.density, seed=a.seed,
                      show_progress=True)
    t_gen = time.perf_counter() - t0
    nnz = adata.X.nnz
    csr_gb = (adata.X.data.nbytes + adata.X.indices.nbytes + adata.X.indptr.nbytes) / 2**30
    print(f"synthetic data: {t_gen:.1f}s, nnz {nnz:,} ({nnz / (a.cells * a.genes):.3f}), CSR {csr_gb:.2f} GiB, "
          f"RSS {rss_gb():.2f} GiB, peak RSS so far {peak_rss_gb():.2f} GiB", flush=True)

    t1 = time.perf_counter()
    preprocess(adata, n_components=a.components, solver=a.solver, n_iter=a.n_iter, seed=a.seed, show_progress=True)
    t_pp = time.perf_counter() - t1
    u = adata.uns["scnotebook"]["preprocess"]
    res = {"cells": a.cells, "genes": a.genes, "nnz": int(nnz), "csr_gib": csr_gb, "components": int(u["n_components"]),
           "solver": u["solver"], "n_iter": a.n_iter, "seconds_synthetic": t_gen, "seconds_preprocess": t_pp,
           "seconds_filter_normalize_scale": u["seconds_filter_normalize"], "seconds_pca": u["seconds_pca"],
           "cells_per_second": a.cells / t_pp, "peak_rss_gib": peak_rss_gb(), "rss_end_gib": rss_gb(),
           "cells_kept": int(u["n_cells"]), "genes_kept": int(u["n_genes"]),
           "value_range_before_pca": u["value_range_before_pca"], "explained_variance": u["explained_variance"],
           "rel_frobenius_error": u["rel_frobenius_error"], "rel_frobenius_error_centered": u["rel_frobenius_error_centered"]}
    print(f"preprocess: {t_pp:.1f}s (filter/normalise/log/scale {u['seconds_filter_normalize']:.1f}s, "
          f"PCA {u['seconds_pca']:.1f}s, {a.cells / t_pp:,.0f} cells/s), X_intense {adata.obsm['X_intense'].shape}")
    print(f"kept {u['n_cells']:,} cells x {u['n_genes']:,} genes; values before PCA in "
          f"[{u['value_range_before_pca'][0]:.1f}, {u['value_range_before_pca'][1]:.1f}]")
    print(f"explained variance {u['explained_variance']:.4f}, relative Frobenius error {u['rel_frobenius_error']:.4f} "
          f"(centred {u['rel_frobenius_error_centered']:.4f})")
    print(f"peak RSS {res['peak_rss_gib']:.2f} GiB (includes data generation), RSS at end {res['rss_end_gib']:.2f} GiB")
    print(json.dumps(res))
    if a.json:
        from scnotebook.core import save_json
        save_json(res, a.json)
    return res


if __name__ == "__main__":
    main()
