"""LLM orchestration kernels: ours against scikit-learn and a plain Python baseline, one process.

(a) overhead per request against calling the same local OpenAI-compatible server directly:
    the test suite's loopback OpenAI server (``python -m tests.llm.loopback``, its own process)
    is called at 1, 16 and 64 concurrent requests (a) directly with aiohttp (the client our
    providers use; httpx, the OpenAI SDK's, costs 4x its CPU per call and stalls for seconds
    at 64 connections, which would flatter us), (b) through our router
    (:meth:`LlmRouter.complete`: model resolution, retries/cooldown bookkeeping, usage),
    (c) through :meth:`LlmService.query` with ``cache=False`` from as many threads (validation,
    budget check, usage rows written to the store, the ``LlmAnswered`` event), and (d) through
    a real ``prism serve`` (``POST /api/v1/llm/query``, ``cache: false``), which adds an HTTP
    hop of its own. ``ours_s`` and ``peer_s`` are p50 latencies; ``extra`` has p99s, the p50
    overhead in milliseconds and the CPU milliseconds per request (this process plus the PRISM
    server's; the loopback's own CPU is left out, it is the same for all). The paths alternate,
    in two halves each. A first run has the loopback answer at once; a second, at 16 and 64 in
    flight, has it take ``MODEL_DELAY_MS`` per answer, as a local model does, each caller
    sending one request every ``PACE`` answer times on its own clock (independent users; see
    :data:`PACE`): with an instant provider, 16 or 64 requests in flight on a 2-core machine
    that also runs the client and the provider measure CPU queueing, not what a caller waits
    for.
(b) semantic clustering of 1,000 answers to one prompt (25 different answers, each phrased
    with one of 8 templates; ground truth known): the same WordLlama embeddings (SIF weighting,
    the prompt as context), then ours (:func:`prism_kernels.llm.consensus.cluster` on the cosine
    similarity matrix: average linkage by rounds of reciprocal-nearest-neighbour merges on the
    array backend) against ``sklearn.cluster.AgglomerativeClustering(metric="cosine",
    linkage="average", distance_threshold=1 - t)`` (the same partition: ``extra`` holds the
    adjusted Rand index between the two and against the truth), and against single linkage
    (its ARI against the truth: it chains at this size). A row for the whole
    :func:`~prism_kernels.llm.consensus.semantic` call (embedding included) and one on PyTorch
    (CPU) follow.
(c) cache lookups per second at 100,000 entries (real WordLlama embeddings of 100,000
    generated prompts over 4 models): exact lookups (ours :meth:`ResponseCache.get` against a
    plain ``dict``) and semantic lookups (ours: one matrix-vector product over the host matrix,
    query embedding given; baseline: a ``dict`` of entries and a Python loop of ``np.dot`` over
    every entry of the model, keeping the most similar that states the same numbers as ours
    does, timed on a sample of queries; each query rewords a stored prompt), and batched
    semantic lookups (:meth:`ResponseCache.get_many`, one matrix product per batch of 256);
    ``extra`` says whether both found the same entries and how many the loop found. Semantic lookup is memory-bound: each lookup reads
    the scope's whole float32 matrix (25,000 x 256 here), so batching pays.

``--quick`` shrinks the sizes (200 answers, 10,000 entries).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import adjusted_rand_score

from benchmarks.harness import Case, timeit
from prism_kernels import backend
from prism_kernels.llm import consensus as C
from prism_kernels.llm.cache import ResponseCache
from prism_kernels.llm.embeddings import as_host, embed, similarity
from prism_kernels.llm.keyterms import key_terms

PROMPT = "Which city should host next year's engineering conference, and why?"
CITIES = (
    "Paris Lyon Berlin Munich Madrid Barcelona Lisbon Rome Milan Vienna Prague Warsaw Oslo "
    "Stockholm Helsinki Copenhagen Dublin Edinburgh Amsterdam Brussels Zurich Geneva Athens "
    "Budapest Krakow"
).split()
TEMPLATES = (
    "{c} should host it.",
    "I would pick {c}.",
    "The best choice is {c}, thanks to its airport and venues.",
    "{c}: good transport links and plenty of hotels.",
    "My recommendation is {c}.",
    "It should be {c}, because the venues there are excellent.",
    "Host it in {c}.",
    "{c} is the city I would choose for the conference.",
)


def _answers(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, len(CITIES), n)
    tpl = rng.integers(0, len(TEMPLATES), n)
    texts = [TEMPLATES[t].format(c=CITIES[c]) for c, t in zip(truth, tpl, strict=True)]
    return texts, truth


def _clustering(n: int, repeat: int) -> list[Case]:
    texts, truth = _answers(n)
    t = C.DEFAULT_THRESHOLD
    E = embed(texts, weighting="sif", context=PROMPT)
    ours = timeit(lambda: C.cluster(similarity(E), t), repeat=repeat)
    lab = C.cluster(similarity(E), t)
    X = E.astype(np.float64)

    def sk(link):
        return AgglomerativeClustering(
            n_clusters=None, metric="cosine", linkage=link, distance_threshold=1 - t
        ).fit_predict(X)

    sk_avg = timeit(lambda: sk("average"), repeat=repeat)
    sk_single = timeit(lambda: sk("single"), repeat=repeat)
    la, ls = sk("average"), sk("single")
    label = f"semantic clustering, {n} answers ({len(CITIES)} true answers)"
    ari = float(adjusted_rand_score(truth, lab))
    cases = [
        Case(
            "llm",
            label,
            ours,
            "sklearn agglomerative average/cosine",
            sk_avg,
            note="same embeddings and linkage; ours includes the similarity matrix",
            extra={
                "ari_vs_sklearn": float(adjusted_rand_score(la, lab)),
                "ari_truth_ours": ari,
                "clusters": int(max(lab) + 1),
            },
        ),
        Case(
            "llm",
            label,
            ours,
            "sklearn agglomerative single/cosine",
            sk_single,
            note="peer with single linkage (chains)",
            extra={"ari_truth_peer": float(adjusted_rand_score(truth, ls)), "ari_truth_ours": ari},
        ),
    ]
    whole = timeit(lambda: C.semantic(texts, prompt=PROMPT), repeat=repeat)
    peer_whole = timeit(
        lambda: sk("average") if embed(texts, weighting="sif", context=PROMPT) is not None else 0,
        repeat=repeat,
    )
    r = C.semantic(texts, prompt=PROMPT)
    cases.append(
        Case(
            "llm",
            label + ", with embedding",
            whole,
            "embed + sklearn average",
            peer_whole,
            note="consensus incl. medoid and entropy",
            extra={"agreement": r.agreement, "entropy_nats": r.entropy},
        )
    )
    if "torch" in backend.available_backends():
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # like the BLAS limit: no oversubscription on a shared host
        try:
            xp = backend.namespace("torch")
            Et = backend.asarray(E, backend="torch")
            sync = lambda: backend.synchronize(Et)  # noqa: E731
            tt = timeit(lambda: C.cluster(similarity(Et), t), repeat=repeat, sync=sync)
            lt = C.cluster(similarity(Et), t)
            dev = backend.describe("torch")["device"]
            cases.append(
                Case(
                    "llm",
                    label + f" (torch {dev})",
                    tt,
                    "sklearn agglomerative average/cosine",
                    sk_avg,
                    note=f"array-API path on {xp.__name__.split('.')[-1]}",
                    extra={"ari_vs_numpy": float(adjusted_rand_score(lab, lt))},
                )
            )
        finally:
            torch.set_num_threads(threads)
    return cases


def _prompts(n: int) -> list[str]:
    subjects = ["France", "Germany", "Japan", "Brazil", "Kenya", "Canada", "India", "Peru"]
    asks = [
        "What is the capital of {s}?",
        "Summarise the history of {s} in {k} sentences.",
        "Write a haiku about {s} number {k}.",
        "List {k} famous dishes from {s}.",
        "How many people live in {s} (variant {k})?",
    ]
    return [asks[i % 5].format(s=subjects[(i // 5) % 8], k=i // 40) for i in range(n)]


def _cache(n: int, sample: int) -> list[Case]:
    prompts = _prompts(n)
    t0 = time.perf_counter()
    E = as_host(embed([p.casefold() for p in prompts]))
    embed_s = time.perf_counter() - t0
    models = [f"model-{i % 4}" for i in range(n)]
    cache = ResponseCache(max_entries=n, ttl_s=None)
    plain: dict[tuple[str, str], dict] = {}
    rows: dict[str, list[tuple[np.ndarray, str, frozenset[str]]]] = {}
    for i, (m, p) in enumerate(zip(models, prompts, strict=True)):
        value = {"text": f"answer {i}", "tokens": i % 300}
        cache.put(m, p, value, embedding=E[i])
        plain[(m, p)] = value
        rows.setdefault(m, []).append((E[i], p, key_terms(p)[0]))
    rng = np.random.default_rng(1)
    qi = rng.integers(0, n, 2000)

    # exact lookups
    def ours_exact():
        for i in qi:
            cache.get(models[i], prompts[i], semantic=False)

    def dict_exact():
        for i in qi:
            plain.get((models[i], prompts[i]))

    oe = timeit(ours_exact, repeat=3) / qi.size
    de = timeit(dict_exact, repeat=3) / qi.size
    # semantic lookups: queries are perturbed stored embeddings (paraphrase-like, cos ~ 0.97)
    noise = rng.normal(size=(sample * 20, E.shape[1])).astype(np.float32) * 0.012
    qs = E[qi[: sample * 20]] + noise
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)

    # asked as a rewording of the stored prompt: the same numbers, so the cache's numbers check
    # (a similar prompt stating other numbers is another request) lets it through
    asked = [f"{prompts[i]} Please answer briefly." for i in qi[: sample * 20]]

    def ours_sem(k):
        for j in range(k):
            cache.get(models[qi[j]], asked[j], embedding=qs[j])

    def loop_sem(j):
        """The most similar entry at or above the threshold that states the same numbers."""
        numbers = key_terms(asked[j])[0]
        best, arg = -np.inf, None
        for v, p, nums in rows[models[qi[j]]]:
            s = float(np.dot(v, qs[j]))
            if s > best and nums == numbers:
                best, arg = s, p
        return plain[(models[qi[j]], arg)] if best >= cache.threshold else None

    os_ = timeit(lambda: ours_sem(sample * 20), repeat=3) / (sample * 20)
    m0 = models[0]
    own = rng.choice(np.arange(0, n, 4), size=256, replace=False)  # entries of model-0
    qb = E[own] + rng.normal(size=(256, E.shape[1])).astype(np.float32) * 0.012
    qb /= np.linalg.norm(qb, axis=1, keepdims=True)
    batch = [f"batch question {j}" for j in range(256)]
    ob = timeit(lambda: cache.get_many(m0, batch, embeddings=qb), repeat=3) / len(batch)
    t0 = time.perf_counter()
    ref = [loop_sem(j) for j in range(sample)]
    ls = (time.perf_counter() - t0) / sample
    got = [
        (h.value if (h := cache.get(models[qi[j]], asked[j], embedding=qs[j])) else None)
        for j in range(sample)
    ]
    same = sum(a == b for a, b in zip(got, ref, strict=True))
    found = sum(r is not None for r in ref)
    st = cache.stats()
    batched = cache.get_many(m0, batch, embeddings=qb)
    single = [cache.get(m0, p, embedding=qb[j]) for j, p in enumerate(batch)]
    same_b = sum(
        (x.value if x else None) == (y.value if y else None)
        for x, y in zip(batched, single, strict=True)
    )
    return [
        Case(
            "llm",
            f"cache exact lookup, {n} entries",
            oe,
            "python dict",
            de,
            note="per lookup; ours adds hashing, TTL and LRU bookkeeping",
            extra={"ours_per_s": 1 / oe, "peer_per_s": 1 / de},
        ),
        Case(
            "llm",
            f"cache semantic lookup, {n} entries",
            os_,
            "dict + numpy dot loop",
            ls,
            note=f"per lookup, query embedding given; loop timed on {sample} queries",
            extra={
                "ours_per_s": 1 / os_,
                "peer_per_s": 1 / ls,
                "same_hits": f"{same}/{sample}",
                "loop_hits": f"{found}/{sample}",
                "bytes": st["bytes"],
                "embed_all_s": embed_s,
            },
        ),
        Case(
            "llm",
            f"cache semantic lookup, {n} entries, batches of {len(batch)}",
            ob,
            "dict + numpy dot loop",
            ls,
            note="per lookup, get_many: one matrix product per batch",
            extra={"ours_per_s": 1 / ob, "same_as_get": f"{same_b}/{len(batch)}"},
        ),
    ]


ROOT = Path(__file__).resolve().parents[1]
OVERHEAD_PROMPT = "Say hello."


#: How long the loopback takes to answer in the second overhead run: a short answer from a
#: local model. With an instant provider, 16 or 64 requests in flight on 2 shared cores measure
#: CPU queueing (client, provider and server on the same cores), not what a caller waits for.
MODEL_DELAY_MS = 250.0
#: In that run each caller sends one request every PACE answer times, on its own clock, the
#: callers' clocks spread evenly over one period: independent users, each with at most one
#: request in flight (``level`` x 1/PACE in flight on average). A closed loop (each caller asks
#: again the moment it is answered) is unstable with a fixed answer time: callers delayed
#: together stay together, and their bunches grow round after round. Through the server at 64
#: in flight its p50 overhead rose from about 2 ms in the first second to 10-30 ms by the
#: fifth (2026-11-30), so it measured how long the run lasted.
PACE = 1.04


@contextlib.contextmanager
def _loopback(delay_ms: float = 0.0) -> Iterator[str]:
    """The loopback OpenAI-compatible server in a process of its own, every answer taking
    ``delay_ms``; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.llm.loopback", "--delay-ms", str(delay_ms)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def _percentiles(lat: list[float]) -> tuple[float, float]:
    a = np.asarray(lat)
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


