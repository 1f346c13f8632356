#!/usr/bin/env python3
"""How much a vision model could add to the baseline on a simulated video, at best.

The simulator records every chase and the display before it (VIDEO.truth.json). Two
oracles score a frame 0 or 1:
- "chase soon": 1 when a chase starts within the labels' look-ahead (46 frames) and none is
  under way: perfect foresight of chases;
- "display": 1 while two fish display before a chase: what a camera shows and the speed
  proxy does not, the most a model that reads the display perfectly could know.
This prints the ROC-AUC (evaluation range as `burstwatch eval`) of the baseline, of each
oracle, and of the baseline plus each oracle at the best weight, together with how much the
labels owe to chases. Needs numpy.

    burstwatch sim --out test.mkv --seconds 600 --seed 3
    burstwatch speed --source test.mkv --out y.npy
    burstwatch label --ytilde y.npy --out labels.npy
    burstwatch baseline --ytilde y.npy --out baseline.npy
    scripts/chase_headroom.py y.npy labels.npy baseline.npy test.truth.json
"""
import json
import sys

import numpy as np

LOOK_AHEAD = 46  # frames: the labels' window y~[t ..= t+45]


def auc(labels, scores):
    """ROC-AUC with ties counted half (Mann-Whitney), as scikit-learn's roc_auc_score."""
    labels = np.asarray(labels, bool)
    order = np.argsort(scores, kind="mergesort")
    s = np.asarray(scores, float)[order]
    ranks = np.empty(len(s))
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    p = labels.sum()
    n = len(labels) - p
    return (ranks[labels].sum() - p * (p + 1) / 2) / (p * n)


def main(y_path, labels_path, baseline_path, truth_path):
    y = np.load(y_path)
    labels = np.load(labels_path).astype(bool)
    baseline = np.load(baseline_path)
    chases = json.load(open(truth_path))["chases"]
    t = len(y)
    soon = np.zeros(t, bool)
    ongoing = np.zeros(t, bool)
    display = np.zeros(t, float)
    for c in chases:
        s = c["start_frame"]
        soon[max(0, s - LOOK_AHEAD) : s] = True
        ongoing[s : c["end_frame"] + 1] = True
        display[c["display_frame"] : s] = 1.0
    oracle = (soon & ~ongoing).astype(float)
    ev = slice(119, t - 11)  # burstwatch eval's range: [4n-1, T-2-10]
    lab = slice(119, t - 2 - 45)  # frames whose labels see their whole look-ahead
    print(f"{len(chases)} chases; positive rate {labels[lab].mean():.3f}")
    print(f"positives with a chase starting within {LOOK_AHEAD} frames: {soon[lab][labels[lab]].mean():.3f}")
    print(
        f"P(positive | chase within {LOOK_AHEAD} frames, none under way) = "
        f"{labels[lab][(soon & ~ongoing)[lab]].mean():.3f}; "
        f"P(positive | no chase within {LOOK_AHEAD}) = {labels[lab][~soon[lab]].mean():.3f}"
    )
    print(f"median y~ during chases {np.median(y[ongoing]):.5f}, otherwise {np.median(y[~ongoing]):.5f}")
    L = labels[ev]
    print(f"ROC-AUC baseline {auc(L, baseline[ev]):.4f}")
    for name, o in [("chase soon", oracle), ("display", display)]:
        print(f"ROC-AUC {name} oracle alone {auc(L, o[ev]):.4f}")
        best = max((auc(L, baseline[ev] + w * o[ev]), w) for w in np.linspace(0.02, 1.0, 50))
        print(f"ROC-AUC baseline + {name} oracle, best weight {best[1]:.2f}: {best[0]:.4f}")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])
