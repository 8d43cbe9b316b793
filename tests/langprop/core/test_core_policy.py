"""extract_code, NoCodeError, Policy and in-process loading."""

import pytest

from langprop.policy import NoCodeError, Policy, PolicySpec, extract_code, load_in_process, make_policy_id

SPEC = PolicySpec("get_factorial", "def get_factorial(number: int) -> int", "Return number!.")


def test_prose_only_answer_is_no_code_with_reason():
    with pytest.raises(NoCodeError) as info:
        extract_code("I think you should use recursion. Good luck!", SPEC)
    assert "no ```python block" in info.value.reason
    assert isinstance(info.value, ValueError)


def test_empty_answer_is_no_code():
    with pytest.raises(NoCodeError, match="empty"):
        extract_code("   \n", SPEC)


def test_multiple_python_blocks_are_concatenated_in_order():
    answer = (
        "First a helper:\n```python\nimport math\n```\nthen the function:\n"
        "```python\ndef get_factorial(number):\n    return math.factorial(number)\n```\nDone."
    )
    code = extract_code(answer, SPEC)
    assert code.index("import math") < code.index("def get_factorial")
    assert load_in_process(code, "get_factorial")(5) == 120


def test_unterminated_last_block_is_accepted():
    # servers stop at "\n```", so the closing fence never arrives
    answer = "Here you go:\n```python\ndef get_factorial(number):\n    return 1 if number < 2 else number * get_factorial(number - 1)"
    code = extract_code(answer, SPEC)
    assert load_in_process(code, "get_factorial")(6) == 720


def test_py_tag_and_indented_fence():
    answer = "  ```py\ndef get_factorial(number):\n    return 1\n  ```"
    assert "def get_factorial" in extract_code(answer, SPEC)


def test_block_that_does_not_define_the_function():
    with pytest.raises(NoCodeError) as info:
        extract_code("```python\ndef factorial(n):\n    return 1\n```", SPEC)
    assert info.value.reason == "the code does not define get_factorial"


def test_syntax_error_is_returned_for_the_sandbox_to_score():
    code = extract_code("```python\ndef get_factorial(number)\n    return 1\n```", SPEC)
    assert code.startswith("def get_factorial(number)")


def test_python_blocks_win_over_bare_output_blocks_and_other_languages_are_ignored():
    answer = (
        "```bash\npip install nothing\n```\n```python\ndef get_factorial(number):\n    return 2\n```\n"
        "Output:\n```\n2\n```"
    )
    code = extract_code(answer, SPEC)
    assert "pip" not in code and code.strip().endswith("return 2")


def test_bare_fence_used_when_no_python_tag():
    code = extract_code("```\ndef get_factorial(number):\n    return 3\n```", SPEC)
    assert load_in_process(code, "get_factorial")(0) == 3


def test_only_non_python_blocks_is_no_code():
    with pytest.raises(NoCodeError, match="json"):
        extract_code('```json\n{"a": 1}\n```', SPEC)


def test_unfenced_pure_code_answer_is_accepted():
    code = extract_code("def get_factorial(number):\n    return 4\n", SPEC)
    assert load_in_process(code, "get_factorial")(1) == 4


def test_definition_inside_if_block_and_by_assignment_count():
    assert extract_code("```python\nif True:\n    def get_factorial(n):\n        return 1\n```", SPEC)
    assert extract_code("```python\nimport math\nget_factorial = math.factorial\n```", SPEC)


def test_policy_ids_hash_and_dict_round_trip():
    assert make_policy_id(3, 7) == "g003_0007"
    policy = Policy("g003_0007", "x = 1\n", generation=3, parent_id="g002_0001", model="m")
    assert len(policy.source_hash) == 64
    assert Policy.from_dict(policy.to_dict()) == policy
    assert "source" not in policy.lineage() and policy.lineage()["source_hash"] == policy.source_hash
    with pytest.raises(ValueError):
        Policy("../evil", "x = 1")


def test_load_in_process_errors():
    with pytest.raises(NameError, match="does not define f"):
        load_in_process("g = 1\n", "f")
    with pytest.raises(TypeError, match="not callable"):
        load_in_process("f = 1\n", "f")


def test_spec_stub_is_valid_python():
    stub = PolicySpec("f", "def f(x: int) -> int", 'Double x.\nUses """quotes""".').stub()
    assert load_in_process(stub + "    return 2 * x\n", "f")(3) == 6
