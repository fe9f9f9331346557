# The firmware version: printed by the self-test, sent in `state` (fw), written to the bundle
# manifest. Bump it with every change that ships to panels.
FW = "0.1.0"
