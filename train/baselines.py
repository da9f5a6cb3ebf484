"""Baselines the fine-tuned model must beat, fitted on exactly the same folds.

* ``majority``: always the most frequent label of the training folds.
* ``tfidf_logreg``: word uni+bigram TF-IDF, logistic regression.
* ``frozen_embedding_logreg``: the backbone's mean-pooled sentence vectors,
  frozen and L2-normalised (as sentence-transformers uses all-MiniLM-L6-v2),
  logistic regression: a linear probe.
* ``frozen_embedding_logreg_default``: the same with scikit-learn's defaults
  (C=1, no class weights), untuned. On this data it scores higher than the
  tuned probe, so it is kept as the stronger, harder baseline.
* ``setfit``: only when the ``setfit`` package is importable (it is not a
  dependency); otherwise reported as skipped.

For the two tuned logistic regressions the regularisation strength ``C`` and
the class weighting (none or balanced) are chosen by an inner
leave-one-article-out search on the training articles only, so the test
article never influences them. All baselines are deterministic.

Example:
    >>> from negstance.train.baselines import make_baseline
    >>> classifier = make_baseline("majority", seed=0)
    >>> classifier.fit([[0], [0], [0]], [2, 2, 0]).predict([[0]]).tolist()
    [2]
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

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
from transformers import AutoModel, AutoTokenizer

from negstance.model.modeling import check_max_length, mean_pool, resolve_model_path

# Which input each baseline reads: the raw sentence or its frozen embedding.
BASELINE_INPUTS: dict[str, str] = {
    "majority": "text",
    "tfidf_logreg": "text",
    "frozen_embedding_logreg": "embedding",
    "frozen_embedding_logreg_default": "embedding",
}
BASELINE_DESCRIPTIONS: dict[str, str] = {
    "majority": "majority class (sklearn DummyClassifier)",
    "tfidf_logreg": "TF-IDF (word 1-2-grams) + logistic regression",
    "frozen_embedding_logreg": "frozen mean-pooled backbone embeddings, L2-normalised, "
    "+ logistic regression (C, class weights tuned in inner CV)",
    "frozen_embedding_logreg_default": "the same embeddings + scikit-learn's default "
    "logistic regression (C=1, no class weights), untuned",
    "setfit": "SetFit (contrastive sentence-transformer fine-tuning + head)",
}
# Searched inside the training folds (inner leave-one-article-out CV).
SEARCH_GRID: dict[str, list] = {
    "logisticregression__C": [0.01, 0.1, 1.0, 10.0, 100.0],
    "logisticregression__class_weight": [None, "balanced"],
}


def setfit_available() -> bool:
    """SetFit is optional: evaluated only when it is already installed."""
    return importlib.util.find_spec("setfit") is not None


def _logistic_regression(seed: int) -> LogisticRegression:
    return LogisticRegression(max_iter=5000, random_state=seed)


def _grouped_search(pipeline: Pipeline) -> GridSearchCV:
    """Pick C and class weights by macro-F1 in leave-one-article-out CV on the training articles."""
    return GridSearchCV(
        pipeline,
        SEARCH_GRID,
        scoring=make_scorer(f1_score, average="macro", zero_division=0),
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


@torch.inference_mode()
def frozen_embeddings(
    texts: Sequence[str],
    model_name_or_path: str,
    max_length: int = 128,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Mean-pooled last hidden states of the pretrained backbone, shape ``(n, hidden)``.

    The same pooling the ``head=mean`` classifier reads, without any training.

    Example:
        >>> vectors = frozen_embeddings(["Talks resumed."], "all-MiniLM-L6-v2")  # doctest: +SKIP
        >>> vectors.shape  # doctest: +SKIP
        (1, 384)
    """
    path = resolve_model_path(model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    encoder = AutoModel.from_pretrained(path, trust_remote_code=False).to(device).eval()
    check_max_length(encoder, max_length, model_name_or_path)
    vectors = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(
            list(texts[start : start + batch_size]),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        ).to(device)
        hidden = encoder(**batch).last_hidden_state
        vectors.append(mean_pool(hidden, batch["attention_mask"]).float().cpu().numpy())
    return np.concatenate(vectors)
