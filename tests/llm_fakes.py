"""A scriptable fake LLM for the judge's tests: it reads the passages the judge rendered and answers in
the format asked (yes/no log-probabilities, ``[id] grade`` lines, or ``[2] > [1]`` orders), from a
relevance the test gives per passage text. ``answer`` overrides the text for malformed-output tests.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
from collections.abc import Callable, Sequence

from rerank_core.llm import LLM, ChatMessage, LLMResponse, TokenLogprob

PASSAGE = re.compile(r'<passage id="(\d+)">\n(.*?)\n</passage>', re.S)


class FakeJudgeLLM(LLM):
    """Answers like a perfect judge whose relevance of a passage is ``relevance(text)`` in [0, 1]."""

    def __init__(
        self,
        relevance: Callable[[str], float],
        *,
        logprobs: bool = True,
        blocking: bool = True,
        answer: Callable[[str, list[tuple[int, str]], int], str | None] | None = None,
        delay: float = 0.0,
        report_tokens: bool = True,
        max_grade: int = 3,
    ) -> None:
        self.relevance = relevance
        self.supports_logprobs = logprobs
        self.blocking = blocking
        self.answer = answer
        self.delay = delay
        self.report_tokens = report_tokens
        self.max_grade = max_grade
        self.calls: list[list[ChatMessage]] = []
        self.active = 0
        self.peak = 0
        self._lock = threading.Lock()

    @property
    def fingerprint(self) -> str:
        return "fake-judge"

    def _respond(self, messages: Sequence[ChatMessage], top_logprobs: int) -> LLMResponse:
        user = messages[-1].content
        passages = [(int(i), t) for i, t in PASSAGE.findall(user)]
        with self._lock:
            self.calls.append(list(messages))
        text = None if self.answer is None else self.answer(user, passages, top_logprobs)
        tops = None
        if text is None:
            if top_logprobs:
                p = min(max(self.relevance(passages[0][1]), 1e-6), 1 - 1e-6)
                text = "yes" if p >= 0.5 else "no"
                tops = (TokenLogprob("yes", math.log(p)), TokenLogprob("no", math.log(1 - p)))
            elif "grade" in user[-400:]:
                text = "\n".join(f"[{i}] {round(self.relevance(t) * self.max_grade)}" for i, t in passages)
            else:
                ranked = sorted(passages, key=lambda p: -self.relevance(p[1]))
                text = " > ".join(f"[{i}]" for i, _ in ranked)
        elif top_logprobs and self.supports_logprobs:
            tops = ()
        tokens = sum(len(m.content.split()) for m in messages)
        return LLMResponse(
            text,
            tops,
            prompt_tokens=tokens if self.report_tokens else None,
            completion_tokens=len(text.split()) if self.report_tokens else None,
        )

    def _enter(self) -> None:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)

    def _leave(self) -> None:
        with self._lock:
            self.active -= 1

    def complete(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, top_logprobs: int = 0
    ) -> LLMResponse:
        self._enter()
        try:
            if self.delay:
                time.sleep(self.delay)
            return self._respond(messages, top_logprobs)
        finally:
            self._leave()

    async def acomplete(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, top_logprobs: int = 0
    ) -> LLMResponse:
        if self.blocking:
            return await super().acomplete(messages, max_tokens=max_tokens, top_logprobs=top_logprobs)
        self._enter()
        try:
            await asyncio.sleep(self.delay)
            return self._respond(messages, top_logprobs)
        finally:
            self._leave()


def grade_of(text: str) -> float:
    """Relevance written into a test passage as ``rel=0.8`` (0 when absent)."""
    m = re.search(r"rel=([\d.]+)", text)
    return float(m.group(1)) if m else 0.0
