"""Properties of schedules as data: a replay token reads back as the schedule it was made
from, whatever the schedule, configuration and file digests; an altered token is refused."""

from __future__ import annotations

import pickle
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from schedule_strategies import tokens

from interleave.decisions import PAUSE, Decision, Key, run_thread
from interleave.schedule import UNKNOWN_PLACE, BadToken, Token

#: What an alteration may put in a token: its own alphabet, the case it is not written in, a dot.
ALPHABET = string.ascii_lowercase + string.digits + string.ascii_uppercase + "."


def expected(token: Token) -> Token:
    """What a token reads back as: itself, costs included; a token made with no places has the place
    of none for each decision."""
    return Token(token.python, token.fingerprint, token.config, token.deviations,
                 token.checksum, token.files, token.places or (UNKNOWN_PLACE,) * len(token.deviations))


@given(tokens)
def test_a_token_reads_back_as_the_schedule_it_was_made_from(token):
    text = token.encode()
    decoded = Token.decode(text)
    assert decoded == expected(token)
    assert decoded.encode() == text  # one spelling per schedule
    assert text.count(".") == 6 and text.isascii() and text == text.strip()


@st.composite
def alterations(draw):
    """A token, and its text changed at one place: a character replaced, removed or added, or cut short."""
    text = draw(tokens).encode()
    i = draw(st.integers(0, len(text) - 1))
    kind = draw(st.sampled_from(["replace", "remove", "add", "cut"]))
    if kind == "replace":
        new = text[:i] + draw(st.sampled_from(ALPHABET.replace(text[i], ""))) + text[i + 1:]
    elif kind == "remove":
        new = text[:i] + text[i + 1:]
    elif kind == "add":
        new = text[:i] + draw(st.sampled_from(ALPHABET)) + text[i:]
    else:
        new = text[:i]
    return text, i, new


@settings(max_examples=300)
@given(alterations())
def test_an_altered_token_is_refused(altered):
    _, _, new = altered
    with pytest.raises(BadToken):
        Token.decode(new)


@given(st.integers(min_value=0, max_value=64), st.booleans())
def test_an_option_sent_to_another_process_is_the_same_option_there(thread, pause):
    """Workers send schedules by pickle: a thread's option comes back as that thread's one
    object (options compare by identity) and the pause as ``PAUSE`` (strategies test ``is PAUSE``)."""
    option = PAUSE if pause else run_thread(thread)
    back = pickle.loads(pickle.dumps(Decision(Key(0, thread, 0), option, True)))
    assert back.option is option
    assert back.option in (*(run_thread(i) for i in range(thread + 1)), PAUSE)
