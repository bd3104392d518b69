"""Transfer learning against training from scratch, with k labelled examples per class (not a timed test).

    .venv/bin/python bench/transfer.py [--k 5,10,50] [--seeds 0,1,2] [--experiments digits,photos,folder]

Task: the bundled digits, relabelled for questions digits-cnn was never trained to answer (odd/even, and >= 5). The
labelled examples (k per class) and 10 validation examples per class come from digits-cnn's calibration split (200
images it was not trained on); every model is scored on its held-out split (360 images it never saw). Raw pixels 0..255.

transfer: a head (edgezoo.transfer.train: standardised features, dropout, dense; early stopping on validation loss) on
          the frozen digits-cnn features, cut below its classifier. A linear head (--hidden-units 0), as the
          from-scratch model has: both sides of the comparison share one architecture.
scratch:  the same architecture (digits-cnn's layers, fresh random weights) trained end to end on the same examples,
          with more epochs and patience (up to 200 epochs, patience 20).
photos:   real photographs from scikit-image's bundled data. The extractor is a MobileNetV2 (alpha 0.35, 64x64) trained
          here from random weights on crops of four photographs (astronaut, chelsea the cat, coffee, rocket), saved as
          a .h5 and cut by finetune below its classifier (the local source); the new task is three textures it never
          saw (brick, grass, gravel), k training and 10 validation crops per class from the top half of each texture,
          written as an image folder and read by finetune's folder reader, 50 test crops per class from the bottom
          half. Scratch: the same MobileNetV2 from random weights on the same crops (up to 40 epochs, patience 8).
          Both MobileNets get their batch-norm statistics from their training crops after training.
folder:   the whole `edgezoo finetune` as a user runs it, default options, on issue 23's task: odd/even from 600 digits
          written as 32x32 grey PNGs in two class folders (tests/digit_images.write_odd_even_folders), resized to 8x8
          by finetune's folder reader, split 70/15/15 by the seed, converted for phone (LiteRT), onnx (onnxruntime) and
          browser (TF.js); test accuracy (90 images) of the float model and of each artifact on its runtime, per seed,
          for the default head (a hidden layer of 64) and the linear head (--hidden-units 0). Printed, not written.
Writes bench/transfer_results.json and bench/transfer_results.md (mean and min..max over the seeds) for the digits and
photos experiments.
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
sys.path.insert(0, str(REPO))  # edgezoo, and tests/photo_classifier.py's crops
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

    options = FinetuneOptions(data=Path("bench"), epochs=100, patience=10, learning_rate=0.01, dropout=0.1, seed=seed, batch_size=16,
                              hidden_units=0)  # the linear head of the recorded figures, the scratch model's head
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


PHOTOS = {"astronaut": "astronaut", "cat": "chelsea", "coffee": "coffee", "rocket": "rocket"}  # the extractor's classes
TEXTURES = ("brick", "grass", "gravel")  # the new task's
PHOTO_SIZE = 64


def photo_extractor(folder: Path) -> Path:
    """MobileNetV2 (alpha 0.35) trained on crops of four photographs, saved as a .h5 with its classifier."""
    import skimage.data

    from edgezoo import _tf
    from tests.photo_classifier import crops

    keras = _tf.tf_keras()
    photos = {label: getattr(skimage.data, name)() for label, name in PHOTOS.items()}
    train, classes = crops(photos, 512, seed=0)
    keras.utils.set_random_seed(0)
    network = keras.applications.MobileNetV2(input_shape=(PHOTO_SIZE, PHOTO_SIZE, 3), alpha=0.35, weights=None, classes=len(photos))
    network.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    network.fit(train.astype(np.float32) / 127.5 - 1, classes, batch_size=32, epochs=6, verbose=0)
    settle_batch_norm(network, train[:256].astype(np.float32) / 127.5 - 1)
    path = folder / "photo_extractor.h5"
    network.save(path)
    return path


def settle_batch_norm(network, batch: np.ndarray) -> None:
    """Batch-norm statistics taken from one batch: after a few dozen steps the moving averages are still near their start,
    and a network judged with them answers one class for everything (DESIGN.md)."""
    from edgezoo import _tf

    keras = _tf.tf_keras()
    layers = [layer for layer in network.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    network(batch, training=True)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum


def texture_crops(name: str, count: int, half: str, seed: int) -> np.ndarray:
    """`count` random square crops (a quarter to a half of the side) from the top or bottom half of a texture, RGB, 64x64."""
    import skimage.data
    from PIL import Image

    texture = getattr(skimage.data, name)()
    texture = np.repeat(texture[..., None], 3, axis=-1) if texture.ndim == 2 else texture
    height = texture.shape[0] // 2
    region = texture[:height] if half == "top" else texture[height:]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        side = int(rng.uniform(0.25, 0.5) * texture.shape[1])
        top, left = rng.integers(0, region.shape[0] - side + 1), rng.integers(0, region.shape[1] - side + 1)
        out.append(np.asarray(Image.fromarray(region[top : top + side, left : left + side]).resize((PHOTO_SIZE, PHOTO_SIZE))))
    return np.stack(out)


def texture_splits(folder: Path, k: int, seed: int, test):
    """k training and 10 validation crops per class written as an image folder, read back by finetune's folder reader."""
    from PIL import Image

    from edgezoo.transfer.data import Splits, read_labelled

    parts = {}
    for part, count, crop_seed in (("train", k, 100 + seed), ("validation", VALIDATION_PER_CLASS, 200 + seed)):
        root = folder / f"k{k}-seed{seed}" / part
        for name in TEXTURES:
            (root / name).mkdir(parents=True, exist_ok=True)
            for index, crop in enumerate(texture_crops(name, count, "top", crop_seed + TEXTURES.index(name))):
                Image.fromarray(crop).save(root / name / f"{index:03d}.png")
        parts[part] = read_labelled(root, (PHOTO_SIZE, PHOTO_SIZE, 3))
    return Splits(parts["train"], parts["validation"], test)


