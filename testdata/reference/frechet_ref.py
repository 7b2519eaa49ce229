#!/usr/bin/python3
"""Reference Frechet distances and sample covariances for internal/quality.

The Go code takes Tr((S_a S_b)^(1/2)) from symmetric eigendecompositions
(sqrt(S_a) S_b sqrt(S_a)). This script uses different routes so that a shared
mistake is unlikely:
  - the trace term is the sum of the square roots of the eigenvalues of the
    NON-symmetric product S_a S_b (numpy.linalg.eigvals, LAPACK geev), real
    parts, negatives clamped to 0;
  - for full-rank pairs it is cross-checked against sqrtm(S_a S_b) by the
    Denman-Beavers iteration (no eigendecomposition at all);
  - for singular pairs (fewer samples than dimensions) the square roots of
    the rounding noise in the zero eigenvalues (~1e-8 each) would blur the
    geev route, so the reference is exact instead: with the thin SVD of the
    centred samples X_a = U S V^T (rank r), S_a = V S^2 V^T / (N-1) and the
    non-zero eigenvalues of S_a S_b are those of the r x r full-rank
    S V^T S_b V S / (N-1) (eig(AB) = eig(BA) away from zero);
  - covariances are numpy.cov(x, rowvar=False) (divides by N-1).

Features are float32 (as the networks emit them) stored exactly in the JSON.
Run from the repository root:
  /usr/bin/python3 testdata/reference/frechet_ref.py
"""
import json
import os

import numpy as np


def trace_sqrt_eigvals(sa, sb):
    ev = np.linalg.eigvals(sa @ sb).real
    return float(np.sqrt(np.clip(ev, 0, None)).sum())


def trace_sqrt_low_rank(xa, sb):
    xc = xa - xa.mean(0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    keep = s > s.max() * max(xc.shape) * np.finfo(float).eps
    s, vt = s[keep], vt[keep]
    small = (s[:, None] * (vt @ sb @ vt.T) * s[None, :]) / (xa.shape[0] - 1)
    ev = np.linalg.eigvals(small).real
    assert ev.min() > 0
    return float(np.sqrt(ev).sum())


def sqrtm_denman_beavers(a, iters=100):
    y, z = a.copy(), np.eye(a.shape[0])
    for _ in range(iters):
        y, z = (y + np.linalg.inv(z)) / 2, (z + np.linalg.inv(y)) / 2
    return y


def frechet(ma, sa, mb, sb):
    d = ma - mb
    return float(d @ d + np.trace(sa) + np.trace(sb) - 2 * trace_sqrt_eigvals(sa, sb))


def mixing(rng, d, scale):
    return rng.standard_normal((d, d)) * scale / np.sqrt(d)


def features(rng, n, mix, shift):
    # Correlated features: independent normals through a mixing matrix.
    x = rng.standard_normal((n, mix.shape[0])) @ mix + shift
    return x.astype(np.float32)


def spd(rng, d, floor):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + floor * np.eye(d)


def main():
    rng = np.random.default_rng(20240611)
    fitted = []
    # (name, samples, dim): N > d gives full-rank covariances; N < d gives
    # singular ones, the usual situation for FID on few clips.
    # The last case draws both sets from one distribution: the distance is
    # sampling noise only, small but not zero.
    for name, n, d, shift_b, same in [
        ("full_rank_n80_d16", 80, 16, 0.5, False),
        ("singular_n10_d24", 10, 24, 1.0, False),
        ("same_distribution_n200_d8", 200, 8, 0.0, True),
    ]:
        mix_a = mixing(rng, d, 1.0)
        mix_b = mix_a if same else mixing(rng, d, 1.5)
        xa = features(rng, n, mix_a, 0.0)
        xb = features(rng, n, mix_b, shift_b)
        ma, mb = xa.astype(np.float64).mean(0), xb.astype(np.float64).mean(0)
        sa, sb = np.cov(xa.astype(np.float64), rowvar=False), np.cov(xb.astype(np.float64), rowvar=False)
        if n > d:
            fd = frechet(ma, sa, mb, sb)
            db = float(np.trace(sqrtm_denman_beavers(sa @ sb)))
            assert abs(db - trace_sqrt_eigvals(sa, sb)) < 1e-8 * abs(db), name
        else:
            tr = trace_sqrt_low_rank(xa.astype(np.float64), sb)
            assert abs(tr - trace_sqrt_eigvals(sa, sb)) < 1e-6 * abs(tr), name
            dm = ma - mb
            fd = float(dm @ dm + np.trace(sa) + np.trace(sb) - 2 * tr)
        fitted.append({
            "name": name,
            "features_a": xa.tolist(), "features_b": xb.tolist(),
            "mean_a": ma.tolist(), "cov_a": sa.ravel().tolist(),
            "mean_b": mb.tolist(), "cov_b": sb.ravel().tolist(),
            "frechet": fd,
        })

    given = []
    for name, d, floor in [("spd_d32", 32, 0.1), ("spd_d48_ill_conditioned", 48, 1e-6)]:
        sa, sb = spd(rng, d, floor), spd(rng, d, floor)
        ma, mb = rng.standard_normal(d), rng.standard_normal(d)
        fd = frechet(ma, sa, mb, sb)
        db = float(np.trace(sqrtm_denman_beavers(sa @ sb)))
        assert abs(db - trace_sqrt_eigvals(sa, sb)) < 1e-7 * abs(db), name
        given.append({
            "name": name,
            "mean_a": ma.tolist(), "cov_a": sa.ravel().tolist(),
            "mean_b": mb.tolist(), "cov_b": sb.ravel().tolist(),
            "frechet": fd,
        })

    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "frechet.json")
    with open(out, "w") as f:
        json.dump({"fitted": fitted, "given": given}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
