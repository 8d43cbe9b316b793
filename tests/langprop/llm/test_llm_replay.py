"""Replay backend (recorded answers from files), recording, and the prompt/answer transcript."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from langprop.llm import LLMClient, LLMConfig, LLMConfigError, ReplayMissError
from langprop.llm.replay import read_answer_file
from langprop.llm.testing import chat

RECORDED = textwrap.dedent(
    """\
    default: null
    entries:
      - tag: setup
        answers: ["setup A", "setup B"]
      - tag: update
        contains: "needle"
        answer: "update with needle"
      - tag: update
        answers: ["update 1", "update 2"]
      - contains: ["anything", "goes"]
        repeat: true
        answer: "catch-all"
    """
)


def replay_client(path: Path, **overrides) -> LLMClient:
    return LLMClient(LLMConfig(backend="replay", replay_path=str(path), **overrides))


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    path = tmp_path / "answers.yaml"
    path.write_text(RECORDED)
    return path


def test_entries_match_by_tag_prefix_and_substring_in_order(recorded):
    with replay_client(recorded) as client:
        assert [a.text for a in client.complete([chat("task")], n=2, tags=["setup_s0000"])[0]] == ["setup A", "setup B"]
        out = client.complete([chat("plain"), chat("has a needle in it"), chat("plain")], n=1,
                              tags=["update_0", "update_1", "update_2"])
        assert [r[0].text for r in out] == ["update 1", "update with needle", "update 2"]
        for _ in range(3):  # repeat: true serves forever
            assert client.complete([chat("anything goes here")], n=1, tags=["x"])[0][0].text == "catch-all"
        assert client.usage["calls"] == 7 and client.usage["completion_tokens"] > 0


def test_missing_answer_names_the_file_and_the_tag(recorded):
    with replay_client(recorded) as client:
        client.complete([chat("x")], n=2, tags=["setup"])
        with pytest.raises(ReplayMissError) as info:
            client.complete([chat("the third setup prompt")], n=1, tags=["setup_again"])
    message = str(info.value)
    assert str(recorded) in message and "'setup_again'" in message and "used up" in message
    assert "the third setup prompt" in message


def test_default_answer_from_config_or_file(recorded, tmp_path):
    with replay_client(recorded, replay_default="DEFAULT") as client:
        assert client.complete([chat("x")], n=1, tags=["nothing-matches"])[0][0].text == "DEFAULT"
    with_default = tmp_path / "d.yaml"
    with_default.write_text("default: 'from file'\nentries: []\n")
    with replay_client(with_default) as client:
        assert client.complete([chat("x")], n=2)[0][1].text == "from file"


def test_markdown_directory_format_and_file_order(tmp_path):
    (tmp_path / "002_b.md").write_text("---\ntag: update\n---\nsecond\n")
    (tmp_path / "001_a.md").write_text("---\ntag: update\ncontains: sudoku\n---\n```python\nfirst\n```\n")
    (tmp_path / "003_c.md").write_text("no front matter: matches anything\n")
    with replay_client(tmp_path) as client:
        out = client.complete([chat("solve sudoku")] * 3, n=1, tags=["update_1", "update_2", "other"])
    assert [r[0].text for r in out] == ["```python\nfirst\n```\n", "second\n", "no front matter: matches anything\n"]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("entries: [{tag: x}]\n", "needs 'answer' or 'answers'"),
        ("entries: [{answer: a, colour: red}]\n", "unknown key"),
        ("entries: [\n", "cannot read replay file"),
        ("entries: [{answer: a, contains: 3}]\n", "'contains'"),
    ],
)
def test_bad_replay_file_is_a_config_error_naming_it(tmp_path, content, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(LLMConfigError) as info:
        replay_client(path)
    assert str(path) in str(info.value) and fragment in str(info.value)


def test_missing_replay_path_is_a_config_error(tmp_path):
    with pytest.raises(LLMConfigError, match="llm.replay_path"):
        replay_client(tmp_path / "nope")


def test_replay_resume_continues_where_it_stopped(recorded):
    with replay_client(recorded) as client:
        client.complete([chat("x")], n=1, tags=["update"])
        state = client.state_dict()
    with replay_client(recorded) as resumed:
        resumed.load_state_dict(state)
        assert resumed.complete([chat("x")], n=1, tags=["update"])[0][0].text == "update 2"


def test_transcript_files_are_written_and_linked(fake_openai, make_config, tmp_path):
    fake_openai.answer = lambda messages, i, serial: f"```python\ndef f():\n    return {i}\n```"
    with LLMClient(make_config(), log_dir=tmp_path / "run") as client:
        out = client.complete([chat("make f", system="sys text"), chat("again")], n=2, tags=["setup_0", "update g/1"])
        later = client.complete([chat("third")], n=1, tags=["update_2"])
    prompt_file = Path(out[0][0].prompt_file)
    assert prompt_file == tmp_path / "run" / "prompts" / "000000_setup_0.md"
    text = prompt_file.read_text()
    assert "## system" in text and "sys text" in text and "## user" in text and "make f" in text
    assert Path(out[1][1].response_file).name == "000001_update-g-1_1.md"  # tag made file-safe
    meta, body = read_answer_file(out[0][1].response_file)
    assert body == out[0][1].text and meta["tag"] == "setup_0" and meta["index"] == 1
    assert meta["prompt_file"] == "prompts/000000_setup_0.md" and meta["model"] == "fake-model"
    assert Path(later[0][0].prompt_file).name.startswith("000002_")
    # a resumed client continues the numbering instead of overwriting
    with LLMClient(make_config(), log_dir=tmp_path / "run") as again:
        assert Path(again.complete([chat("4th")], n=1)[0][0].prompt_file).name.startswith("000003_")


def test_a_real_run_replays_exactly_from_its_recording(fake_openai, make_config, tmp_path):
    prompts = [chat("same words"), chat("same words"), chat("other")]
    tags = ["update_a", "update_b", "setup"]
    with LLMClient(make_config(record_path=str(tmp_path / "rec")), log_dir=tmp_path / "run") as client:
        real = [[a.text for a in r] for r in client.complete(prompts, n=2, tags=tags)]
        real += [[a.text for a in r] for r in client.complete(prompts[:1], n=2, tags=["update_c"])]
    sent = fake_openai.request_count
    for source in (tmp_path / "rec", tmp_path / "run" / "responses"):
        with replay_client(source, model="fake-model") as replay:
            again = [[a.text for a in r] for r in replay.complete(prompts, n=2, tags=tags)]
            again += [[a.text for a in r] for r in replay.complete(prompts[:1], n=2, tags=["update_c"])]
        assert again == real
    assert fake_openai.request_count == sent  # replay never touches the network
