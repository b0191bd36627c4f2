"""`streamfix info` and `streamfix engine`: what this machine can run, and the TensorRT
engine cache. Called by cli.py; the same add/cmd pair shape as its subcommands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from streamfix.cli.args import non_negative_int, positive_int


def add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="versions, devices, usable engines and bundled models",
                       description="Print what streamfix can use on this machine.")
    p.add_argument("--device", default="auto", help="device to check the engines on (default: auto)")
    p.add_argument("--measure", action="store_true",
                   help="time the CPU engines and precisions now for every bundled model (what --engine auto "
                        "picks), instead of showing the stored decision")


def _version(module: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return None


def _onnxruntime_providers() -> list[str]:
    try:
        import onnxruntime
    except ImportError as exc:  # installed but broken: say so instead of failing `info`
        return [f"cannot import: {exc}"]
    return list(onnxruntime.get_available_providers())


def _scores_line(scores: dict) -> str:
    import json

    return json.dumps(scores, separators=(", ", ": "), default=str) if scores else "no scores recorded yet"


def cmd_info(args: argparse.Namespace) -> int:
    import platform

    import av
    import torch

    from streamfix import __version__
    from streamfix.engines.devices import resolve_device
    from streamfix.engines import cuda_driver, trt_install
    from streamfix.engines.select import describe_engines
    from streamfix.core.weights import list_models

    cuda = (f"CUDA {torch.version.cuda}, " + ", ".join(torch.cuda.get_device_name(i)
                                                         for i in range(torch.cuda.device_count()))
            if torch.cuda.is_available() else "no CUDA GPU visible")
    print(f"streamfix    {__version__}")
    print(f"python       {platform.python_version()} ({sys.executable})")
    print(f"torch        {torch.__version__} ({cuda})")
    print(f"PyAV         {av.__version__} (FFmpeg {getattr(av, 'ffmpeg_version_info', '?')})")
    driver = cuda_driver.driver_cuda_version()
    print(f"{'driver':<12} {f'NVIDIA, supports CUDA {driver[0]}.{driver[1]}' if driver else 'no NVIDIA driver found'}")
    installs = trt_install.installed()
    for package in ("onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt", "pycuda"):
        found = _version(package)
        if found and package.startswith("onnxruntime"):
            found += f" (providers: {', '.join(_onnxruntime_providers())})"
        if package == "tensorrt":  # which CUDA build, from the package metadata (no import)
            found = trt_install.describe(installs) or found
        if found or package in ("onnxruntime", "openvino", "tensorrt"):
            print(f"{package:<12} {found or 'not installed'}")
        problem = trt_install.install_problem(installs, driver) if package == "tensorrt" else None
        if problem:
            print(f"{'':<12} does not fit this machine: {problem}")
    print("engines (auto tries them in this order):")
    for name, usable, why in describe_engines(args.device):
        print(f"  {name:<12} {'yes' if usable else 'no ':<4} {why}")
    if resolve_device(args.device) == "cpu":
        _print_cpu_choices(args.measure)
    print("bundled models:")
    models = list_models()
    width = max([16] + [len(info.name) for info in models])  # NAME-lite is longer than 16
    for info in models:
        print(f"  {info.name:<{width}} {info.description}")
        print(f"  {'':<{width}} scores: {_scores_line(info.scores)}")
    return 0


def _print_cpu_choices(measure: bool) -> None:
    """One line per bundled model: what `--engine auto --precision auto` runs here, and why."""
    from streamfix.core.weights import list_models, load_model
    from streamfix.engines.select import cpu_choice

    print("engine auto on this CPU (engine x precision, timed once per machine):")
    for info in list_models():
        model, _ = load_model(info.name)
        choice = cpu_choice(model, info, measure=measure, log=lambda line: print(f"  {line}", file=sys.stderr))
        text = choice.summary() if choice else ("not measured yet: the first run with --engine auto measures it, "
                                                 "or `streamfix info --measure`")
        print(f"  {info.name:<16} {text}")


def add_engine(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("engine", help="build or list cached TensorRT engines",
                       description="TensorRT engines are built once per model, GPU, TensorRT version and "
                                   "stream resolution (minutes), then loaded from the cache.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = actions.add_parser("build", help="build (or check) the engines for some resolutions now",
                               description="Build TensorRT engines ahead of time, so that the first "
                                           "stream of each resolution starts at full speed.")
    build.add_argument("--model", default="video-x264-qp", help="bundled model name or weights file "
                                                                "(default: video-x264-qp)")
    precision = build.add_mutually_exclusive_group()
    precision.add_argument("--fp16", dest="fp16", action="store_true", default=True,
                           help="FP16 engines, checked against the FP32 model (default)")
    precision.add_argument("--fp32", dest="fp16", action="store_false", help="FP32 engines")
    build.add_argument("--shapes", default="1280x720,1920x1080",
                       help="comma-separated WIDTHxHEIGHT, or a range MINxMIN-MAXxMAX "
                            "(default: 1280x720,1920x1080)")
    build.add_argument("--max-batch", type=positive_int, default=8, help="largest batch (default 8)")
    build.add_argument("--device", default="cuda", help="cuda or cuda:N (default cuda)")
    build.add_argument("--opt-level", type=non_negative_int, help="builder optimization level 0-5 (default 3)")
    build.add_argument("--cache-dir", type=Path, help="engine cache (default $XDG_CACHE_HOME/streamfix/tensorrt)")
    listing = actions.add_parser("list", help="list the cached engines", description="List the cached "
                                 "TensorRT engines with what they were built for.")
    listing.add_argument("--cache-dir", type=Path, help="engine cache (default $XDG_CACHE_HOME/streamfix/tensorrt)")


def cmd_engine(args: argparse.Namespace) -> int:
    from streamfix.engines.engine_cache import EngineCache, default_cache_dir
    from streamfix.core.errors import OptionError

    cache_dir = args.cache_dir or default_cache_dir()
    if args.action == "list":
        entries = EngineCache(cache_dir).entries()
        print(f"TensorRT engine cache: {cache_dir}" + ("" if entries else " (empty)"))
        for e in entries:
            key = e.get("key", {})
            profile = key.get("profile", {})
            size = f"{e['engine_bytes'] / 2**20:.1f} MiB" if "engine_bytes" in e else "?"
            shapes = (f"{profile['width'][2]}x{profile['height'][2]} batch {profile['batch'][0]}-"
                      f"{profile['batch'][2]}" if profile else "?")
            print(f"  {e['status']:<6} {key.get('model', '?')} {e.get('variant', key.get('precision', '?'))} "
                  f"{shapes}, {key.get('gpu', '?')} (sm {key.get('compute_capability', '?')}), TensorRT "
                  f"{key.get('tensorrt', '?')}, {size}, built {e.get('created', '?')}: {e['file']}")
        return 0

    from streamfix.engines.base import EngineUnavailable
    from streamfix.engines.tensorrt_engine import TensorRTConfig, TensorRTEngine, check_available
    from streamfix.engines.trt_shapes import parse_shapes
    from streamfix.core.weights import load_model

    try:
        shapes = tuple(p.strip() for p in args.shapes.split(",") if p.strip())
        parse_shapes(",".join(shapes), args.max_batch)
        config = TensorRTConfig(device=args.device, fp16=args.fp16, max_batch=args.max_batch, shapes=shapes,
                                cache_dir=cache_dir, while_building="wait",
                                **({} if args.opt_level is None else {"opt_level": args.opt_level}))
    except ValueError as exc:
        raise OptionError(f"engine build: {exc}") from None
    model, info = load_model(args.model)
    log = lambda line: print(f"streamfix: {line}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        check_available(config)
        with TensorRTEngine(model, info, config, log=log) as engine:
            for meta in engine.loaded:
                print(meta["path"])
    except EngineUnavailable as exc:
        raise OptionError(f"cannot build TensorRT engines here: {exc}") from None
    return 0