def photos_experiment(ks, seeds, work: Path) -> list[dict]:
    import dataclasses

    from edgezoo import _tf
    from edgezoo.transfer.backbone import load_backbone
    from edgezoo.transfer.data import LabelledData, class_weights
    from edgezoo.transfer.train import best_weights
    from edgezoo.zoo import LoadOptions

    keras = _tf.tf_keras()
    started = time.monotonic()
    backbone = load_backbone(str(photo_extractor(work)), LoadOptions())
    print(f"photo extractor trained and cut ({backbone.details['cut_at']}, {backbone.feature_size} features) in "
          f"{time.monotonic() - started:.0f} s", flush=True)
    pixels = np.concatenate([texture_crops(name, 50, "bottom", 300 + i) for i, name in enumerate(TEXTURES)]).astype(np.float32)
    test = LabelledData(pixels, np.repeat(np.arange(len(TEXTURES)), 50), TEXTURES, tuple(str(i) for i in range(len(pixels))))
    rows = []
    for k in ks:
        figures, epochs = {"transfer": [], "scratch": []}, {"transfer": [], "scratch": []}
        started = time.monotonic()
        for seed in seeds:
            splits = texture_splits(work, k, seed, test)
            value, ran = transfer(backbone, splits, seed)
            figures["transfer"].append(value)
            epochs["transfer"].append(ran)
            keras.utils.set_random_seed(seed)
            network = keras.applications.MobileNetV2(input_shape=(PHOTO_SIZE, PHOTO_SIZE, 3), alpha=0.35, weights=None,
                                                     classes=len(TEXTURES))
            network.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", ["accuracy"])
            history, best = [], {}
            scale = lambda x: x / 127.5 - 1  # noqa: E731
            network.fit(scale(splits.train.pixels), splits.train.labels, batch_size=16, epochs=40, verbose=0,
                        validation_data=(scale(splits.validation.pixels), splits.validation.labels),
                        class_weight=class_weights(splits.train.labels, len(TEXTURES)),
                        callbacks=[best_weights(8, "scratch", 40, history, best, None)])
            settle_batch_norm(network, scale(splits.train.pixels))
            figures["scratch"].append(float(np.mean(network.predict(scale(test.pixels), verbose=0).argmax(-1) == test.labels)))
            epochs["scratch"].append(best["scratch"]["epochs_run"])
        rows.append({"task": "textures (photo extractor)", "k": k, "seeds": seeds, "test_images": len(test),
                     "seconds": round(time.monotonic() - started, 1), **{f"{m}_accuracy": figures[m] for m in figures},
                     **{f"{m}_epochs": epochs[m] for m in epochs}})
        print(f"textures  k={k:3}: transfer {100 * np.mean(figures['transfer']):.1f}%  scratch {100 * np.mean(figures['scratch']):.1f}%",
              flush=True)
    return rows


