#!/usr/bin/python3
"""Reference Whisper log-mel values for gpuworker/audio's tests.

An independent numpy-only implementation of Whisper's log_mel_spectrogram on
one 30 s window (openai/whisper audio.py with pad_or_trim on the audio):
  zero-pad/trim to 480000 samples, torch.stft(n_fft=400, hop=160,
  window=hann_window(400) (periodic), center=True, pad_mode='reflect'),
  power |X|^2 with the last frame dropped, librosa.filters.mel(sr=16000,
  n_fft=400, n_mels=80) (slaney scale and norm, fmin 0, fmax 8000),
  log10(max(mel, 1e-10)), max(x, x.max() - 8), (x + 4) / 4.

The test signals are rebuilt by the Go test from the same formulas (float64
arithmetic, then rounded to float32), so only the outputs are stored.

Run from the repository root:  /usr/bin/python3 testdata/reference/logmel_ref.py
"""
import json
import os

import numpy as np

SR = 16000
N_FFT = 400
HOP = 160
N_MELS = 80
N_SAMPLES = 30 * SR


def hz_to_mel(f):
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    logstep = np.log(6.4) / 27.0
    lin = f / f_sp
    log = min_log_hz / f_sp + np.log(np.maximum(f, 1e-300) / min_log_hz) / logstep
    return np.where(f >= min_log_hz, log, lin)


def mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), m * f_sp)


def mel_filterbank():
    fftfreqs = np.fft.rfftfreq(N_FFT, d=1.0 / SR)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(SR / 2.0), N_MELS + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2:] - mel_f[:-2])
    return weights * enorm[:, None]


def log_mel(signal):
    x = np.zeros(N_SAMPLES, dtype=np.float64)
    n = min(len(signal), N_SAMPLES)
    x[:n] = signal[:n]
    xp = np.pad(x, N_FFT // 2, mode="reflect")
    n_frames = 1 + (len(xp) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n_frames)[:, None]
    window = np.hanning(N_FFT + 1)[:-1]  # periodic Hann
    spec = np.fft.rfft(xp[idx] * window, axis=1)
    power = np.abs(spec[:-1]) ** 2  # (3000, 201), last frame dropped
    mel = mel_filterbank() @ power.T  # (80, 3000)
    log = np.log10(np.maximum(mel, 1e-10))
    log = np.maximum(log, log.max() - 8.0)
    return (log + 4.0) / 4.0


def lcg_noise(n, seed, amp):
    """uint32 LCG (Numerical Recipes constants), s/2^31 - 1 in [-1, 1)."""
    out = np.empty(n, dtype=np.float64)
    s = seed
    for i in range(n):
        s = (s * 1664525 + 1013904223) & 0xFFFFFFFF
        out[i] = amp * (s / 2.0**31 - 1.0)
    return out


def make_signal(spec):
    n = np.arange(spec["samples"], dtype=np.float64)
    t = n / SR
    kind = spec["kind"]
    if kind == "tones":
        x = np.zeros_like(t)
        for f, a in zip(spec["freqs"], spec["amps"]):
            x += a * np.sin(2 * np.pi * f * t)
    elif kind == "chirp":
        f0, f1, amp = spec["f0"], spec["f1"], spec["amp"]
        dur = spec["samples"] / SR
        x = amp * np.sin(2 * np.pi * (f0 * t + (f1 - f0) / (2 * dur) * t * t))
    elif kind == "noise":
        x = lcg_noise(spec["samples"], spec["seed"], spec["amp"])
    else:
        raise ValueError(kind)
    return x.astype(np.float32)


SIGNALS = [
    # 0.5 s, then silence: frames 45..59 cover the step into the padding.
    {"name": "two_tones", "kind": "tones", "samples": 8000,
     "freqs": [440.0, 1000.0], "amps": [0.5, 0.1], "frames": list(range(60))},
    {"name": "chirp", "kind": "chirp", "samples": 8000,
     "f0": 100.0, "f1": 7000.0, "amp": 0.3, "frames": list(range(60))},
    {"name": "noise", "kind": "noise", "samples": 8000, "seed": 12345, "amp": 0.2,
     "frames": list(range(20))},
    # Longer than a window: exercises the trim and the reflect pad at the end.
    {"name": "long_chirp", "kind": "chirp", "samples": N_SAMPLES + 1000,
     "f0": 50.0, "f1": 7900.0, "amp": 0.25,
     "frames": list(range(20)) + list(range(2990, 3000))},
]


def main():
    out = {"definition": __doc__.strip().splitlines()[0], "signals": []}
    for spec in SIGNALS:
        lm = log_mel(make_signal(spec).astype(np.float64))
        sel = lm[:, spec["frames"]]  # [mel][selected frame]
        entry = dict(spec)
        entry["logmel"] = [[float("%.7g" % v) for v in row] for row in sel]
        out["signals"].append(entry)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "logmel.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
