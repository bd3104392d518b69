"""Synthetic but learnable tasks for the corpus models (scripts/build_corpus.py): each function draws `count`
samples from one distribution with a NumPy generator and returns (inputs, targets), dicts of arrays.

Inputs are float32 and stored on the grid real data comes on (pixels in steps of 1/255, audio in steps of
1/32768), which also keeps data.npz small.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 4000  # Hz, both audio tasks
WAVEFORM_LENGTH = 512  # samples: 128 ms


def pixels(x: np.ndarray) -> np.ndarray:
    return (np.round(np.clip(x, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def pcm(x: np.ndarray) -> np.ndarray:
    return (np.round(np.clip(x, -1.0, 1.0) * 32767.0) / 32768.0).astype(np.float32)


def _grid(height: int, width: int):
    return np.mgrid[0:height, 0:width].astype(np.float64)


def shape_mask(kind: str, height: int, width: int, cy: float, cx: float, r: float) -> np.ndarray:
    """A boolean mask of one outline or solid shape centred at (cy, cx) with half-size r."""
    y, x = _grid(height, width)
    dy, dx = y - cy, x - cx
    dist = np.sqrt(dy**2 + dx**2)
    inside = (np.abs(dy) <= r) & (np.abs(dx) <= r)
    masks = {
        "square": inside,
        "frame": inside & ~((np.abs(dy) <= r - 1.5) & (np.abs(dx) <= r - 1.5)),
        "plus": ((np.abs(dx) <= 0.8) & (np.abs(dy) <= r)) | ((np.abs(dy) <= 0.8) & (np.abs(dx) <= r)),
        "disk": dist <= r,
        "cross": inside & ((np.abs(dy - dx) <= 0.9) | (np.abs(dy + dx) <= 0.9)),
        "ring": (dist <= r) & (dist >= r - 1.3),
        "hbar": (np.abs(dy) <= 0.9) & (np.abs(dx) <= r),
        "vbar": (np.abs(dx) <= 0.9) & (np.abs(dy) <= r),
    }
    return masks[kind]


def _grey_canvas(rng, count: int, size: int) -> np.ndarray:
    background = rng.uniform(0.0, 0.2, (count, 1, 1))
    return background + rng.normal(0.0, 0.04, (count, size, size))


def shapes(rng, count: int, kinds: tuple[str, ...], size: int = 16):
    """One grey shape per image: {"image": [N, size, size, 1]}, {"label": [N] index into kinds}."""
    images = _grey_canvas(rng, count, size)
    labels = rng.integers(0, len(kinds), count)
    for i, label in enumerate(labels):
        r = rng.uniform(3.0, 6.0)
        cy, cx = rng.uniform(r, size - 1 - r, 2)
        images[i][shape_mask(kinds[label], size, size, cy, cx, r)] = rng.uniform(0.5, 1.0)
    return {"image": pixels(images)[..., None]}, {"label": labels.astype(np.uint8)}


MULTI_KINDS = ("hbar", "vbar", "disk", "plus")


def several_shapes(rng, count: int, size: int = 16):
    """One to three small shapes per image; which kinds are present, and which quadrants hold a shape's centre."""
    images = _grey_canvas(rng, count, size)
    present = np.zeros((count, len(MULTI_KINDS)), np.uint8)
    quadrants = np.zeros((count, 2, 2), np.uint8)
    for i in range(count):
        for _ in range(rng.integers(1, 4)):
            kind = rng.integers(0, len(MULTI_KINDS))
            r = rng.uniform(2.0, 3.0)
            cy, cx = rng.uniform(r, size - 1 - r, 2)
            images[i][shape_mask(MULTI_KINDS[kind], size, size, cy, cx, r)] = rng.uniform(0.6, 1.0)
            present[i, kind] = 1
            quadrants[i, int(cy >= size / 2), int(cx >= size / 2)] = 1
    return {"image": pixels(images)[..., None]}, {"shape_present": present, "quadrant_occupied": quadrants}