FOLDER_IMAGES = 600
FOLDER_TARGETS = ("phone", "onnx", "browser")
FOLDER_HEADS = {"hidden layer of 64 (default)": 64, "linear (--hidden-units 0)": 0}


def folder_experiment(seeds, work: Path) -> str:
    """Issue 23's task through edgezoo.finetune with default options; a markdown table of test accuracy per runtime."""
    import edgezoo
    from tests.digit_images import write_odd_even_folders

    folder = write_odd_even_folders(work / "odd_even", FOLDER_IMAGES, size=32)
    figures: dict[tuple[str, str], list[float]] = {}
    runtimes = {"float (trained SavedModel)": "tensorflow"}
    for head, units in FOLDER_HEADS.items():
        for seed in seeds:
            started = time.monotonic()
            result = edgezoo.finetune("digits-cnn", data=folder, out_dir=work / f"out-{units}-{seed}", target=FOLDER_TARGETS,
                                      seed=seed, hidden_units=units)
            for row in result.accuracy:
                runtimes.setdefault(row["model"], row["runtime"])
                value = row["accuracy"]
                figures.setdefault((head, row["model"]), []).append(float("nan") if value is None else value)
            shown = ", ".join(f"{row['model'].split(' ')[0]} {row['accuracy'] if row['accuracy'] is None else round(row['accuracy'], 3)}"
                              for row in result.accuracy)
            print(f"folder  {head:30} seed {seed}: {shown} ({time.monotonic() - started:.0f} s)", flush=True)
    lines = [f"Test accuracy on {FOLDER_IMAGES} 32x32 PNGs of odd/even digits (`bench/transfer.py --experiments folder`, "
             f"{platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}): 90 test images per seed, "
             f"seeds {','.join(map(str, seeds))}; mean (min..max), then per seed.", "",
             "| head | model | runtime | test accuracy | per seed |", "|---|---|---|---|---|"]
    for (head, model), values in figures.items():
        per_seed = " ".join(f"{v:.3f}" for v in values)
        lines.append(f"| {head} | {model} | {runtimes[model]} | **{100 * np.mean(values):.1f}%** "
                     f"({100 * min(values):.1f}..{100 * max(values):.1f}) | {per_seed} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", default="5,10,50")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--experiments", default="digits,photos", help="digits, photos, folder (comma-separated)")
    args = parser.parse_args()
    ks, seeds = [int(v) for v in args.k.split(",")], [int(v) for v in args.seeds.split(",")]
    experiments = args.experiments.split(",")
    from edgezoo.transfer.backbone import load_backbone
    from edgezoo.zoo import LoadOptions

    backbone = load_backbone("digits-cnn", LoadOptions())
    pixels, digit_labels, pool, heldout = digits()
    rows = []
    for task, relabel in (TASKS.items() if "digits" in experiments else ()):
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
    if "photos" in experiments:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="edgezoo-transfer-bench-") as work:
            rows += photos_experiment(ks, seeds, Path(work))
    if "folder" in experiments:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="edgezoo-transfer-folder-") as work:
            print(folder_experiment(seeds, Path(work)))
    if not rows:  # the folder experiment alone: the recorded digits and photos figures stay as they are
        return 0
    results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"), "rows": rows}
    (HERE / "transfer_results.json").write_text(json.dumps(results, indent=1) + "\n")
    (HERE / "transfer_results.md").write_text(markdown(results))
    print(markdown(results))
    return 0


def markdown(results: dict) -> str:
    def cell(values):
        return f"**{100 * np.mean(values):.1f}%** ({100 * min(values):.1f}..{100 * max(values):.1f})"

    lines = [f"Measured by `bench/transfer.py` on {results['machine']} ({results['date']}): test accuracy, mean (min..max) over "
             "the seeds; digits: digits-cnn's 360 held-out digits, textures: 150 crops from the bottom halves.", "",
             "| task | labelled examples per class | seeds | transfer (head on the extractor) | from scratch (same architecture) |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['task']} | {r['k']} | {len(r['seeds'])} | {cell(r['transfer_accuracy'])} | {cell(r['scratch_accuracy'])} |"
              for r in results["rows"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
