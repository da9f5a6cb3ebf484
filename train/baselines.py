"""The baselines the fine-tuned model must beat: systems whose ``fit_predict(train, test,
seed)`` maps row indices of the protocol's data to the test rows' label ids. The scikit-learn
ones are deterministic (fitted once per fold; the tuned ones choose C and class weights in an
inner leave-one-article-out search on the training articles); SetFit is seeded like the model.

Example: ``SklearnBaseline("majority", texts, labels, docs).fit_predict(train, test, seed=0)``
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, make_scorer
from sklearn.model_selection import GridSearchCV, LeaveOneGroupOut
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer

from negstance.model.backbones import MINILM, resolve_model_path
from negstance.model.checkpoint import build_model, check_max_length
from negstance.model.classifier import StanceClassifier
from negstance.train.metrics import LABEL_IDS
from negstance.train.report import SETFIT, templates

PROBES = tuple(f"frozen_embedding_logreg{suffix}" for suffix in ("", "_default", "_balanced"))


def describe(kind: str) -> str:
    """What baseline ``kind`` is, in the words of ``templates/sections.md``."""
    return templates().get_template("sections.md").module.descriptions[kind]


def make_baseline(kind: str, seed: int) -> Any:
    """The unfitted classifier of baseline ``kind``; the tuned ones are a ``GridSearchCV`` in
    leave-one-article-out CV, to fit with ``groups=`` (each sentence's article)."""
    if kind == "majority":
        return DummyClassifier(strategy="most_frequent")
    balanced = "balanced" if kind.endswith("_balanced") else None
    regression = LogisticRegression(max_iter=5000, random_state=seed, class_weight=balanced)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    pipeline = make_pipeline(vectorizer if kind == "tfidf_logreg" else Normalizer(), regression)
    if kind not in ("tfidf_logreg", "frozen_embedding_logreg"):
        return pipeline
    grid = {
        "logisticregression__C": [0.01, 0.1, 1.0, 10.0, 100.0],
        "logisticregression__class_weight": [None, "balanced"],
    }
    # labels=: an inner fold without some label still scores all three, as the report does.
    scorer = make_scorer(f1_score, average="macro", labels=LABEL_IDS, zero_division=0)
    return GridSearchCV(pipeline, grid, scoring=scorer, cv=LeaveOneGroupOut())


@dataclass
class SklearnBaseline:
    """Baseline ``kind`` (majority, tfidf_logreg or a probe) on ``inputs``, one row per sentence;
    ``groups``: each row's article, for the inner grouped search."""

    kind: str
    inputs: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    prefix: str = ""  # of the name, and the backbone named in the description
    seeded = False  # deterministic: fitted once per fold, scored with every seed

    def __post_init__(self) -> None:
        self.name = self.prefix + self.kind
        self.description = describe(self.kind) + (" (on all-MiniLM-L6-v2)" * bool(self.prefix))

    def fit_predict(self, train: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
        classifier = make_baseline(self.kind, seed)
        extra = {"groups": self.groups[train]} if isinstance(classifier, GridSearchCV) else {}
        classifier.fit(self.inputs[train], self.labels[train], **extra)
        return np.asarray(classifier.predict(self.inputs[test]))


def sklearn_baselines(dataset: Any, config: Any) -> list[SklearnBaseline]:
    """Every scikit-learn baseline on a protocol's rows (``text``, ``label``, ``doc``), on the
    backbone's frozen embeddings and, for another backbone, MiniLM's."""
    texts = list(dataset["text"])
    labels, groups = np.asarray(dataset["label"]), np.asarray(dataset["doc"])
    inputs = {"": frozen_embeddings(texts, config.model_name_or_path, config.max_length)}
    if resolve_model_path(MINILM) != resolve_model_path(config.model_name_or_path):
        inputs["minilm_"] = frozen_embeddings(texts, MINILM, config.max_length)
    texts = np.asarray(texts, dtype=object)
    systems = [
        SklearnBaseline(kind, texts, labels, groups) for kind in ("majority", "tfidf_logreg")
    ]
    return systems + [
        SklearnBaseline(kind, vectors, labels, groups, prefix)
        for prefix, vectors in inputs.items()
        for kind in PROBES
    ]


def frozen_embeddings(texts: Sequence[str], backbone: str, max_length: int = 128) -> np.ndarray:
    """Mean-pooled last hidden states of a backbone loaded as the model's is (same checks).

    Example: ``frozen_embeddings(["Talks resumed."], "all-MiniLM-L6-v2").shape == (1, 384)``
    """
    model, tokenizer = build_model(backbone, head="mean")
    check_max_length(model, max_length, backbone)
    classifier = StanceClassifier(model, tokenizer, device="cpu", max_length=max_length)
    return classifier.embed(texts, batch_size=64)


def setfit_available() -> bool:
    """Whether SetFit imports: a broken install is skipped before any fold, not after one."""
    try:
        import setfit  # noqa: F401
    except Exception:  # ImportError, or whatever a half-installed dependency raises
        return False
    return True


@dataclass
class SetFitBaseline:
    """SetFit on the model's backbone, fitted per fold and seed like the model;
    ``num_iterations=None`` keeps SetFit's default pair sampling (hours on a CPU)."""

    dataset: Any  # the protocol's rows: text, label
    config: Any  # the model's TrainConfig: its backbone and max_length
    num_iterations: int | None = None
    device: str | None = None
    name = SETFIT
    seeded = True

    @property
    def description(self) -> str:
        pairs = f"num_iterations={self.num_iterations}" if self.num_iterations else None
        return f"{describe(SETFIT)}; pairs: " + (pairs or "SetFit's default oversampling")

    def load_model(self) -> Any:
        import setfit

        # Absolute: SetFit looks a relative path with at most one "/" up on the hub.
        path = resolve_model_path(self.config.model_name_or_path)
        path = str(Path(path).resolve()) if Path(path).is_dir() else path
        model = setfit.SetFitModel.from_pretrained(path, device=self.device)
        encoder = model.model_body[0].auto_model
        check_max_length(encoder, self.config.max_length, self.config.model_name_or_path)
        # TrainingArguments.max_length only reaches a differentiable head; the pair
        # training and the embeddings read the sentence-transformer's own limit.
        model.model_body.max_seq_length = self.config.max_length
        return model

    def fit_predict(self, train: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
        # Imported here: setfit is optional, and importing it sets its logger to INFO.
        import datasets
        import setfit
        from transformers import PrinterCallback, ProgressCallback

        setfit.logging.set_verbosity_warning()  # no "Running training" banner per fit
        bars = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()  # nor a "Map" bar: the caller shows the progress
        try:
            with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings():
                # Its DataLoader asks for pinned memory even on a CPU-only machine.
                warnings.filterwarnings("ignore", ".*pin_memory.*", UserWarning)
                args = setfit.TrainingArguments(
                    output_dir=scratch,  # else it writes ./checkpoints
                    batch_size=16,
                    num_iterations=self.num_iterations,
                    seed=seed,
                    report_to="none",
                    save_strategy="no",
                    show_progress_bar=False,
                )
                rows = self.dataset.select(train).select_columns(["text", "label"])
                # model_init: SetFit seeds before building the model
                trainer = setfit.Trainer(model_init=self.load_model, args=args, train_dataset=rows)
                trainer.remove_callback(ProgressCallback)
                trainer.remove_callback(PrinterCallback)
                trainer.train()  # not evaluate(): it would load its metric from the hub
            texts = self.dataset.select(test)["text"]
            return np.asarray(trainer.model.predict(texts, as_numpy=True))
        finally:
            if bars:
                datasets.enable_progress_bars()
