"""Every figure of the project; each function returns a matplotlib Figure.

Only this module imports matplotlib, and it never calls ``plt.show()``: notebooks
display the returned Figure inline, the CLI saves it as PNG.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def _image_axes(figure, rows, cols):
    axes = figure.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    return axes


def reconstruction_figure(
    images, reconstructions, title="Inputs (top) and reconstructions (bottom)"
):
    """Inputs above their reconstructions.

    Args:
        images: ``(n, S, S, 3)`` floats in [0, 1] or uint8.
        reconstructions: Same shape.
        title: Figure title.

    Returns:
        A Figure with two rows of ``n`` faces.
    """
    n = len(images)
    figure = Figure(figsize=(1.2 * n, 2.7), layout="constrained")
    axes = _image_axes(figure, 2, n)
    for i in range(n):
        axes[0, i].imshow(images[i])
        axes[1, i].imshow(np.clip(reconstructions[i], 0, 1))
    axes[0, 0].set_ylabel("input")
    axes[1, 0].set_ylabel("reconstruction")
    figure.suptitle(title)
    return figure


def comparison_figure(images, reconstructions_by_name, title="Same faces, different models"):
    """Inputs in the first row, then one row of reconstructions per model.

    Args:
        images: ``(n, S, S, 3)``.
        reconstructions_by_name: ``{model name: (n, S, S, 3)}``.
        title: Figure title.

    Returns:
        A Figure with ``1 + len(reconstructions_by_name)`` rows.
    """
    n = len(images)
    rows = 1 + len(reconstructions_by_name)
    figure = Figure(figsize=(1.2 * n, 1.3 * rows + 0.4), layout="constrained")
    axes = _image_axes(figure, rows, n)
    for i in range(n):
        axes[0, i].imshow(images[i])
    axes[0, 0].set_ylabel("input")
    for row, (name, recon) in enumerate(reconstructions_by_name.items(), start=1):
        for i in range(n):
            axes[row, i].imshow(np.clip(recon[i], 0, 1))
        axes[row, 0].set_ylabel(name)
    figure.suptitle(title)
    return figure


def training_curves_figure(history, title="VAE training"):
    """Loss terms and the KL weight per epoch, training and validation.

    Args:
        history: ``{metric: values per epoch}`` as from ``training.read_history``
            or ``keras.callbacks.History.history``.
        title: Figure title.

    Returns:
        A Figure with one panel per loss term and one for ``kl_weight``.
    """
    panels = [
        name
        for name in (
            "loss",
            "reconstruction_loss",
            "kl_loss",
            "discriminative_loss",
            "mse",
            "kl_weight",
        )
        if name in history and np.any(np.asarray(history[name]) != 0)
    ]
    figure = Figure(figsize=(3.2 * len(panels), 2.8), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, name in zip(axes, panels):
        values = np.asarray(history[name], float)
        epochs = np.arange(1, len(values) + 1)
        ax.plot(epochs, values, marker="o", label="train")
        if f"val_{name}" in history and name != "kl_weight":
            ax.plot(epochs, np.asarray(history[f"val_{name}"], float), marker="s", label="valid")
            ax.legend()
        ax.set_title(name)
        ax.set_xlabel("epoch")
    figure.suptitle(title)
    return figure


# --- Latent directions and edits (vectors.py, edit.py, evaluate.py) ---


def slider_grid_figure(grid, alphas, title="Sliding along the sunglasses direction"):
    """Goh-style sliders: one face per row, one offset alpha per column.

    Args:
        grid: ``(n, m, S, S, 3)`` floats in [0, 1], as from ``edit.slider_grid``.
        alphas: ``(m,)`` offsets in latent units along the unit direction.
        title: Figure title.

    Returns:
        A Figure of ``n`` rows and ``m`` columns, each column headed by its alpha.
    """
    grid = np.asarray(grid)
    n, m = grid.shape[:2]
    figure = Figure(figsize=(1.1 * m, 1.1 * n + 0.6), layout="constrained")
    axes = _image_axes(figure, n, m)
    for i in range(n):
        for j in range(m):
            axes[i, j].imshow(np.clip(grid[i, j], 0, 1))
    for j, alpha in enumerate(alphas):
        axes[0, j].set_title(f"α={alpha:+.2g}", fontsize=9)
    figure.suptitle(title)
    return figure


def roc_figure(labels, scores_by_name, title="Latent classifier ROC"):
    """ROC curves of several scorers of the same labels, AUC in the legend.

    Args:
        labels: ``(n,)`` true labels (booleans, -1/+1 or 0/1).
        scores_by_name: ``{name: (n,) scores}`` (probabilities or logits).
        title: Figure title.

    Returns:
        A Figure with one axes.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    labels = np.asarray(labels) > 0
    figure = Figure(figsize=(4.2, 4.0), layout="constrained")
    ax = figure.subplots()
    for name, scores in scores_by_name.items():
        fpr, tpr, _ = roc_curve(labels, np.asarray(scores))
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(labels, scores):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title)
    return figure


