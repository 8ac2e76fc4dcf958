"""The box score: which number per predicted box ranks boxes by how likely they are right.

A box is right when its IoU with a true box of its photo exceeds 0.5 (every box of the
photo counts, as in ``sensloc evaluate``). Each candidate score is measured twice:

* **CV-train**, where the choice was made: 5-fold cross-validation within the shared
  ``train`` split (1,197 photos). Each fold's box estimator is fitted on the other four
  folds, so every training photo gets an out-of-fold box, its hit and its candidate
  scores; a fitted score (``BoxScorer``) is itself cross-validated over those rows
  (5 more folds), so no photo is scored by a model that saw it.
* **val**, to confirm: the box estimator fitted on all of ``train`` predicts the 500
  ``val`` photos; a fitted score is fitted on all the out-of-fold rows of ``train``.

For each, the table gives the AUC of the score for hit vs miss and the gap between the
CorLoc of the better-scored half of the photos and the other half, each with a 95%
bootstrap interval (photos resampled). A single number is oriented (higher = more likely
right) by the sign of its CV-train AUC.

Settings: the README's headline (MobileNet v1 0.25, class score, package defaults, pool 4,
``BoxRegressor()``), where the score was chosen; and, untouched by the choice, the Gestalt
Total target and the ``HeuristicBoxEstimator()`` as the box estimator.

Run from the repository root with the shared data beside it (``../shared/data``)::

    python benchmarks/box_score.py                       # every setting, about 6 minutes on 2 cores
    python benchmarks/box_score.py --settings class:learned --bootstrap 200   # quicker

Maps (``SensitivityTransformer(..., pool=4)``) and the classifier's outputs (one forward
pass, for the classifier-confidence candidates) are computed once into
``sensloc-output/box-score/`` (git-ignored) and reused by later runs.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from _common import base_parser, print_header, print_table, write_json  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
WEIGHTS = "mobilenet-v1-0.25/mobilenet_v1_0.25_224_imagenet.weights.h5"
CACHE = Path("sensloc-output/box-score")
SETTINGS = ("class:learned", "class:heuristic", "gestalt:learned", "gestalt:heuristic")
#: Where the score was chosen; the others are checks.
CHOSEN_IN = "class:learned"
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
SEED = 0


def main():
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA), help="the shared data folder")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    args = parser.parse_args()
    from sklearn_sensloc import load_voc

    print_header()
    root = Path(args.data) / "voc2012-animals"
    data = {split: load_voc(root, split) for split in ("train", "val")}
    outputs = {split: classifier_outputs(args.data, data[split].images, split)
               for split in data}
    results = []
    for setting in args.settings:
        target, estimator = setting.split(":")
        maps = {split: sensitivity_maps(args.data, data[split].images, target, split)
                for split in data}
        results.extend(run_setting(setting, estimator, maps, data, outputs, args.bootstrap))
    write_json(args.json, "box_score", results)


def sensitivity_maps(data_dir, images, target, split):
    """Pool-4 maps of the shared classifier with the package defaults, stored once."""
    path = CACHE / f"maps-{target}-{split}.npy"
    if not path.exists():
        from sklearn_sensloc import SensitivityTransformer

        sens = SensitivityTransformer(model="mobilenet", weights=str(Path(data_dir) / WEIGHTS),
                                      target=target, cache=False, verbose=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(path, sens.fit(None).transform(images))
    return np.load(path)


def classifier_outputs(data_dir, images, split):
    """The classifier's logits (one forward pass per photo), stored once."""
    path = CACHE / f"logits-{split}.npy"
    if not path.exists():
        from sklearn_sensloc import SensitivityTransformer
        from sklearn_sensloc._images._batches import ImageSource

        sens = SensitivityTransformer(model="mobilenet", weights=str(Path(data_dir) / WEIGHTS),
                                      target="class").fit(None)
        engine, source = sens.gradient_engine(), ImageSource(images)
        batches = [
            np.asarray(engine.forward(np.stack(
                [source.image(i, sens.input_size_) for i in range(start, min(start + 32, len(source)))]
            )))
            for start in range(0, len(source), 32)
        ]
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(path, np.concatenate(batches))
    return np.load(path)


def box_estimator(kind):
    from sklearn_sensloc import BoxRegressor, HeuristicBoxEstimator

    # random_state as in sensloc evaluate, whose CorLoc the README quotes.
    return BoxRegressor(random_state=SEED) if kind == "learned" else HeuristicBoxEstimator()


