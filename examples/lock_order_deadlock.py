"""Lock-order deadlock: two transfers take the same two locks in opposite orders.

transfer(a, b) locks a then b; transfer(b, a) locks b then a.  If each thread
takes its first lock before the other takes its second, each waits forever for
the lock the other holds: a deadlock.
The twin always takes the two locks in one global order (by account number),
so no cycle of waiting threads can form.
"""
import threading

EXPECTED = "deadlock"


class Account:
    def __init__(self, number, balance):
        self.number = number
        self.balance = balance
        self.lock = threading.Lock()


def main():
    a = Account(1, 100)
    b = Account(2, 100)

    def transfer(src, dst, amount):
        with src.lock:  # BUG: the lock order depends on the direction of the transfer
            with dst.lock:
                src.balance -= amount
                dst.balance += amount

    t1 = threading.Thread(target=transfer, args=(a, b, 10))
    t2 = threading.Thread(target=transfer, args=(b, a, 20))
    t1.start()
    t2.start()
    t1.join()
    t2.join()
    assert a.balance + b.balance == 200
    assert (a.balance, b.balance) == (110, 90)


def fixed():
    a = Account(1, 100)
    b = Account(2, 100)

    def transfer(src, dst, amount):
        first, second = (src, dst) if src.number < dst.number else (dst, src)
        with first.lock:
            with second.lock:
                src.balance -= amount
                dst.balance += amount

    t1 = threading.Thread(target=transfer, args=(a, b, 10))
    t2 = threading.Thread(target=transfer, args=(b, a, 20))
    t1.start()
    t2.start()
    t1.join()
    t2.join()
    assert a.balance + b.balance == 200
    assert (a.balance, b.balance) == (110, 90)


if __name__ == "__main__":
    main()
