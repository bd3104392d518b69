"""Target profiles as data (`*.toml` beside this file) and the small code that reads them."""

from edgezoo.targets.profile import TargetProfile, Tolerance, builtin_profiles, load_profile_file, resolve_profile

__all__ = ["TargetProfile", "Tolerance", "builtin_profiles", "load_profile_file", "resolve_profile"]
