#!/usr/bin/env python3
"""An independent recomputation of `eval --truth`'s evaluation by events, for
tests/default_model_figures.rs: from a model's frame-indexed scores (`predict --out`, a
.npy), the recording's truth file and the alert threshold, the alerts the live rule raises
and the chases they warn of, compared with what `eval --json` reported.

    events_check.py SCORES.npy TRUTH.json REPORT.json PREDICTOR THRESHOLD [WINDOW_S]

Python's standard library only (no numpy); exits 1 naming the first figure that differs.
"""
import ast
import json
import math
import struct
import sys


def read_npy(path):
    """A 1-D little-endian float .npy (or shape (T, 1))."""
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":
            raise SystemExit(f"{path}: not a .npy")
        major, _minor = f.read(2)
        (hlen,) = struct.unpack("<H" if major == 1 else "<I", f.read(2 if major == 1 else 4))
        header = ast.literal_eval(f.read(hlen).decode("latin1"))
        kind = {"<f8": "d", "<f4": "f"}[header["descr"]]
        n = math.prod(header["shape"])
        return list(struct.unpack(f"<{n}{kind}", f.read(n * struct.calcsize(kind))))


def alerts(scores, first, threshold, hysteresis=0.05, cooldown=45):
    """The live alert rule: a rising edge over the threshold, re-armed below
    threshold - hysteresis, at most one alert per `cooldown` frames."""
    armed, last, out = True, None, []
    for i, s in enumerate(scores):
        frame = first + i
        if math.isnan(s):
            continue
        if s >= threshold:
            if armed:
                armed = False
                if last is None or frame >= last + cooldown:
                    last = frame
                    out.append(frame)
        elif s < threshold - hysteresis:
            armed = True
    return out


def percentile(values, q):
    if not values:
        return None
    pos = q * (len(values) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def main():
    scores_path, truth_path, report_path, name, threshold = sys.argv[1:6]
    window_s = float(sys.argv[6]) if len(sys.argv) > 6 else 3.0
    threshold = float(threshold)
    truth = json.load(open(truth_path))
    report = json.load(open(report_path))[name]["events"]
    scores = read_npy(scores_path)
    frames, fps = truth["frames"], truth["fps"]
    w = round(window_s * fps)
    # The frames eval scores: 119 ..= T-12.
    first, end = 119, frames - 11
    raised = [a for a in alerts(scores[first:end], first, threshold) if a + w < frames]
    starts = [c["start_frame"] for c in truth["chases"]]
    counted = [s for s in starts if first + w <= s < end]
    leads = []
    for s in counted:
        warning = [a for a in raised if s - w <= a <= s]
        if warning:
            leads.append((s - warning[0]) / fps)
    leads.sort()
    false_alarms = sum(1 for a in raised if not any(a <= s <= a + w for s in starts))
    hours = (end - first) / fps / 3600
    mine = {
        "alerts": len(raised),
        "chases": len(counted),
        "warned": len(leads),
        "recall": len(leads) / len(counted) if counted else None,
        "lead_median_s": percentile(leads, 0.5),
        "lead_p10_s": percentile(leads, 0.1),
        "lead_p90_s": percentile(leads, 0.9),
        "false_alarms": false_alarms,
        "false_alarms_per_hour": false_alarms / hours,
    }
    for key, want in mine.items():
        got = report[key]
        same = got == want or (
            isinstance(got, float) and want is not None and abs(got - want) < 1e-9
        )
        if not same:
            raise SystemExit(f"{name} {key}: eval says {got}, recomputed {want}")
    print(json.dumps(mine))


if __name__ == "__main__":
    main()
