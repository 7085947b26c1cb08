"""The ``prism`` command: ``prism serve`` (dashboards + API) and ``prism batch`` (notebook runs)."""

from __future__ import annotations

import argparse
import os
import sys


def _cap_blas_threads() -> None:
    # Several requests compute at once in the executor; one BLAS thread each avoids
    # oversubscription (measured: it halved throughput otherwise). Must precede numpy's import.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def _serve(args: argparse.Namespace) -> int:
    _cap_blas_threads()
    import logging
    from pathlib import Path

    from widgets.server.config import ConfigError, Settings

    # one process of `prism serve --workers N` names itself in each line (they share a log)
    worker = os.environ.get("PRISM_WORKER_INDEX")
    where = f"[worker {worker}] " if worker and worker.isdigit() else ""
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s %(levelname)s {where}%(name)s: %(message)s"
    )
    # One access-log line per successful request costs more than /health itself; 4xx and 5xx
    # are still logged (Tornado logs them at WARNING and ERROR). /metrics counts everything.
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
    # httpx logs every provider call at INFO (one line per LLM request): failures are ours to
    # log, with the key redacted.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.backend:
        os.environ["PRISM_BACKEND"] = args.backend
    try:
        settings = Settings.from_env(
            address=args.address,
            port=args.port,
            auth=False if args.no_auth else None,
            rate_limit=args.rate_limit,
            max_body_mb=args.max_body_mb,
            data_dir=Path(args.data_dir) if args.data_dir else None,
            dashboards=False if args.no_dashboards else None,
            login_link=False if args.no_login_link else None,
            processes=args.workers,
        )
        if args.workers is not None and args.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {args.workers}")
        if settings.processes > 1:
            from widgets.server.supervisor import check_store

            problem = check_store(settings.store_url, settings.processes)
            if problem:
                raise ConfigError(problem)
        else:  # (a supervisor of several processes leaves this to them)
            from prism_kernels.backend import resolve_backend

            resolve_backend()
    except (ConfigError, ValueError, RuntimeError) as exc:
        print(f"prism serve: {exc}", file=sys.stderr)
        return 2
    if settings.generated_key:
        print(
            "No PRISM_API_KEYS set: generated an admin key for this run (shown once):\n"
            f"    {settings.generated_key}\n"
            "Send it as 'Authorization: Bearer <key>'. Set PRISM_API_KEYS=key:role,... to choose keys.",
            flush=True,
        )
    if settings.processes > 1:  # a supervisor of N `prism serve` processes, see its module
        from widgets.server.supervisor import run_workers

        return run_workers(settings, getattr(args, "serve_argv", []))
    from prism_kernels.backend import tune_host_allocator
    from prism_kernels.store import StoreLocked, StoreUnavailable
    from widgets.server.app import serve

    tune_host_allocator()  # batched kernels make multi-MB temporaries: keep them off the page-fault path
    try:
        # prints the URL (and the sign-in link) once it listens
        serve(settings, show=args.show, reuse_port=args.reuse_port)
    except (StoreLocked, StoreUnavailable) as exc:  # messages name no password
        print(f"prism serve: {exc}", file=sys.stderr, flush=True)
        return 3
    return 0


def _batch(args: argparse.Namespace) -> int:
    from widgets.batch_cli import run_batch_cli

    return run_batch_cli(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="prism", description="PRISM analysis kernels: server and batch runs"
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="serve every dashboard, the REST API and the WebSocket")
    s.add_argument("--address", default=None, help="interface to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=None, help="port (default 5006)")
    s.add_argument(
        "--no-auth",
        action="store_true",
        help="serve the API and the dashboards without keys (personal use only)",
    )
    s.add_argument(
        "--no-login-link",
        action="store_true",
        help="do not print a one-time dashboard sign-in link at start-up",
    )
    s.add_argument(
        "--rate-limit", type=float, default=None, help="requests/s per key (PRISM_RATE_LIMIT)"
    )
    s.add_argument(
        "--max-body-mb", type=float, default=None, help="largest request body (PRISM_MAX_BODY_MB)"
    )
    s.add_argument("--data-dir", default=None, help="where the store lives (PRISM_DATA_DIR)")
    s.add_argument(
        "--backend",
        default=None,
        choices=["auto", "numpy", "torch", "cupy"],
        help="array backend (PRISM_BACKEND)",
    )
    s.add_argument("--no-dashboards", action="store_true", help="API only")
    s.add_argument("--show", action="store_true", help="open a browser")
    s.add_argument(
        "--workers",
        type=int,
        default=None,
        help="server processes sharing the port (PRISM_WORKERS; default 1); more than one "
        "needs PRISM_STORE_URL=postgresql://... and should have PRISM_REDIS_URL",
    )
    s.add_argument(
        "--reuse-port",
        action="store_true",
        help="listen with SO_REUSEPORT beside other processes on the same port (what each "
        "process of --workers runs with)",
    )
    s.set_defaults(func=_serve)

    try:
        from widgets.batch_cli import add_batch_parser

        add_batch_parser(sub, _batch)
    except ImportError:
        pass
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.command == "serve":  # what --workers hands on to each of its processes
        args.serve_argv = argv[argv.index("serve") + 1 :]
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
