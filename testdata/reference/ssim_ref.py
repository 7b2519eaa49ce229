#!/usr/bin/python3
"""Reference SSIM values for internal/quality's tests.

An independent numpy-only implementation of Wang et al. (2004) SSIM: an
11x11 Gaussian window (sigma 1.5, normalised to sum 1) applied as a full 2-D
weighted sum over every window that fits the image (no padding), central
moments per window, K1 0.01, K2 0.03, L 255, on luma
Y = 0.299 R + 0.587 G + 0.114 B. The mean is over windows whose centre lies in
an optional rectangle [x0, x1) x [y0, y1).

The images are stored in the JSON (base64 rgb24) so the Go test needs no
generator of its own. Run from the repository root:
  /usr/bin/python3 testdata/reference/ssim_ref.py
"""
import base64
import json
import os

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def ssim_map(a, b):
    ya = a.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    yb = b.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    r = np.arange(11) - 5
    yy, xx = np.meshgrid(r, r, indexing="ij")
    w = np.exp(-(xx**2 + yy**2) / (2 * 1.5**2))
    w /= w.sum()
    pa = sliding_window_view(ya, (11, 11))  # (H-10, W-10, 11, 11)
    pb = sliding_window_view(yb, (11, 11))
    mu_a = np.einsum("ijkl,kl->ij", pa, w)
    mu_b = np.einsum("ijkl,kl->ij", pb, w)
    da = pa - mu_a[:, :, None, None]
    db = pb - mu_b[:, :, None, None]
    var_a = np.einsum("ijkl,kl->ij", da * da, w)
    var_b = np.einsum("ijkl,kl->ij", db * db, w)
    cov = np.einsum("ijkl,kl->ij", da * db, w)
    c1 = (0.01 * 255) ** 2
    c2 = (0.03 * 255) ** 2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def mean_ssim(a, b, rect=None):
    m = ssim_map(a, b)  # m[i, j] is the window centred on (x=j+5, y=i+5)
    h, w = a.shape[:2]
    cy, cx = np.meshgrid(np.arange(5, h - 5), np.arange(5, w - 5), indexing="ij")
    keep = np.ones_like(m, dtype=bool)
    if rect is not None:
        x0, y0, x1, y1 = rect
        keep = (cx >= x0) & (cx < x1) & (cy >= y0) & (cy < y1)
    return float(m[keep].mean())


def gradient(w, h):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (w + h - 2)], -1).astype(np.uint8)


def checker(w, h):
    y, x = np.mgrid[0:h, 0:w]
    on = ((x // 6) + (y // 6)) % 2 == 1
    img = np.zeros((h, w, 3), np.uint8)
    img[on] = [200, 60, 30]
    img[~on] = [20, 90, 220]
    return img


def main():
    rng = np.random.RandomState(20240501)
    g = gradient(48, 36)
    g_noisy = np.clip(g.astype(int) + rng.randint(-25, 26, g.shape), 0, 255).astype(np.uint8)
    c = checker(40, 32)
    # Shifted one pixel right (edge column repeated) and brightened.
    c_shift = np.clip(np.concatenate([c[:, :1], c[:, :-1]], axis=1).astype(int) + 12, 0, 255).astype(np.uint8)
    c_blur = c.astype(np.float64)
    c_blur = ((c_blur + np.roll(c_blur, 1, 0) + np.roll(c_blur, 1, 1) + np.roll(c_blur, (1, 1), (0, 1))) / 4).round().astype(np.uint8)

    images = {"gradient": g, "gradient_noisy": g_noisy, "checker": c, "checker_shift": c_shift, "checker_blur": c_blur}
    cases = [
        ("gradient vs noisy", "gradient", "gradient_noisy", None),
        ("gradient vs noisy, rect", "gradient", "gradient_noisy", [10, 8, 30, 25]),
        ("checker vs shifted", "checker", "checker_shift", None),
        ("checker vs shifted, rect over the border", "checker", "checker_shift", [0, 0, 20, 20]),
        ("checker vs blurred", "checker", "checker_blur", None),
        ("checker vs itself", "checker", "checker", None),
    ]
    out = {"definition": __doc__.strip().splitlines()[0], "images": {}, "cases": []}
    for name, img in images.items():
        h, w = img.shape[:2]
        out["images"][name] = {"w": w, "h": h, "pix": base64.b64encode(img.tobytes()).decode()}
    for name, a, b, rect in cases:
        out["cases"].append({"name": name, "a": a, "b": b, "rect": rect,
                             "ssim": mean_ssim(images[a], images[b], rect)})
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ssim.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote", path)
    for cse in out["cases"]:
        print("%-45s %.6f" % (cse["name"], cse["ssim"]))


if __name__ == "__main__":
    main()
