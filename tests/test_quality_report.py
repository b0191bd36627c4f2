"""The quality report's bar table is computed from the raw results: a missed bar must
show as missed, with the margin, and a met one as met."""

from __future__ import annotations

import json

from streamfix.benchmarks.quality import bars_section


def _row(restored_psnr: float, gain_psnr: float, gain_psnr_b: float) -> dict:
    return {"count": 1, "restored_count": 1,
            "compressed": {"psnr": restored_psnr - gain_psnr, "ssim": 0.7, "psnr_b": 25.0},
            "restored": {"psnr": restored_psnr, "ssim": 0.8, "psnr_b": 25.0 + gain_psnr_b},
            "gain": {"psnr": gain_psnr, "ssim": 0.1, "psnr_b": gain_psnr_b}}


def _write(raw, part, results):
    (raw / part).mkdir(parents=True)
    (raw / part / "results.json").write_text(json.dumps({"results": results}))


def test_bars_say_met_and_missed_with_the_margin(tmp_path):
    _write(tmp_path, "jpeg", {"LIVE1_gray (JPEG)": {"q10": _row(29.137, 1.37, 3.5)},
                              "classic5 (JPEG)": {"q10": _row(29.30, 1.48, 2.9)}})
    video = {s: _row(30.0, g, 0.5) for s, g in [("x264 medium CRF 18", -0.01), ("x264 medium CRF 35", 0.4),
                                                  ("x264 medium CRF 40", 0.30), ("x264 medium CRF 45", 0.2),
                                                  ("x265 medium CRF 40", -0.02)]}
    _write(tmp_path, "video", {"BasketballPass_416x240_png": video, "foreman_qcif_10f.y4m": video})
    table = {line.split(" | ")[0].lstrip("| "): line for line in bars_section(tmp_path) if line.startswith("| ")}
    assert table["LIVE1_gray q10 PSNR"].endswith("| 29.137 | missed by 0.013 dB |")
    assert table["classic5 q10 PSNR"].endswith("| 29.300 | met |")
    assert table["PSNR-B gain over JPEG, q10"].endswith("| not met |")  # classic5 +2.9 < 3
    assert table["BasketballPass x264 CRF 40 gain"].endswith("| missed by 0.050 dB |")
    assert "not met" in next(v for k, v in table.items() if k.startswith("gain > 0"))  # x265 -0.02
    assert table["clean input, x264 CRF 18"].endswith("| met |")


def test_no_results_no_table(tmp_path):
    assert bars_section(tmp_path) == []
