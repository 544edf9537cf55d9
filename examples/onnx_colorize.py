"""Colourize a photo with a gankit colorizer exported by `gankit export RUN --pipeline --out colorize.onnx`.

Needs only onnxruntime, numpy and Pillow:  python onnx_colorize.py colorize.onnx photo.jpg colour.png
"""

import sys

import numpy as np
import onnxruntime as ort
from PIL import Image

model, src, dst = sys.argv[1:4]
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
photo = np.asarray(Image.open(src).convert("RGB"))  # (H, W, 3) uint8, any size; gray photos work too
(colour,) = session.run(None, {"image": photo})  # (H, W, 3) uint8, same size
Image.fromarray(colour).save(dst)
