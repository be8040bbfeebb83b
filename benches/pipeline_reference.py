#!/usr/bin/env python3
"""Python reference for `rollcall bench pipeline`: the streaming pipeline on the fixture clip,
written the usual way (OpenCV VideoCapture, onnxruntime, numpy): decode, sample at --fps of
media time, detect (RetinaFace-0.25, 640 letterbox), align (5-point similarity), embed
(MobileFaceNet), cosine search against the enrolled students' photos (brute force, numpy).
No tracker or debouncer (those cost microseconds); the quality gate is the detector threshold.

Prints one JSON object: {"frames", "faces", "seconds", "fps", "faces_per_s", "matches"}.
"""
import argparse
import json
import time

import cv2
import numpy as np

import vision_reference as vr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True)
    ap.add_argument("--clip", required=True)
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--enroll", action="append", default=[], help="ID=PHOTO")
    a = ap.parse_args()
    det = vr.session(f"{a.models}/retinaface_mnet025.onnx", a.threads)
    emb = vr.session(f"{a.models}/mobilefacenet_128.onnx", a.threads)

    ids, vecs = [], []
    for e in a.enroll:
        sid, path = e.split("=", 1)
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        boxes, _, lms = vr.detect(det, bgr)
        if len(boxes) == 0:
            continue
        big = int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))
        ids.append(sid)
        vecs.append(vr.embed(emb, [vr.align(rgb, lms[big])])[0])
    gallery = np.stack(vecs) if vecs else np.zeros((0, 128), np.float32)

    cap = cv2.VideoCapture(a.clip)
    if not cap.isOpened():
        raise SystemExit(f"cannot open {a.clip}")
    step = 1.0 / a.fps if a.fps > 0 else 0.0
    next_pos = 0.0
    frames = faces = 0
    matches = {}
    t = time.perf_counter()
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        pos = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        if pos + 1e-6 < next_pos:
            continue
        next_pos = pos + step
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        _, _, lms = vr.detect(det, bgr)
        crops = [vr.align(rgb, l) for l in lms]
        for v in vr.embed(emb, crops):
            if len(gallery):
                s = gallery @ v
                i = int(np.argmax(s))
                if s[i] >= 0.42:
                    matches[ids[i]] = matches.get(ids[i], 0) + 1
        frames += 1
        faces += len(crops)
    secs = time.perf_counter() - t
    print(json.dumps({
        "frames": frames,
        "faces": faces,
        "seconds": round(secs, 3),
        "fps": round(frames / secs, 1) if secs > 0 else 0.0,
        "faces_per_s": round(faces / secs, 1) if secs > 0 else 0.0,
        "matches": matches,
        "threads": a.threads,
    }))


if __name__ == "__main__":
    main()
