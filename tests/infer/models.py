"""The reference architectures for the engine's tests: they live in infer.training.zoo (the
benchmark zoo uses them too); this module keeps the tests' names for them (needs torch)."""

from infer.training.zoo import INPUT, OUTPUT, build_reference
from infer.training.zoo import export_reference as export

build = build_reference

__all__ = ["INPUT", "OUTPUT", "build", "export"]
