"""Images, the first step: images and paths in, float32 batches of the model's input size out.

Image arrays and paths to batches (``_batches``), the image files that paths,
folders and patterns name (``_image_files``), and the named preprocessings a
model's inputs go through (``_preprocessing``). Importing it needs no Keras: the
preprocessings import it when they run.
"""
