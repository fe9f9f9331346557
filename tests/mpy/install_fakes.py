"""`import install_fakes` first thing in a MicroPython test script: it makes `import machine`
and `import network` return the fakes in this folder (the unix port's built-in `machine` would
win over a machine.py on the path, so the fakes go into sys.modules directly).

reset() puts every fake back to its start state (mpytest calls it before each test).
"""

import sys

import fake_machine
import fake_network

sys.modules["machine"] = fake_machine
sys.modules["network"] = fake_network


def reset():
    fake_machine.reset_state()
    fake_network.reset_state()
