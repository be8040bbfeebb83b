#!/usr/bin/env python3
"""Python reference for `rollcall bench vision`: the same pipeline (RetinaFace-0.25 letterboxed
to 640x640, prior decoding, NMS, 5-point similarity alignment, MobileFaceNet) written the usual
way with onnxruntime + numpy + OpenCV, on the same models, frame and thread count.

Prints one JSON object: {"stages": {name: {"median_ms", "p90_ms", "min_ms", "iters"}}, ...}.
Run by the Rust benchmark in the same run so the ratio compares like with like.
"""
import argparse
import json
import os
import time

import cv2
import numpy as np
import onnxruntime as ort

TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


def session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def priors(size=640):
    out = []
    for step, mins in ((8, (16, 32)), (16, (64, 128)), (32, (256, 512))):
        n = int(np.ceil(size / step))
        for i in range(n):
            for j in range(n):
                for m in mins:
                    out.append(((j + 0.5) * step / size, (i + 0.5) * step / size, m / size, m / size))
    return np.array(out, dtype=np.float32)


PRIORS = priors()


def letterbox(bgr, size=640):
    h, w = bgr.shape[:2]
    s = min(size / w, size / h)
    nw, nh = int(round(w * s)), int(round(h * s))
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    canvas[:nh, :nw] = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
    blob = (canvas.astype(np.float32) - np.array([104, 117, 123], dtype=np.float32)).transpose(2, 0, 1)[None]
    return np.ascontiguousarray(blob), s


def nms(boxes, scores, thr=0.4):
    order = scores.argsort()[::-1]
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        xx1 = np.maximum(boxes[i, 0], boxes[order[1:], 0])
        yy1 = np.maximum(boxes[i, 1], boxes[order[1:], 1])
        xx2 = np.minimum(boxes[i, 2], boxes[order[1:], 2])
        yy2 = np.minimum(boxes[i, 3], boxes[order[1:], 3])
        inter = np.maximum(0, xx2 - xx1) * np.maximum(0, yy2 - yy1)
        a = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
        b = (boxes[order[1:], 2] - boxes[order[1:], 0]) * (boxes[order[1:], 3] - boxes[order[1:], 1])
        order = order[1:][inter / (a + b - inter + 1e-9) <= thr]
    return keep


def detect(det, bgr, score_thr=0.5):
    blob, s = letterbox(bgr)
    loc, conf, landm = det.run(None, {"input0": blob})
    loc, conf, landm = loc[0], conf[0][:, 1], landm[0]
    idx = np.where(conf > score_thr)[0]
    p = PRIORS[idx]
    l = loc[idx]
    cxcy = p[:, :2] + l[:, :2] * 0.1 * p[:, 2:]
    wh = p[:, 2:] * np.exp(l[:, 2:] * 0.2)
    boxes = np.concatenate([cxcy - wh / 2, cxcy + wh / 2], 1) * 640 / s
    lm = landm[idx].reshape(-1, 5, 2)
    lm = (p[:, None, :2] + lm * 0.1 * p[:, None, 2:]) * 640 / s
    keep = nms(boxes, conf[idx])
    return boxes[keep], conf[idx][keep], lm[keep]


def align(rgb, lm):
    m, _ = cv2.estimateAffinePartial2D(lm.astype(np.float32), TEMPLATE, method=cv2.LMEDS)
    return cv2.warpAffine(rgb, m, (112, 112), borderValue=0)


def embed(emb, faces):
    out = []
    for f in faces:
        x = ((f.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[None]
        v = emb.run(None, {"input": np.ascontiguousarray(x)})[0][0]
        out.append(v / np.linalg.norm(v))
    return out


def timed(iters, f):
    for _ in range(3):
        f()
    ms = []
    for _ in range(iters):
        t = time.perf_counter()
        f()
        ms.append((time.perf_counter() - t) * 1e3)
    ms.sort()
    pct = lambda q: ms[int(round((len(ms) - 1) * q))]
    return {"median_ms": round(pct(0.5), 3), "p90_ms": round(pct(0.9), 3), "min_ms": round(ms[0], 3), "iters": iters}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True)
    ap.add_argument("--frame", required=True)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    det = session(os.path.join(a.models, "retinaface_mnet025.onnx"), a.threads)
    emb = session(os.path.join(a.models, "mobilefacenet_128.onnx"), a.threads)
    bgr = cv2.imread(a.frame, cv2.IMREAD_COLOR)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    boxes, scores, lms = detect(det, bgr)
    if len(boxes) != 1:
        raise SystemExit(f"expected one face in the frame, found {len(boxes)}")
    face = align(rgb, lms[0])

    def frame():
        b, s, l = detect(det, bgr)
        embed(emb, [align(rgb, x) for x in l])

    stages = {
        "preprocess": timed(a.iters, lambda: letterbox(bgr)),
        "detect": timed(a.iters, lambda: detect(det, bgr)),
        "align": timed(a.iters * 10, lambda: align(rgb, lms[0])),
        "embed_1": timed(a.iters, lambda: embed(emb, [face])),
        "embed_8": timed(a.iters, lambda: embed(emb, [face] * 8)),
        "frame": timed(a.iters, frame),
    }
    print(json.dumps({"onnxruntime": ort.__version__, "threads": a.threads, "stages": stages}))


if __name__ == "__main__":
    main()
