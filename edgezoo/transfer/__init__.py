"""Transfer learning, `edgezoo finetune` and `edgezoo.finetune(...)`: a head trained on a zoo feature extractor with the
user's labelled images, exported as a zoo source (raw pixels in, the backbone's preprocessing inside), converted for
targets, and its task accuracy measured on every runtime. The package is not named `finetune`: a submodule of that
name would replace the `edgezoo.finetune` function on first import."""

from edgezoo.transfer.options import FinetuneOptions

__all__ = ["FinetuneOptions", "finetune"]


def finetune(source, options=None, feedback=None, on_epoch=None):
    from edgezoo.transfer.run import finetune as run

    return run(source, options, feedback, on_epoch)
