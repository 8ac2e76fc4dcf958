"""Progress bars over batches, shown only when asked for."""

from tqdm.auto import tqdm


def progress(batches, n_items, batch_size, verbose, description="sensitivity maps"):
    """Wrap an iterator of ``(start, batch)`` pairs in a bar counting items."""
    if not verbose:
        yield from batches
        return
    with tqdm(total=n_items, desc=description, unit="img") as bar:
        for start, batch in batches:
            yield start, batch
            bar.update(len(batch))
