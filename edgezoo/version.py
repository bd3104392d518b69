"""edgezoo's version, in a module of its own: the package facade imports the whole API, and what records the version
(metadata, device bundles, build keys) must not."""

__version__ = "0.1.0"
