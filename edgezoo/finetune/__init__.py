"""Transfer learning: a head trained on a zoo feature extractor with the user's labelled images, exported as a zoo
source (raw pixels in, the backbone's preprocessing inside), converted for targets, and its task accuracy measured on
every runtime. `edgezoo.finetune(...)` and `edgezoo finetune` are thin layers over `run.finetune`."""

from edgezoo.finetune.options import FinetuneOptions

__all__ = ["FinetuneOptions", "finetune"]


def finetune(source, options=None, feedback=None, on_epoch=None):
    from edgezoo.finetune.run import finetune as run

    return run(source, options, feedback, on_epoch)
