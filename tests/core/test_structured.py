"""Schema-exact structured output (llada_sdk.text.structured): skeletons, validity whatever the model writes,
extraction with the bundled model, and errors."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal, Optional

import pytest
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from llada_sdk.text.canvas import parse_masked_text
from llada_sdk.text.structured import fill_schema, fill_schema_result, json_schema_of, skeleton
from llada_sdk.tokenizer import Tokenizer
from recipes.bundled_model.eval import random_schema_model

BUNDLED = Path(__file__).parents[2] / "llada_sdk" / "bundled" / "llada-tiny-kb"


class Person(BaseModel):
    name: str
    city: str
    job: str


class Pet(BaseModel):
    kind: Literal["cat", "dog"]
    age: int = Field(ge=0, le=30)


class Owner(BaseModel):
    name: str = Field(max_length=5)
    pets: list[Pet] = Field(max_length=2)
    adult: bool
    height: float = Field(gt=0.5, lt=2.5)
    nick: Optional[str] = None  # noqa: UP045


class Movie(TypedDict):
    title: str
    year: int


class RandomLLM:
    """Writes random allowed tokens in every span and picks random choices: "whatever the model writes"."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.tok = Tokenizer.from_dir(BUNDLED)
        self.canvases: list[str] = []

    def require_tokenizer(self) -> Tokenizer:
        return self.tok

    def infill(self, text: str, *, allowed_tokens: Any, options: Any = None, max_auto_length: int = 16) -> Any:
        self.canvases.append(text)
        spans = [p for p in parse_masked_text(text) if not isinstance(p, str)]
        assert len(allowed_tokens) == len(spans)
        fills = []
        for ok in allowed_tokens:
            ids = self.rng.choices(sorted(ok), k=self.rng.randint(1, max_auto_length))
            fills.append(self.tok.decode(ids).strip())
        return SimpleNamespace(fills=fills)

    def choose(self, prompt: str, choices: list[str], **_: Any) -> Any:
        return SimpleNamespace(index=self.rng.randrange(len(choices)))


def test_the_skeleton_is_the_schema_as_json_text_with_a_span_per_value() -> None:
    assert skeleton(Person) == '{"name": "[MASK:auto]", "city": "[MASK:auto]", "job": "[MASK:auto]"}'
    assert skeleton(Owner, max_items=3) == (
        '{"name": "[MASK:auto]", "pets": [{"kind": [CHOICE], "age": [MASK:auto]}, {"kind": [CHOICE], '
        '"age": [MASK:auto]}], "adult": [CHOICE], "height": [MASK:auto], "nick": "[MASK:auto]"}'
    )
    assert skeleton(Movie) == '{"title": "[MASK:auto]", "year": [MASK:auto]}'


def test_the_canvas_holds_the_prompt_then_the_skeleton_with_restricted_spans() -> None:
    fake = RandomLLM(0)
    fill_schema_result(fake, "Zapur lives in Duskmere. [MASK] stays literal.", Person)  # type: ignore[arg-type]
    assert fake.canvases == [
        'Zapur lives in Duskmere. \\[MASK] stays literal.\n{"name": "[MASK:auto]", "city": "[MASK:auto]", '
        '"job": "[MASK:auto]"}'
    ]


@pytest.mark.parametrize("seed", range(50))
def test_any_output_parses_and_validates_on_random_schemas(seed: int) -> None:
    model = random_schema_model(random.Random(f"t{seed}"), f"S{seed}")
    fake = RandomLLM(seed)
    res = fill_schema_result(fake, "anything", model)  # type: ignore[arg-type]
    assert isinstance(res.value, model)
    assert model.model_validate_json(res.text) == res.value
    assert json.loads(res.text) == res.data


