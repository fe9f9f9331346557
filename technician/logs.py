"""`rating device logs`: print the panel's serial console as it comes, until Ctrl-C."""

import time

from technician.console import Console


def follow(port, seconds=None, timestamps=True, out=print):
    """Print console lines; stop after `seconds` (None: until Ctrl-C). Returns the line count."""
    count = 0
    with Console(port) as console:
        out("Following the console of %s (Ctrl-C to stop) ..." % port)
        try:
            for line in console.lines(timeout=seconds):
                count += 1
                out(("%s  %s" % (time.strftime("%H:%M:%S"), line)) if timestamps else line)
        except KeyboardInterrupt:
            pass
    return count