def predictions(kind, train_maps, train_boxes, test_maps):
    """Boxes of the estimator fitted on the training maps, for the test maps and their mirrors."""
    est = box_estimator(kind).fit(train_maps, train_boxes)
    side = int(np.sqrt(test_maps.shape[1]))
    mirrored = est.predict(test_maps.reshape(-1, side, side)[:, :, ::-1].reshape(len(test_maps), -1))
    return est.predict(test_maps), np.column_stack(
        [1 - mirrored[:, 2], mirrored[:, 1], 1 - mirrored[:, 0], mirrored[:, 3]])


def run_setting(setting, kind, maps, data, outputs, n_boot):
    from sklearn.model_selection import KFold

    from sklearn_sensloc import correct_localizations

    other = "heuristic" if kind == "learned" else "learned"
    train, val = data["train"], data["val"]
    # Out-of-fold boxes of every training photo, and of the other estimator for agreement.
    boxes = {name: np.zeros((len(train.boxes), 4)) for name in ("box", "mirror", "other")}
    for fit_rows, test_rows in KFold(5, shuffle=True, random_state=SEED).split(maps["train"]):
        args = (maps["train"][fit_rows], train.boxes[fit_rows], maps["train"][test_rows])
        boxes["box"][test_rows], boxes["mirror"][test_rows] = predictions(kind, *args)
        boxes["other"][test_rows] = predictions(other, *args)[0]
    val_boxes = dict(zip(("box", "mirror"), predictions(kind, maps["train"], train.boxes,
                                                        maps["val"]), strict=True))
    val_boxes["other"] = predictions(other, maps["train"], train.boxes, maps["val"])[0]
    hits = {"train": correct_localizations(train.all_boxes, boxes["box"]),
            "val": correct_localizations(val.all_boxes, val_boxes["box"])}
    print(f"\n##### {setting}: CorLoc {100 * hits['train'].mean():.1f} (CV-train), "
          f"{100 * hits['val'].mean():.1f} (val)"
          + ("  <- the score was chosen here" if setting == CHOSEN_IN else "  (check)"))

    scores = candidate_scores(kind, maps, {"train": boxes, "val": val_boxes}, hits, outputs)
    rows = []
    for name, (train_score, val_score) in scores.items():
        row = {"setting": setting, "candidate": name}
        for split, score in (("CV-train", train_score), ("val", val_score)):
            key = "train" if split == "CV-train" else "val"
            measured = ranking(hits[key], score, n_boot)
            row.update({f"{split} {k}": v for k, v in measured.items()})
        rows.append(row)
    columns = ["candidate"] + [f"{split} {k}" for split in ("CV-train", "val")
                               for k in ("AUC", "AUC 95%", "gap", "gap 95%")]
    print_table(f"{setting}: ranking of hit vs miss (gap: CorLoc of the better-scored half "
                "minus the other half, points)", rows, columns)
    chosen = scores["BoxScorer (chosen)"]
    print_table(f"{setting}: BoxScorer, val halves", halves(hits["val"], chosen[1]),
                ["half", "photos", "CorLoc", "95%", "mean score"])
    print_table(f"{setting}: BoxScorer, val, keep boxes with score >= t",
                kept_table(hits["val"], chosen[1]), ["t", "kept", "kept %", "CorLoc of kept", "95%"])
    print_table(f"{setting}: BoxScorer, val, by fifths of the score (calibration)",
                fifths(hits["val"], chosen[1]), ["fifth", "mean score", "CorLoc", "95%"])
    confidence = scores["BoxScorer + classifier confidence"]
    print_table(f"{setting}: what the classifier's confidence adds (paired bootstrap)",
                [{"split": split, **paired_difference(hits[key], confidence[i], chosen[i], n_boot)}
                 for i, (split, key) in enumerate((("CV-train", "train"), ("val", "val")))],
                ["split", "AUC difference", "95%", "gap difference", "gap 95%"])
    return rows


def candidate_scores(kind, maps, boxes, hits, outputs):
    """``{name: (CV-train scores, val scores)}``, every score higher = more likely right."""
    from scipy.special import softmax
    from sklearn.metrics import roc_auc_score

    from sklearn_sensloc import box_iou, box_score_features
    from sklearn_sensloc._box_estimators._box_score import BOX_SCORE_FEATURES, CONFIDENCE_FEATURES

    probabilities = {split: softmax(outputs[split], axis=1) for split in outputs}
    features = {split: box_score_features(maps[split], boxes[split]["box"],
                                          class_probabilities=probabilities[split])
                for split in ("train", "val")}
    names = BOX_SCORE_FEATURES + tuple(f"classifier: {name}" for name in CONFIDENCE_FEATURES)
    raw = {name: (features["train"][:, i], features["val"][:, i]) for i, name in enumerate(names)}
    for name, box in (("agreement with the other estimator's box", "other"),
                      ("agreement with the mirrored map's box", "mirror")):
        if kind == "heuristic" and box == "mirror":
            continue  # the heuristic is mirror-symmetric: its agreement is always 1
        raw[name] = tuple(box_iou(boxes[split]["box"], boxes[split][box])
                          for split in ("train", "val"))
    scores = {}
    for name, (train_score, val_score) in raw.items():
        sign = 1.0 if roc_auc_score(hits["train"], train_score) >= 0.5 else -1.0
        scores[name + (" (negated)" if sign < 0 else "")] = (sign * train_score, sign * val_score)
    scores["BoxScorer (chosen)"] = fitted_score(maps, boxes, hits)
    scores["BoxScorer + classifier confidence"] = fitted_score(maps, boxes, hits, probabilities)
    return scores


