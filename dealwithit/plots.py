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
        axes[0, j].set_title(alpha_label(alpha), fontsize=9)
    figure.suptitle(title)
    return figure


def alpha_label(alpha: float) -> str:
    """``"α=+5.3"``; the centre column of a ``linspace`` reads ``"α=0"``, not ``"α=+8.9e-16"``."""
    return "α=0" if abs(alpha) < 0.05 else f"α={alpha:+.1f}"


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


# --- The walkthrough notebooks: data, classifier and direction summaries ---


def face_grid_figure(images, captions=None, columns=8, title="Faces as the model sees them"):
    """A grid of faces, each with an optional caption underneath.

    Args:
        images: ``(n, S, S, 3)`` floats in [0, 1] or uint8.
        captions: None, or ``n`` short strings (e.g. the attribute a face has).
        columns: Faces per row.
        title: Figure title.

    Returns:
        A Figure of ``ceil(n / columns)`` rows; unused cells stay blank.
    """
    n = len(images)
    if n == 0:
        raise ValueError("Expected at least one image. Received: an empty array.")
    if captions is not None and len(captions) != n:
        raise ValueError(
            f"Expected one caption per image ({n}). Received: {len(captions)} captions."
        )
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    figure = Figure(figsize=(1.2 * columns, 1.35 * rows + 0.4), layout="constrained")
    axes = _image_axes(figure, rows, columns)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for i, ax in enumerate(axes.flat[:n]):
        image = images[i]
        ax.imshow(image if np.asarray(image).dtype == np.uint8 else np.clip(image, 0, 1))
        if captions is not None:
            ax.set_xlabel(captions[i], fontsize=7)
    figure.suptitle(title)
    return figure


def aligned_frame_figure(image, crop_box, eye_band, title="One aligned CelebA frame"):
    """A full aligned frame with the model's crop and the eye band drawn on it.

    Args:
        image: ``(218, 178, 3)`` uint8, one ``img_align_celeba`` file as read.
        crop_box: ``(left, top, right, bottom)`` of the square the model sees
            (``data.CROP_BOX``).
        eye_band: ``(first_row, last_row)`` of the frame where glasses sit
            (``data.EYE_BAND``); the locality metrics measure change there.
        title: Figure title.

    Returns:
        A Figure with one axes.
    """
    from matplotlib.patches import Rectangle

    figure = Figure(figsize=(3.2, 3.8), layout="constrained")
    ax = figure.subplots()
    ax.imshow(image)
    left, top, right, bottom = crop_box
    ax.add_patch(
        Rectangle(
            (left - 0.5, top - 0.5),
            right - left,
            bottom - top,
            fill=False,
            edgecolor="tab:orange",
            linewidth=2,
            label="model crop",
        )
    )
    ax.axhspan(eye_band[0] - 0.5, eye_band[1] - 0.5, color="tab:blue", alpha=0.25, label="eye band")
    ax.legend(loc="lower center", fontsize=7, bbox_to_anchor=(0.5, -0.12), ncols=2)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    return figure


def attribute_cooccurrence_figure(attributes, names, attribute="Eyeglasses", top=15, title=None):
    """How often each other attribute appears with and without ``attribute``.

    Bars of ``P(other | attribute)`` next to ``P(other | no attribute)`` for the
    ``top`` attributes whose two rates differ most. Whatever differs here is
    what a plain mean-difference vector picks up along with the attribute.

    Args:
        attributes: ``(n, len(names))`` labels, -1/+1 (CelebA), 0/1 or booleans.
        names: Column names, CelebA spelling.
        attribute: The attribute to condition on.
        top: How many other attributes to show, by the size of the difference.
        title: Figure title; None names the attribute.

    Returns:
        A Figure with one axes of horizontal bar pairs, largest difference on top.
    """
    names = list(names)
    if attribute not in names:
        raise ValueError(
            f"Expected an attribute among the column names (CelebA spelling). "
            f"Received: attribute={attribute!r}"
        )
    present = np.asarray(attributes) > 0
    if present.ndim != 2 or present.shape[1] != len(names):
        raise ValueError(
            f"Expected attributes of shape (n, {len(names)}). Received: shape={present.shape}"
        )
    has = present[:, names.index(attribute)]
    if not 0 < has.sum() < has.size:
        raise ValueError(
            f"Expected faces both with and without {attribute}. "
            f"Received: {int(has.sum())} of {has.size} with it."
        )
    others = [j for j, name in enumerate(names) if name != attribute]
    with_rate = present[has][:, others].mean(axis=0)
    without_rate = present[~has][:, others].mean(axis=0)
    order = np.argsort(-np.abs(with_rate - without_rate))[:top][::-1]
    labels = [names[others[j]] for j in order]
    y = np.arange(len(order))
    figure = Figure(figsize=(5.6, 0.28 * len(order) + 1.2), layout="constrained")
    ax = figure.subplots()
    ax.barh(y + 0.2, with_rate[order], height=0.4, color="tab:orange", label=f"with {attribute}")
    ax.barh(
        y - 0.2, without_rate[order], height=0.4, color="tab:blue", label=f"without {attribute}"
    )
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of faces with the other attribute")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or f"What comes with {attribute} ({int(has.sum())} of {has.size} faces)")
    return figure


