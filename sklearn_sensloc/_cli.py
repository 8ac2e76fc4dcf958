"""The ``sensloc`` command: ``fit``, ``predict``, ``demo`` and ``evaluate``.

``fit`` makes a localizer file from labelled photos and ``predict`` writes the
boxes of new photos with it; ``demo`` runs the whole method on the embedded
offline sample; ``evaluate`` runs the paper's protocol on a PASCAL VOC style
tree. Each is a thin layer over :func:`run_fit`, :func:`write_boxes`,
:func:`run_demo` and :func:`run_evaluate`, which tests and notebooks can call
with any ``model`` (a small ``keras.Model`` included).

Exit codes: 0 success, 1 a data error (one line naming the file), 2 a usage
error (argparse's message), 130 interrupted. Pass ``--debug`` (or set
``SENSLOC_TRACEBACK=1``) to see the traceback of an error.
"""

import argparse
import io
import os
import shlex
import sys
import warnings
from pathlib import Path

from ._utils._validation import DEPRECATED, check_image_size, check_positive_int, renamed_parameter
from ._version import __version__
from .datasets import SplitNotFoundError

#: Scenes of ``sensloc demo``: with the offline VGG16 on 2 CPU cores the demo
#: takes about 3 minutes (see docs/offline_default.rst for the measurement).
DEMO_N_IMAGES = 120
DEMO_OUTPUT = "sensloc-output"
DEMO_TEST_SIZE = 0.3
#: ``sensloc demo``'s first choice: a small genuine ImageNet classifier that
#: Keras downloads once (14 MB); without a network the demo falls back to the
#: offline backbone, which runs everywhere but localizes no better than the
#: center box on genuine photos.
DEMO_CLASSIFIER = "mobilenetv2"


# --------------------------------------------------------------------------- jobs


def choose_demo_model(stream):
    """``(model, target)`` for the demo: a genuine classifier if Keras can get it, else offline.

    Says on ``stream`` which one is used and what that means for the numbers.
    """
    from ._classifiers._models import OFFLINE_MODEL
    from ._maps._transformer import SensitivityTransformer

    try:
        SensitivityTransformer(model=DEMO_CLASSIFIER, target="class").fit(None)
    except ConnectionError as error:
        print(f"sensloc: {error}", file=stream)
        print(f"Using the offline backbone {OFFLINE_MODEL!r} instead (Gestalt Total target): it "
              "runs without a network but is fine-tuned for edges, not classes, and on genuine "
              "photos it localizes no better than the center box. Rerun with a network, or pass "
              "--model NAME --weights FILE, for a genuine classifier.", file=stream, flush=True)
        return OFFLINE_MODEL, "gestalt"
    print(f"Using {DEMO_CLASSIFIER!r}, a genuine ImageNet classifier (Keras' ImageNet weights), "
          "with the class-score target.", file=stream, flush=True)
    return DEMO_CLASSIFIER, "class"