def dose_response_figure(curves, title="Judge's verdict against the offset alpha"):
    """Share of faces the judge flips as alpha grows, one line per curve.

    Args:
        curves: ``{name: [{"alpha": a, "flip_rate": r}, ...]}``, e.g.
            ``{"adding": metrics["alpha_curve"], "removing": metrics["removal_curve"]}``.
            Removal curves (negative alphas) are drawn against ``|alpha|``.
        title: Figure title.

    Returns:
        A Figure with one axes.
    """
    figure = Figure(figsize=(4.8, 3.4), layout="constrained")
    ax = figure.subplots()
    for name, points in curves.items():
        alphas = np.abs([p["alpha"] for p in points])
        ax.plot(alphas, [p["flip_rate"] for p in points], marker="o", label=name)
    ax.set_xlabel("|α| (latent units along the unit direction)")
    ax.set_ylabel("flip rate (judge)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return figure


def cosine_heatmap_figure(kinds, matrix, title="Cosine between directions"):
    """Annotated heatmap of pairwise cosines, as from ``vectors.cosine_table``.

    Args:
        kinds: ``k`` labels.
        matrix: ``(k, k)`` cosines in [-1, 1].
        title: Figure title.

    Returns:
        A Figure with one axes and a colour bar.
    """
    matrix = np.asarray(matrix, dtype=float)
    k = len(kinds)
    figure = Figure(figsize=(1.1 * k + 2.4, 0.9 * k + 1.4), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(k), [str(kind).replace("_", "\n") for kind in kinds], fontsize=8)
    ax.set_yticks(range(k), [str(kind) for kind in kinds], fontsize=8)
    for i in range(k):
        for j in range(k):
            color = "white" if abs(matrix[i, j]) > 0.6 else "black"
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", color=color, fontsize=8)
    figure.colorbar(image, ax=ax, shrink=0.8)
    ax.set_title(title)
    return figure


def latent_projection_figure(
    z2d, labels, title="Latent codes, projected", class_names=("without", "with")
):
    """Scatter of 2-D projected latent codes coloured by a binary label.

    Args:
        z2d: ``(n, 2)`` coordinates (e.g. on the direction and its best orthogonal).
        labels: ``(n,)`` booleans, -1/+1 or 0/1.
        title: Figure title.
        class_names: Legend entries for negatives and positives.

    Returns:
        A Figure with one axes; positives are drawn on top (they are the rare class).
    """
    z2d = np.asarray(z2d, dtype=float)
    labels = np.asarray(labels) > 0
    figure = Figure(figsize=(4.4, 4.0), layout="constrained")
    ax = figure.subplots()
    for mask, name, color in (
        (~labels, class_names[0], "tab:blue"),
        (labels, class_names[1], "tab:orange"),
    ):
        ax.scatter(
            z2d[mask, 0], z2d[mask, 1], s=6, alpha=0.5, color=color, label=f"{name} ({mask.sum()})"
        )
    ax.legend(fontsize=8, markerscale=2)
    ax.set_title(title)
    return figure


def extremes_figure(images_most, images_least, title="Most and least, by the latent classifier"):
    """Two rows of faces: the highest-scoring ones above the lowest-scoring ones.

    Args:
        images_most: ``(n, S, S, 3)`` faces with the highest scores.
        images_least: ``(n, S, S, 3)`` faces with the lowest scores.
        title: Figure title.

    Returns:
        A Figure of two rows.
    """
    n = max(len(images_most), len(images_least))
    figure = Figure(figsize=(1.2 * n, 2.8), layout="constrained")
    axes = _image_axes(figure, 2, n)
    for row, images in enumerate((images_most, images_least)):
        for i, image in enumerate(images):
            axes[row, i].imshow(np.clip(image, 0, 1))
    axes[0, 0].set_ylabel("most")
    axes[1, 0].set_ylabel("least")
    figure.suptitle(title)
    return figure
