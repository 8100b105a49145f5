"""Timer cancel race: Timer.cancel() does not stop a callback that already started.

A threading.Timer flushes the log buffer after DELAY.  At shutdown the program
cancels the timer, flushes the rest itself and writes "EOF", trusting the timer
to be dead.  If the timer fired at about the same moment, its flush runs beside
the final one: entries land out of order or after "EOF", or pop() hits an empty
buffer.  The twin flushes under a lock and marks the log closed; a late timer
flush sees `closed` and does nothing.
"""
import threading
import time

EXPECTED = "exception"
DELAY = 0.002


class Log:
    def __init__(self):
        self.lock = threading.Lock()
        self.pending = ["a", "b"]
        self.out = []
        self.closed = False


def main():
    log = Log()

    def flush():
        while log.pending:
            entry = log.pending.pop(0)
            log.out.append(entry)

    timer = threading.Timer(DELAY, flush)
    timer.start()
    time.sleep(DELAY)  # the program's own work takes about as long
    timer.cancel()  # BUG: too late if the timer's flush has already begun
    flush()
    log.out.append("EOF")
    timer.join()
    assert log.out == ["a", "b", "EOF"], log.out


def fixed():
    log = Log()

    def flush():
        with log.lock:
            if log.closed:
                return
            while log.pending:
                entry = log.pending.pop(0)
                log.out.append(entry)

    timer = threading.Timer(DELAY, flush)
    timer.start()
    time.sleep(DELAY)
    timer.cancel()
    with log.lock:
        while log.pending:
            entry = log.pending.pop(0)
            log.out.append(entry)
        log.out.append("EOF")
        log.closed = True
    timer.join()
    assert log.out == ["a", "b", "EOF"], log.out


if __name__ == "__main__":
    main()
