#!/usr/bin/env python3
"""TensorFlow's own speed on the study's models: windows scored per second.

Runs the original SavedModel graphs as ../shared/oracle/keras_oracle.py does (the TF1
loader and their serving signature: what TensorFlow itself computes), on synthetic windows
of the model input's shape (30, 120, 160, 4), in batches of 1, 2, 4 and 8 windows, each
timed for --seconds after one warm-up batch. Prints one JSON object per model and batch.
burstwatch's exact mode scores one window per frame, so its frames/s compare with these
windows/s (scripts/tf-bench.sh runs both in one go).

Setup: python3 -m venv ENV && ENV/bin/pip install tensorflow-cpu numpy
Usage: ENV/bin/python scripts/tf-bench.py [--models DIR] [--seconds S]
"""
import argparse
import json
import os
import time

import numpy as np


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=os.path.join(here, "..", "..", "shared", "models"))
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--batches", default="1,2,4,8")
    a = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    rng = np.random.default_rng(7)
    for name in ("upbeat-snowflake-91", "visionary-serenity"):
        g = tf.Graph()
        sess = tf.compat.v1.Session(graph=g)
        with g.as_default():
            mg = tf.compat.v1.saved_model.loader.load(sess, ["serve"], os.path.join(a.models, name))
        sig = mg.signature_def["serving_default"]
        inp = list(sig.inputs.values())[0].name
        out = list(sig.outputs.values())[0].name
        for batch in [int(b) for b in a.batches.split(",")]:
            clips = rng.random((batch, 30, 120, 160, 4), dtype=np.float32)
            sess.run(out, {inp: clips})
            n, start = 0, time.perf_counter()
            best = float("inf")
            while n == 0 or time.perf_counter() - start < a.seconds:
                t = time.perf_counter()
                sess.run(out, {inp: clips})
                best = min(best, time.perf_counter() - t)
                n += 1
            secs = time.perf_counter() - start
            print(json.dumps({
                "model": name,
                "batch": batch,
                "windows_per_s": n * batch / secs,
                "best_windows_per_s": batch / best,
                "tensorflow": tf.__version__,
            }), flush=True)
        sess.close()


if __name__ == "__main__":
    main()
