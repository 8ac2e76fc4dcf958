"""``sensloc fit`` / ``sensloc predict`` on genuine photos: boxes, speed, memory.

Needs the shared data beside the project (``../shared/data``; or
``--shared DIR``). With MobileNet v1 0.25 and the class score, as README's
headline:

1. **The written boxes are the pipeline's.** ``sensloc fit`` on a split,
   ``sensloc predict`` on ``val`` to a CSV: CorLoc computed from the CSV's
   pixel boxes against CorLoc of the loaded pipeline's ``predict``. Fitted on
   ``train`` (honest: ``val`` is unseen) and on ``trainval`` as the issue asks
   (``val`` is then inside the training photos: inflated, a check of the file
   only).
2. **Speed.** ``sensloc predict`` on N photos (a whole process: imports, the
   localizer's load, rows, fsyncs) against a Python process that loads the
   same localizer and calls ``transform`` + ``predict`` on the same photos,
   interleaved, medians of ``--repeats``.
3. **Memory.** Peak resident memory of ``sensloc predict`` on N and 5 N
   photos (symbolic links to the shared photos, cycled), each in a fresh
   process.

    python benchmarks/bench_predict.py               # N = 1,000
    python benchmarks/bench_predict.py --quick       # N = 100, one repeat
"""

import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _common import (  # noqa: E402
    base_parser,
    interleaved_medians,
    print_header,
    print_table,
    write_json,
)

ROOT = Path(__file__).resolve().parents[1]
MOBILENET = "mobilenet-v1-0.25/mobilenet_v1_0.25_224_imagenet.weights.h5"
#: Runs a command and prints the peak resident memory of its process tree's largest process.
PEAK_RSS = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
            "stdout=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)")
PYTHON_PREDICT = ("import sys; from sklearn_sensloc import load_localizer; "
                  "paths = open(sys.argv[2]).read().split(chr(10)); "
                  "load_localizer(sys.argv[1]).predict(paths)")


def sensloc(*args):
    return [sys.executable, "-m", "sklearn_sensloc._cli", *map(str, args)]


def run(command):
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def csv_boxes(path, images):
    with open(path, newline="") as handle:
        rows = {row["image"]: row for row in csv.DictReader(handle)}
    return np.array([[float(rows[i][c]) / float(rows[i][s]) for c, s in
                      (("xmin", "width"), ("ymin", "height"), ("xmax", "width"),
                       ("ymax", "height"))] for i in images])


def same_boxes(shared, work, split):
    from sklearn_sensloc import corloc_interval, correct_localizations, load_localizer, load_voc

    voc = shared / "voc2012-animals"
    localizer = work / f"{split}.sensloc"
    run(sensloc("fit", "--voc", voc, "--split", split, "--model", "mobilenet", "--weights",
                shared / MOBILENET, "--output", localizer, "-q"))
    val = load_voc(voc, "val")
    output = work / f"{split}-val.csv"
    run(sensloc("predict", localizer, *val.images, "--output", output, "-q", "--overwrite"))
    from_csv = correct_localizations(val.all_boxes, csv_boxes(output, val.images))
    from_pipeline = correct_localizations(val.all_boxes,
                                          load_localizer(localizer).predict(val.images))
    low, high = corloc_interval(from_csv)
    return {"fitted on": split, "CorLoc from CSV": 100 * from_csv.mean(),
            "95% interval": f"[{low:.1f}, {high:.1f}]",
            "CorLoc of pipeline": 100 * from_pipeline.mean(),
            "photos differing": int((from_csv != from_pipeline).sum())}, localizer


def photo_links(shared, folder, n):
    """``n`` distinct paths in ``folder``, sorted: symbolic links to the shared photos, cycled."""
    photos = sorted((shared / "voc2012-animals" / "JPEGImages").glob("*.jpg"))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(n):
        link = folder / f"{index:05d}_{photos[index % len(photos)].name}"
        if not link.exists():
            link.symlink_to(photos[index % len(photos)])
        paths.append(str(link))
    return paths


def main():
    parser = base_parser(__doc__)
    parser.add_argument("--n", type=int, default=1000, help="photos timed (default: 1000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    args = parser.parse_args()
    n, repeats = (100, 1) if args.quick else (args.n, args.repeats)
    shared = Path(args.shared)
    print_header()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        checks = [same_boxes(shared, work, split) for split in ("train", "trainval")]
        print_table("CorLoc on val from the written CSV and from the pipeline",
                    [row for row, _ in checks],
                    ["fitted on", "CorLoc from CSV", "95% interval", "CorLoc of pipeline",
                     "photos differing"])
        localizer = checks[0][1]
        folders = {count: work / f"photos-{count}" for count in (n, 5 * n)}
        paths = {count: photo_links(shared, folder, count) for count, folder in folders.items()}
        listing = work / "photos.txt"
        listing.write_text("\n".join(paths[n]))
        contenders = {
            "sensloc predict": lambda: run(sensloc("predict", localizer, folders[n], "--output",
                                                   work / "timed.csv", "-q", "--overwrite")),
            "Python transform + predict": lambda: run(
                [sys.executable, "-c", PYTHON_PREDICT, localizer, listing]),
        }
        # Whole processes: each call pays its own start, so no warm-up is owed.
        medians = {name: median for name, (median, _) in
                   interleaved_medians(contenders, repeats, warmup=0).items()}
        ratio = medians["sensloc predict"] / medians["Python transform + predict"]
        print_table(f"{n} photos, whole processes, medians of {repeats}",
                    [{"contender": name, "seconds": medians[name],
                      "photos/s": n / medians[name]} for name in contenders]
                    + [{"contender": "ratio sensloc / Python", "seconds": ratio}],
                    ["contender", "seconds", "photos/s"])
        peaks = {}
        for count, folder in folders.items():
            out = subprocess.run(
                [sys.executable, "-c", PEAK_RSS, *sensloc(
                    "predict", localizer, folder, "--output", work / f"rss{count}.csv", "-q")],
                check=True, capture_output=True, text=True,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            peaks[count] = int(out.stdout.split()[-1])
        growth = peaks[5 * n] / peaks[n] - 1
        print_table("peak resident memory of sensloc predict, each in a fresh process",
                    [{"photos": count, "peak RSS (MiB)": peak / 2**20}
                     for count, peak in peaks.items()]
                    + [{"photos": f"{5 * n} vs {n}", "peak RSS (MiB)": f"{100 * growth:+.1f}%"}],
                    ["photos", "peak RSS (MiB)"])
    write_json(args.json, "predict", [row for row, _ in checks],
               seconds=medians, ratio=ratio, peak_rss=peaks, rss_growth=growth)
    print(json.dumps({"ratio": round(ratio, 3), "rss_growth": round(growth, 4)}))


if __name__ == "__main__":
    main()