def attribute_accuracy_figure(
    accuracy, names, baseline=None, highlight="Eyeglasses", title="Held-out accuracy per attribute"
):
    """Per-attribute accuracy of the attribute classifier, with the majority baseline.

    Args:
        accuracy: ``{attribute: accuracy}``, e.g. the report of
            ``training.train_attribute_classifier`` (extra keys are ignored).
        names: The attributes to show, in order (e.g. ``data.CELEBA_ATTRIBUTES``).
        baseline: Optional ``(len(names),)`` accuracies of always answering the
            majority class; drawn as black ticks, since a rare attribute scores
            high by never being predicted.
        highlight: The attribute whose bar is drawn in orange.
        title: Figure title.

    Returns:
        A Figure with one axes of horizontal bars, ``names[0]`` on top.
    """
    names = list(names)
    missing = [name for name in names if name not in accuracy]
    if missing:
        raise ValueError(f"Expected an accuracy for every name. Missing: {missing}")
    values = np.array([accuracy[name] for name in names], dtype=float)
    y = np.arange(len(names))[::-1]
    figure = Figure(figsize=(5.0, 0.19 * len(names) + 1.2), layout="constrained")
    ax = figure.subplots()
    colors = ["tab:orange" if name == highlight else "tab:blue" for name in names]
    ax.barh(y, values, height=0.7, color=colors, label="classifier")
    if baseline is not None:
        baseline = np.asarray(baseline, dtype=float)
        if baseline.shape != (len(names),):
            raise ValueError(
                f"Expected one baseline per name, shape ({len(names)},). "
                f"Received: shape={baseline.shape}"
            )
        ax.scatter(baseline, y, marker="|", s=80, color="black", label="majority class")
    ax.set_yticks(y, names, fontsize=7)
    ax.set_xlim(min(0.5, float(values.min()) - 0.02), 1.0)
    ax.set_xlabel("accuracy")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, frameon=False)
    figure.suptitle(title)
    return figure


def attribute_cosines_figure(
    cosines_by_kind,
    top=10,
    title="What else each direction moves (cosine with attribute directions)",
):
    """Cosine of each direction kind with other attributes' directions, grouped bars.

    Args:
        cosines_by_kind: ``{kind: {attribute: cosine}}``, e.g. the
            ``attribute_cosines`` saved in ``vectors.json``.
        top: How many attributes to show: those with the largest ``|cosine|``
            over all kinds.
        title: Figure title.

    Returns:
        A Figure with one axes; one bar per kind for each attribute.
    """
    kinds = list(cosines_by_kind)
    if not kinds:
        raise ValueError("Expected at least one direction kind. Received: an empty mapping.")
    names = sorted({name for cosines in cosines_by_kind.values() for name in cosines})
    table = np.array([[cosines_by_kind[k].get(name, 0.0) for name in names] for k in kinds])
    order = np.argsort(-np.abs(table).max(axis=0))[:top][::-1]
    y = np.arange(len(order))
    height = 0.8 / len(kinds)
    figure = Figure(figsize=(6.0, 0.12 * len(order) * len(kinds) + 1.4), layout="constrained")
    ax = figure.subplots()
    for i, kind in enumerate(kinds):
        offset = (i - (len(kinds) - 1) / 2) * height
        ax.barh(y + offset, table[i, order], height=height, label=kind)
    ax.axvline(0, color="grey", linewidth=1)
    ax.set_yticks(y, [names[j] for j in order], fontsize=8)
    ax.set_xlabel("cosine")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title, fontsize=10)
    return figure


def image_row_figure(images, titles=None, title=None, height=3.0):
    """Images side by side at their own aspect ratios (e.g. a photo before and after).

    Args:
        images: A sequence of ``(H, W, 3)`` arrays (uint8, or floats in [0, 1]).
        titles: None, or one title per image.
        title: Figure title.
        height: Height of the row in inches.

    Returns:
        A Figure with one axes per image.
    """
    if len(images) == 0:
        raise ValueError("Expected at least one image. Received: none.")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"Expected one title per image ({len(images)}). Received: {len(titles)}")
    ratios = [np.asarray(image).shape[1] / np.asarray(image).shape[0] for image in images]
    figure = Figure(figsize=(height * sum(ratios) + 0.2, height + 0.5), layout="constrained")
    axes = figure.subplots(1, len(images), squeeze=False, width_ratios=ratios)[0]
    for i, (ax, image) in enumerate(zip(axes, images)):
        image = np.asarray(image)
        ax.imshow(image if image.dtype == np.uint8 else np.clip(image, 0, 1))
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    if title:
        figure.suptitle(title)
    return figure
