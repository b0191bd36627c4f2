"""Measuring restoration: PSNR, SSIM and PSNR-B (measures.py, pure NumPy) and
`streamfix eval` (evaluate.py)."""
