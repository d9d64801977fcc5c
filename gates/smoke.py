"""Moved to devtools.smoke (developer tooling lives outside the domain apps); these names
stay importable from here so existing imports keep working."""

from devtools.smoke import GATE_SPECS, Case, run

__all__ = ["GATE_SPECS", "Case", "run"]
