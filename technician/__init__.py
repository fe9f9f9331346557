"""The field technician's tools: the panel firmware bundle, flash, deploy, self-test, logs
(`rating device ...`, docs/technician.md)."""
