"""Device side of the gateway package: the firmware bundle and the technician tooling."""