async def _drive(
    call: Callable[[], Awaitable[str]], total: int, concurrency: int, period_s: float = 0.0
) -> list[float]:
    """Per-request latencies (s) of ``total`` calls from ``concurrency`` callers. Each caller
    calls again as soon as it is answered or, with ``period_s``, once every ``period_s`` on its
    own clock (at once if its answer came later), the callers' clocks spread evenly over one
    period (see :data:`PACE`)."""
    lat: list[float] = []
    start = time.perf_counter()

    async def worker(i: int, n: int) -> None:
        offset = period_s * i / concurrency
        for k in range(n):
            wait = start + offset + k * period_s - time.perf_counter()
            if period_s and wait > 0:
                await asyncio.sleep(wait)
            t0 = time.perf_counter()
            text = await call()
            lat.append(time.perf_counter() - t0)
            assert text == "Hello there!", text

    per = [total // concurrency + (i < total % concurrency) for i in range(concurrency)]
    await asyncio.gather(*(worker(i, n) for i, n in enumerate(per)))
    return lat


def _cpu(server) -> float:
    """CPU seconds used so far by this process and the PRISM server's (both sides of a call:
    under load on 2 cores, latency at 16 or 64 in flight is mostly queueing for CPU)."""
    import psutil

    t = psutil.Process(server.proc.pid).cpu_times()
    return time.process_time() + t.user + t.system


def _threads(
    call: Callable[[], str], total: int, concurrency: int, period_s: float = 0.0
) -> list[float]:
    """:func:`_drive` for a blocking ``call``, from ``concurrency`` threads: call ``k`` is
    the ``k // concurrency``-th of caller ``k % concurrency``."""
    start = time.perf_counter()

    def timed(k: int) -> float:
        i, round_ = k % concurrency, k // concurrency
        wait = start + period_s * (i / concurrency + round_) - time.perf_counter()
        if period_s and wait > 0:
            time.sleep(wait)
        t0 = time.perf_counter()
        text = call()
        assert text == "Hello there!", text
        return time.perf_counter() - t0

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(timed, range(total)))