def run_demo(
    model="auto",
    n_images=DEMO_N_IMAGES,
    output=DEMO_OUTPUT,
    *,
    weights=None,
    preprocessing="auto",
    random_state=0,
    test_size=DEMO_TEST_SIZE,
    image_size=224,
    aggregations=("max",),
    batch_size=16,
    n_timing=8,
    verbose=True,
    stream=None,
    seed=DEPRECATED,
):
    """Fit and score the method on the embedded sample; write tables and figures.

    The scenes of :func:`~sklearn_sensloc.datasets.make_sample_scenes` are
    split into train and test parts; the learned pipeline
    (``SensitivityTransformer(model, target="gestalt")`` + ``BoxRegressor``,
    i.e. maps pooled by 4), the heuristic (sigma chosen on the training part)
    and the center box are scored on the test part with CorLoc.

    Parameters
    ----------
    model : "auto", str, path or keras.Model, default="auto"
        As for :class:`~sklearn_sensloc.SensitivityTransformer`; ``"auto"``:
        :data:`DEMO_CLASSIFIER` with the class target when Keras can download
        it (or has it), else the offline ``"vgg16-hed"`` with the Gestalt
        Total target (see :func:`choose_demo_model`). Other models use the
        Gestalt Total.
    weights, preprocessing
        As for :class:`~sklearn_sensloc.SensitivityTransformer`.
    n_images : int, default=120
        Number of scenes, train and test together.
    output : str or path, default="sensloc-output"
        Folder for the tables, figures and cache; a rerun reuses it.
    random_state : int, default=0
        Seed of every random step: the scenes, their split and the regressor.
    test_size : float, default=0.3
        Fraction of the scenes held out for testing.
    image_size : int or (int, int), default=224
        Size of the generated scenes, an int ``n`` for ``n x n`` or a pair of
        equal sides (the model resizes them if needed).
    aggregations : sequence of str, default=("max",)
        Aggregations scored; all share one backward pass.
    batch_size : int, default=16
        Images per backward pass.
    n_timing : int, default=8
        Test images timed for the forward pass and the map; 0 skips it.
    verbose : bool, default=True
        Progress bars.
    stream : file-like, default=sys.stdout
        Where the report is printed.
    seed : int
        Deprecated old name of ``random_state`` (a ``FutureWarning``; removed
        in 0.4).

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        What :func:`~sklearn_sensloc.evaluate_localization`
        returns, with ``figures`` (paths of the PNG files) added.
    """
    from sklearn.model_selection import train_test_split

    from .datasets import make_sample_scenes
    from .evaluation import evaluate_localization, model_label

    random_state = renamed_parameter("run_demo", "seed", seed, "random_state", random_state, 0)
    stream = sys.stdout if stream is None else stream
    target = "gestalt"
    if isinstance(model, str) and model == "auto":
        model, target = choose_demo_model(stream)
    data = make_sample_scenes(n_images, image_size=image_size, random_state=random_state)
    train, test = train_test_split(range(n_images), test_size=test_size,
                                   random_state=random_state)
    if len(train) < 2 or len(test) < 1:
        raise ValueError(f"n_images={n_images} is too few to split into train and test parts.")
    print(f"Embedded sample: {n_images} scenes ({len(train)} train, {len(test)} test), "
          f"seed {random_state}; model {model_label(model)}, target {target!r}.", file=stream,
          flush=True)
    result = evaluate_localization(
        data.images[train], data.boxes[train], data.images[test], data.boxes[test],
        test_labels=[data.labels[i] for i in test], model=model, weights=weights,
        preprocessing=preprocessing, target=target,
        aggregations=aggregations, batch_size=batch_size, n_timing=n_timing, output=output,
        random_state=random_state, verbose=verbose,
        description={"data": "embedded sample (make_sample_scenes)", "n_images": n_images,
                     "seed": random_state, "test_size": test_size},
    )
    result.figures = _write_figures(result, data.images[test], data.boxes[test], output)
    _report(result, stream, ("table3_methods", "timings"))
    return result


def run_evaluate(voc, train_split="trainval", test_split="test", *, classes=None, limit=None,
                 output="sensloc-evaluation", verbose=True, stream=None, **kwargs):
    """The paper's protocol on a VOC-format tree; tables and figures into ``output``.

    Parameters
    ----------
    voc : str or path
        Root of the VOC tree.
    train_split, test_split : str
        Id lists in ``ImageSets/Main``.
    classes : list of str, optional
        Classes kept; default all.
    limit : int, optional
        First ``limit`` images of each split only.
    output : str or path, default="sensloc-evaluation"
        Folder for the tables, figures and cache; a rerun resumes.
    verbose : bool, default=True
        Progress bars.
    stream : file-like, default=sys.stdout
        Where the report is printed.
    **kwargs
        Passed to :func:`~sklearn_sensloc.evaluate_localization`
        (``model``, ``weights``, ``preprocessing``, ``target``,
        ``aggregations``, ``sigmas``, ``pool``, ``allow_overlap``, ...).

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
    """
    from .evaluation import evaluate_voc

    stream = sys.stdout if stream is None else stream
    result = evaluate_voc(voc, train_split, test_split, classes=classes, limit=limit,
                          output=output, verbose=verbose, **kwargs)
    result.figures = _write_figures(result, result.test_images, result.test_boxes, output)
    _report(result, stream, ("table1_per_class", "table2_heuristic_sigma", "table3_methods",
                             "timings"))
    return result


