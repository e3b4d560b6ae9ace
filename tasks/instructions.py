"""Verifiable instructions (IFEval-style): a constraint a prompt states and a program checks.

One interface: a `Constraint` has the sentence appended to a prompt (`instruction`), a way to make an
answer follow it (`apply`, used to build the sample's instruction set) and a check (`followed`) that
needs no judge. Words are counted by the language registry, so a length constraint means the same in
every language. Adding a constraint is one class here plus a line in `CONSTRAINTS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.languages.registry import words


@dataclass(frozen=True)
class Constraint:
    name: str

    def instruction(self) -> str:
        raise NotImplementedError

    def apply(self, answer: str, lang: str) -> str:
        raise NotImplementedError

    def followed(self, response: str, lang: str) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class Case(Constraint):
    """The whole answer in capital letters, or in lowercase."""

    upper: bool = True

    def instruction(self) -> str:
        return f"Answer in {'capital' if self.upper else 'lowercase'} letters only."

    def apply(self, answer: str, lang: str) -> str:
        return answer.upper() if self.upper else answer.lower()

    def followed(self, response: str, lang: str) -> bool:
        return any(c.isalpha() for c in response) and response == self.apply(response, lang)


@dataclass(frozen=True)
class MaxWords(Constraint):
    limit: int = 6

    def instruction(self) -> str:
        return f"Answer in at most {self.limit} words."

    def apply(self, answer: str, lang: str) -> str:
        kept = words(answer, lang)[: self.limit]
        # Cut the answer after its last kept word (the registry's words keep the text's spelling).
        end = 0
        for word in kept:
            end = answer.index(word, end) + len(word)
        return answer[:end].rstrip(" ,;:") + "."

    def followed(self, response: str, lang: str) -> bool:
        return 0 < len([w for w in words(response, lang) if any(c.isalnum() for c in w)]) <= self.limit


@dataclass(frozen=True)
class Phrase(Constraint):
    """The answer starts or ends with a given phrase."""

    phrase: str = "Done."
    at_end: bool = True

    def instruction(self) -> str:
        return f'{"End" if self.at_end else "Start"} your answer with "{self.phrase}"'

    def apply(self, answer: str, lang: str) -> str:
        return f"{answer} {self.phrase}" if self.at_end else f"{self.phrase} {answer}"

    def followed(self, response: str, lang: str) -> bool:
        text = response.strip()
        return text.endswith(self.phrase) if self.at_end else text.startswith(self.phrase)


@dataclass(frozen=True)
class Quoted(Constraint):
    def instruction(self) -> str:
        return "Wrap your whole answer in double quotation marks."

    def apply(self, answer: str, lang: str) -> str:
        return f'"{answer}"'

    def followed(self, response: str, lang: str) -> bool:
        text = response.strip()
        return len(text) > 2 and text[0] == '"' and text[-1] == '"'


CONSTRAINTS: tuple[Constraint, ...] = (
    Case("uppercase", upper=True), Case("lowercase", upper=False), MaxWords("max_words"),
    Phrase("ends_with", "Done.", at_end=True), Phrase("starts_with", "Answer:", at_end=False), Quoted("quoted"),
)  # fmt: skip
BY_NAME = {c.name: c for c in CONSTRAINTS}


@dataclass(frozen=True)
class InstructionPrompt:
    """A prompt whose response is checked: the question, then each constraint's sentence."""

    key: str
    question: str
    constraints: tuple[str, ...]
    lang: str = "en"

    def text(self) -> str:
        return " ".join([self.question, *(BY_NAME[c].instruction() for c in self.constraints)])

    def check(self, response: str) -> dict[str, bool]:
        """{constraint name: followed}."""
        return {c: BY_NAME[c].followed(response, self.lang) for c in self.constraints}

    def answer(self, plain: str) -> str:
        """The plain answer made to follow every constraint (the sample's reference answers)."""
        for c in self.constraints:
            plain = BY_NAME[c].apply(plain, self.lang)
        return plain
