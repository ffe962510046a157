"""LLM-as-judge back end: any :class:`~rerank_core.llm.LLM` rates (pointwise) or orders (listwise) the
candidates of each query.

Modes and what the scores mean (``scoring`` says which one a back end uses; it is in the fingerprint):

- ``pointwise`` with log-probabilities (``scoring="logprobs"``): one prompt per candidate, one generated
  token; the score is P(yes) / (P(yes) + P(no)) from the first token's top log-probabilities.
  ``score_kind == "probability"``. With an LLM that batches (``llm.supports_batching``, e.g. the local
  transformers model) the prompts of every query scored together go through one
  :meth:`~rerank_core.llm.LLM.complete_many` call: as few forward passes as the model's
  ``max_batch_tokens`` allows (20 candidates of a few hundred tokens: one pass). Otherwise one
  ``complete`` call per candidate, ``max_concurrency`` at a time.
- ``pointwise`` from text (``scoring="graded"``): several candidates per call (``batch_size``, fewer when
  the context window would overflow); the model answers ``[id] grade`` on a 0..``max_grade`` scale and the
  score is grade / max_grade in [0, 1]. Candidates a batch answer misses are asked again one per call.
  ``score_kind == "probability"`` (a [0, 1] grade fraction: squashing it again is refused).
- ``listwise`` (``scoring="listwise"``): RankGPT's sliding window, from the back of the list to the front
  (``window_size`` candidates per call, moved by ``step``), over the candidates in the order given (the
  first stage's). The score of the candidate ranked ``r``-th (0-based) of ``n`` is ``(n - r) / n``;
  ``score_kind == "rank"``: only the order means something, and scores are relative to the query's
  candidate set, so a listwise judge is not ``cacheable``: ``Reranker(..., cache=...)`` refuses it
  (a cached rank score from one candidate set would be mixed with those of another).

Instructions (``Reranker(instruction=...)``, per call too): the judge takes one in its prompt, stated as the
task's definition of relevance before the query (:data:`~rerank_core.llm.prompts.INSTRUCTION_LINE`,
neutralized like the query); without one the prompts are the templates' as they are. The judge's
fingerprint is the same either way: the Reranker adds the instruction to the fingerprint it keys the cache
and the response with.

Hostile text: query, instruction and passages go through :func:`~rerank_core.llm.neutralize`, which
defuses control tokens (found in an NFKC, invisible-characters-removed copy; ordinary text is sent
unchanged) and the LLM's own special tokens when it lists them (``llm.special_tokens``, as
:class:`~rerank_core.llm.transformers_llm.TransformersLLM` does).

Answers are held to the ``max_tokens`` each call asks for (1 for a yes/no, ``8 + 8 * passages`` graded,
``8 + 6 * passages`` listwise): an LLM that returns more (an adapter or endpoint that ignores the limit) has
its answer cut to the longest prefix of at most ``max_tokens`` tokens (``LLM.count_tokens``: the local
model's tokenizer, or the 4-characters-a-token estimate) before it is parsed, counted in ``llm_overlong``;
an answer whose reported ``completion_tokens`` is within the budget is trusted unless its text is over 32
characters a token. The token usage still counts what the LLM reported (or all of the text).

Nothing the LLM writes can crash the judge: every answer goes through :mod:`rerank_core.llm.parsing`; an
answer that gives nothing usable is counted (``llm_unparsed`` in the usage) and, by default
(``on_parse_error="lowest"``), scores 0 (pointwise) or keeps the window's previous order (listwise);
``on_parse_error="raise"`` raises :class:`~rerank_core.errors.NonRetryableBackendError` instead.

Usage, per query, in ``RerankResponse.usage``: ``llm_calls`` (model calls: requests or forward passes; a
batched forward pass shared by several queries counts once in each query it served), ``llm_prompts``
(prompts sent; equal to ``llm_calls`` without batching), ``llm_prompt_tokens``,
``llm_completion_tokens``, ``llm_unparsed``, ``llm_text_fallback`` (logprobs mode: answers without a usable
yes/no among the log-probabilities, scored 1 or 0 from the yes/no in their text), ``llm_estimated_tokens``
(calls whose token counts the model did not report and were estimated with ``LLM.count_tokens``),
``llm_truncated`` (passages shortened to fit the context window or ``max_passage_chars``), ``llm_overlong``
(answers longer than the call's ``max_tokens``, cut to it before parsing). It is computed
per call of ``score_groups``, never kept on the back end, so concurrent calls each get their own.

Each query's work is written once as a generator that yields the LLM calls it needs next (a list: they
may run at once) and receives their answers; a sync driver (a bounded thread pool) and an async driver
(a bounded semaphore) run the same generators, so the two paths cannot drift apart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections import Counter
from collections.abc import Generator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from rerank_core.backends.base import Backend, GroupScores
from rerank_core.errors import ConfigurationError, NonRetryableBackendError, RerankError
from rerank_core.llm.base import LLM, ChatMessage, LLMBatchResponse, LLMResponse
from rerank_core.llm.parsing import parse_grades, parse_permutation, parse_yes_no, yes_probability
from rerank_core.llm.prompts import DEFAULT_PROMPTS, JudgePrompts
from rerank_core.remote.limits import AsyncConcurrencyLimit, ConcurrencyLimit
from rerank_core.types import ScoreKind

__all__ = ["USAGE_KEYS", "LLMJudgeBackend"]

USAGE_KEYS = (
    "llm_calls",
    "llm_prompts",
    "llm_prompt_tokens",
    "llm_completion_tokens",
    "llm_unparsed",
    "llm_text_fallback",
    "llm_estimated_tokens",
    "llm_truncated",
    "llm_overlong",
)
_MODES = ("pointwise", "listwise")
_SCORINGS = ("auto", "logprobs", "graded")
_ON_PARSE_ERROR = ("lowest", "raise")


@dataclass(frozen=True)
class _Call:
    messages: list[ChatMessage]
    max_tokens: int
    top_logprobs: int = 0


_Procedure = Generator[list[_Call], list[LLMResponse], list[float]]


def _positive_int(value: object, argument: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(argument, f"must be an integer >= {minimum}, got {value!r}")
    return value


class LLMJudgeBackend(Backend):
    """Relevance from an LLM judge, pointwise or listwise.

    Args:
        llm: the model, any :class:`~rerank_core.llm.LLM` (local transformers, OpenAI-compatible HTTP,
            LangChain or LlamaIndex adapters).
        mode: ``"pointwise"`` (rate each candidate) or ``"listwise"`` (order sliding windows).
        scoring: pointwise only: ``"logprobs"`` (P(yes), one prompt per candidate, batched into few
            forward passes when ``llm.supports_batching``), ``"graded"`` (text grades,
            ``batch_size`` candidates per call) or ``"auto"`` (logprobs when ``llm.supports_logprobs``).
        max_grade: top of the graded scale (0..max_grade).
        batch_size: most candidates per graded call.
        window_size / step: listwise window (candidates per call) and how far it moves (RankGPT: 20 / 10).
        prompts: :class:`~rerank_core.llm.JudgePrompts` (editable templates).
        max_passage_chars: cut passages longer than this (counted in ``llm_truncated``); ``None``: only
            cut what the context window forces.
        max_concurrency: LLM calls in flight at once for this back end (default 1 for in-process models,
            4 otherwise).
        top_logprobs: alternatives asked for the first token in logprobs mode.
        on_parse_error: ``"lowest"`` (score 0 / keep the window order, counted) or ``"raise"``.

    An instruction (``Reranker(..., instruction=...)``) reaches the prompt: see the module's docstring.
    """

    instruction_support = "the judge's prompt"

    def __init__(
        self,
        llm: LLM,
        *,
        mode: str = "pointwise",
        scoring: str = "auto",
        max_grade: int = 3,
        batch_size: int = 5,
        window_size: int = 20,
        step: int = 10,
        prompts: JudgePrompts | None = None,
        max_passage_chars: int | None = None,
        max_concurrency: int | None = None,
        top_logprobs: int = 20,
        on_parse_error: str = "lowest",
    ) -> None:
        super().__init__()
        if not isinstance(llm, LLM):
            raise ConfigurationError(
                "llm",
                f"must be a rerank_core.llm.LLM (wrap framework models with their adapter), "
                f"got {type(llm).__name__}",
            )
        if mode not in _MODES:
            raise ConfigurationError("mode", f"must be one of {', '.join(_MODES)}, got {mode!r}")
        if scoring not in _SCORINGS:
            raise ConfigurationError("scoring", f"must be one of {', '.join(_SCORINGS)}, got {scoring!r}")
        if mode == "listwise" and scoring != "auto":
            raise ConfigurationError("scoring", "only applies to mode='pointwise'")
        if on_parse_error not in _ON_PARSE_ERROR:
            raise ConfigurationError(
                "on_parse_error", f"must be one of {', '.join(_ON_PARSE_ERROR)}, got {on_parse_error!r}"
            )
        self.llm = llm
        self.mode = mode
        if mode == "listwise":
            self.scoring = "listwise"
        elif scoring == "auto":
            self.scoring = "logprobs" if llm.supports_logprobs else "graded"
        else:
            self.scoring = scoring
        if self.scoring == "logprobs" and llm.supports_logprobs is False:
            raise ConfigurationError(
                "scoring", f"'logprobs' needs an LLM that returns log-probabilities; {llm!r} does not"
            )
        self.max_grade = _positive_int(max_grade, "max_grade")
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.window_size = _positive_int(window_size, "window_size", 2)
        self.step = _positive_int(step, "step")
        if self.step >= self.window_size:
            raise ConfigurationError(
                "step",
                f"must be < window_size ({self.window_size}) so windows overlap, got {step}",
            )
        if prompts is None:
            prompts = DEFAULT_PROMPTS
        if not isinstance(prompts, JudgePrompts):
            raise ConfigurationError("prompts", f"must be a JudgePrompts, got {type(prompts).__name__}")
        self.prompts = prompts
        if max_passage_chars is not None:
            _positive_int(max_passage_chars, "max_passage_chars", 16)
        self.max_passage_chars = max_passage_chars
        if max_concurrency is None:
            max_concurrency = 1 if llm.blocking else 4
        self.max_concurrency = _positive_int(max_concurrency, "max_concurrency")
        self.top_logprobs = _positive_int(top_logprobs, "top_logprobs")
        self.on_parse_error = on_parse_error
        self.blocking = llm.blocking
        self._sync_slots = ConcurrencyLimit(self.max_concurrency)
        self._async_slots = AsyncConcurrencyLimit(self.max_concurrency)

    # -- what the back end is --------------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        parts = [f"llm-judge:{self.scoring}", self.llm.fingerprint, f"prompts={self.prompts.fingerprint()}"]
        if self.scoring == "graded":
            parts.append(f"max_grade={self.max_grade}|batch={self.batch_size}")
        elif self.scoring == "listwise":
            parts.append(f"window={self.window_size}|step={self.step}")
        parts.append(f"max_chars={self.max_passage_chars}")
        return "|".join(parts)

    @property
    def score_kind(self) -> ScoreKind:
        return "rank" if self.scoring == "listwise" else "probability"

    @property
    def cacheable(self) -> bool:  # type: ignore[override]
        """``False`` for the listwise judge: its rank scores depend on the whole candidate set."""
        return self.scoring != "listwise"

    def peek_score_kind(self) -> ScoreKind | None:
        return self.score_kind

    @property
    def _batched(self) -> bool:
        return self.scoring == "logprobs" and bool(getattr(self.llm, "supports_batching", False))

    # -- scoring ---------------------------------------------------------------------------------

    def score(self, query: str, texts: Sequence[str], *, instruction: str | None = None) -> GroupScores:
        """One query's scores and usage (several queries: :meth:`score_groups`, which batches across them).
        ``instruction`` (each scoring method): the task's definition of relevance, in the prompt; ``None``:
        the prompts as they are."""
        return self.score_groups([(query, texts)], instruction=instruction)[0]

    async def ascore(
        self, query: str, texts: Sequence[str], *, instruction: str | None = None
    ) -> GroupScores:
        return (await self.ascore_groups([(query, texts)], instruction=instruction))[0]

    def score_groups(
        self, groups: Sequence[tuple[str, Sequence[str]]], *, instruction: str | None = None
    ) -> list[GroupScores]:
        usages = [Counter({k: 0 for k in USAGE_KEYS}) for _ in groups]
        procs = [
            self._procedure(q, list(texts), u, instruction)
            for (q, texts), u in zip(groups, usages, strict=True)
        ]
        drive = self._drive_batched if self._batched else self._drive_sync
        results = drive(procs, usages)
        return [GroupScores(s, dict(u)) for s, u in zip(results, usages, strict=True)]

    async def ascore_groups(
        self, groups: Sequence[tuple[str, Sequence[str]]], *, instruction: str | None = None
    ) -> list[GroupScores]:
        sync = functools.partial(self.score_groups, groups, instruction=instruction)
        if self.blocking:
            return await self.run_blocking(sync)
        if self._batched:
            return await asyncio.to_thread(sync)
        usages = [Counter({k: 0 for k in USAGE_KEYS}) for _ in groups]
        procs = [
            self._procedure(q, list(texts), u, instruction)
            for (q, texts), u in zip(groups, usages, strict=True)
        ]
        results = await asyncio.gather(
            *(self._drive_one_async(p, u) for p, u in zip(procs, usages, strict=True))
        )
        return [GroupScores(s, dict(u)) for s, u in zip(results, usages, strict=True)]

    # -- the procedures (one generator per query) ------------------------------------------------------

    def _procedure(
        self, query: str, texts: list[str], usage: Counter[str], instruction: str | None = None
    ) -> _Procedure:
        # sent as given (neutralize rewrites only control tokens), so caps and token counts see that text
        texts = [self._cap(t, self.max_passage_chars, usage) for t in texts]
        if not texts:
            return self._empty()
        if self.scoring == "logprobs":
            return self._logprobs(query, texts, usage, instruction)
        if self.scoring == "graded":
            return self._graded(query, texts, usage, instruction)
        return self._listwise(query, texts, usage, instruction)

    @staticmethod
    def _empty() -> _Procedure:
        return []
        yield []  # pragma: no cover  (makes this a generator)

    def _cap(self, text: str, limit: int | None, usage: Counter[str]) -> str:
        if limit is not None and len(text) > limit:
            usage["llm_truncated"] += 1
            return text[:limit]
        return text

    def _fit(
        self,
        query: str,
        texts: list[str],
        max_tokens: int,
        usage: Counter[str],
        instruction: str | None = None,
    ) -> list[str]:
        """Shorten the passages evenly when one call's prompt would not fit the context window."""
        window = self.llm.context_window
        if window is None:
            return texts
        budget = window - max_tokens - self.llm.count_tokens(query) - 200 - 16 * len(texts)
        if instruction is not None:
            budget -= self.llm.count_tokens(instruction) + 16
        need = sum(self.llm.count_tokens(t) for t in texts)
        if need <= budget:
            return texts
        share = max(16, budget // max(1, len(texts)))
        out = []
        for t in texts:
            n = self.llm.count_tokens(t)
            if n > share:
                out.append(self._cap(t, max(16, len(t) * share // n), usage))
            else:
                out.append(t)
        return out

    @property
    def _special_tokens(self) -> tuple[str, ...]:
        """The LLM's own special tokens when it lists them (``llm.special_tokens``; none otherwise)."""
        tokens = getattr(self.llm, "special_tokens", None)
        if isinstance(tokens, str) or not isinstance(tokens, Sequence | set | frozenset):
            return ()
        return tuple(t for t in tokens if isinstance(t, str))

    def _unparsed(self, usage: Counter[str], what: str) -> None:
        usage["llm_unparsed"] += 1
        if self.on_parse_error == "raise":
            raise NonRetryableBackendError(f"unparseable LLM answer: {what}", backend=self.fingerprint)

    def _logprobs(
        self, query: str, texts: list[str], usage: Counter[str], instruction: str | None
    ) -> _Procedure:
        special = self._special_tokens
        calls = [
            _Call(
                self.prompts.yes_no_messages(query, t, special_tokens=special, instruction=instruction),
                max_tokens=1,
                top_logprobs=self.top_logprobs,
            )
            for t in (self._fit(query, [t], 1, usage, instruction)[0] for t in texts)
        ]
        answers = yield calls
        scores = []
        for answer in answers:
            p = yes_probability(answer.top_logprobs)
            if p is None:  # no yes/no among the alternatives (or none returned): read the text
                said = parse_yes_no(answer.text)
                if said is None:
                    self._unparsed(usage, f"no yes/no in {answer.text[:80]!r}")
                    p = 0.0
                else:
                    usage["llm_text_fallback"] += 1
                    p = 1.0 if said else 0.0
            scores.append(p)
        return scores

    def _graded_call(
        self, query: str, texts: list[str], usage: Counter[str], instruction: str | None
    ) -> _Call:
        max_tokens = 8 + 8 * len(texts)
        fitted = self._fit(query, texts, max_tokens, usage, instruction)
        messages = self.prompts.graded_messages(
            query, fitted, self.max_grade, special_tokens=self._special_tokens, instruction=instruction
        )
        return _Call(messages, max_tokens=max_tokens)

    def _graded(
        self, query: str, texts: list[str], usage: Counter[str], instruction: str | None
    ) -> _Procedure:
        batches = [
            list(range(i, min(i + self.batch_size, len(texts))))
            for i in range(0, len(texts), self.batch_size)
        ]
        answers = yield [self._graded_call(query, [texts[i] for i in b], usage, instruction) for b in batches]
        scores: dict[int, float] = {}
        for batch, answer in zip(batches, answers, strict=True):
            for pos, grade in parse_grades(answer.text, len(batch), self.max_grade).items():
                scores[batch[pos]] = grade
        missing = [i for i in range(len(texts)) if i not in scores]
        if missing and self.batch_size > 1:  # ask again, one passage per call
            answers = yield [self._graded_call(query, [texts[i]], usage, instruction) for i in missing]
            for i, answer in zip(missing, answers, strict=True):
                got = parse_grades(answer.text, 1, self.max_grade)
                if 0 in got:
                    scores[i] = got[0]
        for i in range(len(texts)):
            if i not in scores:
                self._unparsed(usage, f"no grade for passage {i}")
                scores[i] = 0.0
        return [scores[i] for i in range(len(texts))]

    def _listwise(
        self, query: str, texts: list[str], usage: Counter[str], instruction: str | None
    ) -> _Procedure:
        n = len(texts)
        order = list(range(n))
        special = self._special_tokens
        if n > 1:
            end = n
            while True:
                start = max(0, end - self.window_size)
                window = order[start:end]
                max_tokens = 8 + 6 * len(window)
                fitted = self._fit(query, [texts[i] for i in window], max_tokens, usage, instruction)
                messages = self.prompts.listwise_messages(
                    query, fitted, special_tokens=special, instruction=instruction
                )
                (answer,) = yield [_Call(messages, max_tokens=max_tokens)]
                perm = parse_permutation(answer.text, len(window))
                if perm.ranked == 0:
                    self._unparsed(usage, f"no passage identifiers in {answer.text[:80]!r}")
                order[start:end] = [window[p] for p in perm.order]
                if start == 0:
                    break
                end -= self.step
        scores = [0.0] * n
        for rank, i in enumerate(order):
            scores[i] = (n - rank) / n
        return scores

    # -- drivers ---------------------------------------------------------------------------------

    def _account(self, call: _Call, answer: LLMResponse, usage: Counter[str]) -> LLMResponse:
        answer = self._account_tokens(call, answer, usage)
        usage["llm_calls"] += 1
        return answer

    def _account_tokens(self, call: _Call, answer: LLMResponse, usage: Counter[str]) -> LLMResponse:
        """Count what ``answer`` cost, and return it held to ``call.max_tokens`` (what gets parsed)."""
        if not isinstance(answer, LLMResponse):
            raise NonRetryableBackendError(
                f"the LLM returned {type(answer).__name__}, not an LLMResponse", backend=self.fingerprint
            )
        usage["llm_prompts"] += 1
        prompt, completion = answer.prompt_tokens, answer.completion_tokens
        if prompt is None or completion is None:
            usage["llm_estimated_tokens"] += 1
        if prompt is None:
            prompt = sum(self.llm.count_tokens(m.content) for m in call.messages)
        if completion is None:
            completion = self.llm.count_tokens(answer.text)
        usage["llm_prompt_tokens"] += int(prompt)
        usage["llm_completion_tokens"] += int(completion)
        return self._within_budget(call, answer, usage)

    def _within_budget(self, call: _Call, answer: LLMResponse, usage: Counter[str]) -> LLMResponse:
        """``answer`` held to ``call.max_tokens``: kept when the LLM reports at most that many completion
        tokens (and the text is not implausibly long for them: 32 characters a token), or when
        ``llm.count_tokens`` finds at most that many; otherwise cut to the longest prefix that
        ``count_tokens`` finds within the budget, counted in ``llm_overlong``. So parsing never sees more
        than the budget, whatever the adapter returns (a 16,000-digit answer, an endless list)."""
        text, limit = answer.text, call.max_tokens
        reported = answer.completion_tokens
        if not text or (reported is not None and reported <= limit and len(text) <= 32 * limit):
            return answer
        if self.llm.count_tokens(text) <= limit:
            return answer
        usage["llm_overlong"] += 1
        text = text[: 64 * limit]  # no answer within budget is longer (64 characters a token)
        lo, hi = 0, len(text)  # the longest prefix that fits: text[:lo] fits, text[: hi + 1] does not
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.llm.count_tokens(text[:mid]) <= limit:
                lo = mid
            else:
                hi = mid - 1
        return dataclasses.replace(answer, text=text[:lo])

    def _complete(self, call: _Call) -> LLMResponse:
        with self._sync_slots:
            try:
                return self.llm.complete(
                    call.messages, max_tokens=call.max_tokens, top_logprobs=call.top_logprobs
                )
            except RerankError:
                raise
            except Exception as exc:
                raise NonRetryableBackendError(f"LLM call failed: {exc!r}", backend=self.fingerprint) from exc

    def _drive_sync(self, procs: list[_Procedure], usages: list[Counter[str]]) -> list[list[float]]:
        """Run the procedures: every call of every query that can run now goes to a bounded pool."""
        results: list[list[float] | None] = [None] * len(procs)
        pending: dict[int, tuple[list[_Call], list[LLMResponse | None]]] = {}

        def advance(k: int, answers: list[LLMResponse] | None) -> list[_Call] | None:
            try:
                calls = procs[k].send(answers) if answers is not None else next(procs[k])
            except StopIteration as stop:
                results[k] = stop.value
                return None
            return calls

        if self.max_concurrency == 1:
            for k in range(len(procs)):
                calls = advance(k, None)
                while calls is not None:
                    answers = []
                    for call in calls:
                        answer = self._account(call, self._complete(call), usages[k])
                        answers.append(answer)
                    calls = advance(k, answers)
            return results  # type: ignore[return-value]

        with ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="rerank-llm-judge") as pool:
            futures: dict[Future[LLMResponse], tuple[int, int]] = {}

            def submit(k: int, calls: list[_Call] | None) -> None:
                while calls is not None and not calls:  # a step with no calls: answer it at once
                    calls = advance(k, [])
                if calls is None:
                    return
                pending[k] = (calls, [None] * len(calls))
                for j, call in enumerate(calls):
                    futures[pool.submit(self._complete, call)] = (k, j)

            try:
                for k in range(len(procs)):
                    submit(k, advance(k, None))
                while futures:
                    done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
                    for fut in done:
                        k, j = futures.pop(fut)
                        calls, answers = pending[k]
                        answers[j] = self._account(calls[j], fut.result(), usages[k])
                        if all(a is not None for a in answers):
                            del pending[k]
                            submit(k, advance(k, answers))  # type: ignore[arg-type]
            finally:
                for fut in futures:
                    fut.cancel()
        return results  # type: ignore[return-value]

    def _drive_batched(self, procs: list[_Procedure], usages: list[Counter[str]]) -> list[list[float]]:
        """Run the procedures step by step, every query's calls of a step in one ``complete_many`` per
        (max_tokens, top_logprobs) kind: an LLM that batches answers them in few model calls."""
        results: list[list[float] | None] = [None] * len(procs)
        current: dict[int, list[_Call]] = {}

        def advance(k: int, answers: list[LLMResponse] | None) -> None:
            try:
                calls = procs[k].send(answers) if answers is not None else next(procs[k])
            except StopIteration as stop:
                results[k] = stop.value
                current.pop(k, None)
                return
            current[k] = calls

        for k in range(len(procs)):
            advance(k, None)
        while current:
            flat = [(k, j, call) for k, calls in current.items() for j, call in enumerate(calls)]
            answers: dict[int, list[LLMResponse | None]] = {k: [None] * len(c) for k, c in current.items()}
            kinds: dict[tuple[int, int], list[tuple[int, int, _Call]]] = {}
            for item in flat:
                kinds.setdefault((item[2].max_tokens, item[2].top_logprobs), []).append(item)
            for (max_tokens, top_logprobs), items in kinds.items():
                batch = self._complete_many([c.messages for _, _, c in items], max_tokens, top_logprobs)
                served: dict[int, set[int]] = {}
                for (k, j, call), answer, call_id in zip(items, batch.responses, batch.call_of, strict=True):
                    answers[k][j] = self._account_tokens(call, answer, usages[k])
                    served.setdefault(k, set()).add(call_id)
                for k, call_ids in served.items():
                    usages[k]["llm_calls"] += len(call_ids)
            for k, got in answers.items():
                advance(k, got)  # type: ignore[arg-type]
        return results  # type: ignore[return-value]

    def _complete_many(
        self, requests: list[list[ChatMessage]], max_tokens: int, top_logprobs: int
    ) -> LLMBatchResponse:
        with self._sync_slots:
            try:
                batch = self.llm.complete_many(requests, max_tokens=max_tokens, top_logprobs=top_logprobs)
            except RerankError:
                raise
            except Exception as exc:
                raise NonRetryableBackendError(f"LLM call failed: {exc!r}", backend=self.fingerprint) from exc
        if not isinstance(batch, LLMBatchResponse) or len(batch.responses) != len(requests):
            raise NonRetryableBackendError(
                f"the LLM's complete_many returned {type(batch).__name__} for {len(requests)} prompts, "
                "not an LLMBatchResponse with one response each",
                backend=self.fingerprint,
            )
        return batch

    async def _acomplete(self, call: _Call) -> LLMResponse:
        async with self._async_slots:
            try:
                return await self.llm.acomplete(
                    call.messages, max_tokens=call.max_tokens, top_logprobs=call.top_logprobs
                )
            except RerankError:
                raise
            except Exception as exc:
                raise NonRetryableBackendError(f"LLM call failed: {exc!r}", backend=self.fingerprint) from exc

    async def _drive_one_async(self, proc: _Procedure, usage: Counter[str]) -> list[float]:
        answers: list[LLMResponse] | None = None
        while True:
            try:
                calls = proc.send(answers) if answers is not None else next(proc)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            got = await asyncio.gather(*(self._acomplete(c) for c in calls))
            answers = [self._account(call, answer, usage) for call, answer in zip(calls, got, strict=True)]

    def close(self) -> None:
        super().close()
        self.llm.close()
