"""Test-only stand-in for vLLM (see ../README.md): the names openrlhf 0.11.2 imports, nothing that generates."""

__version__ = "0.0.0+test-stub"


class SamplingParams:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


class LLM:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("vLLM test stub: no generation on this machine")
