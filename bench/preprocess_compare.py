"""Benchmark: scnotebook's PCA against the tools a user would pick instead, on the same matrix.

The matrix is the atlas-shaped mouse side (`scnotebook.atlas`, 160,796 x 25,000 at --scale 1) after scnotebook's
filters, library-size normalisation, log and scaling: exactly what `preprocess` hands its PCA. Each method then
computes the same number of centred components (the paper's 1200) in a fresh process, so that its peak memory is
its own; the matrix is read from one cached .npz file by all of them.

- `scnotebook`: `preprocess.pca_sparse` (randomized subspace iteration on dense row blocks, implicit centring);
- `sklearn-randomized`: scikit-learn's randomized solver for sparse input, `TruncatedSVD(algorithm='randomized')`
  with the same sketch size and power iterations as ours. scikit-learn has no randomized *centred* PCA of a sparse
  matrix (`PCA(svd_solver='randomized')` refuses sparse input and `randomized_svd` refuses a centring
  `LinearOperator`), so this one is uncentred: its explained variance is that of its components on the centred
  matrix, which is a little lower than a centred solver's;
- `sklearn-covariance_eigh`: `PCA(svd_solver='covariance_eigh')`, scikit-learn's exact centred PCA of sparse input
  (a genes x genes covariance, then its eigendecomposition);
- `scanpy`: `sc.pp.pca(adata, n_comps, zero_center=True)` with its default solver for sparse input
  (scikit-learn's `PCA(svd_solver='arpack')` with implicit centring); `--scanpy-solver covariance_eigh` for the other.

Each method gets --timeout seconds; one that does not finish is reported as such (with the time it was given).
Explained variance is the captured share of the centred matrix's total variance (the same total for all).

    python bench/preprocess_compare.py --scale 0.125             # 20,100 x 25,000, 1200 components
    python bench/preprocess_compare.py --scale 1 --timeout 3600  # the paper's shape (hours for the slower tools)
"""
import argparse, json, os, subprocess, sys, time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def prepare(scale: float, path: Path, seed: int):
    "The scaled, log-normalised matrix `preprocess` feeds its PCA, saved once as .npz."
    if path.exists(): return
    import numpy as np, scipy.sparse as sp
    from scnotebook.atlas import atlas_dataset
    from scnotebook.preprocess import filter_normalize_log, scale_sparse
    a = atlas_dataset("mouse", scale=scale, seed=seed)
    filter_normalize_log(a, min_library_size=0, min_cells_per_gene=5, rescale=10000)
    scale_sparse(a, scale="global", scale_max=50.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz"); sp.save_npz(tmp, a.X.tocsr(), compressed=False); os.replace(tmp, path)


def run_method(method: str, path: str, k: int, n_iter: int, seed: int, scanpy_solver: str) -> dict:
    "One method on the cached matrix, in this process: seconds, peak RSS, explained variance."
    import resource
    import numpy as np, scipy.sparse as sp
    X = sp.load_npz(path).tocsr().astype(np.float32)
    n, p = X.shape
    mean = np.asarray(X.mean(0), dtype=np.float64).ravel()
    total = float(X.multiply(X).sum(dtype=np.float64)) - n * float(mean @ mean)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    t0 = time.perf_counter()
    if method == "scnotebook":
        from scnotebook.preprocess import pca_sparse
        s = pca_sparse(X, k, solver="randomized", n_iter=n_iter, seed=seed)["singular_values"]
    elif method == "sklearn-randomized":
        from sklearn.decomposition import TruncatedSVD
        V = TruncatedSVD(k, algorithm="randomized", n_iter=n_iter, n_oversamples=max(10, k // 10),
                         power_iteration_normalizer="QR", random_state=seed).fit(X).components_.T.astype(np.float32)
        secs_fit = time.perf_counter() - t0
        S = X @ V; S -= (mean.astype(np.float32) @ V)[None]      # the components' variance on the centred matrix
        s = np.sqrt((S.astype(np.float64) ** 2).sum(0)); t0 += time.perf_counter() - t0 - secs_fit   # scoring not timed
    elif method == "sklearn-covariance_eigh":
        from sklearn.decomposition import PCA
        s = PCA(k, svd_solver="covariance_eigh", random_state=seed).fit(X).singular_values_
    elif method == "scanpy":
        import anndata as ad, scanpy as sc
        a = ad.AnnData(X)
        sc.pp.pca(a, n_comps=k, zero_center=True, svd_solver=scanpy_solver, random_state=seed)
        s = np.sqrt(a.uns["pca"]["variance"] * (n - 1))
    else: raise ValueError(method)
    secs = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"method": method, "seconds": secs, "peak_rss_gib": peak, "rss_matrix_gib": rss0,
            "explained_variance": float((np.asarray(s, np.float64) ** 2).sum() / total), "cells": n, "genes": p, "k": k}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.125, help="fraction of the atlas's 160,796 mouse cells")
    ap.add_argument("--components", type=int, default=1200)
    ap.add_argument("--n-iter", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", nargs="+", default=["scnotebook", "sklearn-randomized", "sklearn-covariance_eigh", "scanpy"])
    ap.add_argument("--scanpy-solver", default="arpack", choices=["arpack", "covariance_eigh"])
    ap.add_argument("--timeout", type=float, default=1800, help="seconds each method may take")
    ap.add_argument("--cache", default=None, help="the matrix's .npz (default: <SCNOTEBOOK_CACHE>/atlas/pca_input_<scale>.npz)")
    ap.add_argument("--json", default=str(HERE / "results" / "preprocess_compare.jsonl"))
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)   # internal: run one method in this process
    a = ap.parse_args(argv)
    from scnotebook.core import settings
    path = Path(a.cache or settings().cache_dir / "atlas" / f"pca_input_scale{a.scale:g}_seed{a.seed}.npz")
    if a.one:
        print("RESULT " + json.dumps(run_method(a.one, str(path), a.components, a.n_iter, a.seed, a.scanpy_solver)), flush=True)
        return
    t0 = time.perf_counter(); prepare(a.scale, path, a.seed)
    print(f"preprocess_compare: matrix {path.name} ready in {time.perf_counter() - t0:.0f}s; {a.components} components, "
          f"n_iter {a.n_iter}, {os.cpu_count()} CPUs, timeout {a.timeout:.0f}s per method", flush=True)
    rows = []
    for m in a.methods:
        cmd = [sys.executable, __file__, "--one", m, "--scale", str(a.scale), "--components", str(a.components),
               "--n-iter", str(a.n_iter), "--seed", str(a.seed), "--scanpy-solver", a.scanpy_solver, "--cache", str(path)]
        t1 = time.perf_counter()
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
            res = next((json.loads(l[7:]) for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
            if res is None: res = {"method": m, "error": (out.stderr or out.stdout)[-800:]}
        except subprocess.TimeoutExpired:
            res = {"method": m, "timeout": a.timeout, "seconds": time.perf_counter() - t1}
        if m == "scanpy": res["solver"] = a.scanpy_solver
        res["scale"] = a.scale; res["n_iter"] = a.n_iter; rows.append(res)
        print(json.dumps(res), flush=True)
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        with open(a.json, "a") as f: f.write(json.dumps(res) + "\n")
    ours = next((r for r in rows if r["method"] == "scnotebook" and "explained_variance" in r), None)
    print(f"\n| method | seconds | peak RSS (GiB) | explained variance | time / scnotebook's |\n|---|---|---|---|---|")
    for r in rows:
        if "explained_variance" in r:
            ratio = f"{r['seconds'] / ours['seconds']:.2f}" if ours else "-"
            print(f"| {r['method']} | {r['seconds']:.0f} | {r['peak_rss_gib']:.2f} | {r['explained_variance']:.4f} | {ratio} |")
        elif "timeout" in r:
            print(f"| {r['method']} | did not finish in {r['timeout']:.0f} | - | - | > {r['timeout'] / ours['seconds']:.1f} |" if ours else
                  f"| {r['method']} | did not finish in {r['timeout']:.0f} | - | - | - |")
        else: print(f"| {r['method']} | failed: {r.get('error', '')[-200:]!r} | | | |")


if __name__ == "__main__":
    main()
