"""Transfer learning against training from scratch, with k labelled examples per class (not a timed test).

    .venv/bin/python bench/transfer.py [--k 5,10,50] [--seeds 0,1,2]

Task: the bundled digits, relabelled for questions digits-cnn was never trained to answer (odd/even, and >= 5). The
labelled examples (k per class) and 10 validation examples per class come from digits-cnn's calibration split (200
images it was not trained on); every model is scored on its held-out split (360 images it never saw). Raw pixels 0..255.

transfer: a head (edgezoo.transfer.train: standardised features, dropout, dense; early stopping on validation loss) on
          the frozen digits-cnn features, cut below its classifier.
scratch:  the same architecture (digits-cnn's layers, fresh random weights) trained end to end on the same examples,
          with more epochs and patience (up to 200 epochs, patience 20).
Writes bench/transfer_results.json and bench/transfer_results.md (mean and min..max over the seeds).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

DIGITS = REPO / "edgezoo" / "zoo" / "bundled" / "digits_cnn"
TASKS = {"odd/even": lambda d: (d % 2).astype(np.int64), ">= 5": lambda d: (d >= 5).astype(np.int64)}
VALIDATION_PER_CLASS = 10


def digits():
    data, splits = np.load(DIGITS / "digits.npz"), np.load(DIGITS / "splits.npz")
    pixels = np.round(data["images"].astype(np.float64) * 255.0 / 16.0).astype(np.float32)[..., None]
    return pixels, data["labels"].astype(np.int64), splits["calibration"], splits["heldout"]


def labelled(part, pixels, labels, class_names):
    from edgezoo.transfer.data import LabelledData

    return LabelledData(pixels[part], labels[part], class_names, tuple(str(i) for i in part))


def sample_splits(pool, labels, k, seed, pixels, heldout):
    from edgezoo.transfer.data import Splits

    rng = np.random.default_rng(seed)
    train, validation = [], []
    for cls in np.unique(labels[pool]):
        members = rng.permutation(pool[labels[pool] == cls])
        if len(members) < k + VALIDATION_PER_CLASS:
            raise SystemExit(f"class {cls} has {len(members)} examples in the pool, fewer than k={k} + {VALIDATION_PER_CLASS}")
        train.extend(members[:k])
        validation.extend(members[k : k + VALIDATION_PER_CLASS])
    names = ("0", "1")
    return Splits(*(labelled(np.sort(np.asarray(p)), pixels, labels, names) for p in (train, validation, heldout)))


def accuracy(model, split) -> float:
    return float(np.mean(model.predict(split.pixels, verbose=0).argmax(-1) == split.labels))


def transfer(backbone, splits, seed):
    from edgezoo.transfer import FinetuneOptions
    from edgezoo.transfer.train import train

    options = FinetuneOptions(data=Path("bench"), epochs=100, patience=10, learning_rate=0.01, dropout=0.1, seed=seed, batch_size=16)
    training = train(backbone, splits, options)
    return accuracy(training.model, splits.test), sum(b["epochs_run"] for b in training.best.values())


def scratch(backbone, splits, seed):
    import dataclasses

    from edgezoo import _tf
    from edgezoo.transfer.data import class_weights
    from edgezoo.transfer.train import best_weights, build_classifier

    keras = _tf.tf_keras()
    keras.utils.set_random_seed(seed)
    fresh = dataclasses.replace(backbone, model=keras.models.clone_model(backbone.model))  # the layers, new random weights
    model, head, feature_model = build_classifier(fresh, 2, 0.1, seed)
    head.get_layer("feature_scale").adapt(feature_model.predict(splits.train.pixels, verbose=0))
    fresh.model.trainable = True
    model.compile(keras.optimizers.Adam(0.003), "sparse_categorical_crossentropy", ["accuracy"])
    history, best = [], {}
    model.fit(splits.train.pixels, splits.train.labels, validation_data=(splits.validation.pixels, splits.validation.labels),
              epochs=200, batch_size=16, verbose=0, class_weight=class_weights(splits.train.labels, 2),
              callbacks=[best_weights(20, "scratch", 200, history, best, None)])
    return accuracy(model, splits.test), best["scratch"]["epochs_run"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", default="5,10,50")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    ks, seeds = [int(v) for v in args.k.split(",")], [int(v) for v in args.seeds.split(",")]
    from edgezoo.transfer.backbone import load_backbone
    from edgezoo.zoo import LoadOptions

    backbone = load_backbone("digits-cnn", LoadOptions())
    pixels, digit_labels, pool, heldout = digits()
    rows = []
    for task, relabel in TASKS.items():
        labels = relabel(digit_labels)
        for k in ks:
            figures = {"transfer": [], "scratch": []}
            epochs = {"transfer": [], "scratch": []}
            started = time.monotonic()
            for seed in seeds:
                splits = sample_splits(pool, labels, k, seed, pixels, heldout)
                for method, run in (("transfer", transfer), ("scratch", scratch)):
                    value, ran = run(backbone, splits, seed)
                    figures[method].append(value)
                    epochs[method].append(ran)
            row = {"task": task, "k": k, "seeds": seeds, "test_images": len(heldout), "seconds": round(time.monotonic() - started, 1),
                   **{f"{m}_accuracy": figures[m] for m in figures}, **{f"{m}_epochs": epochs[m] for m in epochs}}
            rows.append(row)
            print(f"{task:9} k={k:3}: transfer {100 * np.mean(figures['transfer']):.1f}%  scratch {100 * np.mean(figures['scratch']):.1f}%",
                  flush=True)
    results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"), "rows": rows}
    (HERE / "transfer_results.json").write_text(json.dumps(results, indent=1) + "\n")
    (HERE / "transfer_results.md").write_text(markdown(results))
    print(markdown(results))
    return 0


def markdown(results: dict) -> str:
    def cell(values):
        return f"**{100 * np.mean(values):.1f}%** ({100 * min(values):.1f}..{100 * max(values):.1f})"

    lines = [f"Measured by `bench/transfer.py` on {results['machine']} ({results['date']}): test accuracy on digits-cnn's 360 "
             "held-out digits, mean (min..max) over seeds " + ", ".join(map(str, results["rows"][0]["seeds"])) + ".", "",
             "| task | labelled examples per class | transfer (head on digits-cnn features) | from scratch (same architecture) |",
             "|---|---|---|---|"]
    lines += [f"| {r['task']} | {r['k']} | {cell(r['transfer_accuracy'])} | {cell(r['scratch_accuracy'])} |" for r in results["rows"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
