"""The `streamfix` command: parses arguments and calls the library. Nothing imports it.

Every subcommand has an `_add_<name>(subparsers)` function that declares its flags and
a `_cmd_<name>(args) -> int` that calls the public API. Expected user errors
(StreamfixError and its kin) become one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from streamfix.cli.args import gate, non_negative_int, port, positive_float, positive_int
from streamfix.cli.fleet_commands import (add_batch, add_scale_flags, add_serve, cmd_batch, cmd_run_in_pieces,
                                         cmd_serve, scale_overrides)
from streamfix.cli.machine import add_engine, add_info, cmd_engine, cmd_info
from streamfix.core.errors import OptionError, OutputError, StreamfixError
from streamfix.core.options import CHROMA_MODES, ENGINE_NAMES, PRECISION_NAMES, TIERS
from streamfix.core.threads import STOP_REQUESTED


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (`streamfix run: error: ...`, exit 2), like every other
    user error; `--help` still shows the full usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a CAR-DRN model from a YAML config",
                       description="Train (or resume) a CAR-DRN from configs/train/<name>.yaml.")
    p.add_argument("--config", required=True, type=Path, help="training config (YAML)")
    p.add_argument("--out-dir", type=Path, help="where runs live (default: from the config)")
    p.add_argument("--steps", type=int, help="override the number of steps")
    p.add_argument("--threads", type=int, help="torch CPU threads")


def _cmd_train(args: argparse.Namespace) -> int:
    from streamfix.train.train import main as train_main

    train_main(str(args.config), out_dir=args.out_dir, steps=args.steps, threads=args.threads)
    return 0


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="restore a video or image file, a pipe or a network stream",
                       description="Remove compression artifacts from INPUT and write OUTPUT (the container "
                                   "or image format comes from OUTPUT's suffix, or --format). Audio and "
                                   "subtitles are copied unchanged. '-' reads stdin / writes stdout; URLs "
                                   "(udp://, tcp://, srt://, rtmp://, http://, ...) are streams. Pipes and "
                                   "network inputs run in live mode. Flags override the config file.")
    p.add_argument("input", help="video or image file, '-' (stdin) or a URL")
    p.add_argument("output", help="file to write (.mp4, .mkv, .ts, .png, ...), '-' (stdout) or a URL")
    p.add_argument("--config", type=Path, help="run config (YAML), e.g. configs/fast-cpu.yaml")
    p.add_argument("--model", help="bundled model name or weights file (default: chosen per input)")
    p.add_argument("--engine", choices=ENGINE_NAMES, help="inference backend (default: auto)")
    p.add_argument("--precision", choices=PRECISION_NAMES,
                   help="what the CPU engines compute in (default: auto, the fastest that keeps the gain)")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch", type=positive_int, help="frames per engine call")
    p.add_argument("--tile", type=non_negative_int, help="tile side in pixels (0: whole frames)")
    p.add_argument("--memory-budget", type=positive_int, metavar="MB",
                   help="working memory of one engine call in MiB; batches and tiles are cut to fit "
                        "(default: 448 on a CPU, none on a GPU)")
    p.add_argument("--chroma", choices=CHROMA_MODES, help="how chroma planes are treated (default: stills)")
    p.add_argument("--tier", choices=TIERS, help="model tier: full, light or auto (default: auto; live mode uses the light model for frames the full one cannot finish in time)")
    p.add_argument("--gate", type=gate, metavar="auto|off|QP",
                   help="clean-frame gate of the video model: auto (frames under mean QP 24 pass through), off "
                        "(restore every frame), or a mean QP; for encoders whose QPs read unlike x264's")
    p.add_argument("--jpeg-quality", type=positive_int, help="JPEG quality to assume for inputs without one")
    p.add_argument("--codec", help="video encoder, e.g. libx264, libx265, ffv1")
    p.add_argument("--crf", type=non_negative_int, help="encoder quality (x264: 0-51, lower is better)")
    p.add_argument("--bitrate", help="target video bitrate instead of CRF, e.g. 4M")
    p.add_argument("--preset", help="encoder preset, e.g. veryfast, medium, slow")
    p.add_argument("--pix-fmt", help="output pixel format (default: the input's)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--stats", type=Path, help="write a JSON summary (frames, fps, engine, ...) here")
    _add_stream_flags(p)
    add_scale_flags(p)


def _add_stream_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("streams", "pipes, network inputs and outputs, live mode")
    g.add_argument("--format", help="output container for pipes and URLs: mpegts, matroska, flv, nut, ...")
    g.add_argument("--input-format", help="input demuxer, when it cannot be detected (e.g. mpegts)")
    g.add_argument("--input-option", action="append", default=[], metavar="KEY=VALUE",
                   help="FFmpeg protocol/demuxer option for the input, e.g. listen=1 (repeatable)")
    g.add_argument("--output-option", action="append", default=[], metavar="KEY=VALUE",
                   help="FFmpeg protocol/muxer option for the output, e.g. listen=1 (repeatable)")
    g.add_argument("--input-timeout", type=positive_float, metavar="SECONDS",
                   help="a live input silent this long has ended (default 15)")
    g.add_argument("--reconnect", type=non_negative_int, metavar="N",
                   help="open a network input again up to N times after it stalls, breaks or ends")
    live = g.add_mutually_exclusive_group()
    live.add_argument("--live", dest="live", action="store_const", const="on",
                      help="real time: frames that cannot be restored within --max-latency pass through "
                           "(default for pipes and network inputs)")
    live.add_argument("--no-live", dest="live", action="store_const", const="off",
                      help="restore every frame, however long it takes")
    g.add_argument("--max-latency", type=positive_float, metavar="MS",
                   help="live mode's latency budget in milliseconds (default 1000)")
    g.add_argument("--metrics-port", type=port, metavar="PORT",
                   help="serve Prometheus metrics on http://127.0.0.1:PORT/metrics while running")
    g.add_argument("--metrics-address", metavar="ADDRESS",
                   help="serve the metrics on this interface instead of 127.0.0.1, e.g. 0.0.0.0 or :: (all)")


def _write_stats(path: Path | None, result) -> None:
    if path is None:
        return
    import json

    try:
        path.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the stats file ({exc.strerror}); choose another path") from None


def _run_config(args: argparse.Namespace):
    from streamfix.media.endpoints import parse_options
    from streamfix.pipeline.run_config import load_run_config, with_overrides

    config = load_run_config(args.config)
    input_options = {**config.input.options, **parse_options(args.input_option, "--input-option")}
    output_options = {**config.output.options, **parse_options(args.output_option, "--output-option")}
    return with_overrides(
        config, model=args.model, engine=args.engine, precision=args.precision, device=args.device,
        batch=args.batch, tile=args.tile, memory_budget_mb=args.memory_budget, chroma=args.chroma, tier=args.tier,
        gate=args.gate, jpeg_quality=args.jpeg_quality,
        encode={"codec": args.codec, "crf": args.crf, "bitrate": args.bitrate, "preset": args.preset,
                "pix_fmt": args.pix_fmt},
        input={"format": args.input_format, "options": input_options, "timeout_s": args.input_timeout,
               "reconnect": args.reconnect},
        output={"format": args.format, "options": output_options},
        live={"mode": args.live, "max_latency_ms": args.max_latency},
        scale=scale_overrides(args),
    )


def _stdout_target() -> str:
    """Writing the video to stdout: FFmpeg gets a private copy of the descriptor, and
    descriptor 1 itself is pointed at stderr, so no print, log line or library
    message can ever end up inside the video stream."""
    fd = os.dup(sys.stdout.fileno())
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return f"pipe:{fd}"


def _check_stats_path(stats: Path | None, args: argparse.Namespace) -> None:
    """The stats file must be a new file of its own: `--stats in.mp4` replaced the
    input with JSON, `--stats out.mp4` the output."""
    if stats is None:
        return
    if not stats.parent.is_dir():
        raise OutputError(f"{stats}: the directory for the stats file does not exist; create it first")
    if stats.is_dir():
        raise OutputError(f"{stats}: is a directory; give a file name for the stats, e.g. {stats / 'stats.json'}")
    for role, other in (("input", args.input), ("output", args.output)):
        if other in ("-", None) or "://" in str(other):
            continue
        other = Path(other)
        same = stats.resolve() == other.resolve() or (
            stats.exists() and other.exists() and os.path.samefile(stats, other))
        if same:
            raise OutputError(f"{stats}: is the {role} file; give the stats their own file name")


class _Interrupts:
    """Ctrl-C and SIGTERM for `streamfix run`, the same way each time.

    Before the threads start (opening the input and output, loading the model) the
    first signal stops at once. Once they run, the first one drains (the output is
    finished with every frame processed so far), the second stops at once (what was
    written is kept), and later ones are only counted: a KeyboardInterrupt raised
    into the middle of an encoder flush or a native library's call is what turned
    three quick Ctrl-Cs into an abort (SIGABRT) instead of exit 130.
    """

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.count = 0

    def __call__(self, signum: int, frame: object) -> None:
        self.count += 1
        if not self.pipeline.running_threads:
            # Also recorded: raised inside a native library's callback, the
            # KeyboardInterrupt can be lost, and waits in loops check the event.
            STOP_REQUESTED.set()
            raise KeyboardInterrupt
        if self.count == 1:
            print("streamfix: finishing the output (press Ctrl-C again to stop at once)", file=sys.stderr)
            self.pipeline.interrupt()
        elif self.count == 2:
            self.pipeline.interrupt(now=True)

    def install(self) -> None:
        import signal

        STOP_REQUESTED.clear()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self)

    @staticmethod
    def ignore_from_now() -> None:
        """The process is ending because of a signal: later ones are ignored until it
        has exited. Python's shutdown puts the default action back in place of a
        handler like ours, so a third quick Ctrl-C arriving then killed the finished
        process with SIGINT instead of letting it exit 130."""
        import signal

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)


def _sigterm_as_ctrl_c() -> None:
    """A run in pieces stops on SIGTERM as on Ctrl-C: the finished pieces stay in the
    work folder for the next run to reuse (segments/job.py)."""
    import signal

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def _cmd_run(args: argparse.Namespace) -> int:
    from streamfix.pipeline.pipeline import Pipeline, PipelineError, PipelineInterrupted

    if args.metrics_address is not None and args.metrics_port is None:
        raise OptionError("--metrics-address needs --metrics-port PORT")
    _check_stats_path(args.stats, args)
    config = _run_config(args)
    if config.scale.segment_seconds is not None:
        _sigterm_as_ctrl_c()
        return cmd_run_in_pieces(args, config)
    target = _stdout_target() if args.output == "-" else args.output
    pipeline = Pipeline(args.input, target, config, quiet=args.quiet)
    _Interrupts(pipeline).install()
    server = None
    if args.metrics_port is not None:
        from streamfix.serve.metrics_server import HOST, MetricsServer

        server = MetricsServer(args.metrics_port, [pipeline.metrics], address=args.metrics_address or HOST)
    try:
        result = pipeline.run()
    except PipelineInterrupted as stop:
        stop.result.output = args.output  # "-", not the private descriptor behind it
        _write_stats(args.stats, stop.result)
        held = stop.result.frames_out
        where = f"{stop.result.output} holds the {held} frames restored so far" if held else "no output written"
        print(f"streamfix: interrupted: {where}", file=sys.stderr)
        return 130
    except PipelineError as exc:
        if exc.user_error:
            raise
        # A bug, not a bad input: the traceback is what a bug report needs.
        traceback.print_exception(exc.__cause__, file=sys.stderr)
        print(f"streamfix: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.close()
    result.output = args.output
    _write_stats(args.stats, result)
    if not args.quiet:
        plan = result.output_video or {}
        tuned = "".join(f" {k} {v}" for k, v in (plan.get("options") or {}).items())
        video = {"copy": ", video copied",
                 "encode": f", CRF {plan.get('crf')}{tuned} from mean QP {plan.get('mean_qp')}"}
        print(f"streamfix: wrote {args.output}: {result.frames_out} frames ({result.restored} restored, "
              f"{result.passed_through} passed through) in {result.seconds:.1f} s, {result.fps:.1f} fps, "
              f"engine {result.engine}{video.get(plan.get('mode'), '')}", file=sys.stderr)
    return 0


def _add_bench(sub: argparse._SubParsersAction) -> None:
    from streamfix.benchmarks.bench import add_arguments

    p = sub.add_parser("bench", help="measure engine and pipeline speed on this machine",
                       description="Frames per second of each engine (model only) at 480p and 720p, "
                                   "then of the whole pipeline on a generated clip.")
    add_arguments(p)


def _cmd_bench(args: argparse.Namespace) -> int:
    from streamfix.benchmarks.bench import config_from_args, run

    # Progress on stderr, the markdown report on stdout (so it can be redirected).
    print(run(config_from_args(args), log=lambda line: print(line, file=sys.stderr, flush=True)))
    return 0


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="measure restoration against pristine sources (PSNR, SSIM, PSNR-B)",
        description="JPEG-compress image folders at given qualities and/or encode lossless videos at given "
                    "codec settings, restore them exactly as `streamfix run` does, and compare with the "
                    "sources on the luma plane. Writes report.md, results.json and crops.png.")
    p.add_argument("--images", nargs="+", type=Path, default=[], metavar="FOLDER", help="folders of pristine images")
    p.add_argument("--quality", nargs="+", type=positive_int, default=[10], metavar="Q",
                   help="JPEG qualities for --images (default: 10)")
    p.add_argument("--video", nargs="+", type=Path, default=[], metavar="SOURCE",
                   help="lossless videos: a folder of frames, a .y4m or a lossless video file")
    p.add_argument("--setting", nargs="+", default=[], metavar="CODEC[:PRESET]:CRF",
                   help="encodings for --video, e.g. libx264:40 libx265:medium:40")
    p.add_argument("--model", help="model name or weights file (default: chosen per input, as in `run`)")
    p.add_argument("--engine", default="auto", choices=ENGINE_NAMES)
    p.add_argument("--precision", default="auto", choices=PRECISION_NAMES)
    p.add_argument("--chroma", choices=CHROMA_MODES, help="what to do with colour planes")
    p.add_argument("--tier", choices=TIERS, help="full or light model (default: full)")
    p.add_argument("--gate", type=gate, metavar="auto|off|QP", help="the video model's clean-frame gate")
    p.add_argument("--lossless-only", action="store_true",
                   help="videos: skip the second measurement, a real run with the default output encoder")
    p.add_argument("--out", type=Path, default=Path("eval-out"), help="output folder (default: eval-out)")


def _cmd_eval(args: argparse.Namespace) -> int:
    from streamfix.quality.evaluate import VideoSetting, evaluate

    options = {"model": args.model, "engine": args.engine, "precision": args.precision}
    for name in ("chroma", "tier", "gate"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    evaluate(images=args.images, qualities=args.quality, videos=args.video,
             settings=[VideoSetting.parse(s) for s in args.setting], out_dir=args.out,
             restorer_options=options, delivered_output=not args.lossless_only,
             log=lambda line: print(line, file=sys.stderr))
    print(f"report: {args.out / 'report.md'}")
    return 0


COMMANDS = {
    "train": (_add_train, _cmd_train),
    "eval": (_add_eval, _cmd_eval),
    "run": (_add_run, _cmd_run),
    "info": (add_info, cmd_info),
    "bench": (_add_bench, _cmd_bench),
    "engine": (add_engine, cmd_engine),
    "batch": (add_batch, cmd_batch),
    "serve": (add_serve, cmd_serve),
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="streamfix", description="Remove compression artifacts (blocking, ringing) "
                     "from video and images with CAR-DRN.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _, command = COMMANDS[args.command]
    try:
        code = command(args)
    except StreamfixError as exc:
        print(f"streamfix: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("streamfix: interrupted", file=sys.stderr)
        code = 130
    except BrokenPipeError:
        # `streamfix info | head`: the reader left; stop quietly, and keep Python from
        # failing again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    if code == 130 and argv is None:  # the program itself, not a caller in its own process
        _Interrupts.ignore_from_now()
        if threading.active_count() > 1:
            # A helper thread is still inside a native call (an input open waiting for a
            # silent pipe): Python's shutdown would race it, and that ended a finished,
            # interrupted run with SIGSEGV instead of 130. Everything of ours is written.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
