"""Metrics. ``paired``: L1 / PSNR / SSIM for image-to-image models."""
