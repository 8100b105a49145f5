"""Lost wakeup: the consumer tests the condition outside the Condition's lock.

The consumer sees `ready` False, and only then takes the lock and waits.  If the
producer sets `ready` and calls notify() between that test and the wait(), the
notification reaches nobody and the consumer waits forever: a deadlock.
The twin tests the predicate and waits under the same lock, in a `while` loop,
so a notify can never fall between the test and the wait.
"""
import threading

EXPECTED = "deadlock"


class Mailbox:
    def __init__(self):
        self.cond = threading.Condition()
        self.ready = False
        self.item = None


def main():
    box = Mailbox()
    received = []

    def consumer():
        if not box.ready:  # BUG: tested without holding box.cond's lock
            with box.cond:
                box.cond.wait()  # the notify may already have happened
        received.append(box.item)

    def producer():
        with box.cond:
            box.item = "hello"
            box.ready = True
            box.cond.notify()

    threads = [threading.Thread(target=consumer), threading.Thread(target=producer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert received == ["hello"], received


def fixed():
    box = Mailbox()
    received = []

    def consumer():
        with box.cond:
            while not box.ready:
                box.cond.wait()
            received.append(box.item)

    def producer():
        with box.cond:
            box.item = "hello"
            box.ready = True
            box.cond.notify()

    threads = [threading.Thread(target=consumer), threading.Thread(target=producer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert received == ["hello"], received


if __name__ == "__main__":
    main()
