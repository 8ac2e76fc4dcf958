"""What every box estimator shares: CorLoc as its score, boxes as its target."""

from .._metrics._corloc import corloc_score


class BoxEstimatorMixin:
    """Mixin for estimators that predict one box ``(xmin, ymin, xmax, ymax)`` per image."""

    def score(self, X, y, sample_weight=None):
        """CorLoc of the predicted boxes, in percent.

        Parameters
        ----------
        X : array-like
            Input of ``predict``.
        y : array-like of shape (n, 4), or list of (k_i, 4) arrays
            True boxes; with several per image a prediction is correct when it
            matches any of them (IoU > 0.5).
        sample_weight : array-like of shape (n,), default=None
            Weight of each image: CorLoc is then the weighted share of the
            images correctly localized. None weighs every image equally.

        Returns
        -------
        corloc : float
            Percentage of images (by weight) whose predicted box has IoU > 0.5
            with a true box.
        """
        return corloc_score(y, self.predict(X), sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        return tags