def textures(rng, count: int, size: int = 16):
    """Colour textures of five kinds (horizontal, vertical and diagonal stripes, checks, dots): [N, size, size, 3]."""
    y, x = _grid(size, size)
    labels = rng.integers(0, 5, count)
    images = np.empty((count, size, size, 3))
    for i, label in enumerate(labels):
        period = rng.uniform(3.0, 6.0)
        phase_y, phase_x = rng.uniform(0, period, 2)
        yy, xx = (y + phase_y) / period, (x + phase_x) / period
        pattern = {
            0: np.sin(2 * np.pi * yy),
            1: np.sin(2 * np.pi * xx),
            2: np.sin(2 * np.pi * (xx + yy) / np.sqrt(2)),
            3: np.sin(np.pi * xx) * np.sin(np.pi * yy),
            4: np.cos(2 * np.pi * xx) + np.cos(2 * np.pi * yy) - 1.0,
        }[label] > 0
        first, second = rng.uniform(0.0, 1.0, (2, 3))
        images[i] = np.where(pattern[..., None], first, second)
    images += rng.normal(0.0, 0.05, images.shape)
    return {"image": pixels(images)}, {"label": labels.astype(np.uint8)}


def signal_split(rng, count: int, length: int = 64):
    """A slow trend plus a fast ripple: {"signal": [N, length]}, the two parts as targets."""
    t = np.arange(length) / length
    trend = rng.uniform(-1, 1, (count, 1))
    for _ in range(2):
        trend = trend + rng.uniform(0.3, 1.5, (count, 1)) * np.sin(2 * np.pi * (rng.uniform(0.3, 2.0, (count, 1)) * t + rng.uniform(0, 1, (count, 1))))
    envelope = 0.5 + 0.5 * np.sin(np.pi * (t * rng.uniform(0.5, 1.5, (count, 1)) + rng.uniform(0, 1, (count, 1))))
    ripple = rng.uniform(0.2, 0.8, (count, 1)) * envelope * np.sin(
        2 * np.pi * (rng.uniform(10.0, 16.0, (count, 1)) * t + rng.uniform(0, 1, (count, 1)))
    )
    signal = trend + ripple + rng.normal(0.0, 0.02, (count, length))
    return (
        {"signal": signal.astype(np.float32)},
        {"trend": trend.astype(np.float32), "ripple": ripple.astype(np.float32)},
    )


# Means and spreads of the regression targets, in their units: large offsets with a real spread.
PRICE_MEAN, PRICE_STD = 5200.0, 900.0
ENERGY_MEAN, ENERGY_STD = 3000.0, 400.0
REGION_PRICE = np.array([-0.7, 0.0, 0.45, 1.3])
REGION_ENERGY = np.array([0.3, -0.2, 0.0, 0.5])


def housing(rng, count: int):
    """Standardised features and a region (one-hot) -> a price (thousands) and three months of energy use."""
    features = rng.normal(0.0, 1.0, (count, 8))
    region = rng.integers(0, 4, count)
    location = np.eye(4)[region]
    f = features
    price = 0.8 * np.tanh(f[:, 0] + 0.5 * f[:, 1]) + 0.4 * f[:, 2] * f[:, 3] + 0.3 * np.sin(2 * f[:, 4]) + REGION_PRICE[region]
    month = np.array([0.6, 0.0, -0.6])
    energy = 0.7 * f[:, 5:6] + 0.3 * (f[:, 6:7] ** 2 - 1.0) + month * f[:, 7:8] + REGION_ENERGY[region][:, None]
    return (
        {"features": features.astype(np.float32), "location": location.astype(np.float32)},
        {
            "price": (PRICE_MEAN + PRICE_STD * price[:, None]).astype(np.float32),
            "monthly_kwh": (ENERGY_MEAN + ENERGY_STD * energy).astype(np.float32),
        },
    )


