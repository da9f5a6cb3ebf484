"""Baselines the fine-tuned model must beat, fitted on exactly the same folds.

What each one is: :data:`BASELINE_DESCRIPTIONS`. For the two tuned logistic regressions
the regularisation strength ``C`` and the class weighting (none or balanced) are chosen
by an inner leave-one-article-out search on the training articles only, so the test
article never influences them.

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
# The untuned `_default` probe is kept because it outscores the tuned one in CV: a harder bar.
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
    """Whether SetFit imports: a broken install is skipped before any fold, not after one."""
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
        balanced = _logistic_regression(seed).set_params(class_weight="balanced")
        return make_pipeline(Normalizer(), balanced)
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
    groups = {"groups": train_groups} if isinstance(classifier, GridSearchCV) else {}
    classifier.fit(train_inputs, train_labels, **groups)
    return np.asarray(classifier.predict(test_inputs))


def frozen_embeddings(
    texts: Sequence[str],
    model_name_or_path: str,
    max_length: int = 128,
    head: str = "mean",
) -> np.ndarray:
    """Mean-pooled last hidden states of the pretrained backbone, shape ``(n, hidden)``.

    The backbone loads as the model's does (``head`` as in the training config): the
    same backbones accepted, the same one-line errors.

    Example:
        >>> vectors = frozen_embeddings(["Talks resumed."], "all-MiniLM-L6-v2")  # doctest: +SKIP
        >>> vectors.shape  # doctest: +SKIP
        (1, 384)
    """
    model, tokenizer = build_model(model_name_or_path, head=head)
    check_max_length(model, max_length, model_name_or_path)
    classifier = StanceClassifier(model, tokenizer, device="cpu", max_length=max_length)
    return classifier.embed(texts, batch_size=64)


def fit_predict_setfit(
    train_texts: Sequence[str],
    train_labels: Sequence[int],
    test_texts: Sequence[str],
    model_name_or_path: str,
    seed: int,
    max_length: int = 128,
    num_iterations: int | None = None,
    device: str | None = None,
) -> np.ndarray:
    """Fit SetFit on the training sentences, return the test sentences' label ids.

    ``num_iterations=None`` keeps SetFit's default pair sampling ("oversampling": every
    pair of training sentences at least once, as many same- as different-label pairs); a
    number ``k`` draws ``2 * k * len(train_texts)`` pairs instead (much faster).

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
    import datasets
    import setfit
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
    datasets_bars_were_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # nor a "Map" bar
    try:
        with tempfile.TemporaryDirectory(prefix="negstance-setfit-") as scratch:
            arguments = setfit.TrainingArguments(
                output_dir=scratch,  # else it writes ./checkpoints
                batch_size=16,  # BASELINE_DESCRIPTIONS[SETFIT] says so
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
                train_dataset=datasets.Dataset.from_dict(
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
        if datasets_bars_were_on:
            datasets.enable_progress_bars()
