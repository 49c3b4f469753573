"""A file object standing in for a slow or full destination, for LocalStore's `_open` hook."""

import errno
import time


class FakeFile:
    """Writes through to a real file, sleeping `delay` s per write (plus `bytes_per_s` pacing), and
    failing with ENOSPC once `room` bytes have been written (None: never)."""

    def __init__(self, path, mode, *, delay=0.0, bytes_per_s=0.0, room=None):
        self.f = open(path, mode)
        self.delay, self.rate, self.room = delay, bytes_per_s, room

    def write(self, b):
        if self.room is not None and len(b) > self.room:
            self.f.write(bytes(b[: self.room]))
            self.room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        if self.room is not None:
            self.room -= len(b)
        time.sleep(self.delay + (len(b) / self.rate if self.rate else 0.0))
        return self.f.write(b)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()