def tones(rng, count: int):
    """Sounds of four kinds (low, middle and high tones, a noise burst) at any loudness: {"waveform": [N, 512]}."""
    t = np.arange(WAVEFORM_LENGTH) / SAMPLE_RATE
    labels = rng.integers(0, 4, count)
    bands = ((150.0, 450.0), (450.0, 900.0), (900.0, 1600.0))  # adjacent: tones near an edge are ambiguous
    waves = np.empty((count, WAVEFORM_LENGTH))
    for i, label in enumerate(labels):
        loudness = 10 ** rng.uniform(-1.3, -0.1)
        if label < 3:
            frequency = rng.uniform(*bands[label])
            wave = np.sin(2 * np.pi * frequency * t + rng.uniform(0, 2 * np.pi))
            wave += 0.3 * np.sin(2 * np.pi * 2 * frequency * t + rng.uniform(0, 2 * np.pi))
        else:
            wave = rng.normal(0.0, 0.6, WAVEFORM_LENGTH)
        onset = rng.integers(0, WAVEFORM_LENGTH // 4)
        wave[:onset] = 0.0
        waves[i] = loudness * wave + rng.normal(0.0, 10 ** rng.uniform(-3, -2), WAVEFORM_LENGTH)
    return {"waveform": pcm(waves)}, {"label": labels.astype(np.uint8)}


# The note task: 8 notes on the bins of a 64-point DFT at 4 kHz (62.5 Hz apart), each detuned by -1, 0 or +1
# of three contour steps; frames every 32 samples.
NOTE_BINS = np.arange(4, 20, 2)
HOP = 32
FRAMES = WAVEFORM_LENGTH // HOP + 1
CONTOUR_STEP_HZ = 20.0


def notes(rng, count: int):
    """One to three notes per clip, each with an onset and a length: frame-wise note, onset and pitch contour maps."""
    t = np.arange(WAVEFORM_LENGTH)
    waves = rng.normal(0.0, 0.003, (count, WAVEFORM_LENGTH))
    note = np.zeros((count, FRAMES, len(NOTE_BINS)), np.uint8)
    onset = np.zeros_like(note)
    contour = np.zeros((count, FRAMES, 3 * len(NOTE_BINS)), np.uint8)
    for i in range(count):
        for _ in range(rng.integers(1, 4)):
            k = rng.integers(0, len(NOTE_BINS))
            detune = rng.integers(-1, 2)
            frequency = NOTE_BINS[k] * SAMPLE_RATE / 64 + detune * CONTOUR_STEP_HZ
            start_frame = rng.integers(0, FRAMES - 4)
            frames = rng.integers(4, 12)
            start, stop = start_frame * HOP, min(WAVEFORM_LENGTH, (start_frame + frames) * HOP)
            envelope = np.where((t >= start) & (t < stop), np.exp(-(t - start) / rng.uniform(150, 600)), 0.0)
            waves[i] += rng.uniform(0.1, 0.35) * envelope * np.sin(2 * np.pi * frequency * t / SAMPLE_RATE + rng.uniform(0, 2 * np.pi))
            last = min(FRAMES, start_frame + frames)
            note[i, start_frame:last, k] = 1
            onset[i, start_frame, k] = 1
            contour[i, start_frame:last, 3 * k + 1 + detune] = 1
    return {"waveform": pcm(waves)}, {"note": note, "onset": onset, "contour": contour}


def gestures(rng, count: int, steps: int = 20):
    """Three-axis motion of four gestures (circle, shake, swipe, lift): {"motion": [N, steps, 3]}."""
    t = np.linspace(0.0, 1.0, steps)
    labels = rng.integers(0, 4, count)
    motion = np.empty((count, steps, 3))
    for i, label in enumerate(labels):
        amplitude, speed, phase = rng.uniform(0.3, 1.5), rng.uniform(0.7, 1.3), rng.uniform(0, 2 * np.pi)
        u = 2 * np.pi * speed * t + phase
        axes = {
            0: (np.cos(u), np.sin(u), 0 * t),
            1: (np.sin(4 * u), 0.2 * np.sin(2 * u), 0 * t),
            2: (np.tanh(6 * (t - rng.uniform(0.3, 0.7))), 0 * t, 0.2 * np.cos(u)),
            3: (0 * t, 0.2 * np.sin(u), np.sin(np.pi * np.clip(speed * t, 0, 1))),
        }[label]
        motion[i] = amplitude * np.stack(axes, axis=-1)
    motion += rng.normal(0.0, 0.35, motion.shape)
    return {"motion": motion.astype(np.float32)}, {"label": labels.astype(np.uint8)}


KEYS, TOKENS = 6, 12


def keyed_tokens(rng, count: int):
    """Tokens of a key (one-hot of 6) and a value; the target is each token's mean value over the tokens of its key."""
    keys = rng.integers(0, KEYS, (count, TOKENS))
    values = rng.uniform(-1.0, 1.0, (count, TOKENS))
    same = keys[:, :, None] == keys[:, None, :]
    group_mean = (same * values[:, None, :]).sum(-1) / same.sum(-1)
    tokens = np.concatenate([np.eye(KEYS)[keys] + rng.normal(0.0, 0.05, (count, TOKENS, KEYS)), values[..., None]], axis=-1)
    return {"tokens": tokens.astype(np.float32)}, {"group_mean": group_mean.astype(np.float32)}


def red_objects(rng, count: int, height: int = 24, width: int = 32):
    """Colour scenes of disks and squares; the target marks the pixels of the red objects: [N, H, W, 3] -> [N, H, W, 1]."""
    y, x = _grid(height, width)
    images = np.empty((count, height, width, 3))
    masks = np.zeros((count, height, width, 1), np.uint8)
    for i in range(count):
        gradient = rng.uniform(0.2, 0.6, 3) + rng.uniform(-0.2, 0.2, 3) * (x / width)[..., None]
        image = gradient * np.ones((height, width, 1))
        for _ in range(rng.integers(2, 6)):
            red = rng.uniform() < 0.4
            colour = np.array([rng.uniform(0.7, 1.0), rng.uniform(0.0, 0.3), rng.uniform(0.0, 0.3)]) if red else rng.uniform(0.0, 1.0, 3)
            if not red and colour[0] > 0.6 and colour[1] < 0.4 and colour[2] < 0.4:
                colour[1] = 0.6  # not red by accident
            r = rng.uniform(2.0, 5.0)
            cy, cx = rng.uniform(0, height), rng.uniform(0, width)
            shape = shape_mask("disk" if rng.uniform() < 0.5 else "square", height, width, cy, cx, r)
            image[shape] = colour
            masks[i, shape, 0] = 1 if red else 0
        images[i] = image
    images += rng.normal(0.0, 0.02, images.shape)
    return {"image": pixels(images)}, {"red_mask": masks}


BOX_KINDS = ("filled", "outline", "ellipse")


def boxed_objects(rng, count: int, size: int = 20):
    """One object per image, of three kinds; its box (ymin, xmin, ymax, xmax) as fractions of the image."""
    images = _grey_canvas(rng, count, size)
    y, x = _grid(size, size)
    labels = rng.integers(0, 3, count)
    boxes = np.empty((count, 4))
    for i, label in enumerate(labels):
        h, w = rng.uniform(5.0, 14.0, 2)
        y0, x0 = rng.uniform(0, size - h), rng.uniform(0, size - w)
        inside = (y + 0.5 >= y0) & (y + 0.5 <= y0 + h) & (x + 0.5 >= x0) & (x + 0.5 <= x0 + w)
        if label == 1:
            inside &= ~((y + 0.5 >= y0 + 1.5) & (y + 0.5 <= y0 + h - 1.5) & (x + 0.5 >= x0 + 1.5) & (x + 0.5 <= x0 + w - 1.5))
        elif label == 2:
            inside = ((y + 0.5 - y0 - h / 2) / (h / 2)) ** 2 + ((x + 0.5 - x0 - w / 2) / (w / 2)) ** 2 <= 1.0
        images[i][inside] = rng.uniform(0.5, 1.0)
        boxes[i] = (y0 / size, x0 / size, (y0 + h) / size, (x0 + w) / size)
    return {"image": pixels(images)[..., None]}, {"boxes": boxes.astype(np.float32), "label": labels.astype(np.uint8)}


PULSE_LENGTH = 64


def pulses(rng, count: int, length: int = PULSE_LENGTH):
    """One to three bursts of a fast oscillation in a noisy, drifting signal: {"signal": [N, length]}; the true burst map,
    how many steps burst, the mean |signal| over those steps and the first burst's start."""
    t = np.arange(length)
    signals = np.empty((count, length))
    active = np.zeros((count, length), bool)
    for i in range(count):
        signal = rng.uniform(-0.2, 0.2) + 0.15 * np.sin(2 * np.pi * (rng.uniform(0.3, 1.2) * t / length + rng.uniform()))
        signal = signal + rng.normal(0.0, 0.03, length)
        for _ in range(rng.integers(1, 4)):
            start, steps = rng.integers(0, length - 4), rng.integers(4, 13)
            burst = (t >= start) & (t < start + steps)
            signal = signal + burst * rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * t / rng.uniform(3.0, 5.0) + rng.uniform(0, 2 * np.pi))
            active |= burst[None, :] & (np.arange(count) == i)[:, None]
        signals[i] = signal
    signals = np.round(signals * 1024.0) / 1024.0  # a 10-bit sensor's steps (and a small data.npz)
    steps = active.sum(axis=1, keepdims=True)
    level = np.where(active, np.abs(signals), 0.0).sum(axis=1, keepdims=True) / np.maximum(steps, 1)
    return (
        {"signal": signals.astype(np.float32)},
        {"pulse_map": active.astype(np.uint8), "pulse_steps": steps.astype(np.float32), "pulse_level": level.astype(np.float32),
         "first_onset": np.argmax(active, axis=1)[:, None].astype(np.float32)},
    )