def fitted_score(maps, boxes, hits, probabilities=None):
    """``BoxScorer`` out of fold over the training photos, and fitted on all of them for val."""
    from sklearn.model_selection import StratifiedKFold

    from sklearn_sensloc import BoxScorer

    def rows(split, selected=slice(None)):
        extra = None if probabilities is None else probabilities[split][selected]
        return maps[split][selected], boxes[split]["box"][selected], extra

    train = np.zeros(len(hits["train"]))
    for fit_rows, test_rows in StratifiedKFold(5, shuffle=True, random_state=SEED + 1).split(
            maps["train"], hits["train"]):
        X, box, extra = rows("train", fit_rows)
        scorer = BoxScorer().fit(X, box, hits["train"][fit_rows], extra)
        train[test_rows] = scorer.score_boxes(*rows("train", test_rows))
    X, box, extra = rows("train")
    scorer = BoxScorer().fit(X, box, hits["train"], extra)
    return train, scorer.score_boxes(*rows("val"))


def half_gap(hits, score):
    """CorLoc of the better-scored half minus the other half's, in points."""
    order = np.argsort(-score, kind="stable")
    half = len(order) // 2
    return 100 * (hits[order[:half]].mean() - hits[order[half:]].mean())


def ranking(hits, score, n_boot):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(SEED)
    auc, gap = [], []
    for _ in range(n_boot):
        rows = rng.integers(0, len(hits), len(hits))
        auc.append(roc_auc_score(hits[rows], score[rows]))
        gap.append(half_gap(hits[rows], score[rows]))
    return {"AUC": roc_auc_score(hits, score), "AUC 95%": _interval(auc, 3),
            "gap": half_gap(hits, score), "gap 95%": _interval(gap, 1)}


def paired_difference(hits, better, base, n_boot):
    """AUC and gap of ``better`` minus those of ``base``, on the same resampled photos."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(SEED)
    auc, gap = [], []
    for _ in range(n_boot):
        rows = rng.integers(0, len(hits), len(hits))
        auc.append(roc_auc_score(hits[rows], better[rows]) - roc_auc_score(hits[rows], base[rows]))
        gap.append(half_gap(hits[rows], better[rows]) - half_gap(hits[rows], base[rows]))
    return {"AUC difference": roc_auc_score(hits, better) - roc_auc_score(hits, base),
            "95%": _interval(auc, 3),
            "gap difference": half_gap(hits, better) - half_gap(hits, base),
            "gap 95%": _interval(gap, 1)}


def halves(hits, score):
    order = np.argsort(-score, kind="stable")
    half = len(order) // 2
    return [_corloc_row({"half": name}, hits[rows], score[rows])
            for name, rows in (("better-scored", order[:half]), ("other", order[half:]))]


def kept_table(hits, score):
    rows = []
    for threshold in THRESHOLDS:
        kept = score >= threshold
        row = {"t": threshold, "kept": int(kept.sum()), "kept %": 100 * kept.mean()}
        if kept.any():
            row.update(_corloc_row({}, hits[kept], score[kept]))
            row["CorLoc of kept"] = row.pop("CorLoc")
        rows.append(row)
    return rows


def fifths(hits, score):
    order = np.argsort(score, kind="stable")
    return [_corloc_row({"fifth": f"{i + 1} (lowest)" if i == 0 else str(i + 1)},
                        hits[rows], score[rows])
            for i, rows in enumerate(np.array_split(order, 5))]


def _corloc_row(row, hits, score):
    from sklearn_sensloc import corloc_interval

    low, high = corloc_interval(hits)
    return {**row, "photos": len(hits), "CorLoc": 100 * hits.mean(),
            "95%": f"[{low:.1f}, {high:.1f}]", "mean score": float(score.mean())}


def _interval(values, digits):
    low, high = np.percentile(values, [2.5, 97.5])
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


if __name__ == "__main__":
    main()