def run_fit(data, output, *, model, weights=None, preprocessing="auto", target="auto",
            image_size=None, batch_size=32, pool=4, aggregation="max", estimator="learned",
            random_state=0, verbose=True, stream=None, record=None, seed=DEPRECATED):
    """Fit a localizer on labelled photos and save it as one file.

    Parameters
    ----------
    data : :class:`~sklearn.utils.Bunch`
        Labelled photos as :func:`~sklearn_sensloc.load_voc`,
        :func:`~sklearn_sensloc.load_coco` or
        :func:`~sklearn_sensloc.load_csv_boxes` return them (``images``,
        ``boxes``).
    output : str or path
        The localizer file written (:func:`~sklearn_sensloc.save_localizer`).
    model, weights, preprocessing, image_size, batch_size, pool, aggregation
        As for :class:`~sklearn_sensloc.SensitivityTransformer`.
    target : "auto" or as for SensitivityTransformer, default="auto"
        ``"auto"``: the class score for a classifier, the Gestalt Total for a
        network without one (see :func:`default_target`).
    estimator : {"learned", "heuristic"}, default="learned"
        :class:`~sklearn_sensloc.BoxRegressor` (seeded by ``random_state``) or
        :class:`~sklearn_sensloc.HeuristicBoxEstimator`, its smoothing and
        share of pixels chosen on the training boxes. The box score is
        learned from its boxes of 5 folds of the photos, each fold's boxes by
        the estimator fitted on the others (``fit_box_scorer``).
    verbose : bool, default=True
        Progress bars.
    stream : file-like, default=sys.stdout
        Where the summary is printed.
    random_state : int, default=0
        Seed of every random step: the regressor and the folds of the box
        score.
    record : dict, optional
        Kept in the file: how it was made (the command line).
    seed : int
        Deprecated old name of ``random_state`` (a ``FutureWarning``; removed
        in 0.4).

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        The fitted localizer.
    """
    import numpy as np
    from sklearn.pipeline import Pipeline

    from ._box_estimators._box_score import box_scorer_from_maps
    from ._box_estimators._heuristic import HeuristicBoxEstimator
    from ._box_estimators._regressor import BoxRegressor
    from ._maps._transformer import SensitivityTransformer
    from ._photos._localizer import save_localizer
    from ._photos._predict_photos import readable_maps

    random_state = renamed_parameter("run_fit", "seed", seed, "random_state", random_state, 0)
    stream = sys.stdout if stream is None else stream
    if target == "auto":
        target = default_target(model, weights)
    # Every photo is mapped once: no cache to grow with their number.
    transformer = SensitivityTransformer(
        model=model, weights=weights, preprocessing=preprocessing, target=target,
        image_size=image_size, batch_size=batch_size, pool=pool, aggregation=aggregation,
        cache=False, verbose=verbose,
    ).fit(None)
    boxes = {image: box for image, box in zip(data.images, data.boxes)}
    readable, maps = readable_maps(transformer, list(boxes))
    if len(readable) < 2:
        raise ValueError(f"Only {len(readable)} of the {len(boxes)} photos could be read: too "
                         "few to fit a localizer.")
    box_estimator = (BoxRegressor(random_state=random_state) if estimator == "learned"
                     else HeuristicBoxEstimator())
    training_boxes = np.array([boxes[image] for image, _ in readable])
    box_estimator.fit(maps, training_boxes)
    transformer.set_params(cache=True, verbose=False)
    pipeline = Pipeline([("sens", transformer), ("box", box_estimator)])
    try:
        scorer = box_scorer_from_maps(box_estimator, maps, training_boxes,
                                      map_shape=transformer.map_shape_,
                                      random_state=random_state)
    except ValueError as error:
        warnings.warn(f"The localizer gets no box score: {error} Its boxes are written with "
                      "an empty score.", UserWarning, stacklevel=2)
        scorer = None
    record = dict(record or {}, n_photos=len(readable), n_unreadable=len(boxes) - len(readable))
    save_localizer(pipeline, output, box_scorer=scorer, record=record)
    print(f"Fitted on {len(readable)} photos ({transformer.target_name_}, "
          f"{type(box_estimator).__name__}); wrote the localizer {output}.", file=stream)
    if len(readable) < len(boxes):
        print(f"{len(boxes) - len(readable)} photo(s) could not be read and were left out "
              "(named above).", file=stream)
    stream.flush()
    return pipeline