def _overhead(
    total: int | None, levels: tuple[int, ...] = (1, 16, 64), delay_ms: float = 0.0
) -> list[Case]:
    """Overhead rows (see the module's docstring): ``total`` requests per path and level, or
    (``None``) 40 rounds of ``level`` requests."""
    import aiohttp

    from prism_kernels.llm.config import load_config
    from prism_kernels.llm.router import LlmRouter
    from prism_kernels.llm.service import LlmService
    from prism_kernels.store import Store
    from tests.serverutil import PrismServer

    cases = []
    answers_in = f", provider answering in {delay_ms:g} ms" if delay_ms else ""
    period_s = PACE * delay_ms / 1e3
    with _loopback(delay_ms) as base:
        env = {"OPENAI_BASE_URL": base, "OPENAI_API_KEY": "sk-bench-not-a-secret"}
        body = {"model": "loop-small", "messages": [{"role": "user", "content": OVERHEAD_PROMPT}]}
        router = LlmRouter(load_config(env))
        router.discover_sync()  # the loopback's GET /models names loop-small
        service = LlmService(Store(":memory:"), config=load_config(env), max_usage_rows=10)
        server = PrismServer(dashboards=False, extra_env=env).start()

        async def measure(level: int) -> dict[str, list[float]]:
            headers = dict(server.client().headers)
            async with (
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=level)) as direct,
                aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=level), headers=headers
                ) as prism,
            ):

                async def call_direct() -> str:
                    async with direct.post(f"{base}/chat/completions", json=body) as r:
                        return (await r.json())["choices"][0]["message"]["content"]

                async def call_router() -> str:
                    return (await router.complete(OVERHEAD_PROMPT, "loop-small")).text

                async def call_server() -> str:
                    async with prism.post(
                        f"{server.url}/api/v1/llm/query",
                        json={"prompt": OVERHEAD_PROMPT, "model": "loop-small", "cache": False},
                    ) as r:
                        return (await r.json())["data"]["text"]

                for call in (call_direct, call_router, call_server):  # warm connections
                    await _drive(call, 2 * level, level)
                out: dict[str, list[float]] = {"direct": [], "router": [], "server": []}
                for _ in range(2):  # interleaved halves: drift hits all three alike
                    for name, call in (
                        ("direct", call_direct),
                        ("router", call_router),
                        ("server", call_server),
                    ):
                        c0 = _cpu(server)
                        out[name] += await _drive(call, n // 2, level, period_s)
                        cpu[name] += _cpu(server) - c0
                return out

        cpu = {"direct": 0.0, "router": 0.0, "server": 0.0, "service": 0.0}

        def service_call() -> str:
            return service.query(OVERHEAD_PROMPT, "loop-small", cache=False)["text"]

        try:
            for level in levels:
                n = total or 40 * level
                for k in cpu:
                    cpu[k] = 0.0
                lat = asyncio.run(measure(level))
                c0 = _cpu(server)
                lat["service"] = _threads(service_call, n, level, period_s)
                cpu["service"] = _cpu(server) - c0
                d50, d99 = _percentiles(lat["direct"])
                for name, what in (
                    ("router", "LlmRouter.complete"),
                    ("service", "LlmService.query (threads)"),
                    ("server", "prism serve POST /llm/query"),
                ):
                    o50, o99 = _percentiles(lat[name])
                    cases.append(
                        Case(
                            "llm",
                            f"overhead {what}, {level} concurrent{answers_in}",
                            o50,
                            "aiohttp direct",
                            d50,
                            note=f"p50 per request, {n} requests",
                            extra={
                                "overhead_p50_ms": round((o50 - d50) * 1e3, 3),
                                "ours_p99_ms": round(o99 * 1e3, 3),
                                "direct_p99_ms": round(d99 * 1e3, 3),
                                "cpu_ms_per_request": round(cpu[name] / len(lat[name]) * 1e3, 3),
                                "direct_cpu_ms_per_request": round(
                                    cpu["direct"] / len(lat["direct"]) * 1e3, 3
                                ),
                            },
                        )
                    )
        finally:
            server.stop()
            router.close()
            service.close()
    return cases


def run(quick: bool = False) -> list[Case]:
    import threadpoolctl

    with threadpoolctl.threadpool_limits(1):
        cases = _overhead(200 if quick else 2000)
        cases += _overhead(None, (16, 64), MODEL_DELAY_MS)
        cases += _clustering(200 if quick else 1000, repeat=3)
        cases += _cache(10_000 if quick else 100_000, sample=3 if quick else 5)
    return cases
