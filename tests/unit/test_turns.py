"""Turns for APIs that want user and assistant to alternate, tool results first."""

from __future__ import annotations

from extproc.formats.turns import append_turn, results_first


def _is_result(block: dict[str, str]) -> bool:
    return block["type"] == "result"


def test_consecutive_turns_of_one_role_merge_and_an_empty_one_adds_nothing() -> None:
    messages: list[dict] = []
    append_turn(messages, "user", [{"type": "a"}])
    append_turn(messages, "user", [{"type": "b"}])
    append_turn(messages, "assistant", [])
    append_turn(messages, "assistant", [{"type": "c"}])
    assert messages == [
        {"role": "user", "content": [{"type": "a"}, {"type": "b"}]},
        {"role": "assistant", "content": [{"type": "c"}]},
    ]


def test_tool_results_after_another_block_move_first_each_in_its_order() -> None:
    message = {"content": [{"type": "result", "n": 1}, {"type": "text"}, {"type": "result", "n": 2}]}
    results_first(message, _is_result)
    assert message["content"] == [{"type": "result", "n": 1}, {"type": "result", "n": 2}, {"type": "text"}]


def test_a_turn_whose_results_already_lead_is_left_as_it_is() -> None:
    blocks = [{"type": "result"}, {"type": "result"}, {"type": "text"}]
    message = {"content": blocks}
    results_first(message, _is_result)
    assert message["content"] is blocks
