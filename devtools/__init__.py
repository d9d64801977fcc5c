"""Developer tooling kept out of the domain apps: the demo organization, the gate smoke
harness, the large-organization generator and the factories that tests, demo and benches
share (devtools.factories)."""