def test_any_output_validates_against_bounds_enums_and_lists() -> None:
    for seed in range(30):
        res = fill_schema_result(RandomLLM(seed), "x", Owner)  # type: ignore[arg-type]
        owner = res.value
        assert isinstance(owner, Owner) and len(owner.name) <= 5 and len(owner.pets) <= 2
        assert all(p.kind in ("cat", "dog") and 0 <= p.age <= 30 for p in owner.pets)
        assert 0.5 < owner.height < 2.5


def test_json_schema_dicts_and_typeddicts_give_dicts() -> None:
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer", "minimum": 3, "maximum": 3}},
        "required": ["ok", "n"],
    }
    out = fill_schema(RandomLLM(1), "x", schema)  # type: ignore[arg-type]
    assert isinstance(out, dict) and out["n"] == 3 and isinstance(out["ok"], bool)
    movie = fill_schema(RandomLLM(2), "x", Movie)  # type: ignore[arg-type]
    assert set(movie) == {"title", "year"} and isinstance(movie["year"], int)
    tool = {"type": "function", "function": {"name": "f", "parameters": schema}}
    assert json_schema_of(tool) == schema


def test_unsupported_schemas_are_refused_by_keyword() -> None:
    with pytest.raises(ValueError, match=r"`schema` at \$.code uses `pattern`, which fill_schema does not support"):
        skeleton({"type": "object", "properties": {"code": {"type": "string", "pattern": "^a"}}})
    with pytest.raises(ValueError, match=r"`schema` at \$.d is an object without `properties` \(a free-form dict\)"):
        skeleton({"type": "object", "properties": {"d": {"type": "object", "additionalProperties": True}}})
    with pytest.raises(ValueError, match=r"`schema` is recursive through '#/\$defs/Node'"):
        skeleton(
            {
                "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
                "$ref": "#/$defs/Node",
            }
        )
    with pytest.raises(
        TypeError,
        match=r"`schema` must be a pydantic model, a TypedDict, a dataclass or a JSON-schema dict, got int: 3",
    ):
        json_schema_of(3)
    with pytest.raises(TypeError, match=r"`prompt` must be a string, got int: 5"):
        fill_schema(RandomLLM(0), 5, Person)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`max_items` must be an integer >= 0, got -1"):
        fill_schema(RandomLLM(0), "x", Person, max_items=-1)  # type: ignore[arg-type]


@pytest.mark.slow
def test_the_bundled_model_extracts_a_person_it_never_saw(bundled: Any) -> None:
    person = fill_schema(bundled, "Zibrou is a pilot who lives in Kelso.", Person)
    assert person == Person(name="Zibrou", city="Kelso", job="pilot")


def test_the_cli_fills_a_schema_file(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from llada_cli.main import cli

    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0, "maximum": 120}},
        "required": ["name", "age"],
    }
    path = tmp_path / "person.json"
    path.write_text(json.dumps(schema))
    result = CliRunner().invoke(cli, ["infill", "Zapur lives in Duskmere.", "--schema", str(path), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert set(out) == {"text", "data", "fills"} and json.loads(out["text"]) == out["data"]
    assert isinstance(out["data"]["name"], str) and 0 <= out["data"]["age"] <= 120
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"type": "object", "properties": {"a": {"type": "string", "format": "date"}}}))
    result = CliRunner().invoke(cli, ["infill", "x", "--schema", str(bad)])
    assert result.exit_code == 2 and "`schema` at $.a uses `format`" in result.output


class Item(BaseModel):
    name: str
    city: str
    job: str


class Items(BaseModel):
    items: list[Item]


class Nested(BaseModel):
    groups: list[list[Item]]


class Scripted:
    """Writes item ``i`` of every list as ``n{i}``/``c{i}``/``j{i}`` up to ``distinct`` items, then repeats
    the last one; records each canvas."""

    def __init__(self, distinct: int) -> None:
        self.tok = Tokenizer.from_dir(BUNDLED)
        self.distinct = distinct
        self.canvases: list[str] = []

    def require_tokenizer(self) -> Tokenizer:
        return self.tok

    def infill(self, text: str, *, allowed_tokens: Any, options: Any = None, max_auto_length: int = 16) -> Any:
        self.canvases.append(text)
        i = min(text.split("\n", 1)[1].count('{"name": "n'), self.distinct - 1)  # items already written
        return SimpleNamespace(fills=[f"n{i}", f"c{i}", f"j{i}"][: len(allowed_tokens)])

    def choose(self, prompt: str, choices: list[str], **_: Any) -> Any:
        return SimpleNamespace(index=0)


