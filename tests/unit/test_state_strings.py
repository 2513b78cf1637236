"""State enum members read exactly as TaskFlow's plain state strings, and stay enums."""

from __future__ import annotations

import logging

import pytest

from tideflow.states import AtomState, EngineState, FlowState, Intention

_MEMBERS = [m for enum in (AtomState, FlowState, EngineState, Intention) for m in enum]


@pytest.mark.parametrize("member", _MEMBERS, ids=lambda m: f"{type(m).__name__}.{m.name}")
def test_member_reads_as_its_plain_string(member: AtomState) -> None:
    plain = member.value
    assert type(plain) is str
    assert repr(member) == repr(plain)
    assert str(member) == plain
    assert f"{member}|{member!r}|{member:>12}" == f"{plain}|{plain!r}|{plain:>12}"
    assert "%s %r" % (member, member) == "%s %r" % (plain, plain)  # noqa: UP031 (as logging formats)
    assert str([member]) == str([plain])
    assert str({plain: member}) == str({plain: plain})
    assert str((member,)) == str((plain,))


@pytest.mark.parametrize("member", _MEMBERS, ids=lambda m: f"{type(m).__name__}.{m.name}")
def test_member_is_still_an_enum(member: AtomState) -> None:
    enum = type(member)
    assert member == member.value
    assert hash(member) == hash(member.value)
    assert enum(member.value) is member
    assert enum[member.name] is member
    assert member.name == member.value


def test_log_line_shows_plain_strings(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="tideflow.test"):
        logging.getLogger("tideflow.test").info(
            "states %r then %s", [AtomState.RUNNING], FlowState.SUCCESS
        )
    assert caplog.messages == ["states ['RUNNING'] then SUCCESS"]