STRIPE_KINDS = ("horizontal", "vertical", "diagonal", "checks")


def stripes(rng, count: int, height: int = 23, width: int = 31):
    """Two-colour stripes and checks of any size, little noise: {"image": [N, height, width, 3]}, {"label": [N]}."""
    y, x = _grid(height, width)
    labels = rng.integers(0, len(STRIPE_KINDS), count)
    images = np.empty((count, height, width, 3))
    for i, label in enumerate(labels):
        period = rng.uniform(3.0, 7.0)
        yy, xx = (y + rng.uniform(0, period)) / period, (x + rng.uniform(0, period)) / period
        pattern = {
            0: np.sin(2 * np.pi * yy),
            1: np.sin(2 * np.pi * xx),
            2: np.sin(2 * np.pi * (xx + yy * rng.choice((-1, 1))) / np.sqrt(2)),
            3: np.sin(np.pi * xx) * np.sin(np.pi * yy),
        }[label] > 0
        first, second = rng.uniform(0.0, 1.0, (2, 3))
        images[i] = np.where(pattern[..., None], first, second)
    images += rng.normal(0.0, 0.003, images.shape)  # about one 8-bit step: more would only grow data.npz
    return {"image": pixels(images)}, {"label": labels.astype(np.uint8)}


EXPRESSIONS = ("neutral", "happy", "sad", "surprised")


