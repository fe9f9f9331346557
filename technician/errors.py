"""Errors a technician can act on: each message says what happened and what to do."""


class DeviceError(Exception):
    """A user-facing problem with the board, the port or the files (the CLI prints it)."""


class PortMissing(DeviceError):
    pass


class PortBusy(DeviceError):
    pass


class NotMicroPython(DeviceError):
    pass


class WrongChip(DeviceError):
    pass


class StepFailed(DeviceError):
    pass
