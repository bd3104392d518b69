"""edgezoo: pretrained models from a zoo to edge devices, with numerical parity proven on the real runtime.

    import edgezoo
    result = edgezoo.convert("digits-cnn", target="phone", out_dir="build")
    print(result.passed, result.targets[0].output_dir)

TensorFlow is imported only when a function needs it, so `import edgezoo` stays fast.
"""

from __future__ import annotations

from edgezoo.version import __version__  # noqa: F401 (edgezoo.__version__)

__all__ = ["build", "convert", "finetune", "load", "resolve_profile", "BuildOptions", "ConvertOptions", "FinetuneOptions", "EdgezooError"]

from edgezoo.errors import EdgezooError


def load(source: str, *, trust_model: bool = False, offline: bool = False, cache_dir=None, mirror: str | None = None):
    """Resolve a source string (`digits-cnn`, `keras:MobileNetV2`, a path...) into a LoadedModel.

    Downloads go to the cache (`cache_dir`, else $EDGEZOO_CACHE), from `mirror` (else $EDGEZOO_MIRROR) or the
    origin; `offline` never touches the network.
    """
    from edgezoo.zoo import LoadOptions, load as zoo_load

    return zoo_load(source, LoadOptions(trust_model=trust_model, offline=offline, cache_dir=cache_dir, mirror=mirror))


def convert(source, options=None, *, feedback=None, **option_fields):
    """Convert a source for one or more targets; returns a ConversionResult (check `.passed`).

    Give either a ConvertOptions or its fields as keywords (`target=` is accepted for `targets=`).
    """
    from edgezoo.options import ConvertOptions
    from edgezoo.pipeline import convert as run

    return run(source, _options(ConvertOptions, options, option_fields), feedback)


def build(matrix, options=None, *, on_event=None, **option_fields):
    """Build every cell of a matrix (a TOML path or an edgezoo.matrix.Matrix): models x targets x option variants, each
    a job in a worker process; resumable (intact cells are skipped). Returns a BuildResult (`.exit_code`, `.cells`).

    Give either a BuildOptions or its fields as keywords; on_event(dict) receives the progress events."""
    from edgezoo.matrix import BuildOptions, build as run

    return run(matrix, _options(BuildOptions, options, option_fields), on_event)


def finetune(source, options=None, *, feedback=None, on_epoch=None, **option_fields):
    """Train a classifier head on a zoo feature extractor with labelled data (`data=`), export it as a zoo source (raw
    pixels in), convert it for `targets` and measure its task accuracy on every runtime; returns a FinetuneResult.

    Give either a FinetuneOptions or its fields as keywords (`target=` is accepted for `targets=`).
    """
    from edgezoo.transfer import FinetuneOptions, finetune as run

    return run(source, _options(FinetuneOptions, options, option_fields), feedback, on_epoch)


def _options(kind, options, option_fields: dict):
    """The options object a call was given, or one made of its keyword fields (`target=` is accepted for `targets=`)."""
    if "target" in option_fields:
        option_fields["targets"] = option_fields.pop("target")
    if options is None:
        return kind(**option_fields)
    if option_fields:
        raise TypeError("give either options= or option keywords, not both")
    return options


def resolve_profile(name_or_path: str):
    from edgezoo.targets import resolve_profile as resolve

    return resolve(name_or_path)


def __getattr__(name):
    if name == "ConvertOptions":
        from edgezoo.options import ConvertOptions

        return ConvertOptions
    if name == "BuildOptions":
        from edgezoo.matrix import BuildOptions

        return BuildOptions
    if name == "FinetuneOptions":
        from edgezoo.transfer import FinetuneOptions

        return FinetuneOptions
    raise AttributeError(name)
