"""Reference values for gpuworker/ddim, computed independently with numpy in
float64 from the DDIM paper and diffusers' DDIMScheduler definitions.
Run: /usr/bin/python3 testdata/reference/ddim_ref.py > testdata/reference/ddim.json"""
import json
import numpy as np

N = 1000
betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, N, dtype=np.float64) ** 2
abar = np.cumprod(1.0 - betas)
final = abar[0]  # set_alpha_to_one = false

out = {}
for steps in (20, 25, 50):
    ratio = N // steps
    ts = (np.arange(0, steps) * ratio)[::-1] + 1  # leading spacing, steps_offset 1
    prev = ts - ratio
    out[str(steps)] = {
        "timesteps": ts.tolist(),
        "alpha_cumprod": abar[ts].tolist(),
        "alpha_cumprod_prev": [abar[p] if p >= 0 else final for p in prev],
    }

# One eta-0 step from t=501 on a fixed vector.
x = np.array([0.5, -1.25, 2.0, 0.0, -0.3])
eps = np.array([0.1, 0.2, -0.7, 1.5, -0.05])
t, p = 501, 451
x0 = (x - np.sqrt(1 - abar[t]) * eps) / np.sqrt(abar[t])
xp = np.sqrt(abar[p]) * x0 + np.sqrt(1 - abar[p]) * eps
out["step"] = {"t": t, "steps": 20, "x": x.tolist(), "eps": eps.tolist(), "prev": xp.tolist()}
print(json.dumps(out, indent=1))