def faces(rng, count: int, size: int = 24):
    """Grayscale cartoon faces of four expressions (a straight, smiling, frowning or open mouth), at any brightness
    and a jittered place and size: {"face": [N, size, size, 1]}, {"label": [N]}."""
    y, x = _grid(size, size)
    labels = rng.integers(0, len(EXPRESSIONS), count)
    images = rng.uniform(0.0, 0.25, (count, 1, 1)) + rng.normal(0.0, 0.03, (count, size, size))
    for i, label in enumerate(labels):
        cy, cx = size / 2 + rng.uniform(-1.5, 1.5, 2)
        ry, rx = rng.uniform(8.0, 10.5), rng.uniform(7.0, 9.5)
        skin, dark = rng.uniform(0.55, 0.95), rng.uniform(0.0, 0.25)
        face = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0
        images[i][face] = skin
        for side in (-1, 1):  # eyes
            images[i][(y - (cy - 0.3 * ry)) ** 2 + (x - (cx + side * 0.4 * rx)) ** 2 <= 1.3] = dark
        my, half = cy + 0.45 * ry, rng.uniform(0.35, 0.5) * rx
        along = np.abs(x - cx) <= half
        bend = 2.2 * (1 - ((x - cx) / half) ** 2)  # rows grow downwards: a smile is lowest in the middle
        curve = {0: 0.0 * x, 1: bend, 2: -bend, 3: 0.0 * x}[label]
        if label == 3:
            mouth = (((y - my) / 1.8) ** 2 + ((x - cx) / 1.6) ** 2 <= 1.0) & (((y - my) / 0.8) ** 2 + ((x - cx) / 0.6) ** 2 > 1.0)
        else:
            mouth = along & (np.abs(y - (my + curve)) <= 0.7)
        images[i][mouth] = dark
    return {"face": pixels(images)[..., None]}, {"label": labels.astype(np.uint8)}
