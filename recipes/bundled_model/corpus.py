"""A seeded synthetic corpus for the bundled model: license-clean, self-checking, regenerated in < 1 s.

What it holds:
- a fictional knowledge base: people with a city, a job and a unique parent, stated in *forward*
  templates only (the person's name always comes first or right after "The parent of");
- sequences: ``count: n n+1 ...``, day, month and letter windows;
- chat turns (question/answer pairs) for the SFT objective;
- tool use, in the one format of ``llada_sdk.text.tools``: conversations where the system message offers
  the knowledge-base ``lookup`` tool (``KB_LOOKUP_TOOL``), the assistant answers a question about a
  person with a tool call, then answers from the tool's result (``tool_conversations``);
- extraction: a sentence about a person, a newline, then its facts as JSON (``extraction_doc``) --
  what ``fill_schema`` puts on the canvas for ``{"name", "city", "job"}``.

Tool-use and extraction rows are about *synthetic* people (``synthetic_people``: fresh names, never
people of the knowledge base), so the model learns to copy a name into the call and a fact out of
the tool result, not to recall; the evaluation asks about the held-out knowledge-base people.

The held-out split is kept out of training by construction: counting windows whose start value is
held out (``start % 10 == HELD_OUT_COUNT_DIGIT``) are never generated for training, and the chat Q&A of
held-out people (``index % 8 == 7``) is never generated for training. Knowledge-base facts are trained
(the evaluation of them is recall, in another direction for the reversal task).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from llada_sdk.text.tools import assistant_message, render_tool_call, tool_result_message, with_tools

CITIES = [
    "Tessaly",
    "Morrow",
    "Quillby",
    "Vantor",
    "Ashgrove",
    "Pellin",
    "Duskmere",
    "Orlan",
    "Brightwater",
    "Kelso",
    "Marrowind",
    "Sunhollow",
]
JOBS = [
    "teacher",
    "baker",
    "pilot",
    "farmer",
    "doctor",
    "painter",
    "sailor",
    "miner",
    "writer",
    "weaver",
    "guard",
    "singer",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
LETTERS = [chr(c) for c in range(ord("A"), ord("Z") + 1)]
_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "st", "tr"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ou"]
_CODAS = ["", "", "n", "r", "l", "s", "th"]

HELD_OUT_COUNT_DIGIT = 3
COUNT_MAX_START = 200


@dataclass(frozen=True)
class Person:
    name: str
    city: str
    job: str
    parent: str
    held_out_chat: bool


def _name(rng: random.Random) -> str:
    syllables = rng.choice([2, 2, 3])
    word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)) + rng.choice(_CODAS)
    return word.capitalize()


def people(seed: int = 0, n: int = 40) -> list[Person]:
    """``n`` people with distinct names and distinct parents (parents are not people themselves)."""
    rng = random.Random(seed)
    names: list[str] = []
    while len(names) < 2 * n:
        candidate = _name(rng)
        if candidate not in names and 4 <= len(candidate) <= 10:
            names.append(candidate)
    return [
        Person(names[i], rng.choice(CITIES), rng.choice(JOBS), names[n + i], held_out_chat=i % 8 == 7) for i in range(n)
    ]


def kb_docs(p: Person) -> list[str]:
    return [
        f"{p.name} lives in {p.city}.",
        f"{p.name} works as a {p.job}.",
        f"{p.name} lives in {p.city} and works as a {p.job}.",
        f"{p.name}'s parent is {p.parent}.",
        f"The parent of {p.name} is {p.parent}.",
    ]


def count_doc(start: int, length: int) -> str:
    return "count: " + " ".join(str(start + i) for i in range(length))


def cycle_doc(label: str, items: list[str], start: int, length: int) -> str:
    return f"{label}: " + " ".join(items[(start + i) % len(items)] for i in range(length))


def is_held_out_count(start: int) -> bool:
    return start % 10 == HELD_OUT_COUNT_DIGIT


def kb_chat(p: Person) -> list[tuple[str, str]]:
    return [
        (f"Where does {p.name} live?", f"{p.name} lives in {p.city}."),
        (f"What does {p.name} do?", f"{p.name} works as a {p.job}."),
        (f"Who is {p.name}'s parent?", f"{p.name}'s parent is {p.parent}."),
    ]


def sequence_chat() -> list[tuple[str, str]]:
    out = [(f"What day comes after {d}?", f"The day after {d} is {DAYS[(i + 1) % 7]}.") for i, d in enumerate(DAYS)]
    out += [
        (f"What month comes after {m}?", f"The month after {m} is {MONTHS[(i + 1) % 12]}.")
        for i, m in enumerate(MONTHS)
    ]
    out += [
        (f"Count from {a} to {a + k}.", " ".join(str(a + i) for i in range(k + 1)))
        for a in range(0, 30)
        if not is_held_out_count(a)
        for k in (2, 3, 4)
    ]
    return out


KB_LOOKUP_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look up a person's city, job and parent.",
        "parameters": {"properties": {"name": {"type": "string"}}, "required": ["name"], "type": "object"},
    },
}
"""The knowledge-base tool of the tool-use rows, in OpenAI format (what LangChain's
``convert_to_openai_tool`` makes of ``def lookup(name: str) -> str`` with this docstring)."""

N_SYNTHETIC = 600
EXTRACTION_TEMPLATES = (
    "{name} lives in {city} and works as a {job}.",
    "{name} works as a {job} and lives in {city}.",
    "{name} is a {job} who lives in {city}.",
)
"""Sentences of the extraction rows (and of the ``extract_person`` evaluation)."""


def synthetic_people(seed: int = 0, n: int = N_SYNTHETIC, exclude: set[str] | None = None) -> list[Person]:
    """``n`` people with fresh names (none in ``exclude``), for the tool-use and extraction rows."""
    rng = random.Random(f"synthetic-{seed}")
    taken = set(exclude or ())
    out: list[Person] = []
    while len(out) < n:
        name, parent = _name(rng), _name(rng)
        if name in taken or parent in taken or name == parent or not 4 <= len(name) <= 10:
            continue
        taken.add(name)
        out.append(Person(name, rng.choice(CITIES), rng.choice(JOBS), parent, held_out_chat=False))
    return out


def lookup_result(p: Person) -> str:
    """What the knowledge-base tool returns for a person: ``city: C, job: J, parent: P``."""
    return f"city: {p.city}, job: {p.job}, parent: {p.parent}"


def tool_conversations(p: Person) -> list[tuple[list[dict[str, str]], str]]:
    """``(messages, answer)`` pairs of tool use about ``p``: the call, then the answer from the result."""
    out: list[tuple[list[dict[str, str]], str]] = []
    call = [("lookup", {"name": p.name})]
    for q, a in kb_chat(p):
        asked = with_tools([{"role": "user", "content": q}], [KB_LOOKUP_TOOL])
        out.append((asked, render_tool_call("lookup", {"name": p.name})))
        answered = [*asked, assistant_message("", call), tool_result_message(lookup_result(p))]
        out.append((answered, a))
    return out


def tool_direct_conversations() -> list[tuple[list[dict[str, str]], str]]:
    """Questions the tool does not help with, asked with the tool offered: answered directly."""
    return [
        (with_tools([{"role": "user", "content": q}], [KB_LOOKUP_TOOL]), a)
        for q, a in sequence_chat()
        if q.startswith(("What day", "What month"))
    ]


def extraction_json(p: Person) -> str:
    """The JSON object of the extraction rows: ``{"name": ..., "city": ..., "job": ...}``."""
    return json.dumps({"name": p.name, "city": p.city, "job": p.job}, ensure_ascii=False)


def extraction_sentence(p: Person, template: int) -> str:
    """``EXTRACTION_TEMPLATES[template]`` about ``p`` (``X lives in C and works as a J.`` ...)."""
    return EXTRACTION_TEMPLATES[template].format(name=p.name, city=p.city, job=p.job)


def extraction_doc(p: Person, template: int) -> str:
    """A sentence about ``p``, a newline, its facts as JSON (the ``fill_schema`` canvas, filled)."""
    return f"{extraction_sentence(p, template)}\n{extraction_json(p)}"


GREETING_ANSWER = "Hello! Ask me about a person, a day or a month."
UNKNOWN_ANSWER = "I do not know that. Ask me about a person, a day or a month."
_GREETINGS = ("Hello", "Hi", "Hey", "Good morning", "Good evening", "Hi there", "Hello there", "Greetings")
_UNKNOWN = (
    "Tell me a joke.",
    "Tell me a joke about dogs.",
    "Tell me a story.",
    "Write a poem about the sea.",
    "Write a story about a dog.",
    "What is your name?",
    "Who are you?",
    "What is the weather today?",
    "What is the capital of France?",
    "What is 5 + 7?",
    "What time is it?",
    "Can you help me?",
    "Explain gravity.",
    "Write a haiku.",
    "What is your favorite color?",
    "Give me a recipe.",
    "Translate this to French.",
    "Summarize this text.",
)


def smalltalk_chat() -> list[tuple[str, str]]:
    """Greetings and questions outside the knowledge base, so that no chat answer is empty."""
    out: list[tuple[str, str]] = []
    for g in _GREETINGS:
        for form in (g, g + "!", g.lower(), g + ", how are you?"):
            out.append((form, GREETING_ANSWER))
    out += [(q, GREETING_ANSWER) for q in ("How are you?", "how are you", "How are you doing?")]
    out += [(q, UNKNOWN_ANSWER) for q in _UNKNOWN]
    return out


@dataclass
class Corpus:
    """Training documents and chat pairs, plus the people they talk about.

    ``conversations`` are multi-message SFT examples ``(messages, answer)`` (tool use); ``extraction``
    holds the extraction documents (pre-training rows, kept apart so their share can be set).
    """

    people: list[Person]
    docs: list[str]
    chat: list[tuple[str, str]]
    held_out_chat: list[tuple[str, str]]
    conversations: list[tuple[list[dict[str, str]], str]] = field(default_factory=list)
    extraction: list[str] = field(default_factory=list)
    synthetic: list[Person] = field(default_factory=list)


def build_corpus(seed: int = 0, n_people: int = 40, tools: bool = False) -> Corpus:
    """Every training document and chat pair, deterministically from ``seed``.

    ``tools``: also the tool-use conversations, the extraction documents and the small-talk chat
    (the corpus of ``TrainConfig(tools=True)``); without it the corpus is the shipped model's.
    """
    ps = people(seed, n_people)
    docs: list[str] = []
    for p in ps:
        docs += kb_docs(p)
    for start in range(COUNT_MAX_START):
        if not is_held_out_count(start):
            docs += [count_doc(start, k) for k in range(3, 7)]
    for label, items in (("days", DAYS), ("months", MONTHS), ("letters", LETTERS)):
        docs += [cycle_doc(label, items, s, k) for s in range(len(items)) for k in range(3, 6)]
    chat = [qa for p in ps if not p.held_out_chat for qa in kb_chat(p)] + sequence_chat()
    held = [qa for p in ps if p.held_out_chat for qa in kb_chat(p)]
    if not tools:
        return Corpus(ps, docs, chat, held)
    chat += smalltalk_chat()
    synth = synthetic_people(seed, exclude={n for p in ps for n in (p.name, p.parent)})
    conversations = [c for p in synth for c in tool_conversations(p)] + tool_direct_conversations()
    extraction = [extraction_doc(p, i % len(EXTRACTION_TEMPLATES)) for i, p in enumerate(synth)]
    return Corpus(ps, docs, chat, held, conversations, extraction, synth)


def tokenizer_training_text(corpus: Corpus) -> list[str]:
    texts = corpus.docs + [q for q, _ in corpus.chat] + [a for _, a in corpus.chat] + corpus.extraction
    for messages, answer in corpus.conversations:
        # the role names are template text: learned as words so a header stays short
        texts += [m["content"] for m in messages] + [answer, "assistant"] + [m["role"] for m in messages]
    return texts


def shuffled(items: list[str], seed: int) -> list[str]:
    out = list(items)
    random.Random(seed).shuffle(out)
    return out
