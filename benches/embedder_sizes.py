#!/usr/bin/env python3
"""Compares face embedders on the fixture photos reduced to lobby sizes (issue 22).

Each photo of `FACES/<person>/*` is found at full size with RetinaFace-0.25 (the reference
pipeline of vision_reference.py), reduced (area filter) so that its eyes are E pixels apart,
smeared sideways over B pixels (motion blur) and embedded again on its own landmarks scaled
with it; the probe is compared with the other photos at full size (or, with `--matched`,
with the other photos degraded to the gallery size and blur given there). Printed per (E, B)
and embedder: genuine p05 / p50, impostor max, TAR at FAR 1 % (threshold-free: the impostors'
99th percentile), rank-1.

Embedders: MobileFaceNet-128 (`MODELS/mobilefacenet_128.onnx`, ArcFace 5-point alignment, the
one rollcall ships) always; with `--dlib`, dlib's ResNet-29 128-d face descriptor (the one other
face embedder obtainable on this project's machines: PyPI's `dlib-bin` and
`face_recognition_models`, in a venv of their own), aligned by dlib's own 5-point predictor at
full size, scaled with the photo. Descriptive only, not a test, not run by CI:

    python3 -m venv /var/tmp/dlibenv && /var/tmp/dlibenv/bin/pip install dlib-bin \
        face_recognition_models onnxruntime==1.31.1 numpy opencv-python-headless
    /var/tmp/dlibenv/bin/python benches/embedder_sizes.py --eyes 8,10,12,16,40 --blur 0,3,5 --dlib
    /var/tmp/dlibenv/bin/python benches/embedder_sizes.py --eyes 12 --blur 5 --matched 12:5
"""
import argparse
import glob
import json
import os
import sys

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vision_reference as vr  # noqa: E402


def load(faces, det, sp5):
    items = []
    for p in sorted(glob.glob(os.path.join(faces, "*", "*"))):
        bgr = cv2.imread(p, cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        boxes, _, lms = vr.detect(det, bgr)
        if len(boxes) == 0:
            continue
        i = int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))
        it = dict(person=os.path.basename(os.path.dirname(p)), rgb=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
                  box=boxes[i], lm=lms[i])
        if sp5 is not None:
            import dlib
            b = it["box"]
            shp = sp5(it["rgb"], dlib.rectangle(int(b[0]), int(b[1]), int(b[2]), int(b[3])))
            it["pts"] = np.array([[shp.part(k).x, shp.part(k).y] for k in range(5)], np.float32)
        items.append(it)
    return items


def degrade(it, eyes, blur):
    s = eyes / float(np.linalg.norm(it["lm"][1] - it["lm"][0]))
    h, w = it["rgb"].shape[:2]
    small = cv2.resize(it["rgb"], (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    if blur > 0:
        small = cv2.filter2D(small, -1, np.ones((1, blur), np.float32) / blur, borderType=cv2.BORDER_REPLICATE)
    return small, s


def metrics(gen, imp, ranks):
    gen, imp = np.array(gen), np.array(imp)
    thr = np.quantile(imp, 0.99)
    return dict(genuine_p05=round(float(np.quantile(gen, 0.05)), 3), genuine_p50=round(float(np.median(gen)), 3),
                impostor_max=round(float(imp.max()), 3), tar_far1=round(float((gen > thr).mean()), 3),
                rank1=round(float(np.mean(ranks)), 3))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=os.environ.get("ROLLCALL_MODELS_DIR", "../shared/models"))
    ap.add_argument("--faces", default=os.path.join(os.environ.get("ROLLCALL_FIXTURES_DIR", "../shared/fixtures"), "faces"))
    ap.add_argument("--eyes", default="8,10,12,16")
    ap.add_argument("--blur", default="0,3,5")
    ap.add_argument("--dlib", action="store_true", help="also dlib's ResNet descriptor (needs dlib + face_recognition_models)")
    ap.add_argument("--matched", help="E:B: the gallery photos degraded to E px between the eyes and B px of blur")
    a = ap.parse_args()

    det = vr.session(os.path.join(a.models, "retinaface_mnet025.onnx"), 1)
    emb = vr.session(os.path.join(a.models, "mobilefacenet_128.onnx"), 1)
    embedders = {"mobilefacenet_128": lambda rgb, it, s: vr.embed(emb, [vr.align(rgb, it["lm"] * s)])[0]}
    sp5 = None
    if a.dlib:
        import dlib
        import face_recognition_models as frm
        sp5 = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        rec = dlib.face_recognition_model_v1(frm.face_recognition_model_location())

        def dl(rgb, it, s):
            b, pts = it["box"] * s, it["pts"] * s
            shp = dlib.full_object_detection(dlib.rectangle(int(b[0]), int(b[1]), int(b[2]), int(b[3])),
                                             [dlib.point(int(round(x)), int(round(y))) for x, y in pts])
            v = np.array(rec.compute_face_descriptor(rgb, shp))
            return v / np.linalg.norm(v)
        embedders["dlib_resnet_128"] = dl
    items = load(a.faces, det, sp5)
    for name, f in embedders.items():
        if a.matched:
            ge, gb = (int(x) for x in a.matched.split(":"))
            for it in items:
                small, s = degrade(it, ge, gb)
                it["g_" + name] = f(small, it, s)
        else:
            for it in items:
                it["g_" + name] = f(it["rgb"], it, 1.0)
    for eyes in (int(x) for x in a.eyes.split(",")):
        for blur in (int(x) for x in a.blur.split(",")):
            row = dict(eyes=eyes, blur=blur, gallery=a.matched or "full size")
            for name, f in embedders.items():
                gen, imp, ranks = [], [], []
                for i, it in enumerate(items):
                    small, s = degrade(it, eyes, blur)
                    v = f(small, it, s)
                    best = {}
                    for j, o in enumerate(items):
                        if j == i:
                            continue
                        c = float(v @ o["g_" + name])
                        (gen if o["person"] == it["person"] else imp).append(c)
                        best[o["person"]] = max(best.get(o["person"], -9.0), c)
                    if any(o["person"] == it["person"] for j, o in enumerate(items) if j != i):
                        ranks.append(max(best, key=best.get) == it["person"])
                row[name] = metrics(gen, imp, ranks)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
