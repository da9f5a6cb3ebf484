"""Baselines the fine-tuned model must beat, fitted on exactly the same folds.

* ``majority``: always the most frequent label of the training folds.
* ``tfidf_logreg``: word uni+bigram TF-IDF, logistic regression.
* ``frozen_embedding_logreg``: the backbone's mean-pooled sentence vectors,
  frozen and L2-normalised (as sentence-transformers uses all-MiniLM-L6-v2),
  logistic regression: a linear probe.
* ``frozen_embedding_logreg_default``: the same with scikit-learn's defaults
  (C=1, no class weights), untuned. In leave-one-article-out CV it scores higher
  than the tuned probe, so it is kept as a harder baseline.
* ``frozen_embedding_logreg_balanced``: C=1 with balanced class weights, the
  linear probe the default model starts from (LP-FT).
* ``minilm_*``: the three frozen-embedding baselines on all-MiniLM-L6-v2, when the
  model's backbone is another one.
* ``setfit``: SetFit on the same backbone (:func:`fit_predict_setfit`), only
  when the optional ``setfit`` package is importable (``pip install -e
  ".[setfit]"``); otherwise reported as skipped.

For the two tuned logistic regressions the regularisation strength ``C`` and
the class weighting (none or balanced) are chosen by an inner
leave-one-article-out search on the training articles only, so the test
article never influences them. All baselines but SetFit are deterministic;
SetFit's contrastive fine-tuning depends on its seed, like the model's.

Example:
    >>> from negstance.train.baselines import make_baseline
    >>> classifier = make_baseline("majority", seed=0)
    >>> classifier.fit([[0], [0], [0]], [2, 2, 0]).predict([[0]]).tolist()
    [2]
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, make_scorer
from sklearn.model_selection import GridSearchCV, LeaveOneGroupOut
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import Normalizer

from negstance.model.backbones import resolve_model_path
from negstance.model.checkpoint import build_model, check_max_length
from negstance.model.classifier import StanceClassifier
from negstance.train.metrics import LABEL_IDS
from negstance.train.report import SETFIT  # the name the report renders it under

# Which input each baseline reads: the raw sentence or its frozen embedding.
BASELINE_INPUTS: dict[str, str] = {
    "majority": "text",
    "tfidf_logreg": "text",
    "frozen_embedding_logreg": "embedding",
    "frozen_embedding_logreg_default": "embedding",
    "frozen_embedding_logreg_balanced": "embedding",
}
# The frozen-embedding baselines run on the model's backbone and, when that is another
# one, on MiniLM too: `minilm_<name>`. The fast option's probe is the bar to clear.
MINILM_PREFIX = "minilm_"
# Every baseline, in report order; SetFit runs only where it is installed.
ALL_BASELINES: tuple[str, ...] = (*BASELINE_INPUTS, SETFIT)
BASELINE_DESCRIPTIONS: dict[str, str] = {
    "majority": "majority class (sklearn DummyClassifier)",
    "tfidf_logreg": "TF-IDF (word 1-2-grams) + logistic regression",
    "frozen_embedding_logreg": "frozen mean-pooled backbone embeddings, L2-normalised, "
    "+ logistic regression (C, class weights tuned in inner CV)",
    "frozen_embedding_logreg_default": "the same embeddings + scikit-learn's default "
    "logistic regression (C=1, no class weights), untuned",
    "frozen_embedding_logreg_balanced": "the same embeddings + logistic regression with "
    "balanced class weights (C=1), untuned: the default's LP-FT starting point",
    SETFIT: "SetFit on the same backbone: contrastive fine-tuning of its sentence "
    "embeddings on same/different-label pairs (CosineSimilarityLoss, 1 epoch, batch 16), "
    "then logistic regression (scikit-learn defaults) on them",
}
# Searched inside the training folds (inner leave-one-article-out CV).
SEARCH_GRID: dict[str, list] = {
    "logisticregression__C": [0.01, 0.1, 1.0, 10.0, 100.0],
    "logisticregression__class_weight": [None, "balanced"],
}


def setfit_available() -> bool:
    """SetFit is optional: evaluated only when it is installed and imports cleanly.

    Imported here, not merely looked up: a broken or incompatible install is then
    skipped before any fold, not found with a traceback after the first training.
    """
    try:
        import setfit  # noqa: F401
    except Exception:  # ImportError, or whatever a half-installed dependency raises
        return False
    return True


def _logistic_regression(seed: int) -> LogisticRegression:
    return LogisticRegression(max_iter=5000, random_state=seed)


def _grouped_search(pipeline: Pipeline) -> GridSearchCV:
    """Pick C and class weights by macro-F1 in leave-one-article-out CV on the training articles."""
    return GridSearchCV(
        pipeline,
        SEARCH_GRID,
        # labels=: an inner fold without some label still scores all three, as the report does.
        scoring=make_scorer(f1_score, average="macro", labels=LABEL_IDS, zero_division=0),
        cv=LeaveOneGroupOut(),
    )


def make_baseline(name: str, seed: int) -> ClassifierMixin:
    """An unfitted scikit-learn classifier for baseline ``name``.

    The tuned logistic regressions are ``GridSearchCV`` objects: fit them with
    ``groups=`` (the article of each training sentence) so their inner search
    is grouped.
    """
    if name == "majority":
        return DummyClassifier(strategy="most_frequent")
    if name == "tfidf_logreg":
        pipeline = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
            _logistic_regression(seed),
        )
        return _grouped_search(pipeline)
    if name == "frozen_embedding_logreg":
        return _grouped_search(make_pipeline(Normalizer(), _logistic_regression(seed)))
    if name == "frozen_embedding_logreg_default":
        return make_pipeline(Normalizer(), _logistic_regression(seed))
    if name == "frozen_embedding_logreg_balanced":
        return make_pipeline(
            Normalizer(),
            LogisticRegression(max_iter=5000, random_state=seed, class_weight="balanced"),
        )
    raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINE_INPUTS)}")


def fit_predict_baseline(
    name: str,
    train_inputs: Sequence[str] | np.ndarray,
    train_labels: Sequence[int],
    train_groups: Sequence[str],
    test_inputs: Sequence[str] | np.ndarray,
    seed: int,
) -> np.ndarray:
    """Fit baseline ``name`` on the training folds, return its test-fold label ids."""
    classifier = make_baseline(name, seed)
    as_text = BASELINE_INPUTS[name] == "text"
    inputs = list(train_inputs) if as_text else train_inputs
    if isinstance(classifier, GridSearchCV):
        classifier.fit(inputs, list(train_labels), groups=list(train_groups))
    else:
        classifier.fit(inputs, list(train_labels))
    return np.asarray(classifier.predict(list(test_inputs) if as_text else test_inputs))


def frozen_embeddings(
    texts: Sequence[str],
    model_name_or_path: str,
    max_length: int = 128,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    head: str = "mean",
) -> np.ndarray:
    """Mean-pooled last hidden states of the pretrained backbone, shape ``(n, hidden)``.

    The same pooling the ``head=mean`` classifier reads, without any training. The
    backbone loads as the model's does (``head`` as in the training config), so the
    same backbones are accepted, pickled weights are refused and a bad path is a
    one-line error.

    Example:
        >>> vectors = frozen_embeddings(["Talks resumed."], "all-MiniLM-L6-v2")  # doctest: +SKIP
        >>> vectors.shape  # doctest: +SKIP
        (1, 384)
    """
    model, tokenizer = build_model(model_name_or_path, head=head)
    check_max_length(model, max_length, model_name_or_path)
    classifier = StanceClassifier(model, tokenizer, device=device, max_length=max_length)
    return classifier.embed(texts, batch_size=batch_size)


def fit_predict_setfit(
    train_texts: Sequence[str],
    train_labels: Sequence[int],
    test_texts: Sequence[str],
    model_name_or_path: str,
    seed: int,
    max_length: int = 128,
    num_iterations: int | None = None,
    batch_size: int = 16,
    device: str | None = None,
) -> np.ndarray:
    """Fit SetFit on the training sentences, return the test sentences' label ids.

    SetFit's documented recipe, on the model's own backbone: one epoch of
    contrastive fine-tuning on sentence pairs (label 1 for the same stance, 0
    for different ones; ``CosineSimilarityLoss``), then a scikit-learn logistic
    regression on the fine-tuned embeddings. ``num_iterations=None`` keeps
    SetFit's default pair sampling ("oversampling": every pair of training
    sentences at least once, as many same- as different-label pairs); a number
    ``k`` draws ``2 * k * len(train_texts)`` pairs instead (much faster). A
    plain transformers checkpoint becomes a mean-pooling sentence-transformer.
    Nothing is saved or sent to an experiment tracker, and the packaged default
    backbone (or any local directory) needs no network.

    Example:
        >>> fit_predict_setfit(  # doctest: +SKIP
        ...     ["Talks must resume.", "No deal with the aggressor.", "The bridge reopened."],
        ...     [0, 1, 2],
        ...     ["Both sides should negotiate."],
        ...     "sentence-transformers/all-MiniLM-L6-v2",
        ...     seed=42,
        ... )
        array([0])
    """
    # Imported here: setfit is optional, and importing it sets its logger to INFO.
    import setfit
    from datasets import Dataset
    from transformers import PrinterCallback, ProgressCallback

    path = resolve_model_path(model_name_or_path)
    if Path(path).is_dir():
        # Absolute: SetFit looks up a relative path with at most one "/" on the hub,
        # as if it were a model id, for its model card.
        path = str(Path(path).resolve())

    def load_model() -> setfit.SetFitModel:
        model = setfit.SetFitModel.from_pretrained(path, device=device)
        check_max_length(model.model_body[0].auto_model, max_length, model_name_or_path)
        # TrainingArguments.max_length only reaches a differentiable head; the pair
        # training and the embeddings read the sentence-transformer's own limit.
        model.model_body.max_seq_length = max_length
        return model

    verbosity = setfit.logging.get_verbosity()
    setfit.logging.set_verbosity_warning()  # no "Running training" banner per fit
    try:
        with tempfile.TemporaryDirectory(prefix="negstance-setfit-") as scratch:
            arguments = setfit.TrainingArguments(
                output_dir=scratch,  # else it writes ./checkpoints
                batch_size=batch_size,
                num_iterations=num_iterations,
                seed=seed,
                report_to="none",  # no wandb/tensorboard/... even where installed
                save_strategy="no",
                show_progress_bar=False,
            )
            trainer = setfit.Trainer(
                # model_init: SetFit seeds before building the model, so any freshly
                # initialised weights are reproducible too (its documented way).
                model_init=load_model,
                args=arguments,
                train_dataset=Dataset.from_dict(
                    {"text": list(train_texts), "label": [int(label) for label in train_labels]}
                ),
            )
            # The caller shows its own progress; the per-step bar or loss dicts
            # printed by transformers' Trainer would drown it.
            for callback in (ProgressCallback, PrinterCallback):
                trainer.remove_callback(callback)
            with warnings.catch_warnings():
                # Its DataLoader asks for pinned memory even on a CPU-only machine.
                warnings.filterwarnings("ignore", message=".*pin_memory.*", category=UserWarning)
                # train() only: evaluate() would load its metric from the hub.
                trainer.train()
        return np.asarray(trainer.model.predict(list(test_texts), as_numpy=True))
    finally:
        setfit.logging.set_verbosity(verbosity)
