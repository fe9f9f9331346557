"""MicroPython programs the technician's tools run on the panel (sent over the raw REPL; never
imported by CPython code)."""
