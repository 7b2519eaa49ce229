#!/usr/bin/python3
"""Independent numpy references for the face package tests.

Regenerate with: /usr/bin/python3 reference.py  (numpy only; writes *.json here).
Conventions match the Go code: pixel (i, j) has its centre at (i+0.5, j+0.5);
affines are 2x3 row-major and map frame -> crop.
"""
import json
import numpy as np

rng = np.random.default_rng(20240601)


def umeyama(src, dst):
    """Umeyama 1991 via SVD, as in scikit-image's _umeyama (with scaling)."""
    n, dim = src.shape
    ms, md = src.mean(0), dst.mean(0)
    sd, dd = src - ms, dst - md
    A = dd.T @ sd / n
    d = np.ones(dim)
    if np.linalg.det(A) < 0:
        d[-1] = -1
    U, S, Vt = np.linalg.svd(A)
    R = U @ np.diag(d) @ Vt
    scale = (S * d).sum() / sd.var(0).sum()
    T = np.zeros((2, 3))
    T[:, :2] = scale * R
    T[:, 2] = md - scale * R @ ms
    return T


def write(name, obj):
    with open(name, "w") as f:
        json.dump(obj, f, indent=1)


# 1. Similarity fit on noisy, non-exact correspondences (eyes + nose + more).
src = rng.uniform(50, 400, size=(6, 2))
th, s, t = 0.3, 0.8, np.array([-20.0, 35.0])
R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
dst = (s * (R @ src.T)).T + t + rng.normal(0, 4.0, size=src.shape)
write("umeyama.json", {"src": src.tolist(), "dst": dst.tolist(), "want": umeyama(src, dst).ravel().tolist()})


def bilinear_replicate(img, fx, fy):
    """img HxWx3 float, fx/fy index-space coordinates (pixel centres at integers)."""
    H, W = img.shape[:2]
    x0 = np.floor(fx).astype(int)
    y0 = np.floor(fy).astype(int)
    wx, wy = fx - x0, fy - y0
    xa, xb = np.clip(x0, 0, W - 1), np.clip(x0 + 1, 0, W - 1)
    ya, yb = np.clip(y0, 0, H - 1), np.clip(y0 + 1, 0, H - 1)
    wx, wy = wx[..., None], wy[..., None]
    return (img[ya, xa] * (1 - wx) * (1 - wy) + img[ya, xb] * wx * (1 - wy)
            + img[yb, xa] * (1 - wx) * wy + img[yb, xb] * wx * wy)


# 2. WarpToCrop: a 9x7 random image, rotated/scaled crop of side 8 reaching past the edges.
H, W, size = 7, 9, 8
img = rng.integers(0, 256, size=(H, W, 3)).astype(np.uint8)
m = np.array([[1.1 * np.cos(0.4), -1.1 * np.sin(0.4), 1.5], [1.1 * np.sin(0.4), 1.1 * np.cos(0.4), -2.0]])
M3 = np.vstack([m, [0, 0, 1]])
inv = np.linalg.inv(M3)
jj, ii = np.mgrid[0:size, 0:size]
pts = np.stack([ii + 0.5, jj + 0.5, np.ones_like(ii, dtype=float)], -1) @ inv.T
crop = bilinear_replicate(img.astype(float), pts[..., 0] - 0.5, pts[..., 1] - 0.5)
chw = (crop / 127.5 - 1).transpose(2, 0, 1)
write("warp.json", {"w": W, "h": H, "pix": img.ravel().tolist(), "m": m.ravel().tolist(),
                    "size": size, "want": chw.ravel().tolist()})

# 3. BlendBack: a 12x10 frame, crop of side 6 with random values and alpha,
#    placed by a rotated, enlarging transform (frame -> crop scale 0.7).
FH, FW, cs = 10, 12, 6
frame = rng.integers(0, 256, size=(FH, FW, 3)).astype(np.uint8)
cropv = rng.uniform(-1, 1, size=(3, cs, cs)).astype(np.float32)
alpha = rng.uniform(0, 1, size=(cs, cs)).astype(np.float32)
alpha[0, :] = 0  # some zero alpha inside the footprint
m = np.array([[0.7 * np.cos(-0.25), -0.7 * np.sin(-0.25), -1.0], [0.7 * np.sin(-0.25), 0.7 * np.cos(-0.25), -0.5]])
yy, xx = np.mgrid[0:FH, 0:FW]
q = np.stack([xx + 0.5, yy + 0.5, np.ones_like(xx, dtype=float)], -1) @ np.vstack([m, [0, 0, 1]]).T
fx, fy = q[..., 0] - 0.5, q[..., 1] - 0.5
inside = (fx >= -0.5) & (fy >= -0.5) & (fx <= cs - 0.5) & (fy <= cs - 0.5)
cxc, cyc = np.clip(fx, 0, cs - 1), np.clip(fy, 0, cs - 1)
a = bilinear_replicate(alpha[..., None].astype(float), cxc, cyc)[..., 0]
c = (bilinear_replicate(cropv.transpose(1, 2, 0).astype(float), cxc, cyc) + 1) * 127.5
a = np.where(inside, np.minimum(a, 1), 0)[..., None]
out = np.where(a > 0, np.clip(np.floor(a * c + (1 - a) * frame + 0.5), 0, 255), frame).astype(np.uint8)
write("blend.json", {"w": FW, "h": FH, "pix": frame.ravel().tolist(), "crop": cropv.ravel().tolist(),
                     "alpha": alpha.ravel().tolist(), "m": m.ravel().tolist(), "want": out.ravel().tolist()})

# 4. BlendAlpha: erosion (square element, outside the crop counts as keep) then
#    a Gaussian truncated at ceil(3 sigma), zero padding, via full 2D convolution.
size, rect, erode, sigma = 24, (4, 10, 21, 20), 2, 1.2  # x0, y0, x1, y1 half-open
region = np.zeros((size, size))
region[rect[1]:rect[3], rect[0]:rect[2]] = 1
pad = np.pad(region, erode)
er = np.ones_like(region)
for dy in range(-erode, erode + 1):
    for dx in range(-erode, erode + 1):
        er = np.minimum(er, pad[erode + dy:erode + dy + size, erode + dx:erode + dx + size])
r = int(np.ceil(3 * sigma))
k1 = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * sigma ** 2))
k2 = np.outer(k1, k1) / k1.sum() ** 2
pe = np.pad(er, r)
blur = np.zeros_like(er)
for dy in range(-r, r + 1):
    for dx in range(-r, r + 1):
        blur += k2[dy + r, dx + r] * pe[r + dy:r + dy + size, r + dx:r + dx + size]
write("alpha.json", {"size": size, "rect": list(rect), "erode": erode, "sigma": sigma,
                     "want": np.clip(blur, 0, 1).ravel().tolist()})