def default_target(model, weights=None):
    """``"class"`` for a network with a classifier, ``"gestalt"`` for one without.

    A classifier's output is one score per class, ``(batch, n_classes)``; a
    backbone such as ``"vgg16-hed"`` outputs feature maps, and only the
    Gestalt Total of its last convolutional layer is a target there.
    """
    from ._classifiers._models import resolve_model
    from ._engine import model_network

    network = model_network(resolve_model(model, weights)[0], None)
    try:
        network.target("class", "logit")
    except ValueError:
        # The one refusal of a class target: an output that is not (batch, n_classes).
        return "gestalt"
    return "class"


def run_predict(localizer, paths, output, *, overlays=None, image_ids=None, batch_size=None,
                overwrite=False, verbose=True, stream=None):
    """Boxes of the photos under ``paths`` into ``output`` with the localizer file ``localizer``.

    Parameters
    ----------
    localizer : str or path
        A localizer file (``sensloc fit``, :func:`~sklearn_sensloc.save_localizer`).
    paths : sequence of str
        Photo files, folders (searched recursively) and glob patterns.
    output, overlays, image_ids, batch_size, overwrite
        As for :func:`~sklearn_sensloc.write_boxes`; ``image_ids`` is a COCO
        annotation file whose ``images`` give each file name its id.
    verbose : bool, default=True
        A progress bar on standard error.
    stream : file-like, default=sys.stdout
        Where the summary is printed.

    Returns
    -------
    summary : :class:`~sklearn.utils.Bunch`
        As :func:`~sklearn_sensloc.write_boxes` returns it.
    """
    from ._photos._localizer import load_localizer
    from ._photos._predict_photos import write_boxes
    from .datasets import find_images

    stream = sys.stdout if stream is None else stream
    images = find_images(*paths)
    ids = None if image_ids is None else coco_image_ids(image_ids)
    summary = write_boxes(load_localizer(localizer), images, output, overlays=overlays,
                          image_ids=ids, batch_size=batch_size, overwrite=overwrite,
                          progress=verbose)
    kept = f", {summary.n_kept} kept from an earlier run" if summary.n_kept else ""
    skipped = f", {summary.n_skipped} unreadable skipped" if summary.n_skipped else ""
    print(f"{len(images)} photos: {summary.n_written} boxes written to {output}{kept}{skipped}.",
          file=stream, flush=True)
    return summary


def coco_image_ids(path):
    """``{file_name: id}`` of the ``images`` of a COCO annotation file."""
    import json

    try:
        with open(path, encoding="utf-8") as handle:
            images = json.load(handle)["images"]
        return {os.path.basename(image["file_name"]): image["id"] for image in images}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"Cannot read image ids from the COCO file {os.fspath(path)!r}: "
                         f"{type(error).__name__}: {error}.") from error


def _write_figures(result, images, boxes, output, n_shown=8):
    from ._plots import plot_boxes, plot_maps
    from ._utils._atomic import atomic_write_bytes

    n_shown = min(n_shown, len(images))
    images, boxes = images[:n_shown], boxes[:n_shown]
    aggregation = next(iter(result.test_maps))
    maps = result.test_maps[aggregation][:n_shown]
    learned = f"learned ({aggregation})"
    heuristic = next(name for name in result.predictions if name.startswith(f"heuristic ({aggregation}"))
    predictions = {name: result.predictions[name][:n_shown] for name in (learned, heuristic)}
    # Titles default to the image ids (file stems) when the images are paths.
    figures = {
        "fig1_maps.png": plot_maps(images, maps, indices=range(min(6, n_shown)), ncols=3),
        "fig2_boxes.png": plot_boxes(images, boxes, predictions, ncols=4,
                                     center_box=result.predictions["center box"][:n_shown]),
    }
    paths = []
    for name, figure in figures.items():
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100)
        path = Path(output) / name
        atomic_write_bytes(path, buffer.getvalue())
        paths.append(str(path))
    return paths