def test_a_list_is_written_item_by_item_and_ends_at_the_first_repeated_item() -> None:
    fake = Scripted(distinct=2)
    res = fill_schema_result(fake, "two people", Items, max_items=5)  # type: ignore[arg-type]
    assert res.value == Items(items=[Item(name="n0", city="c0", job="j0"), Item(name="n1", city="c1", job="j1")])
    assert res.fills == ["n0", "c0", "j0", "n1", "c1", "j1"]  # the repeated third item's fills are dropped
    # one infill call per item, each after the items before it with the list closed behind it
    assert fake.canvases == [
        'two people\n{"items": [{"name": "[MASK:auto]", "city": "[MASK:auto]", "job": "[MASK:auto]"}]}',
        'two people\n{"items": [{"name": "n0", "city": "c0", "job": "j0"}, '
        '{"name": "[MASK:auto]", "city": "[MASK:auto]", "job": "[MASK:auto]"}]}',
        'two people\n{"items": [{"name": "n0", "city": "c0", "job": "j0"}, {"name": "n1", "city": "c1", "job": "j1"}, '
        '{"name": "[MASK:auto]", "city": "[MASK:auto]", "job": "[MASK:auto]"}]}',
    ]


def test_nested_lists_cost_one_small_infill_per_item_written() -> None:
    from llada_sdk.text.infill import MAX_AUTO_SPANS

    fake = Scripted(distinct=100)
    res = fill_schema_result(fake, "x", Nested, max_items=3)  # type: ignore[arg-type]
    assert [len(g) for g in res.value.groups] == [3, 3, 3]  # every list at its cap: nothing repeated
    assert len(fake.canvases) == 9  # one call per item written, not one call holding all 27 values
    assert all(c.count("[MASK:auto]") <= MAX_AUTO_SPANS for c in fake.canvases)
    fake = Scripted(distinct=1)  # each list ends at its second item (a repeat): 2 calls per inner list
    res = fill_schema_result(fake, "x", Nested, max_items=3)  # type: ignore[arg-type]
    assert [len(g) for g in res.value.groups] == [1] and len(fake.canvases) == 2 + 2


def test_a_run_of_scalar_fields_is_split_at_the_auto_span_limit() -> None:
    from llada_sdk.text.infill import MAX_AUTO_SPANS

    fields = {f"f{i}": (str, ...) for i in range(MAX_AUTO_SPANS + 2)}
    wide = __import__("pydantic").create_model("Wide", **fields)
    fake = RandomLLM(0)
    res = fill_schema_result(fake, "x", wide)  # type: ignore[arg-type]
    assert [c.count("[MASK:auto]") for c in fake.canvases] == [MAX_AUTO_SPANS, 2]
    assert fake.canvases[1].endswith(', "f5": "[MASK:auto]"}') and '"f3": "' in fake.canvases[1]
    assert '"f4": "", "f5": ""}' in fake.canvases[0]  # fields not written yet stand as placeholders
    assert isinstance(res.value, wide)


@pytest.mark.slow
def test_the_bundled_model_lists_people_in_bounded_calls(bundled: Any) -> None:
    prompt = "Zapur lives in Duskmere and works as a weaver. Rotu lives in Kelso and works as a farmer."
    res = fill_schema_result(bundled, prompt, Items)
    assert 1 <= len(res.value.items) <= 3  # was []: the likelihood of the text always preferred no item
    assert {i.city for i in res.value.items} <= {"Duskmere", "Kelso"}
