#!/usr/bin/env python3
"""Track templates from `rollcall bench sightings SCENARIO --out FILE` (issue 22).

Each walk-through of the scenario (its `appearance`) is one track here, a perfect one: every
face the detector matched to that person in that walk-through. A track's template is the mean
of the embeddings of its N best sightings that passed the quality gate (chosen by `--by`:
the gate's overall quality, the crop's sharpness, the face's size or the embedder's raw output
norm; plain mean unless `--weighted`, which weights each by its quality as the tracker does),
normalised, and compared with every student's enrollment embeddings (the best over their
photos). A student's template is accepted when its top-1 is that student at >= `--threshold`
with a margin >= `--margin` over the next student, the rule of the tracker's template accept;
for a stranger the figure is its template's best similarity to any student.

With `--centre W` each template is centred on its camera's mean as the tracker does
(`TrackerConfig::camera_mean_weight`): the mean of the camera's passed sightings in the frames
before the walk-through's first sighting, once there are `--centre-min` of them, is taken off
`W` times (both at unit norm) and the result renormalised; such a template is judged by
`--centred-threshold` (the matcher's `template_centred_threshold`).

Only the standard library: runs with any Python 3.8+.

    python3 benches/sightings_templates.py faces_3.jsonl faces_4.jsonl --best 1,2,3,5 [--json]
"""
import argparse
import bisect
import collections
import json
import math
import sys


def load(path):
    with open(path) as f:
        head = json.loads(f.readline())
        rows = [json.loads(line) for line in f if line.strip()]
    return head["students"], rows


def normalised(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v] if n > 0 else v


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def chooser(by, kernel):
    return {
        "quality": lambda r: r["overall"],
        "sharp": lambda r: r["sharp"],
        "size": lambda r: r["iod"],
        "norm": lambda r: r["v"][kernel]["norm"],
    }[by]


def camera_means(rows, kernel):
    """Per camera: (times, running sums) of the passed sightings in time order."""
    per = collections.defaultdict(list)
    for r in rows:
        if r.get("detected") and r.get("passed"):
            per[r["camera"]].append((r["t"], r["v"][kernel]["emb"]))
    out = {}
    for cam, xs in per.items():
        xs.sort(key=lambda x: x[0])
        times, sums, acc = [], [], [0.0] * len(xs[0][1])
        for t, e in xs:
            acc = [a + b for a, b in zip(acc, e)]
            times.append(t)
            sums.append((acc, len(times)))
        out[cam] = (times, sums)
    return out


def centre_of(means, camera, t0, minimum):
    """The camera's mean (unit norm) of the passed sightings before `t0`, or None."""
    if camera not in means:
        return None
    times, sums = means[camera]
    k = bisect.bisect_left(times, t0)
    if k == 0 or sums[k - 1][1] < minimum:
        return None
    return normalised(sums[k - 1][0])


def analyse(path, best, by, kernel, threshold, margin, weighted, centre=0.0, centre_min=50,
            centred_threshold=0.21):
    students, rows = load(path)
    means = camera_means(rows, kernel) if centre > 0 else {}
    tracks = collections.defaultdict(list)
    info = {}
    for r in rows:
        a = r.get("appearance")
        if a is None:
            continue
        info[a] = (r["kind"], r["person"], r.get("lesson"))
        tracks[a].append(r)
    key = chooser(by, kernel)
    accepted, arrivals, genuine, stranger_best, misses = 0, 0, [], None, []
    for a in sorted(info):
        kind, person, lesson = info[a]
        detected = [r for r in tracks[a] if r["detected"]]
        passed = [r for r in detected if r["passed"]]
        chosen = sorted(passed, key=key, reverse=True)[:best]
        template = None
        if chosen:
            w = [max(r["overall"], 1e-6) if weighted else 1.0 for r in chosen]
            embs = [r["v"][kernel]["emb"] for r in chosen]
            template = normalised([sum(wi * e[i] for wi, e in zip(w, embs)) / sum(w)
                                   for i in range(len(embs[0]))])
        limit = threshold
        if template is not None and centre > 0:
            first = min(tracks[a], key=lambda r: r["t"])
            c = centre_of(means, first["camera"], first["t"], centre_min)
            if c is not None:
                template = normalised([x - centre * m for x, m in zip(template, c)])
                limit = centred_threshold
        sims = {}
        if template is not None:
            sims = {s: max(dot(template, e) for e in es) for s, es in students.items()}
        ranked = sorted(sims.items(), key=lambda kv: -kv[1])
        if kind == "student":
            arrivals += 1
            g = sims.get(person)
            nxt = max((v for s, v in sims.items() if s != person), default=-1.0)
            ok = (g is not None and ranked[0][0] == person and g >= limit
                  and g - nxt >= margin)
            accepted += ok
            if g is not None:
                genuine.append(g)
            if not ok:
                misses.append({"appearance": a, "person": person, "lesson": lesson,
                               "detected": len(detected), "passed": len(passed),
                               "similarity": None if g is None else round(g, 3),
                               "next": None if g is None else round(nxt, 3)})
        elif ranked:
            stranger_best = max(stranger_best or -1.0, ranked[0][1])
    genuine.sort()
    p05 = genuine[round(0.05 * (len(genuine) - 1))] if genuine else None
    return {"file": path, "best": best, "arrivals": arrivals, "accepted": accepted,
            "genuine_p05": None if p05 is None else round(p05, 3),
            "stranger_best": None if stranger_best is None else round(stranger_best, 3),
            "misses": misses}


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("files", nargs="+")
    p.add_argument("--best", default="3", help="comma-separated N (sightings per template)")
    p.add_argument("--by", default="quality", choices=["quality", "sharp", "size", "norm"])
    p.add_argument("--kernel", default="bilinear", help="which crop kind of the file")
    p.add_argument("--threshold", type=float, default=0.30)
    p.add_argument("--margin", type=float, default=0.10)
    p.add_argument("--weighted", action="store_true", help="weight sightings by quality")
    p.add_argument("--centre", type=float, default=0.0,
                   help="take this much of the camera's mean off each template (0: off)")
    p.add_argument("--centre-min", type=int, default=50,
                   help="passed sightings the camera needs before its mean is used")
    p.add_argument("--centred-threshold", type=float, default=0.21)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    out = []
    for n in [int(x) for x in a.best.split(",")]:
        runs = [analyse(f, n, a.by, a.kernel, a.threshold, a.margin, a.weighted, a.centre,
                        a.centre_min, a.centred_threshold) for f in a.files]
        strangers = [r["stranger_best"] for r in runs if r["stranger_best"] is not None]
        total = {"best": n, "arrivals": sum(r["arrivals"] for r in runs),
                 "accepted": sum(r["accepted"] for r in runs),
                 "stranger_best": max(strangers) if strangers else None, "runs": runs}
        out.append(total)
        if not a.json:
            print(f"best {n} by {a.by}: {total['accepted']} / {total['arrivals']} accepted, "
                  f"stranger's best template {total['stranger_best']}")
            for r in runs:
                print(f"  {r['file']}: {r['accepted']} / {r['arrivals']}, genuine p05 "
                      f"{r['genuine_p05']}, stranger {r['stranger_best']}")
                for m in r["misses"]:
                    print(f"    missed {m}")
    if a.json:
        json.dump(out, sys.stdout)
        print()


if __name__ == "__main__":
    main(sys.argv[1:])