def _report(result, stream, names):
    from ._utils._tables import table_markdown

    print(file=stream)
    for name in names:
        if name in result.tables:
            print(table_markdown(result.tables[name]), file=stream)
    reused = f"; reused from an earlier run: {', '.join(result.reused)}" if result.reused else ""
    print(f"Outputs are in {Path(result.output).resolve()}{reused}:", file=stream)
    for path in result.files + result.get("figures", []):
        if Path(path).parent == Path(result.output):
            print(f"  {Path(path).name}", file=stream)
    stream.flush()


# --------------------------------------------------------------------------- parsing


def _positive_int(text):
    try:
        return check_positive_int(int(text), "value")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None


def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _fraction(text):
    value = _non_negative_float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value


def _image_size(text):
    """'224' (square) or '240x320' (height x width), as ``image_size`` means in Python."""
    parts = text.lower().split("x")
    try:
        return check_image_size(int(parts[0]) if len(parts) == 1 else [int(p) for p in parts])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a size like 224 or 240x320, got {text!r}") from None


def _target(text):
    """'gestalt', 'class', a class index or a layer name."""
    return int(text) if text.lstrip("-").isdigit() else text


def build_parser():
    """The ``sensloc`` argument parser."""
    from ._classifiers._models import DEFAULT_MODEL, OFFLINE_MODEL
    from ._images._preprocessing import PREPROCESSINGS
    from ._maps._steps import AGGREGATIONS
    from .evaluation import DEFAULT_SIGMAS

    parser = argparse.ArgumentParser(
        prog="sensloc",
        description="Object localization from the sensitivity maps of a pretrained CNN.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run_options = argparse.ArgumentParser(add_help=False)
    run_options.add_argument("--batch-size", type=_positive_int, default=None,
                             help="images per backward pass")
    seed_options = argparse.ArgumentParser(add_help=False)
    seed_options.add_argument(
        "--seed", type=int, default=0,
        help="seed of every random step of the command, the random_state of each: demo's "
             "scenes, split and regressor; fit's regressor and box-score folds; evaluate's "
             "regressor (default: 0)")
    run_options.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    run_options.add_argument("--debug", action="store_true",
                             help="show the traceback of an error (or set SENSLOC_TRACEBACK=1)")

    model_options = argparse.ArgumentParser(add_help=False, parents=[run_options])
    model_options.add_argument(
        "--model", default=None,
        help="a keras.applications ImageNet classifier by name (vgg16, resnet50, mobilenet, "
             "efficientnetb0, convnexttiny, ...; downloaded by Keras unless --weights), "
             "vgg16-hed (offline), a .keras file, or timm:NAME / torchvision:NAME, a PyTorch "
             "classifier (the torch extra; runs on KERAS_BACKEND=torch, set for it when unset) "
             f"(default: demo: {DEMO_CLASSIFIER} if Keras can download it, else "
             f"{OFFLINE_MODEL}; fit and evaluate: {DEFAULT_MODEL})")
    model_options.add_argument(
        "--weights", metavar="FILE", default=None,
        help="weights file for the architecture named by --model, instead of its download "
             "(mobilenet: the width is read from the file; timm:/torchvision: a state dict "
             ".pth, .pt, .bin or .safetensors)")
    model_options.add_argument(
        "--preprocessing", choices=("auto", *PREPROCESSINGS), default="auto",
        help="pixel preprocessing before the network: auto is a named model's own and none "
             "for a .keras file (default: auto)")

    target_options = argparse.ArgumentParser(add_help=False)
    target_options.add_argument(
        "--target", type=_target, default="auto",
        help="auto, gestalt, class, a class index or a layer name (default: auto, the class "
             "score for a classifier, the Gestalt Total for a network without one)")
    target_options.add_argument(
        "--image-size", type=_image_size, default=None, metavar="SIZE",
        help="images resized to SIZE (224 or HxW) for a model that accepts any size "
             "(default: the model's own, else 224)")

    timing_options = argparse.ArgumentParser(add_help=False)
    timing_options.add_argument("--aggregation", nargs="+", choices=AGGREGATIONS, default=["max"],
                                help="aggregation(s) of the channel derivatives (default: max)")
    timing_options.add_argument("--timing-images", type=int, default=None, metavar="N",
                                help="test images timed (forward pass, map); 0 skips the timings")

    fit = commands.add_parser(
        "fit", parents=[model_options, target_options, seed_options],
        help="make a localizer file from labelled photos",
        description="Compute the sensitivity maps of labelled photos, fit the box estimator on "
                    "them, and write one localizer file that holds the classifier, the map "
                    "settings and the fitted estimator: sensloc predict boxes new photos with "
                    "it, on any machine.",
    )
    source = fit.add_mutually_exclusive_group(required=True)
    source.add_argument("--voc", metavar="ROOT",
                        help="VOC tree with Annotations/, JPEGImages/, ImageSets/Main/")
    source.add_argument("--coco", metavar="FILE",
                        help="COCO instances JSON (boxes in pixels); with --images")
    source.add_argument("--csv", metavar="FILE",
                        help="CSV with columns image,xmin,ymin,xmax,ymax in pixels; with --images")
    fit.add_argument("--split", default=None,
                     help="with --voc: the id list ImageSets/Main/SPLIT.txt (default: every "
                          "annotation)")
    fit.add_argument("--images", metavar="DIR",
                     help="with --coco or --csv: the folder the file names are relative to")
    fit.add_argument("--classes", nargs="+", default=None,
                     help="classes kept (default: all)")
    fit.add_argument("--aggregation", choices=AGGREGATIONS, default="max",
                     help="aggregation of the channel derivatives (default: max)")
    fit.add_argument("--pool", type=_positive_int, default=4,
                     help="pooling of the maps fed to the box estimator (default: 4)")
    fit.add_argument("--estimator", choices=("learned", "heuristic"), default="learned",
                     help="learned: the linear map from maps to boxes (BoxRegressor); heuristic: "
                          "smooth, keep the strongest pixels, enclose them (default: learned)")
    fit.add_argument("--output", required=True, metavar="FILE",
                     help="the localizer file written, e.g. my.sensloc")

    predict = commands.add_parser(
        "predict", parents=[run_options],
        help="box new photos with a localizer file",
        description="Write the box of every photo, in pixels of the photo, with a score that "
                    "ranks boxes by how likely they are right. Rows are written as batches "
                    "finish; the same command, run again after an interruption, completes "
                    "the output. Unreadable photos are named and skipped.",
    )
    predict.add_argument("localizer", metavar="LOCALIZER", help="a file made by sensloc fit")
    predict.add_argument("paths", nargs="+", metavar="PATH",
                         help="photos, folders (searched recursively) or glob patterns")
    predict.add_argument("--output", required=True, metavar="FILE",
                         help="boxes.csv (image,width,height,xmin,ymin,xmax,ymax,score) or "
                              "boxes.json (COCO results)")
    predict.add_argument("--overlays", metavar="DIR", default=None,
                         help="also draw each photo with its box and score into DIR")
    predict.add_argument("--image-ids", metavar="FILE", default=None,
                         help="a COCO annotation file whose images give the image_id of each "
                              "file name (default: the file name's number, else its stem)")
    predict.add_argument("--overwrite", action="store_true",
                         help="replace an existing output instead of completing it")

    demo = commands.add_parser(
        "demo", parents=[model_options, timing_options, seed_options],
        help="fit and score on the embedded offline sample",
        description="Fit the learned map on the embedded sample (real object crops pasted on "
                    "real backgrounds) and report CorLoc of the learned map, the heuristic and "
                    "the center box on its test part; write tables and figures.",
    )
    demo.add_argument("--n-images", type=_positive_int, default=DEMO_N_IMAGES,
                      help=f"number of scenes, train and test together (default: {DEMO_N_IMAGES})")
    demo.add_argument("--test-size", type=_fraction, default=DEMO_TEST_SIZE,
                      help=f"fraction of the scenes held out (default: {DEMO_TEST_SIZE})")
    demo.add_argument("--output", default=DEMO_OUTPUT,
                      help=f"output folder (default: {DEMO_OUTPUT})")

    evaluate = commands.add_parser(
        "evaluate", parents=[model_options, target_options, timing_options, seed_options],
        help="the paper's protocol on a PASCAL VOC style tree",
        description="Train on one split of a VOC-format tree, test on another (every ground-"
                    "truth box of the kept classes, difficult objects handled as in VOC), and "
                    "write Table 1 (per class), Table 2 (heuristic sigma sweep), Table 3 "
                    "(methods and center box) and the timings as Markdown, CSV and JSON. "
                    "A rerun with the same --output resumes.",
    )
    evaluate.add_argument("--voc", required=True, metavar="ROOT",
                          help="VOC tree with Annotations/, JPEGImages/, ImageSets/Main/")
    evaluate.add_argument("--train-split", default="trainval", help="(default: trainval)")
    evaluate.add_argument("--test-split", default="test", help="(default: test)")
    evaluate.add_argument("--classes", nargs="+", default=None, help="classes kept (default: all)")
    evaluate.add_argument("--sigmas", nargs="+", type=_non_negative_float,
                          default=[float(sigma) for sigma in DEFAULT_SIGMAS],
                          help="heuristic sigmas in full-resolution map pixels (default: "
                               + " ".join(map(str, DEFAULT_SIGMAS)) + ")")
    evaluate.add_argument("--pool", type=_positive_int, default=4,
                          help="pooling of the maps fed to the learned map (default: 4)")
    evaluate.add_argument("--output", default="sensloc-evaluation",
                          help="output folder; a rerun resumes (default: sensloc-evaluation)")
    evaluate.add_argument("--limit", type=_positive_int, default=None, metavar="N",
                          help="only the first N images of each split")
    evaluate.add_argument("--allow-overlap", action="store_true",
                          help="score test images that are also training images (inflated "
                               "CorLoc; recorded in summary.json) instead of refusing")
    evaluate.add_argument("--min-class-images", type=_positive_int, default=20, metavar="N",
                          help="Table 1 also averages the classes with at least N test "
                               "images (default: 20)")
    return parser


def _check_usage(parser, args):
    """Checks that argparse's types cannot express; a failure exits with code 2."""
    from ._classifiers._models import DEFAULT_MODEL, check_model, library_model

    if args.command == "predict":
        if not os.path.isfile(args.localizer):
            parser.error(f"LOCALIZER {args.localizer!r}: no such file")
        from ._photos._localizer import localizer_backend

        if localizer_backend(args.localizer) == "torch" and "keras" not in sys.modules:
            # As for --model timm:NAME: the localizer's PyTorch classifier picks the backend.
            os.environ.setdefault("KERAS_BACKEND", "torch")
        if args.overlays is not None and os.path.exists(args.overlays) \
                and not os.path.isdir(args.overlays):
            parser.error(f"--overlays {args.overlays!r} exists and is not a folder")
        return
    if args.model is None:
        args.model = "auto" if args.command == "demo" and args.weights is None else DEFAULT_MODEL
    if library_model(args.model) is not None and "keras" not in sys.modules:
        # A PyTorch classifier picks Keras' backend, unless the user chose one
        # (which check_model then refuses if it is not PyTorch).
        os.environ.setdefault("KERAS_BACKEND", "torch")
    if not (args.model == "auto" and args.command == "demo"):
        try:
            check_model(args.model, args.weights)
        except (ValueError, OSError) as error:
            parser.error(" ".join(str(error).split()))
    if args.command == "fit":
        if (args.coco or args.csv) and not args.images:
            parser.error(f"--{'coco' if args.coco else 'csv'} needs --images DIR, the folder "
                         "its file names are relative to")
        if args.voc and args.images:
            parser.error("--images is for --coco and --csv; a VOC tree has its JPEGImages/")
        if args.split and not args.voc:
            parser.error("--split is for --voc")
        if os.path.isdir(args.output):
            parser.error(f"--output {args.output!r} is a folder; give a file name such as "
                         "my.sensloc")
        return
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        parser.error(f"--output {args.output!r} exists and is not a folder")
    if args.timing_images is not None and args.timing_images < 0:
        parser.error("--timing-images must be >= 0")
    if args.command == "evaluate":
        if not os.path.isdir(args.voc):
            parser.error(f"--voc {args.voc!r}: no such folder")
    if args.command == "demo" and args.n_images < 4:
        parser.error("--n-images must be at least 4 (train and test parts)")


def _fit_data(args):
    """The labelled photos ``sensloc fit`` was given, and how to name them in the record."""
    from . import datasets

    if args.voc:
        return datasets.load_voc(args.voc, args.split, classes=args.classes), {
            "voc": os.path.abspath(args.voc), "split": args.split}
    if args.coco:
        return datasets.load_coco(args.coco, args.images, classes=args.classes), {
            "coco": os.path.abspath(args.coco), "images": os.path.abspath(args.images)}
    return datasets.load_csv_boxes(args.csv, args.images, classes=args.classes), {
        "csv": os.path.abspath(args.csv), "images": os.path.abspath(args.images)}


def _run(args, argv):
    verbose = not args.quiet
    if args.command == "predict":
        return run_predict(args.localizer, args.paths, args.output, overlays=args.overlays,
                           image_ids=args.image_ids, batch_size=args.batch_size,
                           overwrite=args.overwrite, verbose=verbose)
    options = {"model": args.model, "weights": args.weights, "preprocessing": args.preprocessing,
               "verbose": verbose}
    if args.batch_size is not None:
        options["batch_size"] = args.batch_size
    if args.command == "fit":
        data, source = _fit_data(args)
        return run_fit(data, args.output, target=args.target, image_size=args.image_size,
                       pool=args.pool, aggregation=args.aggregation, estimator=args.estimator,
                       random_state=args.seed,
                       record={"data": source, "command": shlex.join(["sensloc", *argv])},
                       **options)
    options["aggregations"] = args.aggregation
    if args.timing_images is not None:
        options["n_timing"] = args.timing_images
    if args.command == "demo":
        return run_demo(n_images=args.n_images, output=args.output, random_state=args.seed,
                        test_size=args.test_size, **options)
    target = default_target(args.model, args.weights) if args.target == "auto" else args.target
    return run_evaluate(args.voc, args.train_split, args.test_split, classes=args.classes,
                        limit=args.limit, output=args.output, target=target,
                        sigmas=args.sigmas, pool=args.pool, random_state=args.seed,
                        image_size=args.image_size, allow_overlap=args.allow_overlap,
                        min_class_images=args.min_class_images, **options)


def main(argv=None):
    """Entry point of the ``sensloc`` console script; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    _check_usage(parser, args)
    debug = args.debug or bool(os.environ.get("SENSLOC_TRACEBACK"))
    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.showwarning = _show_warning
            _run(args, argv)
    except KeyboardInterrupt:
        done = ("no localizer was written" if args.command == "fit"
                else "finished steps are kept and a rerun resumes")
        print(f"sensloc: interrupted; {done}.", file=sys.stderr)
        return 130
    except Exception as error:
        if debug:
            raise
        message = " ".join(str(error).split())
        if isinstance(error, SplitNotFoundError):
            message += " " + _split_advice(args, error)
        if not isinstance(error, (OSError, ValueError, ImportError)):
            # Not an error this package raises on purpose: say what it was and how to see more.
            message = f"{type(error).__name__}: {message} (rerun with --debug for the traceback)"
        print(f"sensloc: error: {message}", file=sys.stderr)
        return 1
    return 0


def _split_advice(args, error):
    """Which option names the missing split, and what it may be instead."""
    if args.command == "fit":
        option = "--split"
    else:
        option = "--test-split" if error.split == args.test_split else "--train-split"
    choices = f"one of {', '.join(error.available)}" if error.available else "a split file there"
    return f"Pass {option} with {choices}."


def _show_warning(message, category, filename, lineno, file=None, line=None):
    # One line, without the source location that means nothing to a command-line user.
    print(f"sensloc: warning: {' '.join(str(message).split())}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
