# The firmware version: printed by the self-test, sent in `state` (fw), written to the bundle
# manifest. Bump it with every change that ships to panels (CONTRIBUTING.md).
# A constant in the source, not derived when the bundle is built: the simulator and every test
# run the firmware from source, without a bundle, and must report the same version as the
# panel; the kept config's key (firmware/boot.py) is computed on the panel from this constant;
# and a version taken from git at build time would not exist in a source tarball. What a
# forgotten bump would hide is covered otherwise: the bundle manifest and deploy compare every
# file's sha256, and the kept config's key also holds the CRCs of the rule modules.
FW = "0.3.1"
