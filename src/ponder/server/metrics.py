"""Prometheus text metrics, hand-written (the format is small), and the metered upstream wrapper."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ponder.backends.base import Generation, GenRequest, WrappedBackend

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def label(value: str) -> str:
    """A Prometheus label value, escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Counters, gauges and one latency histogram; ``render()`` gives the Prometheus text format."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = defaultdict(int)  # (mode, status) -> count
        self.errors: dict[str, int] = defaultdict(int)  # error type -> count
        self.upstream_calls: dict[str, int] = defaultdict(int)
        self.upstream_prompt_tokens: dict[str, int] = defaultdict(int)
        self.upstream_completion_tokens: dict[str, int] = defaultdict(int)
        self.upstream_in_flight: dict[str, int] = defaultdict(int)
        self.in_flight = 0
        self.queued = 0
        self.bucket_counts = [0] * len(LATENCY_BUCKETS)
        self.latency_sum = 0.0
        self.latency_count = 0

    def observe(self, mode: str, status: int, seconds: float, error_type: str | None = None) -> None:
        self.requests[(mode, status)] += 1
        if error_type:
            self.errors[error_type] += 1
        self.latency_sum += seconds
        self.latency_count += 1
        for index, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.bucket_counts[index] += 1

    def upstream_usage(self, upstream: str, calls: int, prompt_tokens: int, completion_tokens: int) -> None:
        self.upstream_calls[upstream] += calls
        self.upstream_prompt_tokens[upstream] += prompt_tokens
        self.upstream_completion_tokens[upstream] += completion_tokens

    def render(self) -> str:
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"])

        family("ponder_requests_total", "counter", "Chat completion requests by mode and HTTP status.")
        for (mode, status), count in sorted(self.requests.items()):
            lines.append(f'ponder_requests_total{{mode="{mode}",status="{status}"}} {count}')
        family("ponder_errors_total", "counter", "Failed requests by OpenAI error type.")
        for error_type, count in sorted(self.errors.items()):
            lines.append(f'ponder_errors_total{{type="{error_type}"}} {count}')
        family("ponder_requests_in_flight", "gauge", "Requests being served now.")
        lines.append(f"ponder_requests_in_flight {self.in_flight}")
        family("ponder_requests_queued", "gauge", "Requests waiting for a slot (first come, first served).")
        lines.append(f"ponder_requests_queued {self.queued}")
        for name, values, help_text in (
            ("ponder_upstream_calls_total", self.upstream_calls, "Model calls sent upstream."),
            ("ponder_upstream_prompt_tokens_total", self.upstream_prompt_tokens, "Prompt tokens upstream."),
            (
                "ponder_upstream_completion_tokens_total",
                self.upstream_completion_tokens,
                "Completion tokens upstream.",
            ),
        ):
            family(name, "counter", help_text)
            lines += [f'{name}{{upstream="{label(up)}"}} {count}' for up, count in sorted(values.items())]
        family("ponder_upstream_in_flight", "gauge", "Upstream generate calls running now.")
        lines += [
            f'ponder_upstream_in_flight{{upstream="{label(up)}"}} {n}'
            for up, n in self.upstream_in_flight.items()
        ]
        family("ponder_request_seconds", "histogram", "Request latency (to the last byte for streams).")
        for bound, count in zip(LATENCY_BUCKETS, self.bucket_counts, strict=True):
            lines.append(f'ponder_request_seconds_bucket{{le="{bound:g}"}} {count}')
        lines.append(f'ponder_request_seconds_bucket{{le="+Inf"}} {self.latency_count}')
        lines.append(f"ponder_request_seconds_sum {self.latency_sum:.6f}")
        lines.append(f"ponder_request_seconds_count {self.latency_count}")
        return "\n".join(lines) + "\n"


@dataclass
class MeteredBackend(WrappedBackend):
    """Wraps an upstream's backend (shared by all requests) to count its calls, tokens and in-flight.
    The server owns the upstream for its lifetime, so closing this closes it."""

    upstream: str = ""
    metrics: Metrics = field(default_factory=Metrics)

    async def generate(self, requests: list[GenRequest]) -> list[list[Generation]]:
        self.metrics.upstream_in_flight[self.upstream] += 1
        try:
            results = await self.wrapped.generate(requests)
        finally:
            self.metrics.upstream_in_flight[self.upstream] -= 1
        usages = [g.usage for generations in results for g in generations]
        self.metrics.upstream_usage(
            self.upstream,
            sum(u.calls for u in usages),
            sum(u.prompt_tokens for u in usages),
            sum(u.completion_tokens for u in usages),
        )
        return results

    async def close(self) -> None:
        await self.wrapped.close()
