"""Check-then-act: withdraw-if-enough on a shared account overdraws it.

Two customers each withdraw 80 from a balance of 100.  Each checks
`balance >= amount` and subtracts on the next line; if both checks run before
either subtraction, both succeed and the balance ends at -60.
The twin makes the check and the subtraction one atomic step under a lock,
so exactly one withdrawal succeeds.
"""
import threading

EXPECTED = "exception"
START = 100
AMOUNT = 80


class Account:
    def __init__(self, balance):
        self.balance = balance


def main():
    account = Account(START)
    granted = []

    def withdraw(amount):
        if account.balance >= amount:
            account.balance -= amount  # BUG: the balance may have changed since the check
            granted.append(amount)

    threads = [threading.Thread(target=withdraw, args=(AMOUNT,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert account.balance >= 0, f"overdrawn: balance is {account.balance}"
    assert account.balance == START - sum(granted)


def fixed():
    account = Account(START)
    granted = []
    lock = threading.Lock()

    def withdraw(amount):
        with lock:
            if account.balance >= amount:
                account.balance -= amount
                granted.append(amount)

    threads = [threading.Thread(target=withdraw, args=(AMOUNT,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert account.balance >= 0, f"overdrawn: balance is {account.balance}"
    assert account.balance == START - sum(granted)


if __name__ == "__main__":
    main()
