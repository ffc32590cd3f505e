"""A seeded synthetic corpus for the bundled model: license-clean, self-checking, regenerated in < 1 s.

What it holds:
- a fictional knowledge base: people with a city, a job and a unique parent, stated in *forward*
  templates only (the person's name always comes first or right after "The parent of");
- sequences: ``count: n n+1 ...``, day, month and letter windows;
- chat turns (question/answer pairs) for the SFT objective.

The held-out split is kept out of training by construction: counting windows whose start value is
held out (``start % 10 == HELD_OUT_COUNT_DIGIT``) are never generated for training, and the chat Q&A of
held-out people (``index % 8 == 7``) is never generated for training. Knowledge-base facts are trained
(the evaluation of them is recall, in another direction for the reversal task).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

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


@dataclass
class Corpus:
    """Training documents and chat pairs, plus the people they talk about."""

    people: list[Person]
    docs: list[str]
    chat: list[tuple[str, str]]
    held_out_chat: list[tuple[str, str]]


def build_corpus(seed: int = 0, n_people: int = 40) -> Corpus:
    """Every training document and chat pair, deterministically from ``seed``."""
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
    return Corpus(ps, docs, chat, held)


def tokenizer_training_text(corpus: Corpus) -> list[str]:
    return corpus.docs + [q for q, _ in corpus.chat] + [a for _, a in corpus.chat]


def shuffled(items: list[str], seed: int) -> list[str]:
    out = list(items)
    random.Random(seed).shuffle(out)
    return out
