# Stand-in `network` (ESP32 station) for the WebAssembly panel: the unix port's fake
# (tests/mpy/fake_network.py, put next to this file by bridge.mjs) as it starts: joining
# always works and the signal is -55 dBm. The VM has no sockets, so MQTT and NTP fail for
# real (the self-test says so).
import fake_network
from fake_network import *  # noqa: F401,F403

fake_network.hostname("standin")
