"""Classification metrics in numpy: the one implementation behind evaluate, training reports and
the converter's accuracy-drop benchmark."""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    return np.bincount(np.asarray(y_true) * k + np.asarray(y_pred), minlength=k * k).reshape(k, k)


def classification_report(probs: np.ndarray, y_true: np.ndarray, class_names) -> dict:
    """Accuracy, per-class precision/recall/F1/support, macro averages, confusion matrix."""
    k = len(class_names)
    pred = np.asarray(probs).argmax(axis=1)
    cm = confusion_matrix(y_true, pred, k)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    f1 = np.divide(
        2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0
    )
    return {
        "count": len(y_true),
        "accuracy": float(tp.sum() / max(len(y_true), 1)),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "class_names": list(class_names),
        "confusion": cm.tolist(),
    }
