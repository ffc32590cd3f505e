"""langchain-tests (pinned 1.1.9) standard suites on the bundled model, offline.

Model-quality tests are xfailed with their measured reason (see XFAIL below); everything else must pass.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import pytest

pytest.importorskip("langchain_tests")

from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_llada import ChatLLaDA

XFAIL = {
    "test_tool_calling": (
        "model quality: the forced call is schema-exact, but the 1M-parameter model writes the value; for "
        "'magic_function(3)' it wrote {'input': 0} (measured; {'input': 13} with the Monte Carlo length "
        "score), the test needs {'input': 3}"
    ),
    "test_tool_calling_async": "model quality: as test_tool_calling (measured {'input': 0})",
    "test_unicode_tool_call_integration": (
        "model quality: the forced call is valid JSON, but the model does not copy the CJK name "
        "('你好啊集团') into customer_name (its corpus is ASCII)"
    ),
}
# xfails not run: the failure cannot change while the corpus has no such text, and the run costs 40 s of CI
NOT_RUN = {"test_unicode_tool_call_integration"}


def _xfail(name: str, reason: str) -> Any:
    """The standard test ``name``, marked xfail with its measured reason; strict, because greedy decoding
    is deterministic: a pass means the model changed and the reason must be measured again."""
    base = getattr(ChatModelIntegrationTests, name)
    if inspect.iscoroutinefunction(base):

        @functools.wraps(base)
        async def wrapper_async(self: Any, *args: Any, **kwargs: Any) -> None:
            await base(self, *args, **kwargs)

        return pytest.mark.xfail(reason=reason, strict=True, run=name not in NOT_RUN)(wrapper_async)

    @functools.wraps(base)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        base(self, *args, **kwargs)

    return pytest.mark.xfail(reason=reason, strict=True, run=name not in NOT_RUN)(wrapper)


class TestChatLLaDAUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatLLaDA]:
        return ChatLLaDA

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "llada-tiny-kb", "device": "cpu"}


@pytest.mark.slow  # the model-backed standard suite: minutes on a CPU; CI runs it with -m slow
class TestChatLLaDAIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatLLaDA]:
        return ChatLLaDA

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "llada-tiny-kb", "device": "cpu"}

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "llada-tiny-kb"

    locals().update({name: _xfail(name, reason) for name, reason in XFAIL.items()})
